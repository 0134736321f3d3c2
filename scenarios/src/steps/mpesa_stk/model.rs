//! The `mpesa_stk:` step as a journey file writes it.

use serde::Deserialize;

pub use crate::steps::payment::ResultMode as StkResult;

/// The most a probe may ever move in one payment, whatever the journey says (KES): the KES hard
/// cap of every payment step.
pub const HARD_AMOUNT_CAP: u64 = 100;

/// A Daraja STK push (M-Pesa Express), and its result: the `payment` step on the `mpesa-ke` rail,
/// as journeys wrote it before the rails.
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
    /// How the result arrives: `callback` (default), `relay` or `poll`.
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

