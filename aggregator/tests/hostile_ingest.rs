//! Hostile or broken reports (issue 12): one test per finding, through a real listener on
//! loopback. Every refused or duplicate report is checked to change nothing: the prober's whole
//! `/api/v1/probers` entry (but the one counter that says it was refused or a duplicate), the
//! query API over all time and every series, and the store's totals.

mod common;

use aggregator::{
    clock::{Clock, ManualClock},
    store::{MINUTE_MS, Selection, minute_of_end},
};
use common::*;
use serde_json::{Value, json};

const T0: i64 = 1_800_000_000_000; // a minute boundary (2027-01-15T08:00:00Z)
const YEAR: i64 = 365 * 86_400_000;
const YEAR_2100: i64 = 4_102_444_800_000;

/// A Nairobi report of `runs` ok checkouts (1.2 s each), 15 s ending at `end_ms`.
fn nbo(seq: u64, end_ms: i64, runs: usize) -> report::Report {
    report("nbo-1", "nairobi", seq, end_ms, vec![series(key("checkout", "", "ok", "nairobi"), &vec![1_200_000; runs])])
}

use testkit::reports::wire;

async fn post_json(http: &Http, token: &str, v: &Value) -> (u16, Value) {
    let (s, j, _) = http.request("POST", "/api/v1/reports", Some(token), serde_json::to_vec(v).unwrap()).await;
    (s, j)
}

/// What the aggregator shows about `prober`, and every series over all time.
async fn snapshot(http: &Http, prober: &str) -> (Value, Value) {
    let (_, j) = http.get("/api/v1/probers").await;
    let entry = j["probers"].as_array().unwrap().iter().find(|p| p["id"] == prober).unwrap().clone();
    let (s, q) =
        http.get("/api/v1/query?from=0&to=9000000000000&step=*&group_by=journey,step,outcome,region,profile").await;
    assert_eq!(s, 200, "{q}");
    (entry, q)
}

/// `after` is `before` with `reports.<counter>` larger by `n`, and nothing else changed.
fn only_counted(before: &(Value, Value), after: &(Value, Value), counter: &str, n: u64) {
    let (mut b, mut a) = (before.0.clone(), after.0.clone());
    let count = |v: &Value| v["reports"][counter].as_u64().unwrap();
    assert_eq!(count(&a), count(&b) + n, "reports.{counter}: before {b}\nafter {a}");
    b["reports"][counter] = json!(0);
    a["reports"][counter] = json!(0);
    assert_eq!(a, b, "the prober's status changed");
    assert_eq!(after.1, before.1, "the query API changed");
}

async fn metrics(http: &Http) -> String {
    String::from_utf8(http.request("GET", "/metrics", None, Vec::new()).await.2.to_vec()).unwrap()
}

#[tokio::test]
async fn one_report_a_year_ahead_loses_no_acknowledged_run() {
    let clock = ManualClock::new(T0);
    let (server, http, _dir) = start_on("year-ahead", "", &clock).await;
    // (end of interval, runs) of every report acknowledged `stored`.
    let mut acknowledged: Vec<(i64, u64)> = Vec::new();
    let mut seq = 0;
    let mut send = async |clock: &ManualClock, sent_ahead: i64| {
        seq += 1;
        let now = clock.now_ms();
        let mut r = nbo(seq, now, 2 + seq as usize % 3);
        r.sent_at_ms = now + sent_ahead;
        let (s, j) = http.post_report(Some(NBO), &r).await;
        (r, s, j)
    };
    for _ in 0..3 {
        clock.advance_ms(15_000);
        let (r, s, j) = send(&clock, 40).await;
        assert_eq!((s, j["status"].as_str()), (200, Some("stored")), "{j}");
        acknowledged.push((r.interval_end_ms, r.series[0].count));
    }
    // A replay of the last report, sent by a clock a year ahead: a duplicate, which must change
    // nothing, the clock estimate included.
    let before = snapshot(&http, "nbo-1").await;
    let mut replay = nbo(3, clock.now_ms(), 2); // 2 + seq % 3, as sent
    replay.sent_at_ms = clock.now_ms() + YEAR;
    let (s, j) = http.post_report(Some(NBO), &replay).await;
    assert_eq!((s, j["status"].as_str()), (200, Some("duplicate")), "{j}");
    only_counted(&before, &snapshot(&http, "nbo-1").await, "duplicates", 1);
    // A fresh report from that clock: its interval is right by ours, so it is taken as it is
    // (flagged, not re-timed by a year).
    clock.advance_ms(15_000);
    let (r, s, j) = send(&clock, YEAR).await;
    assert_eq!((s, j["status"].as_str()), (200, Some("stored")), "{j}");
    acknowledged.push((r.interval_end_ms, r.series[0].count));
    let (entry, _) = snapshot(&http, "nbo-1").await;
    assert_eq!(entry["clock_offset_ms"], 40, "{entry}");
    assert_eq!(entry["clock_jump"], true, "{entry}");
    // The prober's next real reports.
    for _ in 0..8 {
        clock.advance_ms(15_000);
        let (r, s, j) = send(&clock, 40).await;
        assert_eq!((s, j["status"].as_str()), (200, Some("stored")), "{j}");
        acknowledged.push((r.interval_end_ms, r.series[0].count));
    }
    let (entry, _) = snapshot(&http, "nbo-1").await;
    assert_eq!((&entry["clock_jump"], &entry["clock_skewed"]), (&json!(false), &json!(false)), "{entry}");
    // Three minutes later, after a maintenance pass, every acknowledged run is counted within
    // ±1 h of now, each in the minute its interval ended.
    clock.advance_ms(3 * MINUTE_MS);
    let now = clock.now_ms();
    server.store().maintain(now).unwrap();
    let total: u64 = acknowledged.iter().map(|a| a.1).sum();
    let near = server.store().counts(&Selection::all(), now - 3_600_000, now + 3_600_000).unwrap();
    assert_eq!(near.total, total, "every acknowledged run within ±1 h of now");
    let mut by_minute = std::collections::BTreeMap::<i64, u64>::new();
    for (end, n) in &acknowledged {
        *by_minute.entry(minute_of_end(*end)).or_default() += n;
    }
    let stored: std::collections::BTreeMap<i64, u64> = server
        .store()
        .minutes(&Selection::all(), 0, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|b| (b.start_ms, b.count))
        .collect();
    assert_eq!(stored, by_minute, "each run in its own minute");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_duplicate_changes_nothing() {
    let clock = ManualClock::new(T0 + 15_000);
    let (server, http, _dir) = start_on("dup-status", "", &clock).await;
    let mut r = nbo(1, T0 + 15_000, 3);
    r.interval_start_ms = r.interval_end_ms - 5_000;
    r.heartbeat.outbox_backlog = 0;
    assert_eq!(http.post_report(Some(NBO), &r).await.0, 200);
    clock.advance_ms(2_000);
    let before = snapshot(&http, "nbo-1").await;

    // The same seq, same interval, another heartbeat, sent by a clock a year ahead.
    let mut replay = r.clone();
    replay.heartbeat.outbox_backlog = 123_456;
    replay.heartbeat.outbox_dropped_total = 99;
    replay.heartbeat.version = "evil-9.9".into();
    replay.sent_at_ms += YEAR;
    let (s, j) = http.post_report(Some(NBO), &replay).await;
    assert_eq!((s, j["status"].as_str()), (200, Some("duplicate")), "{j}");
    // The same seq, an hour-long interval a year ahead.
    replay.interval_start_ms = r.interval_end_ms + YEAR;
    replay.interval_end_ms = replay.interval_start_ms + 3_600_000;
    let (s, j) = http.post_report(Some(NBO), &replay).await;
    assert_eq!((s, j["status"].as_str()), (200, Some("duplicate")), "{j}");

    let after = snapshot(&http, "nbo-1").await;
    only_counted(&before, &after, "duplicates", 2);
    assert_eq!(after.0["version"], "test");
    assert_eq!(after.0["state"], "up");
    assert!(after.0["lag_s"].as_f64().unwrap() >= 0.0, "{}", after.0);
    assert_eq!(server.store().counts(&Selection::all(), 0, i64::MAX).unwrap().total, 3);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn outcomes_outside_the_vocabulary_are_refused() {
    let clock = ManualClock::new(T0 + 15_000);
    let (server, http, _dir) = start_on("vocabulary", "", &clock).await;
    assert_eq!(http.post_report(Some(NBO), &nbo(1, T0 + 15_000, 1)).await.0, 200);
    let before = snapshot(&http, "nbo-1").await;
    let mut r = nbo(2, T0 + 15_000, 1);
    r.series.push(series(key("checkout", "", "pwned", "nairobi"), &[5_000]));
    let (s, j) = http.post_report(Some(NBO), &r).await;
    assert_eq!((s, j["status"].as_str()), (400, Some("rejected")), "{j}");
    let reason = j["reason"].as_str().unwrap();
    assert!(reason.starts_with("series[1].outcome: `pwned` is not an outcome"), "{reason}");
    for o in report::OUTCOMES {
        assert!(reason.contains(o), "{reason} lists {o}");
    }
    only_counted(&before, &snapshot(&http, "nbo-1").await, "rejected", 1);
    assert!(!server.store().seen("nbo-1", 2).unwrap());
    assert!(!metrics(&http).await.contains("pwned"));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn intervals_far_in_the_future_or_past_are_refused() {
    let now = T0 + 40 * 86_400_000;
    let clock = ManualClock::new(now);
    let (server, http, _dir) = start_on("horizon", "", &clock).await;
    assert_eq!(http.post_report(Some(NBO), &nbo(1, now, 1)).await.0, 200);
    let before = snapshot(&http, "nbo-1").await;
    // Sent now by a sound clock, about intervals in 2100 and in 1970.
    let mut future = nbo(2, YEAR_2100, 1);
    future.sent_at_ms = now;
    let mut past = nbo(3, 15_000, 1);
    past.sent_at_ms = now;
    for (r, words) in [
        (&future, ["2100-01-01T00:00:00.000Z", "after", "future_horizon"]),
        (&past, ["1970-01-01T00:00:15.000Z", "before", "past_horizon"]),
    ] {
        let (s, j) = http.post_report(Some(NBO), r).await;
        assert_eq!((s, j["status"].as_str()), (400, Some("rejected")), "{j}");
        let reason = j["reason"].as_str().unwrap();
        assert!(reason.contains("estimated clock offset is 0 ms"), "{reason}");
        for w in words {
            assert!(reason.contains(w), "{reason} says {w}");
        }
    }
    let after = snapshot(&http, "nbo-1").await;
    only_counted(&before, &after, "rejected", 2);
    assert_eq!(after.0["clock_jump"], false, "the clock itself was fine");
    let text = metrics(&http).await;
    for line in [
        r#"aggregator_reports_total{result="rejected",reason="horizon"} 2"#,
        r#"aggregator_reports_outside_horizon_total{prober="nbo-1",region="nairobi",side="future"} 1"#,
        r#"aggregator_reports_outside_horizon_total{prober="nbo-1",region="nairobi",side="past"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    // A legitimate backlog is not refused: an edge cut off for most of a day replays its outbox
    // (1 d by default), and older reports inside the store's retention still count.
    for (seq, age) in [(4, 23 * 3_600_000), (5, 30 * 86_400_000)] {
        let r = nbo(seq, now - age, 1);
        let (s, j) = http.post_report(Some(NBO), &r).await;
        assert_eq!((s, j["status"].as_str()), (200, Some("stored")), "{age}: {j}");
    }
    assert_eq!(server.store().counts(&Selection::all(), 0, i64::MAX).unwrap().total, 3);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn counts_above_the_bound_are_refused() {
    let clock = ManualClock::new(T0 + 15_000);
    let (server, http, _dir) = start_on("counts", "", &clock).await;
    assert_eq!(http.post_report(Some(NBO), &nbo(1, T0 + 15_000, 1)).await.0, 200);
    let before = snapshot(&http, "nbo-1").await;
    let huge = |seq: u64| {
        let mut h = report::SparseHistogram::new();
        h.record_n(1_000, (1 << 63) - 1);
        let k = key("checkout", "", "ok", "nairobi");
        report("nbo-1", "nairobi", seq, T0 + 15_000, vec![report::Series { key: k, count: h.len(), histogram: h }])
    };
    for seq in 2..=4 {
        let (s, j) = http.post_report(Some(NBO), &huge(seq)).await;
        assert_eq!((s, j["status"].as_str()), (400, Some("rejected")), "{j}");
        assert!(j["reason"].as_str().unwrap().contains("max_runs_per_second"), "{j}");
    }
    only_counted(&before, &snapshot(&http, "nbo-1").await, "rejected", 3);
    assert_eq!(server.store().counts(&Selection::all(), 0, i64::MAX).unwrap().total, 1);
    // The bound follows the interval: a journey every 100 ms fills 15 s with 150 runs (160 with
    // the second of slack); one more is refused.
    assert_eq!(http.post_report(Some(NBO), &nbo(5, T0 + 15_000, 160)).await.0, 200);
    assert_eq!(http.post_report(Some(NBO), &nbo(6, T0 + 15_000, 161)).await.0, 400);
    assert!(metrics(&http).await.contains(r#"aggregator_reports_total{result="rejected",reason="too_many_runs"} 4"#));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_healthy_prober_is_up_right_after_start() {
    let clock = ManualClock::new(T0 + 60_000);
    let (server, http, _dir) = start_on("cadence", "", &clock).await;
    let state = async |id: &str| snapshot(&http, id).await.0;
    // Both probers just started: their first interval is 1.5 s long. Kampala announces its
    // 15 s cadence; Nairobi is an older prober that does not.
    let mut first =
        report("kla-1", "kampala", 1, T0 + 60_000, vec![series(key("checkout", "", "ok", "kampala"), &[1_000_000])]);
    first.interval_start_ms = first.interval_end_ms - 1_500;
    let mut announced = wire(&first);
    announced["heartbeat"]["interval_ms"] = json!(15_000);
    assert_eq!(post_json(&http, KLA, &announced).await.0, 200);
    let mut older = nbo(1, T0 + 60_000, 1);
    older.interval_start_ms = older.interval_end_ms - 1_500;
    assert_eq!(http.post_report(Some(NBO), &older).await.0, 200);
    // 8 s of silence is normal for a 15 s cadence.
    clock.advance_ms(8_000);
    for id in ["kla-1", "nbo-1"] {
        let s = state(id).await;
        assert_eq!((&s["state"], &s["interval_s"]), (&json!("up"), &json!(15.0)), "{s}");
    }
    // A report rebuilt from the run journal after a crash is short too: still up.
    clock.advance_ms(7_000);
    let mut rebuilt = wire(&report(
        "kla-1",
        "kampala",
        2,
        T0 + 75_000,
        vec![series(key("checkout", "", "ok", "kampala"), &[1_000_000])],
    ));
    rebuilt["interval_start_ms"] = json!(T0 + 72_000);
    rebuilt["heartbeat"]["interval_ms"] = json!(15_000);
    assert_eq!(post_json(&http, KLA, &rebuilt).await.0, 200);
    clock.advance_ms(10_000);
    assert_eq!(state("kla-1").await["state"], "up");
    // And a silent one is still found out: late after two intervals.
    clock.advance_ms(21_000);
    assert_eq!(state("kla-1").await["state"], "late");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_heartbeat_fields_are_refused() {
    let clock = ManualClock::new(T0 + 15_000);
    let (server, http, _dir) = start_on("heartbeat", "", &clock).await;
    assert_eq!(http.post_report(Some(NBO), &nbo(1, T0 + 15_000, 1)).await.0, 200);
    let before = snapshot(&http, "nbo-1").await;
    let mut v = wire(&nbo(2, T0 + 15_000, 1));
    v["heartbeat"]["outbox_backlg"] = json!(7);
    let (s, j) = post_json(&http, NBO, &v).await;
    assert_eq!((s, j["status"].as_str()), (400, Some("rejected")), "{j}");
    assert!(j["reason"].as_str().unwrap().contains("unknown field `outbox_backlg`"), "{j}");
    only_counted(&before, &snapshot(&http, "nbo-1").await, "rejected", 1);
    // Missing heartbeat fields still read as their defaults.
    let mut v = wire(&nbo(3, T0 + 15_000, 1));
    v["heartbeat"] = json!({});
    assert_eq!(post_json(&http, NBO, &v).await.0, 200);
    assert!(!server.store().seen("nbo-1", 2).unwrap());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let clock = ManualClock::new(T0 + 15_000);
    let (server, http, _dir) = start_on("bearer", "", &clock).await;
    for (seq, scheme) in [(1, "bearer"), (2, "BEARER"), (3, "Bearer")] {
        let req = http::Request::builder()
            .method("POST")
            .uri(format!("{}/api/v1/reports", http.base))
            .header("authorization", format!("{scheme} {NBO}"))
            .body(http_body_util::Full::new(bytes::Bytes::from(report::encode(&nbo(seq, T0 + 15_000, 1)))))
            .unwrap();
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.status(), 200, "{scheme}");
        let fetch = http::Request::builder()
            .uri(format!("{}/stk/ws_CO_1", http.base))
            .header("authorization", format!("{scheme} {NBO}"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        assert_eq!(client.request(fetch).await.unwrap().status(), 404, "{scheme}: authenticated, nothing relayed yet");
    }
    assert_eq!(server.store().counts(&Selection::all(), 0, i64::MAX).unwrap().total, 3);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_stepped_clock_is_flagged_then_followed_within_the_bound_and_never_beyond() {
    let clock = ManualClock::new(T0);
    let (server, http, _dir) = start_on("clock-step", "", &clock).await;
    let mut seq = 0;
    let mut send = async |ahead: i64| {
        clock.advance_ms(15_000);
        seq += 1;
        let now = clock.now_ms();
        let mut r = nbo(seq, now + ahead, 1);
        r.sent_at_ms = now + ahead;
        let (s, j) = http.post_report(Some(NBO), &r).await;
        (s, j, now)
    };
    for _ in 0..3 {
        assert_eq!(send(0).await.0, 200);
    }
    // The clock steps 30 min ahead: past the future horizon, so the first reports are refused
    // (and kept by the prober), flagged with what the clock reads.
    for _ in 0..2 {
        let (s, j, _) = send(30 * MINUTE_MS).await;
        assert_eq!(s, 400, "{j}");
        assert!(j["reason"].as_str().unwrap().contains("does not agree with its estimated offset of 0 ms"), "{j}");
        let (entry, _) = snapshot(&http, "nbo-1").await;
        assert_eq!((&entry["clock_jump"], &entry["clock_observed_offset_ms"]), (&json!(true), &json!(30 * MINUTE_MS)));
    }
    // The third reading agrees with the two before: adopted (within the 1 h bound), corrected,
    // stored in the minute it really ended.
    let (s, j, now) = send(30 * MINUTE_MS).await;
    assert_eq!((s, j["status"].as_str()), (200, Some("stored")), "{j}");
    let (entry, _) = snapshot(&http, "nbo-1").await;
    assert_eq!((&entry["clock_jump"], &entry["clock_skewed"]), (&json!(false), &json!(true)), "{entry}");
    assert_eq!(entry["clock_offset_ms"], 30 * MINUTE_MS);
    let last = server.store().minutes(&Selection::all(), now - MINUTE_MS, now + MINUTE_MS).unwrap();
    assert_eq!(last.iter().map(|b| b.count).sum::<u64>(), 1, "{last:?}");
    // Then a year ahead: the readings agree with each other, but beyond the bound, so nothing is
    // corrected and every report is refused; the flag stays, with the offset seen.
    for _ in 0..4 {
        let (s, j, _) = send(YEAR).await;
        assert_eq!(s, 400, "{j}");
    }
    let (entry, _) = snapshot(&http, "nbo-1").await;
    assert_eq!((&entry["clock_jump"], &entry["clock_observed_offset_ms"]), (&json!(true), &json!(YEAR)), "{entry}");
    assert_eq!(entry["clock_offset_ms"], 30 * MINUTE_MS, "never adopted");
    let text = metrics(&http).await;
    assert!(text.contains(r#"aggregator_prober_clock_jump{prober="nbo-1",region="nairobi"} 1"#), "{text}");
    assert!(text.contains(r#"side="future"} 6"#), "{text}");
    assert_eq!(server.store().counts(&Selection::all(), 0, i64::MAX).unwrap().total, 4);
    server.shutdown().await.unwrap();
}

/// A prober past its report rate is answered 429 with `Retry-After` before its body is read; the
/// refused report changes nothing and is counted as `rate_limited`; other probers are not held back.
#[tokio::test]
async fn a_prober_past_its_report_rate_gets_429_with_retry_after_and_nothing_changes() {
    use http_body_util::{BodyExt, Full};
    let clock = ManualClock::new(T0);
    let (server, http, _dir) =
        start_on("rate", "ingest:\n  max_reports_per_minute: 1\n  report_burst: 2\n", &clock).await;
    for seq in 1..=2 {
        assert_eq!(http.post_report(Some(NBO), &nbo(seq, T0 - 15_000 * (3 - seq as i64), 1)).await.0, 200);
    }
    let before = snapshot(&http, "nbo-1").await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let req = http::Request::post(format!("{}/api/v1/reports", server.base_url()))
        .header("authorization", format!("Bearer {NBO}"))
        .body(Full::new(bytes::Bytes::from(report::encode(&nbo(3, T0, 1)))))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 429);
    let after_s: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&after_s), "Retry-After: {after_s}");
    let body: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["status"], "rejected");
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.contains("1 reports a minute") && reason.contains(&format!("{after_s}s")), "{reason}");
    // Not a refusal of the report itself: no counter of the prober moves, nothing is stored.
    only_counted(&before, &snapshot(&http, "nbo-1").await, "rejected", 0);
    assert!(metrics(&http).await.contains(r#"aggregator_reports_total{result="rejected",reason="rate_limited"} 1"#));
    // Kampala has its own allowance.
    let kla = report("kla-1", "kampala", 1, T0, vec![series(key("checkout", "", "ok", "kampala"), &[1_000])]);
    assert_eq!(http.post_report(Some(KLA), &kla).await.0, 200);
    server.shutdown().await.unwrap();
}
