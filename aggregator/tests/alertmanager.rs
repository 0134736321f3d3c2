//! SLO alerts reach a real Alertmanager (Debian's `prometheus-alertmanager`) with their labels and
//! runbook, are routed by the example configuration (deploy/edge/alertmanager/alertmanager.yml) to
//! the right team's receiver, and are resolved when they stop. Under CI=true a missing Alertmanager
//! is a failure.

use std::{sync::Arc, time::Duration};

use aggregator::{
    alerts::{AlertSender, SITE_RADIO_DOWN, SITE_RADIO_RUNBOOK, SiteModem},
    clock::{ManualClock, SharedClock},
    config::AlertmanagerConfig,
    metrics::{AlertmanagerFailureLabels, AlertmanagerLabels, Metrics},
    radio::RadioLive,
    slo::{Scope, Severity, engine::Transition, service::SloService, spec::bundled},
};
use report::Report;
use serde_json::Value;
use testkit::{
    alertmanager::Alertmanager,
    reports::{ReportBuilder, key, runs},
};

/// Alerts Alertmanager holds with `alertname`, until `want` says yes (10 s at most).
async fn wait_for(am: &Alertmanager, what: &str, want: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..100 {
        let a = am.alerts().await;
        if want(&a) {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Alertmanager never showed {what}");
}

fn checkout_report(seq: u64, end_ms: i64, ok: u64, failed: u64) -> Report {
    let mut r = ReportBuilder::new("kla-1", "kampala").seq(seq).lasting(60_000).ending_at(end_ms);
    for (outcome, n) in [("ok", ok), ("gateway_error", failed)] {
        if n > 0 {
            r = r.with(runs(key("checkout-mpesa", "", outcome, "kampala"), 3_000_000, n));
        }
    }
    r.build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_alerts_reach_alertmanager_routed_to_the_team_and_resolve() {
    let Some(am) = Alertmanager::start_example().await else { return };
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

    // A cluster of two where one member is down: the live one is not held up by it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let metrics = Arc::new(Metrics::new());
    let sender = AlertSender::new(
        &AlertmanagerConfig {
            urls: vec![format!("http://{dead}"), am.url.clone()],
            resend_interval: Duration::from_secs(60),
        },
        Some("http://127.0.0.1:7800".into()),
        Some("aggregator-1".into()),
        metrics.clone(),
    );
    sender.on_evaluation(&svc, &transitions);
    let alerts = wait_for(&am, "the Kampala checkout page", |a| {
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
    // The replica is an annotation, never a label: both replicas' alerts have one label set.
    assert_eq!(page["annotations"]["replica"], "aggregator-1");
    assert!(page["labels"].get("replica").is_none(), "{page}");
    let am_host = am.url.trim_start_matches("http://").to_owned();
    let posts =
        |host: &str| metrics.alertmanager_posts.get_or_create(&AlertmanagerLabels { alertmanager: host.into() }).get();
    assert_eq!((posts(&am_host), posts(&dead.to_string())), (1, 1));
    for _ in 0..100 {
        let failed = metrics
            .alertmanager_post_failures
            .get_or_create(&AlertmanagerFailureLabels { alertmanager: dead.to_string(), reason: "connect".into() })
            .get();
        if failed == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metrics
            .alertmanager_post_failures
            .get_or_create(&AlertmanagerFailureLabels { alertmanager: dead.to_string(), reason: "connect".into() })
            .get(),
        1,
        "the down member's failure is counted"
    );
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
    // A process that never posted the page (a replica restarted after kill -9) posts no resolve.
    let restarted_metrics = Arc::new(Metrics::new());
    let restarted = AlertSender::new(
        &AlertmanagerConfig { urls: vec![am.url.clone()], resend_interval: Duration::from_secs(60) },
        None,
        Some("aggregator-1".into()),
        restarted_metrics.clone(),
    );
    restarted.on_evaluation(&quiet, &resolved);
    let restarted_posts =
        restarted_metrics.alertmanager_posts.get_or_create(&AlertmanagerLabels { alertmanager: am_host.clone() }).get();
    assert_eq!(restarted_posts, 0, "nothing to resolve: it never said the page was firing");
    sender.on_evaluation(&quiet, &resolved);
    wait_for(&am, "the Kampala page resolved", |a| {
        !a.iter().any(|x| {
            x["labels"]["alertname"] == "SLOCheckoutAvailabilityPage"
                && x["labels"]["region"] == "kampala"
                && x["status"]["state"] == "active"
        })
    })
    .await;
}

fn modem(region: &str, prober: &str, name: &str, down_reports: u32, since: i64) -> SiteModem {
    let up = down_reports == 0;
    SiteModem {
        region: region.into(),
        prober: prober.into(),
        radio: RadioLive {
            health: report::RadioHealth {
                modem: name.into(),
                signal_dbm: Some(if up { -71 } else { -109 }),
                registration: if up { "home" } else { "searching" }.into(),
                operator: if up { "MTN UG" } else { "" }.into(),
                access: "utran".into(),
                sim: "ready".into(),
                read_at_ms: since,
                error: String::new(),
            },
            down_reports,
            down_since_ms: (!up).then_some(since),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_radio_alert_reaches_alertmanager_as_a_ticket_and_resolves() {
    let Some(am) = Alertmanager::start_example().await else { return };
    let now = chrono::Utc::now().timestamp_millis();
    let sender = AlertSender::new(
        &AlertmanagerConfig { urls: vec![am.url.clone()], resend_interval: Duration::from_secs(60) },
        Some("http://127.0.0.1:7800".into()),
        None,
        Arc::new(Metrics::new()),
    );
    // One bad heartbeat is not an alert; two in a row are. Dar's modem is up.
    let once = [modem("kampala", "kla-1", "ttyUSB2", 1, now - 30_000), modem("dar", "dar-1", "ttyUSB2", 0, now)];
    sender.on_radios(now - 15_000, &once);
    let twice = [modem("kampala", "kla-1", "ttyUSB2", 2, now - 30_000), modem("dar", "dar-1", "ttyUSB2", 0, now)];
    sender.on_radios(now, &twice);
    let is_kla = |x: &Value| x["labels"]["alertname"] == SITE_RADIO_DOWN && x["labels"]["prober"] == "kla-1";
    let alerts = wait_for(&am, "the Kampala radio down", |a| a.iter().any(is_kla)).await;
    assert_eq!(alerts.iter().filter(|x| x["labels"]["alertname"] == SITE_RADIO_DOWN).count(), 1, "{alerts:?}");
    let a = alerts.iter().find(|x| is_kla(x)).unwrap();
    let l = &a["labels"];
    assert_eq!(
        (l["region"].as_str(), l["modem"].as_str(), l["severity"].as_str(), l["team"].as_str()),
        (Some("kampala"), Some("ttyUSB2"), Some("ticket"), Some("platform"))
    );
    assert!(l.get("slo").is_none(), "not an SLO alert: {a}");
    let description = a["annotations"]["description"].as_str().unwrap();
    assert!(description.contains("registration searching") && description.contains("-109 dBm"), "{description}");
    assert_eq!(a["annotations"]["runbook_url"], SITE_RADIO_RUNBOOK);
    let receivers: Vec<&str> = a["receivers"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(receivers, ["platform-ticket"], "{a}");

    // Up again: the closing post (endsAt now, by Alertmanager's clock too) resolves it.
    let up = [modem("kampala", "kla-1", "ttyUSB2", 0, now), modem("dar", "dar-1", "ttyUSB2", 0, now)];
    sender.on_radios(chrono::Utc::now().timestamp_millis(), &up);
    wait_for(&am, "the Kampala radio resolved", |a| !a.iter().any(|x| is_kla(x) && x["status"]["state"] == "active"))
        .await;
}
