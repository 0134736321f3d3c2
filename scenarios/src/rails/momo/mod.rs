//! `momo`: MTN MoMo Collection, request to pay, for Uganda (docs/protocols/mobile-money.md §1).
//!
//! - `codes.rs`: MoMo's answers (token, error bodies, the status document that is also the
//!   callback) and what each status and failure reason means;
//! - `client.rs`: the token (cached, fetched again once when refused), the request to pay, the
//!   status query.
//!
//! The payment is named by the `X-Reference-Id` we choose (the step's idempotency key, a UUID
//! v4); MoMo answers the request with 202 and an empty body, and the result comes as a callback to
//! `X-Callback-Url` (the same document as the status) or by polling `GET
//! /collection/v1_0/requesttopay/{id}`, which answers 200 even for a failed payment.

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

/// MoMo's settings under `rail: {momo: …}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Momo {
    /// The MoMo API base URL (MTN's sandbox `https://sandbox.momodeveloper.mtn.com`, or the
    /// market's production host).
    pub base_url: String,
    /// The API user: a UUID (created in the sandbox, given by the partner portal in production).
    pub api_user: String,
    /// The API user's key.
    pub api_key: String,
    /// The Collection product's subscription key (`Ocp-Apim-Subscription-Key`).
    pub subscription_key: String,
    /// `X-Target-Environment`: `sandbox`, or `mtn<country>` in production (`mtnuganda`).
    pub target_environment: String,
}

/// A target environment's shape: `sandbox` or `mtn` and lowercase letters.
pub fn valid_environment(env: &str) -> bool {
    env == "sandbox"
        || (env.len() <= 32 && env.len() > 3 && env.starts_with("mtn") && env.bytes().all(|b| b.is_ascii_lowercase()))
}

/// The one currency a target environment this rail collects in accepts, if it is one of them.
pub fn environment_currency(env: &str) -> Option<Currency> {
    match env {
        "sandbox" => Some(Currency::Eur),
        "mtnuganda" => Some(Currency::Ugx),
        _ => None,
    }
}

const ENVIRONMENT_HELP: &str = "`sandbox`, or `mtn` and the market in lowercase letters (mtnuganda)";

impl Rail for Momo {
    const NAME: &'static str = "momo";
    const MODES: &'static [ResultSource] = &[ResultSource::Callback, ResultSource::Poll];
    const SUCCESS: &'static [&'static str] = &["SUCCESSFUL"];

    fn country(&self) -> Country {
        Country::Ug
    }

    /// The target environment's one currency when the journey names it (MTN's sandbox takes EUR
    /// only, `mtnuganda` UGX only); either while it is a template.
    fn currencies(&self) -> &'static [Currency] {
        match environment_currency(self.target_environment.trim()) {
            Some(Currency::Eur) => &[Currency::Eur],
            Some(_) => &[Currency::Ugx],
            None => &[Currency::Ugx, Currency::Eur],
        }
    }

    fn validate(&self) -> Result<(), FieldError> {
        let literal = |v: &str| !v.contains("{{");
        if literal(&self.target_environment) && !valid_environment(&self.target_environment) {
            return Err(("target_environment".into(), ENVIRONMENT_HELP.into()));
        }
        if literal(&self.api_user) && !codes::is_reference_id(self.api_user.trim()) {
            return Err(("api_user".into(), "the API user is a UUID (8-4-4-4-12 hexadecimal digits)".into()));
        }
        if self.base_url.trim().is_empty() {
            return Err(("base_url".into(), "give MoMo's base URL".into()));
        }
        Ok(())
    }

    fn templates(&self) -> Vec<(String, String)> {
        let field = |f: &str, v: &String| (f.to_owned(), v.clone());
        vec![
            field("base_url", &self.base_url),
            field("api_user", &self.api_user),
            field("api_key", &self.api_key),
            field("subscription_key", &self.subscription_key),
            field("target_environment", &self.target_environment),
        ]
    }

    fn plain_credentials(&self) -> Vec<(String, &'static str)> {
        [("api_key", &self.api_key), ("subscription_key", &self.subscription_key)]
            .into_iter()
            .filter(|(_, v)| !credentials::literal(v).is_empty())
            .map(|(f, _)| (f.to_owned(), "a MoMo credential is"))
            .collect()
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Longer than MoMo's approval window (about 5 minutes, then COULD_NOT_PERFORM_TRANSACTION).
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(330)
    }

    fn describe(code: &str) -> CodeInfo {
        codes::describe(code.trim())
    }

    fn read_callback(rest: &str, body: &[u8]) -> Result<RailResult, String> {
        codes::parse_callback(rest, body)
    }

    async fn request(&self, ctx: &Ctx<'_>, rec: &mut Recorder, c: &Collect<'_>) -> Result<Requested, Failure> {
        client::Client::of(self, ctx)?.request_to_pay(ctx, rec, c).await
    }

    async fn status(&self, ctx: &Ctx<'_>, rec: &mut Recorder, id: &str) -> Result<Status, Failure> {
        client::Client::of(self, ctx)?.status(ctx, rec, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn momo() -> Momo {
        Momo {
            base_url: "{{ momo }}".into(),
            api_user: "{{ secrets.momo_api_user }}".into(),
            api_key: "{{ secrets.momo_api_key }}".into(),
            subscription_key: "{{ secrets.momo_subscription_key }}".into(),
            target_environment: "mtnuganda".into(),
        }
    }

    #[test]
    fn settings_are_checked_by_field() {
        momo().validate().unwrap();
        Momo { target_environment: "sandbox".into(), ..momo() }.validate().unwrap();
        Momo { api_user: "3f1b6a34-7a4e-4c47-9b55-2a2f0f6b9a10".into(), ..momo() }.validate().unwrap();
        let e = Momo { target_environment: "MTN Uganda".into(), ..momo() }.validate().unwrap_err();
        assert_eq!(e.0, "target_environment");
        assert_eq!(Momo { target_environment: "mtn".into(), ..momo() }.validate().unwrap_err().0, "target_environment");
        assert_eq!(Momo { api_user: "alice".into(), ..momo() }.validate().unwrap_err().0, "api_user");
        assert_eq!(Momo { base_url: " ".into(), ..momo() }.validate().unwrap_err().0, "base_url");
    }

    #[test]
    fn the_environment_decides_the_currency() {
        assert_eq!(momo().currencies(), &[Currency::Ugx]);
        assert_eq!(Momo { target_environment: "sandbox".into(), ..momo() }.currencies(), &[Currency::Eur]);
        let templated = Momo { target_environment: "{{ env }}".into(), ..momo() };
        assert_eq!(templated.currencies(), &[Currency::Ugx, Currency::Eur]);
    }

    #[test]
    fn literal_secrets_are_named() {
        assert!(momo().plain_credentials().is_empty());
        let plain = Momo { api_key: "k".into(), subscription_key: "s".into(), ..momo() }.plain_credentials();
        let fields: Vec<&str> = plain.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["api_key", "subscription_key"]);
    }
}
