//! MTN MoMo's answers: the wire shapes (parsed leniently where MoMo is inconsistent: numbers or
//! strings, a `reason` as a word or as an `{code, message}` object) and what each code means for a
//! probe (docs/protocols/mobile-money.md §1).

use serde_json::Value;

use crate::{
    outcome::Outcome,
    rails::{CodeInfo, RailResult},
};

/// The result code of a payment that failed without a `reason`.
pub const FAILED_WITHOUT_REASON: &str = "FAILED";

/// What a status code or failure reason means, and its class when the journey did not declare it.
pub fn describe(code: &str) -> CodeInfo {
    let k = CodeInfo::known;
    use Outcome::{AssertionFailed as Ours, BusinessError as Payer, GatewayError as Theirs};
    match code {
        "SUCCESSFUL" => k("the payer approved; the money moved", Outcome::Ok),
        "PENDING" => k("the payer has not answered yet", Outcome::Timeout),
        FAILED_WITHOUT_REASON => k("failed, and MoMo gave no reason", Theirs),
        "APPROVAL_REJECTED" => k("the payer declined the request", Payer),
        "EXPIRED" => k("the request expired before the payer approved", Payer),
        "COULD_NOT_PERFORM_TRANSACTION" => k("the payer did not approve within the window (about 5 minutes)", Payer),
        "TRANSACTION_CANCELED" => k("the transaction was cancelled", Payer),
        "NOT_ENOUGH_FUNDS" => k("the payer's balance is too low", Payer),
        "PAYER_LIMIT_REACHED" => k("the payer reached a transaction limit", Payer),
        "SENDER_ACCOUNT_NOT_ACTIVE" => k("the payer's wallet is not active", Payer),
        "PAYMENT_NOT_APPROVED" => k("the payer did not approve the payment", Payer),
        "PAYER_NOT_FOUND" => k("no MoMo wallet for this MSISDN: check the number and its country code", Ours),
        "PAYEE_NOT_FOUND" => k("the payee (our account) is unknown: check the credentials", Ours),
        "PAYEE_NOT_ALLOWED_TO_RECEIVE" => k("the payee (our account) may not receive money", Ours),
        "NOT_ALLOWED" => k("the partner account is blocked or lacks the permission", Ours),
        "NOT_ALLOWED_TARGET_ENVIRONMENT" => k("the target environment is not allowed for this account", Ours),
        "INVALID_CALLBACK_URL_HOST" => k("the callback URL's host is not the API user's callback host", Ours),
        "INVALID_CURRENCY" => k("the currency is not the target environment's", Ours),
        "RESOURCE_ALREADY_EXIST" => k("the X-Reference-Id was used before", Ours),
        "RESOURCE_NOT_FOUND" => k("MoMo does not know the payment it accepted", Theirs),
        "INTERNAL_PROCESSING_ERROR" => {
            k("a generic MoMo failure (often funds, a denied service, a wallet outage)", Theirs)
        }
        "SERVICE_UNAVAILABLE" => k("MoMo's service is unavailable", Theirs),
        _ => CodeInfo::UNKNOWN,
    }
}

/// The token answer (the shape every OAuth-style rail shares).
pub use crate::rails::parse_token;

/// A MoMo refusal: `{"code": "RESOURCE_ALREADY_EXIST", "message": "…"}`, or the API gateway's own
/// `{"statusCode": 401, "message": "Access denied due to invalid subscription key…"}` (then `code`
/// is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    /// The gateway refused the subscription key (no token will help).
    pub fn is_bad_subscription_key(&self) -> bool {
        self.message.to_ascii_lowercase().contains("subscription key")
    }

    /// The failure class of a refusal with HTTP `status`: the code's class when the table knows
    /// it, else by the status (4xx: our request or credentials; 5xx: MoMo's).
    pub fn outcome(&self, status: u16) -> Outcome {
        let info = describe(&self.code);
        if info.known && info.class != Outcome::Ok && info.class != Outcome::Timeout {
            return info.class;
        }
        by_status(status)
    }
}

/// The class of a refusal whose body says nothing usable.
pub fn by_status(status: u16) -> Outcome {
    match status {
        404 => Outcome::GatewayError,
        400..=499 => Outcome::AssertionFailed,
        _ => Outcome::GatewayError,
    }
}

/// Reads an error body, if `body` is one.
pub fn parse_error(body: &[u8]) -> Option<ErrorBody> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let code = v.get("code").and_then(text_of).unwrap_or_default();
    let message = v.get("message").and_then(text_of).unwrap_or_default();
    (!code.is_empty() || !message.is_empty()).then_some(ErrorBody { code, message })
}

/// A string, or a number as text (MoMo's schema says strings; its examples show numbers).
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Successful,
    Failed,
}

/// A status document (the answer to `GET /requesttopay/{id}`, and the callback body).
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentStatus {
    pub state: State,
    /// The failure reason's code (`APPROVAL_REJECTED`), when `FAILED` gave one.
    pub reason: Option<String>,
    /// The failure reason's words, when given as `{code, message}`.
    pub reason_message: String,
    /// Our reference as MoMo echoes it (string or number).
    pub external_id: Option<String>,
    pub financial_transaction_id: Option<String>,
    /// The document it came in, for `extract:`.
    pub raw: Value,
}

/// Reads a status document. Strict on `status` (one of `PENDING`, `SUCCESSFUL`, `FAILED`, any
/// case); lenient on the rest.
pub fn parse_status(body: &[u8]) -> Result<PaymentStatus, String> {
    let raw: Value = serde_json::from_slice(body).map_err(|e| format!("status is not JSON: {e}"))?;
    if !raw.is_object() {
        return Err("status is not a JSON object".into());
    }
    let status = raw.get("status").and_then(Value::as_str).ok_or("the document has no status")?;
    let state = match status.trim().to_ascii_uppercase().as_str() {
        "PENDING" => State::Pending,
        "SUCCESSFUL" => State::Successful,
        "FAILED" => State::Failed,
        _ => return Err("status is not PENDING, SUCCESSFUL or FAILED".into()),
    };
    let (reason, reason_message) = match raw.get("reason") {
        Some(Value::String(s)) if !s.trim().is_empty() => (Some(s.trim().to_owned()), String::new()),
        Some(Value::Object(o)) => {
            let code = o.get("code").and_then(text_of).filter(|c| !c.is_empty());
            (code, o.get("message").and_then(text_of).unwrap_or_default())
        }
        _ => (None, String::new()),
    };
    Ok(PaymentStatus {
        state,
        reason,
        reason_message,
        external_id: raw.get("externalId").and_then(text_of),
        financial_transaction_id: raw.get("financialTransactionId").and_then(text_of),
        raw,
    })
}

impl PaymentStatus {
    /// The provider code: `SUCCESSFUL`, `PENDING`, the reason, or `FAILED` without one.
    pub fn code(&self) -> String {
        match self.state {
            State::Successful => "SUCCESSFUL".into(),
            State::Pending => "PENDING".into(),
            State::Failed => self.reason.clone().unwrap_or_else(|| FAILED_WITHOUT_REASON.into()),
        }
    }

    /// The rail-independent form, for the payment `id` (MoMo's documents do not carry it: it is
    /// the `X-Reference-Id` the status was asked for, or the callback path's).
    pub fn into_rail(self, id: &str) -> RailResult {
        let code = self.code();
        let text = match (&self.state, self.reason_message.is_empty()) {
            (State::Failed, false) => self.reason_message.clone(),
            (State::Failed, true) => "FAILED".to_owned(),
            (State::Successful, _) => match &self.financial_transaction_id {
                Some(f) => format!("SUCCESSFUL, financialTransactionId {f}"),
                None => "SUCCESSFUL".to_owned(),
            },
            (State::Pending, _) => "PENDING".to_owned(),
        };
        RailResult { id: id.to_owned(), code, text, raw: self.raw }
    }
}

/// An `X-Reference-Id`: a UUID (MoMo asks for version 4; any UUID is read).
pub fn is_reference_id(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}

/// Reads a callback that arrived at `/momo/{rest}`: `rest` is the payment's `X-Reference-Id` (the
/// step put it there), the body the status document. A callback that is still `PENDING` is
/// refused: MoMo sends one when the payment ends.
pub fn parse_callback(rest: &str, body: &[u8]) -> Result<RailResult, String> {
    let id = rest.trim_matches('/');
    if !is_reference_id(id) {
        return Err("the callback path does not end in a payment's X-Reference-Id".into());
    }
    let s = parse_status(body).map_err(|e| format!("callback: {e}"))?;
    if s.state == State::Pending {
        return Err("callback: a callback must carry a final status, not PENDING".into());
    }
    Ok(s.into_rail(id))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Every documented code and its class.
    const TABLE: &[(&str, Outcome)] = &[
        ("SUCCESSFUL", Outcome::Ok),
        ("PENDING", Outcome::Timeout),
        ("FAILED", Outcome::GatewayError),
        ("APPROVAL_REJECTED", Outcome::BusinessError),
        ("EXPIRED", Outcome::BusinessError),
        ("COULD_NOT_PERFORM_TRANSACTION", Outcome::BusinessError),
        ("TRANSACTION_CANCELED", Outcome::BusinessError),
        ("NOT_ENOUGH_FUNDS", Outcome::BusinessError),
        ("PAYER_LIMIT_REACHED", Outcome::BusinessError),
        ("SENDER_ACCOUNT_NOT_ACTIVE", Outcome::BusinessError),
        ("PAYMENT_NOT_APPROVED", Outcome::BusinessError),
        ("PAYER_NOT_FOUND", Outcome::AssertionFailed),
        ("PAYEE_NOT_FOUND", Outcome::AssertionFailed),
        ("PAYEE_NOT_ALLOWED_TO_RECEIVE", Outcome::AssertionFailed),
        ("NOT_ALLOWED", Outcome::AssertionFailed),
        ("NOT_ALLOWED_TARGET_ENVIRONMENT", Outcome::AssertionFailed),
        ("INVALID_CALLBACK_URL_HOST", Outcome::AssertionFailed),
        ("INVALID_CURRENCY", Outcome::AssertionFailed),
        ("RESOURCE_ALREADY_EXIST", Outcome::AssertionFailed),
        ("RESOURCE_NOT_FOUND", Outcome::GatewayError),
        ("INTERNAL_PROCESSING_ERROR", Outcome::GatewayError),
        ("SERVICE_UNAVAILABLE", Outcome::GatewayError),
    ];

    #[test]
    fn every_documented_code_lands_in_its_class() {
        for (code, class) in TABLE {
            let info = describe(code);
            assert!(info.known, "{code}");
            assert_eq!(info.class, *class, "{code}");
            assert!(!info.meaning.is_empty());
            report::check_label(code).unwrap();
        }
        assert!(!describe("successful").known, "codes are case-sensitive labels");
        assert!(!describe("WHATEVER").known);
        assert_eq!(describe("WHATEVER").class, Outcome::GatewayError);
    }

    #[test]
    fn tokens_take_numbers_or_strings() {
        let t = parse_token(br#"{"access_token":"eyJ0","token_type":"access_token","expires_in":3600}"#).unwrap();
        assert_eq!(t, ("eyJ0".into(), Duration::from_secs(3600)));
        assert_eq!(parse_token(br#"{"access_token":"a","expires_in":"3600"}"#).unwrap().1, Duration::from_secs(3600));
        assert!(parse_token(br#"{"access_token":"","expires_in":3600}"#).is_err());
        assert!(parse_token(br#"{"access_token":"a","expires_in":-1}"#).is_err());
        assert!(parse_token(br#"{"access_token":"a"}"#).is_err());
        assert!(parse_token(br#"{"code":"x"}"#).is_err());
        assert!(parse_token(b"\xff").is_err());
    }

    #[test]
    fn statuses_parse_strictly_on_status_and_leniently_on_the_rest() {
        let ok = parse_status(
            br#"{"amount":100,"currency":"UGX","financialTransactionId":23503452,"externalId":947354,
            "payer":{"partyIdType":"MSISDN","partyId":256772000100},"status":"SUCCESSFUL"}"#,
        )
        .unwrap();
        assert_eq!((ok.state, ok.code()), (State::Successful, "SUCCESSFUL".into()));
        assert_eq!(ok.external_id.as_deref(), Some("947354"));
        assert_eq!(ok.financial_transaction_id.as_deref(), Some("23503452"));
        let word = parse_status(br#"{"status":"FAILED","reason":"APPROVAL_REJECTED"}"#).unwrap();
        assert_eq!(word.code(), "APPROVAL_REJECTED");
        let object =
            parse_status(br#"{"status":"FAILED","reason":{"code":"PAYER_NOT_FOUND","message":"Payer not found"}}"#)
                .unwrap();
        assert_eq!(object.code(), "PAYER_NOT_FOUND");
        assert_eq!(object.clone().into_rail("id").text, "Payer not found");
        assert_eq!(parse_status(br#"{"status":"FAILED"}"#).unwrap().code(), "FAILED");
        assert_eq!(parse_status(br#"{"status":"FAILED","reason":""}"#).unwrap().code(), "FAILED");
        assert_eq!(parse_status(br#"{"status":"pending"}"#).unwrap().state, State::Pending);
        for bad in [&br#"{"status":"DONE"}"#[..], br#"{"status":1}"#, br#"{}"#, b"[]", b"null", b"", b"\x00"] {
            assert!(parse_status(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn callbacks_are_named_by_their_path() {
        let id = "3f1b6a34-7a4e-4c47-9b55-2a2f0f6b9a10";
        let r = parse_callback(id, br#"{"status":"FAILED","reason":"EXPIRED","externalId":"SavannaPulse"}"#).unwrap();
        assert_eq!((r.id.as_str(), r.code.as_str()), (id, "EXPIRED"));
        assert!(parse_callback("", br#"{"status":"SUCCESSFUL"}"#).is_err());
        assert!(parse_callback("not-a-uuid", br#"{"status":"SUCCESSFUL"}"#).is_err());
        assert!(parse_callback(id, br#"{"status":"PENDING"}"#).is_err());
        assert!(parse_callback(id, b"{").is_err());
    }

    #[test]
    fn refusals_are_classed_by_code_then_status() {
        let dup = parse_error(br#"{"code":"RESOURCE_ALREADY_EXIST","message":"Duplicated reference id."}"#).unwrap();
        assert_eq!(dup.outcome(409), Outcome::AssertionFailed);
        let env = parse_error(br#"{"code":"NOT_ALLOWED_TARGET_ENVIRONMENT","message":"x"}"#).unwrap();
        assert_eq!(env.outcome(500), Outcome::AssertionFailed);
        let ipe = parse_error(br#"{"code":"INTERNAL_PROCESSING_ERROR","message":"x"}"#).unwrap();
        assert_eq!(ipe.outcome(500), Outcome::GatewayError);
        let apim = parse_error(
            br#"{"statusCode":401,"message":"Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription."}"#,
        )
        .unwrap();
        assert!(apim.is_bad_subscription_key());
        assert_eq!(apim.outcome(401), Outcome::AssertionFailed);
        let odd = parse_error(br#"{"code":"SOMETHING_NEW","message":"?"}"#).unwrap();
        assert_eq!((odd.outcome(400), odd.outcome(503)), (Outcome::AssertionFailed, Outcome::GatewayError));
        assert_eq!(by_status(404), Outcome::GatewayError);
        assert!(parse_error(b"<html>").is_none());
        assert!(parse_error(br#"{"other":1}"#).is_none());
    }

    #[test]
    fn reference_ids_are_uuids() {
        assert!(is_reference_id("3f1b6a34-7a4e-4c47-9b55-2a2f0f6b9a10"));
        assert!(!is_reference_id("3f1b6a347a4e4c479b552a2f0f6b9a10"), "hyphenated form only");
        assert!(!is_reference_id("x"));
    }
}
