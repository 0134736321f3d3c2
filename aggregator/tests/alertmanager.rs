//! SLO alerts reach a real Alertmanager (Debian's `prometheus-alertmanager`) with their labels and
//! runbook, are routed by the example configuration (deploy/edge/alertmanager/alertmanager.yml) to
//! the right team's receiver, and are resolved when they stop. Under CI=true a missing Alertmanager
//! is a failure.

use std::{
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use aggregator::{
    alerts::AlertSender,
    clock::{ManualClock, SharedClock},
    config::AlertmanagerConfig,
    slo::{Scope, Severity, engine::Transition, service::SloService, spec::bundled},
};
use report::{Heartbeat, Report, Series, SeriesKey};
use serde_json::Value;

struct Alertmanager {
    child: Child,
    url: String,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_alertmanager() -> Option<Alertmanager> {
    if Command::new("prometheus-alertmanager").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "prometheus-alertmanager is missing: .ci/run must install it"
        );
        eprintln!("SKIPPED: prometheus-alertmanager not installed");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("am-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/edge/alertmanager/alertmanager.yml");
    let port = free_port();
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={config}"))
        .arg(format!("--storage.path={}", dir.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let am = Alertmanager { child, url: format!("http://127.0.0.1:{port}"), _dir: TempDir(dir) };
    for _ in 0..100 {
        if get(&format!("{}/-/ready", am.url)).await.is_some() {
            return Some(am);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Alertmanager did not become ready in 10 s");
}

async fn get(url: &str) -> Option<Value> {
    let resp = aggregator::client::HttpClient::default().get(url).await.ok()?.success().ok()?;
    Some(resp.json().unwrap_or(Value::Null))
}

/// Alerts Alertmanager holds with `alertname`, until `want` says yes (10 s at most).
async fn wait_for(url: &str, what: &str, want: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..100 {
        if let Some(Value::Array(a)) = get(&format!("{url}/api/v2/alerts")).await
            && want(&a)
        {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Alertmanager never showed {what}");
}

fn checkout_report(seq: u64, end_ms: i64, ok: u64, failed: u64) -> Report {
    let key = |outcome: &str| SeriesKey {
        journey: "checkout-mpesa".into(),
        step: String::new(),
        outcome: outcome.into(),
        region: "kampala".into(),
        profile: "ea-3g".into(),
    };
    let mut series = Vec::new();
    for (outcome, n) in [("ok", ok), ("gateway_error", failed)] {
        if n > 0 {
            let mut h = report::SparseHistogram::new();
            h.record_n(3_000_000, n);
            series.push(Series { key: key(outcome), count: n, histogram: h });
        }
    }
    Report {
        prober: "kla-1".into(),
        region: "kampala".into(),
        seq,
        interval_start_ms: end_ms - 60_000,
        interval_end_ms: end_ms,
        sent_at_ms: end_ms,
        run: None,
        heartbeat: Heartbeat::default(),
        series,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_alerts_reach_alertmanager_routed_to_the_team_and_resolve() {
    let Some(am) = start_alertmanager().await else { return };
    // Alertmanager judges startsAt/endsAt by its own clock: the SLO clock is the wall clock.
    let now = chrono::Utc::now().timestamp_millis();
    let clock = ManualClock::new(now);
    let shared: SharedClock = Arc::new(clock.clone());
    let svc = SloService::new(bundled(), shared);
    // Ten minutes of Kampala checkouts failing completely.
    for (i, m) in (0..10).rev().enumerate() {
        svc.observe(&Arc::new(checkout_report(i as u64 + 1, now - m * 60_000, 0, 4)), 0);
    }
    let transitions = svc.evaluate();
    assert!(transitions.iter().any(|t| t.firing && t.severity == Severity::Page && t.scope.region == "kampala"));

    let sender = AlertSender::new(
        &AlertmanagerConfig { url: am.url.clone(), resend_interval: Duration::from_secs(60) },
        Some("http://127.0.0.1:7800".into()),
    );
    sender.on_evaluation(&svc, &transitions);
    let alerts = wait_for(&am.url, "the Kampala checkout page", |a| {
        a.iter()
            .any(|x| x["labels"]["alertname"] == "SLOCheckoutAvailabilityPage" && x["labels"]["region"] == "kampala")
    })
    .await;
    let page = alerts
        .iter()
        .find(|x| x["labels"]["alertname"] == "SLOCheckoutAvailabilityPage" && x["labels"]["region"] == "kampala")
        .unwrap();
    let labels = &page["labels"];
    assert_eq!((labels["severity"].as_str(), labels["team"].as_str()), (Some("page"), Some("payments")));
    assert_eq!(
        (labels["slo"].as_str(), labels["journey"].as_str()),
        (Some("checkout-availability"), Some("checkout-mpesa"))
    );
    assert_eq!(page["annotations"]["runbook_url"], "https://runbooks.savanna-pulse.example/checkout-availability");
    assert!(page["annotations"]["description"].as_str().unwrap().contains("Burn rates: 5m 1000.0"), "{page}");
    assert_eq!(page["generatorURL"], "http://127.0.0.1:7800/status");
    // Routed by the example configuration: payments' on-call, not a ticket queue.
    let receivers: Vec<&str> =
        page["receivers"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(receivers, ["payments-page"], "{page}");
    // The all-regions scope pages too (a third of checkouts fail there).
    assert!(
        alerts
            .iter()
            .any(|x| x["labels"]["alertname"] == "SLOCheckoutAvailabilityPage" && x["labels"]["region"] == "all")
    );

    // The alert stops: the closing post resolves it in Alertmanager.
    let quiet = SloService::new(bundled(), Arc::new(clock.clone()));
    quiet.evaluate();
    let scope =
        Scope { slo: "checkout-availability".into(), journey: "checkout-mpesa".into(), region: "kampala".into() };
    let resolved = [Transition { scope, severity: Severity::Page, firing: false, at_ms: now }];
    sender.on_evaluation(&quiet, &resolved);
    wait_for(&am.url, "the Kampala page resolved", |a| {
        !a.iter().any(|x| {
            x["labels"]["alertname"] == "SLOCheckoutAvailabilityPage"
                && x["labels"]["region"] == "kampala"
                && x["status"]["state"] == "active"
        })
    })
    .await;
}
