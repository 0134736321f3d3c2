//! `mpesa-ke`: Safaricom's Daraja, M-Pesa Express (STK push) for Kenya (docs/protocols/daraja.md).
//!
//! - `codes.rs`: Daraja's answers (envelopes, token, push reply, callback, STK Query) and what
//!   each ResultCode means;
//! - `client.rs`: OAuth (cached, refreshed once when refused), the push, the STK Query.
//!
//! Password = base64(shortcode + passkey + timestamp), the timestamp in Nairobi time. The push's
//! `CheckoutRequestID` names the payment; the result arrives as a callback to `CallBackURL`, or
//! by STK Query ("The transaction is being processed" means pending).

mod client;
pub mod codes;

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{FixedOffset, Utc};
use serde::Deserialize;

use super::{CodeInfo, Collect, Country, Currency, Rail, RailResult, Requested, Status};
use crate::{
    journey::{ResultSource, Secret, credentials},
    outcome::Failure,
    steps::{Ctx, FieldError, Recorder},
};

/// Daraja's settings under `rail: {mpesa-ke: …}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Daraja {
    /// Daraja base URL (the sandbox, `https://sandbox.safaricom.co.ke`, or production).
    pub base_url: String,
    pub consumer_key: String,
    pub consumer_secret: String,
    pub shortcode: String,
    pub passkey: String,
    /// `CustomerPayBillOnline` (default) or `CustomerBuyGoodsOnline`.
    #[serde(default = "default_tx_type")]
    pub transaction_type: String,
    /// PartyB; default the shortcode.
    pub party_b: Option<String>,
}

fn default_tx_type() -> String {
    "CustomerPayBillOnline".to_owned()
}

impl Rail for Daraja {
    const NAME: &'static str = "mpesa-ke";
    const MODES: &'static [ResultSource] = &[ResultSource::Callback, ResultSource::Relay, ResultSource::Poll];
    const SUCCESS: &'static [&'static str] = &["0"];

    fn country(&self) -> Country {
        Country::Ke
    }

    fn currencies(&self) -> &'static [Currency] {
        &[Currency::Kes]
    }

    fn validate(&self) -> Result<(), FieldError> {
        if !["CustomerPayBillOnline", "CustomerBuyGoodsOnline"].contains(&self.transaction_type.as_str()) {
            return Err(("transaction_type".into(), "CustomerPayBillOnline or CustomerBuyGoodsOnline".into()));
        }
        Ok(())
    }

    fn templates(&self) -> Vec<(String, String)> {
        let field = |f: &str, v: &String| (f.to_owned(), v.clone());
        let mut t = vec![
            field("base_url", &self.base_url),
            field("consumer_key", &self.consumer_key),
            field("consumer_secret", &self.consumer_secret),
            field("shortcode", &self.shortcode),
            field("passkey", &self.passkey),
        ];
        t.extend(self.party_b.iter().map(|v| field("party_b", v)));
        t
    }

    fn plain_credentials(&self) -> Vec<(String, &'static str)> {
        [("consumer_key", &self.consumer_key), ("consumer_secret", &self.consumer_secret), ("passkey", &self.passkey)]
            .into_iter()
            .filter(|(_, v)| !credentials::literal(v).is_empty())
            .map(|(f, _)| (f.to_owned(), "a Daraja credential is"))
            .collect()
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Long enough for Daraja's 1037 (no answer at the phone) after about 60 s.
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(120)
    }

    fn describe(code: &str) -> CodeInfo {
        code.trim().parse::<i64>().map_or(CodeInfo::UNKNOWN, codes::describe)
    }

    fn read_callback(_rest: &str, body: &[u8]) -> Result<RailResult, String> {
        codes::parse_callback(body).map(codes::StkResult::into_rail)
    }

    async fn request(&self, ctx: &Ctx<'_>, rec: &mut Recorder, c: &Collect<'_>) -> Result<Requested, Failure> {
        client::Client::of(self, ctx)?.push(ctx, rec, self, c).await
    }

    async fn status(&self, ctx: &Ctx<'_>, rec: &mut Recorder, id: &str) -> Result<Status, Failure> {
        client::Client::of(self, ctx)?.query(ctx, rec, id).await
    }
}

/// `YYYYMMDDHHmmss` in Nairobi time (EAT, UTC+3, no daylight saving).
pub fn timestamp_now() -> String {
    let eat = FixedOffset::east_opt(3 * 3600).expect("valid offset");
    Utc::now().with_timezone(&eat).format("%Y%m%d%H%M%S").to_string()
}

/// `base64(shortcode + passkey + timestamp)`.
pub fn password(shortcode: &str, passkey: &str, timestamp: &str) -> Secret {
    Secret::new(STANDARD.encode(format!("{shortcode}{passkey}{timestamp}")))
}

/// `Basic base64(key:secret)`.
pub fn basic_auth(key: &str, secret: &str) -> Secret {
    Secret::new(format!("Basic {}", STANDARD.encode(format!("{key}:{secret}"))))
}

/// Daraja wants 12-digit `2547…` numbers, without `+`.
pub fn daraja_msisdn(phone: &str) -> String {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    match digits.strip_prefix('0') {
        Some(local) if digits.len() == 10 => format!("254{local}"),
        _ => digits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_matches_the_published_vector() {
        let p =
            password("174379", "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919", "20160216165627");
        assert_eq!(
            p.expose(),
            "MTc0Mzc5YmZiMjc5ZjlhYTliZGJjZjE1OGU5N2RkNzFhNDY3Y2QyZTBjODkzMDU5YjEwZjc4ZTZiNzJhZGExZWQyYzkxOTIwMTYwMjE2MTY1NjI3"
        );
    }

    #[test]
    fn timestamps_are_nairobi_time() {
        let t = timestamp_now();
        assert_eq!(t.len(), 14);
        let utc = Utc::now().format("%H").to_string().parse::<u32>().unwrap();
        let eat = t[8..10].parse::<u32>().unwrap();
        // Allow for the hour turning over between the two calls.
        assert!(eat == (utc + 3) % 24 || eat == (utc + 4) % 24, "{t}");
    }

    #[test]
    fn msisdns_become_daraja_format() {
        assert_eq!(daraja_msisdn("+254708920430"), "254708920430");
        assert_eq!(daraja_msisdn("0708920430"), "254708920430");
    }
}
