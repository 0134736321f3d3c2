//! Nalo Solutions: JSON both ways; `MSGTYPE` true on the first request and, in replies, true to
//! continue and false to end; at most 120 characters per screen (docs/protocols/ussd.md §4).

use serde::Deserialize;
use serde_json::json;

use super::{check_ghana, ghana};
use crate::ussd::{Dialect, HopRequest, Screen, Session};

pub struct Nalo;

/// Nalo's cap on `MSG`, below the network's 182.
pub const NALO_MAX_MSG: usize = 120;

#[derive(Deserialize)]
struct Reply {
    #[serde(rename = "MSG")]
    msg: String,
    #[serde(rename = "MSGTYPE")]
    msgtype: bool,
}

impl Dialect for Nalo {
    fn name(&self) -> &'static str {
        "nalo"
    }

    /// Decimal digits, as Nalo's samples show (17 of them).
    fn session_id(&self, random: u128) -> String {
        format!("{:017}", random % 100_000_000_000_000_000)
    }

    fn default_network(&self) -> &'static str {
        "62001"
    }

    fn check_network(&self, mcc_mnc: &str) -> Result<(), String> {
        check_ghana("Nalo", mcc_mnc)
    }

    fn screen_limit(&self) -> Option<usize> {
        Some(NALO_MAX_MSG)
    }

    fn request(&self, s: &Session, input: Option<&str>) -> HopRequest {
        let body = json!({
            "USERID": "savanna-pulse",
            "MSISDN": s.phone.trim_start_matches('+'),
            "USERDATA": input.unwrap_or(&s.dial),
            "MSGTYPE": input.is_none(),
            "NETWORK": ghana(&s.network_code).map_or("MTN", |g| g.2),
            "SESSIONID": s.id,
        });
        HopRequest { content_type: "application/json", body: body.to_string() }
    }

    fn parse(&self, status: u16, body: &str) -> Result<Screen, String> {
        if !(200..300).contains(&status) {
            return Err(format!("the app answered HTTP {status}"));
        }
        let r: Reply = serde_json::from_str(body).map_err(|e| format!("not a Nalo reply: {e}"))?;
        Ok(Screen { text: r.msg, end: !r.msgtype, client_state: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgtype_marks_the_first_request_and_continuation() {
        let s = Session {
            id: Nalo.session_id(u128::MAX),
            service_code: "*384*7#".into(),
            dial: "*384*7*1#".into(),
            phone: "+233240000100".into(),
            network_code: "62003".into(),
            inputs: vec![],
            client_state: None,
        };
        assert!(s.id.len() == 17 && s.id.bytes().all(|b| b.is_ascii_digit()), "{}", s.id);
        let v: serde_json::Value = serde_json::from_str(&Nalo.request(&s, None).body).unwrap();
        assert_eq!((v["MSGTYPE"].as_bool(), v["USERDATA"].as_str()), (Some(true), Some("*384*7*1#")));
        assert_eq!(v["NETWORK"], "AIRTELTIGO");
        let v: serde_json::Value = serde_json::from_str(&Nalo.request(&s, Some("1")).body).unwrap();
        assert_eq!((v["MSGTYPE"].as_bool(), v["USERDATA"].as_str()), (Some(false), Some("1")));
        assert!(!Nalo.parse(200, r#"{"USERID":"x","MSISDN":"1","MSG":"Menu","MSGTYPE":true}"#).unwrap().end);
        assert!(Nalo.parse(200, r#"{"USERID":"x","MSISDN":"1","MSG":"Bye","MSGTYPE":false}"#).unwrap().end);
        assert!(Nalo.parse(200, "CON x").is_err());
        assert_eq!(Nalo.screen_limit(), Some(120));
    }
}
