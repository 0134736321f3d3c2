//! TNM TruRoute (Malawi): `text/xml` both ways, `<ussd>` with `type` 1 (initiation), 2 (response)
//! or 3 (release), `msg`, `sessionid` and `msisdn`; the app's reply is the same document, `type` 2
//! to wait for input and 3 to end (docs/protocols/ussd.md §5).

use crate::ussd::{Dialect, HopRequest, Release, Screen, Session};

pub struct TruRoute;

const INITIATION: u8 = 1;
const RESPONSE: u8 = 2;
const RELEASE: u8 = 3;

impl Dialect for TruRoute {
    fn name(&self) -> &'static str {
        "truroute"
    }

    /// Decimal digits (the gateway's samples show a number).
    fn session_id(&self, random: u128) -> String {
        format!("{:012}", random % 1_000_000_000_000)
    }

    /// TNM, Malawi.
    fn default_network(&self) -> &'static str {
        "65001"
    }

    fn request(&self, s: &Session, input: Option<&str>) -> HopRequest {
        match input {
            None => document(s, INITIATION, &s.dial),
            Some(i) => document(s, RESPONSE, i),
        }
    }

    fn parse(&self, status: u16, body: &str) -> Result<Screen, String> {
        if !(200..300).contains(&status) {
            return Err(format!("the app answered HTTP {status}"));
        }
        let doc = roxmltree::Document::parse(body.trim_start_matches('\u{feff}'))
            .map_err(|e| format!("not a TruRoute reply: not XML ({e})"))?;
        let root = doc.root_element();
        if root.tag_name().name() != "ussd" {
            return Err(format!("not a TruRoute reply: the root element is <{}>, not <ussd>", root.tag_name().name()));
        }
        let child = |name: &str| root.children().find(|n| n.is_element() && n.tag_name().name() == name);
        let kind = child("type").ok_or("not a TruRoute reply: no <type>")?;
        let kind = kind.text().unwrap_or_default().trim();
        let end = match kind {
            "2" => false,
            "3" => true,
            other => return Err(format!("<type> {other:?} is neither 2 (response) nor 3 (release)")),
        };
        let msg = child("msg").ok_or("not a TruRoute reply: no <msg>")?;
        Ok(Screen { text: msg.text().unwrap_or_default().to_owned(), end, client_state: None })
    }

    fn release(&self, s: &Session, _why: Release) -> Option<HopRequest> {
        Some(document(s, RELEASE, ""))
    }
}

fn document(s: &Session, kind: u8, msg: &str) -> HopRequest {
    let body = format!(
        "<ussd><type>{kind}</type><msg>{}</msg><sessionid>{}</sessionid><msisdn>{}</msisdn></ussd>",
        escape(msg),
        escape(&s.id),
        escape(s.phone.trim_start_matches('+')),
    );
    HopRequest { content_type: "text/xml", body }
}

/// XML character data: the five characters XML reserves, as entities.
fn escape(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            id: TruRoute.session_id(42),
            service_code: "*384*7#".into(),
            dial: "*384*7#".into(),
            phone: "+265888000100".into(),
            network_code: "65001".into(),
            inputs: vec![],
            client_state: None,
        }
    }

    #[test]
    fn requests_are_ussd_documents_typed_by_hop() {
        let s = session();
        assert_eq!(
            TruRoute.request(&s, None).body,
            "<ussd><type>1</type><msg>*384*7#</msg><sessionid>000000000042</sessionid><msisdn>265888000100</msisdn></ussd>"
        );
        let r = TruRoute.request(&s, Some("a<b&"));
        assert_eq!(r.content_type, "text/xml");
        assert!(r.body.starts_with("<ussd><type>2</type><msg>a&lt;b&amp;</msg>"), "{}", r.body);
        assert!(TruRoute.release(&s, Release::Timeout).unwrap().body.starts_with("<ussd><type>3</type><msg></msg>"));
    }

    #[test]
    fn replies_type_2_continue_type_3_end_and_anything_else_is_refused() {
        let s = TruRoute.parse(200, "<ussd><type>2</type><msg>Savanna Pay\n1. Balance</msg></ussd>").unwrap();
        assert_eq!((s.text.as_str(), s.end), ("Savanna Pay\n1. Balance", false));
        let s = TruRoute
            .parse(200, "<?xml version=\"1.0\"?><ussd><type>3</type><msg>Bye &amp; thanks</msg><premium><cost>0</cost><ref/></premium></ussd>")
            .unwrap();
        assert_eq!((s.text.as_str(), s.end), ("Bye & thanks", true));
        assert!(TruRoute.parse(200, "<ussd><type>1</type><msg>x</msg></ussd>").unwrap_err().contains("neither 2"));
        assert!(TruRoute.parse(200, "<ussd><msg>x</msg></ussd>").unwrap_err().contains("no <type>"));
        assert!(TruRoute.parse(200, "<reply/>").unwrap_err().contains("not <ussd>"));
        assert!(TruRoute.parse(200, "CON x").unwrap_err().contains("not XML"));
        assert!(TruRoute.parse(500, "<ussd/>").unwrap_err().contains("HTTP 500"));
    }
}
