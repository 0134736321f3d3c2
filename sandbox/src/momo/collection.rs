//! Request to pay, its status, the balance and the account-holder check.
//!
//! A request to pay is checked in this order: the subscription key and bearer token (401),
//! `X-Target-Environment` (400 missing; 500 `NOT_ALLOWED_TARGET_ENVIRONMENT` unknown),
//! `X-Reference-Id` (400 unless a UUID version 4), the body field by field (400 naming the field),
//! the currency against the environment's (500 `INVALID_CURRENCY`), `X-Callback-Url` against the
//! API user's callback host (500 `INVALID_CALLBACK_URL_HOST`), then the reference's novelty (409
//! `RESOURCE_ALREADY_EXIST`). An accepted request gets 202 and an empty body; after the callback
//! delay it settles as [`super::outcome`] says and, when `X-Callback-Url` was given, its status
//! document is `PUT` there.
//!
//! The status document (strings, as MTN's schema types them):
//!
//! ```json
//! {"amount": "500", "currency": "UGX", "financialTransactionId": "1034563461",
//!  "externalId": "SavannaPulse", "payer": {"partyIdType": "MSISDN", "partyId": "256772000100"},
//!  "payerMessage": "Probe", "payeeNote": "SavannaPulse", "status": "SUCCESSFUL"}
//! ```
//!
//! `financialTransactionId` is there on success only; a failed payment has `"status": "FAILED"`
//! and `"reason": "APPROVAL_REJECTED"` (the reason as a word, as MTN's sandbox and clients send it).

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
};
use serde_json::{Map, Value, json};
use tokio::time::{Instant, sleep};

use super::{Momo, MomoError, Outcome, Payment, State as PaymentState, currency_of, uuid_v4};
use crate::{client::loggable, mask::mask_phone};

/// Longest `payerMessage` and `payeeNote` MTN accepts.
pub const MAX_NOTE_CHARS: usize = 160;
/// How long one callback delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The mobile prefixes (after 256) of MTN Uganda's numbers; in `mtnuganda` any other number has
/// no MoMo wallet.
const MTN_UGANDA_PREFIXES: [&str; 3] = ["76", "77", "78"];

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// `X-Target-Environment` and its currency.
fn environment(headers: &HeaderMap) -> Result<(String, &'static str), MomoError> {
    let env = header(headers, "x-target-environment")
        .ok_or_else(|| MomoError::bad_request("X-Target-Environment: give `sandbox` or the market (mtnuganda)"))?;
    let currency = currency_of(env).ok_or_else(MomoError::not_allowed_environment)?;
    Ok((env.to_owned(), currency))
}

/// A field that is a string, or a number given for one (MTN's own examples send numbers).
fn text(obj: &Map<String, Value>, field: &str) -> Option<String> {
    match obj.get(field) {
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// A positive amount with at most two decimals, kept as sent.
fn amount(obj: &Map<String, Value>) -> Result<String, MomoError> {
    let bad = || MomoError::bad_request("amount: give a positive amount as a string (\"500\")");
    let s = text(obj, "amount").ok_or_else(bad)?;
    let (whole, fraction) = s.split_once('.').unwrap_or((&s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let shaped = !whole.is_empty() && whole.len() <= 15 && digits(whole) && fraction.len() <= 2 && digits(fraction);
    let positive = s.bytes().any(|b| (b'1'..=b'9').contains(&b));
    if shaped && positive && !(s.contains('.') && fraction.is_empty()) { Ok(s) } else { Err(bad()) }
}

fn note(obj: &Map<String, Value>, field: &str) -> Result<String, MomoError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) if s.chars().count() <= MAX_NOTE_CHARS => Ok(s.clone()),
        _ => Err(MomoError::bad_request(format!("{field}: a text of at most {MAX_NOTE_CHARS} characters"))),
    }
}

/// `payer`: `{"partyIdType": "MSISDN", "partyId": "2567…"}` (E.164 digits, no `+`), or an
/// `EMAIL` or `PARTY_CODE` party.
fn payer(obj: &Map<String, Value>) -> Result<(String, String), MomoError> {
    let payer = obj
        .get("payer")
        .and_then(Value::as_object)
        .ok_or_else(|| MomoError::bad_request("payer: give {\"partyIdType\": \"MSISDN\", \"partyId\": \"2567…\"}"))?;
    let kind = text(payer, "partyIdType").unwrap_or_default();
    let id = text(payer, "partyId").unwrap_or_default();
    let valid = match kind.as_str() {
        "MSISDN" => (8..=15).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit()),
        "EMAIL" => id.len() <= 254 && id.split_once('@').is_some_and(|(u, d)| !u.is_empty() && d.contains('.')),
        "PARTY_CODE" => uuid_v4(&id).is_some(),
        _ => return Err(MomoError::bad_request("payer.partyIdType: MSISDN, EMAIL or PARTY_CODE")),
    };
    if !valid {
        let what =
            if kind == "MSISDN" { "the number with its country code, digits only (2567…)" } else { "a valid id" };
        return Err(MomoError::bad_request(format!("payer.partyId: give {what}")));
    }
    Ok((kind, id))
}

/// The request's body, checked field by field.
fn parse_body(body: &[u8], api_user: &str, environment: &str) -> Result<Payment, MomoError> {
    let obj = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        _ => return Err(MomoError::bad_request("body: give a JSON object")),
    };
    let amount = amount(&obj)?;
    let currency = text(&obj, "currency")
        .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
        .ok_or_else(|| MomoError::bad_request("currency: an ISO 4217 code (UGX)"))?;
    let external_id = match obj.get("externalId") {
        None | Some(Value::Null) => String::new(),
        Some(_) => text(&obj, "externalId")
            .filter(|e| e.chars().count() <= MAX_NOTE_CHARS)
            .ok_or_else(|| MomoError::bad_request("externalId: a text of at most 160 characters"))?,
    };
    let (party_id_type, party_id) = payer(&obj)?;
    Ok(Payment {
        api_user: api_user.to_owned(),
        environment: environment.to_owned(),
        amount,
        currency,
        external_id,
        party_id_type,
        party_id,
        payer_message: note(&obj, "payerMessage")?,
        payee_note: note(&obj, "payeeNote")?,
        state: PaymentState::Pending,
    })
}

/// `X-Callback-Url`, if given: an http(s) URL on the API user's callback host.
fn callback_url(momo: &Momo, headers: &HeaderMap, api_user: &str) -> Result<Option<url::Url>, MomoError> {
    let Some(raw) = header(headers, "x-callback-url") else { return Ok(None) };
    let url = url::Url::parse(raw)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| MomoError::bad_request("X-Callback-Url: give an http or https URL"))?;
    let allowed = momo.callback_host(api_user).unwrap_or_default();
    if !url
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .eq_ignore_ascii_case(allowed.trim_matches(['[', ']']))
    {
        return Err(MomoError::invalid_callback_host());
    }
    Ok(Some(url))
}

/// How this payment ends: by the payer's suffix, except that a number outside MTN Uganda has no
/// wallet in `mtnuganda`.
fn outcome_of(environment: &str, party_id_type: &str, party_id: &str) -> Outcome {
    let foreign = environment == "mtnuganda"
        && party_id_type == "MSISDN"
        && !MTN_UGANDA_PREFIXES.iter().any(|pre| party_id.strip_prefix("256").is_some_and(|n| n.starts_with(pre)));
    if foreign { Outcome::PayerNotFound } else { Outcome::for_party(party_id) }
}

/// `POST /collection/v1_0/requesttopay`.
pub(crate) async fn request_to_pay(
    State(momo): State<Arc<Momo>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, MomoError> {
    let api_user = momo.check_bearer(&headers)?;
    let (env, env_currency) = environment(&headers)?;
    let reference = header(&headers, "x-reference-id")
        .and_then(uuid_v4)
        .ok_or_else(|| MomoError::bad_request("X-Reference-Id: give a new UUID version 4 for each request"))?;
    let payment = parse_body(&body, &api_user, &env)?;
    if payment.currency != env_currency {
        return Err(MomoError::invalid_currency());
    }
    let callback = callback_url(&momo, &headers, &api_user)?;
    let outcome = outcome_of(&payment.environment, &payment.party_id_type, &payment.party_id);
    {
        let now = Instant::now();
        let mut payments = momo.payments.lock();
        if payments.get(&reference, now).is_some() {
            return Err(MomoError::duplicate_reference());
        }
        tracing::info!(
            reference = %reference,
            payer = %mask_phone(&payment.party_id),
            amount = %payment.amount,
            currency = %payment.currency,
            outcome = outcome.describe(),
            "momo request to pay accepted"
        );
        payments.insert(reference.clone(), payment, now);
    }
    let after = outcome.completes_after(momo.callback_delay, momo.approval_window);
    momo.tasks.spawn(settle(momo.clone(), reference, outcome, after, callback));
    Ok(StatusCode::ACCEPTED)
}

/// The status document of a payment.
pub(crate) fn document(p: &Payment) -> Value {
    let mut doc = json!({
        "amount": p.amount,
        "currency": p.currency,
        "externalId": p.external_id,
        "payer": { "partyIdType": p.party_id_type, "partyId": p.party_id },
        "payerMessage": p.payer_message,
        "payeeNote": p.payee_note,
    });
    match p.state {
        PaymentState::Pending => doc["status"] = json!("PENDING"),
        PaymentState::Successful { financial_transaction_id } => {
            doc["financialTransactionId"] = json!(financial_transaction_id.to_string());
            doc["status"] = json!("SUCCESSFUL");
        }
        PaymentState::Failed { reason } => {
            doc["status"] = json!("FAILED");
            doc["reason"] = json!(reason);
        }
    }
    doc
}

/// The sender of MTN MoMo payment messages.
pub const CONFIRMATION_SENDER: &str = "MTNMoMo";

/// A successful payment from an MSISDN: the payer's confirmation SMS, in MTN MoMo's shape.
fn confirm_by_sms(momo: &Momo, doc: &Value) {
    if doc["status"] != "SUCCESSFUL" || doc["payer"]["partyIdType"] != "MSISDN" {
        return;
    }
    let text = format!(
        "Y'ello. You have paid {} {} to {}. Financial Transaction Id: {}. Message: {}. Fee: {} 0.",
        doc["currency"].as_str().unwrap_or_default(),
        doc["amount"].as_str().unwrap_or_default(),
        crate::daraja::callback::MERCHANT_NAME,
        doc["financialTransactionId"].as_str().unwrap_or_default(),
        doc["payerMessage"].as_str().unwrap_or_default(),
        doc["currency"].as_str().unwrap_or_default(),
    );
    let to = format!("+{}", doc["payer"]["partyId"].as_str().unwrap_or_default());
    if let Err(e) = momo.sms.send(&to, CONFIRMATION_SENDER, &text) {
        tracing::warn!(error = %e, "momo confirmation SMS not sent");
    }
}

/// Waits, settles the payment, and delivers its callback(s).
async fn settle(momo: Arc<Momo>, reference: String, outcome: Outcome, after: Duration, callback: Option<url::Url>) {
    sleep(after).await;
    let state = match outcome.reason() {
        Some(reason) => PaymentState::Failed { reason },
        None => PaymentState::Successful { financial_transaction_id: momo.rng.digits(9).parse().unwrap_or(1) },
    };
    let doc = {
        let mut payments = momo.payments.lock();
        let Some(p) = payments.get_mut(&reference, Instant::now()) else { return };
        p.state = state;
        document(p)
    };
    confirm_by_sms(&momo, &doc);
    let Some(url) = callback else {
        tracing::info!(reference = %reference, status = %doc["status"], "momo payment settled without callback");
        return;
    };
    let body = bytes::Bytes::from(doc.to_string());
    for copy in 1..=outcome.callback_copies() {
        let sent = momo
            .http
            .send(http::Method::PUT, url.as_str(), Some(("application/json", body.clone())), &[], DELIVERY_TIMEOUT)
            .await;
        match sent {
            Ok(r) => {
                tracing::info!(reference = %reference, url = %loggable(&url), status = r.status.as_u16(), copy, "momo callback delivered")
            }
            Err(e) => {
                tracing::warn!(reference = %reference, url = %loggable(&url), error = %e, copy, "momo callback delivery failed")
            }
        }
    }
}

/// `GET /collection/v1_0/requesttopay/{referenceId}`: 200 with the document, even when failed;
/// 404 for a reference this API user never created.
pub(crate) async fn status(
    State(momo): State<Arc<Momo>>,
    Path(reference): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, MomoError> {
    let api_user = momo.check_bearer(&headers)?;
    let (env, _) = environment(&headers)?;
    let key = reference.to_ascii_lowercase();
    let payments = momo.payments.lock();
    match payments.get(&key, Instant::now()) {
        Some(p) if p.api_user == api_user && p.environment == env => Ok(Json(document(p))),
        _ => Err(MomoError::not_found()),
    }
}

/// `GET /collection/v1_0/account/balance`.
pub(crate) async fn balance(State(momo): State<Arc<Momo>>, headers: HeaderMap) -> Result<Json<Value>, MomoError> {
    momo.check_bearer(&headers)?;
    let (_, currency) = environment(&headers)?;
    Ok(Json(json!({ "availableBalance": "1000000", "currency": currency })))
}

/// `GET /collection/v1_0/accountholder/{msisdn|email|party_code}/{id}/active` → `{"result": bool}`
/// (false for the payer-not-found suffix, and for non-MTN numbers in `mtnuganda`).
pub(crate) async fn account_holder_active(
    State(momo): State<Arc<Momo>>,
    Path((kind, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, MomoError> {
    momo.check_bearer(&headers)?;
    let (env, _) = environment(&headers)?;
    let party_id_type = match kind.as_str() {
        "msisdn" => "MSISDN",
        "email" => "EMAIL",
        "party_code" => "PARTY_CODE",
        _ => return Err(MomoError::bad_request("accountHolderIdType: msisdn, email or party_code, in lowercase")),
    };
    Ok(Json(json!({ "result": outcome_of(&env, party_id_type, &id) != Outcome::PayerNotFound })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body() -> Value {
        json!({
            "amount": "500",
            "currency": "UGX",
            "externalId": "SavannaPulse",
            "payer": {"partyIdType": "MSISDN", "partyId": "256772000100"},
            "payerMessage": "Probe",
            "payeeNote": "SavannaPulse"
        })
    }

    fn parse(v: &Value) -> Result<Payment, MomoError> {
        parse_body(v.to_string().as_bytes(), "u", "mtnuganda")
    }

    #[test]
    fn the_documented_example_is_valid() {
        let p = parse(&body()).unwrap();
        assert_eq!((p.amount.as_str(), p.party_id.as_str()), ("500", "256772000100"));
        let mut numbers = body();
        numbers["amount"] = json!(50);
        numbers["externalId"] = json!(947354);
        numbers["payer"]["partyId"] = json!(256772000100u64);
        let p = parse(&numbers).unwrap();
        assert_eq!((p.amount.as_str(), p.external_id.as_str()), ("50", "947354"));
        let mut bare = body();
        for f in ["externalId", "payerMessage", "payeeNote"] {
            bare.as_object_mut().unwrap().remove(f);
        }
        parse(&bare).unwrap();
        let mut decimal = body();
        decimal["amount"] = json!("1.50");
        parse(&decimal).unwrap();
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(&str, &str, Value)> = vec![
            ("amount", "amount", json!("0")),
            ("amount", "amount", json!("-5")),
            ("amount", "amount", json!("1.")),
            ("amount", "amount", json!("1.234")),
            ("amount", "amount", json!("ten")),
            ("amount", "amount", json!(true)),
            ("currency", "currency", json!("ugx")),
            ("currency", "currency", json!("UGXX")),
            ("externalId", "externalId", json!(["x"])),
            ("payerMessage", "payerMessage", json!("x".repeat(161))),
            ("payeeNote", "payeeNote", json!(7)),
            ("payer", "payer", json!("256772000100")),
            ("payer", "payer.partyIdType", json!({"partyIdType": "PHONE", "partyId": "256772000100"})),
            ("payer", "payer.partyId", json!({"partyIdType": "MSISDN", "partyId": "+256772000100"})),
            ("payer", "payer.partyId", json!({"partyIdType": "MSISDN", "partyId": "2567"})),
            ("payer", "payer.partyId", json!({"partyIdType": "EMAIL", "partyId": "nobody"})),
        ];
        for (field, named, value) in cases {
            let mut b = body();
            b[field] = value.clone();
            let e = parse(&b).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{field}={value}");
            assert!(e.message.starts_with(&format!("{named}:")), "{field}={value}: {}", e.message);
        }
        let mut missing = body();
        missing.as_object_mut().unwrap().remove("amount");
        assert!(parse(&missing).unwrap_err().message.starts_with("amount:"));
        assert!(parse_body(b"[1]", "u", "sandbox").unwrap_err().message.starts_with("body:"));
    }

    #[test]
    fn numbers_outside_mtn_uganda_have_no_wallet_there() {
        let mut p = parse(&body()).unwrap();
        assert_eq!(outcome_of(&p.environment, &p.party_id_type, &p.party_id), Outcome::Success);
        p.party_id = "256702000100".into();
        assert_eq!(
            outcome_of(&p.environment, &p.party_id_type, &p.party_id),
            Outcome::PayerNotFound,
            "an Airtel number"
        );
        p.environment = "sandbox".into();
        assert_eq!(
            outcome_of(&p.environment, &p.party_id_type, &p.party_id),
            Outcome::Success,
            "the sandbox environment takes any number"
        );
    }

    #[test]
    fn documents_carry_the_state() {
        let mut p = parse(&body()).unwrap();
        assert_eq!(document(&p)["status"], "PENDING");
        assert!(document(&p).get("reason").is_none());
        p.state = PaymentState::Successful { financial_transaction_id: 23503452 };
        let d = document(&p);
        assert_eq!(
            (d["status"].as_str(), d["financialTransactionId"].as_str()),
            (Some("SUCCESSFUL"), Some("23503452"))
        );
        p.state = PaymentState::Failed { reason: "APPROVAL_REJECTED" };
        let d = document(&p);
        assert_eq!((d["status"].as_str(), d["reason"].as_str()), (Some("FAILED"), Some("APPROVAL_REJECTED")));
        assert!(d.get("financialTransactionId").is_none());
    }

    proptest! {
        /// Any bytes: a clean 400 or a payment, never a panic.
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Err(e) = parse_body(&body, "u", "mtnuganda") {
                prop_assert_eq!(e.status, StatusCode::BAD_REQUEST);
            }
        }

        /// Any text as the amount: accepted only when it is a positive decimal.
        #[test]
        fn amounts_are_positive_decimals(s in ".{0,12}") {
            let mut b = body();
            b["amount"] = json!(s.clone());
            if let Ok(p) = parse(&b) {
                prop_assert!(p.amount.parse::<f64>().is_ok_and(|a| a > 0.0), "{}", s);
            }
        }
    }
}
