//! The network side of USSD: which dial strings are USSD, which part is the service code, and the
//! screens of the sandbox's own menu ([`crate::ussd::menu::Menu`], called in process).
//!
//! The rule for a dial string (the MMI rules of 3GPP TS 22.030 §6.5, simplified):
//! - It must look like `*<digits>[*<digits>...]#`. Strings that start with `#`, `**`, `*#` or
//!   `##` are supplementary-service or local codes (`#31#`, `*#06#`, `**21*...#`): not USSD, the
//!   modem reports `+CUSD: 4` (operation not supported).
//! - The service code is the longest configured code whose parts start the string (default
//!   `*384*7#`), otherwise the first part alone (`*144#`): any code reaches the menu, as the HTTP
//!   dialects accept any code. The parts after the service code are the first inputs, as networks
//!   treat a direct dial: `*384*7*1#` is `*384*7#` and then `1`.

use crate::ussd::menu::{Menu, Screen};

/// What a dial string is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dial {
    /// A USSD request: the service code and the inputs dialled after it.
    Ussd { service_code: String, inputs: Vec<String> },
    /// Not a USSD string (a supplementary-service code or garbage).
    NotUssd,
}

/// Classifies a dial string against the configured service codes.
pub fn parse_dial(dial: &str, service_codes: &[String]) -> Dial {
    let dial = dial.trim();
    let Some(body) = dial.strip_prefix('*').and_then(|d| d.strip_suffix('#')) else { return Dial::NotUssd };
    let parts: Vec<&str> = body.split('*').collect();
    if parts.iter().any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit())) {
        return Dial::NotUssd;
    }
    let configured = service_codes
        .iter()
        .filter_map(|code| {
            let code_parts: Vec<&str> = code.trim_start_matches('*').trim_end_matches('#').split('*').collect();
            parts.starts_with(&code_parts).then_some(code_parts.len())
        })
        .max();
    let n = configured.unwrap_or(1);
    Dial::Ussd {
        service_code: format!("*{}#", parts[..n].join("*")),
        inputs: parts[n..].iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// The network's USSD application: the menu, and references for completed payments.
#[derive(Debug, Clone)]
pub struct Network {
    menu: Menu,
    service_codes: Vec<String>,
    refs: u64,
}

impl Network {
    pub fn new(menu: Menu, service_codes: Vec<String>) -> Self {
        Self { menu, service_codes, refs: 0 }
    }

    pub fn parse(&self, dial: &str) -> Dial {
        parse_dial(dial, &self.service_codes)
    }

    /// The screen after these inputs (all of the session's, oldest first).
    pub fn screen(&mut self, inputs: &[String]) -> Screen {
        let refs = &mut self.refs;
        self.menu.screen(inputs, &mut || {
            *refs += 1;
            format!("MDM{:07}", *refs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes() -> Vec<String> {
        vec!["*384*7#".to_owned()]
    }

    #[test]
    fn direct_dials_and_service_codes() {
        let ussd = |code: &str, inputs: &[&str]| Dial::Ussd {
            service_code: code.to_owned(),
            inputs: inputs.iter().map(|s| (*s).to_owned()).collect(),
        };
        assert_eq!(parse_dial("*384*7#", &codes()), ussd("*384*7#", &[]));
        assert_eq!(parse_dial("*384*7*1#", &codes()), ussd("*384*7#", &["1"]));
        assert_eq!(parse_dial("*384*7*2*0712345678#", &codes()), ussd("*384*7#", &["2", "0712345678"]));
        assert_eq!(parse_dial("*144#", &codes()), ussd("*144#", &[]));
        assert_eq!(parse_dial("*544*1#", &codes()), ussd("*544#", &["1"]));
        assert_eq!(parse_dial("*384*71#", &codes()), ussd("*384#", &["71"]));
        for not in ["#31#", "*#06#", "**21*0712345678#", "##002#", "*100", "100#", "*1a#", "*#", "", "*1**2#"] {
            assert_eq!(parse_dial(not, &codes()), Dial::NotUssd, "{not:?}");
        }
    }
}
