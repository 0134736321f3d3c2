//! Airtel Money Collections (Open API v1, USSD push) at Airtel's paths, so a client changes only
//! its base URL (docs/protocols/mobile-money.md §2):
//!
//! - `POST /auth/oauth2/token` with the JSON body `{client_id, client_secret, grant_type:
//!   "client_credentials"}` → `{"access_token", "expires_in": "<secs>", "token_type": "bearer"}`
//!   ([`oauth`]);
//! - `POST /merchant/v1/payments/` with `Authorization: Bearer`, `X-Country` (`UG`|`TZ`),
//!   `X-Currency` (`UGX`|`TZS`, the country's) and `{reference, subscriber: {country, currency,
//!   msisdn}, transaction: {amount, country, currency, id}}` → `{"data": {"transaction": {"id",
//!   "status": "Success."}}, "status": {"code": "200", "message": "SUCCESS", "result_code":
//!   "ESB000010", "response_code": "DP00800001006", "success": true}}` ([`collect`]);
//! - `GET /standard/v1/payments/{id}` with the same headers → `{"data": {"transaction":
//!   {"airtel_money_id", "id", "message", "status": "TIP|TS|TF|TA"}}, "status": {…}}`
//!   ([`status`]);
//! - after the callback delay the transaction settles and, when [`Settings::callback_url`] is set
//!   (Airtel's is registered in its portal, not sent per request), the sandbox POSTs
//!   `{"transaction": {"id", "message", "status_code": "TS|TF", "airtel_money_id"}}` to it
//!   ([`callback`]).
//!
//! How each collection ends is chosen by the MSISDN's last two digits ([`outcome`]); refusals are
//! in Airtel's `status` envelope ([`errors`]).

pub mod callback;
pub mod collect;
pub mod errors;
pub mod oauth;
pub mod outcome;
pub mod status;

use std::{fmt, sync::Arc, time::Duration};

use axum::{
    Router,
    http::HeaderMap,
    routing::{get, post},
};
use parking_lot::Mutex;
use tokio::time::Instant;

pub use errors::AirtelError;
pub use outcome::Outcome;

use crate::{
    client::HttpClient,
    config::Config,
    rng::SharedRng,
    server::Tasks,
    store::{Bounded, Ledger, Payment},
};

/// The Airtel emulation's own settings (`Config::airtel`); timings and caps come from the shared
/// `callback_delay`, `query_expiry`, `token_ttl` and `limits`. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// The `client_id` OAuth accepts.
    pub client_id: String,
    /// The `client_secret` OAuth accepts.
    pub client_secret: String,
    /// Where settled transactions are POSTed (plain `http://`; the flag `--airtel-callback-url`).
    /// `None`: no callbacks, results by the status query only.
    pub callback_url: Option<url::Url>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            client_id: "savanna-airtel-client-id".to_owned(),
            client_secret: "savanna-airtel-client-secret".to_owned(),
            callback_url: None,
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("callback_url", &self.callback_url.as_ref().map(crate::client::loggable))
            .finish()
    }
}

impl Settings {
    /// Refuses settings the emulation cannot work with.
    pub fn validate(&self) -> Result<(), String> {
        if self.client_id.is_empty() || self.client_secret.is_empty() {
            return Err("the Airtel client id and secret must not be empty".into());
        }
        if let Some(u) = &self.callback_url
            && (u.scheme() != "http" || u.host().is_none())
        {
            return Err("the Airtel callback URL must be an http:// URL (--airtel-callback-url)".into());
        }
        Ok(())
    }
}

/// The wallets' countries and their currencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Country {
    Ug,
    Tz,
}

impl Country {
    pub fn parse(code: &str) -> Option<Country> {
        match code {
            "UG" => Some(Country::Ug),
            "TZ" => Some(Country::Tz),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Country::Ug => "UG",
            Country::Tz => "TZ",
        }
    }

    pub fn currency(self) -> &'static str {
        match self {
            Country::Ug => "UGX",
            Country::Tz => "TZS",
        }
    }

    /// The calling code, which `subscriber.msisdn` must not carry.
    pub fn calling_code(self) -> &'static str {
        match self {
            Country::Ug => "256",
            Country::Tz => "255",
        }
    }

    /// First digit of a mobile national number: Uganda 7, Tanzania 6 or 7.
    pub fn mobile_lead(self, c: char) -> bool {
        match self {
            Country::Ug => c == '7',
            Country::Tz => matches!(c, '6' | '7'),
        }
    }
}

/// One collection's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TxnState {
    /// `TIP`: the payer has not answered yet.
    Pending,
    /// `TS`, `TF` or `TA`.
    Done(Outcome),
}

#[derive(Debug, Clone)]
pub(crate) struct Txn {
    pub msisdn: String,
    pub country: Country,
    pub airtel_money_id: String,
    pub state: TxnState,
}

impl Payment for Txn {
    fn msisdn(&self) -> &str {
        &self.msisdn
    }

    fn pending(&self) -> bool {
        self.state == TxnState::Pending
    }
}

/// The Airtel emulation's shared state.
pub(crate) struct Airtel {
    pub settings: Settings,
    pub token_ttl: Duration,
    pub callback_delay: Duration,
    pub expiry: Duration,
    pub tokens: Mutex<Bounded<String, ()>>,
    /// Transactions by `transaction.id`, with the subscriber lock.
    pub ledger: Mutex<Ledger<Txn>>,
    pub rng: SharedRng,
    pub tasks: Tasks,
    pub http: HttpClient,
}

impl Airtel {
    pub fn new(config: &Config, tasks: Tasks, http: HttpClient) -> Self {
        let limits = &config.limits;
        Self {
            settings: config.airtel.clone(),
            token_ttl: config.token_ttl,
            callback_delay: config.callback_delay,
            expiry: config.query_expiry,
            tokens: Mutex::new(Bounded::new(limits.max_tokens, config.token_ttl)),
            ledger: Mutex::new(Ledger::new(
                limits.max_transactions,
                limits.transaction_ttl.max(config.query_expiry * 2),
            )),
            rng: SharedRng::new(config.seed, 4),
            tasks,
            http,
        }
    }

    /// Accepts a request only with `Authorization: Bearer <live token>` (HTTP 401 otherwise).
    pub(crate) fn check_bearer(&self, headers: &HeaderMap) -> Result<(), AirtelError> {
        match crate::auth::bearer(headers) {
            Some(token) if self.tokens.lock().get(&token, Instant::now()).is_some() => Ok(()),
            _ => Err(AirtelError::invalid_token()),
        }
    }
}

/// `X-Country` (`UG`, `TZ`) and `X-Currency` (that country's), checked in that order.
pub(crate) fn country_headers(headers: &HeaderMap) -> Result<Country, AirtelError> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let country = value("x-country").and_then(Country::parse).ok_or_else(AirtelError::invalid_country_header)?;
    if value("x-currency") != Some(country.currency()) {
        return Err(AirtelError::invalid_currency_header());
    }
    Ok(country)
}

/// The Airtel routes (all under fault injection). The collection path is served with and without
/// its trailing slash.
pub(crate) fn router(state: Arc<Airtel>) -> Router {
    Router::new()
        .route("/auth/oauth2/token", post(oauth::token))
        .route("/merchant/v1/payments/", post(collect::collect))
        .route("/merchant/v1/payments", post(collect::collect))
        .route("/standard/v1/payments/{id}", get(status::status))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_name_country_then_currency() {
        let mut h = HeaderMap::new();
        assert_eq!(country_headers(&h).unwrap_err().result_code, Some("ROUTER006"));
        h.insert("x-country", "KE".parse().unwrap());
        assert_eq!(country_headers(&h).unwrap_err().result_code, Some("ROUTER006"));
        h.insert("x-country", "UG".parse().unwrap());
        assert_eq!(country_headers(&h).unwrap_err().result_code, Some("ROUTER112"));
        h.insert("x-currency", "TZS".parse().unwrap());
        assert_eq!(country_headers(&h).unwrap_err().result_code, Some("ROUTER112"));
        h.insert("x-currency", "UGX".parse().unwrap());
        assert_eq!(country_headers(&h).unwrap(), Country::Ug);
    }

    #[test]
    fn settings_hide_the_secret_and_want_http() {
        let s = Settings { client_secret: "s3cr3t".into(), ..Default::default() };
        assert!(!format!("{s:?}").contains("s3cr3t"));
        assert!(s.validate().is_ok());
        let https = Settings { callback_url: Some("https://x.example/cb".parse().unwrap()), ..Default::default() };
        assert!(https.validate().unwrap_err().contains("--airtel-callback-url"));
        assert!(Settings { client_id: String::new(), ..Default::default() }.validate().is_err());
    }
}
