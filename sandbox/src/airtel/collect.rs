//! The collection request (USSD push), `POST /merchant/v1/payments/`.
//!
//! Checked in this order: the Bearer token (HTTP 401), `X-Country` (`ROUTER006`), `X-Currency`
//! (`ROUTER112`), then the body field by field — `reference`, `subscriber.country` (`ESB000034`),
//! `subscriber.currency` (`ESB000035`), `subscriber.msisdn` (`ESB000033`: the 9-digit national
//! number, a mobile number of the country, **without** the country code), `transaction.amount`,
//! `transaction.country`, `transaction.currency`, `transaction.id` (other fields `ESB000008`,
//! naming the field) — then the `transaction.id` is new (`ESB000041`) and the subscriber has no
//! collection in flight (`ESB000004`, HTTP 409). An accepted request is answered at once; the
//! payer's answer comes later ([`super::callback`]).

use std::sync::Arc;

use axum::{Json, body::Bytes, extract::State, http::HeaderMap};
use serde_json::{Map, Value, json};

use super::{Airtel, AirtelError, Country, Outcome, Txn, TxnState, callback, country_headers};
use crate::mask::mask_phone;
use crate::store::Refusal;

/// Longest `reference` and `transaction.id` accepted (Airtel documents no limit: **Unsure**; the
/// sandbox's choice).
pub const MAX_TEXT: usize = 64;

/// A validated collection request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CollectRequest {
    pub reference: String,
    pub msisdn: String,
    pub amount: u64,
    pub id: String,
}

fn object<'a>(v: Option<&'a Value>, field: &str) -> Result<&'a Map<String, Value>, AirtelError> {
    v.and_then(Value::as_object).ok_or_else(|| AirtelError::field(field, "must be a JSON object"))
}

/// Non-empty text of at most [`MAX_TEXT`] characters; `visible` also refuses spaces and control
/// characters.
fn text(obj: &Map<String, Value>, path: &str, key: &str, visible: bool) -> Result<String, AirtelError> {
    let must = if visible { "must be 1 to 64 visible ASCII characters" } else { "must be text of 1 to 64 characters" };
    let s = obj.get(key).and_then(Value::as_str).map(str::trim).ok_or_else(|| AirtelError::field(path, must))?;
    let fits = (1..=MAX_TEXT).contains(&s.chars().count());
    if fits && (!visible || s.bytes().all(|b| b.is_ascii_graphic())) {
        Ok(s.to_owned())
    } else {
        Err(AirtelError::field(path, must))
    }
}

/// A body `country` must be the `X-Country`, a `currency` the `X-Currency`.
fn same_as_headers(obj: &Map<String, Value>, prefix: &str, country: Country) -> Result<(), AirtelError> {
    let field = format!("{prefix}.country");
    if obj.get("country").and_then(Value::as_str) != Some(country.code()) {
        return Err(AirtelError::country(&field));
    }
    let field = format!("{prefix}.currency");
    if obj.get("currency").and_then(Value::as_str) != Some(country.currency()) {
        return Err(AirtelError::currency(&field));
    }
    Ok(())
}

/// The national number as Airtel wants it: 9 digits, a mobile lead digit, no country code.
pub(crate) fn msisdn(value: Option<&Value>, country: Country) -> Result<String, AirtelError> {
    let Some(s) = value.and_then(Value::as_str).map(str::trim) else {
        return Err(AirtelError::msisdn("must be text: the 9-digit national number"));
    };
    if !s.chars().all(|c| c.is_ascii_digit()) {
        return Err(AirtelError::msisdn("must be digits only (no +, spaces or country code)"));
    }
    if s.len() == 12 && s.starts_with(country.calling_code()) {
        return Err(AirtelError::msisdn(&format!(
            "must not include the country code {}: send the 9-digit national number",
            country.calling_code()
        )));
    }
    if s.len() != 9 {
        return Err(AirtelError::msisdn("must be 9 digits, without the country code or a leading 0"));
    }
    if !s.chars().next().is_some_and(|c| country.mobile_lead(c)) {
        return Err(AirtelError::msisdn(&format!("is not a mobile number of {}", country.code())));
    }
    Ok(s.to_owned())
}

/// A positive whole number, as a JSON number (`500`, `500.0`) or a numeric string (`"500"`).
fn amount(value: Option<&Value>) -> Result<u64, AirtelError> {
    let bad = || AirtelError::field("transaction.amount", "must be a positive whole number");
    let n = match value {
        Some(Value::String(s)) => s.trim().parse::<u64>().map_err(|_| bad())?,
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(v), _) => v,
            (None, Some(f)) if f.fract() == 0.0 && (1.0..1e15).contains(&f) => f as u64,
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    if n == 0 { Err(bad()) } else { Ok(n) }
}

/// Validates a collection body for the `X-Country` (whose currency the headers already matched).
pub(crate) fn parse_collect(body: &[u8], country: Country) -> Result<CollectRequest, AirtelError> {
    let root: Value = serde_json::from_slice(body).map_err(|_| AirtelError::field("body", "must be a JSON object"))?;
    let root = object(Some(&root), "body")?;
    let reference = text(root, "reference", "reference", false)?;
    let subscriber = object(root.get("subscriber"), "subscriber")?;
    same_as_headers(subscriber, "subscriber", country)?;
    let msisdn = msisdn(subscriber.get("msisdn"), country)?;
    let transaction = object(root.get("transaction"), "transaction")?;
    let amount = amount(transaction.get("amount"))?;
    same_as_headers(transaction, "transaction", country)?;
    let id = text(transaction, "transaction.id", "id", true)?;
    Ok(CollectRequest { reference, msisdn, amount, id })
}

/// Airtel's id for the money movement, in the shape integrations show (`MP210603.1234.L06941`).
fn money_id(airtel: &Airtel) -> String {
    let stamp = chrono::Utc::now().format("%y%m%d.%H%M");
    format!("MP{stamp}.{}{}", airtel.rng.upper_alnum(1), airtel.rng.digits(5))
}

/// `POST /merchant/v1/payments/`.
pub(crate) async fn collect(
    State(airtel): State<Arc<Airtel>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, AirtelError> {
    airtel.check_bearer(&headers)?;
    let country = country_headers(&headers)?;
    let req = parse_collect(&body, country)?;
    let outcome = Outcome::for_msisdn(&req.msisdn);
    let airtel_money_id = money_id(&airtel);
    let txn = Txn { msisdn: req.msisdn.clone(), country, airtel_money_id, state: TxnState::Pending };
    let admitted = airtel.ledger.lock().admit(&req.id, txn).map_err(|r| match r {
        Refusal::Duplicate => AirtelError::duplicate_id(),
        Refusal::Locked => AirtelError::subscriber_busy(),
        Refusal::Full => AirtelError::busy(),
    });
    if let Err(e) = admitted {
        tracing::info!(phone = %mask_phone(&req.msisdn), error = %e, "airtel collection refused");
        return Err(e);
    }
    let after = outcome.settles_after(airtel.callback_delay, airtel.expiry);
    tracing::info!(
        id = %req.id,
        phone = %mask_phone(&req.msisdn),
        amount = req.amount,
        currency = country.currency(),
        outcome = outcome.describe(),
        after_ms = after.as_millis() as u64,
        "airtel collection accepted"
    );
    let job = callback::Job {
        id: req.id.clone(),
        msisdn: req.msisdn,
        amount: req.amount,
        currency: country.currency(),
        outcome,
        after,
    };
    airtel.tasks.spawn(callback::settle(airtel.clone(), job));
    Ok(Json(json!({
        "data": { "transaction": { "id": req.id, "status": "Success." } },
        "status": {
            "code": "200",
            "message": "SUCCESS",
            "result_code": "ESB000010",
            "response_code": super::outcome::IN_PROCESS.0,
            "success": true,
        },
    })))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn body() -> Value {
        json!({
            "reference": "Probe",
            "subscriber": {"country": "UG", "currency": "UGX", "msisdn": "750000100"},
            "transaction": {"amount": 500, "country": "UG", "currency": "UGX", "id": "6f1c2a9e0b7d4c39"},
        })
    }

    fn parse(v: &Value) -> Result<CollectRequest, AirtelError> {
        parse_collect(v.to_string().as_bytes(), Country::Ug)
    }

    #[test]
    fn the_documented_example_is_valid() {
        let req = parse(&body()).unwrap();
        assert_eq!((req.msisdn.as_str(), req.amount, req.id.as_str()), ("750000100", 500, "6f1c2a9e0b7d4c39"));
        let mut b = body();
        b["transaction"]["amount"] = json!("1000");
        assert_eq!(parse(&b).unwrap().amount, 1000);
        b["transaction"]["amount"] = json!(20.0);
        assert_eq!(parse(&b).unwrap().amount, 20);
        let tz = json!({
            "reference": "Probe",
            "subscriber": {"country": "TZ", "currency": "TZS", "msisdn": "684000100"},
            "transaction": {"amount": 500, "country": "TZ", "currency": "TZS", "id": "a"},
        });
        assert_eq!(parse_collect(tz.to_string().as_bytes(), Country::Tz).unwrap().msisdn, "684000100");
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(&str, &str, Value, &str)> = vec![
            ("", "reference", json!(""), "reference"),
            ("", "reference", json!(7), "reference"),
            ("", "subscriber", json!("x"), "subscriber"),
            ("subscriber", "country", json!("TZ"), "subscriber.country"),
            ("subscriber", "currency", json!("TZS"), "subscriber.currency"),
            ("subscriber", "msisdn", json!("256750000100"), "subscriber.msisdn"),
            ("subscriber", "msisdn", json!("0750000100"), "subscriber.msisdn"),
            ("subscriber", "msisdn", json!("+256750000100"), "subscriber.msisdn"),
            ("subscriber", "msisdn", json!("650000100"), "subscriber.msisdn"),
            ("subscriber", "msisdn", json!(750000100), "subscriber.msisdn"),
            ("", "transaction", json!([]), "transaction"),
            ("transaction", "amount", json!(0), "transaction.amount"),
            ("transaction", "amount", json!(-5), "transaction.amount"),
            ("transaction", "amount", json!(1.5), "transaction.amount"),
            ("transaction", "amount", json!("1.5"), "transaction.amount"),
            ("transaction", "country", json!("KE"), "transaction.country"),
            ("transaction", "currency", json!("KES"), "transaction.currency"),
            ("transaction", "id", json!(""), "transaction.id"),
            ("transaction", "id", json!("has space"), "transaction.id"),
            ("transaction", "id", json!("x".repeat(65)), "transaction.id"),
        ];
        for (parent, key, value, named) in cases {
            let mut b = body();
            if parent.is_empty() {
                b[key] = value.clone();
            } else {
                b[parent][key] = value.clone();
            }
            let e = parse(&b).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{named}={value}");
            assert!(e.message.contains(named), "{named}={value}: {}", e.message);
        }
        let e = parse(&json!({"reference": "x", "subscriber": body()["subscriber"], "transaction": {}})).unwrap_err();
        assert!(e.message.contains("transaction.amount"), "{}", e.message);
        let e = parse(&body().tap_msisdn("256750000100")).unwrap_err();
        assert_eq!(e.result_code, Some("ESB000033"));
        assert!(e.message.contains("country code 256"), "{}", e.message);
        assert!(parse_collect(b"[1]", Country::Ug).unwrap_err().message.contains("body"));
        assert!(parse_collect(b"{nope", Country::Ug).unwrap_err().message.contains("body"));
    }

    trait TapMsisdn {
        fn tap_msisdn(self, m: &str) -> Value;
    }

    impl TapMsisdn for Value {
        fn tap_msisdn(mut self, m: &str) -> Value {
            self["subscriber"]["msisdn"] = json!(m);
            self
        }
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

    const FIELDS: [(&str, &str, &str); 9] = [
        ("", "reference", "reference"),
        ("subscriber", "country", "subscriber.country"),
        ("subscriber", "currency", "subscriber.currency"),
        ("subscriber", "msisdn", "subscriber.msisdn"),
        ("transaction", "amount", "transaction.amount"),
        ("transaction", "country", "transaction.country"),
        ("transaction", "currency", "transaction.currency"),
        ("transaction", "id", "transaction.id"),
        ("", "subscriber", "subscriber"),
    ];

    proptest! {
        /// Any bytes: a clean 400 envelope or a request, never a panic.
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Err(e) = parse_collect(&body, Country::Tz) {
                prop_assert_eq!(e.status.as_u16(), 400);
            }
        }

        /// Replacing one field of a valid body with any JSON value is accepted or refused naming
        /// exactly that field.
        #[test]
        fn a_bad_field_is_the_one_named(index in 0..FIELDS.len(), value in any_json()) {
            let (parent, key, named) = FIELDS[index];
            let mut b = body();
            if parent.is_empty() { b[key] = value; } else { b[parent][key] = value; }
            if let Err(e) = parse(&b) {
                prop_assert!(e.message.contains(named), "{} for {}", e.message, named);
            }
        }
    }
}
