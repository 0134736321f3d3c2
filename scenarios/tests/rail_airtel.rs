//! The `airtel` rail end to end against the sandbox's Airtel emulation (started in-process), over
//! the bundled `ea-3g` profile: every outcome class in poll mode and in callback mode (Airtel
//! calls back to the URL registered for the merchant, here the step's listener on a port picked
//! first), the `rail`, `reason` and note on the step, and that no secret or full phone number
//! reaches the serialized trace; wrong credentials and Airtel's faults in their classes.

use std::{path::Path, sync::Arc, time::Duration};

use sandbox::{Config, SandboxHandle};
use scenarios::{Journey, Outcome, PlayOptions, Trace, journey::parse_journey, play};
use tokio::task::JoinSet;

const CLIENT_ID: &str = "savanna-airtel-client-id";
const CLIENT_SECRET: &str = "savanna-airtel-client-secret";
/// How long an unanswered collection (suffix 04) stays TIP in these tests.
const EXPIRY: Duration = Duration::from_secs(4);

async fn sandbox(callback_url: Option<String>) -> SandboxHandle {
    let airtel =
        sandbox::airtel::Settings { callback_url: callback_url.map(|u| u.parse().unwrap()), ..Default::default() };
    sandbox::Sandbox::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        callback_delay: Duration::from_millis(100),
        query_expiry: EXPIRY,
        airtel,
        ..Default::default()
    })
    .await
    .unwrap()
}

fn bundled_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

const COLLECT: &str = r#"
name: airtel-outcome
secrets:
  client_id: file:secrets/sandbox-airtel-client-id
  client_secret: file:secrets/sandbox-airtel-client-secret
msisdn_pool: ["PHONE"]
steps:
  - name: collect
    timeout: TIMEOUT
    payment:
      rail:
        airtel:
          base_url: BASE
          client_id: "{{ secrets.client_id }}"
          client_secret: "{{ secrets.client_secret }}"
          country: UG
      amount: 500
      currency: UGX
      payer: pool
      result: RESULT
"#;

fn journey(base: &str, phone: &str, result: &str, timeout: &str) -> Journey {
    let src =
        COLLECT.replace("BASE", base).replace("PHONE", phone).replace("RESULT", result).replace("TIMEOUT", timeout);
    parse_journey(&src, "inline.yaml", bundled_dir()).unwrap()
}

fn explain(t: &Trace) -> String {
    serde_json::to_string_pretty(t).unwrap()
}

/// One expected run: the pool number, the step's timeout, and what the step must say.
struct Case {
    phone: String,
    timeout: &'static str,
    outcome: Outcome,
    reason: Option<&'static str>,
    /// Words of the note (a step that ended well) or of the failure.
    words: &'static str,
}

fn case(
    phone: String,
    timeout: &'static str,
    outcome: Outcome,
    reason: Option<&'static str>,
    words: &'static str,
) -> Case {
    Case { phone, timeout, outcome, reason, words }
}

/// Plays every case at once (each has its own number) over ea-3g, sharing `payments` (the
/// callback listener), and checks each trace.
async fn play_all(base: &str, result: &str, cases: Vec<Case>, payments: &Arc<scenarios::rails::Runtime>) {
    let mut runs = JoinSet::new();
    for c in cases {
        let j = journey(base, &c.phone, result, c.timeout);
        let opts = PlayOptions {
            payments: payments.clone(),
            ..PlayOptions::new(netem::profile::bundled("ea-3g").unwrap(), 7)
        };
        runs.spawn(async move { (play(&j, &opts).await, c) });
    }
    while let Some(done) = runs.join_next().await {
        let (t, c) = done.unwrap();
        let what = format!("{result} {}", &c.phone[c.phone.len() - 2..]);
        assert_eq!(t.outcome, c.outcome, "{what}:\n{}", explain(&t));
        let step = &t.steps[0];
        assert_eq!(step.rail, Some("airtel"), "{what}");
        assert_eq!(step.reason.as_deref(), c.reason, "{what}:\n{}", explain(&t));
        let said = match (&step.note, &t.failure) {
            (Some(n), _) => n.clone(),
            (None, Some(f)) => f.message.clone(),
            (None, None) => String::new(),
        };
        assert!(said.contains(c.words), "{what}: {said:?} lacks {:?}", c.words);
        assert_masked(&what, &t, &c.phone);
    }
}

/// No credential, token or whole phone number (in any of its shapes) in the serialized trace.
fn assert_masked(what: &str, t: &Trace, phone: &str) {
    let json = serde_json::to_string(t).unwrap();
    let national = &phone[3..];
    for leak in [CLIENT_ID, CLIENT_SECRET, phone, national] {
        assert!(!json.contains(leak), "{what}: the trace shows {leak:?}:\n{json}");
    }
    assert!(!json.contains("Bearer "), "{what}: the trace shows a bearer token:\n{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_mode_lands_every_outcome_in_its_class() {
    let sb = sandbox(None).await;
    let base = sb.base_url().to_owned();
    let n = |suffix: &str, i: u32| format!("2567500{i:02}1{suffix}");
    let cases = vec![
        case(
            n("00", 1),
            "20s",
            Outcome::Ok,
            Some("TS"),
            "airtel TS (transaction success): Transaction is successful. (DP00800001001)",
        ),
        case(n("01", 2), "20s", Outcome::BusinessError, Some("TF"), "The transaction was refused. (DP00800001008)"),
        case(n("02", 3), "20s", Outcome::BusinessError, Some("TF"), "not have enough money"),
        case(n("03", 4), "20s", Outcome::BusinessError, Some("TF"), "Incorrect pin"),
        // Nobody answers: TIP outlasts a short step; a long one sees the timed-out TF.
        case(n("04", 5), "2500ms", Outcome::Timeout, None, "still says the payment is pending (Airtel says TIP"),
        case(n("04", 6), "20s", Outcome::BusinessError, Some("TF"), "The transaction was timed out."),
        case(n("05", 7), "20s", Outcome::GatewayError, Some("TA"), "airtel TA (transaction ambiguous"),
        case(n("06", 8), "20s", Outcome::Ok, Some("TS"), "airtel TS"),
        case(n("07", 9), "20s", Outcome::Ok, Some("TS"), "airtel TS"),
    ];
    let payments = PlayOptions::new(netem::profile::bundled("loopback").unwrap(), 1).payments;
    play_all(&base, "{poll: {interval: 200ms, max_interval: 800ms}}", cases, &payments).await;
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_mode_takes_the_result_from_airtels_callback() {
    // Airtel's callback URL is the merchant's, fixed in its portal: pick the listener's port
    // first and give the sandbox that URL.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sb = sandbox(Some(format!("http://127.0.0.1:{port}/airtel/callback"))).await;
    let base = sb.base_url().to_owned();
    let n = |suffix: &str, i: u32| format!("2567000{i:02}2{suffix}");
    let cases = vec![
        case(n("00", 1), "20s", Outcome::Ok, Some("TS"), "airtel TS (transaction success): Transaction is successful."),
        case(n("01", 2), "20s", Outcome::BusinessError, Some("TF"), "The transaction was refused."),
        case(n("02", 3), "20s", Outcome::BusinessError, Some("TF"), "not have enough money"),
        case(n("03", 4), "20s", Outcome::BusinessError, Some("TF"), "Incorrect pin"),
        // No callback while TIP: the step times out waiting.
        case(n("04", 5), "2500ms", Outcome::Timeout, None, "no airtel callback arrived"),
        // Airtel calls back with TS or TF only: an ambiguous payment never arrives.
        case(n("05", 6), "2500ms", Outcome::Timeout, None, "no airtel callback arrived"),
        case(n("06", 7), "20s", Outcome::Ok, Some("TS"), "airtel TS"),
    ];
    let payments = PlayOptions::new(netem::profile::bundled("loopback").unwrap(), 1).payments;
    let result = format!("{{callback: {{listen: \"127.0.0.1:{port}\"}}}}");
    play_all(&base, &result, cases, &payments).await;
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_faults_land_in_their_class() {
    let sb = sandbox(None).await;
    let base = sb.base_url().to_owned();
    let loopback = || PlayOptions::new(netem::profile::bundled("loopback").unwrap(), 7);
    let poll = "{poll: {interval: 100ms}}";

    // Wrong credentials: our configuration, not Airtel's fault; the secret stays hidden.
    let wrong = "a-wrong-airtel-secret";
    let dir = testkit::temp_dir("rail-airtel");
    std::fs::write(dir.join("wrong-secret"), wrong).unwrap();
    let src = COLLECT
        .replace("BASE", &base)
        .replace("PHONE", "256750000900")
        .replace("RESULT", poll)
        .replace("TIMEOUT", "10s")
        .replace("file:secrets/sandbox-airtel-client-secret", &format!("file:{}", dir.join("wrong-secret").display()));
    let j = parse_journey(&src, "inline.yaml", bundled_dir()).unwrap();
    let t = play(&j, &loopback()).await;
    assert_eq!(t.outcome, Outcome::AssertionFailed, "{}", explain(&t));
    assert!(t.failure.as_ref().unwrap().message.contains("oauth: HTTP 401"), "{}", explain(&t));
    assert!(!serde_json::to_string(&t).unwrap().contains(wrong), "{}", explain(&t));

    // Airtel down or failing: the gateway's fault.
    for (fault, words) in [
        (sandbox::Fault { outage: true, ..Default::default() }, "HTTP 503"),
        (sandbox::Fault { error_rate: 1.0, ..Default::default() }, "HTTP 500"),
    ] {
        sb.faults().set(sandbox::Service::Airtel, fault).unwrap();
        let t = play(&journey(&base, "256750000901", poll, "10s"), &loopback()).await;
        assert_eq!(t.outcome, Outcome::GatewayError, "{}", explain(&t));
        assert!(t.failure.as_ref().unwrap().message.contains(words), "{}", explain(&t));
        assert_masked(words, &t, "256750000901");
    }
    sb.shutdown().await;
}
