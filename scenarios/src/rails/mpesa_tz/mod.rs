//! `mpesa-tz`: Vodacom M-Pesa Tanzania through the M-Pesa OpenAPI, C2B single stage
//! (docs/protocols/mobile-money.md §3).
//!
//! - `codes.rs`: the OpenAPI's answers and what each `output_ResponseCode` means;
//! - `client.rs`: the session (cached, replaced once when refused), the C2B call, RSA.
//!
//! Both calls carry `Authorization: Bearer base64(RSA-PKCS#1-v1.5(public key, secret))`, the
//! secret being the API key for `getSession` and the session id for the payment. The C2B call
//! blocks until the customer has acted: its answer is the result (`Requested::Done`).

mod client;
pub mod codes;

use std::time::Duration;

use serde::Deserialize;

use super::{CodeInfo, Collect, Country, Currency, Rail, RailResult, Requested, Status};
use crate::{
    journey::{ResultSource, credentials},
    outcome::{Failure, Outcome},
    steps::{Ctx, FieldError, Recorder},
};

pub use client::{bearer, public_key};

/// The OpenAPI's settings under `rail: {mpesa-tz: …}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vodacom {
    /// The host, e.g. `https://openapi.m-pesa.com`; the rail adds `/{environment}/ipg/v2/{market}/…`.
    pub base_url: String,
    /// `sandbox` or `openapi` (production).
    pub environment: String,
    pub api_key: String,
    /// The portal's public key: base64 DER (as the portal shows it) or a PEM.
    pub public_key: String,
    pub service_provider_code: String,
    /// The market path segment; `vodacomTZN` for Tanzania.
    #[serde(default = "default_market")]
    pub market: String,
}

fn default_market() -> String {
    "vodacomTZN".to_owned()
}

impl Rail for Vodacom {
    const NAME: &'static str = "mpesa-tz";
    const MODES: &'static [ResultSource] = &[ResultSource::Response];
    const SUCCESS: &'static [&'static str] = &["INS-0"];

    fn country(&self) -> Country {
        Country::Tz
    }

    fn currencies(&self) -> &'static [Currency] {
        &[Currency::Tzs]
    }

    fn validate(&self) -> Result<(), FieldError> {
        if !["sandbox", "openapi"].contains(&self.environment.as_str()) {
            return Err(("environment".into(), "sandbox or openapi".into()));
        }
        if self.market.is_empty() || !self.market.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(("market".into(), "letters and digits only, e.g. vodacomTZN".into()));
        }
        if !self.public_key.contains("{{") && public_key(&self.public_key).is_err() {
            return Err((
                "public_key".into(),
                "not an RSA public key: give the portal's base64 key or a PEM public key".into(),
            ));
        }
        Ok(())
    }

    fn templates(&self) -> Vec<(String, String)> {
        [
            ("base_url", &self.base_url),
            ("api_key", &self.api_key),
            ("public_key", &self.public_key),
            ("service_provider_code", &self.service_provider_code),
        ]
        .into_iter()
        .map(|(f, v)| (f.to_owned(), v.clone()))
        .collect()
    }

    fn plain_credentials(&self) -> Vec<(String, &'static str)> {
        [("api_key", &self.api_key)]
            .into_iter()
            .filter(|(_, v)| !credentials::literal(v).is_empty())
            .map(|(f, _)| (f.to_owned(), "an M-Pesa OpenAPI key is"))
            .collect()
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The C2B call blocks until the customer acts or INS-9 (request timeout) comes back; the
    /// step must outlast it.
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(150)
    }

    fn describe(code: &str) -> CodeInfo {
        codes::describe(code)
    }

    fn read_callback(_rest: &str, _body: &[u8]) -> Result<RailResult, String> {
        Err("mpesa-tz answers with the result; it sends no callbacks".into())
    }

    async fn request(&self, ctx: &Ctx<'_>, rec: &mut Recorder, c: &Collect<'_>) -> Result<Requested, Failure> {
        client::Client::of(self, ctx)?.pay(ctx, rec, c).await
    }

    async fn status(&self, _ctx: &Ctx<'_>, _rec: &mut Recorder, _id: &str) -> Result<Status, Failure> {
        Err(Failure::new(Outcome::AssertionFailed, "mpesa-tz has no polling mode: use result: {response: {}}"))
    }
}
