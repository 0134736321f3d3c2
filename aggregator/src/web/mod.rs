//! The HTTP surface: report ingest, the query API, prober status, the STK relay, metrics and
//! health. Every route is on one listener (TLS unless on loopback).

pub mod api;
pub mod page;
pub mod slo;
pub mod status;

use std::sync::Arc;

use crate::{
    api::{ErrorReply, Health},
    clock::SharedClock,
    ingest::Ingestor,
    metrics::Metrics,
    relay::Relay,
    store::Store,
};
use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub ingest: Arc<Ingestor>,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub clock: SharedClock,
    pub down_after_intervals: u32,
    pub slo: Arc<crate::slo::service::SloService>,
}

/// Every route.
pub fn router(app: AppState, relay: Arc<Relay>) -> Router {
    let reports =
        Router::new().route("/api/v1/reports", post(crate::ingest::post_report)).with_state(app.ingest.clone());
    let rest = Router::new()
        .route("/api/v1/query", get(api::query))
        .route("/api/v1/runs/{run_id}", get(api::run))
        .route("/api/v1/probers", get(status::probers))
        .route("/status", get(page::page))
        .route("/", get(|| async { axum::response::Redirect::temporary("/status") }))
        .route("/api/v1/slos", get(slo::slos))
        .route("/api/v1/alerts", get(slo::alerts))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { Json(Health { status: "ok".into() }) }))
        .route("/readyz", get(readyz))
        .with_state(app.clone());
    reports.merge(rest).merge(crate::relay::router(relay, app.ingest.clone(), app.metrics.clone())).fallback(not_found)
}

/// A JSON error reply: `{"status": "error", "reason": ...}`.
pub fn error(status: StatusCode, reason: impl Into<String>) -> Response {
    (status, Json(ErrorReply::new(reason))).into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such route; see /api/v1/reports, /api/v1/query, /api/v1/runs/{run_id}, /api/v1/probers, /api/v1/slos, /api/v1/alerts, /metrics",
    )
}

async fn metrics(State(app): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let Some(text) = exposition(&app) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "the metrics could not be encoded");
    };
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    if wants_openmetrics {
        ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
    } else {
        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], prometheus_text(&text)).into_response()
    }
}

/// Everything `/metrics` serves, as OpenMetrics text: the aggregator's own families (prober
/// status refreshed now), then the SLO families (counters, durations, burn rates). The one home
/// of the series set: the remote writer reads this too. `None` if encoding failed.
pub fn exposition(app: &AppState) -> Option<String> {
    status::refresh_gauges(app);
    app.metrics.disk_bytes.set(app.store.disk_bytes() as i64);
    app.metrics.series.set(app.store.series_count() as i64);
    let mut text = app.metrics.encode();
    if let Some(stripped) = text.strip_suffix("# EOF\n") {
        text.truncate(stripped.len());
    }
    let mut registry = crate::metrics::replica_registry(app.metrics.replica());
    registry.register_collector(Box::new(app.slo.metrics().clone()));
    prometheus_client::encoding::text::encode(&mut text, &registry).ok()?;
    Some(text)
}

/// The Prometheus text format (0.0.4) of an OpenMetrics exposition: counters' HELP and TYPE name
/// the `_total` samples, and the OpenMetrics-only `# EOF` and `# UNIT` lines go. What
/// `promtool check metrics` and older scrapers read.
pub fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

async fn readyz(State(app): State<AppState>) -> Response {
    let store = app.store.clone();
    match tokio::task::spawn_blocking(move || store.check_writable()).await {
        Ok(Ok(())) => Json(Health { status: "ready".into() }).into_response(),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, format!("the store is not writable: {e}")),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("the store check failed: {e}")),
    }
}
