//! Africa's Talking: a form POST per screen with every input so far joined by `*`, answered by
//! `text/plain` `CON …` (wait for input) or `END …` (docs/protocols/ussd.md §2).

use crate::ussd::{Dialect, HopRequest, Screen, Session};

pub struct AfricasTalking;

impl Dialect for AfricasTalking {
    fn name(&self) -> &'static str {
        "africastalking"
    }

    /// `ATUid_` and hex, as Africa's Talking's session ids look.
    fn session_id(&self, random: u128) -> String {
        format!("ATUid_{:016x}", random as u64)
    }

    fn default_network(&self) -> &'static str {
        "63902"
    }

    fn request(&self, s: &Session, _input: Option<&str>) -> HopRequest {
        // A direct dial's inputs come first, as if typed (Africa's Talking's `text`).
        let mut all = s.dialled_inputs();
        all.extend(s.inputs.iter().map(String::as_str));
        let text = all.join("*");
        let body = serde_urlencoded::to_string([
            ("sessionId", s.id.as_str()),
            ("serviceCode", s.service_code.as_str()),
            ("phoneNumber", s.phone.as_str()),
            ("networkCode", s.network_code.as_str()),
            ("text", text.as_str()),
        ])
        .expect("strings always encode");
        HopRequest { content_type: "application/x-www-form-urlencoded", body }
    }

    fn parse(&self, status: u16, body: &str) -> Result<Screen, String> {
        if !(200..300).contains(&status) {
            return Err(format!("the app answered HTTP {status}; Africa's Talking ends the session"));
        }
        let body = body.trim_start_matches('\u{feff}');
        for (prefix, end) in [("CON", false), ("END", true)] {
            if let Some(rest) = body.strip_prefix(prefix)
                && (rest.is_empty() || rest.starts_with([' ', '\n', '\r']))
            {
                let text = rest.strip_prefix(' ').unwrap_or(rest).to_owned();
                return Ok(Screen { text, end, client_state: None });
            }
        }
        // The caller quotes the start of the reply, masked before it is cut.
        Err("the reply starts with neither CON nor END; Africa's Talking ends the session".to_owned())
    }
}

/// The end-of-session notification Africa's Talking posts to the events URL.
pub struct EndEvent<'a> {
    pub session: &'a Session,
    /// `Success`, `Incomplete` or `Failed`.
    pub status: &'static str,
    pub duration_ms: u128,
    pub hops: usize,
    pub last_app_response: &'a str,
    pub error_message: Option<&'a str>,
    /// `YYYY-MM-DD HH:MM:SS`.
    pub date: String,
}

impl EndEvent<'_> {
    pub fn form(&self) -> String {
        let s = self.session;
        let mut fields = vec![
            ("date", self.date.clone()),
            ("sessionId", s.id.clone()),
            ("serviceCode", s.service_code.clone()),
            ("networkCode", s.network_code.clone()),
            ("phoneNumber", s.phone.clone()),
            ("status", self.status.to_owned()),
            ("cost", "KES 0.0000".to_owned()),
            ("durationInMillis", self.duration_ms.to_string()),
            ("hopsCount", self.hops.to_string()),
            ("hopsMetadata", String::new()),
            ("input", {
                let mut all = s.dialled_inputs();
                all.extend(s.inputs.iter().map(String::as_str));
                all.join("*")
            }),
            ("lastAppResponse", self.last_app_response.to_owned()),
        ];
        if let Some(e) = self.error_message {
            fields.push(("errorMessage", e.to_owned()));
        }
        serde_urlencoded::to_string(fields).expect("strings always encode")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(inputs: &[&str]) -> Session {
        Session {
            id: "ATUid_1".into(),
            service_code: "*384*7#".into(),
            dial: "*384*7#".into(),
            phone: "+254700000100".into(),
            network_code: "63902".into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            client_state: None,
        }
    }

    #[test]
    fn text_is_cumulative_and_starts_empty() {
        let r = AfricasTalking.request(&session(&[]), None);
        assert_eq!(
            r.body,
            "sessionId=ATUid_1&serviceCode=*384*7%23&phoneNumber=%2B254700000100&networkCode=63902&text="
        );
        let r = AfricasTalking.request(&session(&["2", "0712345678", "100"]), Some("100"));
        assert!(r.body.ends_with("&text=2*0712345678*100"), "{}", r.body);
    }

    #[test]
    fn con_and_end_are_read_and_anything_else_is_a_gateway_error() {
        let s = AfricasTalking.parse(200, "CON Savanna Pay\n1. My balance").unwrap();
        assert_eq!((s.text.as_str(), s.end), ("Savanna Pay\n1. My balance", false));
        assert!(AfricasTalking.parse(200, "END Bye").unwrap().end);
        assert!(AfricasTalking.parse(200, "Hello").unwrap_err().contains("neither CON nor END"));
        assert!(AfricasTalking.parse(200, "CONTINUE").is_err());
        assert!(AfricasTalking.parse(500, "CON x").unwrap_err().contains("HTTP 500"));
    }
}
