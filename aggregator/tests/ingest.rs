//! Ingest, query, status, relay and metrics through a real listener on loopback.

mod common;

use std::sync::Arc;

use aggregator::{
    Server,
    clock::{Clock, ManualClock},
    store::{MINUTE_MS, Selection},
};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T0: i64 = 1_800_000_000_000; // a minute boundary

fn ok_report(seq: u64, end_ms: i64) -> report::Report {
    report("nbo-1", "nairobi", seq, end_ms, vec![series(key("checkout", "", "ok", "nairobi"), &[1_000_000, 1_500_000])])
}

#[tokio::test]
async fn auth_matrix_and_bad_input_change_nothing() {
    let clock = ManualClock::new(T0 + 15_000);
    let (server, http, _dir) = start_on("auth", "max_body_bytes: 64KiB\n", &clock).await;
    let r = ok_report(1, T0 + 15_000);

    let (s, j) = http.post_report(None, &r).await;
    assert_eq!((s, j["status"].as_str()), (401, Some("rejected")), "{j}");
    let (s, j) = http.post_report(Some("not-a-known-token-at-all"), &r).await;
    assert_eq!(s, 401, "{j}");
    assert_eq!(j["reason"], "unknown token");

    // Kampala's token may not report as Nairobi.
    let (s, j) = http.post_report(Some(KLA), &r).await;
    assert_eq!(s, 403, "{j}");
    assert!(j["reason"].as_str().unwrap().contains("kla-1"), "{j}");
    // Right prober, wrong region.
    let mut wrong_region =
        report("nbo-1", "kampala", 1, T0 + 15_000, vec![series(key("checkout", "", "ok", "kampala"), &[5])]);
    wrong_region.seq = 1;
    let (s, _) = http.post_report(Some(NBO), &wrong_region).await;
    assert_eq!(s, 403);

    // Corrupt: the decoder's reason comes back.
    let (s, j, _) = http.request("POST", "/api/v1/reports", Some(NBO), b"{\"v\":1,".to_vec()).await;
    assert_eq!(s, 400);
    assert!(j["reason"].as_str().unwrap().starts_with("not a report"), "{j}");
    let mut bad_seq = ok_report(1, T0 + 15_000);
    bad_seq.seq = 0;
    let (s, j) = http.post_report(Some(NBO), &bad_seq).await;
    assert_eq!(s, 400);
    assert!(j["reason"].as_str().unwrap().contains("seq"), "{j}");

    // Over the limit by Content-Length.
    let (s, j, _) = http.request("POST", "/api/v1/reports", Some(NBO), vec![b' '; 100 * 1024]).await;
    assert_eq!(s, 413, "{j}");
    // Over the limit while reading (chunked, no Content-Length).
    assert_eq!(chunked_post(server.local_addr(), NBO, 100 * 1024).await, 413);

    // Nothing was stored by any of that.
    let store = server.store().clone();
    assert_eq!(store.counts(&Selection::all(), 0, i64::MAX).unwrap().total, 0);
    assert!(!store.seen("nbo-1", 1).unwrap());

    // The good report is stored, its replay acknowledged as a duplicate and not counted twice.
    let (s, j) = http.post_report(Some(NBO), &r).await;
    assert_eq!((s, j["status"].as_str()), (200, Some("stored")), "{j}");
    let (s, j) = http.post_report(Some(NBO), &r).await;
    assert_eq!((s, j["status"].as_str()), (200, Some("duplicate")), "{j}");
    assert_eq!(store.counts(&Selection::all(), 0, i64::MAX).unwrap().total, 2);

    let (_, metrics, _) = http.request("GET", "/metrics", None, Vec::new()).await;
    let _ = metrics;
    let text = String::from_utf8(http.request("GET", "/metrics", None, Vec::new()).await.2.to_vec()).unwrap();
    for line in [
        r#"aggregator_reports_total{result="rejected",reason="unauthenticated"} 2"#,
        r#"aggregator_reports_total{result="rejected",reason="forbidden"} 2"#,
        r#"aggregator_reports_total{result="rejected",reason="malformed"} 1"#,
        r#"aggregator_reports_total{result="rejected",reason="invalid"} 1"#,
        r#"aggregator_reports_total{result="rejected",reason="too_large"} 2"#,
        r#"aggregator_reports_total{result="stored",reason=""} 1"#,
        r#"aggregator_reports_total{result="duplicate",reason=""} 1"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    // Tokens never reach the metrics.
    assert!(!text.contains(NBO) && !text.contains(KLA));
    server.shutdown().await.unwrap();
}

/// POSTs `n` bytes with `Transfer-Encoding: chunked`; returns the status code.
async fn chunked_post(addr: std::net::SocketAddr, token: &str, n: usize) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/reports HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 8 * 1024];
    let mut sent = 0;
    while sent < n {
        let msg = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if s.write_all(&msg).await.is_err() {
            break; // the server answered and closed
        }
        sent += chunk.len();
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut buf = vec![0u8; 1024];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(k) => got.extend_from_slice(&buf[..k]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn a_report_the_store_cannot_commit_is_not_acknowledged() {
    let clock = ManualClock::new(T0 + 15_000);
    let (server, http, _dir) = start_on("busy", "busy_timeout: 100ms\n", &clock).await;
    let r = ok_report(7, T0 + 15_000);
    // Another process holds the database's write lock.
    let other = rusqlite::Connection::open(server.store().path()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (s, j) = http.post_report(Some(NBO), &r).await;
    assert_eq!((s, j["status"].as_str()), (503, Some("unavailable")), "{j}");
    let (s, _) = http.get("/readyz").await;
    assert_eq!(s, 503);
    other.execute_batch("ROLLBACK").unwrap();
    // The retry is stored: the failed attempt left no trace.
    let (s, j) = http.post_report(Some(NBO), &r).await;
    assert_eq!((s, j["status"].as_str()), (200, Some("stored")), "{j}");
    assert_eq!(http.get("/readyz").await.0, 200);
    assert_eq!(http.get("/healthz").await.0, 200);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn query_merges_exactly_and_groups() {
    let clock = ManualClock::new(T0 + 10 * MINUTE_MS);
    let (server, http, _dir) = start_on("query", "", &clock).await;
    let mut by_hand = report::new_histogram();
    let mut kampala_ok = 0;
    for m in 0..5i64 {
        let end = T0 + m * MINUTE_MS + 45_000;
        let nbo_vals: Vec<u64> = (0..30).map(|i| 200_000 + i * 37_000 + m as u64 * 1_000).collect();
        let kla_vals: Vec<u64> = (0..10).map(|i| 900_000 + i * 250_000).collect();
        for v in nbo_vals.iter().chain(&kla_vals).chain(&[30_000_000]) {
            by_hand.record(*v).unwrap();
        }
        kampala_ok += kla_vals.len() as u64;
        let nbo = report(
            "nbo-1",
            "nairobi",
            m as u64 + 1,
            end,
            vec![series(key("checkout", "", "ok", "nairobi"), &nbo_vals)],
        );
        let kla = report(
            "kla-1",
            "kampala",
            m as u64 + 1,
            end,
            vec![
                series(key("checkout", "", "ok", "kampala"), &kla_vals),
                series(key("checkout", "", "timeout", "kampala"), &[30_000_000]),
                // A step-level series: not counted by the default (journey-level) query.
                series(key("checkout", "pay", "ok", "kampala"), &[5_000]),
            ],
        );
        assert_eq!(http.post_report(Some(NBO), &nbo).await.0, 200);
        assert_eq!(http.post_report(Some(KLA), &kla).await.0, 200);
    }
    let (s, j) = http.get(&format!("/api/v1/query?journey=checkout&from={T0}&to={}", T0 + 10 * MINUTE_MS)).await;
    assert_eq!(s, 200, "{j}");
    let g = &j["groups"][0];
    assert_eq!(g["count"], 205);
    let ms = |us: u64| us as f64 / 1000.0;
    assert_eq!(g["latency_ms"]["p50"].as_f64().unwrap(), ms(by_hand.value_at_quantile(0.5)));
    assert_eq!(g["latency_ms"]["p95"].as_f64().unwrap(), ms(by_hand.value_at_quantile(0.95)));
    assert_eq!(g["latency_ms"]["p99"].as_f64().unwrap(), ms(by_hand.value_at_quantile(0.99)));
    assert_eq!(g["latency_ms"]["max"].as_f64().unwrap(), ms(by_hand.max()));
    assert_eq!(g["latency_ms"]["min"].as_f64().unwrap(), ms(by_hand.min()));

    let (s, j) = http.get("/api/v1/query?region=kampala&group_by=region,outcome&from=2027-01-15T08:00:00Z").await;
    assert_eq!(s, 200, "{j}");
    let groups = j["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{j}");
    assert_eq!(groups[0]["labels"]["outcome"], "ok");
    assert_eq!(groups[0]["count"], kampala_ok);
    assert_eq!(groups[1]["labels"]["outcome"], "timeout");
    assert_eq!(groups[1]["outcomes"]["timeout"], 5);
    // Every step and the journey level.
    let (_, j) = http.get(&format!("/api/v1/query?step=*&region=kampala&from={T0}")).await;
    assert_eq!(j["groups"][0]["count"], kampala_ok + 5 + 5);
    // Mistakes are explained.
    let (s, j) = http.get("/api/v1/query?group_by=city").await;
    assert_eq!(s, 400);
    assert!(j["reason"].as_str().unwrap().contains("city"));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn load_runs_are_queried_apart() {
    let clock = ManualClock::new(T0 + 60_000);
    let (server, http, _dir) = start_on("runs", "", &clock).await;
    let mut r = report(
        "dar-1",
        "dar",
        1,
        T0 + 30_000,
        vec![
            series(key("checkout", "", "ok", "dar"), &[1_000, 2_000]),
            series(key("checkout", "pay", "ok", "dar"), &[500]),
        ],
    );
    r.run = Some("run-7".into());
    assert_eq!(http.post_report(Some(DAR), &r).await.0, 200);
    let (s, j) = http.get("/api/v1/runs/run-7").await;
    assert_eq!(s, 200, "{j}");
    assert_eq!(j["run"]["reports"], 1);
    assert_eq!(j["groups"].as_array().unwrap().len(), 2);
    assert_eq!(http.get("/api/v1/runs/run-8").await.0, 404);
    // Not in the SLO data.
    let (_, j) = http.get(&format!("/api/v1/query?from={T0}")).await;
    assert_eq!(j["groups"].as_array().unwrap().len(), 0, "{j}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn skewed_clock_is_flagged_and_the_interval_corrected() {
    let clock = ManualClock::new(T0 + 5 * MINUTE_MS);
    let (server, http, _dir) = start_on("skew", "", &clock).await;
    let probers = async || http.get("/api/v1/probers").await.1;
    // Kampala's clock runs 3 minutes fast: its intervals "end" 3 min ahead. Nairobi is 1 s fast,
    // within the threshold (2 s).
    for seq in 1..=3u64 {
        let now = clock.now_ms();
        let mut r = report(
            "kla-1",
            "kampala",
            seq,
            now + 3 * MINUTE_MS,
            vec![series(key("checkout", "", "ok", "kampala"), &[9])],
        );
        r.sent_at_ms = now + 3 * MINUTE_MS;
        assert_eq!(http.post_report(Some(KLA), &r).await.0, 200);
        let mut n =
            report("nbo-1", "nairobi", seq, now - 1_000, vec![series(key("checkout", "", "ok", "nairobi"), &[9])]);
        n.sent_at_ms = now + 1_000;
        assert_eq!(http.post_report(Some(NBO), &n).await.0, 200);
        let j = probers().await;
        let kla = &j["probers"][1];
        assert_eq!(kla["id"], "kla-1");
        if seq < 3 {
            // One or two samples are not an agreement: flagged, taken as they are (inside the
            // 5 min horizon), not re-timed.
            assert_eq!((&kla["clock_jump"], &kla["clock_skewed"]), (&true.into(), &false.into()), "{j}");
            assert_eq!(kla["clock_observed_offset_ms"], 3 * MINUTE_MS);
            assert_eq!(kla["clock_offset_ms"], 0);
            assert_eq!(kla["last_interval_end_ms"], now + 3 * MINUTE_MS);
            clock.advance_ms(15_000);
        }
    }
    let now = clock.now_ms();
    let j = probers().await;
    let kla = &j["probers"][1];
    assert_eq!((&kla["clock_jump"], &kla["clock_skewed"]), (&false.into(), &true.into()), "{j}");
    assert_eq!(kla["clock_offset_ms"], 3 * MINUTE_MS);
    assert_eq!(kla["clock_observed_offset_ms"], serde_json::Value::Null);
    assert_eq!(kla["last_interval_end_ms"], now + 3 * MINUTE_MS - 15_000, "the second, uncorrected, is the newest");
    let nbo = &j["probers"][0];
    assert_eq!((&nbo["clock_skewed"], &nbo["clock_jump"]), (&false.into(), &false.into()), "{j}");
    assert_eq!(nbo["clock_offset_ms"], 1_000);
    // The third report, agreeing with the first two, is stored in the corrected minute.
    let b = server.store().minutes(&Selection::all().regions(["kampala"]), 0, i64::MAX).unwrap();
    assert!(b.iter().any(|b| b.start_ms == store_minute(now)), "{b:?}");
    let text = String::from_utf8(http.request("GET", "/metrics", None, Vec::new()).await.2.to_vec()).unwrap();
    assert!(text.contains(r#"aggregator_prober_clock_skewed{prober="kla-1",region="kampala"} 1"#), "{text}");
    assert!(text.contains(r#"aggregator_prober_clock_jump{prober="kla-1",region="kampala"} 0"#), "{text}");
    assert!(text.contains(r#"aggregator_prober_clock_offset_seconds{prober="kla-1",region="kampala"} 180"#), "{text}");
    server.shutdown().await.unwrap();
}

fn store_minute(end_ms: i64) -> i64 {
    aggregator::store::minute_of_end(end_ms)
}

#[tokio::test]
async fn prober_states_tell_a_silent_site_from_a_failing_journey() {
    let clock = ManualClock::new(T0 + 15_000);
    let (server, http, _dir) = start_on("status", "", &clock).await;
    let state = |j: &serde_json::Value, i: usize| j["probers"][i]["state"].as_str().unwrap().to_owned();
    let (_, j) = http.get("/api/v1/probers").await;
    assert_eq!((state(&j, 0), state(&j, 1), state(&j, 2)), ("never".into(), "never".into(), "never".into()));

    // Kampala reports: checkout fails there, but the site is up.
    let r = report(
        "kla-1",
        "kampala",
        1,
        T0 + 15_000,
        vec![series(key("checkout", "", "timeout", "kampala"), &[30_000_000])],
    );
    assert_eq!(http.post_report(Some(KLA), &r).await.0, 200);
    let (_, j) = http.get("/api/v1/probers").await;
    assert_eq!(state(&j, 1), "up");
    assert_eq!(j["probers"][1]["outbox_backlog"], 2);
    assert_eq!(j["probers"][1]["outbox_dropped_total"], 1);
    assert_eq!(j["probers"][1]["reports"]["stored_total"], 1);
    assert_eq!(j["probers"][1]["interval_s"], 15.0);

    clock.advance_ms(45_000);
    let (_, j) = http.get("/api/v1/probers").await;
    assert_eq!(state(&j, 1), "late");
    assert_eq!(j["probers"][1]["lag_s"], 45.0);
    clock.advance_ms(10 * MINUTE_MS);
    let (_, j) = http.get("/api/v1/probers").await;
    assert_eq!(state(&j, 1), "down");
    assert_eq!(state(&j, 0), "never");
    let text = String::from_utf8(http.request("GET", "/metrics", None, Vec::new()).await.2.to_vec()).unwrap();
    assert!(text.contains(r#"aggregator_prober_state{prober="kla-1",region="kampala",state="down"} 1"#), "{text}");

    // Status survives a restart (it is stored with the report).
    let config_dir = server.store().path().parent().unwrap().parent().unwrap().to_path_buf();
    server.shutdown().await.unwrap();
    let config = aggregator::Config::load_with_env(&config_dir.join("aggregator.yaml"), &env).unwrap();
    let server = Server::start(&config, Arc::new(clock.clone())).await.unwrap();
    let (_, j) = Http::new(server.base_url()).get("/api/v1/probers").await;
    assert_eq!(state(&j, 1), "down");
    assert_eq!(j["probers"][1]["last_interval_end_ms"], T0 + 15_000);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn stk_callbacks_are_relayed_once() {
    let clock = ManualClock::new(T0);
    let (server, http, _dir) = start_on("relay", "", &clock).await;
    let cb = br#"{"Body":{"stkCallback":{"MerchantRequestID":"m-1","CheckoutRequestID":"ws_CO_42","ResultCode":1037,"ResultDesc":"No response"}}}"#;
    let fetch = async |token: Option<&str>| http.request("GET", "/stk/ws_CO_42", token, Vec::new()).await;
    assert_eq!(fetch(Some(KLA)).await.0, 404);
    let (s, j, _) = http.request("POST", "/stk/callback", None, cb.to_vec()).await;
    assert_eq!((s, j["ResultCode"].as_i64()), (200, Some(0)), "{j}");
    let later = cb.to_vec().iter().map(|&b| if b == b'7' { b'2' } else { b }).collect::<Vec<u8>>();
    assert_eq!(http.request("POST", "/stk/callback", None, later).await.0, 200);
    let (s, _, body) = fetch(Some(KLA)).await;
    assert_eq!(s, 200);
    assert_eq!(&body[..], &cb[..], "the first delivery is kept");
    // A callback names the payer's phone: only a prober (any configured token) reads it.
    for (token, reason) in [(None, "missing"), (Some("not-a-token"), "unknown token")] {
        let (s, j, _) = fetch(token).await;
        assert_eq!(s, 401, "{j}");
        assert!(j["reason"].as_str().unwrap().contains(reason), "{j}");
        assert!(!j.to_string().contains("ws_CO_42") && !j.to_string().contains("ResultCode"), "{j}");
    }
    let (s, _, _) = http.request("POST", "/stk/callback", None, b"{}".to_vec()).await;
    assert_eq!(s, 400);
    clock.advance_ms(16 * MINUTE_MS); // past the 15 min TTL
    assert_eq!(fetch(Some(KLA)).await.0, 404);
    server.shutdown().await.unwrap();
}
