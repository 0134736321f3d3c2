//! The `payment` model and its load-time checks; the runs are in `scenarios/tests/`.

use std::path::Path;

use crate::{
    Outcome,
    journey::{Journey, ResultSource, parse_journey},
    rails::{Currency, RailConf, RailResult},
    steps::{Kind, payment::run::same_payment},
};

fn parse(src: &str) -> Result<Journey, String> {
    parse_journey(src, "j.yaml", Path::new(".")).map_err(|e| e.to_string())
}

const PAY: &str = r#"
name: pay
msisdn_pool: ["+254700000100", "+256772000100"]
variables: {daraja: "http://127.0.0.1:7700"}
steps:
  - name: push
    payment:
      rail:
        mpesa-ke:
          base_url: "{{ daraja }}"
          consumer_key: k
          consumer_secret: s
          shortcode: "174379"
          passkey: p
      amount: 1
      currency: KES
      payer: pool
      result: {poll: {interval: 2s}}
      expected: [1037]
"#;

#[test]
fn a_payment_step_loads_with_its_rail() {
    let j = parse(PAY).unwrap();
    let Kind::Payment(k) = &j.steps[0].kind else { panic!() };
    assert!(matches!(k.rail, RailConf::MpesaKe(_)));
    assert_eq!((k.amount, k.currency, k.expected[0].0.as_str()), (1, Currency::Kes, "1037"));
    assert_eq!(j.steps[0].kind.name(), "payment");
    let e = parse(&PAY.replace("mpesa-ke:", "mpesa-xx:")).unwrap_err();
    assert!(e.contains("unknown field `mpesa-xx`") && e.contains("mpesa-ke"), "{e}");
    let e = parse(&PAY.replace("      rail:\n        mpesa-ke:", "      rail: {}\n      old:")).unwrap_err();
    assert!(e.contains("give exactly one rail: mpesa-ke"), "{e}");
}

#[test]
fn money_is_capped_per_currency() {
    let e = parse(&PAY.replace("amount: 1\n", "amount: 11\n")).unwrap_err();
    assert!(e.contains("steps[0].payment.amount: step `push`: 11 KES must be between 1 and max_amount (10 KES)"), "{e}");
    let e = parse(&PAY.replace("amount: 1\n", "amount: 1\n      max_amount: 50\n")).unwrap_err();
    assert!(e.contains("payment.max_amount") && e.contains("above the default cap of 10 KES: set above_default_cap"), "{e}");
    parse(&PAY.replace("amount: 1\n", "amount: 50\n      max_amount: 50\n      above_default_cap: true\n")).unwrap();
    let e = parse(&PAY.replace("amount: 1\n", "amount: 1\n      max_amount: 101\n      above_default_cap: true\n"))
        .unwrap_err();
    assert!(e.contains("above the hard cap of 100 KES"), "{e}");
    let e = parse(&PAY.replace("currency: KES", "currency: UGX")).unwrap_err();
    assert!(e.contains("payment.currency") && e.contains("the mpesa-ke rail charges in KES, not UGX"), "{e}");
    let e = parse(&PAY.replace("currency: KES", "currency: USD")).unwrap_err();
    assert!(e.contains("unknown variant `USD`"), "{e}");
}

#[test]
fn the_payer_must_be_a_number_of_the_rails_country() {
    let e = parse(&PAY.replace("\"+254700000100\", ", "")).unwrap_err();
    assert!(e.contains("payment.payer") && e.contains("no number of the msisdn_pool is a KE mobile number"), "{e}");
    let e = parse(&PAY.replace("payer: pool", "payer: \"+256772000100\"")).unwrap_err();
    assert!(e.contains("payment.payer") && e.contains("not a number of KE"), "{e}");
    assert!(!e.contains("772000100"), "the number is never quoted: {e}");
    parse(&PAY.replace("payer: pool", "payer: \"0700000100\"")).unwrap();
}

#[test]
fn the_result_mode_must_be_one_the_rail_has() {
    let e = parse(&PAY.replace("result: {poll: {interval: 2s}}", "result: {response: {}}")).unwrap_err();
    assert!(e.contains("payment.result") && e.contains("cannot deliver a result by response: use callback or relay or poll"), "{e}");
    let e = parse(&PAY.replace("result: {poll: {interval: 2s}}", "result: {poll: {}, callback: {}}")).unwrap_err();
    assert!(e.contains("give one of callback, relay, poll or response"), "{e}");
    let e = parse(&PAY.replace("expected: [1037]", "success: []")).unwrap_err();
    assert!(e.contains("payment.success"), "{e}");
}

#[test]
fn literal_credentials_are_named_below_the_rail() {
    let j = parse(PAY).unwrap();
    let fields: Vec<String> =
        j.steps[0].kind.plain_credentials(&Default::default()).into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["rail.mpesa-ke.consumer_key", "rail.mpesa-ke.consumer_secret", "rail.mpesa-ke.passkey"]);
}

/// A result for another payment than the requested one is the gateway's fault, with both ids in
/// the message; the matching one passes.
#[test]
fn a_result_for_another_payment_is_a_gateway_error() {
    let other = RailResult { id: "ws_CO_other".into(), code: "0".into(), text: "ok".into(), raw: serde_json::json!({}) };
    let err = same_payment("ws_CO_ours", &other, ResultSource::Poll).unwrap_err();
    assert_eq!(err.outcome, Outcome::GatewayError);
    assert!(err.message.contains("ws_CO_other") && err.message.contains("ws_CO_ours"), "{}", err.message);
    assert!(err.message.contains("status answer"), "{}", err.message);
    same_payment("ws_CO_other", &other, ResultSource::Poll).unwrap();
    let bare = RailResult { id: String::new(), ..other };
    assert!(same_payment("ws_CO_ours", &bare, ResultSource::Callback).is_err(), "an answer without the id is not ours");
}
