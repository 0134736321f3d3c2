//! What the loader checks in a `payment:` step: money safety first, then the payer, the result
//! mode and the rail's own fields.

use super::{
    PaymentStep,
    model::{Mode, mode_name},
};
use crate::{journey::credentials, rails::Country, steps::FieldError};

/// The most the step may charge: its `max_amount`, or the currency's default cap.
pub(super) fn cap(k: &PaymentStep) -> u64 {
    k.max_amount.unwrap_or_else(|| k.currency.default_cap())
}

pub(super) fn validate(k: &PaymentStep, pool: &[String]) -> Result<(), FieldError> {
    let rail = k.rail.name();
    k.rail.validate().map_err(|(f, m)| (format!("rail.{rail}.{f}"), m))?;
    money(k)?;
    payer(k, pool)?;
    if k.reference.is_empty() || k.reference.len() > 12 {
        return Err(("reference".into(), "1 to 12 characters (the strictest rail's limit)".into()));
    }
    if k.description.is_empty() || k.description.len() > 13 {
        return Err(("description".into(), "1 to 13 characters (the strictest rail's limit)".into()));
    }
    let modes = k.rail.modes();
    let Some(mode) = k.result.mode(modes[0]) else {
        return Err(("result".into(), "give one of callback, relay, poll or response".into()));
    };
    if !modes.contains(&mode.source()) {
        let can: Vec<_> = modes.iter().map(|m| mode_name(*m)).collect();
        return Err((
            "result".into(),
            format!("the {rail} rail cannot deliver a result by {}: use {}", mode_name(mode.source()), can.join(" or ")),
        ));
    }
    if let Mode::Relay(r) = mode
        && r.url.trim().is_empty()
    {
        return Err(("result.relay.url".into(), "give the relay's base URL".into()));
    }
    if k.success.as_ref().is_some_and(Vec::is_empty) {
        return Err(("success".into(), "list at least one code, or leave it out for the rail's".into()));
    }
    Ok(())
}

fn money(k: &PaymentStep) -> Result<(), FieldError> {
    let cur = k.currency;
    if !k.rail.currencies().contains(&cur) {
        let can: Vec<_> = k.rail.currencies().iter().map(|c| c.code()).collect();
        return Err(("currency".into(), format!("the {} rail charges in {}, not {cur}", k.rail.name(), can.join(" or "))));
    }
    let cap = cap(k);
    if cap > cur.hard_cap() {
        return Err((
            "max_amount".into(),
            format!("{cap} {cur} is above the hard cap of {} {cur} for probes", cur.hard_cap()),
        ));
    }
    if cap > cur.default_cap() && !k.above_default_cap {
        return Err((
            "max_amount".into(),
            format!(
                "{cap} {cur} is above the default cap of {} {cur}: set above_default_cap: true to allow it \
                 (logged on every run)",
                cur.default_cap()
            ),
        ));
    }
    if k.amount == 0 || k.amount > cap {
        return Err(("amount".into(), format!("{} {cur} must be between 1 and max_amount ({cap} {cur})", k.amount)));
    }
    Ok(())
}

fn payer(k: &PaymentStep, pool: &[String]) -> Result<(), FieldError> {
    let country = k.rail.country();
    if k.payer == "pool" {
        if pool.is_empty() {
            return Err(("payer".into(), "`pool` needs a non-empty msisdn_pool on the journey".into()));
        }
        if payers_of(country, pool).is_empty() {
            return Err((
                "payer".into(),
                format!(
                    "no number of the msisdn_pool is a {country} mobile number (+{}…): add the {} rail's test numbers",
                    country.calling_code(),
                    k.rail.name()
                ),
            ));
        }
    } else if !k.payer.contains("{{") {
        // The message never quotes the number.
        country.msisdn(&k.payer).map_err(|e| ("payer".to_owned(), e))?;
    }
    Ok(())
}

/// The pool's numbers of `country`, as E.164 digits.
pub(super) fn payers_of(country: Country, pool: &[String]) -> Vec<String> {
    pool.iter().filter_map(|m| country.msisdn(m).ok()).collect()
}

pub(super) fn templates(k: &PaymentStep) -> Vec<(String, String)> {
    let rail = k.rail.name();
    let mut t: Vec<_> = k.rail.templates().into_iter().map(|(f, v)| (format!("rail.{rail}.{f}"), v)).collect();
    t.push(("payer".into(), k.payer.clone()));
    if let Some(r) = &k.result.relay {
        t.push(("result.relay.url".into(), r.url.clone()));
        t.extend(r.token.iter().map(|v| ("result.relay.token".to_owned(), v.clone())));
    }
    if let Some(u) = k.result.callback.as_ref().and_then(|c| c.public_url.as_ref()) {
        t.push(("result.callback.public_url".into(), u.clone()));
    }
    t
}

/// Credentials written literally instead of as `{{ secrets.… }}`.
pub(super) fn plain_credentials(k: &PaymentStep) -> Vec<(String, &'static str)> {
    let rail = k.rail.name();
    let mut v: Vec<_> = k.rail.plain_credentials().into_iter().map(|(f, why)| (format!("rail.{rail}.{f}"), why)).collect();
    if let Some(t) = k.result.relay.as_ref().and_then(|r| r.token.as_ref())
        && !credentials::literal(t).is_empty()
    {
        v.push(("result.relay.token".into(), "the relay token is"));
    }
    v
}
