//! Playing a `payment:` step: one state machine for every rail.
//!
//! Money safety (the caps again, whatever the loader let through) → the payer (a free number of
//! the rail's country from the pool, or the one named; one request in flight per number across
//! rails) → its politeness cap → the request (the rail authenticates, its token cached) → the
//! result (callback, relay, polling with backoff, or the answer itself) → the same payment? →
//! classify against the journey's success and expected codes and the rail's code table.

use std::{sync::Arc, time::Duration};

use http::Method;
use tokio::time::{Instant, sleep_until};

use super::{
    PaymentStep,
    model::Mode,
    validate::{cap, payers_of},
};
use crate::{
    http::RequestSpec,
    journey::ResultSource,
    outcome::{Failure, Outcome},
    rails::{self, Collect, RailResult, Requested, Status, callback::CallbackServer},
    steps::{Ctx, Done, Final, Recorder, exchange},
};

pub(crate) async fn run(k: &PaymentStep, ctx: &mut Ctx<'_>, rec: &mut Recorder) -> Result<Done, Failure> {
    let rail = k.rail.name();
    rec.rail = Some(rail);
    let ctx = &*ctx;
    money_check(k)?;
    let candidates = payers(k, ctx)?;
    rec.last_problem = Some("every MSISDN of the step had a payment in flight".into());
    let payer = ctx.payments.lock_msisdn(&candidates).await;
    rec.last_problem = None;
    // A request reaches the payer's phone: it waits for the number's politeness cap.
    ctx.polite.msisdn(&payer.msisdn, rec).await;

    let mode = k.result.mode(k.rail.modes()[0]).expect("validated at load");
    let idempotency_key = uuid::Uuid::new_v4().to_string();
    let (callback_url, server) = callback_url(ctx, rail, &mode, &idempotency_key).await?;
    let collect = Collect {
        amount: k.amount,
        currency: k.currency,
        msisdn: &payer.msisdn,
        idempotency_key: &idempotency_key,
        reference: &k.reference,
        description: &k.description,
        callback_url: callback_url.as_deref(),
    };
    rec.last_problem = Some(format!("the {rail} rail did not answer the payment request"));
    let (result, source) = match k.rail.request(ctx, rec, &collect).await? {
        Requested::Done(r) => (r, ResultSource::Response),
        Requested::Pending { id } => {
            let r = match &mode {
                Mode::Callback(_) => callback_wait(ctx, rec, server.as_deref().expect("callback mode"), rail, &id).await,
                Mode::Relay(r) => relay_wait(ctx, rec, k, r, &id).await?,
                Mode::Poll(p) => poll(ctx, rec, k, p, &id).await?,
                Mode::Response => {
                    return Err(Failure::new(
                        Outcome::GatewayError,
                        format!("{rail}: the request was accepted as pending, but this rail answers with the result"),
                    ));
                }
            };
            same_payment(&id, &r, mode.source())?;
            (r, mode.source())
        }
    };
    rec.last_problem = None;
    drop(payer);
    classify(k, rec, result, source)
}

/// The caps again at run time; a charge above the currency's default cap is logged every time.
fn money_check(k: &PaymentStep) -> Result<(), Failure> {
    let (cur, cap) = (k.currency, cap(k));
    if k.amount == 0 || k.amount > cap || k.amount > cur.hard_cap() {
        return Err(Failure::new(
            Outcome::AssertionFailed,
            format!("refusing to charge {} {cur}: above max_amount {cap} or the hard cap {} {cur}", k.amount, cur.hard_cap()),
        ));
    }
    if k.amount > cur.default_cap() {
        tracing::warn!(
            rail = k.rail.name(),
            amount = k.amount,
            currency = cur.code(),
            default_cap = cur.default_cap(),
            "charging above the currency's default cap (above_default_cap: true)"
        );
    }
    Ok(())
}

/// The MSISDNs the step may charge (E.164 digits): its pool's numbers of the rail's country, or
/// the number it names (masked from now on).
fn payers(k: &PaymentStep, ctx: &Ctx<'_>) -> Result<Vec<String>, Failure> {
    let country = k.rail.country();
    if k.payer == "pool" {
        let p = payers_of(country, &ctx.journey.msisdn_pool);
        if p.is_empty() {
            return Err(Failure::new(Outcome::AssertionFailed, format!("payer: the pool has no {country} number")));
        }
        return Ok(p);
    }
    let phone = ctx.render("payment.payer", &k.payer)?;
    ctx.hide_number(&phone);
    let msisdn = country.msisdn(&phone).map_err(|e| Failure::new(Outcome::AssertionFailed, format!("payer: {e}")))?;
    Ok(vec![msisdn])
}

/// The callback URL the provider is given, and the listener behind it in callback mode.
async fn callback_url(
    ctx: &Ctx<'_>,
    rail: &str,
    mode: &Mode<'_>,
    key: &str,
) -> Result<(Option<String>, Option<Arc<CallbackServer>>), Failure> {
    Ok(match mode {
        Mode::Callback(c) => {
            let listen = c.listen.clone().unwrap_or_else(|| "127.0.0.1:0".to_owned());
            let s = ctx.payments.callback_server(&listen).await.map_err(|e| {
                Failure::new(Outcome::AssertionFailed, format!("payment.result.callback: cannot listen on {listen}: {e}"))
            })?;
            let base = match &c.public_url {
                Some(u) => ctx.render("payment.result.callback.public_url", u)?,
                None => s.base_url(),
            };
            (Some(format!("{}/{rail}/{key}", base.trim_end_matches('/'))), Some(s))
        }
        Mode::Relay(r) => {
            let relay = ctx.render("payment.result.relay.url", &r.url)?;
            (Some(format!("{}/stk/callback", relay.trim_end_matches('/'))), None)
        }
        Mode::Poll(_) | Mode::Response => (None, None),
    })
}

/// The result must be the requested payment's: an answer for another payment (a status query
/// answered for the wrong transaction, a mixed-up relay) is the gateway's fault, never ours.
pub(super) fn same_payment(requested: &str, r: &RailResult, source: ResultSource) -> Result<(), Failure> {
    if r.id == requested {
        return Ok(());
    }
    let what = match source {
        ResultSource::Poll => "the status answer",
        ResultSource::Response => "the answer",
        _ => "the callback",
    };
    Err(Failure::new(Outcome::GatewayError, format!("{what} is for payment {:?}, not the requested {requested:?}", r.id)))
}

/// Waits for the callback on the step's own listener, and records it as an excerpt (masked).
async fn callback_wait(ctx: &Ctx<'_>, rec: &mut Recorder, server: &CallbackServer, rail: &str, id: &str) -> RailResult {
    rec.last_problem = Some(format!("no {rail} callback arrived for payment {id}"));
    let started = Instant::now();
    let r = server.wait(rail, id).await;
    rec.excerpts.push(crate::trace::Excerpt {
        label: "callback".into(),
        status: None,
        request: String::new(),
        response: ctx.masker.lock().excerpt(&r.raw.to_string()),
        duration: started.elapsed(),
    });
    r
}

/// Status queries with backoff until the payment is no longer pending.
async fn poll(
    ctx: &Ctx<'_>,
    rec: &mut Recorder,
    k: &PaymentStep,
    p: &super::model::PollResult,
    id: &str,
) -> Result<RailResult, Failure> {
    let mut wait = p.interval.map_or(Duration::from_secs(2), |x| x.get());
    let max = p.max_interval.map_or(Duration::from_secs(10), |x| x.get());
    loop {
        sleep_until(Instant::now() + wait).await;
        match k.rail.status(ctx, rec, id).await? {
            Status::Final(r) => return Ok(r),
            Status::Pending(said) => {
                rec.last_problem = Some(format!("the {} rail still says the payment is pending ({said})", k.rail.name()));
            }
        }
        wait = (wait * 2).min(max);
    }
}

/// Fetches the relayed callback from `{relay}/stk/{id}` (404 means not yet), backing off to 5 s,
/// with the prober's token when the journey gives one.
async fn relay_wait(
    ctx: &Ctx<'_>,
    rec: &mut Recorder,
    k: &PaymentStep,
    r: &super::model::RelayResult,
    id: &str,
) -> Result<RailResult, Failure> {
    let relay = ctx.render("payment.result.relay.url", &r.url)?;
    let token = match &r.token {
        Some(t) => {
            let t = ctx.render("payment.result.relay.token", t)?;
            ctx.masker.lock().add_secret(&t);
            Some(t)
        }
        None => None,
    };
    let url = url::Url::parse(&format!("{}/stk/{id}", relay.trim_end_matches('/')))
        .map_err(|e| Failure::new(Outcome::AssertionFailed, format!("payment.result.relay.url: {e}")))?;
    let mut wait = Duration::from_secs(1);
    rec.last_problem = Some(format!("the relay had no callback for payment {id}"));
    loop {
        sleep_until(Instant::now() + wait).await;
        let headers = token.iter().map(|t| ("authorization".to_owned(), format!("Bearer {t}"))).collect();
        let spec = RequestSpec { method: Method::GET, url: url.clone(), headers, body: None };
        let resp = exchange(ctx, rec, ctx.http, "relay".into(), &spec).await?;
        match resp.status.as_u16() {
            200 => {
                let parsed = rails::read_callback(k.rail.name(), "", &resp.body).expect("a registered rail");
                return parsed.map_err(|e| Failure::new(Outcome::GatewayError, format!("relay: {e}")));
            }
            404 => {}
            401 | 403 => {
                return Err(Failure::new(
                    Outcome::AssertionFailed,
                    format!(
                        "relay answered HTTP {}: give the prober's report token as result.relay.token \
                         (e.g. \"{{{{ secrets.relay_token }}}}\")",
                        resp.status.as_u16()
                    ),
                ));
            }
            s => return Err(Failure::new(Outcome::GatewayError, format!("relay answered HTTP {s}"))),
        }
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

/// What the provider's code means for this journey. The code becomes the step's `reason`.
fn classify(k: &PaymentStep, rec: &mut Recorder, r: RailResult, source: ResultSource) -> Result<Done, Failure> {
    let info = k.rail.describe(&r.code);
    let success = |c: &str| match &k.success {
        Some(list) => list.iter().any(|x| x.0 == c),
        None => k.rail.success().contains(&c),
    };
    let expected = k.expected.iter().any(|x| x.0 == r.code);
    rec.reason = Some(rails::reason_label(&r.code, &info, success(&r.code) || expected));
    let words = format!("{} {} ({}): {}", k.rail.name(), r.code, info.meaning, r.text);
    let last = Final { text: r.raw.to_string(), json: Some(r.raw), source, ..Final::default() };
    if success(&r.code) {
        Ok(Done { outcome: Outcome::Ok, note: Some(words), last })
    } else if expected {
        Ok(Done { outcome: Outcome::Expected, note: Some(words), last })
    } else {
        let class = if info.class == Outcome::Ok { Outcome::AssertionFailed } else { info.class };
        Err(Failure::new(class, words))
    }
}
