//! `payment`: a collection from a payer's mobile wallet, through one rail (M-Pesa Kenya, MTN
//! MoMo, Airtel Money, Vodacom M-Pesa Tanzania), and its result.
//!
//! - `model.rs`: [`PaymentStep`] and how its result arrives, as a journey file writes them;
//! - `validate.rs`: money safety, the payer, the result mode, the rail's own fields;
//! - `run.rs`: the one state machine every rail runs through.
//!
//! The rails themselves (protocols, code tables, token caches, the callback listener) are
//! [`crate::rails`]. `mpesa_stk:` steps load into this step with the `mpesa-ke` rail.

mod model;
pub(crate) mod run;
#[cfg(test)]
mod tests;
mod validate;

use std::{collections::BTreeMap, time::Duration};

pub use self::model::{CallbackResult, Code, Empty, Mode, PaymentStep, PollResult, RelayResult, ResultMode};
use super::{Ctx, Done, FieldError, LoadCx, Recorder, StepKind};
use crate::{outcome::Failure, polite::Use};

impl StepKind for PaymentStep {
    const NAME: &'static str = "payment";

    fn validate(&self, cx: &LoadCx<'_>) -> Result<(), FieldError> {
        validate::validate(self, cx.msisdn_pool)
    }

    fn default_timeout(&self) -> Duration {
        self.rail.default_timeout()
    }

    fn templates(&self) -> Vec<(String, String)> {
        validate::templates(self)
    }

    fn plain_credentials(&self, _variables: &BTreeMap<String, String>) -> Vec<(String, &'static str)> {
        validate::plain_credentials(self)
    }

    /// The request to the rail (tokens are cached), and one request to the payer's number (a pool
    /// spreads its requests, so it is not counted).
    fn uses(&self) -> Vec<Use> {
        let field = format!("rail.{}.base_url", self.rail.name());
        let mut uses = vec![Use::Host { field, url: self.rail.base_url().to_owned(), requests: 1 }];
        if self.payer != "pool" {
            uses.push(Use::Msisdn { field: "payer".into(), phone: self.payer.clone() });
        }
        uses
    }

    async fn run(&self, ctx: &mut Ctx<'_>, rec: &mut Recorder) -> Result<Done, Failure> {
        run::run(self, ctx, rec).await
    }
}
