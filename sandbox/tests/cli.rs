//! The `sandbox` binary: help text, flag errors, and a real start that prints the service URLs.

mod common;

use std::{process::Stdio, time::Duration};

use http::StatusCode;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

const BIN: &str = env!("CARGO_BIN_EXE_sandbox");

#[tokio::test]
async fn help_documents_the_outcome_table_and_faults() {
    let out = Command::new(BIN).arg("--help").output().await.unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "00     success",
        "01     1032 cancelled by user",
        "04     no callback at all",
        "05     success, but the callback is delivered 3 times",
        "09     slow",
        "--fault",
        "--ussd-pin",
        "SANDBOX_USSD_PIN",
        "--callback-delay-ms",
        "Airtel collection outcome by subscriber.msisdn's last two digits",
        "04     TIP until --query-expiry-secs, then TF timed out",
        "05     TA ambiguous, no callback",
        "--airtel-callback-url",
        "MTN MoMo request to pay outcome by the payer's (partyId's) last two digits",
        "--momo-callback-host",
        "Vodacom M-Pesa (OpenAPI) C2B outcome",
        "--mpesa-tz-private-key",
        "services: ussd, daraja, momo, airtel, mpesa-tz, shop",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    assert!(!help.contains(sandbox::config::SANDBOX_PASSKEY), "the passkey default is not shown");
}

#[tokio::test]
async fn bad_fault_flags_are_refused() {
    let out =
        Command::new(BIN).args(["--listen", "127.0.0.1:0", "--fault", "shop:error_rate=3"]).output().await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error_rate"), "{err}");
}

#[tokio::test]
async fn an_airtel_callback_url_must_be_plain_http() {
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--airtel-callback-url", "https://merchant.example/airtel"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--airtel-callback-url"), "{err}");
    let out = Command::new(BIN).args(["--airtel-callback-url", "not a url"]).output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--airtel-callback-url"));
}

#[tokio::test]
async fn starts_and_prints_each_service_url() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--fault", "ussd:latency_ms=1", "--log", "warn"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains("Ctrl-C");
            printed.push(line);
            if done {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read).await.expect("the banner within 20 s");
    let text = printed.join("\n");
    let base = printed[0].rsplit(' ').next().unwrap().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{text}");
    for path in ["/ussd/at", "/ussd/hubtel", "/ussd/nalo", "/shop/api", "/admin/faults"] {
        assert!(text.contains(&format!("{base}{path}")), "{path} missing from:\n{text}");
    }
    let http = common::Http::default();
    let r = http.get(&format!("{base}/healthz")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(http.get(&format!("{base}/admin/faults")).await.json()["ussd"]["latency_ms"], 1);

    // SIGTERM (what a container runtime sends) stops it cleanly.
    let pid = child.id().expect("still running").to_string();
    let term = Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    assert!(term.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits within 10 s").unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn the_modem_flags_start_an_emulator_that_shares_the_faults() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--modem-pty", "--fault", "modem:no_signal=true", "--log", "warn"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains("Ctrl-C");
            printed.push(line);
            if done {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read).await.expect("the banner within 20 s");
    let text = printed.join("\n");
    let pts =
        printed.iter().find_map(|l| l.strip_prefix("modem: ")).unwrap_or_else(|| panic!("no modem line:\n{text}"));
    assert!(pts.starts_with("/dev/pts/"), "{text}");
    let base = printed[0].rsplit(' ').next().unwrap().to_owned();
    let faults = common::Http::default().get(&format!("{base}/admin/faults")).await.json();
    assert_eq!(faults["modem"]["no_signal"], true, "{faults}");

    let out = Command::new(BIN).args(["--modem-profile", "nokia"]).output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("quectel, simcom or huawei"));
    let out =
        Command::new(BIN).args(["--listen", "127.0.0.1:0", "--modem-pty", "--modem-listen", "127.0.0.1:0"]).output();
    let out = tokio::time::timeout(Duration::from_secs(20), out).await.expect("exits").unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pick one"));
    child.kill().await.unwrap();
}
