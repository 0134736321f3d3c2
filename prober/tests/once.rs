//! `prober once` against the real sandbox: the bundled journeys pass, exit codes mean what they
//! say, and no secret or phone number reaches any output (table, --json, -v, stderr).

use std::{path::PathBuf, process::Command, time::Duration};

use sandbox::{Config, Fault, Service};

const PROBER: &str = env!("CARGO_BIN_EXE_prober");

fn journeys() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios"))
}

// Distinctive values, so finding them anywhere in the output means a leak.
const PIN: &str = "97531";
const KEY: &str = "ck-7f3a9e51d2";
const SECRET: &str = "cs-b42d8c6e0a91";
const AIRTEL_ID: &str = "ai-5c81e7b3f0";
const AIRTEL_SECRET: &str = "as-9d02a6c4e7b1";

async fn sandbox() -> sandbox::SandboxHandle {
    sandbox::Sandbox::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ussd_pin: PIN.into(),
        consumer_key: KEY.into(),
        consumer_secret: SECRET.into(),
        airtel: sandbox::airtel::Settings {
            client_id: AIRTEL_ID.into(),
            client_secret: AIRTEL_SECRET.into(),
            ..Default::default()
        },
        callback_delay: Duration::from_millis(100),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Runs `prober once` on a bundled journey whose secrets come from the environment.
fn once(name: &str, base: &str, extra: &[&str]) -> (i32, String) {
    let dir = testkit::temp_dir(&format!("prober-once-{name}"));
    let src = std::fs::read_to_string(journeys().join(format!("{name}.yaml")))
        .unwrap()
        .replace("file:secrets/sandbox-ussd-pin", "env:TEST_USSD_PIN")
        .replace("file:secrets/sandbox-daraja-consumer-key", "env:TEST_DARAJA_KEY")
        .replace("file:secrets/sandbox-daraja-consumer-secret", "env:TEST_DARAJA_SECRET")
        .replace("file:secrets/sandbox-daraja-passkey", "env:TEST_DARAJA_PASSKEY")
        .replace("file:secrets/sandbox-airtel-client-id", "env:TEST_AIRTEL_ID")
        .replace("file:secrets/sandbox-airtel-client-secret", "env:TEST_AIRTEL_SECRET")
        // The other rails' sandbox values stay files, read from where the journeys live.
        .replace("file:secrets/", &format!("file:{}/secrets/", journeys().display()));
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, src).unwrap();
    let mut args: Vec<String> = vec!["once".into(), path.display().to_string()];
    for var in ["ussd_url", "events_url", "daraja", "momo", "airtel", "vodacom", "shop"] {
        let value = match var {
            "ussd_url" => format!("{base}/ussd/at"),
            "events_url" => format!("{base}/ussd/at/events"),
            "shop" => format!("{base}/shop/api"),
            // Every payment rail's base URL is the sandbox's.
            _ => base.to_owned(),
        };
        if std::fs::read_to_string(&path).unwrap().contains(&format!("\n  {var}:")) {
            args.push("--set".into());
            args.push(format!("{var}={value}"));
        }
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = Command::new(PROBER)
        .args(&args)
        .env("TEST_USSD_PIN", PIN)
        .env("TEST_DARAJA_KEY", KEY)
        .env("TEST_DARAJA_SECRET", SECRET)
        .env("TEST_DARAJA_PASSKEY", sandbox::config::SANDBOX_PASSKEY)
        .env("TEST_AIRTEL_ID", AIRTEL_ID)
        .env("TEST_AIRTEL_SECRET", AIRTEL_SECRET)
        .env("PROBER_LOG", "debug")
        .output()
        .unwrap();
    drop(dir);
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn assert_clean(what: &str, text: &str) {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:{SECRET}"));
    let momo_basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        sandbox::momo::SANDBOX_API_USER,
        sandbox::momo::SANDBOX_API_KEY
    ));
    let forbidden = [
        PIN,
        KEY,
        SECRET,
        AIRTEL_ID,
        AIRTEL_SECRET,
        sandbox::config::SANDBOX_PASSKEY,
        &basic,
        "254700000100",
        "0712345678",
        sandbox::momo::SANDBOX_API_KEY,
        sandbox::momo::SANDBOX_SUBSCRIPTION_KEY,
        &momo_basic,
        "256772000100",
        sandbox::mpesa_tz::SANDBOX_API_KEY,
        "255754000100",
        "256750000100",
        "750000100",
    ];
    for f in forbidden {
        assert!(!text.contains(f), "{what} leaks {f:?}:\n{text}");
    }
    assert!(!text.contains(r#""access_token":"c"#) && !text.contains("Bearer "), "{what} leaks a token:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundled_journeys_pass_and_no_output_leaks_a_secret_or_a_phone_number() {
    let sb = sandbox().await;
    let base = sb.base_url().to_owned();
    for name in [
        "ussd-balance",
        "ussd-send-money",
        "mpesa-stk-push",
        "checkout-mpesa",
        "checkout-momo",
        "airtel-collect",
        "checkout-mpesa-tz",
    ] {
        for flags in
            [&["--profile", "loopback"][..], &["--profile", "loopback", "--json"], &["--profile", "loopback", "-v"]]
        {
            let (code, text) = tokio::task::spawn_blocking({
                let base = base.clone();
                let flags: Vec<&'static str> = flags.to_vec();
                move || once(name, &base, &flags)
            })
            .await
            .unwrap();
            assert_eq!(code, 0, "{name} {flags:?} failed:\n{text}");
            assert_clean(&format!("{name} {flags:?}"), &text);
            if name == "mpesa-stk-push" && !flags.contains(&"--json") {
                // The payment's rail, the provider's code and its meaning, in words.
                let line = "payment `stk-push` · rail mpesa-ke · code 0 · ok: mpesa-ke 0 (success): ";
                assert!(text.contains(line), "{name} {flags:?}:\n{text}");
            }
        }
    }
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_tell_a_failed_journey_from_a_bad_file() {
    let sb = sandbox().await;
    let base = sb.base_url().to_owned();
    sb.faults().set(Service::Shop, Fault { outage: true, ..Fault::default() }).unwrap();
    let (code, text) =
        tokio::task::spawn_blocking(move || once("checkout-mpesa", &base, &["-p", "loopback"])).await.unwrap();
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("FAILED (gateway_error)") && text.contains("HTTP 503"), "{text}");
    sb.shutdown().await;

    let dir = testkit::temp_dir("prober-bad");
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "name: x\nsteps:\n  - name: a\n    wait: {fixed: 1 fortnight}\n").unwrap();
    let out = Command::new(PROBER).args(["once", bad.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(":4:19: steps[0].wait.fixed: `1 fortnight`"), "{err}");

    let out = Command::new(PROBER)
        .args(["once", journeys().join("ussd-balance.yaml").to_str().unwrap(), "--set", "nope=1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the journey has no variable `nope`"));
}
