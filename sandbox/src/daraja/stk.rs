//! STK push (M-Pesa Express) and STK push query.
//!
//! A push is checked in Daraja's order: Bearer token, body, each field (`400.002.02 Bad Request -
//! Invalid <Field>`), the merchant, the Password (`500.001.1001 [MerchantValidate] - Wrong
//! credentials`), then the subscriber lock (`500.001.1001 Unable to lock subscriber...`). An
//! accepted push gets the synchronous reply and, after the callback delay, the callback.

use std::sync::Arc;

use axum::{Json, body::Bytes, extract::State, http::HeaderMap};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::{Daraja, DarajaError, Outcome, Txn, TxnState, callback, stk_password};
use crate::mask::mask_phone;
use crate::store::Refusal;

/// Largest STK amount accepted, in KES (Daraja's single-transaction cap).
pub const MAX_STK_AMOUNT: u64 = 250_000;

/// A validated STK push request.
#[derive(Debug, Clone)]
pub(crate) struct PushRequest {
    pub shortcode: String,
    pub password: String,
    pub timestamp: String,
    pub amount: u64,
    pub phone: String,
    pub callback_url: url::Url,
}

fn object(body: &[u8]) -> Result<Map<String, Value>, DarajaError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(DarajaError::invalid_payload()),
    }
}

/// A field that must be a string (some clients send numbers for numeric fields: accepted as
/// their decimal text).
fn text(obj: &Map<String, Value>, field: &str) -> Result<String, DarajaError> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s.trim().to_owned()),
        Some(Value::Number(n)) if n.is_u64() => Ok(n.to_string()),
        _ => Err(DarajaError::invalid_field(field)),
    }
}

fn digits(obj: &Map<String, Value>, field: &str, len: std::ops::RangeInclusive<usize>) -> Result<String, DarajaError> {
    let s = text(obj, field)?;
    if len.contains(&s.len()) && s.chars().all(|c| c.is_ascii_digit()) {
        Ok(s)
    } else {
        Err(DarajaError::invalid_field(field))
    }
}

fn bounded_text(obj: &Map<String, Value>, field: &str, max: usize) -> Result<String, DarajaError> {
    let s = text(obj, field)?;
    if (1..=max).contains(&s.chars().count()) { Ok(s) } else { Err(DarajaError::invalid_field(field)) }
}

/// A whole number of KES, as a string (`"1"`) or a JSON number (`1`, or `1.0`).
fn amount(obj: &Map<String, Value>) -> Result<u64, DarajaError> {
    let invalid = || DarajaError::invalid_field("Amount");
    let value = match obj.get("Amount") {
        Some(Value::String(s)) => s.trim().parse::<u64>().map_err(|_| invalid())?,
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(v), _) => v,
            (None, Some(f)) if f.fract() == 0.0 && f >= 0.0 && f <= MAX_STK_AMOUNT as f64 => f as u64,
            _ => return Err(invalid()),
        },
        _ => return Err(invalid()),
    };
    if (1..=MAX_STK_AMOUNT).contains(&value) { Ok(value) } else { Err(invalid()) }
}

/// `YYYYMMDDHHmmss`, a real date and time.
pub fn valid_timestamp(ts: &str) -> bool {
    ts.len() == 14
        && ts.chars().all(|c| c.is_ascii_digit())
        && chrono::NaiveDateTime::parse_from_str(ts, "%Y%m%d%H%M%S").is_ok()
}

/// A Kenyan MSISDN as Daraja wants it: 12 digits, `2547…` or `2541…`.
pub fn valid_msisdn(s: &str) -> bool {
    s.len() == 12 && s.chars().all(|c| c.is_ascii_digit()) && (s.starts_with("2547") || s.starts_with("2541"))
}

fn msisdn(obj: &Map<String, Value>, field: &str) -> Result<String, DarajaError> {
    let s = text(obj, field)?;
    if valid_msisdn(&s) { Ok(s) } else { Err(DarajaError::invalid_field(field)) }
}

fn timestamp(obj: &Map<String, Value>) -> Result<String, DarajaError> {
    let s = text(obj, "Timestamp")?;
    if valid_timestamp(&s) { Ok(s) } else { Err(DarajaError::invalid_field("Timestamp")) }
}

/// Validates every field of a push body, in the order of Daraja's documentation.
pub(crate) fn parse_push(body: &[u8]) -> Result<PushRequest, DarajaError> {
    let obj = object(body)?;
    let shortcode = digits(&obj, "BusinessShortCode", 5..=7)?;
    let password = bounded_text(&obj, "Password", 512)?;
    let timestamp = timestamp(&obj)?;
    let transaction_type = text(&obj, "TransactionType")?;
    if !matches!(transaction_type.as_str(), "CustomerPayBillOnline" | "CustomerBuyGoodsOnline") {
        return Err(DarajaError::invalid_field("TransactionType"));
    }
    let amount = amount(&obj)?;
    msisdn(&obj, "PartyA")?;
    digits(&obj, "PartyB", 5..=7)?;
    let phone = msisdn(&obj, "PhoneNumber")?;
    let callback_url = text(&obj, "CallBackURL")?;
    let callback_url = url::Url::parse(&callback_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| DarajaError::invalid_field("CallBackURL"))?;
    bounded_text(&obj, "AccountReference", 12)?;
    bounded_text(&obj, "TransactionDesc", 13)?;
    Ok(PushRequest { shortcode, password, timestamp, amount, phone, callback_url })
}

impl Daraja {
    /// The merchant and Password checks shared by push and query.
    fn check_credentials(&self, shortcode: &str, password: &str, timestamp: &str) -> Result<(), DarajaError> {
        if shortcode != self.shortcode {
            return Err(DarajaError::merchant_does_not_exist());
        }
        if password != stk_password(&self.shortcode, &self.passkey, timestamp) {
            return Err(DarajaError::wrong_credentials());
        }
        Ok(())
    }
}

/// Identifiers in Daraja's shapes: `29115-34620561-1` and `ws_CO_<DDMMYYYYHHmmss><digits>`.
fn new_ids(daraja: &Daraja) -> (String, String) {
    let merchant = format!("{}-{}-1", daraja.rng.digits(5), daraja.rng.digits(8));
    let eat = chrono::FixedOffset::east_opt(3 * 3600).expect("UTC+3 is a valid offset");
    let stamp = chrono::Utc::now().with_timezone(&eat).format("%d%m%Y%H%M%S");
    let checkout = format!("ws_CO_{stamp}{}", daraja.rng.digits(10));
    (merchant, checkout)
}

/// `POST /mpesa/stkpush/v1/processrequest`.
pub(crate) async fn push(
    State(daraja): State<Arc<Daraja>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, DarajaError> {
    daraja.check_bearer(&headers)?;
    let req = parse_push(&body)?;
    daraja.check_credentials(&req.shortcode, &req.password, &req.timestamp)?;
    let outcome = Outcome::for_phone(&req.phone);
    let (merchant_request_id, checkout_request_id) = new_ids(&daraja);
    let txn =
        Txn { merchant_request_id: merchant_request_id.clone(), msisdn: req.phone.clone(), state: TxnState::Pending };
    let admitted = daraja.ledger.lock().admit(&checkout_request_id, txn).map_err(|r| match r {
        Refusal::Full => DarajaError::system_busy(),
        // CheckoutRequestIDs are ours and fresh: a duplicate is a lock as far as the caller knows.
        Refusal::Locked | Refusal::Duplicate => DarajaError::subscriber_locked(),
    });
    if let Err(e) = admitted {
        tracing::info!(phone = %mask_phone(&req.phone), error = %e.message, "stk push refused");
        return Err(e);
    }
    let delay = daraja.faults.callback_delay().unwrap_or(daraja.callback_delay);
    let after = outcome.completes_after(delay, daraja.query_expiry);
    tracing::info!(
        checkout = %checkout_request_id,
        phone = %mask_phone(&req.phone),
        amount = req.amount,
        outcome = outcome.describe(),
        after_ms = after.as_millis() as u64,
        "stk push accepted"
    );
    let job = callback::Job {
        merchant_request_id: merchant_request_id.clone(),
        checkout_request_id: checkout_request_id.clone(),
        msisdn: req.phone,
        amount: req.amount,
        callback_url: req.callback_url,
        outcome,
        after,
    };
    daraja.tasks.spawn(callback::complete(daraja.clone(), job));
    let accepted = "Success. Request accepted for processing";
    Ok(Json(json!({
        "MerchantRequestID": merchant_request_id,
        "CheckoutRequestID": checkout_request_id,
        "ResponseCode": "0",
        "ResponseDescription": accepted,
        "CustomerMessage": accepted,
    })))
}

/// `POST /mpesa/stkpushquery/v1/query`.
pub(crate) async fn query(
    State(daraja): State<Arc<Daraja>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, DarajaError> {
    daraja.check_bearer(&headers)?;
    let obj = object(&body)?;
    let shortcode = digits(&obj, "BusinessShortCode", 5..=7)?;
    let password = bounded_text(&obj, "Password", 512)?;
    let timestamp = timestamp(&obj)?;
    let checkout = bounded_text(&obj, "CheckoutRequestID", 64)?;
    daraja.check_credentials(&shortcode, &password, &timestamp)?;
    let txn = daraja.ledger.lock().txns.get(&checkout, Instant::now()).cloned();
    let Some(txn) = txn else { return Err(DarajaError::invalid_field("CheckoutRequestID")) };
    match txn.state {
        TxnState::Pending => Err(DarajaError::being_processed()),
        TxnState::Done { result_code, result_desc } => Ok(Json(json!({
            "ResponseCode": "0",
            "ResponseDescription": "The service request has been accepted successfully",
            "MerchantRequestID": txn.merchant_request_id,
            "CheckoutRequestID": checkout,
            "ResultCode": result_code.to_string(),
            "ResultDesc": result_desc,
        }))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SANDBOX_PASSKEY;

    fn body() -> Value {
        json!({
            "BusinessShortCode": "174379",
            "Password": stk_password("174379", SANDBOX_PASSKEY, "20160216165627"),
            "Timestamp": "20160216165627",
            "TransactionType": "CustomerPayBillOnline",
            "Amount": "1",
            "PartyA": "254708920430",
            "PartyB": "174379",
            "PhoneNumber": "254708920430",
            "CallBackURL": "https://mydomain.com/path",
            "AccountReference": "Test",
            "TransactionDesc": "Test"
        })
    }

    fn parse(v: &Value) -> Result<PushRequest, DarajaError> {
        parse_push(v.to_string().as_bytes())
    }

    #[test]
    fn the_documented_example_is_valid() {
        let req = parse(&body()).unwrap();
        assert_eq!(req.amount, 1);
        assert_eq!(req.phone, "254708920430");
        let mut numeric = body();
        numeric["Amount"] = json!(1);
        numeric["BusinessShortCode"] = json!(174379);
        numeric["PhoneNumber"] = json!(254708920430u64);
        assert_eq!(parse(&numeric).unwrap().amount, 1);
        numeric["Amount"] = json!(2.0);
        assert_eq!(parse(&numeric).unwrap().amount, 2);
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(&str, Value)> = vec![
            ("BusinessShortCode", json!("17a379")),
            ("Password", json!("")),
            ("Timestamp", json!("2016021616562")),
            ("Timestamp", json!("20161316165627")),
            ("TransactionType", json!("CustomerPayBill")),
            ("Amount", json!("1.5")),
            ("Amount", json!(0)),
            ("Amount", json!(1.5)),
            ("Amount", json!(250_001)),
            ("PartyA", json!("0708920430")),
            ("PartyB", json!("12")),
            ("PhoneNumber", json!("25470892043")),
            ("PhoneNumber", json!(true)),
            ("CallBackURL", json!("not a url")),
            ("CallBackURL", json!("ftp://x.example/cb")),
            ("AccountReference", json!("ABCDEFGHIJKLM")),
            ("TransactionDesc", json!("")),
            ("TransactionDesc", json!("fourteen chars")),
        ];
        for (field, value) in cases {
            let mut b = body();
            b[field] = value.clone();
            let err = parse(&b).unwrap_err();
            assert_eq!(err.code, "400.002.02", "{field}={value}");
            assert_eq!(err.message, format!("Bad Request - Invalid {field}"), "{field}={value}");
        }
        let mut missing = body();
        missing.as_object_mut().unwrap().remove("PhoneNumber");
        assert_eq!(parse(&missing).unwrap_err().message, "Bad Request - Invalid PhoneNumber");
        assert_eq!(parse_push(b"[1,2]").unwrap_err().code, "400.002.05");
        assert_eq!(parse_push(b"{not json").unwrap_err().code, "400.002.05");
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            ".{0,20}".prop_map(Value::from),
            "[0-9]{0,14}".prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| proptest::collection::vec(inner, 0..4).prop_map(Value::from))
    }

    const FIELDS: [&str; 11] = [
        "BusinessShortCode",
        "Password",
        "Timestamp",
        "TransactionType",
        "Amount",
        "PartyA",
        "PartyB",
        "PhoneNumber",
        "CallBackURL",
        "AccountReference",
        "TransactionDesc",
    ];

    use proptest::prelude::*;

    proptest! {
        /// Any bytes: a clean 400 envelope or a request, never a panic.
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Err(e) = parse_push(&body) {
                prop_assert_eq!(e.status.as_u16(), 400);
            }
        }

        /// Replacing one field of a valid push with any JSON value is accepted or refused naming
        /// exactly that field.
        #[test]
        fn a_bad_field_is_the_one_named(index in 0..FIELDS.len(), value in any_json()) {
            let field = FIELDS[index];
            let mut b = body();
            b[field] = value;
            if let Err(e) = parse(&b) {
                prop_assert_eq!(e.message, format!("Bad Request - Invalid {field}"));
            }
        }
    }
}
