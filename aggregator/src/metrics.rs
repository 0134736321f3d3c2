//! The aggregator's own metrics (`GET /metrics`, Prometheus text format). Prober labels carry
//! only the configured id and region; tokens never reach a label.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `stored`, `duplicate`, `rejected` or `unavailable`.
    pub result: String,
    /// For `rejected`: `unauthenticated`, `forbidden`, `too_large`, `malformed`, `invalid`,
    /// `version`, `too_many_runs`, `horizon`; empty otherwise.
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProberLabels {
    pub prober: String,
    pub region: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub prober: String,
    pub region: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HorizonLabels {
    pub prober: String,
    pub region: String,
    /// `past` or `future`.
    pub side: String,
}

/// One modem of an edge (at most `report::MAX_RADIOS` per prober).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RadioLabels {
    pub region: String,
    pub prober: String,
    pub modem: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RelayLabels {
    /// `stored`, `duplicate`, `rejected`.
    pub result: String,
}

/// One Alertmanager (`host:port` of its URL).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertmanagerLabels {
    pub alertmanager: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertmanagerFailureLabels {
    pub alertmanager: String,
    /// `connect`, `timeout` or `status`.
    pub reason: String,
}

/// One remote-write receiver (its configured name).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RemoteLabels {
    pub remote: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RemoteDropLabels {
    pub remote: String,
    /// `queue_full` or `rejected_4xx`.
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RemoteCodeLabels {
    pub remote: String,
    /// The HTTP status, or `connect` / `timeout` when there was none.
    pub code: String,
}

/// Every metric the aggregator exports.
pub struct Metrics {
    registry: Registry,
    replica: Option<String>,
    pub reports: Family<ResultLabels, Counter>,
    pub ingest_seconds: Histogram,
    pub commit_seconds: Histogram,
    pub batch_reports: Histogram,
    pub store_errors: Counter,
    pub series: Gauge,
    pub disk_bytes: Gauge,
    pub compacted_rows: Counter,
    pub expired_rows: Counter,
    pub dropped_rows: Counter,
    pub prober_last_report_age: Family<ProberLabels, Gauge<f64, AtomicU64>>,
    pub prober_clock_offset: Family<ProberLabels, Gauge<f64, AtomicU64>>,
    pub prober_clock_skewed: Family<ProberLabels, Gauge>,
    pub prober_clock_jump: Family<ProberLabels, Gauge>,
    /// Fresh reports refused because their interval ends outside the horizon, by side.
    pub reports_outside_horizon: Family<HorizonLabels, Counter>,
    pub prober_outbox_backlog: Family<ProberLabels, Gauge>,
    pub prober_state: Family<StateLabels, Gauge>,
    pub site_radio_up: Family<RadioLabels, Gauge>,
    pub site_radio_signal: Family<RadioLabels, Gauge>,
    pub relay_callbacks: Family<RelayLabels, Counter>,
    /// OTLP pushes by result (`ok`, `error`) and reason (`connect`: no connection, TLS or HTTP
    /// exchange; `timeout`; `status`: a non-2xx answer; `rejected`: points refused in a partial
    /// success; empty for `ok`).
    pub otlp_exports: Family<ResultLabels, Counter>,
    /// Alert posts per Alertmanager of the cluster (each post carries every alert due).
    pub alertmanager_posts: Family<AlertmanagerLabels, Counter>,
    pub alertmanager_post_failures: Family<AlertmanagerFailureLabels, Counter>,
    pub remote_write_samples: Family<RemoteLabels, Counter>,
    pub remote_write_samples_dropped: Family<RemoteDropLabels, Counter>,
    pub remote_write_requests: Family<RemoteCodeLabels, Counter>,
    pub remote_write_retries: Family<RemoteLabels, Counter>,
    pub remote_write_queue_batches: Family<RemoteLabels, Gauge>,
    pub remote_write_last_success: Family<RemoteLabels, Gauge<f64, AtomicU64>>,
    /// The listener's bounds: `aggregator_connections_refused_total`, `…_closed_total`,
    /// `aggregator_requests_refused_total`, `aggregator_connections_open` (see httpserve).
    pub listener: std::sync::Arc<httpserve::ServeMetrics>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::with_replica(None)
    }

    /// With `replica` set, every series carries `replica="<name>"` (an HA pair's member).
    pub fn with_replica(replica: Option<&str>) -> Metrics {
        let mut registry = replica_registry(replica);
        let m = Metrics {
            reports: Family::default(),
            // 100 µs … ~3 s
            ingest_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            commit_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            // 1 … 512 reports
            batch_reports: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            store_errors: Counter::default(),
            series: Gauge::default(),
            disk_bytes: Gauge::default(),
            compacted_rows: Counter::default(),
            expired_rows: Counter::default(),
            dropped_rows: Counter::default(),
            prober_last_report_age: Family::default(),
            prober_clock_offset: Family::default(),
            prober_clock_skewed: Family::default(),
            prober_clock_jump: Family::default(),
            reports_outside_horizon: Family::default(),
            prober_outbox_backlog: Family::default(),
            prober_state: Family::default(),
            site_radio_up: Family::default(),
            site_radio_signal: Family::default(),
            relay_callbacks: Family::default(),
            otlp_exports: Family::default(),
            alertmanager_posts: Family::default(),
            alertmanager_post_failures: Family::default(),
            remote_write_samples: Family::default(),
            remote_write_samples_dropped: Family::default(),
            remote_write_requests: Family::default(),
            remote_write_retries: Family::default(),
            remote_write_queue_batches: Family::default(),
            remote_write_last_success: Family::default(),
            listener: Default::default(),
            registry: Registry::default(),
            replica: replica.map(str::to_owned),
        };
        m.register(&mut registry);
        m.listener.register(&mut registry, "aggregator");
        Metrics { registry, ..m }
    }

    fn register(&self, registry: &mut Registry) {
        httpserve::register_metrics!(registry, self, {
            reports: "aggregator_reports", "Reports received, by result (stored, duplicate, rejected, unavailable) and rejection reason";
            ingest_seconds: "aggregator_ingest_duration_seconds", "Time from a report's arrival to its reply";
            commit_seconds: "aggregator_store_commit_duration_seconds", "Time from queuing a report for the store to its commit (waiting for the writer, then its batch's transaction including fsync)";
            batch_reports: "aggregator_store_batch_reports", "Reports committed together in one transaction (group commit)";
            store_errors: "aggregator_store_errors", "Store operations that failed";
            series: "aggregator_series", "Series known to the store";
            disk_bytes: "aggregator_store_disk_bytes", "Bytes the store occupies on disk";
            compacted_rows: "aggregator_store_compacted_rows", "Per-minute rollups merged into hourly ones";
            expired_rows: "aggregator_store_expired_rows", "Rollups deleted for being older than the retention";
            dropped_rows: "aggregator_store_dropped_rows", "Rollups dropped (oldest first) to stay under max_disk_bytes";
            prober_last_report_age: "aggregator_prober_last_report_age_seconds", "Seconds since the prober's last stored report";
            prober_clock_offset: "aggregator_prober_clock_offset_seconds", "Estimated prober clock offset (prober minus aggregator)";
            prober_clock_skewed: "aggregator_prober_clock_skewed", "1 when the prober's adopted clock offset exceeds skew_threshold (its consistent intervals are corrected)";
            prober_clock_jump: "aggregator_prober_clock_jump", "1 when the prober's last fresh report did not fit its adopted clock offset (a clock step, or an offset beyond max_clock_correction): it was not corrected";
            reports_outside_horizon: "aggregator_reports_outside_horizon", "Reports refused because their interval ends outside the horizon around the receive time, by side (past, future)";
            prober_outbox_backlog: "aggregator_prober_outbox_backlog", "Reports waiting in the prober's outbox, from its last heartbeat";
            prober_state: "aggregator_prober_state", "1 for the prober's current state (up, late, down, never)";
            site_radio_up: "aggregator_site_radio_up", "1 when the edge's modem is up (answered, SIM ready, registered, hears the network), from the prober's last heartbeat";
            site_radio_signal: "aggregator_site_radio_signal_dbm", "The edge's modem's received signal (dBm), from the prober's last heartbeat; absent when the modem could not tell";
            relay_callbacks: "aggregator_relay_callbacks", "Daraja STK callbacks relayed";
            otlp_exports: "aggregator_otlp_exports", "OTLP metric pushes, by result (ok, error) and reason (connect, timeout, status, rejected)";
            alertmanager_posts: "aggregator_alertmanager_posts", "Alert posts sent to each Alertmanager of the cluster";
            alertmanager_post_failures: "aggregator_alertmanager_post_failures", "Alert posts that failed, per Alertmanager, by reason (connect, timeout, status)";
            remote_write_samples: "aggregator_remote_write_samples", "Samples the receiver accepted";
            remote_write_samples_dropped: "aggregator_remote_write_samples_dropped", "Samples given up on, by reason (queue_full: the oldest batch went while the receiver was down; rejected_4xx: refused, not retried)";
            remote_write_requests: "aggregator_remote_write_requests", "Remote-write requests, by HTTP status (or connect, timeout)";
            remote_write_retries: "aggregator_remote_write_retries", "Remote-write requests retried (5xx, 429, no answer)";
            remote_write_queue_batches: "aggregator_remote_write_queue_batches", "Batches waiting for the receiver";
            remote_write_last_success: "aggregator_remote_write_last_success_timestamp_seconds", "When the receiver last accepted a batch (Unix seconds)";
        });
    }

    /// The HA pair member's name, when set.
    pub fn replica(&self) -> Option<&str> {
        self.replica.as_deref()
    }

    /// Counts one report result.
    pub fn report(&self, result: &str, reason: &str) {
        self.reports.get_or_create(&ResultLabels { result: result.into(), reason: reason.into() }).inc();
    }

    /// Counts a report refused for its horizon.
    pub fn outside_horizon(&self, prober: &str, region: &str, side: &str) {
        self.reports_outside_horizon
            .get_or_create(&HorizonLabels { prober: prober.into(), region: region.into(), side: side.into() })
            .inc();
    }

    /// The reports counted with this result and reason (tests and the status page).
    pub fn report_count(&self, result: &str, reason: &str) -> u64 {
        self.reports.get_or_create(&ResultLabels { result: result.into(), reason: reason.into() }).get()
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// A registry whose every series carries `replica="<name>"` when one is given.
pub fn replica_registry(replica: Option<&str>) -> Registry {
    match replica {
        Some(r) => Registry::with_labels(std::iter::once((REPLICA_LABEL.into(), r.to_owned().into()))),
        None => Registry::default(),
    }
}

/// The label an HA pair's member puts on its `/metrics` series.
pub const REPLICA_LABEL: &str = "replica";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_names_dashboards_use() {
        let m = Metrics::new();
        m.report("rejected", "malformed");
        m.prober_clock_skewed.get_or_create(&ProberLabels { prober: "kla-1".into(), region: "kampala".into() }).set(1);
        let text = m.encode();
        assert!(text.contains(r#"aggregator_reports_total{result="rejected",reason="malformed"} 1"#), "{text}");
        assert!(text.contains(r#"aggregator_prober_clock_skewed{prober="kla-1",region="kampala"} 1"#), "{text}");
        assert!(text.contains("aggregator_store_commit_duration_seconds_bucket"), "{text}");
        assert_eq!(m.report_count("rejected", "malformed"), 1);
    }
}
