//! `sms`: wait for a text message on the edge's modem, as the subscriber's phone receives it (a
//! one-time password, an M-Pesa confirmation), within a deadline.
//!
//! - `model.rs`: [`SmsStep`] as a journey file writes it;
//! - `run.rs`: the wait: `AT+CMGF` (text or PDU mode), `AT+CNMI` for `+CMTI` notices, the unread
//!   messages read with `AT+CMGL`/`AT+CMGR`, the match deleted with `AT+CMGD`
//!   (3GPP TS 27.005 §3.4, §3.5; docs/protocols/modem.md).
//!
//! The matched message's text is the step's result, so the step's `extract:` takes an OTP or a
//! receipt from it.

mod model;
mod run;

use std::time::Duration;

pub use self::model::{SmsMode, SmsStep};
use super::{Ctx, Done, FieldError, LoadCx, Recorder, StepKind};
use crate::{modem::pool::QUEUE_WAIT, outcome::Failure};

/// How long an `sms` step waits when it says nothing.
pub const SMS_WITHIN: Duration = Duration::from_secs(60);

impl StepKind for SmsStep {
    const NAME: &'static str = "sms";

    fn validate(&self, _cx: &LoadCx<'_>) -> Result<(), FieldError> {
        if self.modem.port.trim().is_empty() {
            return Err(("modem.port".into(), "needs a device path (/dev/ttyUSB2) or tcp://host:port".into()));
        }
        if self.within.is_some_and(|d| d.get().is_zero()) {
            return Err(("within".into(), "must be above 0".into()));
        }
        if self.from.is_none() && self.text.is_none() {
            return Err(("from".into(), "say which message to wait for: `from:` (the sender), `text:`, or both".into()));
        }
        Ok(())
    }

    /// The wait, the modem's queue and 5 s to read and delete.
    fn default_timeout(&self) -> Duration {
        self.within.map_or(SMS_WITHIN, |d| d.get())
            + self.modem.queue_wait.map_or(QUEUE_WAIT, |d| d.get())
            + Duration::from_secs(5)
    }

    fn templates(&self) -> Vec<(String, String)> {
        let mut t = vec![("modem.port".to_owned(), self.modem.port.clone())];
        t.extend(self.modem.pin.iter().map(|p| ("modem.pin".to_owned(), p.clone())));
        t
    }

    async fn run(&self, ctx: &mut Ctx<'_>, rec: &mut Recorder) -> Result<Done, Failure> {
        run::run(self, ctx, rec).await
    }
}
