//! Daraja's answers: the wire shapes (parsed leniently where Daraja is inconsistent) and what each
//! code means for a probe (docs/protocols/daraja.md §5–§6).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::{
    outcome::Outcome,
    rails::{CodeInfo, RailResult},
};

/// The synchronous error envelope `{requestId, errorCode, errorMessage}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEnvelope {
    #[serde(default)]
    pub request_id: String,
    pub error_code: String,
    #[serde(default)]
    pub error_message: String,
}

impl ErrorEnvelope {
    /// "The transaction is being processed": the STK Query's way of saying "pending".
    pub fn is_pending(&self) -> bool {
        self.error_code == "500.001.1001" && self.error_message.to_ascii_lowercase().contains("being processed")
    }

    /// The access token was refused (expired, revoked, unknown): get a new one and retry.
    pub fn is_bad_token(&self) -> bool {
        matches!(self.error_code.as_str(), "404.001.03" | "401.003.01")
    }

    /// The failure class of a refusal.
    pub fn outcome(&self, http_status: u16) -> Outcome {
        let msg = self.error_message.to_ascii_lowercase();
        if msg.contains("unable to lock subscriber") {
            Outcome::BusinessError
        } else if http_status >= 500 && !msg.contains("wrong credentials") && !msg.contains("merchant does not exist") {
            Outcome::GatewayError
        } else {
            // Our request or configuration was refused: fix the journey.
            Outcome::AssertionFailed
        }
    }
}

/// Reads an error envelope, if `body` is one.
pub fn parse_envelope(body: &[u8]) -> Option<ErrorEnvelope> {
    serde_json::from_slice::<ErrorEnvelope>(body).ok().filter(|e| !e.error_code.is_empty())
}

/// The token answer (the shape every OAuth-style rail shares).
pub use crate::rails::parse_token;

/// The synchronous reply to an STK push.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PushAccepted {
    #[serde(rename = "MerchantRequestID")]
    pub merchant_request_id: String,
    #[serde(rename = "CheckoutRequestID")]
    pub checkout_request_id: String,
    pub response_code: String,
    #[serde(default)]
    pub response_description: String,
}

pub fn parse_push(body: &[u8]) -> Result<PushAccepted, String> {
    serde_json::from_slice(body).map_err(|e| format!("not an STK push reply: {e}"))
}

/// A payment's result, from the callback or the STK Query.
#[derive(Debug, Clone, PartialEq)]
pub struct StkResult {
    pub checkout_request_id: String,
    pub result_code: i64,
    pub result_desc: String,
    /// `CallbackMetadata.Item[]` by name (a `Balance` item may have no value).
    pub metadata: BTreeMap<String, Option<Value>>,
    /// The document it came in, for `extract:`.
    pub raw: Value,
}

/// Reads the callback `{"Body":{"stkCallback":{…}}}`. `ResultCode` is a number here.
pub fn parse_callback(body: &[u8]) -> Result<StkResult, String> {
    let raw: Value = serde_json::from_slice(body).map_err(|e| format!("callback is not JSON: {e}"))?;
    let cb = raw.pointer("/Body/stkCallback").ok_or("callback has no Body.stkCallback")?;
    let checkout = cb.get("CheckoutRequestID").and_then(Value::as_str).ok_or("callback has no CheckoutRequestID")?;
    let code = cb.get("ResultCode").and_then(code_of).ok_or("callback has no numeric ResultCode")?;
    let mut metadata = BTreeMap::new();
    if let Some(items) = cb.pointer("/CallbackMetadata/Item").and_then(Value::as_array) {
        for it in items {
            if let Some(name) = it.get("Name").and_then(Value::as_str) {
                metadata.insert(name.to_owned(), it.get("Value").cloned());
            }
        }
    }
    Ok(StkResult {
        checkout_request_id: checkout.to_owned(),
        result_code: code,
        result_desc: cb.get("ResultDesc").and_then(Value::as_str).unwrap_or_default().to_owned(),
        metadata,
        raw,
    })
}

/// Reads an STK Query answer (`ResultCode` is a string here).
pub fn parse_query(body: &[u8]) -> Result<StkResult, String> {
    let raw: Value = serde_json::from_slice(body).map_err(|e| format!("query reply is not JSON: {e}"))?;
    let code = raw.get("ResultCode").and_then(code_of).ok_or("query reply has no ResultCode")?;
    Ok(StkResult {
        checkout_request_id: raw.get("CheckoutRequestID").and_then(Value::as_str).unwrap_or_default().to_owned(),
        result_code: code,
        result_desc: raw.get("ResultDesc").and_then(Value::as_str).unwrap_or_default().to_owned(),
        metadata: BTreeMap::new(),
        raw,
    })
}

/// A ResultCode given as a number or a numeric string.
fn code_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// What a ResultCode means, and its failure class when the journey did not declare it.
pub fn describe(code: i64) -> CodeInfo {
    let k = CodeInfo::known;
    match code {
        0 => k("success", Outcome::Ok),
        1 => k("insufficient funds", Outcome::BusinessError),
        17 => k("party B unable to process", Outcome::BusinessError),
        1001 => k("subscriber locked: another transaction is in process", Outcome::BusinessError),
        1019 => k("transaction expired: the prompt arrived, the user did not act", Outcome::BusinessError),
        1025 | 9999 => k("error sending the push request", Outcome::GatewayError),
        1032 => k("cancelled by the user", Outcome::BusinessError),
        1037 => k("DS timeout: the phone could not be reached", Outcome::Timeout),
        2001 => k("wrong PIN (invalid initiator information)", Outcome::BusinessError),
        _ => CodeInfo::UNKNOWN,
    }
}

impl StkResult {
    /// The rail-independent form: the CheckoutRequestID names the payment.
    pub fn into_rail(self) -> RailResult {
        RailResult {
            id: self.checkout_request_id,
            code: self.result_code.to_string(),
            text: self.result_desc,
            raw: self.raw,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn token_expiry_as_string_or_number() {
        assert_eq!(
            parse_token(br#"{"access_token":"abc","expires_in":"3599"}"#).unwrap(),
            ("abc".into(), Duration::from_secs(3599))
        );
        assert_eq!(parse_token(br#"{"access_token":"abc","expires_in":3599}"#).unwrap().1, Duration::from_secs(3599));
        assert!(parse_token(br#"{"access_token":"abc","expires_in":"soon"}"#).is_err());
        assert!(parse_token(br#"{"errorCode":"401.002.01"}"#).is_err());
    }

    #[test]
    fn the_documented_callback_parses_by_item_name() {
        let body = br#"{"Body":{"stkCallback":{"MerchantRequestID":"29115-34620561-1","CheckoutRequestID":"ws_CO_191220191020363925",
          "ResultCode":0,"ResultDesc":"The service request is processed successfully.",
          "CallbackMetadata":{"Item":[{"Name":"Amount","Value":1.0},{"Name":"MpesaReceiptNumber","Value":"OEB44R5U3U"},
          {"Name":"Balance"},{"Name":"TransactionDate","Value":20200511201419},{"Name":"PhoneNumber","Value":254794721438}]}}}}"#;
        let r = parse_callback(body).unwrap();
        assert_eq!((r.result_code, r.checkout_request_id.as_str()), (0, "ws_CO_191220191020363925"));
        assert_eq!(r.metadata["MpesaReceiptNumber"], Some(Value::from("OEB44R5U3U")));
        assert_eq!(r.metadata["Balance"], None);
        let failed = parse_callback(br#"{"Body":{"stkCallback":{"CheckoutRequestID":"x","ResultCode":1032,"ResultDesc":"Request cancelled by user"}}}"#).unwrap();
        assert_eq!(failed.result_code, 1032);
        assert!(failed.metadata.is_empty());
        assert!(parse_callback(br#"{"Body":{}}"#).is_err());
    }

    #[test]
    fn query_codes_are_strings_and_pending_is_an_error_envelope() {
        let q = parse_query(br#"{"ResponseCode":"0","ResponseDescription":"ok","MerchantRequestID":"m","CheckoutRequestID":"c","ResultCode":"1032","ResultDesc":"Request cancelled by user"}"#).unwrap();
        assert_eq!(q.result_code, 1032);
        let e = parse_envelope(
            br#"{"requestId":"r","errorCode":"500.001.1001","errorMessage":"The transaction is being processed"}"#,
        )
        .unwrap();
        assert!(e.is_pending());
        let lock = ErrorEnvelope {
            request_id: String::new(),
            error_code: "500.001.1001".into(),
            error_message: "Unable to lock subscriber, a transaction is already in process for the current subscriber"
                .into(),
        };
        assert_eq!(lock.outcome(500), Outcome::BusinessError);
        let bad = ErrorEnvelope {
            request_id: String::new(),
            error_code: "400.002.02".into(),
            error_message: "Bad Request - Invalid PhoneNumber".into(),
        };
        assert_eq!(bad.outcome(400), Outcome::AssertionFailed);
        assert!(ErrorEnvelope { error_code: "404.001.03".into(), ..bad }.is_bad_token());
        assert_eq!(describe(1037).class, Outcome::Timeout);
        assert_eq!(describe(2001).class, Outcome::BusinessError);
        assert!(!describe(4242).known);
    }
}
