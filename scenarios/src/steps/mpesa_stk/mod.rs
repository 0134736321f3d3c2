//! `mpesa_stk`: a Daraja STK push (M-Pesa Express) and its result, as journeys wrote it before the
//! payment rails. It loads into a [`PaymentStep`] on the `mpesa-ke` rail and runs as one; only its
//! field names (and the trace's `kind`) are its own.
//!
//! - `model.rs`: [`StkStep`] as a journey file writes it;
//! - `validate.rs`: its own checks, then the payment step's, with the errors named by its fields.

mod model;
#[cfg(test)]
mod tests;
mod validate;

use std::{collections::BTreeMap, time::Duration};

pub use self::model::{HARD_AMOUNT_CAP, StkResult, StkStep};
use super::{
    Ctx, Done, FieldError, LoadCx, Recorder, StepKind,
    payment::{Code, PaymentStep},
};
use crate::{
    outcome::Failure,
    polite::Use,
    rails::{Currency, RailConf, mpesa_ke::Daraja},
};

impl StkStep {
    /// The payment step this one is.
    pub fn to_payment(&self) -> PaymentStep {
        let codes = |v: &[i64]| v.iter().map(|c| Code(c.to_string())).collect::<Vec<_>>();
        PaymentStep {
            rail: RailConf::MpesaKe(Box::new(Daraja {
                base_url: self.base_url.clone(),
                consumer_key: self.consumer_key.clone(),
                consumer_secret: self.consumer_secret.clone(),
                shortcode: self.shortcode.clone(),
                passkey: self.passkey.clone(),
                transaction_type: self.transaction_type.clone(),
                party_b: self.party_b.clone(),
            })),
            amount: self.amount,
            currency: Currency::Kes,
            max_amount: Some(self.max_amount),
            // `max_amount` was allowed up to the hard cap before the default caps existed.
            above_default_cap: true,
            payer: self.phone.clone(),
            reference: self.account_reference.clone(),
            description: self.description.clone(),
            result: self.result.clone(),
            success: Some(codes(&self.success_codes)),
            expected: codes(&self.expected_codes),
        }
    }
}

impl StepKind for StkStep {
    const NAME: &'static str = "mpesa_stk";

    fn validate(&self, cx: &LoadCx<'_>) -> Result<(), FieldError> {
        validate::validate(self, cx)
    }

    /// Long enough for Daraja's 1037 (no answer at the phone) after about 60 s.
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(120)
    }

    fn templates(&self) -> Vec<(String, String)> {
        self.to_payment().templates().into_iter().map(|(f, v)| (validate::own_field(&f), v)).collect()
    }

    fn plain_credentials(&self, variables: &BTreeMap<String, String>) -> Vec<(String, &'static str)> {
        let p = self.to_payment();
        p.plain_credentials(variables).into_iter().map(|(f, why)| (validate::own_field(&f), why)).collect()
    }

    fn uses(&self) -> Vec<Use> {
        self.to_payment()
            .uses()
            .into_iter()
            .map(|u| match u {
                Use::Host { field, url, requests } => Use::Host { field: validate::own_field(&field), url, requests },
                Use::Msisdn { field, phone } => Use::Msisdn { field: validate::own_field(&field), phone },
            })
            .collect()
    }

    async fn run(&self, ctx: &mut Ctx<'_>, rec: &mut Recorder) -> Result<Done, Failure> {
        super::payment::run::run(&self.to_payment(), ctx, rec).await
    }
}
