//! The `ussd:` step as a journey file writes it.

use std::time::Duration;

use serde::Deserialize;

use crate::{
    journey::{Dur, Matcher},
    ussd::DialectName,
};

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
