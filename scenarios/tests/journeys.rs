//! Journeys against the real sandbox (started in-process on a free port): the bundled journeys
//! pass on loopback and on 3G, every sandbox fault and payment outcome lands in the right failure
//! class, and a dialoguss file plays through the `ussd` step.

use std::{path::Path, time::Duration};

use netem::Profile;
use sandbox::{Config, Fault, SandboxHandle, Service};
use scenarios::{Journey, Outcome, PlayOptions, Trace, journey::parse_journey, play};

async fn sandbox() -> SandboxHandle {
    sandbox::Sandbox::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        callback_delay: Duration::from_millis(100),
        query_expiry: Duration::from_secs(2),
        ..Default::default()
    })
    .await
    .unwrap()
}

fn bundled_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR")))
}

/// A bundled journey with its default sandbox address replaced by `base`.
fn bundled(name: &str, base: &str) -> Journey {
    let path = bundled_dir().join(format!("{name}.yaml"));
    let src = std::fs::read_to_string(&path).unwrap().replace("http://127.0.0.1:7700", base);
    parse_journey(&src, &path.display().to_string(), bundled_dir()).unwrap()
}

/// A journey written inline, secrets relative to the bundled directory.
fn inline(src: &str, base: &str) -> Journey {
    parse_journey(&src.replace("BASE", base), "inline.yaml", bundled_dir()).unwrap()
}

async fn run(j: &Journey, profile: &str) -> Trace {
    let p = netem::profile::bundled(profile).unwrap();
    play(j, &PlayOptions::new(p, 7)).await
}

fn explain(t: &Trace) -> String {
    serde_json::to_string_pretty(t).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bundled_journey_passes_on_loopback_and_on_3g() {
    let sb = sandbox().await;
    for name in [
        "ussd-balance",
        "ussd-send-money",
        "mpesa-stk-push",
        "checkout-mpesa",
        "checkout-momo",
        "airtel-collect",
        "checkout-mpesa-tz",
    ] {
        let j = bundled(name, sb.base_url());
        for profile in ["loopback", "ea-3g"] {
            let mut p: Profile = netem::profile::bundled(profile).unwrap();
            // Random loss makes a run slower, never wrong; keep it for realism.
            p.name = profile.to_owned();
            let t = play(&j, &PlayOptions::new(p, 11)).await;
            assert_eq!(t.outcome, Outcome::Ok, "{name} on {profile}:\n{}", explain(&t));
            assert_eq!(t.steps.len(), j.steps.len());
        }
    }
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_3g_the_phases_show_where_the_time_went() {
    let sb = sandbox().await;
    let t = run(&bundled("checkout-mpesa", sb.base_url()), "ea-3g").await;
    assert_eq!(t.outcome, Outcome::Ok, "{}", explain(&t));
    let browse = &t.steps[0];
    // The first request opens the connection: one RTT (300 ms) to connect, at least one for the request.
    assert!(browse.phases.connect >= Duration::from_millis(250), "{:?}", browse.phases);
    assert!(browse.phases.ttfb >= Duration::from_millis(250), "{:?}", browse.phases);
    // Later requests reuse the kept-alive connection: no new connect.
    let cart = t.steps.iter().find(|s| s.name == "create-cart").unwrap();
    assert_eq!(cart.phases.connect, Duration::ZERO, "{:?}", cart.phases);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extraction_carries_values_between_steps() {
    let sb = sandbox().await;
    let t = run(&bundled("ussd-send-money", sb.base_url()), "loopback").await;
    assert_eq!(t.outcome, Outcome::Ok, "{}", explain(&t));
    let t = run(&bundled("checkout-mpesa", sb.base_url()), "loopback").await;
    let poll = t.steps.last().unwrap();
    assert!(
        poll.excerpts[0].label.contains("/orders/"),
        "the order id was extracted into the URL: {:?}",
        poll.excerpts[0]
    );
    sb.shutdown().await;
}

const USSD_SLOW: &str = r#"
name: ussd-deadline
steps:
  - name: dial
    ussd:
      url: BASE/ussd/at
      service_code: "*384*7#"
      phone: "+254700000100"
      hop_timeout: 500ms
      dialogue:
        - expect: {contains: "Savanna Pay"}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_faults_land_in_the_right_failure_class() {
    let sb = sandbox().await;
    let base = sb.base_url().to_owned();
    let ussd = inline(USSD_SLOW, &base);
    let checkout = bundled("checkout-mpesa", &base);
    let stk = bundled("mpesa-stk-push", &base);

    let cases: Vec<(Service, Fault, &Journey, Outcome, &str)> = vec![
        (Service::Ussd, Fault { latency_ms: 2_000, ..Fault::default() }, &ussd, Outcome::Timeout, "gateway's deadline"),
        (Service::Ussd, Fault { error_rate: 1.0, ..Fault::default() }, &ussd, Outcome::GatewayError, "HTTP 500"),
        (Service::Ussd, Fault { outage: true, ..Fault::default() }, &ussd, Outcome::GatewayError, "HTTP 503"),
        (Service::Shop, Fault { error_rate: 1.0, ..Fault::default() }, &checkout, Outcome::GatewayError, "HTTP 500"),
        (Service::Shop, Fault { outage: true, ..Fault::default() }, &checkout, Outcome::GatewayError, "HTTP 503"),
        (Service::Daraja, Fault { outage: true, ..Fault::default() }, &stk, Outcome::GatewayError, "HTTP 503"),
        (Service::Daraja, Fault { error_rate: 1.0, ..Fault::default() }, &stk, Outcome::GatewayError, "HTTP 500"),
    ];
    // A hop the deadline cuts short is in the trace: its request, the phases it got through, and
    // how long it waited in place of an answer.
    sb.faults().clear();
    sb.faults().set(Service::Ussd, Fault { latency_ms: 2_000, ..Fault::default() }).unwrap();
    let t = run(&ussd, "loopback").await;
    let hop = t.steps[0].excerpts.iter().find(|e| e.label == "hop 1").unwrap_or_else(|| panic!("{}", explain(&t)));
    assert!(hop.request.contains("sessionId=ATUid_"), "{hop:?}");
    assert_eq!((hop.status, hop.response.as_str()), (None, "(no answer within 500 ms)"));
    assert!(t.steps[0].phases.ttfb >= Duration::from_millis(400), "{:?}", t.steps[0].phases);

    // A step that runs out of its own time names its own timeout when the journey's limit is
    // the default sum of the steps' (here they are equal and the step starts a moment later);
    // a journey that sets a shorter limit is named.
    let mut own = inline(USSD_SLOW, &base);
    own.steps[0].timeout = Duration::from_millis(300);
    own.timeout = own.steps[0].timeout;
    let t = run(&own, "loopback").await;
    let m = t.failure.unwrap().message;
    assert!(m.contains("its timeout of 300 ms") && !m.contains("journey's limit"), "{m}");
    let mut given = inline(&USSD_SLOW.replace("steps:", "timeout: 300ms\nsteps:"), &base);
    given.steps[0].timeout = Duration::from_secs(5);
    let t = run(&given, "loopback").await;
    let m = t.failure.unwrap().message;
    assert!(m.contains("the journey's limit of 300 ms"), "{m}");

    for (service, fault, journey, want, words) in cases {
        sb.faults().clear();
        sb.faults().set(service, fault.clone()).unwrap();
        let t = run(journey, "loopback").await;
        let f = t.failure.as_ref().unwrap_or_else(|| panic!("{service:?} {fault:?} did not fail:\n{}", explain(&t)));
        assert_eq!(t.outcome, want, "{service:?} {fault:?}: {f}");
        assert!(f.message.contains(words), "{service:?} {fault:?}: {f}");
    }

    // A slow callback outlasts the step's timeout.
    sb.faults().clear();
    sb.faults().set(Service::Daraja, Fault { callback_delay_ms: Some(60_000), ..Fault::default() }).unwrap();
    let mut short = stk.clone();
    short.steps[0].timeout = Duration::from_secs(2);
    let t = run(&short, "loopback").await;
    assert_eq!(t.outcome, Outcome::Timeout, "{}", explain(&t));
    assert!(t.failure.unwrap().message.contains("no mpesa-ke callback arrived"));

    // A stopped service is a network error.
    sb.faults().clear();
    sb.shutdown().await;
    let t = run(&checkout, "loopback").await;
    assert_eq!(t.outcome, Outcome::NetworkError, "{}", explain(&t));
}

const STK: &str = r#"
name: stk-outcome
secrets:
  consumer_key: file:secrets/sandbox-daraja-consumer-key
  consumer_secret: file:secrets/sandbox-daraja-consumer-secret
  passkey: file:secrets/sandbox-daraja-passkey
steps:
  - name: push
    timeout: 8s
    mpesa_stk:
      base_url: BASE
      consumer_key: "{{ secrets.consumer_key }}"
      consumer_secret: "{{ secrets.consumer_secret }}"
      shortcode: "174379"
      passkey: "{{ secrets.passkey }}"
      phone: "PHONE"
      amount: 1
      result: RESULT
      expected_codes: [1037]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_payment_outcome_is_classified() {
    let sb = sandbox().await;
    let base = sb.base_url().to_owned();
    // (last two digits, by callback, by polling)
    let table = [
        ("00", Outcome::Ok),
        ("01", Outcome::BusinessError), // 1032 cancelled
        ("02", Outcome::BusinessError), // 1 insufficient funds
        ("03", Outcome::BusinessError), // 2001 wrong PIN
        ("05", Outcome::Ok),            // duplicate callbacks: the first counts
        ("06", Outcome::Expected),      // 1037, declared acceptable
        ("07", Outcome::GatewayError),  // 1025 push not sent
        ("08", Outcome::BusinessError), // 1019 expired
    ];
    for (mode, result) in [("callback", "{callback: {}}"), ("poll", "{poll: {interval: 100ms, max_interval: 400ms}}")] {
        for (i, (digits, want)) in table.iter().enumerate() {
            let phone = format!("2547000{i:03}{digits}");
            let j = inline(&STK.replace("PHONE", &phone).replace("RESULT", result), &base);
            let t = run(&j, "loopback").await;
            assert_eq!(t.outcome, *want, "{mode} {digits}: {}", explain(&t));
        }
    }
    // 04: no callback ever; by polling, pending until the expiry, then 1037.
    let j = inline(&STK.replace("PHONE", "254700000904").replace("RESULT", "{callback: {}}"), &base);
    let t = run(&j, "loopback").await;
    assert_eq!(t.outcome, Outcome::Timeout, "{}", explain(&t));
    let j = inline(
        &STK.replace("PHONE", "254700001904").replace("RESULT", "{poll: {interval: 200ms, max_interval: 500ms}}"),
        &base,
    );
    let t = run(&j, "loopback").await;
    assert_eq!(t.outcome, Outcome::Expected, "{}", explain(&t));
    assert!(t.steps[0].excerpts.iter().filter(|e| e.label == "stk query").count() >= 2, "polled while pending");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_journey_still_reports_the_steps_it_finished() {
    let sb = sandbox().await;
    let mut j = bundled("checkout-mpesa", sb.base_url());
    // The order never gets paid: the phone's number makes the payment hang (no callback).
    j.variables.insert("phone".into(), "254700000104".into());
    j.steps.last_mut().unwrap().timeout = Duration::from_secs(2);
    let t = run(&j, "loopback").await;
    assert_eq!(t.outcome, Outcome::Timeout, "{}", explain(&t));
    assert_eq!(t.steps.len(), j.steps.len(), "every step up to the stuck one is reported");
    assert!(t.steps[..t.steps.len() - 1].iter().all(|s| s.outcome == Outcome::Ok));
    let last = t.steps.last().unwrap();
    assert!(last.excerpts.len() >= 2, "the polls it made are kept: {:?}", last.excerpts.len());
    let msg = &t.failure.unwrap().message;
    assert!(msg.contains("ran out of time") && msg.contains("pending_payment"), "{msg}");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertion_and_tls_failures_are_told_apart() {
    let sb = sandbox().await;
    let base = sb.base_url().to_owned();
    let wrong = inline(&USSD_SLOW.replace("Savanna Pay", "Welcome to Safaricom"), &base);
    let t = run(&wrong, "loopback").await;
    assert_eq!(t.outcome, Outcome::AssertionFailed);
    assert!(t.failure.unwrap().message.contains("expected a screen containing \"Welcome to Safaricom\""));

    // https to a plain-HTTP server: the handshake fails.
    let tls = inline(
        "name: tls\nsteps:\n  - name: get\n    http: {url: \"BASE/shop/api/products\"}\n",
        &base.replace("http://", "https://"),
    );
    let t = run(&tls, "loopback").await;
    assert_eq!(t.outcome, Outcome::TlsError, "{}", explain(&t));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_ussd_dialects_walk_the_same_menus() {
    let sb = sandbox().await;
    for (dialect, phone) in [("hubtel", "+233240000100"), ("nalo", "+233240000100"), ("truroute", "+265888000100")] {
        let src = r#"
name: dialects
steps:
  - name: send
    ussd:
      url: BASE/ussd/DIALECT
      dialect: DIALECT
      service_code: "*384*7#"
      phone: "PHONE"
      dialogue:
        - expect: {contains: "2. Send money"}
        - input: "2"
          expect: "Enter phone number"
        - input: "0712345678"
          expect: "Enter amount (KES)"
        - input: "50"
          expect: {contains: "Enter PIN to confirm"}
        - input: "0000"
          expect: "Wrong PIN. Transaction cancelled."
          end: true
"#
        .replace("DIALECT", dialect)
        .replace("PHONE", phone);
        let t = run(&inline(&src, sb.base_url()), "loopback").await;
        assert_eq!(t.outcome, Outcome::Ok, "{dialect}: {}", explain(&t));

        // A direct dial carries its first input: the gateway sends what was dialled.
        let direct = format!(
            "name: direct\nsteps:\n  - name: balance\n    ussd:\n      url: BASE/ussd/{dialect}\n      dialect: {dialect}\n      service_code: \"*384*7#\"\n      dial: \"*384*7*1#\"\n      phone: \"{phone}\"\n      dialogue:\n        - expect: {{contains: \"balance is KES\"}}\n          end: true\n"
        );
        let t = run(&inline(&direct, sb.base_url()), "loopback").await;
        assert_eq!(t.outcome, Outcome::Ok, "{dialect} direct dial: {}", explain(&t));
    }
    sb.shutdown().await;
}

#[test]
fn a_ghanaian_gateway_refuses_a_network_it_does_not_serve() {
    for dialect in ["hubtel", "nalo"] {
        let src = format!(
            "name: gh\nsteps:\n  - name: s\n    ussd:\n      url: http://127.0.0.1:9/u\n      dialect: {dialect}\n      service_code: \"*384*7#\"\n      phone: \"+233240000100\"\n      network_code: \"63902\"\n      dialogue:\n        - expect: x\n"
        );
        let e = parse_journey(&src, "gh.yaml", bundled_dir()).unwrap_err().to_string();
        assert!(e.contains("network_code") && e.contains("62001 (mtn)"), "{dialect}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialoguss_file_plays_through_the_ussd_step() {
    let sb = sandbox().await;
    let path = bundled_dir().join("examples/dialoguss-savanna-pay.yml");
    let src = std::fs::read_to_string(&path).unwrap().replace("http://127.0.0.1:7700", sb.base_url());
    let j = parse_journey(&src, "dialoguss-savanna-pay.yml", bundled_dir()).unwrap();
    assert_eq!(j.steps.len(), 2);
    let t = run(&j, "loopback").await;
    assert_eq!(t.outcome, Outcome::Ok, "{}", explain(&t));
    sb.shutdown().await;
}

/// The bundled STK journey extracts the receipt only where Daraja carries it: a success by
/// callback extracts it, a success by STK Query (which has no CallbackMetadata) skips it, and a
/// declared-expected 1037 extracts nothing and stays `expected` in both modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundled_stk_journey_extracts_only_what_its_result_carries() {
    let sb = sandbox().await;
    let poll = "poll: {interval: 100ms, max_interval: 400ms}";
    // (result mode, pool number, outcome)
    let cases = [
        (None, "254700000100", Outcome::Ok),
        (Some(poll), "254700000200", Outcome::Ok),
        (None, "254700000306", Outcome::Expected),
        (Some(poll), "254700000406", Outcome::Expected),
    ];
    for (mode, phone, want) in cases {
        let path = bundled_dir().join("mpesa-stk-push.yaml");
        let mut src = std::fs::read_to_string(&path).unwrap().replace("http://127.0.0.1:7700", sb.base_url());
        src = src.replace(
            r#"msisdn_pool: ["254700000100", "254700000200", "254700000300"]"#,
            &format!("msisdn_pool: [\"{phone}\"]"),
        );
        if let Some(m) = mode {
            src = src.replace(r#"callback: {listen: "127.0.0.1:0"}"#, m);
        }
        let j = parse_journey(&src, &path.display().to_string(), bundled_dir()).unwrap();
        let t = run(&j, "loopback").await;
        assert_eq!(t.outcome, want, "{mode:?} {}: {}", &phone[phone.len() - 2..], explain(&t));
    }
    sb.shutdown().await;
}
