//! The `mpesa_stk` model and its load-time checks; the runs are in `scenarios/tests/journeys.rs`.

use std::{path::Path, time::Duration};

use crate::{
    journey::{Journey, parse_journey},
    steps::{Kind, mpesa_stk::StkResultMode},
};

fn parse(src: &str) -> Result<Journey, String> {
    parse_journey(src, "j.yaml", Path::new(".")).map_err(|e| e.to_string())
}

const STK: &str = r#"
name: pay
msisdn_pool: ["254700000100", "254700000200"]
variables: {daraja: "http://127.0.0.1:7700"}
steps:
  - name: push
    mpesa_stk:
      base_url: "{{ daraja }}"
      consumer_key: k
      consumer_secret: s
      shortcode: "174379"
      passkey: p
      phone: pool
      amount: 1
      result: {poll: {interval: 2s}}
      expected_codes: [1037]
"#;

#[test]
fn payment_steps_respect_the_money_limits() {
    let j = parse(STK).unwrap();
    let Kind::MpesaStk(k) = &j.steps[0].kind else { panic!() };
    assert_eq!((k.amount, k.max_amount, k.success_codes.as_slice()), (1, 10, &[0][..]));
    assert!(matches!(k.result.mode(), Some(StkResultMode::Poll(_))));

    let e = parse(&STK.replace("amount: 1", "amount: 50")).unwrap_err();
    assert!(
        e.contains("steps[0].mpesa_stk.amount: step `push`: 50 KES must be between 1 and max_amount (10 KES)"),
        "{e}"
    );
    let e = parse(&STK.replace("amount: 1", "amount: 1\n      max_amount: 5000")).unwrap_err();
    assert!(e.contains("above the hard cap of 100 KES"), "{e}");
    let e = parse(&STK.replace("msisdn_pool: [\"254700000100\", \"254700000200\"]", "msisdn_pool: []")).unwrap_err();
    assert!(e.contains("`pool` needs a non-empty msisdn_pool"), "{e}");
    let e = parse(&STK.replace("\"254700000200\"", "\"07-bad\"")).unwrap_err();
    assert!(e.contains("msisdn_pool[1]: every entry"), "{e}");
}

#[test]
fn the_payer_and_daraja_count_against_the_caps() {
    let j = parse(&STK.replace("phone: pool", "phone: \"254700000900\"")).unwrap();
    let uses = j.steps[0].kind.uses();
    assert_eq!(uses.len(), 2, "{uses:?}");
    let j = parse(STK).unwrap();
    assert_eq!(j.steps[0].kind.uses().len(), 1, "a pool spreads its pushes: only Daraja counts");
    assert_eq!(j.steps[0].timeout, Duration::from_secs(120));
}

/// A result for another CheckoutRequestID than the pushed one is the gateway's fault, with both
/// ids in the message; the matching one passes.
#[test]
fn a_result_for_another_checkout_request_is_a_gateway_error() {
    use crate::{Outcome, daraja::codes, journey::ResultSource, steps::mpesa_stk::run::same_checkout};
    let answer = br#"{"ResponseCode":"0","ResponseDescription":"ok","MerchantRequestID":"m","CheckoutRequestID":"ws_CO_other","ResultCode":"0","ResultDesc":"ok"}"#;
    let q = codes::parse_query(answer).unwrap();
    let err = same_checkout("ws_CO_ours", &q, ResultSource::Poll).unwrap_err();
    assert_eq!(err.outcome, Outcome::GatewayError);
    assert!(err.message.contains("ws_CO_other") && err.message.contains("ws_CO_ours"), "{}", err.message);
    assert!(err.message.contains("STK Query"), "{}", err.message);
    same_checkout("ws_CO_other", &q, ResultSource::Poll).unwrap();
    // An answer without the id is not ours either.
    let bare = codes::parse_query(br#"{"ResponseCode":"0","ResultCode":"0","ResultDesc":"ok"}"#).unwrap();
    assert!(same_checkout("ws_CO_ours", &bare, ResultSource::Poll).is_err());
}
