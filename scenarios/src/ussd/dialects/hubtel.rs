//! Hubtel Programmable Services: JSON both ways, the current input only, `Type` says whether the
//! session goes on (docs/protocols/ussd.md §3).

use serde::Deserialize;
use serde_json::json;

use crate::ussd::{Dialect, HopRequest, Release, Screen, Session};

pub struct Hubtel;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Reply {
    #[serde(rename = "Type")]
    kind: String,
    message: Option<String>,
    client_state: Option<String>,
}

impl Dialect for Hubtel {
    fn name(&self) -> &'static str {
        "hubtel"
    }

    fn request(&self, s: &Session, input: Option<&str>) -> HopRequest {
        let (kind, message) = match input {
            None => ("Initiation", s.service_code.as_str()),
            Some(i) => ("Response", i),
        };
        HopRequest { content_type: "application/json", body: body(s, kind, message) }
    }

    fn parse(&self, status: u16, body: &str) -> Result<Screen, String> {
        if !(200..300).contains(&status) {
            return Err(format!("the app answered HTTP {status}"));
        }
        let r: Reply = serde_json::from_str(body).map_err(|e| format!("not a Hubtel reply: {e}"))?;
        let end = match r.kind.as_str() {
            "response" => false,
            "release" => true,
            other => {
                return Err(format!(
                    "Type {other:?} is neither \"response\" nor \"release\" (Hubtel: invalid response, UUE)"
                ));
            }
        };
        Ok(Screen { text: r.message.unwrap_or_default(), end, client_state: r.client_state })
    }

    fn release(&self, s: &Session, why: Release) -> Option<HopRequest> {
        let kind = match why {
            Release::UserAbandoned => "Release",
            Release::Timeout => "Timeout",
        };
        Some(HopRequest { content_type: "application/json", body: body(s, kind, "") })
    }
}

fn body(s: &Session, kind: &str, message: &str) -> String {
    json!({
        "SessionId": s.id,
        "Mobile": s.phone.trim_start_matches('+'),
        "ServiceCode": s.service_code,
        "Type": kind,
        "Message": message,
        "Operator": "safaricom",
        "Sequence": s.hop(),
        "ClientState": s.client_state.clone().unwrap_or_default(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initiation_then_responses_with_the_current_input_only() {
        let mut s = Session {
            id: "h1".into(),
            service_code: "*384*7#".into(),
            phone: "+233240000100".into(),
            network_code: "62001".into(),
            inputs: vec![],
            client_state: None,
        };
        let v: serde_json::Value = serde_json::from_str(&Hubtel.request(&s, None).body).unwrap();
        assert_eq!(
            (v["Type"].as_str(), v["Message"].as_str(), v["Sequence"].as_u64()),
            (Some("Initiation"), Some("*384*7#"), Some(1))
        );
        assert_eq!(v["Mobile"], "233240000100");
        s.inputs = vec!["2".into(), "0712345678".into()];
        s.client_state = Some("st".into());
        let v: serde_json::Value = serde_json::from_str(&Hubtel.request(&s, Some("0712345678")).body).unwrap();
        assert_eq!(
            (v["Type"].as_str(), v["Message"].as_str(), v["ClientState"].as_str()),
            (Some("Response"), Some("0712345678"), Some("st"))
        );
        let r = Hubtel.parse(200, r#"{"SessionId":"h1","Type":"release","Message":"Bye","ClientState":"","DataType":"display","FieldType":"text","Label":"x"}"#).unwrap();
        assert!(r.end);
        assert!(Hubtel.parse(200, r#"{"Type":"Response","Message":"x"}"#).unwrap_err().contains("UUE"));
    }
}
