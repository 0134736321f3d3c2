//! MTN MoMo Collection at its documented paths, so a client changes only its base URL:
//!
//! - sandbox provisioning: `POST /v1_0/apiuser` (`X-Reference-Id` = the new API user, body
//!   `{"providerCallbackHost"}`), `GET /v1_0/apiuser/{id}`, `POST /v1_0/apiuser/{id}/apikey`
//!   ([`auth`]);
//! - `POST /collection/token/` with `Authorization: Basic base64(apiUser:apiKey)` ([`auth`]);
//! - `POST /collection/v1_0/requesttopay`: 202 with an empty body, then the payment settles after
//!   the callback delay and its status document goes to `X-Callback-Url` by `PUT`
//!   ([`collection`]);
//! - `GET /collection/v1_0/requesttopay/{referenceId}`: 200 with the status document, even for a
//!   failed payment; `GET /collection/v1_0/account/balance`;
//!   `GET /collection/v1_0/accountholder/{type}/{id}/active`.
//!
//! Every call needs the Collection subscription key (`Ocp-Apim-Subscription-Key`) and all but
//! provisioning and the token a live bearer token and a known `X-Target-Environment`, whose
//! currency the payment must use. How a payment ends is chosen by the payer's last two digits
//! ([`outcome`]).

pub mod auth;
pub mod collection;
pub mod errors;
pub mod outcome;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    routing::{get, post},
};
use parking_lot::Mutex;

pub use errors::MomoError;
pub use outcome::Outcome;

use crate::{client::HttpClient, config::Config, rng::SharedRng, server::Tasks, store::Bounded};

/// The target environments MTN documents for `X-Target-Environment`, with the one currency each
/// accepts (MTN's sandbox takes EUR only).
pub const ENVIRONMENTS: [(&str, &str); 12] = [
    ("sandbox", "EUR"),
    ("mtnuganda", "UGX"),
    ("mtnghana", "GHS"),
    ("mtnivorycoast", "XOF"),
    ("mtnzambia", "ZMW"),
    ("mtncameroon", "XAF"),
    ("mtnbenin", "XOF"),
    ("mtncongo", "XAF"),
    ("mtnswaziland", "SZL"),
    ("mtnguineaconakry", "GNF"),
    ("mtnsouthafrica", "ZAR"),
    ("mtnliberia", "LRD"),
];

/// The currency of a target environment, if MTN documents it.
pub fn currency_of(environment: &str) -> Option<&'static str> {
    ENVIRONMENTS.iter().find(|(e, _)| *e == environment).map(|(_, c)| *c)
}

/// The MoMo emulation's settings: one API user ready to use (as the partner portal gives one),
/// and the subscription key. More API users can be provisioned over the API, as in MTN's sandbox.
/// `Debug` leaves the keys out.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// The ready API user's id (a UUID).
    pub api_user: String,
    /// Its API key.
    pub api_key: String,
    /// The Collection product's subscription key.
    pub subscription_key: String,
    /// The ready API user's `providerCallbackHost`: `X-Callback-Url` must be on this host.
    pub callback_host: String,
}

/// The sandbox's MoMo API user, key and subscription key (public test values).
pub const SANDBOX_API_USER: &str = "5f3c8a2e-1b4d-4e6f-9a7b-2c8d0e1f3a5b";
pub const SANDBOX_API_KEY: &str = "7d1e9b3f5a2c4e6d8f0a1b3c5d7e9f2a";
pub const SANDBOX_SUBSCRIPTION_KEY: &str = "3a9f1c7e5b2d4f6a8c0e2b4d6f8a1c3e";

impl Default for Settings {
    fn default() -> Self {
        Self {
            api_user: SANDBOX_API_USER.to_owned(),
            api_key: SANDBOX_API_KEY.to_owned(),
            subscription_key: SANDBOX_SUBSCRIPTION_KEY.to_owned(),
            callback_host: "127.0.0.1".to_owned(),
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("api_user", &self.api_user)
            .field("api_key", &"<redacted>")
            .field("subscription_key", &"<redacted>")
            .field("callback_host", &self.callback_host)
            .finish()
    }
}

impl Settings {
    /// Refuses settings no client could use.
    pub fn validate(&self) -> Result<(), String> {
        if uuid_v4(&self.api_user).is_none() {
            return Err("the MoMo API user must be a UUID version 4 (--momo-api-user)".into());
        }
        if self.api_key.is_empty() || self.subscription_key.is_empty() {
            return Err("the MoMo API key and subscription key must not be empty".into());
        }
        if self.callback_host.trim().is_empty() {
            return Err("the MoMo callback host must not be empty (--momo-callback-host)".into());
        }
        Ok(())
    }
}

/// `s` as a lowercase UUID if it is a hyphenated UUID version 4 (what MoMo asks for in
/// `X-Reference-Id`).
pub fn uuid_v4(s: &str) -> Option<String> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    let shaped = groups.len() == 5
        && groups.iter().zip(lens).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    let version_4 = shaped && groups[2].starts_with('4');
    let variant = shaped && matches!(groups[3].as_bytes()[0].to_ascii_lowercase(), b'8' | b'9' | b'a' | b'b');
    (version_4 && variant).then(|| s.to_ascii_lowercase())
}

/// An API user: its callback host and, once created, its key.
#[derive(Debug, Clone)]
pub(crate) struct ApiUser {
    pub callback_host: String,
    pub api_key: Option<String>,
}

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Pending,
    Successful { financial_transaction_id: u64 },
    Failed { reason: &'static str },
}

/// One request to pay, as accepted.
#[derive(Debug, Clone)]
pub(crate) struct Payment {
    pub api_user: String,
    pub environment: String,
    pub amount: String,
    pub currency: String,
    pub external_id: String,
    pub party_id_type: String,
    pub party_id: String,
    pub payer_message: String,
    pub payee_note: String,
    pub state: State,
}

/// The MoMo emulation's shared state.
pub(crate) struct Momo {
    pub subscription_key: String,
    pub token_ttl: Duration,
    pub callback_delay: Duration,
    pub approval_window: Duration,
    pub users: Mutex<Bounded<String, ApiUser>>,
    /// Live tokens and the API user each was issued to.
    pub tokens: Mutex<Bounded<String, String>>,
    pub payments: Mutex<Bounded<String, Payment>>,
    pub rng: SharedRng,
    pub tasks: Tasks,
    pub http: HttpClient,
    /// Where the payer's confirmation SMS goes (`crate::modem::smsc`).
    pub sms: crate::modem::smsc::SmsCentre,
}

/// API users kept (provisioning is open to any holder of the subscription key).
const MAX_USERS: usize = 1_000;

impl Momo {
    pub fn new(config: &Config, tasks: Tasks, http: HttpClient, sms: crate::modem::smsc::SmsCentre) -> Self {
        let limits = &config.limits;
        let s = &config.momo;
        let mut users = Bounded::new(MAX_USERS, Duration::MAX);
        let ready = ApiUser { callback_host: s.callback_host.clone(), api_key: Some(s.api_key.clone()) };
        users.insert(s.api_user.to_ascii_lowercase(), ready, tokio::time::Instant::now());
        Self {
            subscription_key: s.subscription_key.clone(),
            token_ttl: config.token_ttl,
            callback_delay: config.callback_delay,
            approval_window: config.query_expiry,
            users: Mutex::new(users),
            tokens: Mutex::new(Bounded::new(limits.max_tokens, config.token_ttl)),
            payments: Mutex::new(Bounded::new(
                limits.max_transactions,
                limits.transaction_ttl.max(config.query_expiry * 2),
            )),
            rng: SharedRng::new(config.seed, 5),
            tasks,
            http,
            sms,
        }
    }
}

/// The MoMo routes (all under fault injection).
pub(crate) fn router(state: Arc<Momo>) -> Router {
    Router::new()
        .route("/v1_0/apiuser", post(auth::create_user))
        .route("/v1_0/apiuser/{id}", get(auth::get_user))
        .route("/v1_0/apiuser/{id}/apikey", post(auth::create_key))
        .route("/collection/token/", post(auth::token))
        .route("/collection/v1_0/requesttopay", post(collection::request_to_pay))
        .route("/collection/v1_0/requesttopay/{id}", get(collection::status))
        .route("/collection/v1_0/account/balance", get(collection::balance))
        .route("/collection/v1_0/accountholder/{kind}/{id}/active", get(collection::account_holder_active))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_ids_must_be_uuid_version_4() {
        assert_eq!(uuid_v4(SANDBOX_API_USER).as_deref(), Some(SANDBOX_API_USER));
        assert!(uuid_v4("5F3C8A2E-1B4D-4E6F-9A7B-2C8D0E1F3A5B").is_some());
        assert!(uuid_v4("5f3c8a2e-1b4d-1e6f-9a7b-2c8d0e1f3a5b").is_none(), "version 1");
        assert!(uuid_v4("5f3c8a2e-1b4d-4e6f-7a7b-2c8d0e1f3a5b").is_none(), "variant");
        assert!(uuid_v4("5f3c8a2e1b4d4e6f9a7b2c8d0e1f3a5b").is_none(), "no hyphens");
        assert!(uuid_v4("5f3c8a2e-1b4d-4e6f-9a7b-2c8d0e1f3a5").is_none());
        assert!(uuid_v4("").is_none());
        assert!(uuid_v4("----").is_none());
    }

    #[test]
    fn every_environment_has_a_currency() {
        assert_eq!(currency_of("mtnuganda"), Some("UGX"));
        assert_eq!(currency_of("sandbox"), Some("EUR"));
        assert_eq!(currency_of("mtnkenya"), None);
    }

    #[test]
    fn default_settings_are_valid() {
        Settings::default().validate().unwrap();
        assert!(Settings { api_user: "x".into(), ..Default::default() }.validate().is_err());
    }
}
