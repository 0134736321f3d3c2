//! The pure core of the OTLP export: what `/metrics` shows, as one `ExportMetricsServiceRequest`.
//!
//! Inputs are the same two things the `/metrics` collector reads: the journey counters and
//! duration buckets ([`JourneySnapshot`]) and the SLO engine's latest [`Evaluation`]. Nothing is
//! recomputed here; numbers are only reshaped.
//!
//! Names are those of `/metrics`, so a collector that re-exports to Prometheus (which appends
//! `_total` to monotonic sums and a unit suffix only when missing) lands on the same series.
//! Units follow UCUM: `s`, `1` for ratios, `{run}`/`{event}` annotations for counts, and none for
//! the burn rate and the alert state (a bare `1` would make such translators add `_ratio`).
//!
//! Histograms are explicit-bucket, not exponential: the bounds are `/metrics`' edges, every SLO
//! latency threshold among them, counted by the engine's own rule, so an OTLP backend computes
//! the same "runs under 2 s" as the burn rates. Exponential buckets cannot be filled exactly from
//! the fleet's HDR histograms: an HDR bucket is linear inside each power of two *microseconds*,
//! while OTLP's buckets are geometric in *seconds* (boundaries base^i, base = 2^(2^-scale)), so
//! nearly every HDR bucket straddles an exponential boundary and would have to be split by guess.

use opentelemetry_proto::tonic::{
    collector::metrics::v1::ExportMetricsServiceRequest,
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value},
    metrics::v1::{
        AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
        ScopeMetrics, Sum, metric::Data, number_data_point::Value,
    },
    resource::v1::Resource,
};

use crate::slo::{export::JourneySnapshot, service::Evaluation, windows::Severity};

/// `service.name` of the exported resource.
pub const SERVICE_NAME: &str = "savanna-pulse-aggregator";
/// The instrumentation scope's name.
pub const SCOPE_NAME: &str = "savanna-pulse/aggregator";

/// Times of one push, in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    /// When the cumulative counters started (the aggregator's start: they are not restored).
    pub start_ms: i64,
    /// When the counters were read.
    pub now_ms: i64,
}

fn nanos(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000)
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) }),
        ..KeyValue::default()
    }
}

fn metric(name: &str, description: &str, unit: &str, data: Data) -> Metric {
    Metric {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: unit.to_owned(),
        data: Some(data),
        ..Metric::default()
    }
}

/// Builds the request. Families without data points are left out, as `/metrics` leaves them out.
pub fn build(journeys: &JourneySnapshot, eval: &Evaluation, times: Times) -> ExportMetricsServiceRequest {
    let mut metrics = Vec::new();
    let (start, now) = (nanos(times.start_ms), nanos(times.now_ms));
    let cumulative = AggregationTemporality::Cumulative as i32;

    if !journeys.runs.is_empty() {
        let data_points = journeys
            .runs
            .iter()
            .map(|r| NumberDataPoint {
                // `rail` and `reason` on payment steps only, as on /metrics.
                attributes: r.labels().into_iter().map(|(k, v)| kv(k, v)).collect(),
                start_time_unix_nano: start,
                time_unix_nano: now,
                value: Some(Value::AsInt(i64::try_from(r.count).unwrap_or(i64::MAX))),
                ..NumberDataPoint::default()
            })
            .collect();
        metrics.push(metric(
            "synthetic_journey_runs",
            "Journey and step runs measured by the fleet, by outcome (step=\"\" is the whole journey)",
            "{run}",
            Data::Sum(Sum { data_points, aggregation_temporality: cumulative, is_monotonic: true }),
        ));
    }

    if !journeys.durations.is_empty() {
        let data_points = journeys
            .durations
            .iter()
            .map(|d| {
                let mut bucket_counts = Vec::with_capacity(journeys.edges.len() + 1);
                let mut prev = 0;
                for c in &d.cumulative {
                    bucket_counts.push(c.saturating_sub(prev));
                    prev = *c;
                }
                bucket_counts.push(d.count.saturating_sub(prev));
                HistogramDataPoint {
                    attributes: {
                        let mut a = vec![kv("journey", &d.journey), kv("step", &d.step), kv("region", &d.region)];
                        if !d.rail.is_empty() {
                            a.push(kv("rail", &d.rail));
                        }
                        a
                    },
                    start_time_unix_nano: start,
                    time_unix_nano: now,
                    count: d.count,
                    sum: Some(d.sum_s),
                    bucket_counts,
                    explicit_bounds: journeys.edges.clone(),
                    ..HistogramDataPoint::default()
                }
            })
            .collect();
        metrics.push(metric(
            "synthetic_journey_duration_seconds",
            "Durations of successful runs; every SLO latency threshold is a bucket edge",
            "s",
            Data::Histogram(Histogram { data_points, aggregation_temporality: cumulative }),
        ));
    }

    metrics.extend(slo_gauges(eval));
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", SERVICE_NAME), kv("service.version", env!("CARGO_PKG_VERSION"))],
                ..Resource::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..InstrumentationScope::default()
                }),
                metrics,
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

/// Most data points in one request. A point takes ~100 bytes on the wire (its attributes are
/// repeated in each), so a request stays near 1 MB, well under collectors' usual 20 MiB body limit
/// (10,000 SLO scopes make ~300,000 points, ~35 MB in one piece).
pub const MAX_POINTS_PER_REQUEST: usize = 8_192;

/// [`build`], split into requests of at most `max_points` data points each and encoded as
/// protobuf: the bodies of one push, in order.
pub fn encoded(journeys: &JourneySnapshot, eval: &Evaluation, times: Times, max_points: usize) -> Vec<Vec<u8>> {
    use prost::Message;
    split(build(journeys, eval, times), max_points).iter().map(Message::encode_to_vec).collect()
}

fn points(data: &Data) -> usize {
    match data {
        Data::Gauge(g) => g.data_points.len(),
        Data::Sum(s) => s.data_points.len(),
        Data::Histogram(h) => h.data_points.len(),
        Data::ExponentialHistogram(h) => h.data_points.len(),
        Data::Summary(s) => s.data_points.len(),
    }
}

/// Moves the first `n` data points of `data` into a copy of it (same kind and temporality).
fn take(data: &mut Data, n: usize) -> Data {
    match data {
        Data::Gauge(g) => Data::Gauge(Gauge { data_points: g.data_points.drain(..n).collect() }),
        Data::Sum(s) => Data::Sum(Sum { data_points: s.data_points.drain(..n).collect(), ..*s }),
        Data::Histogram(h) => Data::Histogram(Histogram { data_points: h.data_points.drain(..n).collect(), ..*h }),
        Data::ExponentialHistogram(h) => {
            let data_points = h.data_points.drain(..n).collect();
            Data::ExponentialHistogram(opentelemetry_proto::tonic::metrics::v1::ExponentialHistogram {
                data_points,
                ..*h
            })
        }
        Data::Summary(s) => Data::Summary(opentelemetry_proto::tonic::metrics::v1::Summary {
            data_points: s.data_points.drain(..n).collect(),
        }),
    }
}

/// Splits a one-resource, one-scope request into requests of at most `max_points` data points; a
/// metric may continue in the next request (OTLP allows a metric's points across requests). An
/// empty request stays one (empty) request, so a push always says the aggregator is alive.
pub fn split(mut req: ExportMetricsServiceRequest, max_points: usize) -> Vec<ExportMetricsServiceRequest> {
    let max_points = max_points.max(1);
    let Some(mut rm) = req.resource_metrics.pop() else { return vec![req] };
    let Some(mut sm) = rm.scope_metrics.pop() else {
        return vec![ExportMetricsServiceRequest { resource_metrics: vec![rm] }];
    };
    let metrics = std::mem::take(&mut sm.metrics);
    let wrap = |metrics: Vec<Metric>| ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics { metrics, ..sm.clone() }],
            ..rm.clone()
        }],
    };
    let mut out = Vec::new();
    let mut current: Vec<Metric> = Vec::new();
    let mut room = max_points;
    for mut m in metrics {
        let Some(mut data) = m.data.take() else { continue };
        loop {
            let n = points(&data).min(room);
            current.push(Metric { data: Some(take(&mut data, n)), ..m.clone() });
            room -= n;
            if room == 0 {
                out.push(wrap(std::mem::take(&mut current)));
                room = max_points;
            }
            if points(&data) == 0 {
                break;
            }
        }
    }
    if !current.is_empty() || out.is_empty() {
        out.push(wrap(current));
    }
    out
}

/// The `synthetic_slo_*` gauges of `/metrics`, stamped with the evaluation's time.
fn slo_gauges(eval: &Evaluation) -> Vec<Metric> {
    let at = nanos(eval.at_ms);
    type Rows = Vec<(Vec<KeyValue>, f64)>;
    let (mut objective, mut ratio, mut burn, mut events): (Rows, Rows, Rows, Rows) = Default::default();
    let (mut remaining, mut tte, mut firing): (Rows, Rows, Rows) = Default::default();
    for s in &eval.statuses {
        let scope = || vec![kv("slo", &s.scope.slo), kv("journey", &s.scope.journey), kv("region", &s.scope.region)];
        objective.push((scope(), s.objective));
        for w in s.windows.iter().chain(std::iter::once(&s.period)) {
            let mut l = scope();
            l.push(kv("window", &w.window));
            events.push((l.clone(), w.events as f64));
            // Undefined without events: no point, as on /metrics (not zero).
            if let (Some(r), Some(b)) = (w.error_ratio, w.burn_rate) {
                ratio.push((l.clone(), r));
                burn.push((l, b));
            }
        }
        if let Some(r) = s.error_budget_remaining {
            remaining.push((scope(), r));
        }
        if let Some(t) = s.time_to_exhaustion_s {
            tte.push((scope(), t));
        }
        for sev in [Severity::Page, Severity::Ticket] {
            let mut l = scope();
            l.push(kv("severity", sev.as_str()));
            firing.push((l, if s.firing.contains(&sev) { 1.0 } else { 0.0 }));
        }
    }
    let gauge = |name: &str, description: &str, unit: &str, rows: Rows| {
        (!rows.is_empty()).then(|| {
            let data_points = rows
                .into_iter()
                .map(|(attributes, v)| NumberDataPoint {
                    attributes,
                    time_unix_nano: at,
                    value: Some(Value::AsDouble(v)),
                    ..NumberDataPoint::default()
                })
                .collect();
            metric(name, description, unit, Data::Gauge(Gauge { data_points }))
        })
    };
    [
        gauge("synthetic_slo_objective_ratio", "The SLO's objective, as a ratio", "1", objective),
        gauge("synthetic_slo_error_ratio", "Bad events / events in the window (absent without events)", "1", ratio),
        gauge("synthetic_slo_burn_rate", "Error ratio / error budget in the window (absent without events)", "", burn),
        gauge("synthetic_slo_window_events", "Events in the window", "{event}", events),
        gauge(
            "synthetic_slo_error_budget_remaining_ratio",
            "1 - bad/(budget x events) over the period",
            "1",
            remaining,
        ),
        gauge(
            "synthetic_slo_time_to_exhaustion_seconds",
            "Time until the budget is spent at the 1h burn rate",
            "s",
            tte,
        ),
        gauge("synthetic_slo_alert_firing", "1 while the multi-window burn-rate alert fires", "", firing),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::slo::{
        engine::{Engine, SeriesEvent},
        export::SloMetrics,
        spec::bundled,
    };

    fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
        attrs.iter().find(|a| a.key == key).and_then(|a| match &a.value.as_ref()?.value {
            Some(any_value::Value::StringValue(s)) => Some(s.as_str()),
            _ => None,
        })
    }

    #[test]
    fn mirrors_the_prometheus_families() {
        let (m, statuses) = crate::slo::export::tests::three_checkouts();
        let eval = Evaluation { at_ms: 60_000, statuses, firing: vec![] };
        let req = build(&m.journey_snapshot(), &eval, Times { start_ms: 1_000, now_ms: 61_000 });
        // It survives the wire.
        let req = ExportMetricsServiceRequest::decode(req.encode_to_vec().as_slice()).unwrap();
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let find = |n: &str| metrics.iter().find(|m| m.name == n);

        let Some(Data::Histogram(hist)) = &find("synthetic_journey_duration_seconds").unwrap().data else { panic!() };
        let p = &hist.data_points[0];
        assert_eq!(hist.aggregation_temporality, AggregationTemporality::Cumulative as i32);
        assert_eq!(p.explicit_bounds, m.edges());
        assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1);
        assert_eq!(p.count, 3);
        let under_2s: u64 =
            p.explicit_bounds.iter().zip(&p.bucket_counts).filter(|(b, _)| **b <= 2.0).map(|x| x.1).sum();
        assert_eq!(under_2s, 2, "the /metrics le=\"2.0\" bucket says 2");
        assert_eq!((p.start_time_unix_nano, p.time_unix_nano), (1_000_000_000, 61_000_000_000));

        let Some(Data::Sum(runs)) = &find("synthetic_journey_runs").unwrap().data else { panic!() };
        assert!(runs.is_monotonic);
        let ok = runs.data_points.iter().find(|p| attr(&p.attributes, "outcome") == Some("ok")).unwrap();
        assert_eq!(ok.value, Some(Value::AsInt(3)));
        assert_eq!(runs.data_points.len(), report::OUTCOMES.len(), "every outcome starts at 0 together");

        let Some(Data::Gauge(burn)) = &find("synthetic_slo_burn_rate").unwrap().data else { panic!() };
        let five = burn
            .data_points
            .iter()
            .find(|p| {
                attr(&p.attributes, "slo") == Some("checkout-latency")
                    && attr(&p.attributes, "region") == Some("nairobi")
                    && attr(&p.attributes, "window") == Some("5m")
            })
            .unwrap();
        let want = eval.statuses.iter().find(|s| s.scope.slo == "checkout-latency" && s.scope.region == "nairobi");
        assert_eq!(five.value, Some(Value::AsDouble(want.unwrap().burn_rate(crate::slo::windows::W5M).unwrap())));
        assert_eq!(five.time_unix_nano, 60_000_000_000);
        assert!(find("synthetic_slo_alert_firing").is_some());
        assert!(
            !burn.data_points.iter().any(|p| attr(&p.attributes, "slo") == Some("checkout-availability")),
            "no events, no burn rate"
        );
    }

    #[test]
    fn payment_points_carry_rail_and_reason_attributes() {
        let m = SloMetrics::new(&bundled());
        let mut h = report::SparseHistogram::new();
        h.record_n(1_500_000, 2);
        m.record(&testkit::reports::pay_key("checkout-mpesa-tz", "pay", "ok", "dar", "mpesa-tz", "INS-0"), 2, &h);
        let eval = Evaluation { at_ms: 60_000, statuses: vec![], firing: vec![] };
        let req = build(&m.journey_snapshot(), &eval, Times { start_ms: 0, now_ms: 60_000 });
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let find = |n: &str| metrics.iter().find(|m| m.name == n).unwrap();
        let Some(Data::Sum(runs)) = &find("synthetic_journey_runs").data else { panic!() };
        let ok = runs.data_points.iter().find(|p| attr(&p.attributes, "reason") == Some("INS-0")).unwrap();
        assert_eq!((attr(&ok.attributes, "rail"), attr(&ok.attributes, "outcome")), (Some("mpesa-tz"), Some("ok")));
        assert_eq!(ok.value, Some(Value::AsInt(2)));
        let zero = runs.data_points.iter().find(|p| attr(&p.attributes, "outcome") == Some("timeout")).unwrap();
        assert_eq!((attr(&zero.attributes, "rail"), attr(&zero.attributes, "reason")), (Some("mpesa-tz"), None));
        let Some(Data::Histogram(d)) = &find("synthetic_journey_duration_seconds").data else { panic!() };
        assert_eq!(attr(&d.data_points[0].attributes, "rail"), Some("mpesa-tz"));
        assert_eq!(attr(&d.data_points[0].attributes, "reason"), None, "durations are by rail, not by code");
    }

    #[test]
    fn large_pushes_are_split_without_losing_a_point() {
        let slos = bundled();
        let m = SloMetrics::new(&slos);
        let mut e = Engine::new(slos);
        let h = report::SparseHistogram::new();
        for j in ["checkout-mpesa", "ussd-balance", "mpesa-stk-push"] {
            for r in ["nairobi", "kampala", "dar"] {
                m.record(&testkit::reports::key(j, "", "gateway_error", r), 1, &h);
                e.record(&SeriesEvent {
                    journey: j,
                    step: "",
                    outcome: "gateway_error",
                    region: r,
                    rail: "",
                    count: 1,
                    histogram: &h,
                    at_ms: 60_000,
                });
            }
        }
        let eval = Evaluation { at_ms: 60_000, statuses: e.evaluate(60_000).0, firing: vec![] };
        let whole = build(&m.journey_snapshot(), &eval, Times { start_ms: 0, now_ms: 60_000 });
        // Every point with its metric's name, in order.
        let flat = |reqs: &[ExportMetricsServiceRequest]| -> Vec<(String, Vec<u8>)> {
            use prost::Message;
            let mut out = Vec::new();
            for m in reqs.iter().flat_map(|r| &r.resource_metrics[0].scope_metrics[0].metrics) {
                let mut d = m.data.clone().unwrap();
                while points(&d) > 0 {
                    let one = Metric { data: Some(take(&mut d, 1)), ..Metric::default() };
                    out.push((m.name.clone(), one.encode_to_vec()));
                }
            }
            out
        };
        let total: usize =
            whole.resource_metrics[0].scope_metrics[0].metrics.iter().map(|m| points(m.data.as_ref().unwrap())).sum();
        assert!(total > 100, "{total}");
        let parts = split(whole.clone(), 37);
        assert_eq!(parts.len(), total.div_ceil(37));
        for p in &parts {
            let n: usize =
                p.resource_metrics[0].scope_metrics[0].metrics.iter().map(|m| points(m.data.as_ref().unwrap())).sum();
            assert!(n <= 37 && n > 0);
            assert_eq!(p.resource_metrics[0].resource, whole.resource_metrics[0].resource);
        }
        assert_eq!(flat(&parts), flat(std::slice::from_ref(&whole)), "the same points, in the same order");
        assert_eq!(split(whole.clone(), 1_000_000), vec![whole]);
    }

    #[test]
    fn nothing_measured_yet_is_an_empty_scope() {
        let req = build(&JourneySnapshot::default(), &Evaluation::default(), Times { start_ms: 0, now_ms: 0 });
        assert!(req.resource_metrics[0].scope_metrics[0].metrics.is_empty());
        let res = req.resource_metrics[0].resource.as_ref().unwrap();
        assert_eq!(attr(&res.attributes, "service.name"), Some(SERVICE_NAME));
    }
}
