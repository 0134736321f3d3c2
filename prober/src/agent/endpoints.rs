//! The agent's own HTTP endpoints: `/metrics`, `/healthz`, `/readyz`, served through httpserve's
//! bounds (the config's `connections:`; counted as `prober_connections_*{listener="metrics"}`).
//!
//! `/readyz` answers 200 while the outbox stores reports and 503 when it cannot (a full or
//! read-only disk: reports then wait in memory only). A destination that is down does not make
//! the prober unready: its reports wait in the outbox and it catches up by itself, and an unready
//! pod would only lose its Daraja callbacks. Either way the body lists every destination, one
//! line each, `destination <name> backlog=<reports> bytes=<bytes> oldest_unacked_age_s=<s>
//! last_success=<RFC 3339 or never> last_error=<class or none>[ (<s>s ago)]`, for a person or a
//! script; alert on `prober_outbox_oldest_unacked_age_seconds` rather than on this.

use std::time::SystemTime;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use super::metrics::{DestStatus, Metrics};
use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};

#[derive(Clone)]
struct Ctx {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

/// The routes.
pub fn router(metrics: Arc<Metrics>, ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(Ctx { metrics, ready })
}

/// The name of this listener in metrics and logs.
pub const LISTENER: &str = "metrics";

/// Serves until the task is dropped (which closes every connection).
pub async fn serve(listener: httpserve::Listener, metrics: Arc<Metrics>, ready: Arc<AtomicBool>) {
    let svc = httpserve::TowerToHyperService::new(router(metrics, ready));
    listener.serve(svc, std::future::pending(), std::time::Duration::ZERO).await;
}

async fn metrics_text(State(c): State<Ctx>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], c.metrics.encode())
}

async fn readyz(State(c): State<Ctx>) -> impl IntoResponse {
    let mut body = if c.ready.load(Ordering::Acquire) {
        "ready\n".to_owned()
    } else {
        "not ready: journeys not loaded or the outbox is not writable\n".to_owned()
    };
    body.push_str(&destination_lines(&c.metrics.destinations(), SystemTime::now()));
    let code = if c.ready.load(Ordering::Acquire) { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, body)
}

/// One line per destination (the format in the module doc).
pub fn destination_lines(dests: &[DestStatus], now: SystemTime) -> String {
    let mono = tokio::time::Instant::now();
    let mut out = String::new();
    for d in dests {
        let success = d
            .last_success_ms
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map_or_else(|| "never".to_owned(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        let error = d.last_error.map_or_else(
            || "none".to_owned(),
            |(class, at)| format!("{class} ({:.1}s ago)", mono.saturating_duration_since(at).as_secs_f64()),
        );
        out.push_str(&format!(
            "destination {} backlog={} bytes={} oldest_unacked_age_s={:.1} last_success={success} last_error={error}\n",
            d.name,
            d.backlog,
            d.bytes,
            d.oldest_age_s(now),
        ));
    }
    out
}
