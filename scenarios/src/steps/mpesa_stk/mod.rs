//! `mpesa_stk`: a Daraja STK push (M-Pesa Express) and its result.
//!
//! - `model.rs`: [`StkStep`] and how its result arrives, as a journey file writes them;
//! - `validate.rs`: money safety and the other load-time checks, templates, plain credentials;
//! - `run.rs`: OAuth, the push, the result by callback, relay or STK Query.
//!
//! The Daraja protocol itself (codes, parsers, token cache, callback listener) is
//! [`crate::daraja`]; the payment rails to come (MTN MoMo, Airtel, Vodacom) are step kinds of their
//! own, next to this one.

mod model;
mod run;
#[cfg(test)]
mod tests;
mod validate;

use std::{collections::BTreeMap, time::Duration};

pub use self::model::{
    CallbackResult, HARD_AMOUNT_CAP, PollResult, RelayResult, StkResult, StkResultMode, StkStep,
};
use super::{Ctx, Done, FieldError, LoadCx, Recorder, StepKind};
use crate::{outcome::Failure, polite::Use};

impl StepKind for StkStep {
    const NAME: &'static str = "mpesa_stk";

    fn validate(&self, cx: &LoadCx<'_>) -> Result<(), FieldError> {
        validate::validate(self, !cx.msisdn_pool.is_empty())
    }

    /// Long enough for Daraja's 1037 (no answer at the phone) after about 60 s.
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(120)
    }

    fn templates(&self) -> Vec<(String, String)> {
        validate::templates(self)
    }

    fn plain_credentials(&self, _variables: &BTreeMap<String, String>) -> Vec<(String, &'static str)> {
        validate::plain_credentials(self)
    }

    /// The push to Daraja (OAuth is cached), and one push to the payer's number (a pool spreads
    /// its pushes, so it is not counted).
    fn uses(&self) -> Vec<Use> {
        let mut uses = vec![Use::Host { field: "base_url".into(), url: self.base_url.clone(), requests: 1 }];
        if self.phone != "pool" {
            uses.push(Use::Msisdn { field: "phone".into(), phone: self.phone.clone() });
        }
        uses
    }

    async fn run(&self, ctx: &mut Ctx<'_>, rec: &mut Recorder) -> Result<Done, Failure> {
        run::run(self, ctx, rec).await
    }
}
