//! `wait`: think time, fixed or uniformly random.
//!
//! - `model.rs`: [`WaitStep`];
//! - `validate.rs`: `fixed`, or `min` ≤ `max`;
//! - `run.rs`: the sleep (on tokio's clock, so paused-clock tests take no time).

mod model;
mod run;
#[cfg(test)]
mod tests;
mod validate;

use std::time::Duration;

pub use self::model::WaitStep;
use super::{Ctx, Done, FieldError, LoadCx, Recorder, StepKind};
use crate::outcome::Failure;

impl StepKind for WaitStep {
    const NAME: &'static str = "wait";

    fn validate(&self, _cx: &LoadCx<'_>) -> Result<(), FieldError> {
        validate::longest(self).map(|_| ())
    }

    /// The longest wait and a second.
    fn default_timeout(&self) -> Duration {
        validate::longest(self).unwrap_or_default() + Duration::from_secs(1)
    }

    fn templates(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    async fn run(&self, ctx: &mut Ctx<'_>, _rec: &mut Recorder) -> Result<Done, Failure> {
        run::run(self, ctx).await
    }
}
