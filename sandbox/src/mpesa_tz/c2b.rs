//! `POST /{env}/ipg/v2/{market}/c2bPayment/singleStage/`: the customer gets a USSD prompt, and
//! the call answers once they have acted.
//!
//! Checked in this order: the path and `Origin`, the session (401 `INS-26`), the body as a JSON
//! object, then each field — `input_Amount` (a positive amount as a string, `INS-15`),
//! `input_Country` `TZN` and `input_Currency` `TZS` (`INS-21`), `input_CustomerMSISDN` (`255` and
//! 9 digits of a Tanzanian mobile number, `INS-2051`), `input_ServiceProviderCode` (ours,
//! `INS-13`), `input_ThirdPartyConversationID` (1–64 characters, `INS-19`; reused → 409
//! `INS-10`), `input_TransactionReference` (1–20 characters, `INS-17`), `input_PurchasedItemsDesc`
//! — a missing field being `INS-20` with its name; then the customer must have no payment in
//! progress (409 `INS-10`). The answer:
//!
//! ```json
//! {"output_ResponseCode": "INS-0", "output_ResponseDesc": "Request processed successfully",
//!  "output_TransactionID": "8GX4QZ2M1KAB", "output_ConversationID": "<32 hex digits>",
//!  "output_ThirdPartyConversationID": "<as sent>"}
//! ```

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use super::{MpesaTz, OpenApiError, Outcome, Txn, describe};
use crate::{mask::mask_phone, store::Refusal};

/// A validated C2B request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct C2b {
    pub amount: String,
    pub msisdn: String,
    pub conversation: String,
}

/// A field's text (a number given for a string is read as its digits); missing → `INS-20`.
fn field(obj: &Map<String, Value>, name: &str) -> Result<String, OpenApiError> {
    match obj.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(OpenApiError::new("INS-20", name)),
    }
}

fn valid_amount(s: &str) -> bool {
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    !whole.is_empty()
        && whole.len() <= 12
        && digits(whole)
        && digits(fraction)
        && fraction.len() <= 2
        && !(s.contains('.') && fraction.is_empty())
        && s.bytes().any(|b| (b'1'..=b'9').contains(&b))
}

/// `255` and nine digits, the first 6 or 7 (Tanzania's mobile numbers).
fn valid_msisdn(s: &str) -> bool {
    s.len() == 12
        && s.bytes().all(|b| b.is_ascii_digit())
        && s.strip_prefix("255").is_some_and(|n| n.starts_with(['6', '7']))
}

/// Validates a body in the documented order.
pub(crate) fn parse(body: &[u8], provider: &str) -> Result<C2b, OpenApiError> {
    let obj = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        _ => return Err(OpenApiError::new("INS-21", "the body is not a JSON object")),
    };
    let amount = field(&obj, "input_Amount")?;
    if !valid_amount(&amount) {
        return Err(OpenApiError::new("INS-15", "input_Amount"));
    }
    if field(&obj, "input_Country")? != "TZN" {
        return Err(OpenApiError::new("INS-21", "input_Country is TZN"));
    }
    if field(&obj, "input_Currency")? != "TZS" {
        return Err(OpenApiError::new("INS-21", "input_Currency is TZS"));
    }
    let msisdn = field(&obj, "input_CustomerMSISDN")?;
    if !valid_msisdn(&msisdn) {
        return Err(OpenApiError::new("INS-2051", "input_CustomerMSISDN is 255 and 9 digits"));
    }
    if field(&obj, "input_ServiceProviderCode")? != provider {
        return Err(OpenApiError::new("INS-13", "input_ServiceProviderCode"));
    }
    let conversation = field(&obj, "input_ThirdPartyConversationID")?;
    if conversation.chars().count() > 64 {
        return Err(OpenApiError::new("INS-19", "input_ThirdPartyConversationID is 1 to 64 characters"));
    }
    let reference = field(&obj, "input_TransactionReference")?;
    if reference.chars().count() > 20 {
        return Err(OpenApiError::new("INS-17", "input_TransactionReference"));
    }
    field(&obj, "input_PurchasedItemsDesc")?;
    Ok(C2b { amount, msisdn, conversation })
}

/// `POST …/c2bPayment/singleStage/`.
pub(crate) async fn single_stage(
    State(state): State<Arc<MpesaTz>>,
    Path((env, market)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OpenApiError> {
    MpesaTz::check_path(&env, &market, &headers)?;
    state.check_session(&headers)?;
    let req = parse(&body, &state.settings.service_provider_code)?;
    let outcome = Outcome::for_msisdn(&req.msisdn);
    let txn = Txn { msisdn: req.msisdn.clone(), pending: true };
    state.ledger.lock().admit(&req.conversation, txn).map_err(|r| match r {
        Refusal::Duplicate => OpenApiError::new("INS-10", "input_ThirdPartyConversationID was used before"),
        Refusal::Locked => OpenApiError::new("INS-10", "the customer has a payment in progress"),
        Refusal::Full => OpenApiError::new("INS-16", ""),
    })?;
    tracing::info!(
        conversation = %req.conversation,
        customer = %mask_phone(&req.msisdn),
        amount = %req.amount,
        code = outcome.code(),
        "mpesa-tz c2b accepted, waiting for the customer"
    );
    // The customer has the prompt: the answer comes when they act (or the request times out).
    tokio::time::sleep(outcome.answers_after(state.delay, state.expiry)).await;
    state.ledger.lock().settle(&req.conversation, &req.msisdn, |t| t.pending = false);
    let code = outcome.code();
    let (desc, status) = describe(code);
    let mut answer = json!({
        "output_ResponseCode": code,
        "output_ResponseDesc": desc,
        "output_ConversationID": state.rng.hex(32),
        "output_ThirdPartyConversationID": req.conversation,
    });
    answer["output_TransactionID"] = json!(if code == "INS-0" { state.rng.upper_alnum(12) } else { String::new() });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Ok((status, Json(answer)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body() -> Value {
        json!({
            "input_Amount": "500",
            "input_Country": "TZN",
            "input_Currency": "TZS",
            "input_CustomerMSISDN": "255754000100",
            "input_ServiceProviderCode": "000000",
            "input_ThirdPartyConversationID": "3f1b6a347a4e4c479b552a2f0f6b9a10",
            "input_TransactionReference": "SavannaPulse",
            "input_PurchasedItemsDesc": "Probe"
        })
    }

    fn check(v: &Value) -> Result<C2b, OpenApiError> {
        parse(v.to_string().as_bytes(), "000000")
    }

    #[test]
    fn the_documented_request_is_valid() {
        let c = check(&body()).unwrap();
        assert_eq!((c.amount.as_str(), c.msisdn.as_str()), ("500", "255754000100"));
        let mut n = body();
        n["input_Amount"] = json!(500);
        n["input_CustomerMSISDN"] = json!(255754000100u64);
        check(&n).unwrap();
    }

    #[test]
    fn each_bad_field_gets_its_code() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("input_Amount", json!("0"), "INS-15"),
            ("input_Amount", json!("-1"), "INS-15"),
            ("input_Amount", json!("1.234"), "INS-15"),
            ("input_Country", json!("TZ"), "INS-21"),
            ("input_Currency", json!("KES"), "INS-21"),
            ("input_CustomerMSISDN", json!("0754000100"), "INS-2051"),
            ("input_CustomerMSISDN", json!("+255754000100"), "INS-2051"),
            ("input_CustomerMSISDN", json!("255254000100"), "INS-2051"),
            ("input_ServiceProviderCode", json!("111111"), "INS-13"),
            ("input_ThirdPartyConversationID", json!("x".repeat(65)), "INS-19"),
            ("input_TransactionReference", json!("x".repeat(21)), "INS-17"),
            ("input_PurchasedItemsDesc", json!(""), "INS-20"),
            ("input_PurchasedItemsDesc", json!(null), "INS-20"),
        ];
        for (name, value, code) in cases {
            let mut b = body();
            b[name] = value.clone();
            let e = check(&b).unwrap_err();
            assert_eq!(e.code, code, "{name}={value}: {}", e.desc);
        }
        let mut missing = body();
        missing.as_object_mut().unwrap().remove("input_TransactionReference");
        let e = check(&missing).unwrap_err();
        assert_eq!(e.code, "INS-20");
        assert!(e.desc.contains("input_TransactionReference"), "{}", e.desc);
        assert_eq!(parse(b"[]", "000000").unwrap_err().code, "INS-21");
    }

    proptest! {
        /// Any bytes: an OpenAPI refusal or a request, never a panic.
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Err(e) = parse(&body, "000000") {
                prop_assert!(e.code.starts_with("INS-"));
            }
        }
    }
}
