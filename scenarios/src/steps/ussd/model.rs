//! The `ussd:` step as a journey file writes it.

use std::time::Duration;

use serde::Deserialize;

use crate::{
    journey::{Dur, Matcher},
    modem::codec::Charset,
    ussd::DialectName,
};

/// A USSD dialogue, played as the gateway against the app's callback URL, or dialled from a SIM
/// through a modem (`via: modem`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UssdStep {
    /// The USSD application's callback URL: required for `via: gateway`, refused for `via: modem`
    /// (empty when absent).
    #[serde(default)]
    pub url: String,
    /// `gateway` (default): play the gateway against `url`; `modem`: dial through `modem`.
    #[serde(default)]
    pub via: Via,
    /// The modem to dial through (`via: modem` only).
    pub modem: Option<ModemConfig>,
    /// `africastalking` (default), `hubtel`, `nalo` or `truroute`.
    #[serde(default)]
    pub dialect: DialectName,
    /// The service's code, e.g. `*384*7#`.
    pub service_code: String,
    /// What the subscriber dials, when it is not the bare code: a direct dial that carries the
    /// first inputs after the code (`*384*7*1#`). The first dialogue entry is then the screen
    /// those inputs lead to.
    pub dial: Option<String>,
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

/// How a `ussd` step reaches the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    #[default]
    Gateway,
    Modem,
}

/// A modem's AT port, as a journey file writes it (docs/protocols/modem.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModemConfig {
    /// A device path (`/dev/ttyUSB2`) or `tcp://host:port` (a networked serial server); templated.
    pub port: String,
    /// Serial speed (ignored over tcp); default 115200.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// The SIM PIN, entered when the SIM asks; write it as `{{ secrets.NAME }}`.
    pub pin: Option<String>,
    /// How the modem shows USSD strings: `gsm` (default), `ira`, `ucs2`, or `packed` (7-bit
    /// packed as hex, many Huawei/Qualcomm modems).
    #[serde(default)]
    pub charset: Charset,
    /// How long to wait for the modem while another journey uses it; default 30 s.
    pub queue_wait: Option<Dur>,
}

fn default_baud() -> u32 {
    115_200
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
