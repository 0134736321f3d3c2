//! The SLO surface of a running aggregator: reports over HTTP move burn rates; `/metrics` passes
//! `promtool check metrics`; the JSON API and the status page agree; the page renders in headless
//! Chromium (Debian's `chromium`), and a screenshot is kept in `target/artifacts/` for CI.
//! Under CI=true, missing promtool or Chromium is a failure.

mod common;

use std::{process::Command, sync::Arc, time::Duration};

use aggregator::{
    Server,
    clock::{ManualClock, SharedClock},
};
use common::{Http, KLA, NBO, key, load_config, report, series, temp_dir};
use testkit::prometheus::Promtool;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burn_rates_flow_to_metrics_api_and_status_page() {
    let dir = temp_dir("slo-surface");
    let config = load_config(&dir, "slo:\n  evaluation_interval: 1s\n");
    let now = chrono::Utc::now().timestamp_millis();
    let clock = ManualClock::new(now);
    let shared: SharedClock = Arc::new(clock.clone());
    let server = Server::start(&config, shared).await.unwrap();
    let http = Http::new(server.base_url());

    // Ten minutes of 15 s reports: Kampala's checkout fails completely, Nairobi's is healthy.
    let mut seq = 0;
    for m in (0..40).rev() {
        seq += 1;
        let end = now - m * 15_000;
        let bad = report(
            "kla-1",
            "kampala",
            seq,
            end,
            vec![series(key("checkout-mpesa", "", "gateway_error", "kampala"), &[30_000_000; 4])],
        );
        let good = report(
            "nbo-1",
            "nairobi",
            seq,
            end,
            vec![series(key("checkout-mpesa", "", "ok", "nairobi"), &[1_200_000; 4])],
        );
        assert_eq!(http.post_report(Some(KLA), &bad).await.0, 200);
        assert_eq!(http.post_report(Some(NBO), &good).await.0, 200);
    }
    // The evaluation loop runs every second.
    let mut firing = serde_json::Value::Null;
    for _ in 0..100 {
        let (_, j, _) = http.request("GET", "/api/v1/alerts", None, vec![]).await;
        if j["firing"].as_array().is_some_and(|a| a.iter().any(|f| f["region"] == "kampala" && f["severity"] == "page"))
        {
            firing = j;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alerts = firing["firing"].as_array().expect("the Kampala page fires");
    assert!(!alerts.iter().any(|f| f["region"] == "nairobi"), "Nairobi is healthy: {firing}");

    let (_, slos, _) = http.request("GET", "/api/v1/slos?slo=checkout-availability", None, vec![]).await;
    let scopes = slos["slos"][0]["scopes"].as_array().unwrap();
    let kla = scopes.iter().find(|s| s["scope"]["region"] == "kampala").unwrap();
    let burn_5m =
        kla["windows"].as_array().unwrap().iter().find(|w| w["window"] == "5m").unwrap()["burn_rate"].as_f64().unwrap();
    assert!((burn_5m - 1000.0).abs() < 1e-6, "{kla}");
    let budget = kla["error_budget_remaining"].as_f64().unwrap();
    assert!(budget < 0.0, "160 failed runs of 160 at 99.9 %: the budget is overspent ({budget})");

    // /metrics: the design's names, and promtool's approval.
    let (status, _, metrics) = http.request("GET", "/metrics", None, vec![]).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(metrics.to_vec()).unwrap();
    for name in [
        "synthetic_journey_runs_total{journey=\"checkout-mpesa\",step=\"\",region=\"kampala\",outcome=\"gateway_error\"} 160",
        "synthetic_slo_alert_firing{slo=\"checkout-availability\",journey=\"checkout-mpesa\",region=\"kampala\",severity=\"page\"} 1",
        "synthetic_slo_error_budget_remaining_ratio{",
    ] {
        assert!(text.contains(name), "missing {name}");
    }
    let burn_line = text
        .lines()
        .find(|l| l.starts_with("synthetic_slo_burn_rate{slo=\"checkout-availability\",journey=\"checkout-mpesa\",region=\"kampala\",window=\"5m\"}"))
        .expect("the Kampala 5m burn rate is exported");
    let exported: f64 = burn_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((exported - burn_5m).abs() < 1e-9, "{burn_line} vs the API's {burn_5m}");
    assert!(!text.contains("# EOF"), "the Prometheus text format by default");
    assert!(text.contains("# TYPE synthetic_journey_runs_total counter"));
    if let Some(promtool) = Promtool::find() {
        let said = promtool.check_metrics(&text);
        assert!(said.ok, "promtool check metrics:\n{}", said.text);
    }

    // The status page: served, self-contained, and showing the API's numbers.
    let (status, _, page) = http.request("GET", "/status", None, vec![]).await;
    assert_eq!(status, 200);
    let html = String::from_utf8(page.to_vec()).unwrap();
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http://") && !html.contains("<script"),
        "no external assets or scripts"
    );
    assert!(html.contains("Savanna Pulse: status"));

    if testkit::require_tool("chromium") {
        let profile = dir.join("chromium-profile");
        let url = format!("{}/status", server.base_url());
        let chrome = |extra: &[&str]| {
            Command::new("chromium")
                .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
                .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
                .arg(format!("--user-data-dir={}", profile.display()))
                .args(extra)
                .arg(&url)
                .output()
                .unwrap()
        };
        let dom = String::from_utf8_lossy(&chrome(&["--dump-dom"]).stdout).into_owned();
        let row_start = dom
            .find("<tr data-slo=\"checkout-availability\" data-journey=\"checkout-mpesa\" data-region=\"kampala\">")
            .expect("the Kampala checkout row is on the rendered page");
        let row = &dom[row_start..row_start + dom[row_start..].find("</tr>").unwrap()];
        let cell = |field: &str| {
            let at = row.find(&format!("data-field=\"{field}\"")).unwrap_or_else(|| panic!("{field} missing in {row}"));
            let rest = &row[at..];
            let text = &rest[rest.find('>').unwrap() + 1..];
            text[..text.find('<').unwrap()].to_owned()
        };
        assert_eq!(cell("burn-5m"), format!("{burn_5m:.2}"), "page and API agree on the 5 m burn rate");
        assert_eq!(cell("budget"), format!("{:.1} %", budget * 100.0), "page and API agree on the budget");
        assert!(dom.contains("data-field=\"alert\" data-slo=\"checkout-availability\" data-journey=\"checkout-mpesa\" data-region=\"kampala\" data-severity=\"page\""));
        let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts");
        std::fs::create_dir_all(&artifacts).unwrap();
        let shot = artifacts.join("status-page.png");
        let _ = std::fs::remove_file(&shot);
        let out =
            chrome(&["--window-size=1400,1600", "--hide-scrollbars", &format!("--screenshot={}", shot.display())]);
        assert!(shot.exists(), "no screenshot: {}", String::from_utf8_lossy(&out.stderr));
        assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "the screenshot is suspiciously small");
    }
    server.shutdown().await.unwrap();
}
