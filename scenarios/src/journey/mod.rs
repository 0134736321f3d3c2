//! Journey files: what a user does, step by step.
//!
//! A journey is YAML (see `scenarios/*.yaml`): a name, labels, a default network profile,
//! variables, secrets by reference, an optional MSISDN pool, politeness caps, and ordered steps.
//! Each step has a name, a timeout and exactly one kind: `http`, `ussd`, `payment`, `mpesa_stk`, `wait` or `sms`
//! (each a folder under [`crate::steps`], where their models live). Strings may hold
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
pub use load::{LoadError, is_msisdn, load_file, parse_journey};
pub use matcher::{JsonCheck, Matcher, Path as JsonPath};
pub use secrets::{Secret, SecretRef, Secrets};
use serde::Deserialize;

use crate::{polite::Politeness, steps::Kind};

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
    /// The file set `timeout:`; otherwise it is the sum of the steps' timeouts, and a step that
    /// runs out of time is told by its own.
    pub timeout_given: bool,
    pub variables: BTreeMap<String, String>,
    pub secrets: Secrets,
    /// Test phone numbers that payment steps may use (one push in flight per number).
    pub msisdn_pool: Vec<String>,
    /// Rate caps per target host and per MSISDN (docs/configuration.md §6).
    pub politeness: Politeness,
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
    pub kind: Kind,
    /// Values taken from the step's final response into variables for later steps.
    pub extract: BTreeMap<String, Extract>,
    /// 1-based line of the step in its file, for messages.
    pub line: usize,
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
    /// Extract only when the step's result came from one of these (default: any). A payment's
    /// receipt is in Daraja's callback (`callback`, `relay`) but not in an STK Query answer
    /// (`poll`); `response` is an ordinary HTTP response.
    #[serde(default)]
    pub only_from: Option<Vec<ResultSource>>,
}

/// Where a step's final document came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultSource {
    /// The step's own last HTTP response (or USSD screen).
    #[default]
    Response,
    /// A provider's callback on the step's own listener.
    Callback,
    /// A callback fetched from the aggregator's relay.
    Relay,
    /// A status query's answer (polling).
    Poll,
}
