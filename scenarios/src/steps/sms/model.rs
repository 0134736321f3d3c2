//! The `sms:` step as a journey file writes it.

use serde::Deserialize;

use crate::{
    journey::{Dur, Matcher},
    steps::ussd::ModemConfig,
};

/// Waits for a text message on a modem.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsStep {
    /// The modem whose SIM receives the message (as a `ussd` step's `modem:`).
    pub modem: ModemConfig,
    /// The sender (an alphanumeric name such as `MPESA`, or a number), matched as written.
    pub from: Option<Matcher>,
    /// The message's text.
    pub text: Option<Matcher>,
    /// How long to wait for it; default 60 s.
    pub within: Option<Dur>,
    /// How the modem hands messages over: `pdu` (default, what every modem supports) or `text`.
    #[serde(default)]
    pub mode: SmsMode,
}

/// `AT+CMGF`: 0 PDU, 1 text (3GPP TS 27.005 §3.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsMode {
    #[default]
    Pdu,
    Text,
}
