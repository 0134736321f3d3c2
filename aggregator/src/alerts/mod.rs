//! Alerts to Alertmanager (API v2, `POST /api/v2/alerts`), to one or to every member of a
//! cluster (`alertmanager.urls`), as Prometheus does: each Alertmanager gets every post in a task
//! of its own, so one that is down or slow never delays the others; posts and failures are
//! counted per Alertmanager (`aggregator_alertmanager_posts_total{alertmanager}`,
//! `aggregator_alertmanager_post_failures_total{alertmanager,reason}`).
//!
//! HA pairs: two replicas fed the same reports post the same label sets (the replica's name goes
//! in the `replica` *annotation*, never a label), so the Alertmanager cluster deduplicates them
//! into one notification. A process posts a resolve only for an alert it posted firing itself:
//! a restarted replica never resolves what its predecessor fired (the engine also holds a firing
//! alert through a gap in the data: [`crate::slo::engine`]).
//!
//! Every firing SLO alert is posted when it starts and re-sent every `resend_interval` with an
//! `endsAt` three intervals ahead (so Alertmanager resolves it by itself if the aggregator dies);
//! an alert that stops is posted once more with `endsAt` = now, which resolves it. Labels:
//! `alertname` (as the generated Prometheus rules name it), `severity`, `team`, `slo`, `service`,
//! `journey`, `region`; annotations: `summary`, `description` (burn rates and budget), `runbook_url`.
//!
//! One alert is not an SLO: [`SITE_RADIO_DOWN`], per modem of an edge, fired when the modem has
//! read not up for [`crate::radio::DOWN_AFTER_REPORTS`] heartbeats in a row and resolved when it
//! reads up again (or the edge stops listing it). It is posted, re-sent and resolved exactly as the
//! SLO alerts are. Labels: `alertname`, `severity` (always `ticket`: a site's radio is fixed on
//! site, in working hours; the SLO alerts of the services it breaks page if they must), `team`
//! (`platform`, who run the edges), `region`, `prober`, `modem`.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::{
    client::{ClientError, ClientOptions, HttpClient, error_chain},
    clock::rfc3339,
    config::AlertmanagerConfig,
    metrics::{AlertmanagerFailureLabels, AlertmanagerLabels, Metrics},
    radio::RadioLive,
    slo::{
        Scope, Severity, Slo,
        engine::{ScopeStatus, Transition},
        service::SloService,
        windows::{W1H, W5M, W6H, W30M},
    },
};

/// How long one post may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Posts alerts to every Alertmanager of the cluster.
pub struct AlertSender {
    /// (`…/api/v2/alerts`, `host:port` for the metric label).
    targets: Vec<(String, String)>,
    resend: Duration,
    public_url: Option<String>,
    replica: Option<String>,
    client: HttpClient,
    metrics: Arc<Metrics>,
    state: Mutex<SendState>,
}

#[derive(Default)]
struct SendState {
    last_full_send_ms: Option<i64>,
    /// Alerts that resolved and still need their closing post.
    /// (A post that fails is not retried for these: their last `endsAt` lets Alertmanager
    /// resolve them by itself within three resend intervals.)
    resolved: BTreeMap<(Scope, Severity), (i64, i64)>,
    /// SLO alerts this process has posted firing (and not yet resolved): only these may be resolved.
    posted: BTreeSet<(Scope, Severity)>,
    radio_last_send_ms: Option<i64>,
    /// Firing site-radio alerts: (prober, modem) → (region, since).
    radio_firing: BTreeMap<(String, String), (String, i64)>,
}

/// The alert name of a modem that is down.
pub const SITE_RADIO_DOWN: &str = "SavannaSiteRadioDown";

/// Where the site-radio runbook lives (deploy/edge/README.md, "Attaching a USB modem", holds the
/// checks it walks through).
pub const SITE_RADIO_RUNBOOK: &str = "https://runbooks.savanna-pulse.example/site-radio-down";

/// One modem of an edge prober, as the alert sender reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteModem {
    pub region: String,
    pub prober: String,
    pub radio: RadioLive,
}

/// The site-radio alert of one modem as Alertmanager's API takes it. `radio` is none when the
/// alert resolves because the edge no longer lists the modem.
pub fn radio_alert_json(
    (region, prober, modem): (&str, &str, &str),
    radio: Option<&RadioLive>,
    starts_ms: i64,
    ends_ms: i64,
    generator: Option<&str>,
) -> Value {
    let description = match radio {
        Some(r) => {
            let h = &r.health;
            let signal = h.signal_dbm.map_or("no signal".to_owned(), |d| format!("{d} dBm"));
            let error = if h.error.is_empty() { String::new() } else { format!(", error {}", h.error) };
            format!(
                "Modem {modem} of {prober}: registration {}, SIM {}, {signal}, operator {}{error}; not up for {} heartbeats. \
                 USSD journeys dialled through it at {region} fail because the site cannot reach the network, not \
                 because of the service.",
                h.registration,
                h.sim,
                if h.operator.is_empty() { "none" } else { h.operator.as_str() },
                r.down_reports,
            )
        }
        None => format!("Modem {modem} of {prober} is no longer reported by the edge."),
    };
    let mut a = json!({
        "labels": {
            "alertname": SITE_RADIO_DOWN,
            "severity": Severity::Ticket.as_str(),
            "team": "platform",
            "region": region,
            "prober": prober,
            "modem": modem,
        },
        "annotations": {
            "summary": format!("The radio of {prober}'s modem {modem} at {region} is down"),
            "description": description,
            "runbook_url": SITE_RADIO_RUNBOOK,
        },
        "startsAt": rfc3339(starts_ms),
        "endsAt": rfc3339(ends_ms),
    });
    if let Some(g) = generator {
        a["generatorURL"] = json!(format!("{}/status", g.trim_end_matches('/')));
    }
    a
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
    /// `replica`, when set, becomes the `replica` annotation of every alert.
    pub fn new(
        config: &AlertmanagerConfig,
        public_url: Option<String>,
        replica: Option<String>,
        metrics: Arc<Metrics>,
    ) -> AlertSender {
        let targets = config
            .urls
            .iter()
            .map(|u| {
                let host = u.parse::<http::Uri>().ok().and_then(|u| u.authority().map(|a| a.to_string()));
                (format!("{u}/api/v2/alerts"), host.unwrap_or_else(|| u.clone()))
            })
            .collect();
        AlertSender {
            targets,
            resend: config.resend_interval,
            public_url,
            replica,
            metrics,
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
            // Only what this process said was firing: a restarted replica has nothing to resolve.
            if st.posted.remove(&(t.scope.clone(), t.severity)) {
                st.resolved.insert((t.scope.clone(), t.severity), (t.at_ms, now));
            }
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
            st.posted.insert((f.scope.clone(), f.severity));
        }
        for ((scope, sev), (since, _)) in std::mem::take(&mut st.resolved) {
            let Some(slo) = slos.iter().find(|s| s.name == scope.slo) else { continue };
            let status = eval.statuses.iter().find(|s| s.scope == scope);
            alerts.push(alert_json(slo, &scope, sev, status, since, now, gen_url));
        }
        st.last_full_send_ms = Some(now);
        drop(st);
        self.post(alerts);
    }

    /// Posts the site-radio alerts the edges' modems call for at `now_ms`: new ones at once,
    /// firing ones when due, resolved ones once with `endsAt` = now. Returns at once.
    pub fn on_radios(&self, now_ms: i64, modems: &[SiteModem]) {
        let mut st = self.state.lock();
        let firing: BTreeMap<(String, String), &SiteModem> = modems
            .iter()
            .filter(|m| m.radio.alerting())
            .map(|m| ((m.prober.clone(), m.radio.health.modem.clone()), m))
            .collect();
        let gen_url = self.public_url.as_deref();
        let mut alerts = Vec::new();
        // Resolved: up again, or no longer listed.
        let gone: Vec<_> = st.radio_firing.keys().filter(|k| !firing.contains_key(*k)).cloned().collect();
        for key in gone {
            let (region, since) = st.radio_firing.remove(&key).expect("listed");
            let now_radio = modems.iter().find(|m| m.prober == key.0 && m.radio.health.modem == key.1);
            alerts.push(radio_alert_json(
                (&region, &key.0, &key.1),
                now_radio.map(|m| &m.radio),
                since,
                now_ms,
                gen_url,
            ));
        }
        let news = firing.keys().any(|k| !st.radio_firing.contains_key(k));
        let due = st.radio_last_send_ms.is_none_or(|last| now_ms - last >= self.resend.as_millis() as i64);
        if news || due || !alerts.is_empty() {
            let horizon = now_ms + 3 * self.resend.as_millis() as i64;
            for (key, m) in &firing {
                let since = m.radio.down_since_ms.unwrap_or(now_ms);
                st.radio_firing.insert(key.clone(), (m.region.clone(), since));
                alerts.push(radio_alert_json(
                    (&m.region, &m.prober, &m.radio.health.modem),
                    Some(&m.radio),
                    since,
                    horizon,
                    gen_url,
                ));
            }
            st.radio_last_send_ms = Some(now_ms);
        }
        drop(st);
        self.post(alerts);
    }

    /// Posts alerts in the background, to each Alertmanager in a task of its own; a failure is
    /// counted and logged (firing alerts are re-sent).
    fn post(&self, mut alerts: Vec<Value>) {
        if alerts.is_empty() {
            return;
        }
        if let Some(r) = &self.replica {
            for a in &mut alerts {
                a["annotations"]["replica"] = json!(r);
            }
        }
        let body = Bytes::from(serde_json::to_vec(&alerts).expect("alerts serialize"));
        let n = alerts.len();
        for (url, host) in &self.targets {
            let (client, url, host, body) = (self.client.clone(), url.clone(), host.clone(), body.clone());
            let metrics = self.metrics.clone();
            tokio::spawn(async move {
                metrics.alertmanager_posts.get_or_create(&AlertmanagerLabels { alertmanager: host.clone() }).inc();
                let sent = client.request(http::Method::POST, &url, Some("application/json"), body).await;
                let reason = match sent.and_then(crate::client::Response::success) {
                    Ok(_) => {
                        tracing::debug!(alerts = n, %url, "alerts sent to Alertmanager");
                        return;
                    }
                    Err(e @ ClientError::Status { .. }) => {
                        tracing::error!(%url, error = %e, "Alertmanager refused the alerts");
                        "status"
                    }
                    Err(ClientError::Timeout { .. }) => {
                        tracing::error!(%url, "Alertmanager did not answer in {POST_TIMEOUT:?}; alerts will be re-sent");
                        "timeout"
                    }
                    Err(e) => {
                        tracing::error!(%url, error = %error_chain(&e), "cannot reach Alertmanager; alerts will be re-sent");
                        "connect"
                    }
                };
                metrics
                    .alertmanager_post_failures
                    .get_or_create(&AlertmanagerFailureLabels { alertmanager: host, reason: reason.into() })
                    .inc();
            });
        }
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
