//! Journey files: what a user does, step by step.
//!
//! A journey is YAML (see `scenarios/*.yaml`): a name, labels, a default network profile,
//! variables, secrets by reference, an optional MSISDN pool, and ordered steps. Each step has a
//! name, a timeout and exactly one kind: `http`, `ussd`, `mpesa_stk` or `wait`. Strings may hold
//! `{{ var }}` templates, rendered when the step runs. [`load_file`] checks everything it can
//! before anything is sent: unknown keys, impossible values, unknown variables, money limits.

pub mod credentials;
mod load;
mod matcher;
mod secrets;
pub mod template;

use std::{collections::BTreeMap, time::Duration};

/// A duration in a journey file (the `conf` grammar: `250ms`, `15s`, `2m`, `1h30m`), at most 24 h.
pub type Dur = conf::Dur<0, 86_400_000>;
pub use load::{HARD_AMOUNT_CAP, LoadError, is_msisdn, load_file, parse_journey};
pub use matcher::{JsonCheck, Matcher, Path as JsonPath};
pub use secrets::{Secret, SecretRef, Secrets};
use serde::Deserialize;

/// A loaded, validated journey.
#[derive(Debug, Clone)]
pub struct Journey {
    pub name: String,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    /// Network profile used unless the caller picks one.
    pub profile: Option<String>,
    /// Limit for the whole journey.
    pub timeout: Duration,
    pub variables: BTreeMap<String, String>,
    pub secrets: Secrets,
    /// Test phone numbers that payment steps may use (one push in flight per number).
    pub msisdn_pool: Vec<String>,
    pub steps: Vec<Step>,
    /// Where it was loaded from, for messages.
    pub source: String,
}

/// Default limit for a whole journey.
pub const DEFAULT_JOURNEY_TIMEOUT: Duration = Duration::from_secs(120);
/// Default limit for one step.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// One step of a journey.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub timeout: Duration,
    pub kind: StepKind,
    /// Values taken from the step's final response into variables for later steps.
    pub extract: BTreeMap<String, Extract>,
    /// 1-based line of the step in its file, for messages.
    pub line: usize,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Http(Box<HttpStep>),
    Ussd(Box<UssdStep>),
    MpesaStk(Box<StkStep>),
    Wait(WaitStep),
}

impl StepKind {
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Http(_) => "http",
            StepKind::Ussd(_) => "ussd",
            StepKind::MpesaStk(_) => "mpesa_stk",
            StepKind::Wait(_) => "wait",
        }
    }
}

// === http ===

/// An HTTP request, its assertions, and optional polling until the assertions hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpStep {
    /// GET, POST, PUT, PATCH, DELETE, HEAD. Default GET.
    #[serde(default = "default_method")]
    pub method: String,
    /// URL template, e.g. `{{ shop }}/api/orders/{{ order_id }}`.
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body; every string inside may hold templates.
    pub json: Option<serde_json::Value>,
    /// Form body (`application/x-www-form-urlencoded`).
    pub form: Option<BTreeMap<String, String>>,
    /// Raw body.
    pub body: Option<String>,
    /// What the response must look like.
    #[serde(default, rename = "assert")]
    pub assertions: HttpAssert,
    /// Repeat the request until the assertions hold (or the step times out).
    pub poll: Option<Poll>,
}

fn default_method() -> String {
    "GET".to_owned()
}

/// Assertions on an HTTP response. With none given, the status must be 2xx.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAssert {
    /// Allowed status codes (one or a list).
    pub status: Option<StatusSet>,
    /// Header name → matcher.
    #[serde(default)]
    pub headers: BTreeMap<String, Matcher>,
    /// Matcher on the body text.
    pub body: Option<Matcher>,
    /// Checks on JSON paths of the body.
    #[serde(default)]
    pub json: Vec<JsonCheck>,
}

/// One status or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StatusSet {
    One(u16),
    Many(Vec<u16>),
}

impl StatusSet {
    pub fn contains(&self, s: u16) -> bool {
        match self {
            StatusSet::One(x) => *x == s,
            StatusSet::Many(v) => v.contains(&s),
        }
    }
}

impl std::fmt::Display for StatusSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusSet::One(x) => write!(f, "{x}"),
            StatusSet::Many(v) => write!(f, "{}", v.iter().map(u16::to_string).collect::<Vec<_>>().join(" or ")),
        }
    }
}

/// Polling: repeat until the assertions pass, waiting `interval`, growing by `backoff` up to
/// `max_interval`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Poll {
    pub interval: Dur,
    #[serde(default = "one")]
    pub backoff: f64,
    pub max_interval: Option<Dur>,
}

fn one() -> f64 {
    1.0
}

/// Where an extracted value comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extract {
    /// A JSON path (RFC 9535) into the final response body; the first match.
    pub json: Option<String>,
    /// A regex on the final response text; the first capture group (or the whole match).
    pub regex: Option<String>,
    /// A response header.
    pub header: Option<String>,
}

// === ussd ===

/// A USSD dialogue, played as the gateway against the app's callback URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UssdStep {
    /// The USSD application's callback URL.
    pub url: String,
    /// `africastalking` (default), `hubtel` or `nalo`.
    #[serde(default)]
    pub dialect: DialectName,
    /// The dial string, e.g. `*384*7#`.
    pub service_code: String,
    /// The subscriber's number (E.164, e.g. +254700000100).
    pub phone: String,
    /// MCC+MNC of the network (AT `networkCode`); default 63902 (Safaricom).
    #[serde(default = "default_network")]
    pub network_code: String,
    /// Africa's Talking end-of-session notification URL (optional).
    pub events_url: Option<String>,
    /// Deadline for the app to answer one hop (the gateway's is 15 s).
    pub hop_timeout: Option<Dur>,
    /// Limit for the whole session (the networks' is 180 s).
    pub session_timeout: Option<Dur>,
    /// Screens and inputs: the first entry is the answer to the dial itself.
    pub dialogue: Vec<UssdTurn>,
}

fn default_network() -> String {
    "63902".to_owned()
}

/// Gateway dialects the `ussd` step speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DialectName {
    #[default]
    Africastalking,
    Hubtel,
    Nalo,
}

/// One exchange: what the user types (none for the dial) and what the screen must show.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UssdTurn {
    pub input: Option<String>,
    pub expect: Option<Matcher>,
    /// `true`: the app must end the session here (`END`); `false`: it must continue (`CON`);
    /// absent: either. An `END` before the last turn always fails the step.
    pub end: Option<bool>,
    /// Fail if this hop takes longer.
    pub max_latency: Option<Dur>,
}

/// The network's default per-hop deadline.
pub const USSD_HOP_TIMEOUT: Duration = Duration::from_secs(15);
/// The networks' session limit.
pub const USSD_SESSION_TIMEOUT: Duration = Duration::from_secs(180);

// === mpesa_stk ===

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

// === wait ===

/// Think time: fixed, or uniformly random between `min` and `max`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitStep {
    pub fixed: Option<Dur>,
    pub min: Option<Dur>,
    pub max: Option<Dur>,
}
