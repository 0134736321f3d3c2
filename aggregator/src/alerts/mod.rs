//! Alerts to Alertmanager (API v2, `POST /api/v2/alerts`).
//!
//! Every firing SLO alert is posted when it starts and re-sent every `resend_interval` with an
//! `endsAt` three intervals ahead (so Alertmanager resolves it by itself if the aggregator dies);
//! an alert that stops is posted once more with `endsAt` = now, which resolves it. Labels:
//! `alertname` (as the generated Prometheus rules name it), `severity`, `team`, `slo`, `service`,
//! `journey`, `region`; annotations: `summary`, `description` (burn rates and budget), `runbook_url`.

use std::{collections::BTreeMap, time::Duration};

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::{
    client::{ClientError, ClientOptions, HttpClient, error_chain},
    clock::rfc3339,
    config::AlertmanagerConfig,
    slo::{
        Scope, Severity, Slo,
        engine::{ScopeStatus, Transition},
        service::SloService,
        windows::{W1H, W5M, W6H, W30M},
    },
};

/// How long one post may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Posts alerts to one Alertmanager.
pub struct AlertSender {
    url: String,
    resend: Duration,
    public_url: Option<String>,
    client: HttpClient,
    state: Mutex<SendState>,
}

#[derive(Default)]
struct SendState {
    last_full_send_ms: Option<i64>,
    /// Alerts that resolved and still need their closing post.
    /// (A post that fails is not retried for these: their last `endsAt` lets Alertmanager
    /// resolve them by itself within three resend intervals.)
    resolved: BTreeMap<(Scope, Severity), (i64, i64)>,
}

/// The alert name the generated Prometheus rules give this SLO and severity.
pub fn alert_name(slo: &str, severity: Severity) -> String {
    let camel: String = slo
        .split(['-', '_'])
        .map(|p| {
            let mut c = p.chars();
            c.next().map_or(String::new(), |f| f.to_uppercase().collect::<String>() + c.as_str())
        })
        .collect();
    format!("SLO{camel}{}", if severity == Severity::Page { "Page" } else { "Ticket" })
}

/// One alert as Alertmanager's API takes it.
pub fn alert_json(
    slo: &Slo,
    scope: &Scope,
    severity: Severity,
    status: Option<&ScopeStatus>,
    starts_ms: i64,
    ends_ms: i64,
    generator: Option<&str>,
) -> Value {
    let burn = |w| status.and_then(|s| s.burn_rate(w)).map_or("n/a".to_owned(), |b| format!("{b:.1}"));
    let budget =
        status.and_then(|s| s.error_budget_remaining).map_or("n/a".to_owned(), |r| format!("{:.1} %", r * 100.0));
    let mut a = json!({
        "labels": {
            "alertname": alert_name(&slo.name, severity),
            "severity": severity.as_str(),
            "team": slo.alerting.team,
            "slo": slo.name,
            "service": slo.service,
            "journey": scope.journey,
            "region": scope.region,
        },
        "annotations": {
            "summary": format!("{} in {} is burning the {} error budget ({})", scope.journey, scope.region, slo.name, severity.as_str()),
            "description": format!(
                "Burn rates: 5m {} · 30m {} · 1h {} · 6h {}; error budget remaining {} (objective {:.3} %).",
                burn(W5M), burn(W30M), burn(W1H), burn(W6H), budget, slo.objective * 100.0
            ),
            "runbook_url": slo.alerting.runbook_url,
        },
        "startsAt": rfc3339(starts_ms),
        "endsAt": rfc3339(ends_ms),
    });
    if let Some(g) = generator {
        a["generatorURL"] = json!(format!("{}/status", g.trim_end_matches('/')));
    }
    a
}

impl AlertSender {
    pub fn new(config: &AlertmanagerConfig, public_url: Option<String>) -> AlertSender {
        AlertSender {
            url: format!("{}/api/v2/alerts", config.url),
            resend: config.resend_interval,
            public_url,
            client: HttpClient::new(ClientOptions {
                timeout: POST_TIMEOUT,
                max_body: 64 * 1024,
                ..ClientOptions::default()
            }),
            state: Mutex::default(),
        }
    }

    /// Posts what an evaluation changed, and re-sends firing alerts when due. Returns at once; the
    /// post runs in the background.
    pub fn on_evaluation(&self, svc: &SloService, transitions: &[Transition]) {
        let eval = svc.latest();
        let now = eval.at_ms;
        let slos = svc.slos();
        let mut st = self.state.lock();
        for t in transitions.iter().filter(|t| !t.firing) {
            st.resolved.insert((t.scope.clone(), t.severity), (t.at_ms, now));
        }
        // Alerts that fired again are no longer resolved.
        for f in &eval.firing {
            st.resolved.remove(&(f.scope.clone(), f.severity));
        }
        let due = st.last_full_send_ms.is_none_or(|last| now - last >= self.resend.as_millis() as i64);
        let news = transitions.iter().any(|t| t.firing) || !st.resolved.is_empty();
        if !(due || news) {
            return;
        }
        let horizon = now + 3 * self.resend.as_millis() as i64;
        let mut alerts = Vec::new();
        let gen_url = self.public_url.as_deref();
        for f in &eval.firing {
            let Some(slo) = slos.iter().find(|s| s.name == f.scope.slo) else { continue };
            let status = eval.statuses.iter().find(|s| s.scope == f.scope);
            alerts.push(alert_json(slo, &f.scope, f.severity, status, f.since_ms, horizon, gen_url));
        }
        for ((scope, sev), (since, _)) in std::mem::take(&mut st.resolved) {
            let Some(slo) = slos.iter().find(|s| s.name == scope.slo) else { continue };
            let status = eval.statuses.iter().find(|s| s.scope == scope);
            alerts.push(alert_json(slo, &scope, sev, status, since, now, gen_url));
        }
        st.last_full_send_ms = Some(now);
        drop(st);
        if alerts.is_empty() {
            return;
        }
        let body = Bytes::from(serde_json::to_vec(&alerts).expect("alerts serialize"));
        let n = alerts.len();
        let client = self.client.clone();
        let url = self.url.clone();
        tokio::spawn(async move {
            let sent = client.request(http::Method::POST, &url, Some("application/json"), body).await;
            match sent.and_then(crate::client::Response::success) {
                Ok(_) => tracing::debug!(alerts = n, "alerts sent to Alertmanager"),
                Err(e @ ClientError::Status { .. }) => {
                    tracing::error!(%url, error = %e, "Alertmanager refused the alerts")
                }
                Err(ClientError::Timeout { .. }) => {
                    tracing::error!(%url, "Alertmanager did not answer in {POST_TIMEOUT:?}; alerts will be re-sent")
                }
                Err(e) => {
                    tracing::error!(%url, error = %error_chain(&e), "cannot reach Alertmanager; alerts will be re-sent")
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_names_match_the_generated_rules() {
        assert_eq!(alert_name("checkout-availability", Severity::Page), "SLOCheckoutAvailabilityPage");
        assert_eq!(alert_name("mpesa-payment-success", Severity::Ticket), "SLOMpesaPaymentSuccessTicket");
        let y = crate::slo::rules::rules_yaml(&crate::slo::spec::bundled());
        assert!(y.contains(&format!("alert: {}", alert_name("ussd-latency", Severity::Page))));
    }
}
