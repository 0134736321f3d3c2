//! Money safety: currencies with the most a probe may move, and countries with the shape of their
//! mobile numbers (docs/protocols/mobile-money.md §4).
//!
//! A probe pays real money on a real account. Each currency has a **default cap** (what a step may
//! charge unless it says less) and a **hard cap** (what no journey may exceed, even with
//! `above_default_cap: true`, which is logged on every run).

use serde::Deserialize;

/// A currency a rail may charge in (ISO 4217).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Currency {
    /// Kenyan shilling (M-Pesa Kenya).
    #[serde(rename = "KES")]
    Kes,
    /// Ugandan shilling (MTN MoMo Uganda, Airtel Money Uganda).
    #[serde(rename = "UGX")]
    Ugx,
    /// Tanzanian shilling (Vodacom M-Pesa, Airtel Money Tanzania).
    #[serde(rename = "TZS")]
    Tzs,
    /// Euro: the only currency MTN's MoMo sandbox accepts.
    #[serde(rename = "EUR")]
    Eur,
}

impl Currency {
    pub fn code(self) -> &'static str {
        match self {
            Currency::Kes => "KES",
            Currency::Ugx => "UGX",
            Currency::Tzs => "TZS",
            Currency::Eur => "EUR",
        }
    }

    /// What a step may charge unless it sets a lower `max_amount` (whole units). About 0.08 USD
    /// for KES, 0.13 USD for UGX, 0.19 USD for TZS.
    pub fn default_cap(self) -> u64 {
        match self {
            Currency::Kes => 10,
            Currency::Ugx | Currency::Tzs => 500,
            Currency::Eur => 1,
        }
    }

    /// What no probe may ever charge, override or not (ten times the default cap).
    pub fn hard_cap(self) -> u64 {
        self.default_cap() * 10
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// A country whose mobile wallets a rail collects from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Country {
    #[serde(rename = "KE")]
    Ke,
    #[serde(rename = "UG")]
    Ug,
    #[serde(rename = "TZ")]
    Tz,
}

impl Country {
    pub const ALL: [Country; 3] = [Country::Ke, Country::Ug, Country::Tz];

    /// ISO 3166 alpha-2, as Airtel's `X-Country` wants it.
    pub fn code(self) -> &'static str {
        match self {
            Country::Ke => "KE",
            Country::Ug => "UG",
            Country::Tz => "TZ",
        }
    }

    /// The country calling code, without `+`.
    pub fn calling_code(self) -> &'static str {
        match self {
            Country::Ke => "254",
            Country::Ug => "256",
            Country::Tz => "255",
        }
    }

    /// First digits of a mobile number after the calling code: Kenya `7…` and `1…`
    /// (Safaricom, Airtel, Telkom), Uganda `7…` (MTN, Airtel), Tanzania `6…` and `7…` (Vodacom,
    /// Airtel, Tigo, Halotel). Nine digits follow the calling code in all three (ITU-T E.164
    /// national plans as published by each regulator: CA Kenya, UCC Uganda, TCRA Tanzania).
    fn mobile_leads(self) -> &'static [char] {
        match self {
            Country::Ke => &['7', '1'],
            Country::Ug => &['7'],
            Country::Tz => &['6', '7'],
        }
    }

    /// The payer's number as E.164 digits without `+`, or why it is not one of this country's
    /// mobile numbers. Accepts `+2567…`, `2567…` and the national `07…` form.
    pub fn msisdn(self, phone: &str) -> Result<String, String> {
        let raw = phone.trim();
        let digits = raw.strip_prefix('+').unwrap_or(raw);
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err("a phone number is digits with an optional leading +".into());
        }
        let national = match digits.strip_prefix(self.calling_code()) {
            Some(rest) => rest,
            None if digits.len() == 10 && digits.starts_with('0') => &digits[1..],
            None => {
                return Err(format!("not a number of {} (+{}…)", self.code(), self.calling_code()));
            }
        };
        let lead = national.chars().next();
        if national.len() != 9 || !lead.is_some_and(|c| self.mobile_leads().contains(&c)) {
            return Err(format!(
                "a {} mobile number is +{} then 9 digits starting with {}",
                self.code(),
                self.calling_code(),
                self.mobile_leads().iter().map(char::to_string).collect::<Vec<_>>().join(" or ")
            ));
        }
        Ok(format!("{}{national}", self.calling_code()))
    }

    /// The country of an international number (`+256…`, `256…`), if it is one of ours.
    pub fn of(phone: &str) -> Option<Country> {
        let digits = phone.trim().trim_start_matches('+');
        Country::ALL.into_iter().find(|c| digits.starts_with(c.calling_code()) && c.msisdn(phone).is_ok())
    }
}

impl std::fmt::Display for Country {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_currency() {
        assert_eq!(Currency::Kes.default_cap(), 10);
        assert_eq!(Currency::Ugx.default_cap(), 500);
        assert_eq!(Currency::Tzs.default_cap(), 500);
        assert!(Currency::ALL_FOR_TESTS.iter().all(|c| c.hard_cap() > c.default_cap()));
    }

    impl Currency {
        const ALL_FOR_TESTS: [Currency; 4] = [Currency::Kes, Currency::Ugx, Currency::Tzs, Currency::Eur];
    }

    #[test]
    fn numbers_per_country() {
        assert_eq!(Country::Ke.msisdn("+254708920430").unwrap(), "254708920430");
        assert_eq!(Country::Ke.msisdn("0110000100").unwrap(), "254110000100");
        assert_eq!(Country::Ug.msisdn("256772000100").unwrap(), "256772000100");
        assert_eq!(Country::Ug.msisdn("0772000100").unwrap(), "256772000100");
        assert_eq!(Country::Tz.msisdn("+255754000100").unwrap(), "255754000100");
        assert_eq!(Country::Tz.msisdn("+255654000100").unwrap(), "255654000100");
        assert!(Country::Ug.msisdn("+254708920430").unwrap_err().contains("not a number of UG"));
        assert!(Country::Ug.msisdn("+256612000100").unwrap_err().contains("starting with 7"));
        assert!(Country::Tz.msisdn("+25575400010").unwrap_err().contains("9 digits"));
        assert!(Country::Ke.msisdn("07x8920430").is_err());
        assert_eq!(Country::of("+256772000100"), Some(Country::Ug));
        assert_eq!(Country::of("255754000100"), Some(Country::Tz));
        assert_eq!(Country::of("+447700900123"), None);
    }
}
