//! The gateway dialects against a USSD application nobody here wrote: one built with the npm
//! framework `ussd-builder` (sandbox/tests/interop/npm/ussd_builder.js, installed by `.ci/run`), which
//! speaks Africa's Talking, Hubtel and Nalo. It reads Hubtel's `ServiceCode` without `*`/`#` and
//! takes a direct dial's extra segments as input, so it checks that the prober sends what the
//! gateways send; and it answers Hubtel without `Label`/`DataType`/`FieldType` and with
//! `Type: "Response"`, which Hubtel refuses ("UUE"), so it checks that the prober refuses it too.

use std::{path::Path, process::Stdio, time::Duration};

use netem::Profile;
use scenarios::{Outcome, PlayOptions, Trace, journey::parse_journey, play};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

const NPM_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sandbox/tests/interop/npm");

/// The app, listening; or why it cannot run.
async fn app() -> Result<(Child, String), String> {
    let mut child = Command::new("node")
        .arg("ussd_builder.js")
        .current_dir(NPM_DIR)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run node: {e}"))?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
    match first {
        Ok(Ok(Some(l))) if l.starts_with("listening ") => Ok((child, format!("http://127.0.0.1:{}", &l[10..]))),
        _ => {
            let _ = child.kill().await;
            let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
            Err(format!("ussd-builder did not start: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
    }
}

async fn dial(base: &str, dialect: &str, dialled: &str, inputs: &[&str], phone: &str) -> Trace {
    let mut src = format!(
        "name: interop\nsteps:\n  - name: s\n    ussd:\n      url: \"{base}/{path}\"\n      dialect: {dialect}\n      service_code: \"*384*7#\"\n      dial: \"{dialled}\"\n      phone: \"{phone}\"\n      dialogue:\n        - expect: {{contains: \"{first}\"}}\n",
        path = if dialect == "africastalking" { "at" } else { dialect },
        first = if dialled.ends_with("*1#") { "balance is KES" } else { "1. My balance" },
    );
    for i in inputs {
        src += &format!(
            "        - input: \"{i}\"\n          expect: {{contains: \"balance is KES\"}}\n          end: true\n"
        );
    }
    let j = parse_journey(&src, "interop.yaml", Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
    play(&j, &PlayOptions::new(Profile::unshaped("loopback"), 7)).await
}

fn explain(t: &Trace) -> String {
    serde_json::to_string_pretty(t).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ussd_builder_app_understands_what_each_gateway_dialect_sends() {
    let (_app, base) = match app().await {
        Ok(a) => a,
        Err(why) => return testkit::skip(format!("ussd-builder interop: {why} (npm ci in sandbox/tests/interop/npm)")),
    };
    // Africa's Talking and Nalo: the framework's replies are what those gateways accept.
    for (dialect, phone) in [("africastalking", "+254700000100"), ("nalo", "+233240000100")] {
        let t = dial(&base, dialect, "*384*7#", &["1"], phone).await;
        assert_eq!(t.outcome, Outcome::Ok, "{dialect}: {}", explain(&t));
    }
    // Africa's Talking's `text` carries a direct dial's inputs: the balance at once.
    let t = dial(&base, "africastalking", "*384*7*1#", &[], "+254700000100").await;
    assert_eq!(t.outcome, Outcome::Ok, "africastalking direct dial: {}", explain(&t));
    // (Not a Nalo direct dial: ussd-builder 1.3.2 takes Nalo's whole first USERDATA as the
    // service code, so any dial opens its start screen.)

    // Hubtel: the framework found its route from our ServiceCode and Message (the first screen
    // for the bare code, the balance for a direct dial), but its reply lacks what Hubtel
    // requires, so the prober fails the hop as Hubtel would.
    for (code, screen, kind) in [("*384*7#", "1. My balance", "Response"), ("*384*7*1#", "balance is KES", "Release")] {
        let t = dial(&base, "hubtel", code, &[], "+233240000100").await;
        assert_eq!(t.outcome, Outcome::GatewayError, "hubtel {code}: {}", explain(&t));
        let f = t.failure.as_ref().unwrap();
        // It answers `Response`/`Release`, capitalised; Hubtel wants them in lower case.
        assert!(f.message.contains("UUE") && f.message.contains(&format!("Type \"{kind}\"")), "{}", f.message);
        let hop = &t.steps[0].excerpts[0];
        assert!(hop.request.contains("\"ServiceCode\":\"384*7\""), "{hop:?}");
        assert!(hop.request.contains(&format!("\"Message\":\"{code}\"")), "{hop:?}");
        assert!(hop.response.contains(screen), "ussd-builder read the dial as {code}? {hop:?}");
    }
}
