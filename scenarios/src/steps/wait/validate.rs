//! What the loader checks in a `wait:` step.

use std::time::Duration;

use super::WaitStep;
use crate::steps::FieldError;

/// The longest the step may wait; an error when it is neither `fixed` nor `min` ≤ `max`.
pub(super) fn longest(w: &WaitStep) -> Result<Duration, FieldError> {
    match (w.fixed, w.min, w.max) {
        (Some(f), None, None) => Ok(f.get()),
        (None, Some(a), Some(b)) if a <= b => Ok(b.get()),
        (None, Some(_), Some(_)) => Err(("min".into(), "min must not exceed max".into())),
        _ => Err(("".into(), "give either `fixed`, or both `min` and `max`".into())),
    }
}
