//! The edges' radios through a real listener on loopback: heartbeats with modems up, one down and
//! all down become the site's radio state in `/api/v1/probers`, the gauges on `/metrics`, and the
//! status page's radio rows and "radio down" notes; they survive a restart.

mod common;

use std::sync::Arc;

use aggregator::{Server, clock::ManualClock};
use common::*;

const T0: i64 = 1_800_000_000_000;

fn modem(name: &str, up: bool) -> report::RadioHealth {
    report::RadioHealth {
        modem: name.into(),
        signal_dbm: if up { Some(-71) } else { None },
        registration: if up { "home" } else { "searching" }.into(),
        operator: if up { "MTN UG" } else { "" }.into(),
        access: if up { "utran" } else { "" }.into(),
        sim: "ready".into(),
        read_at_ms: T0,
        error: String::new(),
    }
}

fn kla(seq: u64, radios: Vec<report::RadioHealth>) -> report::Report {
    let end = T0 + seq as i64 * 15_000;
    let mut r = report(
        "kla-1",
        "kampala",
        seq,
        end,
        vec![series(key("ussd-balance", "", "timeout", "kampala"), &[30_000_000])],
    );
    r.heartbeat.radios = radios;
    r
}

async fn text(http: &Http, path: &str) -> String {
    String::from_utf8(http.request("GET", path, None, Vec::new()).await.2.to_vec()).unwrap()
}

#[tokio::test]
async fn a_site_radio_is_up_degraded_or_down_apart_from_its_journeys() {
    let clock = ManualClock::new(T0 + 15_000);
    let (server, http, _dir) = start_on("radios", "", &clock).await;
    // Dar's edge has no modems: no radios, no radio state.
    let dar = report("dar-1", "dar", 1, T0 + 15_000, vec![series(key("checkout", "", "ok", "dar"), &[1_000])]);
    assert_eq!(http.post_report(Some(DAR), &dar).await.0, 200);

    let site = |j: &serde_json::Value| j["radio_sites"].clone();
    assert_eq!(http.post_report(Some(KLA), &kla(1, vec![modem("ttyUSB2", true), modem("ttyUSB3", true)])).await.0, 200);
    let (_, j) = http.get("/api/v1/probers").await;
    assert_eq!(site(&j), serde_json::json!([{"region": "kampala", "state": "up", "modems": 2, "up": 2}]));
    assert_eq!(j["probers"][1]["radios"][0]["signal_dbm"], -71);
    assert_eq!(j["probers"][1]["radios"][0]["up"], true);
    assert!(j["probers"][2].get("radios").is_none(), "{j}");

    clock.advance_ms(15_000);
    assert_eq!(
        http.post_report(Some(KLA), &kla(2, vec![modem("ttyUSB2", true), modem("ttyUSB3", false)])).await.0,
        200
    );
    let (_, j) = http.get("/api/v1/probers").await;
    assert_eq!(site(&j)[0]["state"], "degraded");
    assert_eq!(j["probers"][1]["radios"][1]["down_reports"], 1);

    clock.advance_ms(15_000);
    assert_eq!(
        http.post_report(Some(KLA), &kla(3, vec![modem("ttyUSB2", false), modem("ttyUSB3", false)])).await.0,
        200
    );
    let (_, j) = http.get("/api/v1/probers").await;
    assert_eq!(site(&j)[0]["state"], "down");
    assert_eq!(j["probers"][1]["radios"][1]["down_reports"], 2);
    assert_eq!(j["probers"][1]["state"], "up", "the prober reports: the site is up, its radio is not");

    let metrics = text(&http, "/metrics").await;
    for want in [
        r#"aggregator_site_radio_up{region="kampala",prober="kla-1",modem="ttyUSB2"} 0"#,
        r#"aggregator_site_radio_up{region="kampala",prober="kla-1",modem="ttyUSB3"} 0"#,
    ] {
        assert!(metrics.contains(want), "missing {want} in\n{metrics}");
    }
    assert!(!metrics.contains(r#"aggregator_site_radio_signal_dbm{region="kampala",prober="kla-1",modem="ttyUSB2"}"#));

    let page = text(&http, "/status").await;
    assert!(page.contains(r#"<span class="pill down" data-field="radio">radio down</span>"#), "{page}");
    assert!(page.contains(r#"data-prober="kla-1" data-modem="ttyUSB3" data-field="radio-row""#), "{page}");
    assert!(page.contains(r#"data-field="radio-note">radio down at kampala</td>"#), "{page}");
    assert!(page.contains(r#"<span class="muted">no modem</span>"#), "Dar has none: {page}");

    // The radios are stored with the report: a restart keeps them.
    let config_dir = server.store().path().parent().unwrap().parent().unwrap().to_path_buf();
    server.shutdown().await.unwrap();
    let config = aggregator::Config::load_with_env(&config_dir.join("aggregator.yaml"), &env).unwrap();
    let server = Server::start(&config, Arc::new(clock.clone())).await.unwrap();
    let (_, j) = Http::new(server.base_url()).get("/api/v1/probers").await;
    assert_eq!(site(&j)[0]["state"], "down");
    assert_eq!(j["probers"][1]["radios"][0]["modem"], "ttyUSB2");
    server.shutdown().await.unwrap();
}
