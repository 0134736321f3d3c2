//! `http`: one request (or a poll until the assertions hold), assertions, phases.
//!
//! - `model.rs`: [`HttpStep`] as a journey file writes it;
//! - `validate.rs`: the load-time checks, its templates and its plain-text credentials;
//! - `run.rs`: the request, the assertions ([`check`]), polling.

mod model;
mod run;
#[cfg(test)]
mod tests;
mod validate;

use std::{collections::BTreeMap, time::Duration};

pub use self::{
    model::{HttpAssert, HttpStep, Poll, StatusSet},
    run::check,
};
use super::{Ctx, Done, FieldError, LoadCx, Recorder, StepKind};
use crate::{journey::DEFAULT_STEP_TIMEOUT, outcome::Failure, polite::Use};

impl StepKind for HttpStep {
    const NAME: &'static str = "http";

    fn validate(&self, _cx: &LoadCx<'_>) -> Result<(), FieldError> {
        validate::validate(self)
    }

    fn default_timeout(&self) -> Duration {
        DEFAULT_STEP_TIMEOUT
    }

    fn templates(&self) -> Vec<(String, String)> {
        validate::templates(self)
    }

    fn plain_credentials(&self, variables: &BTreeMap<String, String>) -> Vec<(String, &'static str)> {
        validate::plain_credentials(self, variables)
    }

    fn uses(&self) -> Vec<Use> {
        vec![Use::Host { field: "url".into(), url: self.url.clone(), requests: 1 }]
    }

    async fn run(&self, ctx: &mut Ctx<'_>, rec: &mut Recorder) -> Result<Done, Failure> {
        run::run(self, ctx, rec).await
    }
}
