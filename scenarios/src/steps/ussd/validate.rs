//! What the loader checks in a `ussd:` step.

use super::{UssdStep, UssdTurn};
use crate::{steps::FieldError, ussd::dialect};

pub(super) fn validate(u: &UssdStep) -> Result<(), FieldError> {
    let Some(first) = u.dialogue.first() else {
        return Err(("dialogue".into(), "needs at least the first screen".into()));
    };
    if first.input.is_some() {
        return Err(("dialogue".into(), "the first entry is the answer to the dial, so it takes no input".into()));
    }
    if let Some(i) = u.dialogue.iter().skip(1).position(|t: &UssdTurn| t.input.is_none()) {
        return Err((format!("dialogue[{}]", i + 1), "every entry after the first needs an input".into()));
    }
    if let Some(code) = &u.network_code
        && let Err(why) = dialect(u.dialect).check_network(code)
    {
        return Err(("network_code".into(), why));
    }
    if u.hop_timeout.is_some_and(|d| d.get().is_zero()) || u.session_timeout.is_some_and(|d| d.get().is_zero()) {
        return Err(("hop_timeout".into(), "timeouts must be above 0".into()));
    }
    Ok(())
}

pub(super) fn templates(u: &UssdStep) -> Vec<(String, String)> {
    let mut t = vec![
        ("url".to_owned(), u.url.clone()),
        ("service_code".to_owned(), u.service_code.clone()),
        ("phone".to_owned(), u.phone.clone()),
    ];
    t.extend(u.events_url.iter().map(|e| ("events_url".to_owned(), e.clone())));
    t.extend(
        u.dialogue.iter().enumerate().filter_map(|(j, d)| Some((format!("dialogue[{j}].input"), d.input.clone()?))),
    );
    t
}
