use std::{path::Path, time::Duration};

use super::*;
use crate::journey::DEFAULT_STEP_TIMEOUT;

fn parse(src: &str) -> Result<Journey, String> {
    parse_journey(src, "j.yaml", Path::new(".")).map_err(|e| e.to_string())
}

const SHOP: &str = r#"
name: checkout
labels: {team: payments}
profile: ea-3g
variables:
  shop: http://127.0.0.1:7700/shop/api
  phone: "254700000100"
steps:
  - name: browse
    http:
      url: "{{ shop }}/products"
      assert:
        status: 200
        json:
          - {path: "$[0].id", exists: true}
    extract:
      product: {json: "$[0].id"}
  - name: think
    wait: {min: 1s, max: 3s}
  - name: cart
    http:
      method: POST
      url: "{{ shop }}/carts"
      json: {product: "{{ product }}", qty: 1}
      assert: {status: [200, 201]}
    timeout: 10s
"#;

#[test]
fn a_journey_loads_with_defaults_filled_in() {
    let j = parse(SHOP).unwrap();
    assert_eq!(j.name, "checkout");
    assert_eq!(j.labels["team"], "payments");
    assert_eq!(j.profile.as_deref(), Some("ea-3g"));
    assert_eq!(j.steps.len(), 3);
    assert_eq!(j.steps[0].timeout, DEFAULT_STEP_TIMEOUT);
    assert_eq!(j.steps[2].timeout, Duration::from_secs(10));
    assert_eq!(j.steps[1].timeout, Duration::from_secs(4), "wait: its max plus a second");
    assert_eq!(j.timeout, Duration::from_secs(44), "the sum of the step timeouts");
    assert_eq!(j.steps[0].line, 9);
    let Kind::Http(h) = &j.steps[2].kind else { panic!() };
    assert_eq!(h.method, "POST");
}

#[test]
fn errors_name_file_line_and_field() {
    let e = parse(&SHOP.replace("    timeout: 10s", "    timeout: 10 parsecs")).unwrap_err();
    assert!(e.starts_with("j.yaml:26:14: steps[2].timeout: `10 parsecs`: unknown unit"), "{e}");

    let e = parse(&SHOP.replace("      method: POST", "      methd: POST")).unwrap_err();
    assert!(e.starts_with("j.yaml:22:7: steps[2].http.methd: unknown field `methd`"), "{e}");

    let e = parse(&SHOP.replace("{{ product }}", "{{ prodcut }}")).unwrap_err();
    assert!(
        e.starts_with("j.yaml:24:")
            && e.contains(": steps[2].http.json.product: step `cart`: `{{ prodcut }}` is not defined here"),
        "{e}"
    );

    let e = parse(&SHOP.replace("method: POST", "method: FETCH")).unwrap_err();
    assert!(e.starts_with("j.yaml:22:15: steps[2].http.method: step `cart`: `FETCH`"), "{e}");

    let e = parse(&SHOP.replace("wait: {min: 1s, max: 3s}", "wait: {min: 3s, max: 1s}")).unwrap_err();
    assert!(e.contains("steps[1].wait.min: step `think`: min must not exceed max"), "{e}");

    let e = parse(&SHOP.replace("$[0].id\", exists", "$[0.id\", exists")).unwrap_err();
    assert!(e.contains("invalid JSON path"), "{e}");

    let e = parse(
        &SHOP.replace("  - name: think\n    wait: {min: 1s, max: 3s}\n", "  - name: browse\n    wait: {fixed: 1s}\n"),
    )
    .unwrap_err();
    assert!(e.contains("step names must be unique"), "{e}");
}

#[test]
fn a_step_needs_exactly_one_kind() {
    let e = parse("name: x\nsteps:\n  - name: a\n    wait: {fixed: 1s}\n    http: {url: http://x}\n").unwrap_err();
    assert!(
        e.starts_with(
            "j.yaml:3:5: steps[0]: step `a`: give exactly one of http, ussd, payment, mpesa_stk, wait or sms"
        ),
        "{e}"
    );
    let e = parse("name: x\nsteps:\n  - name: a\n").unwrap_err();
    assert!(e.contains("give exactly one of"), "{e}");
    let e = parse("name: x\nsteps: []\n").unwrap_err();
    assert!(e.starts_with("j.yaml:2:8: steps: a journey needs at least one step"), "{e}");
}

#[test]
fn secrets_are_references_and_must_resolve() {
    let e = parse("name: x\nsecrets:\n  pin: \"1234\"\nsteps:\n  - name: a\n    wait: {fixed: 1s}\n").unwrap_err();
    assert!(e.contains("never inline") && !e.contains("1234"), "{e}");
    let e =
        parse("name: x\nsecrets:\n  pin: env:SAVANNA_TEST_SURELY_UNSET\nsteps:\n  - name: a\n    wait: {fixed: 1s}\n")
            .unwrap_err();
    assert!(
        e.starts_with("j.yaml:3:8: secrets.pin: environment variable `SAVANNA_TEST_SURELY_UNSET` is not set"),
        "{e}"
    );

    let dir = testkit::temp_dir("scn-secrets");
    std::fs::write(dir.join("pin"), "4321\n").unwrap();
    let src =
        "name: x\nsecrets:\n  pin: file:pin\nsteps:\n  - name: a\n    http: {url: \"http://h/?p={{ secrets.pin }}\"}\n";
    let j = parse_journey(src, "j.yaml", &dir).unwrap();
    assert_eq!(j.secrets.get("pin").unwrap().expose(), "4321");
    assert_eq!(format!("{:?}", j.secrets), "Secrets({\"pin\": ***})");
}

#[test]
fn dialoguss_files_are_imported() {
    let src = r#"
url: http://localhost:7654
dial: "*1234*1234#"
phoneNumber: 265888123456
sessions:
  - id: 12345678910
    description: "Should return a balance of 500 for Zikani"
    steps:
      - expect: "What is your name?"
      - userInput: "Zikani"
        expect: "Welcome, Zikani"
      - text: 2
        expect: "Your balance is: MK 500"
"#;
    let j = parse(src).unwrap();
    assert_eq!(j.name, "dialoguss-j");
    let Kind::Ussd(u) = &j.steps[0].kind else { panic!() };
    assert_eq!(j.steps[0].name, "Should return a balance of 500 for Zikani");
    assert_eq!(u.service_code, "*1234*1234#");
    assert_eq!(u.phone, "+265888123456");
    let inputs: Vec<_> = u.dialogue.iter().map(|t| t.input.clone()).collect();
    assert_eq!(inputs, [None, Some("Zikani".into()), Some("2".into())]);
}

proptest::proptest! {
    /// Loading never panics, whatever the text.
    #[test]
    fn loading_never_panics(src in "\\PC*") {
        let _ = parse_journey(&src, "fuzz.yaml", Path::new("."));
    }

    #[test]
    fn loading_near_journeys_never_panics(src in "(name: x\n|steps:\n|  - name: a\n|    http: \\{url: \"\\{\\{ x \\}\\}\"\\}\n|    wait: \\{fixed: 1s\\}\n|    ussd:\n|      dialogue:\n|        - input: \"1\"\n|dial: 1\n|sessions: \\[\\]\n|url: u\n)*") {
        let _ = parse_journey(&src, "fuzz.yaml", Path::new("."));
    }
}
