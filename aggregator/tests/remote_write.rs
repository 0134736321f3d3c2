//! Prometheus remote write against a fake receiver on loopback (500 and 429 retried while ingest
//! and alerting go on; 400 not retried, dropped and counted), and against real receivers:
//! Prometheus 2.42 with `--web.enable-remote-write-receiver` (Debian's `prometheus`) and
//! VictoriaMetrics (Debian's `victoria-metrics`) store the series, and the rules `aggregator
//! rules` prints, evaluated by that Prometheus over the remote-written counters, give the burn
//! rates the aggregator exports (docs/remote-write.md, "Parity"). Under CI=true a missing tool is a
//! failure.

mod common;

use std::{collections::VecDeque, sync::Arc, time::Duration};

use aggregator::{
    client::HttpClient,
    clock::ManualClock,
    config::RemoteWriteConfig,
    metrics::{Metrics, RemoteCodeLabels, RemoteDropLabels, RemoteLabels},
    remote_write::{
        RemoteWriter,
        proto::{TimeSeries, WriteRequest},
    },
};
use axum::{Router, extract::State, http::HeaderMap, response::IntoResponse, routing::post};
use bytes::Bytes;
use common::{DAR, KLA, NBO, key, report, series};
use parking_lot::Mutex;
use prost::Message as _;
use report::Report;
use testkit::reports::ReportBuilder;

// ===================================================================== a fake receiver

#[derive(Default)]
struct Fake {
    /// Statuses to answer, in order; then 200.
    script: Mutex<VecDeque<u16>>,
    /// Every request: its headers and its decoded body (None: not snappy + protobuf).
    seen: Mutex<Vec<(HeaderMap, Option<WriteRequest>)>>,
}

async fn receive(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let decoded =
        snap::raw::Decoder::new().decompress_vec(&body).ok().and_then(|raw| WriteRequest::decode(raw.as_slice()).ok());
    fake.seen.lock().push((headers, decoded));
    let status = fake.script.lock().pop_front().unwrap_or(200);
    let mut reply = HeaderMap::new();
    if status == 429 {
        reply.insert("retry-after", "1".parse().unwrap());
    }
    (axum::http::StatusCode::from_u16(status).unwrap(), reply, "fake")
}

async fn fake_receiver(script: &[u16]) -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake { script: Mutex::new(script.iter().copied().collect()), ..Fake::default() });
    let app = Router::new().route("/api/v1/write", post(receive)).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (fake, format!("http://{addr}/api/v1/write"))
}

/// Polls `cond` every 50 ms for at most 30 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..600 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

fn checkout(prober: &str, region: &str, seq: u64, end_ms: i64, ok: u64, failed: u64) -> Report {
    let mut r = ReportBuilder::new(prober, region).seq(seq).lasting(60_000).ending_at(end_ms).sent_at(end_ms);
    for (outcome, n) in [("ok", ok), ("gateway_error", failed)] {
        if n > 0 {
            r = r.with(series(key("checkout-mpesa", "", outcome, region), &vec![800_000; n as usize]));
        }
    }
    r.build()
}

fn remote_yaml(url: &str) -> String {
    format!(
        "replica: aggregator-0\nslo:\n  evaluation_interval: 1s\nremote_write:\n  - name: fake\n    url: {url}\n    \
         interval: 1s\n    timeout: 5s\n    external_labels: {{cluster: test, region: never-wins}}\n"
    )
}

fn label<'a>(t: &'a TimeSeries, name: &str) -> Option<&'a str> {
    t.labels.iter().find(|l| l.name == name).map(|l| l.value.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_500_and_429_is_retried_while_ingest_and_alerting_go_on() {
    let (fake, url) = fake_receiver(&[500, 500, 429]).await;
    let now = 1_800_000_000_000;
    let clock = ManualClock::new(now);
    let (server, http, _dir) = common::start_on("rw-retry", &remote_yaml(&url), &clock).await;
    // Ten minutes of Kampala checkouts failing, sent while the receiver is failing.
    for (i, m) in (0..10).rev().enumerate() {
        let (status, body) =
            http.post_report(Some(KLA), &checkout("kla-1", "kampala", i as u64 + 1, now - m * 60_000, 0, 4)).await;
        assert_eq!(status, 200, "ingest goes on: {body}");
    }
    let metrics = server.state().metrics.clone();
    let fake_l = RemoteLabels { remote: "fake".into() };
    let code = |c: &str| RemoteCodeLabels { remote: "fake".into(), code: c.into() };
    eventually("two 500s and a 429 retried, then a batch taken", || {
        metrics.remote_write_samples.get_or_create(&fake_l).get() > 0
    })
    .await;
    assert!(metrics.remote_write_requests.get_or_create(&code("500")).get() >= 2);
    assert!(metrics.remote_write_requests.get_or_create(&code("429")).get() >= 1);
    assert!(metrics.remote_write_retries.get_or_create(&fake_l).get() >= 3);
    let dropped = |r: &str| {
        metrics
            .remote_write_samples_dropped
            .get_or_create(&RemoteDropLabels { remote: "fake".into(), reason: r.into() })
            .get()
    };
    assert_eq!((dropped("rejected_4xx"), dropped("queue_full")), (0, 0));
    // Alerting went on: the page fired while the receiver refused.
    eventually("the Kampala page firing", || {
        server.state().slo.latest().firing.iter().any(|f| f.scope.region == "kampala")
    })
    .await;

    // What arrived: the documented headers, the series of /metrics, labels sorted, the replica
    // and the external labels added (a series' own label wins), stamped with the clock's time.
    let seen: Vec<(HeaderMap, Option<WriteRequest>)> = fake.seen.lock().clone();
    let (headers, body) = seen.last().unwrap();
    assert_eq!(headers["content-encoding"], "snappy");
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(headers["x-prometheus-remote-write-version"], "0.1.0");
    assert!(headers["user-agent"].to_str().unwrap().starts_with("savanna-pulse-aggregator/"));
    let all: Vec<&TimeSeries> = seen.iter().filter_map(|(_, b)| b.as_ref()).flat_map(|w| &w.timeseries).collect();
    assert!(body.is_some());
    let runs = all
        .iter()
        .find(|t| {
            label(t, "__name__") == Some("synthetic_journey_runs_total")
                && label(t, "region") == Some("kampala")
                && label(t, "outcome") == Some("gateway_error")
        })
        .expect("the Kampala failures are written");
    assert_eq!(runs.samples[0].value, 40.0);
    assert_eq!(runs.samples[0].timestamp, now);
    assert_eq!((label(runs, "replica"), label(runs, "cluster")), (Some("aggregator-0"), Some("test")));
    let names: Vec<&str> = runs.labels.iter().map(|l| l.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    assert_eq!(names[0], "__name__");
    for family in [
        "synthetic_journey_duration_seconds_bucket",
        "synthetic_journey_duration_seconds_count",
        "synthetic_slo_burn_rate",
        "synthetic_slo_error_budget_remaining_ratio",
        "aggregator_prober_state",
    ] {
        assert!(all.iter().any(|t| label(t, "__name__") == Some(family)), "{family} is written");
    }
    assert!(
        all.iter().filter(|t| label(t, "journey").is_some()).all(|t| label(t, "region") != Some("never-wins")),
        "an external label never overrides a series' own"
    );
    let own = all.iter().find(|t| label(t, "__name__") == Some("aggregator_series")).unwrap();
    assert_eq!(label(own, "region"), Some("never-wins"), "…and is added where the series has none");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_400_is_not_retried_and_the_batch_is_dropped_and_counted() {
    let (fake, url) = fake_receiver(&[400]).await;
    let now = 1_800_000_000_000;
    let clock = ManualClock::new(now);
    let (server, http, _dir) = common::start_on("rw-400", &remote_yaml(&url), &clock).await;
    let ok =
        report("nbo-1", "nairobi", 1, now, vec![series(key("checkout-mpesa", "", "ok", "nairobi"), &[800_000; 4])]);
    let (status, _) = http.post_report(Some(NBO), &ok).await;
    assert_eq!(status, 200);
    let metrics = server.state().metrics.clone();
    let fake_l = RemoteLabels { remote: "fake".into() };
    let rejected = RemoteDropLabels { remote: "fake".into(), reason: "rejected_4xx".into() };
    eventually("the refused batch counted, and the next one taken", || {
        metrics.remote_write_samples_dropped.get_or_create(&rejected).get() > 0
            && metrics.remote_write_samples.get_or_create(&fake_l).get() > 0
    })
    .await;
    assert_eq!(metrics.remote_write_retries.get_or_create(&fake_l).get(), 0, "a 400 is never retried");
    assert_eq!(
        metrics
            .remote_write_requests
            .get_or_create(&RemoteCodeLabels { remote: "fake".into(), code: "400".into() })
            .get(),
        1
    );
    // The refused batch was sent once: the next request carries a later batch.
    assert!(fake.seen.lock().len() >= 2);
    // On /metrics, with the replica label every series carries.
    let text = HttpClient::default().get_text(&format!("{}/metrics", server.base_url())).await.unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("aggregator_remote_write_samples_dropped_total{") && l.contains(r#"reason="rejected_4xx""#)
        })
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains(r#"replica="aggregator-0""#) && line.contains(r#"remote="fake""#), "{line}");
    assert!(
        text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).all(|l| l.contains(r#"replica="aggregator-0""#)),
        "every series carries the replica"
    );
    server.shutdown().await.unwrap();
}

// ===================================================================== real receivers

fn writer_to(url: &str, metrics: &Arc<Metrics>) -> Arc<RemoteWriter> {
    let config = RemoteWriteConfig {
        name: "real".into(),
        url: url.parse().unwrap(),
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(10),
        headers: Vec::new(),
        auth: None,
        external_labels: vec![("cluster".into(), "ea-test".into())],
        replica_label: "replica".into(),
        queue_capacity: 1_000,
    };
    RemoteWriter::new(config, Some("aggregator-0"), metrics.clone())
}

/// One instant query's vector: (labels, value).
async fn instant(base: &str, q: &str, at_ms: i64) -> Vec<(serde_json::Map<String, serde_json::Value>, f64)> {
    let url =
        format!("{base}/api/v1/query?query={}&time={:.3}", aggregator::client::url_segment(q), at_ms as f64 / 1000.0);
    let v: serde_json::Value = HttpClient::default().get_json(&url).await.unwrap_or_else(|e| panic!("{q}: {e}"));
    assert_eq!(v["status"], "success", "{q}: {v}");
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let value: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
            (r["metric"].as_object().unwrap().clone(), value)
        })
        .collect()
}

const MIN: i64 = 60_000;

/// A simulated hour and ten minutes, written in order from the past, one exposition a minute:
/// Nairobi healthy; Kampala failing one checkout in four from minute 40 to 55, then healthy;
/// Dar failing 1 in 20. Returns the last written time.
async fn simulated_hour(
    server: &aggregator::Server,
    http: &common::Http,
    clock: &ManualClock,
    writer: &RemoteWriter,
    start: i64,
) -> i64 {
    let mut last = start;
    for m in 1..=70i64 {
        let t = start + m * MIN;
        clock.set(t);
        let kla_failed = if (40..55).contains(&m) { 1 } else { 0 };
        let dar_failed = u64::from(m % 5 == 0);
        for (token, prober, region, ok, failed) in [
            (NBO, "nbo-1", "nairobi", 4, 0),
            (KLA, "kla-1", "kampala", 4 - kla_failed, kla_failed),
            (DAR, "dar-1", "dar", 4 - dar_failed, dar_failed),
        ] {
            let (status, body) =
                http.post_report(Some(token), &checkout(prober, region, m as u64, t, ok, failed)).await;
            assert_eq!(status, 200, "{body}");
        }
        server.state().slo.evaluate();
        let text = aggregator::web::exposition(server.state()).unwrap();
        writer.enqueue(&text, t);
        last = t;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stores_the_series_and_the_rules_over_them_give_the_aggregators_burn_rates() {
    let Some(prom) = testkit::prometheus::Prometheus::start(
        &testkit::prometheus::PrometheusConfig::every(Duration::from_secs(60)).remote_write_receiver(),
    )
    .await
    else {
        return;
    };
    // From 80 minutes ago, on whole minutes: the TSDB takes samples in order within its head.
    let wall = chrono::Utc::now().timestamp_millis();
    let start = wall - wall % MIN - 80 * MIN;
    let clock = ManualClock::new(start);
    let (server, http, _dir) = common::start_on("rw-prom", "replica: aggregator-0\n", &clock).await;
    let metrics = Arc::new(Metrics::new());
    let writer = writer_to(&format!("{}/api/v1/write", prom.url), &metrics);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let sender = tokio::spawn(writer.clone().send_loop(stop));
    let last = simulated_hour(&server, &http, &clock, &writer, start).await;
    let real = RemoteLabels { remote: "real".into() };
    eventually("every batch written", || {
        writer.queued() == 0 && metrics.remote_write_samples.get_or_create(&real).get() > 0
    })
    .await;
    let refused = RemoteDropLabels { remote: "real".into(), reason: "rejected_4xx".into() };
    assert_eq!(metrics.remote_write_samples_dropped.get_or_create(&refused).get(), 0, "{}", prom.log());

    // The counters came back with their labels and values.
    let kla =
        instant(&prom.url, r#"synthetic_journey_runs_total{region="kampala",step="",outcome="gateway_error"}"#, last)
            .await;
    assert_eq!(kla.len(), 1, "{kla:?}");
    assert_eq!(kla[0].1, 15.0);
    assert_eq!((kla[0].0["replica"].as_str(), kla[0].0["cluster"].as_str()), (Some("aggregator-0"), Some("ea-test")));

    // Parity: each window's error ratio from the generated rules' expressions, over the
    // remote-written counters, against the aggregator's own gauge (remote-written too).
    let rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&aggregator::slo::rules::rules_yaml(&aggregator::slo::spec::bundled())).unwrap();
    let mut compared = 0;
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let (Some(record), Some(expr)) = (rule["record"].as_str(), rule["expr"].as_str()) else { continue };
            let slo = rule["labels"]["slo"].as_str().unwrap_or_default();
            let Some(window) = record.strip_prefix("slo:sli_error:ratio_rate") else { continue };
            if slo != "checkout-availability"
                || !["5m", "30m", "1h"].contains(&window)
                || rule["labels"]["region"].is_string()
            {
                continue;
            }
            let from_rules = instant(&prom.url, expr, last).await;
            let gauges = instant(
                &prom.url,
                &format!(r#"synthetic_slo_error_ratio{{slo="{slo}",window="{window}",region!="all"}}"#),
                last,
            )
            .await;
            assert_eq!(from_rules.len(), 3, "{window}: {from_rules:?}");
            for (labels, ratio) in &from_rules {
                let region = labels["region"].as_str().unwrap();
                let gauge =
                    gauges.iter().find(|(l, _)| l["region"] == region).unwrap_or_else(|| panic!("{region} {window}"));
                assert!(
                    (ratio - gauge.1).abs() <= 1e-9 * gauge.1.abs().max(1.0),
                    "{slo} {region} {window}: rules {ratio} vs aggregator {}",
                    gauge.1
                );
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 9, "three regions × three windows");
    let _ = stop_tx.send(true);
    let _ = sender.await;
    server.shutdown().await.unwrap();
}

/// A VictoriaMetrics single node on loopback (killed on drop).
struct Victoria {
    child: std::process::Child,
    url: String,
    _dir: testkit::TempDir,
}

impl Drop for Victoria {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn victoria() -> Option<Victoria> {
    if !testkit::require_tool_with("victoria-metrics", &["-version"]) {
        return None;
    }
    let dir = testkit::temp_dir("victoria");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new("victoria-metrics")
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!("-storageDataPath={}", dir.join("data").display()))
        .arg("-retentionPeriod=1")
        .arg("-loggerLevel=ERROR")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting victoria-metrics");
    let vm = Victoria { child, url: format!("http://127.0.0.1:{port}"), _dir: dir };
    let client = HttpClient::default();
    for _ in 0..600 {
        if client.get(&format!("{}/health", vm.url)).await.is_ok_and(|r| r.status.is_success()) {
            return Some(vm);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("VictoriaMetrics did not become ready in 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn victoria_metrics_stores_the_series_with_their_labels_and_values() {
    let Some(vm) = victoria().await else { return };
    let wall = chrono::Utc::now().timestamp_millis();
    let start = wall - wall % MIN - 80 * MIN;
    let clock = ManualClock::new(start);
    let (server, http, _dir) = common::start_on("rw-vm", "replica: aggregator-0\n", &clock).await;
    let metrics = Arc::new(Metrics::new());
    let writer = writer_to(&format!("{}/api/v1/write", vm.url), &metrics);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let sender = tokio::spawn(writer.clone().send_loop(stop));
    let last = simulated_hour(&server, &http, &clock, &writer, start).await;
    eventually("every batch written", || writer.queued() == 0).await;
    let real = RemoteLabels { remote: "real".into() };
    assert!(metrics.remote_write_samples.get_or_create(&real).get() > 0);
    // VictoriaMetrics makes fresh samples searchable within a second or so: poll.
    let q = r#"synthetic_journey_runs_total{region="dar",step="",outcome="gateway_error"}"#;
    let mut got = Vec::new();
    for _ in 0..120 {
        let _ = HttpClient::default().get(&format!("{}/internal/force_flush", vm.url)).await;
        got = instant(&vm.url, q, last).await;
        if got.first().is_some_and(|(_, v)| *v == 14.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1, 14.0, "70 minutes, one Dar failure every 5");
    assert_eq!((got[0].0["replica"].as_str(), got[0].0["cluster"].as_str()), (Some("aggregator-0"), Some("ea-test")));
    let burn =
        instant(&vm.url, r#"synthetic_slo_burn_rate{slo="checkout-availability",region="dar",window="1h"}"#, last)
            .await;
    let ours = server
        .state()
        .slo
        .latest()
        .statuses
        .iter()
        .find(|s| s.scope.slo == "checkout-availability" && s.scope.region == "dar")
        .and_then(|s| s.burn_rate(aggregator::slo::windows::W1H))
        .unwrap();
    assert_eq!(burn.len(), 1);
    assert!((burn[0].1 - ours).abs() < 1e-9, "{} vs {ours}", burn[0].1);
    let _ = stop_tx.send(true);
    let _ = sender.await;
    server.shutdown().await.unwrap();
}
