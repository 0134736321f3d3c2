//! The SLO JSON API: `GET /api/v1/slos` (every SLO with its scopes, windows, burn rates, budget
//! and alert states) and `GET /api/v1/alerts` (what fires now, since when).

use axum::{
    Json,
    extract::{Query, State},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::slo::{Severity, service::describe_sli, spec::Sli};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloQuery {
    /// Only this SLO.
    slo: Option<String>,
    /// Only this region (`all` for the all-regions scope).
    region: Option<String>,
    /// Only this journey.
    journey: Option<String>,
}

pub async fn slos(State(app): State<AppState>, Query(q): Query<SloQuery>) -> Response {
    let eval = app.slo.latest();
    let slos: Vec<Value> = app
        .slo
        .slos()
        .iter()
        .filter(|s| q.slo.as_deref().is_none_or(|n| n == s.name))
        .map(|s| {
            let scopes: Vec<&crate::slo::ScopeStatus> = eval
                .statuses
                .iter()
                .filter(|st| st.scope.slo == s.name)
                .filter(|st| q.region.as_deref().is_none_or(|r| r == st.scope.region))
                .filter(|st| q.journey.as_deref().is_none_or(|j| j == st.scope.journey))
                .collect();
            let alert_windows: Vec<Value> = s
                .period
                .alert_windows()
                .iter()
                .map(|w| json!({"severity": w.severity, "short": w.short.to_string(), "long": w.long.to_string(), "burn_rate_threshold": w.factor}))
                .collect();
            json!({
                "name": s.name,
                "service": s.service,
                "description": s.description,
                "objective": s.objective,
                "error_budget": s.budget(),
                "period": s.period.label(),
                "sli": describe_sli(s),
                "latency_threshold_ms": match s.sli { Sli::Latency { threshold } => Some(threshold.as_millis() as u64), Sli::Availability => None },
                "selection": {"journeys": s.selection.journeys, "regions": s.selection.regions, "step": s.selection.step},
                "alerting": {"team": s.alerting.team, "runbook_url": s.alerting.runbook_url, "page": s.alerting.page, "ticket": s.alerting.ticket},
                "alert_windows": alert_windows,
                "scopes": scopes,
            })
        })
        .collect();
    Json(json!({"evaluated_at_ms": eval.at_ms, "slos": slos})).into_response()
}

pub async fn alerts(State(app): State<AppState>) -> Response {
    let eval = app.slo.latest();
    let firing: Vec<Value> = eval
        .firing
        .iter()
        .map(|f| {
            json!({
                "alertname": crate::alerts::alert_name(&f.scope.slo, f.severity),
                "slo": f.scope.slo,
                "journey": f.scope.journey,
                "region": f.scope.region,
                "severity": f.severity,
                "paging": f.severity == Severity::Page,
                "since_ms": f.since_ms,
            })
        })
        .collect();
    Json(json!({"evaluated_at_ms": eval.at_ms, "firing": firing})).into_response()
}
