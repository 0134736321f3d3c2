//! The `mpesa_stk` model and its load-time checks; the runs are in `scenarios/tests/journeys.rs`.

use std::{path::Path, time::Duration};

use crate::{
    journey::{Journey, parse_journey},
    journey::ResultSource,
    steps::{Kind, payment::Mode},
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
    assert!(matches!(k.result.mode(ResultSource::Callback), Some(Mode::Poll(_))));

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

/// The STK Query answer's id is what the payment step compares: a query for another
/// CheckoutRequestID reads as another payment.
#[test]
fn an_stk_query_answer_names_its_checkout_request() {
    use crate::rails::mpesa_ke::codes;
    let answer = br#"{"ResponseCode":"0","ResponseDescription":"ok","MerchantRequestID":"m","CheckoutRequestID":"ws_CO_other","ResultCode":"0","ResultDesc":"ok"}"#;
    let q = codes::parse_query(answer).unwrap().into_rail();
    assert_eq!((q.id.as_str(), q.code.as_str()), ("ws_CO_other", "0"));
    let bare = codes::parse_query(br#"{"ResponseCode":"0","ResultCode":"0","ResultDesc":"ok"}"#).unwrap().into_rail();
    assert_eq!(bare.id, "");
}

/// An `mpesa_stk` step is a payment step on the `mpesa-ke` rail, and names its errors by its own
/// fields.
#[test]
fn an_stk_step_loads_into_a_payment_step() {
    let j = parse(STK).unwrap();
    let Kind::MpesaStk(k) = &j.steps[0].kind else { panic!() };
    let p = k.to_payment();
    assert_eq!(p.rail.name(), "mpesa-ke");
    assert_eq!(p.expected[0].0, "1037");
    let e = parse(&STK.replace("msisdn_pool: [\"254700000100\", \"254700000200\"]", "msisdn_pool: [\"256772000100\"]")).unwrap_err();
    assert!(e.contains("steps[0].mpesa_stk.phone") && e.contains("KE mobile number"), "{e}");
    let e = parse(&STK.replace("result: {poll: {interval: 2s}}", "result: {response: {}}")).unwrap_err();
    assert!(e.contains("steps[0].mpesa_stk.result"), "{e}");
}
