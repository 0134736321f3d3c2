//! The `wait:` step as a journey file writes it.

use serde::Deserialize;

use crate::journey::Dur;

/// Think time: fixed, or uniformly random between `min` and `max`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitStep {
    pub fixed: Option<Dur>,
    pub min: Option<Dur>,
    pub max: Option<Dur>,
}
