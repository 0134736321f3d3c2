//! What a run returns: per step, when it started, how long it took, where the time went, how it
//! ended, and masked excerpts of what was said.

use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::outcome::{Failure, Outcome};

/// Time spent in each phase of the HTTP exchanges of a step (summed over its requests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Phases {
    #[serde(serialize_with = "ms")]
    pub dns: Duration,
    #[serde(serialize_with = "ms")]
    pub connect: Duration,
    #[serde(serialize_with = "ms")]
    pub tls: Duration,
    /// Request sent → first byte of the response head.
    #[serde(serialize_with = "ms")]
    pub ttfb: Duration,
    /// First byte → last byte of the body.
    #[serde(serialize_with = "ms")]
    pub transfer: Duration,
}

impl Phases {
    pub fn add(&mut self, o: &Phases) {
        self.dns += o.dns;
        self.connect += o.connect;
        self.tls += o.tls;
        self.ttfb += o.ttfb;
        self.transfer += o.transfer;
    }
}

/// One request/response of a step: masked whole, then cut to [`EXCERPT_LIMIT`] characters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Excerpt {
    /// e.g. `POST /ussd/at` or `hop 2`.
    pub label: String,
    pub status: Option<u16>,
    pub request: String,
    pub response: String,
    #[serde(serialize_with = "ms")]
    pub duration: Duration,
}

/// One step of a run.
#[derive(Debug, Clone, Serialize)]
pub struct StepTrace {
    pub name: String,
    pub kind: &'static str,
    /// Since the journey started.
    #[serde(serialize_with = "ms")]
    pub start_offset: Duration,
    #[serde(serialize_with = "ms")]
    pub duration: Duration,
    pub phases: Phases,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    pub excerpts: Vec<Excerpt>,
    /// Time the step waited for the politeness caps (docs/configuration.md §6); left out when none.
    #[serde(serialize_with = "ms", skip_serializing_if = "Duration::is_zero")]
    pub throttled: Duration,
    /// The payment rail of a payment step (`mpesa-ke`, `momo`, …); left out for other steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rail: Option<&'static str>,
    /// The provider's code a payment ended with, label-safe (`1037`, `APPROVAL_REJECTED`,
    /// `INS-9`, or `unknown`); left out when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What a step that ended well says about its end, in words (a payment's provider code and
    /// its meaning); masked. A failed step says it in `failure` instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    pub journey: String,
    pub profile: String,
    pub seed: u64,
    pub run_id: String,
    /// UTC, RFC 3339.
    pub started_at: String,
    #[serde(serialize_with = "ms")]
    pub duration: Duration,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    pub steps: Vec<StepTrace>,
}

/// Durations serialize as milliseconds with microsecond precision.
fn ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

/// Longest excerpt kept per request or response, in characters (cut by
/// [`crate::mask::Masker::excerpt`], after masking).
pub const EXCERPT_LIMIT: usize = 600;
