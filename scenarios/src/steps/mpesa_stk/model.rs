//! The `mpesa_stk:` step as a journey file writes it.

use serde::Deserialize;

use crate::journey::Dur;

/// The most a probe may ever move in one payment, whatever the journey says (KES).
pub const HARD_AMOUNT_CAP: u64 = 100;

/// A Daraja STK push (M-Pesa Express), and its result.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StkStep {
    /// Daraja base URL (the sandbox, `https://sandbox.safaricom.co.ke`, or production).
    pub base_url: String,
    pub consumer_key: String,
    pub consumer_secret: String,
    pub shortcode: String,
    pub passkey: String,
    /// Payer: a number, or `pool` to take a free one from the journey's `msisdn_pool`.
    pub phone: String,
    /// Whole KES.
    pub amount: u64,
    /// Refuse to run above this amount (money safety); default 10.
    #[serde(default = "default_max_amount")]
    pub max_amount: u64,
    /// `CustomerPayBillOnline` (default) or `CustomerBuyGoodsOnline`.
    #[serde(default = "default_tx_type")]
    pub transaction_type: String,
    /// PartyB; default the shortcode.
    pub party_b: Option<String>,
    #[serde(default = "default_account_ref")]
    pub account_reference: String,
    #[serde(default = "default_desc")]
    pub description: String,
    /// How the result arrives.
    #[serde(default)]
    pub result: StkResult,
    /// ResultCodes that count as success; default `[0]`.
    #[serde(default = "default_success")]
    pub success_codes: Vec<i64>,
    /// ResultCodes the journey accepts as a known outcome (e.g. 1037 with no human at the phone).
    #[serde(default)]
    pub expected_codes: Vec<i64>,
}

fn default_max_amount() -> u64 {
    10
}
fn default_tx_type() -> String {
    "CustomerPayBillOnline".to_owned()
}
fn default_account_ref() -> String {
    "SavannaPulse".to_owned()
}
fn default_desc() -> String {
    "Probe".to_owned()
}
fn default_success() -> Vec<i64> {
    vec![0]
}

/// How an STK result is obtained: exactly one of `callback`, `relay` or `poll` (default: a
/// callback listener on 127.0.0.1).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StkResult {
    /// An HTTP listener the player owns receives Daraja's callback.
    pub callback: Option<CallbackResult>,
    /// A relay (the aggregator) receives callbacks; the player fetches them from
    /// `{url}/stk/{CheckoutRequestID}`.
    pub relay: Option<RelayResult>,
    /// STK Query polling with backoff.
    pub poll: Option<PollResult>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackResult {
    /// Address to listen on; default 127.0.0.1:0.
    pub listen: Option<String>,
    /// The URL Daraja should call, when the listener is behind NAT or a proxy.
    pub public_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayResult {
    pub url: String,
    /// The prober's report token, sent as `Authorization: Bearer` when fetching a callback (the
    /// aggregator's relay refuses anyone else: a callback names the payer's phone). A template,
    /// normally `"{{ secrets.relay_token }}"` with the secret given by reference.
    pub token: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollResult {
    /// First wait before querying; default 2 s.
    pub interval: Option<Dur>,
    /// Longest wait between queries (the interval doubles up to it); default 10 s.
    pub max_interval: Option<Dur>,
}

/// The chosen way of getting an STK result.
#[derive(Debug, Clone)]
pub enum StkResultMode<'a> {
    Callback(&'a CallbackResult),
    Relay(&'a RelayResult),
    Poll(&'a PollResult),
}

impl StkResult {
    /// The mode; `None` when more than one is given.
    pub fn mode(&self) -> Option<StkResultMode<'_>> {
        static DEFAULT: CallbackResult = CallbackResult { listen: None, public_url: None };
        match (&self.callback, &self.relay, &self.poll) {
            (None, None, None) => Some(StkResultMode::Callback(&DEFAULT)),
            (Some(c), None, None) => Some(StkResultMode::Callback(c)),
            (None, Some(r), None) => Some(StkResultMode::Relay(r)),
            (None, None, Some(p)) => Some(StkResultMode::Poll(p)),
            _ => None,
        }
    }
}
