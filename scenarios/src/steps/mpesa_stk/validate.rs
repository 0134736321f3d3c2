//! What the loader checks in an `mpesa_stk:` step: money safety first.

use super::{HARD_AMOUNT_CAP, StkStep};
use crate::{journey::credentials, steps::FieldError};

pub(super) fn validate(k: &StkStep, has_pool: bool) -> Result<(), FieldError> {
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
    if k.phone == "pool" && !has_pool {
        return Err(("phone".into(), "`pool` needs a non-empty msisdn_pool on the journey".into()));
    }
    if !["CustomerPayBillOnline", "CustomerBuyGoodsOnline"].contains(&k.transaction_type.as_str()) {
        return Err(("transaction_type".into(), "CustomerPayBillOnline or CustomerBuyGoodsOnline".into()));
    }
    if k.account_reference.len() > 12 || k.description.is_empty() || k.description.len() > 13 {
        return Err((
            "account_reference".into(),
            "account_reference is at most 12 characters, description 1 to 13".into(),
        ));
    }
    if k.result.mode().is_none() {
        return Err(("result".into(), "give one of callback, relay or poll".into()));
    }
    if k.success_codes.is_empty() {
        return Err(("success_codes".into(), "list at least one ResultCode".into()));
    }
    Ok(())
}

pub(super) fn templates(k: &StkStep) -> Vec<(String, String)> {
    let field = |f: &str, v: &String| (f.to_owned(), v.clone());
    let mut t = vec![
        field("base_url", &k.base_url),
        field("consumer_key", &k.consumer_key),
        field("consumer_secret", &k.consumer_secret),
        field("shortcode", &k.shortcode),
        field("passkey", &k.passkey),
        field("phone", &k.phone),
    ];
    t.extend(k.party_b.iter().map(|v| field("party_b", v)));
    if let Some(r) = &k.result.relay {
        t.push(field("result.relay.url", &r.url));
        t.extend(r.token.iter().map(|v| field("result.relay.token", v)));
    }
    t
}

/// Daraja credentials written literally instead of as `{{ secrets.… }}`.
pub(super) fn plain_credentials(k: &StkStep) -> Vec<(String, &'static str)> {
    let relay = k.result.relay.as_ref().and_then(|r| r.token.as_ref());
    let fields = [
        ("consumer_key", Some(&k.consumer_key)),
        ("consumer_secret", Some(&k.consumer_secret)),
        ("passkey", Some(&k.passkey)),
        ("result.relay.token", relay),
    ];
    fields
        .into_iter()
        .filter_map(|(f, v)| Some((f, v?)))
        .filter(|(_, v)| !credentials::literal(v).is_empty())
        .map(|(f, _)| (f.to_owned(), "a Daraja credential is"))
        .collect()
}
