//! Airtel Money's answers: the wire shapes (parsed leniently where integrations disagree:
//! numbers or strings, `success` as a boolean or a string) and what each status means for a
//! probe (docs/protocols/mobile-money.md §2).

use serde_json::Value;

use crate::{
    outcome::Outcome,
    rails::{CodeInfo, RailResult},
};

/// The token answer (the shape every OAuth-style rail shares).
pub use crate::rails::parse_token;

/// The `status` object every Airtel reply carries: `{code, message, result_code, response_code,
/// success}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// The HTTP-like code as text (`"200"`, `"400"`), given as a string or a number.
    pub code: String,
    pub message: String,
    /// `ESB…` result code, when given.
    pub result_code: String,
    /// `DP…` response code, when given.
    pub response_code: String,
    pub success: bool,
}

/// A JSON value as text: strings as they are, numbers and booleans printed.
fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// Reads the `status` object of a reply, if it has one.
pub fn parse_envelope(raw: &Value) -> Option<Envelope> {
    let s = raw.get("status")?.as_object()?;
    let success = match s.get("success") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(t)) => t.trim().eq_ignore_ascii_case("true"),
        _ => false,
    };
    Some(Envelope {
        code: text(s.get("code")),
        message: text(s.get("message")),
        result_code: text(s.get("result_code")),
        response_code: text(s.get("response_code")),
        success,
    })
}

impl Envelope {
    /// Whether the collection request was accepted (not whether the payment succeeded).
    pub fn accepted(&self) -> bool {
        self.success && (self.code.is_empty() || self.code == "200")
    }

    /// `code message (result_code/response_code)`, for a failure's note.
    pub fn summary(&self) -> String {
        let mut s = format!("status.code {:?}, {:?}", self.code, self.message);
        for c in [&self.result_code, &self.response_code] {
            if !c.is_empty() {
                s.push_str(&format!(" {c}"));
            }
        }
        s
    }
}

/// Whether a non-2xx reply says the access token was refused: HTTP 401, or an error body that
/// says the token is invalid or expired.
pub fn is_bad_token(http_status: u16, body: &[u8]) -> bool {
    if http_status == 401 {
        return true;
    }
    let lower = String::from_utf8_lossy(body).to_ascii_lowercase();
    lower.contains("token") && (lower.contains("invalid") || lower.contains("expired"))
}

/// Reads the collection reply: the envelope, and the transaction id it names (Airtel's own
/// example shows `"id": false`, so a missing or non-text id is not an error here).
pub fn parse_collect(body: &[u8]) -> Result<Envelope, String> {
    let raw: Value = serde_json::from_slice(body).map_err(|e| format!("collection reply is not JSON: {e}"))?;
    parse_envelope(&raw).ok_or_else(|| "collection reply has no status object".to_owned())
}

/// A payment's state from the status query or a callback.
#[derive(Debug, Clone, PartialEq)]
pub struct AirtelResult {
    pub id: String,
    /// `TS`, `TF`, `TIP`, `TA` (upper-cased).
    pub status: String,
    pub message: String,
    /// Airtel's id for the money movement, when given.
    pub airtel_money_id: String,
    /// The envelope's `DP…` response code, when given (the status query only).
    pub response_code: String,
    pub raw: Value,
}

/// A transaction status: two or three ASCII letters (`TS`, `TF`, `TIP`, `TA`); anything else is
/// refused rather than reported (a hostile gateway must not choose the text).
fn status_of(v: Option<&Value>) -> Option<String> {
    let s = v?.as_str()?.trim().to_ascii_uppercase();
    (!s.is_empty() && s.len() <= 8 && s.bytes().all(|b| b.is_ascii_alphabetic())).then_some(s)
}

/// An id: non-empty text of at most 64 visible ASCII characters.
fn id_of(v: Option<&Value>) -> Option<String> {
    let s = match v? {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic())).then_some(s)
}

/// Reads `GET /standard/v1/payments/{id}`: `{"data":{"transaction":{"id","status","message",
/// "airtel_money_id"}},"status":{…}}`.
pub fn parse_status(body: &[u8]) -> Result<AirtelResult, String> {
    let raw: Value = serde_json::from_slice(body).map_err(|e| format!("status reply is not JSON: {e}"))?;
    let t = raw.pointer("/data/transaction").ok_or("status reply has no data.transaction")?;
    let status = status_of(t.get("status")).ok_or("status reply has no data.transaction.status (TS, TF, TIP, TA)")?;
    let id = id_of(t.get("id")).ok_or("status reply has no data.transaction.id")?;
    let response_code = parse_envelope(&raw).map(|e| e.response_code).unwrap_or_default();
    Ok(AirtelResult {
        id,
        status,
        message: text(t.get("message")),
        airtel_money_id: text(t.get("airtel_money_id")),
        response_code,
        raw,
    })
}

/// Reads the callback `{"transaction":{"id","message","status_code","airtel_money_id"}}`.
pub fn parse_callback(body: &[u8]) -> Result<AirtelResult, String> {
    let raw: Value = serde_json::from_slice(body).map_err(|e| format!("callback is not JSON: {e}"))?;
    let t = raw.get("transaction").ok_or("callback has no transaction object")?;
    let id = id_of(t.get("id")).ok_or("callback has no transaction.id")?;
    let status = status_of(t.get("status_code").or_else(|| t.get("status")))
        .ok_or("callback has no transaction.status_code (TS or TF)")?;
    Ok(AirtelResult {
        id,
        status,
        message: text(t.get("message")),
        airtel_money_id: text(t.get("airtel_money_id")),
        response_code: String::new(),
        raw,
    })
}

/// Whether the status says "not final yet".
pub fn is_pending(status: &str) -> bool {
    status == "TIP"
}

/// What a transaction status means, and its failure class when the journey did not declare it.
pub fn describe(code: &str) -> CodeInfo {
    let k = CodeInfo::known;
    match code {
        "TS" => k("transaction success", Outcome::Ok),
        "TF" => {
            k("transaction failed (declined, wrong PIN, not enough balance: see the message)", Outcome::BusinessError)
        }
        "TIP" => k("transaction in progress: the payer has not answered yet", Outcome::Timeout),
        "TA" => k("transaction ambiguous: Airtel cannot say whether the money moved", Outcome::GatewayError),
        _ => CodeInfo::UNKNOWN,
    }
}

impl AirtelResult {
    /// The rail-independent form: the code is the status (`TS`, `TF`, `TA`); the message and the
    /// `DP…` response code, when given, go in the text.
    pub fn into_rail(self) -> RailResult {
        let text = match (self.message.is_empty(), self.response_code.is_empty()) {
            (_, true) => self.message,
            (true, false) => self.response_code,
            (false, false) => format!("{} ({})", self.message, self.response_code),
        };
        RailResult { id: self.id, code: self.status, text, raw: self.raw }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn token_expiry_as_string_or_number() {
        let (t, ttl) = parse_token(br#"{"access_token":"abc","expires_in":"180","token_type":"bearer"}"#).unwrap();
        assert_eq!((t.as_str(), ttl), ("abc", Duration::from_secs(180)));
        assert_eq!(parse_token(br#"{"access_token":"abc","expires_in":180}"#).unwrap().1, Duration::from_secs(180));
        assert!(parse_token(br#"{"access_token":"abc","expires_in":"soon"}"#).unwrap_err().contains("expires_in"));
        assert!(parse_token(br#"{"access_token":"","expires_in":1}"#).is_err());
        assert!(parse_token(b"<html>").is_err());
    }

    #[test]
    fn the_collection_reply_says_accepted_not_paid() {
        let body = br#"{"data":{"transaction":{"id":false,"status":"SUCCESS"}},
            "status":{"code":"200","message":"SUCCESS","result_code":"ESB000010","response_code":"DP00800001006","success":true}}"#;
        let e = parse_collect(body).unwrap();
        assert!(e.accepted());
        assert_eq!(e.response_code, "DP00800001006");
        let refused = parse_collect(br#"{"status":{"code":400,"message":"Bad","success":"false"}}"#).unwrap();
        assert!(!refused.accepted());
        assert_eq!(refused.code, "400");
        assert!(parse_collect(br#"{"data":{}}"#).is_err());
    }

    #[test]
    fn status_replies_parse_every_documented_status() {
        for s in ["TS", "TF", "TIP", "TA"] {
            let body = format!(
                r#"{{"data":{{"transaction":{{"id":"abc123","status":"{s}","message":"m","airtel_money_id":"CI1"}}}},
                "status":{{"code":"200","response_code":"DP00800001001","success":true}}}}"#
            );
            let r = parse_status(body.as_bytes()).unwrap();
            assert_eq!((r.id.as_str(), r.status.as_str(), r.airtel_money_id.as_str()), ("abc123", s, "CI1"));
            assert_eq!(r.response_code, "DP00800001001");
        }
        assert!(parse_status(br#"{"data":{"transaction":{"id":"a"}}}"#).unwrap_err().contains("status"));
        assert!(parse_status(br#"{"data":{"transaction":{"status":"TS"}}}"#).unwrap_err().contains("id"));
        assert!(parse_status(br#"{"data":{"transaction":{"id":"a","status":"<script>"}}}"#).is_err());
        assert_eq!(parse_status(br#"{"data":{"transaction":{"id":12,"status":"ts"}}}"#).unwrap().status, "TS");
    }

    #[test]
    fn callbacks_name_the_transaction_in_the_body() {
        let r = parse_callback(
            br#"{"transaction":{"id":"abc","message":"Paid UGX 500","status_code":"TS","airtel_money_id":"MP210603.1234.L06941"}}"#,
        )
        .unwrap();
        assert_eq!((r.id.as_str(), r.status.as_str()), ("abc", "TS"));
        let rail = r.into_rail();
        assert_eq!((rail.code.as_str(), rail.text.as_str()), ("TS", "Paid UGX 500"));
        assert!(parse_callback(br#"{"transaction":{"status_code":"TF"}}"#).is_err());
        assert!(parse_callback(br#"{"transaction":{"id":"a"}}"#).is_err());
        assert!(parse_callback(br#"{"id":"a","status_code":"TS"}"#).is_err());
        assert!(parse_callback(b"\xff").is_err());
    }

    #[test]
    fn every_documented_status_lands_in_its_class() {
        assert_eq!(describe("TS").class, Outcome::Ok);
        assert_eq!(describe("TF").class, Outcome::BusinessError);
        assert_eq!(describe("TIP").class, Outcome::Timeout);
        assert_eq!(describe("TA").class, Outcome::GatewayError);
        assert!(["TS", "TF", "TIP", "TA"].iter().all(|c| describe(c).known));
        assert!(!describe("XX").known);
        assert!(is_pending("TIP") && !is_pending("TA"));
    }

    #[test]
    fn refused_tokens_are_recognised() {
        assert!(is_bad_token(401, b""));
        assert!(is_bad_token(400, br#"{"error":"Invalid token"}"#));
        assert!(!is_bad_token(400, br#"{"status":{"message":"Invalid msisdn"}}"#));
    }

    #[test]
    fn the_text_carries_the_response_code() {
        let r = AirtelResult {
            id: "a".into(),
            status: "TF".into(),
            message: "Insufficient balance".into(),
            airtel_money_id: String::new(),
            response_code: "DP00800001007".into(),
            raw: Value::Null,
        };
        assert_eq!(r.into_rail().text, "Insufficient balance (DP00800001007)");
    }
}
