//! Vodacom M-Pesa Tanzania through the M-Pesa OpenAPI, at its documented paths (the environment
//! `sandbox` or `openapi`, then `/ipg/v2/{market}/`, the market `vodacomTZN`):
//!
//! - `GET /{env}/ipg/v2/vodacomTZN/getSession/` with `Authorization: Bearer
//!   base64(RSA-PKCS#1-v1.5(public key, API key))` and `Origin` → `{"output_ResponseCode": "INS-0",
//!   "output_ResponseDesc", "output_SessionID"}`;
//! - `POST /{env}/ipg/v2/vodacomTZN/c2bPayment/singleStage/` with the session id encrypted the same
//!   way, every `input_*` field checked in order ([`c2b`]). The call is synchronous: it answers
//!   when the customer has acted, chosen by the MSISDN's last two digits ([`outcome`]).
//!
//! The RSA key pair is a bundled test pair (`test-private-key.pem`; its public half, as the portal
//! hands one out, is `scenarios/secrets/sandbox-mpesa-tz-public-key`), or the caller's own
//! (`--mpesa-tz-private-key`). Nothing is generated at run time.
//!
//! Every answer, success or not, is `{"output_ResponseCode", "output_ResponseDesc", …}` with the
//! HTTP status the OpenAPI's response-code table gives the code ([`describe`]).

pub mod c2b;
pub mod outcome;

use std::{fmt, sync::Arc, time::Duration};

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine as _;
use parking_lot::Mutex;
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey, pkcs8::DecodePrivateKey};
use serde_json::json;
use tokio::time::Instant;

pub use outcome::Outcome;

use crate::{
    rng::SharedRng,
    store::{Bounded, Ledger, Payment},
};

/// The bundled test key pair's private half (PKCS#8 PEM). Public test material, not a secret.
pub const TEST_PRIVATE_KEY: &str = include_str!("test-private-key.pem");
/// The sandbox's default API key (a public test value, also in `scenarios/secrets/`).
pub const SANDBOX_API_KEY: &str = "savanna-sandbox-vodacom-api-key-2f9c";
/// The default service provider code (the merchant's short code).
pub const SANDBOX_SERVICE_PROVIDER_CODE: &str = "000000";
/// The one market emulated.
pub const MARKET: &str = "vodacomTZN";

/// The emulation's settings. `Debug` leaves the API key and the private key out.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    pub api_key: String,
    pub service_provider_code: String,
    /// The private key (PKCS#8 PEM) the bearers are decrypted with.
    pub private_key_pem: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            api_key: SANDBOX_API_KEY.to_owned(),
            service_provider_code: SANDBOX_SERVICE_PROVIDER_CODE.to_owned(),
            private_key_pem: TEST_PRIVATE_KEY.to_owned(),
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("api_key", &"<redacted>")
            .field("service_provider_code", &self.service_provider_code)
            .field("private_key_pem", &"<redacted>")
            .finish()
    }
}

impl Settings {
    /// The private key, or why it cannot be used.
    pub fn private_key(&self) -> Result<RsaPrivateKey, String> {
        RsaPrivateKey::from_pkcs8_pem(&self.private_key_pem).map_err(|e| {
            format!("the M-Pesa OpenAPI private key is not a PKCS#8 PEM RSA key ({e}) (--mpesa-tz-private-key)")
        })
    }

    /// Refuses settings no client could use.
    pub fn validate(&self) -> Result<(), String> {
        if self.api_key.is_empty() {
            return Err("the M-Pesa OpenAPI API key must not be empty".into());
        }
        if self.service_provider_code.is_empty()
            || !self.service_provider_code.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err("the M-Pesa OpenAPI service provider code must be letters and digits".into());
        }
        self.private_key().map(|_| ())
    }
}

/// The OpenAPI's response codes the emulation answers with: meaning and HTTP status, as the
/// portal's table gives them.
pub fn describe(code: &str) -> (&'static str, u16) {
    match code {
        "INS-0" => ("Request processed successfully", 201),
        "INS-1" => ("Internal Error", 500),
        "INS-2" => ("Invalid API Key", 401),
        "INS-5" => ("Transaction cancelled by customer", 401),
        "INS-6" => ("Transaction Failed", 401),
        "INS-9" => ("Request timeout", 408),
        "INS-10" => ("Duplicate Transaction", 409),
        "INS-13" => ("Invalid Shortcode Used", 400),
        "INS-15" => ("Invalid Amount Used", 400),
        "INS-16" => ("Unable to handle the request due to a temporary overloading", 503),
        "INS-17" => ("Invalid Transaction Reference. Length Should Be Between 1 and 20.", 400),
        "INS-19" => ("Invalid ThirdPartyReference Used", 400),
        "INS-20" => ("Not All Parameters Provided. Please try again.", 400),
        "INS-21" => ("Parameter validations failed. Please try again.", 400),
        "INS-26" => ("Not authorized", 401),
        "INS-996" => ("Customer Account Status Not Active", 400),
        "INS-998" => ("Invalid Market", 400),
        "INS-2001" => ("Initiator authentication error.", 400),
        "INS-2006" => ("Insufficient balance", 422),
        "INS-2051" => ("MSISDN invalid.", 400),
        _ => ("Internal Error", 500),
    }
}

/// A refusal (or any answer without a payment): code, words, status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenApiError {
    pub code: &'static str,
    pub desc: String,
}

impl OpenApiError {
    /// `code` with the table's words, and `detail` after them when given.
    pub fn new(code: &'static str, detail: &str) -> Self {
        let words = describe(code).0;
        let desc = if detail.is_empty() { words.to_owned() } else { format!("{words} ({detail})") };
        Self { code, desc }
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(describe(self.code).1).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// An unknown, expired or undecryptable session (HTTP 401).
    pub fn bad_session() -> Self {
        Self::new("INS-26", "the session ID is invalid or has expired: get a new session")
    }

    pub fn injected_error() -> Self {
        Self::new("INS-1", "injected fault")
    }

    pub fn injected_outage() -> Self {
        Self::new("INS-16", "injected outage")
    }
}

impl IntoResponse for OpenApiError {
    fn into_response(self) -> Response {
        let body = json!({ "output_ResponseCode": self.code, "output_ResponseDesc": self.desc });
        (self.status(), Json(body)).into_response()
    }
}

/// One C2B payment while the customer has the prompt.
#[derive(Debug, Clone)]
pub(crate) struct Txn {
    pub msisdn: String,
    pub pending: bool,
}

impl Payment for Txn {
    fn msisdn(&self) -> &str {
        &self.msisdn
    }

    fn pending(&self) -> bool {
        self.pending
    }
}

/// The emulation's shared state.
pub(crate) struct MpesaTz {
    pub settings: Settings,
    pub key: RsaPrivateKey,
    pub delay: Duration,
    pub expiry: Duration,
    pub sessions: Mutex<Bounded<String, ()>>,
    /// Payments by `input_ThirdPartyConversationID`, with the customer lock.
    pub ledger: Mutex<Ledger<Txn>>,
    pub rng: SharedRng,
}

impl MpesaTz {
    /// The state, or why the configured key cannot be used.
    pub fn new(config: &crate::config::Config) -> Result<Self, String> {
        let limits = &config.limits;
        Ok(Self {
            key: config.mpesa_tz.private_key()?,
            settings: config.mpesa_tz.clone(),
            delay: config.callback_delay,
            expiry: config.query_expiry,
            sessions: Mutex::new(Bounded::new(limits.max_tokens, config.token_ttl)),
            ledger: Mutex::new(Ledger::new(
                limits.max_transactions,
                limits.transaction_ttl.max(config.query_expiry * 2),
            )),
            rng: SharedRng::new(config.seed, 6),
        })
    }

    /// The secret a bearer carries: base64, then RSA PKCS#1 v1.5 under our key.
    fn decrypt_bearer(&self, headers: &HeaderMap) -> Option<String> {
        let encrypted = base64::engine::general_purpose::STANDARD.decode(crate::auth::bearer(headers)?).ok()?;
        let plain = self.key.decrypt(Pkcs1v15Encrypt, &encrypted).ok()?;
        String::from_utf8(plain).ok()
    }

    /// The checks every call starts with: the environment, the market, the `Origin` header.
    fn check_path(env: &str, market: &str, headers: &HeaderMap) -> Result<(), OpenApiError> {
        if !matches!(env, "sandbox" | "openapi") {
            return Err(OpenApiError::new("INS-21", "the environment is `sandbox` or `openapi`"));
        }
        if market != MARKET {
            return Err(OpenApiError::new("INS-998", "this emulation serves vodacomTZN"));
        }
        if headers.get("origin").is_none() {
            return Err(OpenApiError::new("INS-20", "the Origin header"));
        }
        Ok(())
    }

    /// A live session from the bearer.
    pub(crate) fn check_session(&self, headers: &HeaderMap) -> Result<(), OpenApiError> {
        let session = self.decrypt_bearer(headers).ok_or_else(OpenApiError::bad_session)?;
        match self.sessions.lock().get(&session, Instant::now()) {
            Some(()) => Ok(()),
            None => Err(OpenApiError::bad_session()),
        }
    }
}

/// `GET /{env}/ipg/v2/{market}/getSession/`.
async fn get_session(
    State(state): State<Arc<MpesaTz>>,
    Path((env, market)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, OpenApiError> {
    MpesaTz::check_path(&env, &market, &headers)?;
    if state.decrypt_bearer(&headers).as_deref() != Some(state.settings.api_key.as_str()) {
        tracing::info!("mpesa-tz session refused: the bearer is not the API key under our public key");
        return Err(OpenApiError::new("INS-2", ""));
    }
    let session = state.rng.hex(32);
    state.sessions.lock().insert(session.clone(), (), Instant::now());
    let body = json!({
        "output_ResponseCode": "INS-0",
        "output_ResponseDesc": describe("INS-0").0,
        "output_SessionID": session,
    });
    Ok((StatusCode::OK, Json(body)).into_response())
}

/// The OpenAPI routes (all under fault injection).
pub(crate) fn router(state: Arc<MpesaTz>) -> axum::Router {
    axum::Router::new()
        .route("/{env}/ipg/v2/{market}/getSession/", get(get_session))
        .route("/{env}/ipg/v2/{market}/c2bPayment/singleStage/", post(c2b::single_stage))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_key_pair_is_usable_and_hidden_from_debug() {
        let s = Settings::default();
        s.validate().unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains(SANDBOX_API_KEY) && !shown.contains("PRIVATE KEY"), "{shown}");
        assert!(Settings { private_key_pem: "nope".into(), ..Settings::default() }.validate().is_err());
    }

    #[test]
    fn every_code_has_words_and_a_status() {
        for code in ["INS-0", "INS-1", "INS-2", "INS-9", "INS-10", "INS-2006", "INS-2051"] {
            let (words, status) = describe(code);
            assert!(!words.is_empty() && (200..600).contains(&status), "{code}");
        }
        assert_eq!(OpenApiError::bad_session().status(), StatusCode::UNAUTHORIZED);
        assert!(OpenApiError::bad_session().desc.to_ascii_lowercase().contains("session"));
    }
}
