//! The SLO side of `/metrics`: raw journey counters and the engine's gauges, in the names of
//! docs/slo.md §8 (no colons: those are for recording rules).
//!
//! - `synthetic_journey_runs_total{journey,step,region,outcome[,rail][,reason]}`: cumulative runs.
//! - `synthetic_journey_duration_seconds{journey,step,region[,rail]}`: successful (`ok`) runs, with
//!   every SLO latency threshold as a bucket edge, counted by the engine's own rule
//!   ([`count_within`](super::engine::count_within)) so Prometheus sees the same numbers.
//!
//!   `rail` (and, on the run counter, `reason`) appear on payment steps' series only: a label
//!   whose value is empty is left out, as Prometheus treats an empty label as absent anyway. The
//!   prober keeps `reason` to its rail's known codes plus `unknown`, so it adds a bounded number of
//!   series per rail.
//! - `synthetic_slo_*{slo,journey,region[,window|severity]}`: objective, error ratio, burn rate,
//!   events per window, remaining budget, time to exhaustion, alert state. A window without events
//!   exports no ratio (undefined, not zero).

use std::{collections::BTreeMap, sync::Arc};

use parking_lot::RwLock;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};
use report::SparseHistogram;

use super::{
    engine::{ScopeStatus, counts_within},
    spec::{Sli, Slo},
    windows::Severity,
};

/// Bucket edges every duration histogram has, in seconds, besides the SLO thresholds.
pub const DEFAULT_EDGES: [f64; 12] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 120.0];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RunKey {
    journey: String,
    step: String,
    region: String,
    rail: String,
    outcome: String,
    reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct DurKey {
    journey: String,
    step: String,
    region: String,
    rail: String,
}

#[derive(Debug, Clone, Default)]
struct Buckets {
    /// Cumulative count at or below each edge.
    le: Vec<u64>,
    count: u64,
    sum_s: f64,
}

/// One report series, ready to count: its keys, runs, and for `ok` runs the cumulative counts
/// at the bucket edges and the sum of durations in seconds.
struct Prepared {
    dk: DurKey,
    rk: RunKey,
    count: u64,
    ok: Option<(Vec<u64>, f64)>,
}

fn run_key(dk: &DurKey, outcome: &str, reason: &str) -> RunKey {
    RunKey {
        journey: dk.journey.clone(),
        step: dk.step.clone(),
        region: dk.region.clone(),
        rail: dk.rail.clone(),
        outcome: outcome.into(),
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Default)]
struct State {
    runs: BTreeMap<RunKey, u64>,
    durations: BTreeMap<DurKey, Buckets>,
    statuses: Vec<ScopeStatus>,
}

/// The collector behind `/metrics`' SLO families. Clone it freely; all clones share state.
#[derive(Debug, Clone)]
pub struct SloMetrics {
    edges: Arc<Vec<f64>>,
    edges_us: Arc<Vec<u64>>,
    state: Arc<RwLock<State>>,
}

impl SloMetrics {
    /// Buckets at the default edges plus every latency threshold of `slos`.
    pub fn new(slos: &[Slo]) -> SloMetrics {
        let mut edges: Vec<f64> = DEFAULT_EDGES.to_vec();
        for s in slos {
            if let Sli::Latency { threshold } = s.sli {
                edges.push(threshold.as_secs_f64());
            }
        }
        edges.sort_by(f64::total_cmp);
        edges.dedup();
        let edges_us = edges.iter().map(|e| (e * 1e6).round() as u64).collect();
        SloMetrics {
            edges: Arc::new(edges),
            edges_us: Arc::new(edges_us),
            state: Arc::new(RwLock::new(State::default())),
        }
    }

    /// The bucket edges, in seconds.
    pub fn edges(&self) -> &[f64] {
        &self.edges
    }

    /// Counts one report series.
    pub fn record(&self, key: &report::SeriesKey, count: u64, h: &SparseHistogram) {
        self.record_all([(key, count, h)]);
    }

    /// Counts every series of one report under one write lock. The keys and bucket counts are
    /// built before the lock is taken, so ingest holds it only for the map updates.
    pub fn record_all<'a>(&self, series: impl IntoIterator<Item = (&'a report::SeriesKey, u64, &'a SparseHistogram)>) {
        let prepared: Vec<Prepared> = series
            .into_iter()
            .map(|(key, count, h)| {
                let dk = DurKey {
                    journey: key.journey.clone(),
                    step: key.step.clone(),
                    region: key.region.clone(),
                    rail: key.rail.clone(),
                };
                let rk = run_key(&dk, &key.outcome, &key.reason);
                let ok =
                    (key.outcome == "ok").then(|| (counts_within(h, &self.edges_us), h.mean() * h.len() as f64 / 1e6));
                Prepared { dk, rk, count, ok }
            })
            .collect();
        let mut st = self.state.write();
        for Prepared { dk, rk, count, ok } in prepared {
            if !st.durations.contains_key(&dk) {
                // Every outcome of a new (journey, step, region, rail) starts at 0 together, so
                // Prometheus' rate() extrapolates numerator and denominator alike (docs/slo.md §10,
                // pitfall 4). Those zeros carry no reason: the codes to come are not known yet.
                for o in report::OUTCOMES {
                    st.runs.insert(run_key(&dk, o, ""), 0);
                }
                st.durations.insert(dk.clone(), Buckets { le: vec![0; self.edges.len()], ..Buckets::default() });
            }
            // Monotonic counters saturate rather than wrap. Ingest bounds every series of a report
            // (`ingest.max_runs_per_second` × its interval), so 2^64 runs are out of reach.
            let runs = st.runs.entry(rk).or_default();
            *runs = runs.saturating_add(count);
            if let Some((within, sum_s)) = ok {
                let b = st.durations.get_mut(&dk).expect("inserted above");
                for (i, n) in within.into_iter().enumerate() {
                    b.le[i] = b.le[i].saturating_add(n.min(count));
                }
                b.count = b.count.saturating_add(count);
                b.sum_s += sum_s;
            }
        }
    }

    /// Publishes the engine's latest evaluation.
    pub fn set_statuses(&self, statuses: Vec<ScopeStatus>) {
        self.state.write().statuses = statuses;
    }

    /// The journey counters and duration buckets `/metrics` shows, copied out under one read lock
    /// (for the OTLP exporter, so both exports show the same numbers without counting twice).
    pub fn journey_snapshot(&self) -> JourneySnapshot {
        let st = self.state.read();
        JourneySnapshot {
            edges: self.edges.to_vec(),
            runs: st
                .runs
                .iter()
                .map(|(k, v)| RunCount {
                    journey: k.journey.clone(),
                    step: k.step.clone(),
                    region: k.region.clone(),
                    rail: k.rail.clone(),
                    outcome: k.outcome.clone(),
                    reason: k.reason.clone(),
                    count: *v,
                })
                .collect(),
            durations: st
                .durations
                .iter()
                .map(|(k, b)| DurationBuckets {
                    journey: k.journey.clone(),
                    step: k.step.clone(),
                    region: k.region.clone(),
                    rail: k.rail.clone(),
                    cumulative: b.le.clone(),
                    count: b.count,
                    sum_s: b.sum_s,
                })
                .collect(),
        }
    }
}

/// The journey families of `/metrics` at one instant (see [`SloMetrics::journey_snapshot`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JourneySnapshot {
    /// Bucket edges in seconds, ascending (without +Inf).
    pub edges: Vec<f64>,
    pub runs: Vec<RunCount>,
    pub durations: Vec<DurationBuckets>,
}

/// `synthetic_journey_runs_total` of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCount {
    pub journey: String,
    pub step: String,
    pub region: String,
    /// Empty except on payment steps.
    pub rail: String,
    pub outcome: String,
    /// Empty except on payment steps that ended with a provider code.
    pub reason: String,
    pub count: u64,
}

impl RunCount {
    /// Its labels, `rail` and `reason` only when set.
    pub fn labels(&self) -> Vec<(&'static str, &str)> {
        let mut l = vec![("journey", self.journey.as_str()), ("step", &self.step), ("region", &self.region)];
        if !self.rail.is_empty() {
            l.push(("rail", &self.rail));
        }
        l.push(("outcome", &self.outcome));
        if !self.reason.is_empty() {
            l.push(("reason", &self.reason));
        }
        l
    }
}

/// `synthetic_journey_duration_seconds` of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct DurationBuckets {
    pub journey: String,
    pub step: String,
    pub region: String,
    /// Empty except on payment steps.
    pub rail: String,
    /// Runs at or below each edge (cumulative, as Prometheus' `le`).
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_s: f64,
}

type Labels = Vec<(&'static str, String)>;

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Labels, f64)],
) -> Result<(), std::fmt::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for SloMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        // A copy, so the lock is held for the copy only: formatting a large fleet's families takes
        // far longer, and ingest's `record_all` waits for a writer's lock on a runtime thread.
        let st = self.state.read().clone();
        self.encode_journeys(&st, &mut encoder)?;
        encode_slos(&st.statuses, &mut encoder)
    }
}

impl SloMetrics {
    /// `synthetic_journey_runs` and `synthetic_journey_duration_seconds`.
    fn encode_journeys(&self, st: &State, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        {
            let mut m = encoder.encode_descriptor(
                "synthetic_journey_runs",
                "Journey and step runs measured by the fleet, by outcome (step=\"\" is the whole journey)",
                None,
                MetricType::Counter,
            )?;
            for (k, v) in &st.runs {
                let mut labels: Labels =
                    vec![("journey", k.journey.clone()), ("step", k.step.clone()), ("region", k.region.clone())];
                if !k.rail.is_empty() {
                    labels.push(("rail", k.rail.clone()));
                }
                labels.push(("outcome", k.outcome.clone()));
                if !k.reason.is_empty() {
                    labels.push(("reason", k.reason.clone()));
                }
                ConstCounter::new(*v).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "synthetic_journey_duration_seconds",
                "Durations of successful runs; every SLO latency threshold is a bucket edge",
                None,
                MetricType::Histogram,
            )?;
            for (k, b) in &st.durations {
                let mut labels: Labels =
                    vec![("journey", k.journey.clone()), ("step", k.step.clone()), ("region", k.region.clone())];
                if !k.rail.is_empty() {
                    labels.push(("rail", k.rail.clone()));
                }
                let mut prev = 0;
                let mut buckets: Vec<(f64, u64)> = self
                    .edges
                    .iter()
                    .zip(&b.le)
                    .map(|(e, c)| {
                        let per = c - prev;
                        prev = *c;
                        (*e, per)
                    })
                    .collect();
                buckets.push((f64::INFINITY, b.count - prev));
                m.encode_family(&labels)?.encode_histogram::<Labels>(b.sum_s, b.count, &buckets, None)?;
            }
        }
        Ok(())
    }
}

/// The `synthetic_slo_*` gauges of every SLO scope.
fn encode_slos(statuses: &[ScopeStatus], encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
    let scope = |s: &ScopeStatus| -> Labels {
        vec![("slo", s.scope.slo.clone()), ("journey", s.scope.journey.clone()), ("region", s.scope.region.clone())]
    };
    let mut objective = Vec::new();
    let mut ratio = Vec::new();
    let mut burn = Vec::new();
    let mut events = Vec::new();
    let mut remaining = Vec::new();
    let mut tte = Vec::new();
    let mut firing = Vec::new();
    for s in statuses {
        objective.push((scope(s), s.objective));
        for w in s.windows.iter().chain(std::iter::once(&s.period)) {
            let mut l = scope(s);
            l.push(("window", w.window.clone()));
            events.push((l.clone(), w.events as f64));
            if let (Some(r), Some(b)) = (w.error_ratio, w.burn_rate) {
                ratio.push((l.clone(), r));
                burn.push((l, b));
            }
        }
        if let Some(r) = s.error_budget_remaining {
            remaining.push((scope(s), r));
        }
        if let Some(t) = s.time_to_exhaustion_s {
            tte.push((scope(s), t));
        }
        for sev in [Severity::Page, Severity::Ticket] {
            let mut l = scope(s);
            l.push(("severity", sev.as_str().to_owned()));
            firing.push((l, if s.firing.contains(&sev) { 1.0 } else { 0.0 }));
        }
    }
    gauge(encoder, "synthetic_slo_objective_ratio", "The SLO's objective, as a ratio", &objective)?;
    gauge(encoder, "synthetic_slo_error_ratio", "Bad events / events in the window (absent without events)", &ratio)?;
    gauge(
        encoder,
        "synthetic_slo_burn_rate",
        "Error ratio / error budget in the window (absent without events)",
        &burn,
    )?;
    gauge(encoder, "synthetic_slo_window_events", "Events in the window", &events)?;
    gauge(
        encoder,
        "synthetic_slo_error_budget_remaining_ratio",
        "1 - bad/(budget x events) over the period",
        &remaining,
    )?;
    gauge(
        encoder,
        "synthetic_slo_time_to_exhaustion_seconds",
        "Time until the budget is spent at the 1h burn rate",
        &tte,
    )?;
    gauge(encoder, "synthetic_slo_alert_firing", "1 while the multi-window burn-rate alert fires", &firing)?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use prometheus_client::{encoding::text::encode, registry::Registry};

    use super::*;
    use crate::slo::{
        engine::{Engine, SeriesEvent},
        spec::bundled,
    };

    /// The bundled SLOs' metrics after three Nairobi checkouts (0.4 s, 1.9 s, 2.5 s) in the first
    /// minute, and the engine's statuses at its end (shared with the OTLP encoder's tests).
    pub(crate) fn three_checkouts() -> (SloMetrics, Vec<ScopeStatus>) {
        let slos = bundled();
        let m = SloMetrics::new(&slos);
        let mut h = report::new_histogram();
        for v in [400_000u64, 1_900_000, 2_500_000] {
            h.record(v).unwrap();
        }
        let h = report::SparseHistogram::from(&h);
        m.record(&testkit::reports::key("checkout-mpesa", "checkout", "ok", "nairobi"), 3, &h);
        let mut e = Engine::new(slos);
        e.record(&SeriesEvent {
            journey: "checkout-mpesa",
            step: "checkout",
            outcome: "ok",
            region: "nairobi",
            rail: "",
            count: 3,
            histogram: &h,
            at_ms: 60_000,
        });
        (m, e.evaluate(60_000).0)
    }

    #[test]
    fn exposition_has_the_design_names_and_threshold_buckets() {
        let (m, statuses) = three_checkouts();
        assert!(m.edges().contains(&2.0) && m.edges().contains(&3.0));
        m.record(
            &testkit::reports::key("checkout-mpesa", "", "gateway_error", "nairobi"),
            1,
            &report::SparseHistogram::new(),
        );
        m.set_statuses(statuses);

        let mut reg = Registry::default();
        reg.register_collector(Box::new(m));
        let mut text = String::new();
        encode(&mut text, &reg).unwrap();
        assert!(text.contains(r#"synthetic_journey_runs_total{journey="checkout-mpesa",step="",region="nairobi",outcome="gateway_error"} 1"#), "{text}");
        assert!(text.contains(r#"synthetic_journey_duration_seconds_bucket{le="2.0",journey="checkout-mpesa",step="checkout",region="nairobi"} 2"#), "{text}");
        assert!(text.contains(
            r#"synthetic_journey_duration_seconds_count{journey="checkout-mpesa",step="checkout",region="nairobi"} 3"#
        ));
        assert!(text.contains(r#"synthetic_slo_burn_rate{slo="checkout-latency",journey="checkout-mpesa",region="nairobi",window="5m"}"#), "{text}");
        assert!(text.contains(r#"synthetic_slo_alert_firing{slo="checkout-latency",journey="checkout-mpesa",region="all",severity="page"}"#));
        assert!(!text.contains(r#"synthetic_slo_burn_rate{slo="checkout-availability""#), "no events, no burn rate");
    }

    #[test]
    fn payment_series_carry_rail_and_reason_and_other_series_do_not() {
        let m = SloMetrics::new(&bundled());
        let one = |v: u64| {
            let mut h = report::SparseHistogram::new();
            h.record_n(v, 1);
            h
        };
        let pay = |outcome: &str, reason: &str| {
            testkit::reports::pay_key("checkout-momo", "pay", outcome, "kampala", "momo", reason)
        };
        m.record(&pay("ok", "SUCCESSFUL"), 1, &one(900_000));
        m.record(&pay("business_error", "APPROVAL_REJECTED"), 1, &one(4_000_000));
        m.record(&pay("timeout", ""), 1, &one(60_000_000));
        m.record(&testkit::reports::key("checkout-momo", "cart", "ok", "kampala"), 1, &one(100_000));
        let mut reg = Registry::default();
        reg.register_collector(Box::new(m.clone()));
        let mut text = String::new();
        encode(&mut text, &reg).unwrap();
        let has = |line: &str| assert!(text.contains(line), "{line} missing from\n{text}");
        has(
            r#"synthetic_journey_runs_total{journey="checkout-momo",step="pay",region="kampala",rail="momo",outcome="ok",reason="SUCCESSFUL"} 1"#,
        );
        has(
            r#"synthetic_journey_runs_total{journey="checkout-momo",step="pay",region="kampala",rail="momo",outcome="business_error",reason="APPROVAL_REJECTED"} 1"#,
        );
        has(
            r#"synthetic_journey_runs_total{journey="checkout-momo",step="pay",region="kampala",rail="momo",outcome="timeout"} 1"#,
        );
        // The rail's outcomes start at 0 together, without a reason.
        has(
            r#"synthetic_journey_runs_total{journey="checkout-momo",step="pay",region="kampala",rail="momo",outcome="gateway_error"} 0"#,
        );
        has(
            r#"synthetic_journey_duration_seconds_count{journey="checkout-momo",step="pay",region="kampala",rail="momo"} 1"#,
        );
        has(r#"synthetic_journey_runs_total{journey="checkout-momo",step="cart",region="kampala",outcome="ok"} 1"#);
        assert!(!text.contains(r#"step="cart",region="kampala",rail"#), "{text}");
        assert!(!text.contains(r#"reason="""#) && !text.contains(r#"rail="""#), "empty labels are left out:\n{text}");
        let snap = m.journey_snapshot();
        let ok = snap.runs.iter().find(|r| r.reason == "SUCCESSFUL").unwrap();
        assert_eq!(
            ok.labels(),
            [
                ("journey", "checkout-momo"),
                ("step", "pay"),
                ("region", "kampala"),
                ("rail", "momo"),
                ("outcome", "ok"),
                ("reason", "SUCCESSFUL")
            ]
        );
    }
}
