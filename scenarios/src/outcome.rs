//! The outcome taxonomy shared by prober, aggregator and metrics (docs/outcomes.md).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a step (or a journey) ended. Everything but `Ok` and `Expected` is a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// The service answered, but not what the journey expects.
    AssertionFailed,
    /// A deadline passed (step, hop, session, journey).
    Timeout,
    /// DNS, connect, reset, or a broken emulated link.
    NetworkError,
    /// The TLS handshake failed (certificate, protocol).
    TlsError,
    /// The gateway or server failed: HTTP 5xx, a malformed USSD reply, a Daraja system error.
    GatewayError,
    /// The service worked and said no: M-Pesa ResultCode 1 (insufficient funds), 2001, ...
    BusinessError,
    /// An outcome the journey declared acceptable (e.g. 1037 with no human at the phone).
    Expected,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Ok,
        Outcome::AssertionFailed,
        Outcome::Timeout,
        Outcome::NetworkError,
        Outcome::TlsError,
        Outcome::GatewayError,
        Outcome::BusinessError,
        Outcome::Expected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::AssertionFailed => "assertion_failed",
            Outcome::Timeout => "timeout",
            Outcome::NetworkError => "network_error",
            Outcome::TlsError => "tls_error",
            Outcome::GatewayError => "gateway_error",
            Outcome::BusinessError => "business_error",
            Outcome::Expected => "expected",
        }
    }

    /// Whether the run counts as good for availability.
    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Ok | Outcome::Expected)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed step: what went wrong, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub outcome: Outcome,
    pub message: String,
}

impl Failure {
    pub fn new(outcome: Outcome, message: impl Into<String>) -> Failure {
        Failure { outcome, message: message.into() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.outcome, self.message)
    }
}
