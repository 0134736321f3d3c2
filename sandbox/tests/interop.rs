//! Interoperability: clients nobody here wrote drive the sandbox.
//!
//! - The PyPI package `daraja-v3` completes OAuth, STK push and STK query, and parses the
//!   sandbox's callback. Needs `python3` with `daraja-v3`.
//! - The npm package `mtn-momo` provisions a sandbox API user, takes a token, requests payments in
//!   `sandbox` (EUR) and `mtnuganda` (UGX), reads their status (its own error classes for failure
//!   reasons), the balance and account holders; its callback URL receives MoMo's `PUT`. Needs
//!   `node` and `npm ci` in `tests/interop/npm`.
//!
//! `.ci/run` installs both. Without them a test fails under `CI=true` and is skipped, with a
//! message, elsewhere.

mod common;

use std::{path::Path, process::Stdio, time::Duration};

use common::{CallbackSink, KEY, SECRET, SHORTCODE};
use serde_json::{Value, json};
use tokio::{io::AsyncWriteExt, process::Command};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/daraja_v3.py");
const VERSION_CHECK: &str = "import importlib.metadata as m, mpesa; print(m.version('daraja-v3'))";

/// The installed daraja-v3 version, or why it cannot run.
async fn daraja_v3() -> Result<String, String> {
    let out = Command::new("python3")
        .args(["-c", VERSION_CHECK])
        .output()
        .await
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !out.status.success() {
        return Err(format!("daraja-v3 is not installed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

async fn run(phase: &str, base_url: &str, callback_url: &str, stdin: Option<&Value>) -> Value {
    assert!(Path::new(SCRIPT).exists(), "{SCRIPT} is missing");
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .arg(phase)
        .env("SANDBOX_BASE_URL", base_url)
        .env("SANDBOX_CALLBACK_URL", callback_url)
        .env("SANDBOX_KEY", KEY)
        .env("SANDBOX_SECRET", SECRET)
        .env("SANDBOX_SHORTCODE", SHORTCODE)
        .env("SANDBOX_PASSKEY", sandbox::config::SANDBOX_PASSKEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 starts");
    let mut input = child.stdin.take().unwrap();
    if let Some(v) = stdin {
        input.write_all(v.to_string().as_bytes()).await.unwrap();
    }
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the daraja-v3 client finishes within 60 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "daraja-v3 {phase} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test]
async fn daraja_v3_python_client_completes_oauth_push_and_query() {
    let version = match daraja_v3().await {
        Ok(v) => v,
        Err(why) => {
            return testkit::skip(format!("daraja-v3 interop: {why} (python3 -m pip install daraja-v3==0.2.1)"));
        }
    };
    eprintln!("daraja-v3 {version}");
    let sb =
        common::start_with(sandbox::Config { callback_delay: Duration::from_millis(300), ..common::fast_config() })
            .await;
    let sink = CallbackSink::start().await;
    let report = run("flow", sb.base_url(), &sink.url, None).await;

    let paid = &report["paid"];
    let checkout = paid["checkout_request_id"].as_str().unwrap();
    assert!(checkout.starts_with("ws_CO_"), "{report}");
    assert_eq!(paid["response_description"], "Success. Request accepted for processing");
    let pending = paid["pending_codes"].as_array().unwrap();
    assert!(!pending.is_empty(), "the first query comes while the push is pending: {report}");
    assert!(pending.iter().all(|c| c == "500.001.1001"), "{report}");
    assert_eq!(paid["pending_message"], "API error 500: The transaction is being processed");
    assert_eq!(paid["result_code"], "0");
    assert_eq!(paid["is_paid"], true);
    assert_eq!(paid["query_checkout_request_id"], checkout);

    let cancelled = &report["cancelled"];
    assert_eq!(cancelled["result_code"], "1032", "{report}");
    assert_eq!(cancelled["result_desc"], "Request cancelled by user");
    assert_eq!(cancelled["is_paid"], false);
    assert_eq!(report["bad_credentials"], "401", "wrong secret → 401 at OAuth: {report}");

    // The callback daraja-v3's merchant would receive, read by daraja-v3's own parser.
    let callbacks = sink.wait_for(checkout, 1, Duration::from_secs(5)).await;
    let parsed = run("parse", sb.base_url(), &sink.url, Some(&callbacks[0].1)).await;
    assert_eq!(parsed["paid"], true, "{parsed}");
    assert_eq!(parsed["result_code"], "0");
    assert_eq!(parsed["checkout_request_id"], checkout);
    assert_eq!(parsed["amount"], json!(1.0));
    assert_eq!(parsed["phone"], "254708920400");
    assert_eq!(parsed["mpesa_receipt"].as_str().unwrap().len(), 10);
    assert!(parsed["transaction_date"].is_u64(), "{parsed}");
    sb.shutdown().await;
}

const NPM_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/npm");

/// The installed mtn-momo version, or why it cannot run.
async fn mtn_momo() -> Result<String, String> {
    let out = Command::new("node")
        .args(["-p", "require('mtn-momo/package.json').version"])
        .current_dir(NPM_DIR)
        .output()
        .await
        .map_err(|e| format!("cannot run node: {e}"))?;
    if !out.status.success() {
        return Err(format!("mtn-momo is not installed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[tokio::test]
async fn mtn_momo_node_client_provisions_pays_and_reads_statuses() {
    use sandbox::momo::{SANDBOX_API_KEY, SANDBOX_API_USER, SANDBOX_SUBSCRIPTION_KEY};
    let version = match mtn_momo().await {
        Ok(v) => v,
        Err(why) => return testkit::skip(format!("mtn-momo interop: {why} (npm ci in sandbox/tests/interop/npm)")),
    };
    eprintln!("mtn-momo {version}");
    let sb = common::start().await;
    let sink = CallbackSink::start().await;
    let child = Command::new("node")
        .arg("mtn_momo.js")
        .current_dir(NPM_DIR)
        .env("SANDBOX_BASE_URL", sb.base_url())
        .env("SANDBOX_CALLBACK_URL", &sink.url)
        .env("MOMO_SUBSCRIPTION_KEY", SANDBOX_SUBSCRIPTION_KEY)
        .env("MOMO_API_USER", SANDBOX_API_USER)
        .env("MOMO_API_KEY", SANDBOX_API_KEY)
        .env("MOMO_CALLBACK_HOST", "127.0.0.1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the mtn-momo client finishes within 60 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "mtn-momo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));

    assert_eq!(report["provisioned"], json!({"user_is_uuid": true, "key_length": 32}), "{report}");
    assert_eq!(report["sandbox_payment"]["status"], "SUCCESSFUL", "{report}");
    assert_eq!(report["sandbox_payment"]["transaction"]["currency"], "EUR");
    let paid = &report["paid"];
    assert_eq!(paid["status"], "SUCCESSFUL", "{report}");
    assert_eq!(paid["transaction"]["payer"], json!({"partyIdType": "MSISDN", "partyId": "256772000100"}));
    // The library's own classes for MoMo's failure reasons.
    assert_eq!(
        report["rejected"],
        json!({"status": "FAILED", "error": "ApprovalRejectedError", "reason": "APPROVAL_REJECTED"})
    );
    assert_eq!(report["poor"]["error"], "NotEnoughFundsError", "{report}");
    assert_eq!(report["balance"]["currency"], "UGX");
    assert_eq!(
        (report["active"].clone(), report["not_found"].clone()),
        (json!({"result": true}), json!({"result": false}))
    );
    assert_eq!(report["wrong_currency"], "InvalidCurrencyError", "{report}");

    // The callback the library's merchant would receive: the status document, by PUT.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let reference = paid["reference_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(reference).is_ok());
    loop {
        let bodies = sink.bodies();
        if let Some(cb) = bodies.iter().find(|b| b["payer"]["partyId"] == "256772000100") {
            assert_eq!(cb, &paid["transaction"], "the callback is the status document");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no MoMo callback: {bodies:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sb.shutdown().await;
}
