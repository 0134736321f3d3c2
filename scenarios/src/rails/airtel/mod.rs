//! `airtel`: Airtel Money Collections (USSD push) for Uganda and Tanzania
//! (docs/protocols/mobile-money.md §2).
//!
//! - `codes.rs`: Airtel's answers (token, the `status` envelope, the status query, the callback)
//!   and what each transaction status means;
//! - `client.rs`: OAuth with a JSON body (cached, refreshed once when refused), the collection
//!   request (`POST /merchant/v1/payments/`) and the status query
//!   (`GET /standard/v1/payments/{id}`).
//!
//! The payment is named by our `transaction.id` (the idempotency key's 32 hex digits). Airtel
//! sends callbacks to the URL registered in its portal, not one given per request, so they arrive
//! at `/airtel` on the listener and name the transaction in the body. For the same reason the
//! default result mode is polling: a callback listener helps only on the address and port the
//! portal names (`result: {callback: {listen: …}}`).

mod client;
pub mod codes;

use std::time::Duration;

use serde::Deserialize;

use super::{CodeInfo, Collect, Country, Currency, Rail, RailResult, Requested, Status};
use crate::{
    journey::{ResultSource, credentials},
    outcome::Failure,
    steps::{Ctx, FieldError, Recorder},
};

/// Airtel's settings under `rail: {airtel: …}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Airtel {
    /// Airtel Open API base URL (UAT `https://openapiuat.airtel.africa` or production).
    pub base_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// The wallets' country, `UG` or `TZ`: `X-Country`, and the currency (UGX, TZS).
    pub country: Country,
}

impl Rail for Airtel {
    const NAME: &'static str = "airtel";
    /// Poll first: the callback URL is the one in Airtel's portal, which a listener on a port of
    /// its own choosing (the callback mode's default) can never be.
    const MODES: &'static [ResultSource] = &[ResultSource::Poll, ResultSource::Callback];
    const SUCCESS: &'static [&'static str] = &["TS"];

    fn country(&self) -> Country {
        self.country
    }

    fn currencies(&self) -> &'static [Currency] {
        match self.country {
            Country::Tz => &[Currency::Tzs],
            _ => &[Currency::Ugx],
        }
    }

    fn validate(&self) -> Result<(), FieldError> {
        if !matches!(self.country, Country::Ug | Country::Tz) {
            return Err(("country".into(), "UG or TZ (this rail collects from Ugandan and Tanzanian wallets)".into()));
        }
        Ok(())
    }

    fn templates(&self) -> Vec<(String, String)> {
        vec![
            ("base_url".to_owned(), self.base_url.clone()),
            ("client_id".to_owned(), self.client_id.clone()),
            ("client_secret".to_owned(), self.client_secret.clone()),
        ]
    }

    fn plain_credentials(&self) -> Vec<(String, &'static str)> {
        [("client_id", &self.client_id), ("client_secret", &self.client_secret)]
            .into_iter()
            .filter(|(_, v)| !credentials::literal(v).is_empty())
            .map(|(f, _)| (f.to_owned(), "an Airtel credential is"))
            .collect()
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Longer than the payer's window to enter the PIN on the USSD prompt (Unsure: Airtel does
    /// not publish it; integrations report about a minute).
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(120)
    }

    fn describe(code: &str) -> CodeInfo {
        codes::describe(code.trim())
    }

    fn read_callback(_rest: &str, body: &[u8]) -> Result<RailResult, String> {
        codes::parse_callback(body).map(codes::AirtelResult::into_rail)
    }

    async fn request(&self, ctx: &Ctx<'_>, rec: &mut Recorder, c: &Collect<'_>) -> Result<Requested, Failure> {
        client::Client::of(self, ctx)?.collect(ctx, rec, c).await
    }

    async fn status(&self, ctx: &Ctx<'_>, rec: &mut Recorder, id: &str) -> Result<Status, Failure> {
        client::Client::of(self, ctx)?.query(ctx, rec, id).await
    }
}

/// Airtel's `transaction.id` for an idempotency key: its hex digits only (a UUID's 32), since
/// Airtel documents no charset or length for the id (Unsure) and integrations use plain
/// alphanumerics.
pub fn transaction_id(idempotency_key: &str) -> String {
    idempotency_key.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// The subscriber's number without the country code (Airtel's documentation insists): the
/// E.164 digits minus the country's calling code.
pub fn local_msisdn(country: Country, e164: &str) -> String {
    let digits: String = e164.chars().filter(char::is_ascii_digit).collect();
    digits.strip_prefix(country.calling_code()).map(str::to_owned).unwrap_or(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_numbers_take_airtel_form() {
        assert_eq!(transaction_id("6f1c2a9e-0b7d-4c39-9a51-2f7e8d3c4b10"), "6f1c2a9e0b7d4c399a512f7e8d3c4b10");
        assert_eq!(local_msisdn(Country::Ug, "256772000100"), "772000100");
        assert_eq!(local_msisdn(Country::Tz, "255754000100"), "754000100");
    }

    /// Airtel is never told a callback URL per request, so a journey without `result:` polls.
    #[test]
    fn a_journey_without_a_result_mode_polls() {
        assert_eq!(Airtel::MODES[0], ResultSource::Poll);
        assert!(Airtel::MODES.contains(&ResultSource::Callback));
    }

    #[test]
    fn the_country_chooses_the_currency() {
        let mut a: Airtel = serde_yaml_ng::from_str(
            "{base_url: 'http://x', client_id: '{{ secrets.id }}', client_secret: '{{ secrets.s }}', country: UG}",
        )
        .unwrap();
        assert_eq!(a.currencies(), &[Currency::Ugx]);
        a.country = Country::Tz;
        assert_eq!(a.currencies(), &[Currency::Tzs]);
        assert!(a.validate().is_ok());
        a.country = Country::Ke;
        assert_eq!(a.validate().unwrap_err().0, "country");
        assert!(a.plain_credentials().is_empty());
        let bad: Result<Airtel, _> =
            serde_yaml_ng::from_str("{base_url: x, client_id: a, client_secret: b, country: UG, pin: 1}");
        assert!(bad.is_err());
    }
}
