//! The Daraja callback relay end to end: the sandbox's Daraja calls back the aggregator's
//! `/stk/callback`, and an `mpesa_stk` step in relay mode fetches the result with its prober's
//! report token. Without the token the relay refuses, and the step says what to configure.

use std::{path::Path, sync::Arc, time::Duration};

use scenarios::{Outcome, PlayOptions, journey::parse_journey, play};
use testkit::config::AggregatorConfig;

const TOKEN: &str = "relay-test-token-6f1d0c2a9b";

fn journey(dir: &Path, relay: &str, daraja: &str, with_token: bool) -> scenarios::Journey {
    let secrets = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/secrets");
    std::fs::write(dir.join("relay-token"), format!("{TOKEN}\n")).unwrap();
    let token = if with_token { ", token: \"{{ secrets.relay_token }}\"" } else { "" };
    let src = format!(
        r#"
name: stk-relay
secrets:
  consumer_key: file:{s}/sandbox-daraja-consumer-key
  consumer_secret: file:{s}/sandbox-daraja-consumer-secret
  passkey: file:{s}/sandbox-daraja-passkey
  relay_token: file:{d}/relay-token
steps:
  - name: push
    timeout: 20s
    mpesa_stk:
      base_url: {daraja}
      consumer_key: "{{{{ secrets.consumer_key }}}}"
      consumer_secret: "{{{{ secrets.consumer_secret }}}}"
      shortcode: "174379"
      passkey: "{{{{ secrets.passkey }}}}"
      phone: "254700000100"
      amount: 1
      result: {{relay: {{url: "{relay}"{token}}}}}
"#,
        s = secrets.display(),
        d = dir.display(),
    );
    parse_journey(&src, "stk-relay.yaml", dir).unwrap()
}

/// An aggregator whose prober `nbo-1` has the token [`TOKEN`], and a sandbox with quick callbacks.
async fn start(dir: &Path) -> (aggregator::Server, sandbox::SandboxHandle) {
    let path =
        AggregatorConfig::new("127.0.0.1:0").prober("nbo-1", "nairobi", "env:NBO").write(&dir.join("aggregator.yaml"));
    let env = |name: &str| (name == "NBO").then(|| TOKEN.to_owned());
    let config = aggregator::Config::load_with_env(&path, &env).unwrap();
    let agg = aggregator::Server::start(&config, Arc::new(aggregator::clock::SystemClock)).await.unwrap();
    let sb = sandbox::Sandbox::start(sandbox::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        callback_delay: Duration::from_millis(100),
        ..Default::default()
    })
    .await
    .unwrap();
    (agg, sb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_callback_is_read_only_with_a_prober_token() {
    let dir = testkit::temp_dir("stk-relay");
    let (agg, sb) = start(&dir).await;

    let opts = PlayOptions::new(netem::profile::bundled("loopback").unwrap(), 3);
    let t = play(&journey(&dir, &agg.base_url(), sb.base_url(), true), &opts).await;
    let trace = serde_json::to_string_pretty(&t).unwrap();
    assert_eq!(t.outcome, Outcome::Ok, "{trace}");
    assert!(!trace.contains(TOKEN), "the token is masked in the trace:\n{trace}");
    assert!(!trace.contains("254700000100"), "the phone is masked in the trace:\n{trace}");

    let t = play(&journey(&dir, &agg.base_url(), sb.base_url(), false), &opts).await;
    let trace = serde_json::to_string_pretty(&t).unwrap();
    assert_eq!(t.outcome, Outcome::AssertionFailed, "{trace}");
    assert!(trace.contains("mpesa_stk.result.relay.token"), "the failure says what to configure:\n{trace}");

    sb.shutdown().await;
    agg.shutdown().await.unwrap();
}

/// The bundled STK journey in relay mode: a success extracts the receipt from the relayed
/// callback, and a declared-expected 1037 stays `expected` and extracts nothing (the callback and
/// poll modes are in `scenarios/tests/journeys.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundled_stk_journey_in_relay_mode() {
    let dir = testkit::temp_dir("stk-relay-bundled");
    let (agg, sb) = start(&dir).await;
    let scenarios_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    std::fs::write(dir.join("relay-token"), format!("{TOKEN}\n")).unwrap();
    let bundled = std::fs::read_to_string(scenarios_dir.join("mpesa-stk-push.yaml")).unwrap();
    let opts = PlayOptions::new(netem::profile::bundled("loopback").unwrap(), 5);
    for (phone, want, receipt) in [("254700000100", Outcome::Ok, true), ("254700000206", Outcome::Expected, false)] {
        let src = bundled
            .replace("http://127.0.0.1:7700", sb.base_url())
            .replace(
                r#"msisdn_pool: ["254700000100", "254700000200", "254700000300"]"#,
                &format!("msisdn_pool: [\"{phone}\"]"),
            )
            .replace(
                r#"callback: {listen: "127.0.0.1:0"}"#,
                &format!(r#"relay: {{url: "{}", token: "{{{{ secrets.relay_token }}}}"}}"#, agg.base_url()),
            )
            .replace(
                "  passkey: file:secrets/sandbox-daraja-passkey\n",
                &format!(
                    "  passkey: file:secrets/sandbox-daraja-passkey\n  relay_token: file:{}/relay-token\n",
                    dir.display()
                ),
            );
        assert!(src.contains("relay:"), "the bundled journey still has its callback line");
        let j = parse_journey(&src, "mpesa-stk-push.yaml", &scenarios_dir).unwrap();
        let t = play(&j, &opts).await;
        let trace = serde_json::to_string_pretty(&t).unwrap();
        assert_eq!(t.outcome, want, "{phone}: {trace}");
        let step = &t.steps[0];
        assert_eq!(step.rail, Some("mpesa-ke"));
        let code = if receipt { "0" } else { "1037" };
        assert_eq!(step.reason.as_deref(), Some(code), "{trace}");
        // `ok` means the receipt was extracted (a failed extraction is `assertion_failed`); the
        // 1037 extracts nothing and stays `expected`.
        assert!(!trace.contains(TOKEN) && !trace.contains(phone), "masked:\n{trace}");
    }
    sb.shutdown().await;
    agg.shutdown().await.unwrap();
}
