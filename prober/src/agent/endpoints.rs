//! The agent's own HTTP endpoints: `/metrics`, `/healthz`, `/readyz`.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use tokio::net::TcpListener;

use super::metrics::Metrics;

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

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, ready: Arc<AtomicBool>) {
    if let Err(e) = axum::serve(listener, router(metrics, ready)).await {
        tracing::error!("metrics endpoint stopped: {e}");
    }
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
