//! The agent's own HTTP endpoints: `/metrics`, `/healthz`, `/readyz`, served through httpserve's
//! bounds (the config's `connections:`; counted as `prober_connections_*{listener="metrics"}`).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use super::metrics::Metrics;
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
    if c.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: journeys not loaded or the outbox is not writable\n")
    }
}
