//! The `payment:` step as a journey file writes it.

use serde::{Deserialize, Deserializer};

use crate::{
    journey::{Dur, ResultSource},
    rails::{Currency, RailConf},
};

/// A collection from a payer's mobile wallet, through one rail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentStep {
    /// The rail and its settings: exactly one of `mpesa-ke`, `momo`, `airtel`, `mpesa-tz`.
    pub rail: RailConf,
    /// Whole units of `currency`.
    pub amount: u64,
    pub currency: Currency,
    /// Refuse to run above this amount; default the currency's default cap (KES 10, UGX 500,
    /// TZS 500). Above the default cap only with `above_default_cap: true`.
    pub max_amount: Option<u64>,
    /// Allows a `max_amount` above the currency's default cap (never above its hard cap); every
    /// run that charges above the default cap is logged.
    #[serde(default)]
    pub above_default_cap: bool,
    /// A number, or `pool` to take a free one of the rail's country from the journey's
    /// `msisdn_pool`.
    pub payer: String,
    /// Shown to the payer and kept for reconciliation (1–12 characters).
    #[serde(default = "default_reference")]
    pub reference: String,
    /// A short text for the payer (1–13 characters).
    #[serde(default = "default_description")]
    pub description: String,
    /// How the result arrives; default the rail's first mode (a callback listener, or the answer
    /// itself on a synchronous rail).
    #[serde(default)]
    pub result: ResultMode,
    /// Provider codes that count as success; default the rail's (`0`, `SUCCESSFUL`, `TS`, `INS-0`).
    pub success: Option<Vec<Code>>,
    /// Provider codes the journey accepts as a known outcome (e.g. nobody answers a probe phone).
    #[serde(default)]
    pub expected: Vec<Code>,
}

fn default_reference() -> String {
    "SavannaPulse".to_owned()
}
fn default_description() -> String {
    "Probe".to_owned()
}

/// A provider's result code, written as a string or a number (`1037`, `APPROVAL_REJECTED`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code(pub String);

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Code, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        Ok(Code(match Raw::deserialize(d)? {
            Raw::Int(i) => i.to_string(),
            Raw::Text(s) => s.trim().to_owned(),
        }))
    }
}

/// How a payment's result is obtained: at most one of `callback`, `relay`, `poll`, `response`
/// (none: the rail's first mode).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultMode {
    /// An HTTP listener the player owns receives the provider's callback.
    pub callback: Option<CallbackResult>,
    /// A relay (the aggregator) receives callbacks; the player fetches them from
    /// `{url}/stk/{CheckoutRequestID}` (Daraja only).
    pub relay: Option<RelayResult>,
    /// Status polling with backoff.
    pub poll: Option<PollResult>,
    /// The request's own answer is the result (a synchronous rail).
    pub response: Option<Empty>,
}

/// `{}`: a mode with no settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackResult {
    /// Address to listen on; default 127.0.0.1:0.
    pub listen: Option<String>,
    /// The listener's public base URL, when it is behind NAT or a proxy; the step appends
    /// `/{rail}/{reference}`. Default: the listener's own address.
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

/// The chosen way of getting a result.
#[derive(Debug, Clone, Copy)]
pub enum Mode<'a> {
    Callback(&'a CallbackResult),
    Relay(&'a RelayResult),
    Poll(&'a PollResult),
    Response,
}

impl Mode<'_> {
    pub fn source(&self) -> ResultSource {
        match self {
            Mode::Callback(_) => ResultSource::Callback,
            Mode::Relay(_) => ResultSource::Relay,
            Mode::Poll(_) => ResultSource::Poll,
            Mode::Response => ResultSource::Response,
        }
    }
}

impl ResultMode {
    /// The mode, with `default` when none is given; `None` when more than one is given.
    pub fn mode(&self, default: ResultSource) -> Option<Mode<'_>> {
        static CALLBACK: CallbackResult = CallbackResult { listen: None, public_url: None };
        static POLL: PollResult = PollResult { interval: None, max_interval: None };
        match (&self.callback, &self.relay, &self.poll, &self.response) {
            (None, None, None, None) => match default {
                ResultSource::Callback => Some(Mode::Callback(&CALLBACK)),
                ResultSource::Poll => Some(Mode::Poll(&POLL)),
                // A relay needs its URL: no rail defaults to it.
                ResultSource::Relay | ResultSource::Response => Some(Mode::Response),
            },
            (Some(c), None, None, None) => Some(Mode::Callback(c)),
            (None, Some(r), None, None) => Some(Mode::Relay(r)),
            (None, None, Some(p), None) => Some(Mode::Poll(p)),
            (None, None, None, Some(_)) => Some(Mode::Response),
            _ => None,
        }
    }
}

/// The words a mode is written with in a journey.
pub fn mode_name(s: ResultSource) -> &'static str {
    match s {
        ResultSource::Callback => "callback",
        ResultSource::Relay => "relay",
        ResultSource::Poll => "poll",
        ResultSource::Response => "response",
    }
}
