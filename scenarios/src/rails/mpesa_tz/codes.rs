//! The M-Pesa OpenAPI's answers (session, C2B single stage) and what each `output_ResponseCode`
//! means. Every answer, success or not, carries the same `output_*` fields; the HTTP status varies
//! by code (201, 400, 401, 408, 409, 422, 500, 503), so the code in the body decides.

use serde_json::Value;

use crate::{outcome::Outcome, rails::CodeInfo};

/// One answer of the OpenAPI, read leniently (a value may come as a string or a number).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// `output_ResponseCode`, e.g. `INS-0`.
    pub code: String,
    pub desc: String,
    /// `output_SessionID` (session answers).
    pub session_id: Option<String>,
    /// `output_ThirdPartyConversationID` echoed back (C2B answers).
    pub third_party_conversation_id: Option<String>,
    pub transaction_id: Option<String>,
    pub conversation_id: Option<String>,
    /// The document it came in, for `extract:`.
    pub raw: Value,
}

/// A string, or a number written as text; `None` for anything else or an empty string.
fn text(raw: &Value, field: &str) -> Option<String> {
    match raw.get(field)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads any OpenAPI answer; the response code is required.
pub fn parse_answer(body: &[u8]) -> Result<Answer, String> {
    let raw: Value = serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    if !raw.is_object() {
        return Err("the answer is not a JSON object".into());
    }
    let code = text(&raw, "output_ResponseCode").ok_or("the answer has no output_ResponseCode")?;
    Ok(Answer {
        desc: text(&raw, "output_ResponseDesc").unwrap_or_default(),
        session_id: text(&raw, "output_SessionID"),
        third_party_conversation_id: text(&raw, "output_ThirdPartyConversationID"),
        transaction_id: text(&raw, "output_TransactionID"),
        conversation_id: text(&raw, "output_ConversationID"),
        code,
        raw,
    })
}

/// Reads a session answer: `INS-0` with a non-empty `output_SessionID`. Another code is returned
/// as `Err(Ok(answer))` so the caller can classify it.
pub fn parse_session(body: &[u8]) -> Result<String, Result<Box<Answer>, String>> {
    let a = parse_answer(body).map_err(Err)?;
    if a.code != "INS-0" {
        return Err(Ok(Box::new(a)));
    }
    a.session_id.ok_or(Err("the session answer is INS-0 but has no output_SessionID".into()))
}

/// `input_ThirdPartyConversationID` from the step's idempotency key: its letters and digits only
/// (a UUID's 32 hex digits), since the allowed charset is not documented beyond "unique".
pub fn conversation_id(key: &str) -> String {
    key.chars().filter(char::is_ascii_alphanumeric).take(40).collect()
}

/// Whether a refused call says the session was the problem (expired or unknown): drop it and get
/// a new one once. The portal's code for a refused session is `INS-26 Not authorized` (HTTP 401);
/// **Unsure:** whether a real expired session answers exactly that, so a 401 whose text speaks of
/// the session counts too. INS-5 and INS-6 are also HTTP 401 and are results, not refusals.
pub fn is_bad_session(http_status: u16, a: Option<&Answer>) -> bool {
    match a {
        Some(a) => http_status == 401 && (a.code == "INS-26" || a.desc.to_ascii_lowercase().contains("session")),
        None => http_status == 401,
    }
}

/// What an `output_ResponseCode` means, and its failure class when the journey did not declare it
/// (the OpenAPI portal's response-code table; docs/protocols/mobile-money.md §3).
pub fn describe(code: &str) -> CodeInfo {
    use Outcome::{AssertionFailed as Ours, BusinessError as Payer, GatewayError as Theirs};
    let k = CodeInfo::known;
    match code.trim() {
        "INS-0" => k("request processed successfully", Outcome::Ok),
        "INS-1" => k("internal error", Theirs),
        "INS-2" => k("invalid API key", Ours),
        "INS-4" => k("user is not active", Payer),
        "INS-5" => k("transaction cancelled by the customer", Payer),
        "INS-6" => k("transaction failed", Payer),
        "INS-9" => k("request timeout: the customer did not answer in time", Outcome::Timeout),
        "INS-10" => k("duplicate transaction (a reused ThirdPartyConversationID)", Ours),
        "INS-13" => k("invalid shortcode used", Ours),
        "INS-14" => k("invalid reference used", Ours),
        "INS-15" => k("invalid amount used", Ours),
        "INS-16" => k("temporarily overloaded: unable to handle the request", Theirs),
        "INS-17" => k("invalid transaction reference (length 1 to 20)", Ours),
        "INS-18" => k("invalid TransactionID used", Ours),
        "INS-19" => k("invalid ThirdPartyReference used", Ours),
        "INS-20" => k("not all parameters provided", Ours),
        "INS-21" => k("parameter validation failed", Ours),
        "INS-22" => k("invalid operation type", Ours),
        "INS-23" => k("unknown status: contact M-Pesa support", Theirs),
        "INS-24" => k("invalid initiator identifier used", Ours),
        "INS-25" => k("invalid security credential used", Ours),
        "INS-26" => k("not authorized", Ours),
        "INS-993" => k("direct debit missing", Ours),
        "INS-994" => k("direct debit already exists", Ours),
        "INS-995" => k("the customer's profile has problems", Payer),
        "INS-996" => k("the customer's account is not active", Payer),
        "INS-997" => k("linking transaction not found", Ours),
        "INS-998" => k("invalid market", Ours),
        "INS-2001" => k("initiator authentication error (a wrong PIN on C2B)", Payer),
        "INS-2002" => k("receiver invalid", Ours),
        "INS-2006" => k("insufficient balance", Payer),
        "INS-2051" => k("MSISDN invalid", Ours),
        "INS-2057" => k("language code invalid", Ours),
        _ => CodeInfo::UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code of the portal's table, with the class the adapter gives it.
    const TABLE: &[(&str, Outcome)] = &[
        ("INS-0", Outcome::Ok),
        ("INS-1", Outcome::GatewayError),
        ("INS-2", Outcome::AssertionFailed),
        ("INS-4", Outcome::BusinessError),
        ("INS-5", Outcome::BusinessError),
        ("INS-6", Outcome::BusinessError),
        ("INS-9", Outcome::Timeout),
        ("INS-10", Outcome::AssertionFailed),
        ("INS-13", Outcome::AssertionFailed),
        ("INS-14", Outcome::AssertionFailed),
        ("INS-15", Outcome::AssertionFailed),
        ("INS-16", Outcome::GatewayError),
        ("INS-17", Outcome::AssertionFailed),
        ("INS-18", Outcome::AssertionFailed),
        ("INS-19", Outcome::AssertionFailed),
        ("INS-20", Outcome::AssertionFailed),
        ("INS-21", Outcome::AssertionFailed),
        ("INS-22", Outcome::AssertionFailed),
        ("INS-23", Outcome::GatewayError),
        ("INS-24", Outcome::AssertionFailed),
        ("INS-25", Outcome::AssertionFailed),
        ("INS-26", Outcome::AssertionFailed),
        ("INS-993", Outcome::AssertionFailed),
        ("INS-994", Outcome::AssertionFailed),
        ("INS-995", Outcome::BusinessError),
        ("INS-996", Outcome::BusinessError),
        ("INS-997", Outcome::AssertionFailed),
        ("INS-998", Outcome::AssertionFailed),
        ("INS-2001", Outcome::BusinessError),
        ("INS-2002", Outcome::AssertionFailed),
        ("INS-2006", Outcome::BusinessError),
        ("INS-2051", Outcome::AssertionFailed),
        ("INS-2057", Outcome::AssertionFailed),
    ];

    #[test]
    fn every_documented_code_lands_in_its_class() {
        for (code, class) in TABLE {
            let info = describe(code);
            assert!(info.known, "{code}");
            assert_eq!(info.class, *class, "{code}");
            assert!(!info.meaning.is_empty());
        }
        assert_eq!(describe(" INS-9 ").class, Outcome::Timeout);
        for unknown in ["INS-3", "ins-0", "0", "", "INS-99999999999"] {
            assert!(!describe(unknown).known, "{unknown}");
        }
    }

    #[test]
    fn the_documented_c2b_answer_parses() {
        let a = parse_answer(
            br#"{"output_ResponseCode":"INS-0","output_ResponseDesc":"Request processed successfully",
            "output_TransactionID":"49XCDF6","output_ConversationID":"d3502e6a","output_ThirdPartyConversationID":"asv02e5958774f7ba228d83d0d689761"}"#,
        )
        .unwrap();
        assert_eq!(a.code, "INS-0");
        assert_eq!(a.third_party_conversation_id.as_deref(), Some("asv02e5958774f7ba228d83d0d689761"));
        assert_eq!(a.transaction_id.as_deref(), Some("49XCDF6"));
    }

    #[test]
    fn parsers_are_lenient_on_types_and_strict_on_the_code() {
        let a = parse_answer(br#"{"output_ResponseCode":"INS-2006","output_ThirdPartyConversationID":12345}"#).unwrap();
        assert_eq!(a.third_party_conversation_id.as_deref(), Some("12345"));
        assert_eq!(a.desc, "");
        for bad in [
            &b"{}"[..],
            b"[]",
            b"null",
            b"not json",
            b"{\"output_ResponseCode\":\"\"}",
            b"{\"output_ResponseCode\":{}}",
        ] {
            assert!(parse_answer(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sessions_need_ins0_and_an_id() {
        assert_eq!(
            parse_session(br#"{"output_ResponseCode":"INS-0","output_ResponseDesc":"ok","output_SessionID":"abc"}"#),
            Ok("abc".to_owned())
        );
        assert!(matches!(parse_session(br#"{"output_ResponseCode":"INS-0"}"#), Err(Err(_))));
        let refused = parse_session(br#"{"output_ResponseCode":"INS-2","output_ResponseDesc":"Invalid API Key"}"#);
        assert!(matches!(refused, Err(Ok(a)) if a.code == "INS-2"));
    }

    #[test]
    fn conversation_ids_are_the_uuid_hex() {
        assert_eq!(conversation_id("2f1e8b6a-0c1d-4e5f-9a8b-7c6d5e4f3a2b"), "2f1e8b6a0c1d4e5f9a8b7c6d5e4f3a2b");
    }

    #[test]
    fn a_session_refusal_is_recognised() {
        let a =
            parse_answer(br#"{"output_ResponseCode":"INS-26","output_ResponseDesc":"Session ID expired"}"#).unwrap();
        assert!(is_bad_session(401, Some(&a)));
        let cancelled = parse_answer(
            br#"{"output_ResponseCode":"INS-5","output_ResponseDesc":"Transaction cancelled by customer"}"#,
        )
        .unwrap();
        assert!(!is_bad_session(401, Some(&cancelled)));
        assert!(is_bad_session(401, None));
        // The portal's own refusal, with its documented text (the sandbox answers this).
        let refused =
            parse_answer(br#"{"output_ResponseCode":"INS-26","output_ResponseDesc":"Not authorized"}"#).unwrap();
        assert!(is_bad_session(401, Some(&refused)));
        let failed =
            parse_answer(br#"{"output_ResponseCode":"INS-6","output_ResponseDesc":"Transaction Failed"}"#).unwrap();
        assert!(!is_bad_session(401, Some(&failed)));
        assert!(!is_bad_session(500, None));
    }
}
