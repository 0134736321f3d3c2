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
    /// `africastalking` (default), `hubtel`, `nalo` or `truroute`.
    #[serde(default)]
    pub dialect: DialectName,
    /// What the subscriber dials, e.g. `*384*7#`, or a direct dial such as `*384*7*1#`.
    pub service_code: String,
    /// The subscriber's number (E.164, e.g. +254700000100).
    pub phone: String,
    /// MCC+MNC of the subscriber's network (Africa's Talking `networkCode`, Hubtel `Operator`,
    /// Nalo `NETWORK`); default: one the dialect's gateway serves (63902 Safaricom, 62001 MTN
    /// Ghana, 65001 TNM).
    pub network_code: Option<String>,
    /// Africa's Talking end-of-session notification URL (optional).
    pub events_url: Option<String>,
    /// Deadline for the app to answer one hop (the gateway's is 15 s).
    pub hop_timeout: Option<Dur>,
    /// Limit for the whole session (the networks' is 180 s).
    pub session_timeout: Option<Dur>,
    /// Screens and inputs: the first entry is the answer to the dial itself.
    pub dialogue: Vec<UssdTurn>,
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
