//! No secret and no phone number leaves the fleet, in any shape, through any output.
//!
//! The target is the sandbox's shop with the `echo` fault on: every request is answered with HTTP
//! 500 and the request itself (request line, headers, body) as the body, as many real error pages
//! do. Three steps expect the 500 (so their excerpts are kept) and a last one fails on it. The
//! journey sends, in its URLs, headers and JSON bodies:
//! - a secret given by reference (`env:`), repeated in the last step's query so that it straddles
//!   the places where outputs cut text (the 600-character excerpts, the 120-character "body
//!   starts" of the failure), for three paddings (each cut then falls at three different points of
//!   the secret);
//! - a literal `Authorization: Bearer <JWT>` header and a literal token in a token-named variable
//!   (both warned about at load, and masked);
//! - a pooled phone number in every shape (`254…`, `+254 712 345 678`, dashed, `(0)`, local,
//!   `tel:`, `sub_254…`, inside an id, URL-encoded, `00254…`, bare subscriber digits), and
//!   numbers of Uganda and Tanzania the journey does not know.
//!
//! Outputs searched: `prober once` (table, `-v`, `--json`) with debug logs, the edge agent's logs,
//! outbox and journal files and `/metrics`, the aggregator's logs, store files (SQLite bytes),
//! JSON API, `/metrics` and status page, and the sandbox's debug log. Each is searched for every
//! shape of the numbers, the secret and its prefixes of 4 characters and more, and the literal
//! credentials.

mod fleet;

use std::{path::Path, time::Duration};

use fleet::*;
use testkit::config::{EdgeConfig, EdgeJourney, ms};

/// The secret given by reference; 28 characters, so repeated with a comma it recurs every 29.
const SECRET: &str = "Zq9Xw7Vt3Rp5Lm2Kd8Hj4Nb6Pc1T";
/// A literal bearer token written into the journey (JWT-shaped; signs nothing).
const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJsZWFrLXRlc3QifQ.c2lnbmF0dXJlLW9mLWxlYWstdGVzdA";
/// A literal token in a variable named like one.
const SESSION: &str = "f3a9c2e17b5d4086a1e2c3d4b5a69788";
/// The padding lengths: 0, 7 and 14 move each cut by 7 characters, so at least two of the three
/// runs cut the secret at least 4 characters in.
const PADS: [usize; 3] = [0, 7, 14];

fn journey_yaml() -> String {
    let repeated = vec!["{{ secrets.api_key }}"; 19].join(",");
    format!(
        r#"name: leak-check
description: A checkout whose error page echoes the request
profile: loopback
variables:
  shop: http://127.0.0.1:9/shop/api
  pad: ""
  phone: "254712345678"
  session_token: "{SESSION}"
secrets:
  api_key: env:LEAK_API_KEY
msisdn_pool: ["+254712345678"]
steps:
  - name: credentials
    http:
      method: POST
      url: "{{{{ shop }}}}/carts/c1/items"
      headers:
        authorization: "Bearer {JWT}"
        x-api-key: "{{{{ secrets.api_key }}}}"
        x-session: "{{{{ session_token }}}}"
      json: {{qty: 1}}
      assert: {{status: 500}}
  - name: phones-international
    http:
      method: POST
      url: "{{{{ shop }}}}/carts/c2/items"
      json:
        msisdn: "{{{{ phone }}}}"
        display: "+254 712 345 678"
        dashed: "+254-712-345-678"
        trunk: "+254 (0)712 345 678"
        tel: "tel:+254712345678"
        subscriber: "sub_254712345678"
        order: "ord254712345678x"
      assert: {{status: 500}}
  - name: phones-local
    http:
      method: POST
      url: "{{{{ shop }}}}/carts/c3/items"
      json:
        local: "0712 345 678"
        local_plain: "0712345678"
        encoded: "%2B254712345678"
        intl: "00254712345678"
        airtel: "712345678"
        uganda: "+256 772 123 456"
        tanzania: "255754123456"
      assert: {{status: 500}}
  - name: pay
    http:
      method: POST
      url: "{{{{ shop }}}}/carts/sub_{{{{ phone }}}}/items?p={{{{ pad }}}}&k={repeated}"
      json: {{qty: 1}}
"#
    )
}

/// Every string that must appear in no output, with what it is. The secret's prefixes come
/// longest first, so each output names only the longest it holds.
fn forbidden() -> Vec<(String, String)> {
    let mut f = Vec::new();
    for k in (4..=SECRET.len()).rev() {
        f.push((SECRET[..k].to_owned(), format!("the secret's first {k} characters")));
    }
    f.push((JWT.to_owned(), "the literal bearer token".into()));
    f.push((JWT.rsplit('.').next().unwrap().to_owned(), "the literal bearer token's signature".into()));
    f.push((SESSION.to_owned(), "the literal session token".into()));
    f.push((SESSION[..16].to_owned(), "the literal session token's first half".into()));
    for shape in ["712345678", "712 345 678", "712-345-678", "772 123 456", "772123456", "754123456"] {
        f.push((shape.to_owned(), format!("a phone number ({shape})")));
    }
    f
}

/// Every forbidden string in `outputs` (for the secret, its longest prefix), as lines for the
/// failure message.
fn leaks(outputs: &[(String, Vec<u8>)]) -> Vec<String> {
    let forbidden = forbidden();
    let mut found = Vec::new();
    for (name, bytes) in outputs {
        let text = String::from_utf8_lossy(bytes);
        let mut secret_found = false;
        for (needle, what) in &forbidden {
            let is_prefix = SECRET.starts_with(needle.as_str());
            if is_prefix && secret_found {
                continue;
            }
            if let Some(at) = text.find(needle.as_str()) {
                secret_found |= is_prefix;
                let from = text.floor_char_boundary(at.saturating_sub(60));
                let to = text.ceil_char_boundary((at + needle.len() + 20).min(text.len()));
                found.push(format!("{name}: {what}, in …{}…", text[from..to].replace('\n', "⏎")));
            }
        }
    }
    found
}

/// Every file under `dir`, by its path.
fn files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
}

/// `prober once` with debug logs: stdout and stderr together.
async fn once(journey: &Path, shop: &str, pad: usize, flag: Option<&str>) -> String {
    let mut cmd = tokio::process::Command::new(&bins().prober);
    cmd.arg("once")
        .arg(journey)
        .args(["--set", &format!("shop={shop}"), "--set", &format!("pad={}", "p".repeat(pad))])
        .args(["--log", "debug"])
        .args(flag)
        .env("LEAK_API_KEY", SECRET)
        .env("RUST_LOG", "debug")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("prober once finishes within 60 s")
        .expect("prober once runs");
    assert_eq!(out.status.code(), Some(1), "the journey fails on the echo fault");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn write_edge_config(dir: &Path, journey: &Path, shop: &str, aggregator: &str) -> std::path::PathBuf {
    EdgeConfig::new(EDGES[0].id, EDGES[0].region, aggregator, "env:PROBER_TOKEN")
        .reporting_interval(ms(REPORTING_INTERVAL_MS))
        .concurrency(2)
        .profile("loopback")
        .listen("127.0.0.1:0")
        .journey(EdgeJourney::new(journey, ms(2_000)).timeout(ms(1_500)).var("shop", shop).var("pad", "ppppppp"))
        .keep_acked()
        .write(&dir.join("edge.yaml"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_phone_number_reaches_any_output() {
    tokio::task::spawn_blocking(|| {
        bins();
    })
    .await
    .unwrap();
    let dir = tmpdir("leak");
    let journey = dir.join("leak-check.yaml");
    std::fs::write(&journey, journey_yaml()).unwrap();

    // `env RUST_LOG=debug` overrides the quieter filter `Proc::spawn` sets.
    let debug = ["env", "RUST_LOG=debug"];
    let mut sandbox = Proc::spawn("sandbox", &debug, &bins().sandbox, &["--listen", "127.0.0.1:0"], &[]);
    let base = sandbox.line_after("Savanna Pulse sandbox on ", Duration::from_secs(20)).await.trim().to_owned();
    let http = aggregator::client::HttpClient::default();
    let echo = serde_json::json!({"echo": true});
    let reply = http.send_json(http::Method::PUT, &format!("{base}/admin/faults/shop"), &echo).await.unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.text());
    let shop = format!("{base}/shop/api");

    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    for pad in PADS {
        for flag in [None, Some("-v"), Some("--json")] {
            let out = once(&journey, &shop, pad, flag).await;
            outputs.push((format!("prober once {} (pad {pad})", flag.unwrap_or("(table)")), out.into_bytes()));
        }
    }
    // The edge agent and the aggregator, until the aggregator has stored the journey's runs.
    let agg_config = write_aggregator_config(&dir, "127.0.0.1:0", None);
    let mut aggregator = Proc::spawn(
        "aggregator",
        &debug,
        &bins().aggregator,
        &["serve", "--config", agg_config.to_str().unwrap()],
        &aggregator_env(),
    );
    let agg = aggregator.line_after("aggregator listening on ", Duration::from_secs(30)).await.trim().to_owned();
    let edge_dir = dir.join("edge");
    std::fs::create_dir_all(&edge_dir).unwrap();
    let edge_config = write_edge_config(&edge_dir, &journey, &shop, &agg);
    let mut prober = Proc::spawn(
        "prober",
        &debug,
        &bins().prober,
        &["run", "--config", edge_config.to_str().unwrap(), "--log", "debug"],
        &[("PROBER_TOKEN", EDGES[0].token), ("LEAK_API_KEY", SECRET)],
    );
    let mut metrics = String::new();
    wait_until("the prober's start line", Duration::from_secs(30), async || {
        let log = prober.log();
        let Some((_, rest)) = log.split_once("/metrics on ") else { return false };
        metrics = rest.lines().next().unwrap_or_default().trim().to_owned();
        true
    })
    .await;
    let query = "/api/v1/query?from=0&to=99999999999999&group_by=journey,step,outcome,region";
    wait_until("the aggregator to store leak-check runs", Duration::from_secs(90), async || {
        http_get(&agg, query).await.is_some_and(|(s, v)| s == 200 && v.to_string().contains("leak-check"))
    })
    .await;
    let prober_metrics = http.get(&format!("{metrics}/metrics")).await.unwrap();
    outputs.push(("prober /metrics".into(), prober_metrics.body.to_vec()));
    assert_eq!(prober.term(Duration::from_secs(30)).await, 0, "the prober stops cleanly:\n{}", prober.log());
    for path in [query, "/api/v1/probers", "/api/v1/slos", "/api/v1/alerts", "/metrics", "/status"] {
        let reply = http.get(&format!("{agg}{path}")).await.unwrap();
        assert_eq!(reply.status, 200, "GET {path}: {:?}", reply.text());
        outputs.push((format!("aggregator GET {path}"), reply.body.to_vec()));
    }
    aggregator.term(Duration::from_secs(30)).await;
    sandbox.term(Duration::from_secs(30)).await;
    files(&edge_dir.join("outbox"), &mut outputs);
    files(&dir.join("data"), &mut outputs);
    for p in [&prober, &aggregator, &sandbox] {
        outputs.push((format!("{} log", p.name), p.log().into_bytes()));
    }
    assert!(
        outputs.iter().any(|(n, b)| n.ends_with(".report") && String::from_utf8_lossy(b).contains("leak-check")),
        "the outbox holds the journey's reports"
    );

    let found = leaks(&outputs);
    assert!(found.is_empty(), "{} leak(s):\n{}", found.len(), found.join("\n"));
    // The runs did meet the echo, and masking (not silence) is why nothing leaked.
    let verbose = String::from_utf8_lossy(&outputs[1].1).into_owned();
    assert!(verbose.contains("injected echo fault"), "the echo reached the excerpt:\n{verbose}");
    assert!(verbose.contains("+254***678"), "phone numbers show masked:\n{verbose}");
    for field in ["steps[0].http.headers.authorization", "variables.session_token"] {
        assert!(
            verbose.contains(&format!("{}:", journey.display())) && verbose.contains(field),
            "the load warns about {field}, naming the file:\n{verbose}"
        );
    }
}
