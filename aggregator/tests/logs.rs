//! The real binary's log, written to a file (as systemd or a shell redirect does), is plain text:
//! no ANSI colour codes.

use std::{process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

#[tokio::test]
async fn a_log_written_to_a_file_has_no_colour_codes() {
    let dir = testkit::temp_dir("agg-logs");
    let config = dir.join("aggregator.yaml");
    std::fs::write(&config, "listen: 127.0.0.1:0\ndata_dir: data\nprobers:\n  - id: nbo-1\n    region: nairobi\n    token: env:AGG_LOG_TEST_TOKEN\n").unwrap();
    let log = dir.join("aggregator.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_aggregator"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .env("AGG_LOG_TEST_TOKEN", "log-test-token-0123456789abcdef0123456789")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
    assert!(first.starts_with("aggregator listening on "), "{first}");
    // SIGTERM: the aggregator logs its orderly stop, so the file holds more than the start.
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("INFO"), "the log should hold info lines:\n{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in a log file:\n{text:?}");
}
