//! The JSON API's wire, pinned: each reply of `aggregator::api` serializes to exactly this JSON and
//! reads back to the same value. A renamed or retyped field fails here before it reaches a reader
//! (the demo, dashboards, scripts).

mod common;

use std::{collections::BTreeMap, sync::Arc};

use aggregator::{
    Server,
    api::*,
    client::{AggregatorClient, metric_sums},
    clock::ManualClock,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

/// `value` is `wire` on the wire, and `wire` reads back as `value`.
fn pinned<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T, wire: Value) {
    assert_eq!(serde_json::to_value(value).unwrap(), wire, "the wire of {}", std::any::type_name::<T>());
    let back: T = serde_json::from_value(wire).unwrap();
    assert_eq!(&back, value);
}

fn group() -> (Group, Value) {
    let g = Group {
        labels: BTreeMap::from([("journey".into(), "checkout-mpesa".into()), ("region".into(), "dar".into())]),
        count: 12,
        outcomes: BTreeMap::from([("ok".into(), 10), ("http_5xx".into(), 2)]),
        latency_ms: Some(Latency { min: 1.0, p50: 2.0, p90: 3.0, p95: 4.0, p99: 5.0, max: 6.5 }),
    };
    let wire = json!({
        "labels": {"journey": "checkout-mpesa", "region": "dar"},
        "count": 12,
        "outcomes": {"http_5xx": 2, "ok": 10},
        "latency_ms": {"min": 1.0, "p50": 2.0, "p90": 3.0, "p95": 4.0, "p99": 5.0, "max": 6.5},
    });
    (g, wire)
}

fn selection() -> (Selection, Value) {
    let s = Selection { journeys: Some(vec!["a".into()]), steps: Some(vec![String::new()]), ..Selection::default() };
    (s, json!({"journeys": ["a"], "steps": [""], "outcomes": null, "regions": null, "profiles": null}))
}

#[test]
fn query_reply() {
    let (g, gw) = group();
    let (s, sw) = selection();
    let r =
        QueryReply { from_ms: 1, to_ms: 2, selection: s, group_by: vec![Dim::Journey, Dim::Region], groups: vec![g] };
    pinned(&r, json!({"from_ms": 1, "to_ms": 2, "selection": sw, "group_by": ["journey", "region"], "groups": [gw]}));
    let empty = Group { labels: BTreeMap::new(), count: 0, outcomes: BTreeMap::new(), latency_ms: None };
    pinned(&empty, json!({"labels": {}, "count": 0, "outcomes": {}, "latency_ms": null}));
}

#[test]
fn run_reply() {
    let (g, gw) = group();
    let (s, sw) = selection();
    let r = RunReply {
        run: RunInfo { run_id: "r1".into(), first_start_ms: 10, last_end_ms: 20, reports: 3, last_received_ms: 21 },
        selection: s,
        group_by: vec![Dim::Step, Dim::Outcome, Dim::Profile],
        groups: vec![g],
    };
    pinned(
        &r,
        json!({
            "run": {"run_id": "r1", "first_start_ms": 10, "last_end_ms": 20, "reports": 3, "last_received_ms": 21},
            "selection": sw,
            "group_by": ["step", "outcome", "profile"],
            "groups": [gw],
        }),
    );
}

#[test]
fn probers_reply() {
    let p = ProberStatus {
        id: "dar-1".into(),
        region: "dar".into(),
        kind: ProberKind::Edge,
        state: ProberState::Late,
        last_report_ms: Some(100),
        last_report_age_s: Some(1.5),
        last_interval_end_ms: Some(90),
        lag_s: Some(2.5),
        interval_s: Some(15.0),
        outbox_backlog: 3,
        outbox_dropped_total: 1,
        clock_offset_ms: Some(-40),
        clock_skewed: false,
        clock_jump: true,
        clock_observed_offset_ms: Some(9_000),
        reports: ReportCounts { stored_total: 7, duplicates: 1, rejected: 2 },
        version: "0.1.0".into(),
        radios: vec![],
    };
    let mut load = p.clone();
    (load.kind, load.state) = (ProberKind::Load, ProberState::Idle);
    let r = ProbersReply { now_ms: 5, probers: vec![p, load], radio_sites: vec![] };
    let wire = |kind: &str, state: &str| {
        json!({
            "id": "dar-1", "region": "dar", "kind": kind, "state": state,
            "last_report_ms": 100, "last_report_age_s": 1.5, "last_interval_end_ms": 90, "lag_s": 2.5,
            "interval_s": 15.0, "outbox_backlog": 3, "outbox_dropped_total": 1, "clock_offset_ms": -40,
            "clock_skewed": false, "clock_jump": true, "clock_observed_offset_ms": 9000,
            "reports": {"stored_total": 7, "duplicates": 1, "rejected": 2},
            "version": "0.1.0",
        })
    };
    pinned(&r, json!({"now_ms": 5, "probers": [wire("edge", "late"), wire("load", "idle")]}));
    for (s, name) in [
        (ProberState::Up, "up"),
        (ProberState::Down, "down"),
        (ProberState::Never, "never"),
        (ProberState::Idle, "idle"),
    ] {
        assert_eq!(serde_json::to_value(s).unwrap(), json!(name));
        assert_eq!(s.name(), name);
    }
}

#[test]
fn probers_reply_with_radios() {
    let radio = RadioStatus {
        modem: "ttyUSB2".into(),
        signal_dbm: Some(-71),
        registration: "home".into(),
        operator: "MTN UG".into(),
        access: "utran".into(),
        sim: "ready".into(),
        error: String::new(),
        read_at_ms: 90,
        read_age_s: 1.0,
        up: true,
        down_reports: 0,
    };
    let site = SiteRadio { region: "kampala".into(), state: aggregator::radio::RadioState::Degraded, modems: 2, up: 1 };
    let wire = json!({
        "modem": "ttyUSB2", "signal_dbm": -71, "registration": "home", "operator": "MTN UG", "access": "utran",
        "sim": "ready", "error": "", "read_at_ms": 90, "read_age_s": 1.0, "up": true, "down_reports": 0,
    });
    pinned(&radio, wire);
    pinned(&site, json!({"region": "kampala", "state": "degraded", "modems": 2, "up": 1}));
}

fn scope_status() -> (ScopeStatus, Value) {
    let w = |window: &str, burn: Option<f64>| WindowStatus {
        window: window.into(),
        events: 10,
        bad: 1,
        error_ratio: Some(0.1),
        burn_rate: burn,
    };
    let s = ScopeStatus {
        scope: Scope { slo: "checkout-availability".into(), journey: "checkout-mpesa".into(), region: "all".into() },
        objective: 0.99,
        windows: vec![w("5m", Some(10.0)), w("1h", None)],
        period: w("30d", Some(10.0)),
        error_budget_remaining: Some(-0.5),
        time_to_exhaustion_s: None,
        firing: vec![Severity::Page, Severity::Ticket],
    };
    let ww = |window: &str, burn: Value| json!({"window": window, "events": 10, "bad": 1, "error_ratio": 0.1, "burn_rate": burn});
    let wire = json!({
        "scope": {"slo": "checkout-availability", "journey": "checkout-mpesa", "region": "all"},
        "objective": 0.99,
        "windows": [ww("5m", json!(10.0)), ww("1h", Value::Null)],
        "period": ww("30d", json!(10.0)),
        "error_budget_remaining": -0.5,
        "time_to_exhaustion_s": null,
        "firing": ["page", "ticket"],
    });
    (s, wire)
}

#[test]
fn slos_reply() {
    let (scope, scope_wire) = scope_status();
    let r = SlosReply {
        evaluated_at_ms: 42,
        slos: vec![SloReply {
            name: "checkout-availability".into(),
            service: "shop".into(),
            description: "Checkouts succeed".into(),
            objective: 0.99,
            error_budget: 0.01,
            period: "30d".into(),
            sli: "availability".into(),
            latency_threshold_ms: Some(3000),
            selection: SloSelection {
                journeys: vec!["checkout-mpesa".into()],
                regions: vec![],
                step: None,
                rails: vec![],
            },
            alerting: SloAlerting {
                team: "payments".into(),
                runbook_url: "https://r".into(),
                page: true,
                ticket: false,
            },
            alert_windows: vec![AlertWindow {
                severity: Severity::Page,
                short: "5m".into(),
                long: "1h".into(),
                burn_rate_threshold: 14.4,
            }],
            scopes: vec![scope],
        }],
    };
    pinned(
        &r,
        json!({
            "evaluated_at_ms": 42,
            "slos": [{
                "name": "checkout-availability",
                "service": "shop",
                "description": "Checkouts succeed",
                "objective": 0.99,
                "error_budget": 0.01,
                "period": "30d",
                "sli": "availability",
                "latency_threshold_ms": 3000,
                "selection": {"journeys": ["checkout-mpesa"], "regions": [], "step": null},
                "alerting": {"team": "payments", "runbook_url": "https://r", "page": true, "ticket": false},
                "alert_windows": [{"severity": "page", "short": "5m", "long": "1h", "burn_rate_threshold": 14.4}],
                "scopes": [scope_wire],
            }],
        }),
    );
    pinned(&SloFilter { slo: Some("x".into()), ..SloFilter::default() }, json!({"slo": "x"}));
}

#[test]
fn alerts_reply() {
    let a = FiringAlert {
        alertname: "SLOCheckoutAvailabilityPage".into(),
        slo: "checkout-availability".into(),
        journey: "checkout-mpesa".into(),
        region: "dar".into(),
        severity: Severity::Page,
        paging: true,
        since_ms: 7,
    };
    assert_eq!(a.key(), "page checkout-availability checkout-mpesa dar");
    pinned(
        &AlertsReply { evaluated_at_ms: 8, firing: vec![a] },
        json!({
            "evaluated_at_ms": 8,
            "firing": [{
                "alertname": "SLOCheckoutAvailabilityPage", "slo": "checkout-availability",
                "journey": "checkout-mpesa", "region": "dar", "severity": "page", "paging": true, "since_ms": 7,
            }],
        }),
    );
}

#[test]
fn report_error_and_health_replies() {
    let stored = ReportReply { http_status: 0, status: ReportStatus::Stored, reason: None, retry_after_s: None };
    pinned(&stored, json!({"status": "stored"}));
    for (s, name) in [
        (ReportStatus::Duplicate, "duplicate"),
        (ReportStatus::Rejected, "rejected"),
        (ReportStatus::Unavailable, "unavailable"),
    ] {
        pinned(
            &ReportReply { http_status: 0, status: s, reason: Some("why".into()), retry_after_s: None },
            json!({"status": name, "reason": "why"}),
        );
    }
    pinned(&ErrorReply::new("no such route"), json!({"status": "error", "reason": "no such route"}));
    pinned(&Health { status: "ok".into() }, json!({"status": "ok"}));
}

/// The live server's replies read into these types through the typed client.
#[tokio::test]
async fn a_live_server_speaks_the_typed_wire() {
    const T0: i64 = 1_800_000_000_000;
    let clock = ManualClock::new(T0 + 15_000);
    let dir = common::temp_dir("api-wire");
    let config = common::load_config(&dir, "");
    let server = Server::start(&config, Arc::new(clock.clone())).await.unwrap();
    let api = AggregatorClient::new(server.base_url());

    let series = common::series(common::key("checkout", "", "ok", "nairobi"), &[1_000_000, 1_500_000]);
    let r = common::report("nbo-1", "nairobi", 1, T0 + 15_000, vec![series]);
    let reply = api.post_report(common::NBO, &r).await.unwrap();
    assert_eq!((reply.http_status, reply.status), (200, ReportStatus::Stored), "{reply:?}");
    let again = api.post_report(common::NBO, &r).await.unwrap();
    assert_eq!(again.status, ReportStatus::Duplicate);
    let refused = api.post_report("not-a-known-token-at-all", &r).await.unwrap();
    assert_eq!((refused.http_status, refused.status), (401, ReportStatus::Rejected));

    let probers = api.probers().await.unwrap();
    assert_eq!(probers.probers.len(), 3);
    assert_eq!(probers.probers[0].state, ProberState::Up);
    assert_eq!(probers.probers[2].state, ProberState::Never);

    let q = QueryParams {
        from_ms: Some(T0 - 60_000),
        to_ms: Some(T0 + 60_000),
        group_by: vec![Dim::Journey, Dim::Region],
        ..QueryParams::default()
    };
    let runs = api.query(&q).await.unwrap();
    assert_eq!(runs.groups.len(), 1, "{runs:?}");
    let g = &runs.groups[0];
    assert_eq!((g.label(Dim::Journey), g.label(Dim::Region), g.count, g.failed()), ("checkout", "nairobi", 2, 0));
    assert!(g.latency_ms.as_ref().is_some_and(|l| (l.max - 1500.0).abs() < 2.0), "{g:?}");

    let slos = api.slos(&SloFilter::default()).await.unwrap();
    assert!(!slos.slos.is_empty());
    let one = api.slos(&SloFilter { slo: Some(slos.slos[0].name.clone()), ..SloFilter::default() }).await.unwrap();
    assert_eq!(one.slos.len(), 1);
    assert!(api.alerts().await.unwrap().firing.is_empty());
    let metrics = api.metrics_text().await.unwrap();
    let stored = metric_sums(&metrics, "aggregator_reports_total", "result").unwrap();
    assert_eq!(stored.get("stored"), Some(&1.0), "{stored:?}");

    let err = api.run("no-such-run", &QueryParams::default()).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
