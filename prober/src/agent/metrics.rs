//! The agent's own metrics (`/metrics`, OpenMetrics text via prometheus-client).
//!
//! Names start with `prober_`; the SLO series (`synthetic_*`) are the aggregator's. Journey and
//! outcome labels only: no phone numbers, tokens or URLs ever become labels.

use std::sync::atomic::AtomicU64;

use parking_lot::Mutex;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tokio::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub journey: String,
    pub profile: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JourneyLabels {
    pub journey: String,
    pub profile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SkipLabels {
    pub journey: String,
    pub profile: String,
    pub reason: String,
}

/// One modem (at most `report::MAX_RADIOS`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RadioLabels {
    pub modem: String,
    pub operator: String,
    pub access: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// Bucket edges (seconds) for run durations: the SLO thresholds (docs/slo.md §11: 2 s checkout,
/// 3 s USSD) are edges.
pub const DURATION_BUCKETS: [f64; 14] = [0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Every metric of the agent.
pub struct Metrics {
    registry: Registry,
    pub runs: Family<RunLabels, Counter>,
    pub run_duration: Family<JourneyLabels, Histogram, fn() -> Histogram>,
    pub runs_skipped: Family<SkipLabels, Counter>,
    pub runs_in_flight: Gauge,
    pub journeys: Gauge,
    pub reports_created: Counter,
    pub report_sends: Counter,
    pub reports_acked: Counter,
    pub reports_duplicate: Counter,
    pub reports_rejected: Counter,
    pub send_failures: Family<ReasonLabels, Counter>,
    pub outbox_backlog: Gauge,
    pub outbox_bytes: Gauge,
    pub outbox_dropped: Counter,
    pub outbox_write_errors: Counter,
    pub journal_write_errors: Counter,
    pub journal_recovered_runs: Counter,
    pub config_reloads: Family<ReasonLabels, Counter>,
    pub radio_signal: Family<RadioLabels, Gauge>,
    pub radio_registered: Family<RadioLabels, Gauge>,
    pub radio_sim_ready: Family<RadioLabels, Gauge>,
    pub radio_up: Family<RadioLabels, Gauge>,
    last_send_age: Gauge<f64, AtomicU64>,
    last_ack: Mutex<Option<Instant>>,
    started: Instant,
    uptime: Gauge<f64, AtomicU64>,
    /// The `/metrics` and Daraja callback listeners' bounds: `prober_connections_refused_total`,
    /// `…_closed_total`, `prober_requests_refused_total`, `prober_connections_open` (see httpserve).
    pub listeners: std::sync::Arc<httpserve::ServeMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            runs: Family::default(),
            run_duration: Family::new_with_constructor(duration_histogram),
            runs_skipped: Family::default(),
            runs_in_flight: Gauge::default(),
            journeys: Gauge::default(),
            reports_created: Counter::default(),
            report_sends: Counter::default(),
            reports_acked: Counter::default(),
            reports_duplicate: Counter::default(),
            reports_rejected: Counter::default(),
            send_failures: Family::default(),
            outbox_backlog: Gauge::default(),
            outbox_bytes: Gauge::default(),
            outbox_dropped: Counter::default(),
            outbox_write_errors: Counter::default(),
            journal_write_errors: Counter::default(),
            journal_recovered_runs: Counter::default(),
            config_reloads: Family::default(),
            radio_signal: Family::default(),
            radio_registered: Family::default(),
            radio_sim_ready: Family::default(),
            radio_up: Family::default(),
            last_send_age: Gauge::default(),
            last_ack: Mutex::new(None),
            started: Instant::now(),
            uptime: Gauge::default(),
            listeners: Default::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        httpserve::register_metrics!(r, m, {
            runs: "prober_runs", "Journey runs finished, by outcome";
            run_duration: "prober_run_duration_seconds", "Duration of finished journey runs";
            runs_skipped: "prober_runs_skipped", "Scheduled runs not started: overlap (previous run still going), concurrency (no slot before the next tick), late";
            runs_in_flight: "prober_runs_in_flight", "Journey runs going on now";
            journeys: "prober_journeys", "Journeys configured";
            reports_created: "prober_reports_created", "Reports closed and written to the outbox";
            report_sends: "prober_report_sends", "Attempts to send a report";
            reports_acked: "prober_reports_acked", "Reports the aggregator acknowledged (stored or duplicate)";
            reports_duplicate: "prober_reports_duplicate", "Acknowledgements that said duplicate (a retry of a stored report)";
            reports_rejected: "prober_reports_rejected", "Reports the aggregator refused (moved to the outbox's rejected/)";
            send_failures: "prober_report_send_failures", "Send attempts that will be retried, by reason";
            outbox_backlog: "prober_outbox_backlog_reports", "Reports waiting in the outbox";
            outbox_bytes: "prober_outbox_bytes", "Bytes waiting in the outbox";
            outbox_dropped: "prober_outbox_dropped", "Reports dropped by the outbox bounds (size, age)";
            outbox_write_errors: "prober_outbox_write_errors", "Reports that could not be written to the outbox (lost)";
            journal_write_errors: "prober_journal_write_errors", "Finished runs that could not be journaled (counted in memory only: a crash before the report loses them)";
            journal_recovered_runs: "prober_journal_recovered_runs", "Finished runs rebuilt from the journal at start-up (the previous process died before their report)";
            config_reloads: "prober_config_reloads", "SIGHUP reloads, by result";
            radio_signal: "prober_radio_signal_dbm", "The modem's received signal (dBm), from the last reading; absent when the modem could not tell";
            radio_registered: "prober_radio_registered", "1 when the modem is registered (home or roaming), from the last reading";
            radio_sim_ready: "prober_radio_sim_ready", "1 when the modem's SIM is ready (no PIN or PUK wanted), from the last reading";
            radio_up: "prober_radio_up", "1 when the modem can dial: answered, SIM ready, registered, hears the network";
            last_send_age: "prober_last_successful_send_age_seconds", "Seconds since the aggregator last acknowledged a report (since start when it never did)";
            uptime: "prober_uptime_seconds", "Seconds since the agent started";
        });
        m.listeners.register(r, "prober");
        Metrics { registry, ..m }
    }

    /// Notes an acknowledgement now.
    pub fn acked(&self) {
        *self.last_ack.lock() = Some(Instant::now());
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let now = Instant::now();
        let since = self.last_ack.lock().unwrap_or(self.started);
        self.last_send_age.set(now.saturating_duration_since(since).as_secs_f64());
        self.uptime.set(now.saturating_duration_since(self.started).as_secs_f64());
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_names_and_labels_operators_query() {
        let m = Metrics::new();
        let l = RunLabels { journey: "ussd-balance".into(), profile: "ea-3g".into(), outcome: "ok".into() };
        m.runs.get_or_create(&l).inc();
        m.run_duration
            .get_or_create(&JourneyLabels { journey: "ussd-balance".into(), profile: "ea-3g".into() })
            .observe(1.7);
        m.outbox_backlog.set(3);
        let text = m.encode();
        for want in [
            r#"prober_runs_total{journey="ussd-balance",profile="ea-3g",outcome="ok"} 1"#,
            r#"prober_run_duration_seconds_bucket{le="2.0",journey="ussd-balance",profile="ea-3g"} 1"#,
            "prober_outbox_backlog_reports 3",
            "prober_last_successful_send_age_seconds ",
            "# EOF",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
