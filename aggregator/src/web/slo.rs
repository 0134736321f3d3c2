//! The SLO JSON API: `GET /api/v1/slos` (every SLO with its scopes, windows, burn rates, budget
//! and alert states) and `GET /api/v1/alerts` (what fires now, since when).

use super::AppState;
use crate::{
    api::{AlertWindow, AlertsReply, FiringAlert, SloAlerting, SloFilter, SloReply, SloSelection, SlosReply},
    slo::{ScopeStatus, Severity, Slo, service::describe_sli, spec::Sli},
};
use axum::{
    Json,
    extract::{Query, State},
};

pub async fn slos(State(app): State<AppState>, Query(q): Query<SloFilter>) -> Json<SlosReply> {
    let eval = app.slo.latest();
    let slos = app
        .slo
        .slos()
        .iter()
        .filter(|s| q.slo.as_deref().is_none_or(|n| n == s.name))
        .map(|s| {
            let scopes = eval
                .statuses
                .iter()
                .filter(|st| st.scope.slo == s.name)
                .filter(|st| q.region.as_deref().is_none_or(|r| r == st.scope.region))
                .filter(|st| q.journey.as_deref().is_none_or(|j| j == st.scope.journey))
                .cloned()
                .collect();
            slo_reply(s, scopes)
        })
        .collect();
    Json(SlosReply { evaluated_at_ms: eval.at_ms, slos })
}

fn slo_reply(s: &Slo, scopes: Vec<ScopeStatus>) -> SloReply {
    let alert_windows = s
        .period
        .alert_windows()
        .iter()
        .map(|w| AlertWindow {
            severity: w.severity,
            short: w.short.to_string(),
            long: w.long.to_string(),
            burn_rate_threshold: w.factor,
        })
        .collect();
    SloReply {
        name: s.name.clone(),
        service: s.service.clone(),
        description: s.description.clone(),
        objective: s.objective,
        error_budget: s.budget(),
        period: s.period.label().to_owned(),
        sli: describe_sli(s),
        latency_threshold_ms: match s.sli {
            Sli::Latency { threshold } => Some(threshold.as_millis() as u64),
            Sli::Availability => None,
        },
        selection: SloSelection {
            journeys: s.selection.journeys.clone(),
            regions: s.selection.regions.clone(),
            step: s.selection.step.clone(),
            rails: s.selection.rails.clone(),
        },
        alerting: SloAlerting {
            team: s.alerting.team.clone(),
            runbook_url: s.alerting.runbook_url.clone(),
            page: s.alerting.page,
            ticket: s.alerting.ticket,
        },
        alert_windows,
        scopes,
    }
}

pub async fn alerts(State(app): State<AppState>) -> Json<AlertsReply> {
    let eval = app.slo.latest();
    let firing = eval
        .firing
        .iter()
        .map(|f| FiringAlert {
            alertname: crate::alerts::alert_name(&f.scope.slo, f.severity),
            slo: f.scope.slo.clone(),
            journey: f.scope.journey.clone(),
            region: f.scope.region.clone(),
            severity: f.severity,
            paging: f.severity == Severity::Page,
            since_ms: f.since_ms,
        })
        .collect();
    Json(AlertsReply { evaluated_at_ms: eval.at_ms, firing })
}
