//! The real binary, killed with SIGKILL mid-ingest and restarted: every acknowledged report is
//! there, exactly once, and replays of everything sent converge on exactly-once counts.

mod common;

use std::{path::Path, process::Stdio, sync::Arc, time::Duration};

use common::*;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

const N: u64 = 30;

fn write_config(dir: &Path) -> std::path::PathBuf {
    std::fs::write(dir.join("nbo.token"), format!("{NBO}\n")).unwrap();
    let path = dir.join("aggregator.yaml");
    testkit::config::AggregatorConfig::new("127.0.0.1:0")
        .shutdown_grace(Duration::from_secs(5))
        .prober("nbo-1", "nairobi", "file:nbo.token")
        .write(&path)
}

async fn spawn(config: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aggregator"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
    let url = line
        .strip_prefix("aggregator listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line}"))
        .to_owned();
    (child, url)
}

/// Report `seq` carries `seq` runs, so sums tell which reports were counted.
fn nth(seq: u64, now: i64) -> report::Report {
    let vals: Vec<u64> = (0..seq).map(|i| 1_000 + i * 1_000 + seq).collect();
    report(
        "nbo-1",
        "nairobi",
        seq,
        now - (2 * N as i64 - seq as i64) * 1_000,
        vec![series(key("checkout", "", "ok", "nairobi"), &vals)],
    )
}

async fn total(http: &Http, now: i64) -> u64 {
    let (s, j) = http.get(&format!("/api/v1/query?from=0&to={}", now + 3_600_000)).await;
    assert_eq!(s, 200, "{j}");
    j["groups"].as_array().unwrap().first().map_or(0, |g| g["count"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_acknowledged_and_counts_nothing_twice() {
    let dir = temp_dir("kill9");
    let config = write_config(&dir);
    let now = aggregator::clock::Clock::now_ms(&aggregator::clock::SystemClock);
    let reports: Vec<report::Report> = (1..=2 * N).map(|s| nth(s, now)).collect();

    let (mut child, url) = spawn(&config).await;
    let http = Arc::new(Http::new(url));
    let mut acked = Vec::new();
    for r in &reports[..N as usize] {
        let (s, j) = http.post_report(Some(NBO), r).await;
        assert_eq!((s, j["status"].as_str()), (200, Some("stored")), "{j}");
        acked.push(r.seq);
    }
    // The second half goes in concurrently; kill -9 lands while some are in flight.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for r in reports[N as usize..].iter().cloned() {
        let (http, tx) = (http.clone(), tx.clone());
        tokio::spawn(async move {
            let reply = http.try_post_report(NBO, &r).await;
            let _ = tx.send((r.seq, reply));
        });
    }
    drop(tx);
    let mut seen_replies = 0;
    while let Some((seq, reply)) = rx.recv().await {
        seen_replies += 1;
        if let Some((s, j)) = reply {
            assert_eq!((s, j["status"].as_str()), (200, Some("stored")), "{j}");
            acked.push(seq);
        }
        if seen_replies == 5 {
            child.start_kill().unwrap(); // SIGKILL
        }
    }
    child.wait().await.unwrap();
    assert!(acked.len() as u64 >= N + 5 - 1, "acknowledged {}", acked.len());

    // Restart: everything acknowledged is there.
    let (mut child, url) = spawn(&config).await;
    let http = Http::new(url);
    let acked_sum: u64 = acked.iter().sum();
    let after_restart = total(&http, now).await;
    assert!(after_restart >= acked_sum, "lost data: {after_restart} < {acked_sum}");
    for seq in &acked {
        let (s, j) = http.post_report(Some(NBO), &reports[*seq as usize - 1]).await;
        assert_eq!((s, j["status"].as_str()), (200, Some("duplicate")), "seq {seq}: {j}");
    }
    // The prober's outbox resends what was not acknowledged; then every report counts exactly once.
    for r in &reports {
        let (s, j) = http.post_report(Some(NBO), r).await;
        assert_eq!(s, 200, "{j}");
    }
    let all: u64 = (1..=2 * N).sum();
    assert_eq!(total(&http, now).await, all);

    // SIGTERM: a graceful stop, with the WAL checkpointed into the database.
    let pid = child.id().unwrap();
    assert!(std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
    let wal = std::fs::metadata(dir.join("data/aggregator.sqlite-wal")).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "the WAL was checkpointed on shutdown");
}
