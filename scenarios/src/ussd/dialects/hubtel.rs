//! Hubtel Programmable Services: JSON both ways, the current input only, `Type` says whether the
//! session goes on (docs/protocols/ussd.md §3).
//!
//! Requests carry the service's `ServiceCode` without its `*`/`#` (`384*7` for `*384*7#`, also
//! when the subscriber dials `*384*7*1#`) and, on initiation, what was dialled as `Message`; `Type` is lower case. Replies are
//! held to what Hubtel accepts: `Type` exactly `response` or `release`, and `Message`, `Label`,
//! `DataType` and `FieldType` present with documented values, or Hubtel shows the subscriber
//! "invalid response" (error UUE).

use serde::Deserialize;
use serde_json::json;

use super::{bare_code, check_ghana, ghana};
use crate::ussd::{Dialect, HopRequest, Release, Screen, Session};

pub struct Hubtel;

/// `DataType` values Hubtel documents.
const DATA_TYPES: &[&str] = &["input", "display"];
/// `FieldType` values Hubtel documents.
const FIELD_TYPES: &[&str] = &["text", "phone", "email", "number", "decimal", "textarea"];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Reply {
    session_id: Option<String>,
    #[serde(rename = "Type")]
    kind: Option<String>,
    message: Option<String>,
    label: Option<String>,
    client_state: Option<String>,
    data_type: Option<String>,
    field_type: Option<String>,
}

impl Dialect for Hubtel {
    fn name(&self) -> &'static str {
        "hubtel"
    }

    /// 32 lower-case hex digits, as in Hubtel's samples.
    fn session_id(&self, random: u128) -> String {
        format!("{random:032x}")
    }

    fn default_network(&self) -> &'static str {
        "62001"
    }

    fn check_network(&self, mcc_mnc: &str) -> Result<(), String> {
        check_ghana("Hubtel", mcc_mnc)
    }

    fn request(&self, s: &Session, input: Option<&str>) -> HopRequest {
        let (kind, message) = match input {
            None => ("initiation", s.dial.as_str()),
            Some(i) => ("response", i),
        };
        HopRequest { content_type: "application/json", body: body(s, kind, message) }
    }

    fn parse(&self, status: u16, body: &str) -> Result<Screen, String> {
        if !(200..300).contains(&status) {
            return Err(format!("the app answered HTTP {status}"));
        }
        let r: Reply = serde_json::from_str(body).map_err(|e| format!("not a Hubtel reply: {e}"))?;
        let uue = |what: String| Err(format!("{what} (Hubtel: invalid response, UUE)"));
        let end = match r.kind.as_deref() {
            Some("response") => false,
            Some("release") => true,
            Some(other) => return uue(format!("Type {other:?} is neither \"response\" nor \"release\"")),
            None => return uue("the reply has no Type".to_owned()),
        };
        let missing: Vec<&str> = [("Message", &r.message), ("Label", &r.label), ("DataType", &r.data_type)]
            .into_iter()
            .chain([("FieldType", &r.field_type)])
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k)
            .collect();
        if !missing.is_empty() {
            return uue(format!("the reply lacks {}", missing.join(", ")));
        }
        let (data_type, field_type) = (r.data_type.unwrap_or_default(), r.field_type.unwrap_or_default());
        if !DATA_TYPES.contains(&data_type.as_str()) {
            return uue(format!("DataType {data_type:?} is not one of {}", DATA_TYPES.join(", ")));
        }
        if !FIELD_TYPES.contains(&field_type.as_str()) {
            return uue(format!("FieldType {field_type:?} is not one of {}", FIELD_TYPES.join(", ")));
        }
        if r.session_id.as_deref().is_some_and(str::is_empty) {
            return uue("SessionId is empty".to_owned());
        }
        Ok(Screen { text: r.message.unwrap_or_default(), end, client_state: r.client_state })
    }

    fn release(&self, s: &Session, why: Release) -> Option<HopRequest> {
        let kind = match why {
            Release::UserAbandoned => "release",
            Release::Timeout => "timeout",
        };
        Some(HopRequest { content_type: "application/json", body: body(s, kind, "") })
    }
}

fn body(s: &Session, kind: &str, message: &str) -> String {
    json!({
        "SessionId": s.id,
        "Mobile": s.phone.trim_start_matches('+'),
        "ServiceCode": bare_code(&s.service_code),
        "Type": kind,
        "Message": message,
        "Operator": ghana(&s.network_code).map_or("mtn", |g| g.1),
        "Sequence": s.hop(),
        "ClientState": s.client_state.clone().unwrap_or_default(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(dial: &str) -> Session {
        Session {
            id: Hubtel.session_id(0x3c79_6dac_2817_4f73_9de4_262d_0840_9c51),
            service_code: "*384*7#".into(),
            dial: dial.into(),
            phone: "+233240000100".into(),
            network_code: "62002".into(),
            inputs: vec![],
            client_state: None,
        }
    }

    #[test]
    fn requests_are_what_hubtel_sends() {
        let mut s = session("*384*7*1#");
        assert_eq!(s.id, "3c796dac28174f739de4262d08409c51");
        let v: serde_json::Value = serde_json::from_str(&Hubtel.request(&s, None).body).unwrap();
        assert_eq!(v["Type"], "initiation");
        assert_eq!(v["ServiceCode"], "384*7");
        assert_eq!(v["Message"], "*384*7*1#");
        assert_eq!(v["Operator"], "vodafone");
        assert_eq!((v["Mobile"].as_str(), v["Sequence"].as_u64()), (Some("233240000100"), Some(1)));
        s.inputs = vec!["2".into(), "0712345678".into()];
        s.client_state = Some("st".into());
        let v: serde_json::Value = serde_json::from_str(&Hubtel.request(&s, Some("0712345678")).body).unwrap();
        assert_eq!(
            (v["Type"].as_str(), v["Message"].as_str(), v["ClientState"].as_str(), v["Sequence"].as_u64()),
            (Some("response"), Some("0712345678"), Some("st"), Some(3))
        );
        for (why, kind) in [(Release::UserAbandoned, "release"), (Release::Timeout, "timeout")] {
            let v: serde_json::Value = serde_json::from_str(&Hubtel.release(&s, why).unwrap().body).unwrap();
            assert_eq!(v["Type"], kind);
        }
        assert!(Hubtel.check_network("63902").unwrap_err().contains("62001 (mtn)"));
    }

    #[test]
    fn replies_hubtel_would_refuse_are_gateway_errors() {
        let good = r#"{"SessionId":"h1","Type":"release","Message":"Bye","Label":"x","ClientState":"","DataType":"display","FieldType":"text"}"#;
        let r = Hubtel.parse(200, good).unwrap();
        assert!(r.end);
        assert!(!Hubtel.parse(200, &good.replace("release", "response")).unwrap().end);
        for (bad, says) in [
            (good.replace("\"release\"", "\"Response\""), "Type \"Response\""),
            (good.replace(r#""Label":"x","#, ""), "lacks Label"),
            (good.replace(r#","DataType":"display""#, ""), "lacks DataType"),
            (good.replace(r#","FieldType":"text""#, ""), "lacks FieldType"),
            (good.replace("\"display\"", "\"Display\""), "DataType \"Display\""),
            (good.replace("\"text\"", "\"string\""), "FieldType \"string\""),
            (r#"{"Message":"x"}"#.to_owned(), "no Type"),
        ] {
            let e = Hubtel.parse(200, &bad).unwrap_err();
            assert!(e.contains(says) && e.contains("UUE"), "{bad}: {e}");
        }
    }
}
