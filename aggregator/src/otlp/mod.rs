//! OTLP export: every `otlp.interval`, the SLO gauges, the journey duration histograms and the
//! run counters are pushed to an OpenTelemetry collector over OTLP/HTTP (protobuf), with
//! cumulative temporality.
//!
//! - [`encode`]: the pure part: `/metrics`' numbers as an `ExportMetricsServiceRequest`.
//! - [`client`]: one push (TCP or rustls, HTTP/1.1 POST to `…/v1/metrics`), bounded by
//!   `otlp.timeout`.
//!
//! It reads what `/metrics` reads (the journey counters of
//! [`SloMetrics`](crate::slo::export::SloMetrics) and [`SloService::latest`]), so the two
//! exports agree and nothing is evaluated twice. Pushes run in their own task and encode on a
//! blocking thread; ingest never waits for them. A failed push is counted in
//! `aggregator_otlp_exports_total{result="error",reason}` and logged (never with header values),
//! and not retried: the next push carries the same cumulative counters, so nothing is lost but
//! resolution. On shutdown one last push is made.
//!
//! Why not the `opentelemetry-otlp` exporter: it only sends what the OpenTelemetry SDK has
//! aggregated itself. The SDK has no asynchronous (observable) histogram and its data types
//! cannot be built from outside, so our already-aggregated HDR buckets would have to be recorded
//! run by run a second time, bucketed by the SDK's rule (value ≤ bound) instead of the engine's
//! (the HDR bucket's lowest value ≤ threshold): more work and numbers that differ from the burn
//! rates. The wire types come from `opentelemetry-proto`, the crate that exporter uses.

pub mod client;
pub mod encode;

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

use crate::{clock::SharedClock, config::OtlpConfig, metrics::Metrics, slo::service::SloService};
pub use client::{Client, PushError};

/// Pushes the SLO service's metrics to one collector.
pub struct Exporter {
    client: Client,
    slo: Arc<SloService>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    /// When the cumulative counters began (Unix ms).
    start_ms: i64,
    failures_in_a_row: parking_lot::Mutex<u64>,
}

impl Exporter {
    pub fn new(client: Client, slo: Arc<SloService>, metrics: Arc<Metrics>, clock: SharedClock) -> Arc<Exporter> {
        let start_ms = clock.now_ms();
        Arc::new(Exporter { client, slo, metrics, clock, start_ms, failures_in_a_row: parking_lot::Mutex::new(0) })
    }

    pub fn config(&self) -> &OtlpConfig {
        self.client.config()
    }

    /// The requests a push would send now, encoded.
    pub async fn encode_now(&self) -> Vec<Vec<u8>> {
        let journeys = self.slo.metrics().journey_snapshot();
        let eval = self.slo.latest();
        let times = encode::Times { start_ms: self.start_ms, now_ms: self.clock.now_ms() };
        // Thousands of series take milliseconds to encode: off the runtime's worker threads.
        tokio::task::spawn_blocking(move || encode::encoded(&journeys, &eval, times, encode::MAX_POINTS_PER_REQUEST))
            .await
            .unwrap_or_default()
    }

    /// One push now; counted and logged.
    pub async fn push(&self) -> Result<(), PushError> {
        let bodies = self.encode_now().await;
        let (requests, bytes) = (bodies.len(), bodies.iter().map(Vec::len).sum::<usize>());
        let result = self.client.push(bodies).await;
        let url = &self.config().url;
        match &result {
            Ok(()) => {
                self.metrics.otlp_exports.get_or_create(&ok_labels()).inc();
                let mut n = self.failures_in_a_row.lock();
                if *n > 0 {
                    tracing::info!(%url, after_failures = *n, "OTLP export works again");
                }
                *n = 0;
                tracing::debug!(%url, requests, bytes, "OTLP export sent");
            }
            Err(e) => {
                self.metrics
                    .otlp_exports
                    .get_or_create(&crate::metrics::ResultLabels { result: "error".into(), reason: e.reason().into() })
                    .inc();
                let n = {
                    let mut n = self.failures_in_a_row.lock();
                    *n += 1;
                    *n
                };
                tracing::warn!(%url, error = %crate::client::error_chain(e), failures_in_a_row = n, "OTLP export failed; the next push carries the same counters");
            }
        }
        result
    }

    /// Pushes every `interval` (absolute deadlines) until `stop`, then once more.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every = self.config().interval;
        let mut next = tokio::time::Instant::now() + every;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                _ = stop.changed() => break,
            }
            let _ = self.push().await;
            // A push takes at most `timeout` ≤ `interval`; skip deadlines already missed.
            let now = tokio::time::Instant::now();
            next += every;
            if next <= now {
                next = now + every;
            }
        }
        let _ = self.push().await;
    }

    /// Upper bound of a final push, for shutdown.
    pub fn final_push_bound(&self) -> Duration {
        self.config().timeout + Duration::from_secs(1)
    }
}

fn ok_labels() -> crate::metrics::ResultLabels {
    crate::metrics::ResultLabels { result: "ok".into(), reason: String::new() }
}
