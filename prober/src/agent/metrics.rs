//! The agent's own metrics (`/metrics`, OpenMetrics text via prometheus-client).
//!
//! Names start with `prober_`; the SLO series (`synthetic_*`) are the aggregator's. Journey,
//! outcome and destination-name labels only: no phone numbers, tokens or URLs ever become labels.
//!
//! Per destination (label `destination`, the configured name): the backlog in reports and bytes,
//! the oldest unacknowledged report's age, the last success (Unix seconds, 0 before the first),
//! sends, acknowledgements, duplicates, refusals, errors by class, and the reports the outbox's
//! bounds dropped before that destination had them. The same state feeds `/readyz`
//! ([`Metrics::destinations`]).

use std::{sync::atomic::AtomicU64, time::SystemTime};

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

/// One destination (an aggregator), by its configured name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestLabels {
    pub destination: String,
}

/// A destination and why an attempt to send to it failed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestReasonLabels {
    pub destination: String,
    pub reason: String,
}

/// A destination and the class of a failed attempt (a retried reason, or `rejected`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestClassLabels {
    pub destination: String,
    pub class: String,
}

/// What `/readyz` says about one destination.
#[derive(Clone, Debug, Default)]
pub struct DestStatus {
    pub name: String,
    /// Reports and bytes waiting for it.
    pub backlog: u64,
    pub bytes: u64,
    /// When the oldest report waiting for it was written.
    pub oldest: Option<SystemTime>,
    /// The agent's clock (Unix ms) at its last acknowledgement.
    pub last_success_ms: Option<i64>,
    last_ack: Option<Instant>,
    /// The class of its last failed attempt, and when (tokio's clock).
    pub last_error: Option<(&'static str, Instant)>,
}

impl DestStatus {
    /// Seconds the oldest waiting report has waited at `now` (0 when nothing waits).
    pub fn oldest_age_s(&self, now: SystemTime) -> f64 {
        self.oldest.map_or(0.0, |t| now.duration_since(t).map_or(0.0, |d| d.as_secs_f64()))
    }
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
    pub report_sends: Family<DestLabels, Counter>,
    pub reports_acked: Family<DestLabels, Counter>,
    pub reports_duplicate: Family<DestLabels, Counter>,
    pub reports_rejected: Family<DestLabels, Counter>,
    pub send_failures: Family<DestReasonLabels, Counter>,
    pub report_errors: Family<DestClassLabels, Counter>,
    pub outbox_backlog: Family<DestLabels, Gauge>,
    pub outbox_backlog_bytes: Family<DestLabels, Gauge>,
    /// The report files on disk (one copy of each, whoever waits for it).
    pub outbox_bytes: Gauge,
    pub outbox_dropped: Family<DestLabels, Counter>,
    outbox_oldest_age: Family<DestLabels, Gauge<f64, AtomicU64>>,
    last_success: Family<DestLabels, Gauge<f64, AtomicU64>>,
    pub outbox_write_errors: Counter,
    pub journal_write_errors: Counter,
    pub journal_recovered_runs: Counter,
    pub config_reloads: Family<ReasonLabels, Counter>,
    pub radio_signal: Family<RadioLabels, Gauge>,
    pub radio_registered: Family<RadioLabels, Gauge>,
    pub radio_sim_ready: Family<RadioLabels, Gauge>,
    pub radio_up: Family<RadioLabels, Gauge>,
    last_send_age: Family<DestLabels, Gauge<f64, AtomicU64>>,
    destinations: Mutex<Vec<DestStatus>>,
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
            report_sends: Family::default(),
            reports_acked: Family::default(),
            reports_duplicate: Family::default(),
            reports_rejected: Family::default(),
            send_failures: Family::default(),
            report_errors: Family::default(),
            outbox_backlog: Family::default(),
            outbox_backlog_bytes: Family::default(),
            outbox_bytes: Gauge::default(),
            outbox_dropped: Family::default(),
            outbox_oldest_age: Family::default(),
            last_success: Family::default(),
            outbox_write_errors: Counter::default(),
            journal_write_errors: Counter::default(),
            journal_recovered_runs: Counter::default(),
            config_reloads: Family::default(),
            radio_signal: Family::default(),
            radio_registered: Family::default(),
            radio_sim_ready: Family::default(),
            radio_up: Family::default(),
            last_send_age: Family::default(),
            destinations: Mutex::new(Vec::new()),
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
            report_sends: "prober_report_sends", "Attempts to send a report, per destination";
            reports_acked: "prober_reports_acked", "Reports the destination acknowledged (stored or duplicate)";
            reports_duplicate: "prober_reports_duplicate", "Acknowledgements that said duplicate (a retry of a stored report)";
            reports_rejected: "prober_reports_rejected", "Reports the destination refused (a copy kept in the outbox's rejected/)";
            send_failures: "prober_report_send_failures", "Send attempts that will be retried, by destination and reason";
            report_errors: "prober_report_errors", "Failed send attempts by destination and class: the retried reasons, and rejected";
            outbox_backlog: "prober_outbox_backlog_reports", "Reports waiting in the outbox for the destination";
            outbox_backlog_bytes: "prober_outbox_backlog_bytes", "Bytes of the reports waiting for the destination";
            outbox_bytes: "prober_outbox_bytes", "Bytes of the report files in the outbox (one copy each, whoever waits for it)";
            outbox_dropped: "prober_outbox_dropped", "Reports the outbox bounds (size, age) dropped before the destination had them";
            outbox_oldest_age: "prober_outbox_oldest_unacked_age_seconds", "Age of the oldest report waiting for the destination (0 when none waits)";
            last_success: "prober_report_last_success_timestamp_seconds", "When the destination last acknowledged a report (Unix seconds; 0 before the first)";
            outbox_write_errors: "prober_outbox_write_errors", "Reports that could not be written to the outbox (lost)";
            journal_write_errors: "prober_journal_write_errors", "Finished runs that could not be journaled (counted in memory only: a crash before the report loses them)";
            journal_recovered_runs: "prober_journal_recovered_runs", "Finished runs rebuilt from the journal at start-up (the previous process died before their report)";
            config_reloads: "prober_config_reloads", "SIGHUP reloads, by result";
            radio_signal: "prober_radio_signal_dbm", "The modem's received signal (dBm), from the last reading; absent when the modem could not tell";
            radio_registered: "prober_radio_registered", "1 when the modem is registered (home or roaming), from the last reading";
            radio_sim_ready: "prober_radio_sim_ready", "1 when the modem's SIM is ready (no PIN or PUK wanted), from the last reading";
            radio_up: "prober_radio_up", "1 when the modem can dial: answered, SIM ready, registered, hears the network";
            last_send_age: "prober_last_successful_send_age_seconds", "Seconds since the destination last acknowledged a report (since start when it never did)";
            uptime: "prober_uptime_seconds", "Seconds since the agent started";
        });
        m.listeners.register(r, "prober");
        Metrics { registry, ..m }
    }

    /// Declares the destinations (index = position): their series exist from the start, at 0.
    pub fn add_destinations(&self, names: &[String]) {
        let mut d = self.destinations.lock();
        for name in names {
            let l = dest(name);
            for f in [&self.report_sends, &self.reports_acked, &self.reports_duplicate, &self.reports_rejected] {
                let _ = f.get_or_create(&l);
            }
            let _ = self.outbox_dropped.get_or_create(&l);
            let _ = self.outbox_backlog.get_or_create(&l);
            let _ = self.outbox_backlog_bytes.get_or_create(&l);
            let _ = self.last_success.get_or_create(&l);
            d.push(DestStatus { name: name.clone(), ..Default::default() });
        }
    }

    /// The destinations' state, in order.
    pub fn destinations(&self) -> Vec<DestStatus> {
        self.destinations.lock().clone()
    }

    /// The `destination` label of destination `i`.
    pub fn dest_labels(&self, i: usize) -> DestLabels {
        dest(&self.destinations.lock()[i].name)
    }

    /// Destination `i`'s backlog now.
    pub fn backlog(&self, i: usize, reports: u64, bytes: u64, oldest: Option<SystemTime>) {
        let l = self.dest_labels(i);
        self.outbox_backlog.get_or_create(&l).set(reports as i64);
        self.outbox_backlog_bytes.get_or_create(&l).set(bytes as i64);
        let mut d = self.destinations.lock();
        (d[i].backlog, d[i].bytes, d[i].oldest) = (reports, bytes, oldest);
    }

    /// Destination `i` acknowledged a report now (`wall_ms` by the agent's clock).
    pub fn acked(&self, i: usize, wall_ms: i64) {
        let l = self.dest_labels(i);
        self.reports_acked.get_or_create(&l).inc();
        self.last_success.get_or_create(&l).set(wall_ms as f64 / 1000.0);
        let mut d = self.destinations.lock();
        (d[i].last_success_ms, d[i].last_ack) = (Some(wall_ms), Some(Instant::now()));
    }

    /// An attempt to send to destination `i` failed (`class`: a retried reason or `rejected`).
    pub fn failed(&self, i: usize, class: &'static str) {
        let l = self.dest_labels(i);
        self.report_errors.get_or_create(&DestClassLabels { destination: l.destination, class: class.into() }).inc();
        self.destinations.lock()[i].last_error = Some((class, Instant::now()));
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let now = Instant::now();
        let wall = SystemTime::now();
        for d in self.destinations.lock().iter() {
            let l = dest(&d.name);
            let since = d.last_ack.unwrap_or(self.started);
            self.last_send_age.get_or_create(&l).set(now.saturating_duration_since(since).as_secs_f64());
            self.outbox_oldest_age.get_or_create(&l).set(d.oldest_age_s(wall));
        }
        self.uptime.set(now.saturating_duration_since(self.started).as_secs_f64());
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

fn dest(name: &str) -> DestLabels {
    DestLabels { destination: name.to_owned() }
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
        m.add_destinations(&["aggregator-0".to_owned(), "aggregator-1".to_owned()]);
        m.backlog(1, 3, 300, Some(SystemTime::now()));
        m.acked(0, 1_700_000_000_500);
        m.failed(1, "connect");
        let text = m.encode();
        for want in [
            r#"prober_runs_total{journey="ussd-balance",profile="ea-3g",outcome="ok"} 1"#,
            r#"prober_run_duration_seconds_bucket{le="2.0",journey="ussd-balance",profile="ea-3g"} 1"#,
            r#"prober_outbox_backlog_reports{destination="aggregator-1"} 3"#,
            r#"prober_outbox_backlog_bytes{destination="aggregator-1"} 300"#,
            r#"prober_outbox_backlog_reports{destination="aggregator-0"} 0"#,
            r#"prober_outbox_oldest_unacked_age_seconds{destination="aggregator-1"} "#,
            r#"prober_report_last_success_timestamp_seconds{destination="aggregator-0"} 1700000000.5"#,
            r#"prober_report_errors_total{destination="aggregator-1",class="connect"} 1"#,
            r#"prober_reports_acked_total{destination="aggregator-0"} 1"#,
            r#"prober_outbox_dropped_total{destination="aggregator-1"} 0"#,
            r#"prober_last_successful_send_age_seconds{destination="aggregator-0"} "#,
            "# EOF",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
