//! Report values and wire bodies for tests: series keys, series from durations, and a builder for
//! the envelope. Durations are in µs, as in the fleet's histograms.

use report::{Heartbeat, Report, Series, SeriesKey, SparseHistogram};

/// The network profile of [`key`]'s series.
pub const PROFILE: &str = "ea-3g";
/// Length of a [`ReportBuilder`]'s interval unless set: the fleet's default reporting interval.
pub const INTERVAL_MS: i64 = 15_000;

/// A series key on the `ea-3g` profile; `step` is empty for the journey-level series.
pub fn key(journey: &str, step: &str, outcome: &str, region: &str) -> SeriesKey {
    SeriesKey {
        journey: journey.into(),
        step: step.into(),
        outcome: outcome.into(),
        region: region.into(),
        profile: PROFILE.into(),
        rail: String::new(),
        reason: String::new(),
    }
}

/// A payment step's series key on the `ea-3g` profile: [`key`] with its `rail` and `reason`
/// (empty when the payment ended without a provider code).
pub fn pay_key(journey: &str, step: &str, outcome: &str, region: &str, rail: &str, reason: &str) -> SeriesKey {
    SeriesKey { rail: rail.into(), reason: reason.into(), ..key(journey, step, outcome, region) }
}

/// One run per value (µs).
pub fn series(key: SeriesKey, values_us: &[u64]) -> Series {
    let mut h = SparseHistogram::new();
    for v in values_us {
        h.record_n(*v, 1);
    }
    Series { key, count: values_us.len() as u64, histogram: h }
}

/// `n` runs of `value_us` each.
pub fn runs(key: SeriesKey, value_us: u64, n: u64) -> Series {
    let mut h = SparseHistogram::new();
    h.record_n(value_us, n);
    Series { key, count: n, histogram: h }
}

/// The aggregator tests' usual report: [`INTERVAL_MS`] ending (and sent) at `end_ms`, with a
/// heartbeat of a small backlog (2 waiting, 1 dropped) and version `test`.
pub fn interval(prober: &str, region: &str, seq: u64, end_ms: i64, series: Vec<Series>) -> Report {
    ReportBuilder::new(prober, region)
        .seq(seq)
        .ending_at(end_ms)
        .heartbeat(Heartbeat {
            outbox_backlog: 2,
            outbox_dropped_total: 1,
            version: "test".into(),
            ..Heartbeat::default()
        })
        .series(series)
        .build()
}

/// The wire JSON of `r`, to change in ways the Rust type cannot express.
pub fn wire(r: &Report) -> serde_json::Value {
    serde_json::from_slice(&report::encode(r)).expect("an encoded report is JSON")
}

/// A report, field by field. Unless set: seq 1, a [`INTERVAL_MS`] interval ending and sent at
/// 1 800 000 000 000 (a minute boundary), the default heartbeat, no series.
#[derive(Debug, Clone)]
pub struct ReportBuilder(Report);

impl ReportBuilder {
    pub fn new(prober: &str, region: &str) -> ReportBuilder {
        let end = 1_800_000_000_000;
        ReportBuilder(Report {
            prober: prober.into(),
            region: region.into(),
            seq: 1,
            interval_start_ms: end - INTERVAL_MS,
            interval_end_ms: end,
            sent_at_ms: end,
            run: None,
            heartbeat: Heartbeat::default(),
            series: Vec::new(),
        })
    }

    pub fn seq(mut self, seq: u64) -> Self {
        self.0.seq = seq;
        self
    }

    /// The interval ends, and the report is sent, at `end_ms`; its length stays.
    pub fn ending_at(mut self, end_ms: i64) -> Self {
        let len = self.0.interval_end_ms - self.0.interval_start_ms;
        self.0.interval_end_ms = end_ms;
        self.0.interval_start_ms = end_ms - len;
        self.0.sent_at_ms = end_ms;
        self
    }

    /// The interval is `len_ms` long, ending where it ended.
    pub fn lasting(mut self, len_ms: i64) -> Self {
        self.0.interval_start_ms = self.0.interval_end_ms - len_ms;
        self
    }

    /// Sent at `ms` (by the prober's clock), whenever the interval ended.
    pub fn sent_at(mut self, ms: i64) -> Self {
        self.0.sent_at_ms = ms;
        self
    }

    /// A load run's report (`prober load --report-to`).
    pub fn run(mut self, id: &str) -> Self {
        self.0.run = Some(id.into());
        self
    }

    pub fn heartbeat(mut self, h: Heartbeat) -> Self {
        self.0.heartbeat = h;
        self
    }

    /// Adds series.
    pub fn series(mut self, s: impl IntoIterator<Item = Series>) -> Self {
        self.0.series.extend(s);
        self
    }

    /// Adds one series.
    pub fn with(mut self, s: Series) -> Self {
        self.0.series.push(s);
        self
    }

    pub fn build(self) -> Report {
        self.0
    }

    /// The wire body (`report::encode`).
    pub fn encode(&self) -> Vec<u8> {
        report::encode(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_report_survives_the_wire() {
        let r = ReportBuilder::new("nbo-1", "nairobi")
            .seq(7)
            .lasting(60_000)
            .ending_at(1_700_000_060_000)
            .with(series(key("checkout", "", "ok", "nairobi"), &[1_000, 2_000]))
            .with(runs(key("checkout", "", "gateway_error", "nairobi"), 3_000_000, 4))
            .build();
        assert_eq!(
            (r.interval_start_ms, r.interval_end_ms, r.sent_at_ms),
            (1_700_000_000_000, 1_700_000_060_000, 1_700_000_060_000)
        );
        assert_eq!(r.series[1].count, 4);
        assert_eq!(report::decode(&report::encode(&r)).unwrap(), r);
        assert_eq!(wire(&r)["seq"], 7);
    }

    #[test]
    fn the_usual_interval_is_fifteen_seconds_with_a_small_backlog() {
        let r = interval("kla-1", "kampala", 3, 1_800_000_015_000, vec![]);
        assert_eq!(r.interval_end_ms - r.interval_start_ms, 15_000);
        assert_eq!((r.heartbeat.outbox_backlog, r.heartbeat.outbox_dropped_total), (2, 1));
    }
}
