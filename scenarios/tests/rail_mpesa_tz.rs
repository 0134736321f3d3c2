//! The `mpesa-tz` rail end to end: payment steps against the sandbox's Vodacom M-Pesa (OpenAPI)
//! emulation over the emulated 3G link. The C2B answer is the result, so every class of ending is
//! one synchronous call; the trace carries the rail, the reason and the note, and neither the API
//! key, nor a session id, nor their RSA-encrypted bearers, nor a phone number.

use std::{path::Path, time::Duration};

use sandbox::{Config, Fault, SandboxHandle, Service, mpesa_tz};
use scenarios::{Journey, Outcome, PlayOptions, Trace, journey::parse_journey, play};

async fn sandbox_with(settings: mpesa_tz::Settings) -> SandboxHandle {
    sandbox::Sandbox::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        callback_delay: Duration::from_millis(100),
        query_expiry: Duration::from_millis(600),
        mpesa_tz: settings,
        ..Default::default()
    })
    .await
    .unwrap()
}

fn dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The bundled checkout-mpesa-tz journey against `base`, paying from `msisdn`.
fn journey(base: &str, msisdn: &str) -> Journey {
    let path = dir().join("checkout-mpesa-tz.yaml");
    let src = std::fs::read_to_string(&path).unwrap().replace("http://127.0.0.1:7700", base).replace(
        r#"msisdn_pool: ["255754000100", "255764000200", "255744000300"]"#,
        &format!("msisdn_pool: [\"{msisdn}\"]"),
    );
    parse_journey(&src, &path.display().to_string(), dir()).unwrap()
}

async fn run(j: &Journey) -> Trace {
    play(j, &PlayOptions::new(netem::profile::bundled("ea-3g").unwrap(), 9)).await
}

fn explain(t: &Trace) -> String {
    serde_json::to_string_pretty(t).unwrap()
}

/// No API key, bearer, session id or full phone number in the serialized trace.
fn assert_masked(t: &Trace, msisdn: &str) {
    let text = explain(t);
    for secret in [mpesa_tz::SANDBOX_API_KEY, msisdn, &msisdn[3..]] {
        assert!(!text.contains(secret), "the trace leaks {secret:?}:\n{text}");
    }
    for line in text.lines().filter(|l| l.contains("Bearer ")) {
        assert!(line.contains("Bearer ***"), "a bearer leaks: {line}");
    }
    for e in t.steps.iter().flat_map(|s| &s.excerpts) {
        let session = serde_json::from_str::<serde_json::Value>(&e.response)
            .ok()
            .and_then(|v| v["output_SessionID"].as_str().map(str::to_owned));
        assert!(session.is_none_or(|s| s.contains("***")), "a session id leaks: {}", e.response);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_ending_lands_in_its_class_over_3g() {
    let sb = sandbox_with(mpesa_tz::Settings::default()).await;
    // (customer, outcome, reason)
    let cases = [
        ("255754000100", Outcome::Ok, "INS-0"),
        ("255754000101", Outcome::BusinessError, "INS-5"),
        ("255754000202", Outcome::BusinessError, "INS-2006"),
        ("255754000303", Outcome::BusinessError, "INS-2001"),
        // Nobody enters the PIN: the journey declared INS-9 expected.
        ("255754000404", Outcome::Expected, "INS-9"),
        ("255754000507", Outcome::GatewayError, "INS-1"),
        ("255754000608", Outcome::AssertionFailed, "INS-2051"),
    ];
    for (msisdn, want, reason) in cases {
        let t = run(&journey(sb.base_url(), msisdn)).await;
        assert_eq!(t.outcome, want, "{msisdn}: {}", explain(&t));
        let pay = t.steps.iter().find(|s| s.name == "pay").unwrap();
        assert_eq!((pay.rail, pay.reason.as_deref()), (Some("mpesa-tz"), Some(reason)), "{}", explain(&t));
        let labels: Vec<&str> = pay.excerpts.iter().map(|e| e.label.as_str()).collect();
        assert!(labels.contains(&"session") && labels.contains(&"c2b"), "{labels:?}");
        if want == Outcome::Ok {
            assert!(pay.note.as_deref().unwrap_or_default().contains("INS-0"), "{:?}", pay.note);
        }
        assert_masked(&t, msisdn);
    }
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_key_and_an_outage_are_told_apart() {
    let sb = sandbox_with(mpesa_tz::Settings { api_key: "the-portal-key".into(), ..Default::default() }).await;
    let t = run(&journey(sb.base_url(), "255754000100")).await;
    assert_eq!(t.outcome, Outcome::AssertionFailed, "{}", explain(&t));
    let failure = t.failure.as_ref().map(|f| f.message.clone()).unwrap_or_default();
    assert!(failure.contains("INS-2"), "{failure}");
    assert_masked(&t, "255754000100");

    sb.faults().set(Service::MpesaTz, Fault { outage: true, ..Default::default() }).unwrap();
    let t = run(&journey(sb.base_url(), "255754000100")).await;
    assert_eq!(t.outcome, Outcome::GatewayError, "{}", explain(&t));
    sb.shutdown().await;
}
