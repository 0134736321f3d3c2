//! USSD as the prober plays it: the gateway's side of a session, in several HTTP dialects.
//!
//! A [`Dialect`] turns "the user typed X" into the HTTP request a given gateway would send to the
//! USSD application, and reads the application's answer into a [`Screen`]. Dialects differ in three
//! ways (docs/protocols/ussd.md): cumulative vs incremental input, a `CON`/`END` prefix vs a JSON flag,
//! and form vs JSON bodies.

pub mod dialects;
pub mod dialoguss;

pub use dialects::{AfricasTalking, DialectName, Hubtel, Nalo, TruRoute, dialect};

/// One USSD session as the gateway sees it.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    /// The service's code, e.g. `*384*7#`.
    pub service_code: String,
    /// What the subscriber dialled: the code itself, or a direct dial that carries inputs after
    /// it (`*384*7*1#`).
    pub dial: String,
    /// E.164 with `+`.
    pub phone: String,
    pub network_code: String,
    /// Every input so far, including the current one.
    pub inputs: Vec<String>,
    /// Opaque state the app asked the gateway to echo back (Hubtel `ClientState`).
    pub client_state: Option<String>,
}

impl Session {
    /// 1-based number of the current hop (1 = the dial).
    pub fn hop(&self) -> usize {
        self.inputs.len() + 1
    }

    /// The inputs a direct dial carries after the service code (`*384*7*1#` → `1`).
    pub fn dialled_inputs(&self) -> Vec<&str> {
        direct_inputs(&self.service_code, &self.dial).unwrap_or_default()
    }
}

/// The inputs `dial` carries after `service_code`: `Some([])` for the code itself, `Some(["1"])`
/// for `*384*7*1#` after `*384*7#`, `None` when `dial` is not a dial of that code.
pub fn direct_inputs<'a>(service_code: &str, dial: &'a str) -> Option<Vec<&'a str>> {
    if dial == service_code {
        return Some(Vec::new());
    }
    let rest = dial.strip_prefix(service_code.strip_suffix('#')?)?.strip_prefix('*')?.strip_suffix('#')?;
    let parts: Vec<&str> = rest.split('*').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    Some(parts)
}

/// An HTTP request body for one hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopRequest {
    pub content_type: &'static str,
    pub body: String,
}

/// What the application put on the phone's screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screen {
    /// Without any `CON`/`END` prefix.
    pub text: String,
    /// The application ended the session.
    pub end: bool,
    /// State to echo on the next hop (Hubtel).
    pub client_state: Option<String>,
}

/// Why the gateway closes a session the app did not end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The user stopped answering (the dialogue had no more inputs).
    UserAbandoned,
    /// A deadline passed.
    Timeout,
}

/// A gateway's HTTP dialect.
pub trait Dialect: Send + Sync {
    fn name(&self) -> &'static str;
    /// A new session id in the shape this gateway uses, from 128 random bits.
    fn session_id(&self, random: u128) -> String;
    /// The network (MCC+MNC) when the step names none: one this gateway serves.
    fn default_network(&self) -> &'static str;
    /// Checks the step's network at load: `Err` says which networks the gateway serves.
    fn check_network(&self, _mcc_mnc: &str) -> Result<(), String> {
        Ok(())
    }
    /// The gateway's own cap on one screen's characters, when it is below the network's
    /// ([`screen_capacity`]); e.g. Nalo's 120.
    fn screen_limit(&self) -> Option<usize> {
        None
    }
    /// The request for the current hop; `input` is what the user just typed (`None` for the dial).
    fn request(&self, session: &Session, input: Option<&str>) -> HopRequest;
    /// Reads the application's reply. An `Err` is a gateway error: the real gateway would have
    /// shown the user an error and dropped the session. It says what is wrong without quoting the
    /// body: the caller quotes its start, masked before the cut.
    fn parse(&self, status: u16, body: &str) -> Result<Screen, String>;
    /// The request that tells the application the session ended without its `END`, if the dialect
    /// has one in-band (Africa's Talking uses a separate events URL instead).
    fn release(&self, _session: &Session, _why: Release) -> Option<HopRequest> {
        None
    }
}

/// Most characters one screen can hold: 182 in GSM-7 (160 octets of 7-bit septets), 80 when a
/// character outside GSM-7 forces UCS-2. Extension characters (`{`, `€`, …) take two septets.
pub fn screen_capacity(text: &str) -> (usize, usize, &'static str) {
    let mut septets = 0;
    for c in text.chars() {
        match gsm7_septets(c) {
            Some(n) => septets += n,
            None => return (text.chars().count(), 80, "UCS-2"),
        }
    }
    (septets, 182, "GSM-7")
}

fn gsm7_septets(c: char) -> Option<usize> {
    const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const EXTENSION: &str = "^{}\\[~]|€\u{000C}";
    if BASIC.contains(c) {
        Some(1)
    } else if EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_dial_is_the_code_and_then_inputs() {
        assert_eq!(direct_inputs("*384*7#", "*384*7#"), Some(vec![]));
        assert_eq!(direct_inputs("*384*7#", "*384*7*1#"), Some(vec!["1"]));
        assert_eq!(direct_inputs("*384*7#", "*384*7*2*0712345678#"), Some(vec!["2", "0712345678"]));
        for bad in ["*384*77#", "*384*7*#", "*384*7**1#", "*144#", "*384*7*1"] {
            assert_eq!(direct_inputs("*384*7#", bad), None, "{bad}");
        }
    }

    #[test]
    fn screen_capacity_follows_gsm7_and_ucs2() {
        assert_eq!(screen_capacity("CON Savanna Pay\n1. My balance"), (29, 182, "GSM-7"));
        assert_eq!(screen_capacity("KES {100}"), (11, 182, "GSM-7"));
        assert_eq!(screen_capacity("Habari 😀"), (8, 80, "UCS-2"));
        assert_eq!(screen_capacity(&"x".repeat(182)).0, 182);
    }
}
