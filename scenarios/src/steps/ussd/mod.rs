//! `ussd`: play the gateway against a USSD application's callback URL.
//!
//! - `model.rs`: [`UssdStep`] and its dialogue as a journey file writes them;
//! - `validate.rs`: the load-time checks and its templates;
//! - `run.rs`: the session, hop by hop, in the step's [`crate::ussd::Dialect`];
//! - `modem.rs`: the same dialogue dialled from a SIM through a modem (`via: modem`).
//!
//! Gateway dialects are not step kinds: they register in one line in `crate::ussd::dialects`.

mod model;
pub(crate) mod modem;
mod run;
#[cfg(test)]
mod tests;
mod validate;

use std::time::Duration;

pub use self::model::{ModemConfig, USSD_HOP_TIMEOUT, USSD_SESSION_TIMEOUT, UssdStep, UssdTurn, Via};
use super::{Ctx, Done, FieldError, LoadCx, Recorder, StepKind};
use crate::{outcome::Failure, polite::Use};

impl StepKind for UssdStep {
    const NAME: &'static str = "ussd";

    fn validate(&self, _cx: &LoadCx<'_>) -> Result<(), FieldError> {
        validate::validate(self)
    }

    /// The session's limit and 5 s to release it (and, through a modem, its queue wait).
    fn default_timeout(&self) -> Duration {
        let session = self.session_timeout.map_or(USSD_SESSION_TIMEOUT, |d| d.get()) + Duration::from_secs(5);
        match (&self.via, &self.modem) {
            (Via::Modem, Some(m)) => session + m.queue_wait.map_or(crate::modem::pool::QUEUE_WAIT, |d| d.get()),
            _ => session,
        }
    }

    fn templates(&self) -> Vec<(String, String)> {
        validate::templates(self)
    }

    /// A hop per dialogue entry to the app, and one session to the subscriber's number.
    fn uses(&self) -> Vec<Use> {
        let hops = u32::try_from(self.dialogue.len()).unwrap_or(u32::MAX);
        if self.via == Via::Modem {
            return vec![Use::Msisdn { field: "phone".into(), phone: self.phone.clone() }];
        }
        vec![
            Use::Host { field: "url".into(), url: self.url.clone(), requests: hops },
            Use::Msisdn { field: "phone".into(), phone: self.phone.clone() },
        ]
    }

    async fn run(&self, ctx: &mut Ctx<'_>, rec: &mut Recorder) -> Result<Done, Failure> {
        run::run(self, ctx, rec).await
    }
}
