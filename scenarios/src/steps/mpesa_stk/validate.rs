//! What the loader checks in an `mpesa_stk:` step: its own limits first (as before the rails),
//! then everything a payment step checks, with the fields named as this step writes them.

use super::{HARD_AMOUNT_CAP, StkStep};
use crate::steps::{FieldError, LoadCx, StepKind};

pub(super) fn validate(k: &StkStep, cx: &LoadCx<'_>) -> Result<(), FieldError> {
    if k.max_amount > HARD_AMOUNT_CAP {
        return Err((
            "max_amount".into(),
            format!("{} KES is above the hard cap of {HARD_AMOUNT_CAP} KES for probes", k.max_amount),
        ));
    }
    if k.amount == 0 || k.amount > k.max_amount {
        return Err((
            "amount".into(),
            format!("{} KES must be between 1 and max_amount ({} KES)", k.amount, k.max_amount),
        ));
    }
    if k.success_codes.is_empty() {
        return Err(("success_codes".into(), "list at least one ResultCode".into()));
    }
    if k.account_reference.len() > 12 || k.description.is_empty() || k.description.len() > 13 {
        return Err((
            "account_reference".into(),
            "account_reference is at most 12 characters, description 1 to 13".into(),
        ));
    }
    if k.account_reference.is_empty() {
        return Err(("account_reference".into(), "1 to 12 characters".into()));
    }
    k.to_payment().validate(cx).map_err(|(f, m)| (own_field(&f), m))
}

/// A payment step's field as this step names it (`rail.mpesa-ke.passkey` is `passkey`, `payer`
/// is `phone`).
pub(super) fn own_field(f: &str) -> String {
    if let Some(rest) = f.strip_prefix("rail.mpesa-ke.") {
        return rest.to_owned();
    }
    match f {
        "payer" => "phone".into(),
        "reference" => "account_reference".into(),
        "success" => "success_codes".into(),
        "expected" => "expected_codes".into(),
        other => other.replace("payment.", "mpesa_stk."),
    }
}
