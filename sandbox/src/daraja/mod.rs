//! Safaricom Daraja emulation at the standard paths, so a client changes only its base URL:
//!
//! - `GET /oauth/v1/generate?grant_type=client_credentials` with Basic auth ([`oauth`]);
//! - `POST /mpesa/stkpush/v1/processrequest` with full field validation, the Password check, the
//!   subscriber lock, and an asynchronous callback to `CallBackURL` ([`stk`], [`callback`]);
//! - `POST /mpesa/stkpushquery/v1/query`: HTTP 500 "being processed" while pending, the result
//!   (ResultCode as a string) when done.
//!
//! How each push ends is chosen by its phone number's last two digits ([`outcome`]).

pub mod callback;
pub mod errors;
pub mod oauth;
pub mod outcome;
pub mod stk;

use crate::modem::smsc::SmsCentre;
use std::sync::Arc;

use axum::{
    Router,
    routing::{get, post},
};
use base64::Engine as _;
use parking_lot::Mutex;

pub use errors::DarajaError;
pub use outcome::Outcome;

use crate::{
    client::HttpClient,
    config::Config,
    faults::Faults,
    rng::SharedRng,
    server::Tasks,
    store::{Bounded, Ledger, Payment},
};

/// `Password = base64(BusinessShortCode + passkey + Timestamp)`.
pub fn stk_password(shortcode: &str, passkey: &str, timestamp: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{shortcode}{passkey}{timestamp}"))
}

/// Now in Nairobi time (UTC+3, no daylight saving) as `YYYYMMDDHHmmss`, the format of
/// `Timestamp` and of the callback's `TransactionDate`.
pub fn nairobi_timestamp() -> String {
    let eat = chrono::FixedOffset::east_opt(3 * 3600).expect("UTC+3 is a valid offset");
    chrono::Utc::now().with_timezone(&eat).format("%Y%m%d%H%M%S").to_string()
}

/// One STK transaction's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TxnState {
    Pending,
    Done { result_code: u32, result_desc: &'static str },
}

#[derive(Debug, Clone)]
pub(crate) struct Txn {
    pub merchant_request_id: String,
    pub msisdn: String,
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

/// The Daraja emulation's shared state.
pub(crate) struct Daraja {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub shortcode: String,
    pub passkey: String,
    pub token_ttl: std::time::Duration,
    pub callback_delay: std::time::Duration,
    pub query_expiry: std::time::Duration,
    pub tokens: Mutex<Bounded<String, ()>>,
    /// Transactions by CheckoutRequestID, with the subscriber lock.
    pub ledger: Mutex<Ledger<Txn>>,
    pub rng: SharedRng,
    pub faults: Faults,
    pub tasks: Tasks,
    pub http: HttpClient,
    /// Where the payer's confirmation SMS goes (`crate::modem::smsc`).
    pub sms: SmsCentre,
}

impl Daraja {
    pub fn new(config: &Config, faults: Faults, tasks: Tasks, http: HttpClient, sms: SmsCentre) -> Self {
        let limits = &config.limits;
        Self {
            consumer_key: config.consumer_key.clone(),
            consumer_secret: config.consumer_secret.clone(),
            shortcode: config.shortcode.clone(),
            passkey: config.passkey.clone(),
            token_ttl: config.token_ttl,
            callback_delay: config.callback_delay,
            query_expiry: config.query_expiry,
            tokens: Mutex::new(Bounded::new(limits.max_tokens, config.token_ttl)),
            ledger: Mutex::new(Ledger::new(
                limits.max_transactions,
                limits.transaction_ttl.max(config.query_expiry * 2),
            )),
            rng: SharedRng::new(config.seed, 3),
            faults,
            tasks,
            http,
            sms,
        }
    }
}

/// The Daraja routes (all under fault injection).
pub(crate) fn router(state: Arc<Daraja>) -> Router {
    Router::new()
        .route("/oauth/v1/generate", get(oauth::generate))
        .route("/mpesa/stkpush/v1/processrequest", post(stk::push))
        .route("/mpesa/stkpushquery/v1/query", post(stk::query))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The public test vector: shortcode 174379, the sandbox passkey, timestamp 20160216165627.
    #[test]
    fn password_matches_the_published_vector() {
        let password = stk_password("174379", crate::config::SANDBOX_PASSKEY, "20160216165627");
        assert_eq!(
            password,
            "MTc0Mzc5YmZiMjc5ZjlhYTliZGJjZjE1OGU5N2RkNzFhNDY3Y2QyZTBjODkzMDU5YjEwZjc4ZTZiNzJhZGExZWQyYzkxOTIwMTYwMjE2MTY1NjI3"
        );
        assert_ne!(stk_password("174379", crate::config::SANDBOX_PASSKEY, "20160216165628"), password);
    }

    #[test]
    fn timestamps_have_fourteen_digits() {
        let ts = nairobi_timestamp();
        assert_eq!(ts.len(), 14);
        assert!(ts.chars().all(|c| c.is_ascii_digit()));
        assert!(stk::valid_timestamp(&ts));
    }
}
