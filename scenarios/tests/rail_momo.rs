//! The `momo` rail end to end: payment steps against the sandbox's MTN MoMo emulation over the
//! emulated 3G link, in callback and poll modes, for each class of ending, with the rail, the
//! reason and the note in the trace and nothing secret in it.

use std::{path::Path, time::Duration};

use sandbox::{Config, Fault, SandboxHandle, Service, momo};
use scenarios::{Journey, Outcome, PlayOptions, Trace, journey::parse_journey, play};

async fn sandbox_with(momo: momo::Settings) -> SandboxHandle {
    sandbox::Sandbox::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        callback_delay: Duration::from_millis(100),
        query_expiry: Duration::from_millis(600),
        momo,
        ..Default::default()
    })
    .await
    .unwrap()
}

fn dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The bundled checkout-momo journey against `base`, with its pool, result mode and step timeout
/// changed as a test needs.
fn journey(base: &str, party: &str, result: Option<&str>, timeout: Option<&str>) -> Journey {
    let path = dir().join("checkout-momo.yaml");
    let mut src = std::fs::read_to_string(&path).unwrap().replace("http://127.0.0.1:7700", base);
    src = src.replace(
        r#"msisdn_pool: ["256772000100", "256782000200", "256762000300"]"#,
        &format!("msisdn_pool: [\"{party}\"]"),
    );
    if let Some(r) = result {
        src = src.replace(r#"callback: {listen: "127.0.0.1:0"}"#, r);
    }
    if let Some(t) = timeout {
        src = src.replace("  - name: pay\n", &format!("  - name: pay\n    timeout: {t}\n"));
    }
    parse_journey(&src, &path.display().to_string(), dir()).unwrap()
}

async fn run(j: &Journey) -> Trace {
    let profile = netem::profile::bundled("ea-3g").unwrap();
    play(j, &PlayOptions::new(profile, 5)).await
}

fn explain(t: &Trace) -> String {
    serde_json::to_string_pretty(t).unwrap()
}

/// No credential, token or full phone number anywhere in the serialized trace.
fn assert_masked(t: &Trace, party: &str) {
    use base64::Engine as _;
    let text = explain(t);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        momo::SANDBOX_API_USER,
        momo::SANDBOX_API_KEY
    ));
    for secret in [momo::SANDBOX_API_KEY, momo::SANDBOX_SUBSCRIPTION_KEY, &basic, party, &party[3..]] {
        assert!(!text.contains(secret), "the trace leaks {secret:?}:\n{text}");
    }
    assert!(!text.contains("Bearer ") || text.contains("Bearer ***"), "a token leaks:\n{text}");
}

const POLL: &str = "poll: {interval: 100ms, max_interval: 400ms}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundled_journey_pays_by_callback_and_by_polling_over_3g() {
    let sb = sandbox_with(momo::Settings::default()).await;
    for (mode, party) in [(None, "256772000100"), (Some(POLL), "256782000200")] {
        let t = run(&journey(sb.base_url(), party, mode, None)).await;
        assert_eq!(t.outcome, Outcome::Ok, "{mode:?}: {}", explain(&t));
        let pay = t.steps.iter().find(|s| s.name == "pay").unwrap();
        assert_eq!((pay.rail, pay.reason.as_deref()), (Some("momo"), Some("SUCCESSFUL")), "{}", explain(&t));
        let note = pay.note.as_deref().unwrap_or_default();
        // The result came the way the journey asked for it.
        let label = if mode.is_none() { "callback" } else { "status" };
        assert!(pay.excerpts.iter().any(|e| e.label == label), "{}", explain(&t));
        assert!(note.contains("SUCCESSFUL"), "{note}");
        assert_masked(&t, party);
    }
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_ending_lands_in_its_class() {
    let sb = sandbox_with(momo::Settings::default()).await;
    // (party, result mode, outcome, reason)
    let cases = [
        ("256772000101", None, Outcome::BusinessError, "APPROVAL_REJECTED"),
        ("256772000202", Some(POLL), Outcome::BusinessError, "NOT_ENOUGH_FUNDS"),
        ("256772000308", None, Outcome::AssertionFailed, "PAYER_NOT_FOUND"),
        ("256702000100", Some(POLL), Outcome::AssertionFailed, "PAYER_NOT_FOUND"),
        ("256772000407", None, Outcome::GatewayError, "INTERNAL_PROCESSING_ERROR"),
        // Nobody approves: MoMo's window ends, the journey declared that code expected.
        ("256772000504", None, Outcome::Expected, "COULD_NOT_PERFORM_TRANSACTION"),
        ("256772000604", Some(POLL), Outcome::Expected, "COULD_NOT_PERFORM_TRANSACTION"),
    ];
    for (party, mode, want, reason) in cases {
        let t = run(&journey(sb.base_url(), party, mode, None)).await;
        assert_eq!(t.outcome, want, "{party} {mode:?}: {}", explain(&t));
        let pay = t.steps.iter().find(|s| s.name == "pay").unwrap();
        assert_eq!((pay.rail, pay.reason.as_deref()), (Some("momo"), Some(reason)), "{}", explain(&t));
        assert_masked(&t, party);
    }
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_still_pending_at_the_step_deadline_is_a_timeout() {
    let sb = sandbox::Sandbox::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        callback_delay: Duration::from_millis(100),
        query_expiry: Duration::from_secs(60),
        ..Default::default()
    })
    .await
    .unwrap();
    let t = run(&journey(sb.base_url(), "256772000104", Some(POLL), Some("3s"))).await;
    assert_eq!(t.outcome, Outcome::Timeout, "{}", explain(&t));
    let pay = t.steps.iter().find(|s| s.name == "pay").unwrap();
    assert_eq!(pay.rail, Some("momo"));
    assert_masked(&t, "256772000104");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_what_to_fix() {
    // The API user's callback host is not where the step listens.
    let sb = sandbox_with(momo::Settings { callback_host: "callbacks.example".into(), ..Default::default() }).await;
    let t = run(&journey(sb.base_url(), "256772000100", None, None)).await;
    assert_eq!(t.outcome, Outcome::AssertionFailed, "{}", explain(&t));
    let failure = t.failure.as_ref().map(|f| f.message.clone()).unwrap_or_default();
    assert!(failure.contains("INVALID_CALLBACK_URL_HOST"), "{failure}");
    sb.shutdown().await;

    // A wrong subscription key: MoMo's gateway refuses the token request.
    let sb = sandbox_with(momo::Settings { subscription_key: "another-key".into(), ..Default::default() }).await;
    let t = run(&journey(sb.base_url(), "256772000100", Some(POLL), None)).await;
    assert_eq!(t.outcome, Outcome::AssertionFailed, "{}", explain(&t));
    let failure = t.failure.as_ref().map(|f| f.message.clone()).unwrap_or_default();
    assert!(failure.contains("subscription_key"), "{failure}");
    assert_masked(&t, "256772000100");

    // MTN's sandbox environment takes EUR only: refused before anything is sent.
    let mut j = journey(sb.base_url(), "256772000100", Some(POLL), None);
    j.variables.insert("target_environment".into(), "sandbox".into());
    let t = run(&j).await;
    assert_eq!(t.outcome, Outcome::AssertionFailed, "{}", explain(&t));
    let failure = t.failure.as_ref().map(|f| f.message.clone()).unwrap_or_default();
    assert!(failure.contains("takes EUR only, not UGX"), "{failure}");

    // An outage of MoMo is theirs, not ours.
    sb.faults().set(Service::Momo, Fault { outage: true, ..Default::default() }).unwrap();
    let t = run(&journey(sb.base_url(), "256772000100", Some(POLL), None)).await;
    assert_eq!(t.outcome, Outcome::GatewayError, "{}", explain(&t));
    sb.shutdown().await;
}
