//! What the loader checks in a `ussd:` step.

use super::{UssdStep, UssdTurn, Via};
use crate::{steps::FieldError, ussd::dialect};

pub(super) fn validate(u: &UssdStep) -> Result<(), FieldError> {
    via(u)?;
    let Some(first) = u.dialogue.first() else {
        return Err(("dialogue".into(), "needs at least the first screen".into()));
    };
    if first.input.is_some() {
        return Err(("dialogue".into(), "the first entry is the answer to the dial, so it takes no input".into()));
    }
    if let Some(i) = u.dialogue.iter().skip(1).position(|t: &UssdTurn| t.input.is_none()) {
        return Err((format!("dialogue[{}]", i + 1), "every entry after the first needs an input".into()));
    }
    if let Some(d) = &u.dial
        && !d.contains("{{")
        && !u.service_code.contains("{{")
        && crate::ussd::direct_inputs(&u.service_code, d).is_none()
    {
        let example = format!("{}*1#", u.service_code.trim_end_matches('#'));
        return Err(("dial".into(), format!("`{d}` is not a dial of `{}`: a direct dial is the code, then `*` and inputs, e.g. `{example}`", u.service_code)));
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

/// `via: gateway` needs `url` and no `modem`; `via: modem` the reverse.
fn via(u: &UssdStep) -> Result<(), FieldError> {
    match (u.via, &u.modem) {
        (Via::Gateway, None) if u.url.is_empty() => {
            Err(("url".into(), "needs the app's callback URL (or `via: modem` with a `modem:` block)".into()))
        }
        (Via::Gateway, Some(_)) => Err(("modem".into(), "is for `via: modem`; add `via: modem` or remove it".into())),
        (Via::Gateway, None) => Ok(()),
        (Via::Modem, None) => Err(("modem".into(), "`via: modem` needs a `modem:` block with its `port`".into())),
        (Via::Modem, Some(_)) if !u.url.is_empty() => {
            Err(("url".into(), "a modem dials the network, not a callback URL: remove `url` for `via: modem`".into()))
        }
        (Via::Modem, Some(_)) if u.events_url.is_some() => {
            Err(("events_url".into(), "is a gateway's notification: remove it for `via: modem`".into()))
        }
        (Via::Modem, Some(m)) => {
            if m.port.trim().is_empty() {
                return Err(("modem.port".into(), "needs a device path (/dev/ttyUSB2) or tcp://host:port".into()));
            }
            if !BAUDS.contains(&m.baud) {
                return Err(("modem.baud".into(), format!("{} is not a standard rate; use one of {BAUDS:?}", m.baud)));
            }
            if m.queue_wait.is_some_and(|d| d.get().is_zero()) {
                return Err(("modem.queue_wait".into(), "must be above 0".into()));
            }
            Ok(())
        }
    }
}

/// The rates the port opens at (`modem::port`).
const BAUDS: [u32; 8] = [9600, 19200, 38400, 57600, 115_200, 230_400, 460_800, 921_600];

pub(super) fn templates(u: &UssdStep) -> Vec<(String, String)> {
    let mut t = vec![("service_code".to_owned(), u.service_code.clone()), ("phone".to_owned(), u.phone.clone())];
    t.extend(u.dial.iter().map(|d| ("dial".to_owned(), d.clone())));
    if !u.url.is_empty() {
        t.push(("url".to_owned(), u.url.clone()));
    }
    if let Some(m) = &u.modem {
        t.push(("modem.port".to_owned(), m.port.clone()));
        t.extend(m.pin.iter().map(|p| ("modem.pin".to_owned(), p.clone())));
    }
    t.extend(u.events_url.iter().map(|e| ("events_url".to_owned(), e.clone())));
    t.extend(
        u.dialogue.iter().enumerate().filter_map(|(j, d)| Some((format!("dialogue[{j}].input"), d.input.clone()?))),
    );
    t
}
