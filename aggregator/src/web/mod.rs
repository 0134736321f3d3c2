//! The HTTP surface: report ingest, the query API, prober status, the STK relay, metrics and
//! health. Every route is on one listener (TLS unless on loopback).

pub mod api;
pub mod status;

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::json;

use crate::{clock::SharedClock, ingest::Ingestor, metrics::Metrics, relay::Relay, store::Store};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub ingest: Arc<Ingestor>,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub clock: SharedClock,
    pub down_after_intervals: u32,
}

/// Every route.
pub fn router(app: AppState, relay: Arc<Relay>) -> Router {
    let reports =
        Router::new().route("/api/v1/reports", post(crate::ingest::post_report)).with_state(app.ingest.clone());
    let rest = Router::new()
        .route("/api/v1/query", get(api::query))
        .route("/api/v1/runs/{run_id}", get(api::run))
        .route("/api/v1/probers", get(status::probers))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .with_state(app.clone());
    reports.merge(rest).merge(crate::relay::router(relay, app.metrics.clone())).fallback(not_found)
}

/// A JSON error reply: `{"status": "error", "reason": ...}`.
pub fn error(status: StatusCode, reason: impl Into<String>) -> Response {
    (status, Json(json!({"status": "error", "reason": reason.into()}))).into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such route; see /api/v1/reports, /api/v1/query, /api/v1/runs/{run_id}, /api/v1/probers, /metrics",
    )
}

async fn metrics(State(app): State<AppState>) -> Response {
    status::refresh_gauges(&app);
    app.metrics.disk_bytes.set(app.store.disk_bytes() as i64);
    app.metrics.series.set(app.store.series_count() as i64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], app.metrics.encode()).into_response()
}

async fn readyz(State(app): State<AppState>) -> Response {
    let store = app.store.clone();
    match tokio::task::spawn_blocking(move || store.check_writable()).await {
        Ok(Ok(())) => Json(json!({"status": "ready"})).into_response(),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, format!("the store is not writable: {e}")),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("the store check failed: {e}")),
    }
}
