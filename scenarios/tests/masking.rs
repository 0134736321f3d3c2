//! What a trace shows of a target that echoes the request (the sandbox's `echo` fault), in
//! process: credentials and phone numbers are masked in excerpts, labels and failure messages,
//! whatever their shape, and a value a step extracts under a credential's name is masked in the
//! steps after it. (`tests/leak.rs` at the workspace root does the same for every output of the
//! whole fleet.)

use std::{path::Path, time::Duration};

use sandbox::{Config, Fault, Service};
use scenarios::{Outcome, PlayOptions, journey::parse_journey, play};

const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYXNraW5nIn0.bWFza2luZy10ZXN0LXNpZ25hdHVyZQ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echoing_target_shows_no_credential_and_no_number() {
    let sb = sandbox::Sandbox::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        callback_delay: Duration::from_millis(100),
        ..Default::default()
    })
    .await
    .unwrap();
    for s in [Service::Shop, Service::Ussd] {
        sb.faults().set(s, Fault { echo: true, ..Fault::default() }).unwrap();
    }
    let base = sb.base_url().to_owned();
    let host = base.trim_start_matches("http://").to_owned();
    let src = format!(
        r#"name: echo
variables:
  base: "{base}"
  phone: "0712345678"
steps:
  - name: literal-bearer
    http:
      method: POST
      url: "{{{{ base }}}}/shop/api/carts/sub_254712345678/items"
      headers: {{authorization: "Bearer {JWT}"}}
      json: {{to: "+254 712 345 678", local: "{{{{ phone }}}}", bare: "712345678"}}
      assert: {{status: 500}}
    extract:
      api_token: {{regex: "host: (\\S+)"}}
  - name: after-extract
    http:
      method: POST
      url: "{{{{ base }}}}/shop/api/carts/c1/items"
      json: {{qty: 1}}
      assert: {{status: 500}}
  - name: gateway
    ussd:
      url: "{{{{ base }}}}/ussd/at"
      service_code: "*384*7#"
      phone: "+256772123456"
      dialogue:
        - expect: {{contains: "Savanna"}}
"#
    );
    let j = parse_journey(&src, "echo.yaml", Path::new(".")).unwrap();
    let t = play(&j, &PlayOptions::new(netem::Profile::unshaped("loopback"), 3)).await;
    let json = serde_json::to_string_pretty(&t).unwrap();
    assert_eq!(t.outcome, Outcome::GatewayError, "{json}");
    assert!(json.contains("injected echo fault"), "the echo is in the excerpts:\n{json}");

    for (needle, what) in [
        (JWT, "the literal bearer token"),
        ("712345678", "the phone's subscriber digits"),
        ("712 345 678", "the spaced phone"),
        ("772123456", "the USSD step's phone"),
        (host.as_str(), "the value extracted as api_token"),
    ] {
        let in_later_steps = serde_json::to_string(&t.steps[1..]).unwrap();
        let hay = if what.starts_with("the value extracted") { &in_later_steps } else { &json };
        assert!(!hay.contains(needle), "{what} shows:\n{json}");
    }
    for shape in ["sub_254***678", "+254***678", "0***678", r#"\"***678\""#, "%2B256***456", "authorization: ***"] {
        assert!(json.contains(shape), "{shape} in\n{json}");
    }
    let failure = t.failure.as_ref().unwrap().message.as_str();
    assert!(failure.contains("HTTP 500") && failure.contains("the reply: \"injected echo"), "{failure}");
    sb.shutdown().await;
}
