//! Playing an `mpesa_stk:` step.
//!
//! OAuth (the token is cached until it nears expiry and refreshed once if Daraja refuses it),
//! Password = base64(shortcode + passkey + timestamp) with a Nairobi-time timestamp, the push,
//! then the result: by callback to a listener the player owns, through a relay, or by STK Query
//! polling with backoff ("The transaction is being processed" means pending). Money safety: the
//! amount is capped, the payer comes from the journey's MSISDN pool or is named, and a number never
//! has two pushes in flight.

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use tokio::time::{Instant, sleep_until};

use super::{HARD_AMOUNT_CAP, StkResultMode, StkStep};
use crate::{
    daraja::{
        basic_auth,
        callback::CallbackServer,
        codes::{self, StkResult},
        daraja_msisdn, password, timestamp_now,
    },
    http::{RequestSpec, Response},
    journey::Secret,
    outcome::{Failure, Outcome},
    journey::ResultSource,
    steps::{Ctx, Done, Final, Recorder, exchange, json_body},
};

/// A CallBackURL for polling mode, where nothing listens (Daraja requires the field).
const UNUSED_CALLBACK: &str = "https://localhost/savanna-pulse/unused-callback";

struct Daraja {
    base: String,
    key: String,
    secret: String,
    shortcode: String,
    passkey: String,
}

pub(super) async fn run(k: &StkStep, ctx: &mut Ctx<'_>, rec: &mut Recorder) -> Result<Done, Failure> {
    let d = Daraja::of(k, ctx)?;
    // Money safety, checked again at run time whatever the loader let through.
    if k.amount == 0 || k.amount > k.max_amount || k.amount > HARD_AMOUNT_CAP {
        return Err(Failure::new(
            Outcome::AssertionFailed,
            format!(
                "refusing to push {} KES: above max_amount {} or the hard cap {HARD_AMOUNT_CAP}",
                k.amount, k.max_amount
            ),
        ));
    }
    let candidates = payers(k, ctx)?;
    rec.last_problem = Some("every MSISDN of the step had a push in flight".into());
    let payer = ctx.daraja.lock_msisdn(&candidates).await;
    rec.last_problem = None;
    // A push reaches the payer's phone: it waits for the number's politeness cap.
    ctx.polite.msisdn(&payer.msisdn, rec).await;

    let mode = k.result.mode().expect("validated at load");
    let (callback_url, server) = callback_url(ctx, &mode).await?;

    let timestamp = timestamp_now();
    let pw = password(&d.shortcode, &d.passkey, &timestamp);
    ctx.masker.lock().add_secret(pw.expose());
    let push_body = json!({
        "BusinessShortCode": d.shortcode,
        "Password": pw.expose(),
        "Timestamp": timestamp,
        "TransactionType": k.transaction_type,
        "Amount": k.amount,
        "PartyA": payer.msisdn,
        "PartyB": k.party_b.clone().unwrap_or_else(|| d.shortcode.clone()),
        "PhoneNumber": payer.msisdn,
        "CallBackURL": callback_url,
        "AccountReference": k.account_reference,
        "TransactionDesc": k.description,
    });
    let accepted = d.call(ctx, rec, "stk push", "/mpesa/stkpush/v1/processrequest", &push_body).await?;
    let accepted =
        codes::parse_push(&accepted.body).map_err(|e| Failure::new(Outcome::GatewayError, format!("stk push: {e}")))?;
    if accepted.response_code != "0" {
        return Err(Failure::new(
            Outcome::GatewayError,
            format!("stk push: ResponseCode {} ({})", accepted.response_code, accepted.response_description),
        ));
    }
    let id = accepted.checkout_request_id;

    let result = match &mode {
        StkResultMode::Callback(_) => callback_wait(ctx, rec, &server.expect("callback mode has a server"), &id).await,
        StkResultMode::Relay(r) => {
            let relay = ctx.render("mpesa_stk.result.relay.url", &r.url)?;
            let token = match &r.token {
                Some(t) => {
                    let t = ctx.render("mpesa_stk.result.relay.token", t)?;
                    ctx.masker.lock().add_secret(&t);
                    Some(t)
                }
                None => None,
            };
            relay_wait(ctx, rec, relay.trim_end_matches('/'), token.as_deref(), &id).await?
        }
        StkResultMode::Poll(p) => {
            let first = p.interval.map_or(Duration::from_secs(2), |x| x.get());
            let max = p.max_interval.map_or(Duration::from_secs(10), |x| x.get());
            d.query_until_done(ctx, rec, &id, first, max).await?
        }
    };
    rec.last_problem = None;
    drop(payer);
    let source = match &mode {
        StkResultMode::Callback(_) => ResultSource::Callback,
        StkResultMode::Relay(_) => ResultSource::Relay,
        StkResultMode::Poll(_) => ResultSource::Poll,
    };
    same_checkout(&id, &result, source)?;
    classify(k, &result, source)
}

/// The result must be the pushed payment's: an answer for another CheckoutRequestID (a query
/// answered for the wrong transaction, a mixed-up relay) is the gateway's fault, never ours.
pub(super) fn same_checkout(pushed: &str, r: &StkResult, source: ResultSource) -> Result<(), Failure> {
    if r.checkout_request_id == pushed {
        return Ok(());
    }
    let what = match source {
        ResultSource::Poll => "the STK Query answer",
        _ => "the callback",
    };
    Err(Failure::new(
        Outcome::GatewayError,
        format!("{what} is for CheckoutRequestID {:?}, not the pushed {pushed:?}", r.checkout_request_id),
    ))
}

/// The CallBackURL Daraja is given, and the listener behind it in callback mode.
async fn callback_url(
    ctx: &Ctx<'_>,
    mode: &StkResultMode<'_>,
) -> Result<(String, Option<std::sync::Arc<CallbackServer>>), Failure> {
    Ok(match mode {
        StkResultMode::Callback(c) => {
            let listen = c.listen.clone().unwrap_or_else(|| "127.0.0.1:0".to_owned());
            let s = ctx.daraja.callback_server(&listen).await.map_err(|e| {
                Failure::new(
                    Outcome::AssertionFailed,
                    format!("mpesa_stk.result.callback: cannot listen on {listen}: {e}"),
                )
            })?;
            let url = match &c.public_url {
                Some(u) => ctx.render("mpesa_stk.result.callback.public_url", u)?,
                None => s.url(),
            };
            (url, Some(s))
        }
        StkResultMode::Relay(r) => {
            (format!("{}/stk/callback", ctx.render("mpesa_stk.result.relay.url", &r.url)?.trim_end_matches('/')), None)
        }
        StkResultMode::Poll(_) => (UNUSED_CALLBACK.to_owned(), None),
    })
}

/// The MSISDNs the step may charge: its pool, or the number it names (masked from now on).
fn payers(k: &StkStep, ctx: &Ctx<'_>) -> Result<Vec<String>, Failure> {
    if k.phone == "pool" {
        return Ok(ctx.journey.msisdn_pool.iter().map(|m| daraja_msisdn(m)).collect());
    }
    let phone = ctx.render("mpesa_stk.phone", &k.phone)?;
    ctx.hide_number(&phone);
    Ok(vec![daraja_msisdn(&phone)])
}

impl Daraja {
    /// The step's Daraja, its credentials rendered and masked from now on.
    fn of(k: &StkStep, ctx: &Ctx<'_>) -> Result<Daraja, Failure> {
        let d = Daraja {
            base: ctx.render("mpesa_stk.base_url", &k.base_url)?.trim_end_matches('/').to_owned(),
            key: ctx.render("mpesa_stk.consumer_key", &k.consumer_key)?,
            secret: ctx.render("mpesa_stk.consumer_secret", &k.consumer_secret)?,
            shortcode: ctx.render("mpesa_stk.shortcode", &k.shortcode)?,
            passkey: ctx.render("mpesa_stk.passkey", &k.passkey)?,
        };
        let mut m = ctx.masker.lock();
        for s in [&d.key, &d.secret, &d.passkey] {
            m.add_secret(s);
        }
        drop(m);
        Ok(d)
    }

    /// A valid access token, from the cache or a fresh OAuth call.
    async fn token(&self, ctx: &Ctx<'_>, rec: &mut Recorder) -> Result<Secret, Failure> {
        if let Some(t) = ctx.daraja.cached_token(&self.base, &self.key) {
            return Ok(t);
        }
        let url = self.url("/oauth/v1/generate?grant_type=client_credentials")?;
        let auth = basic_auth(&self.key, &self.secret);
        ctx.masker.lock().add_secret(auth.expose().trim_start_matches("Basic "));
        let spec = RequestSpec {
            method: Method::GET,
            url,
            headers: vec![("authorization".into(), auth.expose().to_owned())],
            body: None,
        };
        let r = exchange(ctx, rec, ctx.http, "oauth".into(), &spec).await?;
        if !r.status.is_success() {
            return Err(refusal("oauth", &r, ctx));
        }
        let (token, ttl) =
            codes::parse_token(&r.body).map_err(|e| Failure::new(Outcome::GatewayError, format!("oauth: {e}")))?;
        ctx.masker.lock().add_secret(&token);
        let token = Secret::new(token);
        ctx.daraja.store_token(&self.base, &self.key, token.clone(), ttl);
        Ok(token)
    }

    /// POSTs `body` with a bearer token; a refused token is replaced once.
    async fn call(
        &self,
        ctx: &Ctx<'_>,
        rec: &mut Recorder,
        label: &str,
        path: &str,
        body: &Value,
    ) -> Result<Response, Failure> {
        for attempt in 0..2 {
            let token = self.token(ctx, rec).await?;
            let spec = RequestSpec {
                method: Method::POST,
                url: self.url(path)?,
                headers: vec![("authorization".into(), format!("Bearer {}", token.expose()))],
                body: json_body(body),
            };
            let r = exchange(ctx, rec, ctx.http, label.to_owned(), &spec).await?;
            if r.status.is_success() {
                return Ok(r);
            }
            match codes::parse_envelope(&r.body) {
                Some(e) if e.is_bad_token() && attempt == 0 => ctx.daraja.drop_token(&self.base, &self.key),
                _ => return Ok(r),
            }
        }
        unreachable!("the second attempt always returns")
    }

    /// STK Query until the transaction is no longer "being processed".
    async fn query_until_done(
        &self,
        ctx: &Ctx<'_>,
        rec: &mut Recorder,
        id: &str,
        first: Duration,
        max: Duration,
    ) -> Result<StkResult, Failure> {
        let mut wait = first;
        loop {
            sleep_until(Instant::now() + wait).await;
            let timestamp = timestamp_now();
            let pw = password(&self.shortcode, &self.passkey, &timestamp);
            ctx.masker.lock().add_secret(pw.expose());
            let body = json!({"BusinessShortCode": self.shortcode, "Password": pw.expose(), "Timestamp": timestamp, "CheckoutRequestID": id});
            let r = self.call(ctx, rec, "stk query", "/mpesa/stkpushquery/v1/query", &body).await?;
            if r.status.is_success() {
                return codes::parse_query(&r.body)
                    .map_err(|e| Failure::new(Outcome::GatewayError, format!("stk query: {e}")));
            }
            match codes::parse_envelope(&r.body) {
                Some(e) if e.is_pending() => {
                    rec.last_problem = Some(format!("STK Query still says {:?}", e.error_message))
                }
                _ => return Err(refusal("stk query", &r, ctx)),
            }
            wait = (wait * 2).min(max);
        }
    }

    fn url(&self, path: &str) -> Result<url::Url, Failure> {
        let s = format!("{}{path}", self.base);
        url::Url::parse(&s)
            .map_err(|e| Failure::new(Outcome::AssertionFailed, format!("mpesa_stk.base_url: `{s}` is not a URL: {e}")))
    }
}

/// Waits for the callback on the step's own listener, and records it as an excerpt (masked).
async fn callback_wait(ctx: &Ctx<'_>, rec: &mut Recorder, server: &CallbackServer, id: &str) -> StkResult {
    rec.last_problem = Some(format!("no callback arrived for CheckoutRequestID {id}"));
    let started = Instant::now();
    let r = server.wait(id).await;
    let duration = started.elapsed();
    rec.excerpts.push(crate::trace::Excerpt {
        label: "callback".into(),
        status: None,
        request: String::new(),
        response: ctx.masker.lock().excerpt(&r.raw.to_string()),
        duration,
    });
    r
}

/// Fetches the relayed callback from `{relay}/stk/{id}` (404 means not yet), backing off to 5 s,
/// with the prober's token when the journey gives one.
async fn relay_wait(
    ctx: &Ctx<'_>,
    rec: &mut Recorder,
    relay: &str,
    token: Option<&str>,
    id: &str,
) -> Result<StkResult, Failure> {
    let url = url::Url::parse(&format!("{relay}/stk/{id}"))
        .map_err(|e| Failure::new(Outcome::AssertionFailed, format!("mpesa_stk.result.relay.url: {e}")))?;
    let mut wait = Duration::from_secs(1);
    rec.last_problem = Some(format!("the relay had no callback for CheckoutRequestID {id}"));
    loop {
        sleep_until(Instant::now() + wait).await;
        let headers = token.map(|t| ("authorization".to_owned(), format!("Bearer {t}"))).into_iter().collect();
        let spec = RequestSpec { method: Method::GET, url: url.clone(), headers, body: None };
        let r = exchange(ctx, rec, ctx.http, "relay".into(), &spec).await?;
        match r.status.as_u16() {
            200 => {
                return codes::parse_callback(&r.body)
                    .map_err(|e| Failure::new(Outcome::GatewayError, format!("relay: {e}")));
            }
            404 => {}
            401 | 403 => {
                return Err(Failure::new(
                    Outcome::AssertionFailed,
                    format!(
                        "relay answered HTTP {}: give the prober's report token as mpesa_stk.result.relay.token \
                         (e.g. \"{{{{ secrets.relay_token }}}}\")",
                        r.status.as_u16()
                    ),
                ));
            }
            s => return Err(Failure::new(Outcome::GatewayError, format!("relay answered HTTP {s}"))),
        }
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

/// A non-2xx answer, as a failure: Daraja's envelope when there is one, else the start of the
/// body (masked before it is cut).
fn refusal(what: &str, r: &Response, ctx: &Ctx<'_>) -> Failure {
    let status = r.status.as_u16();
    match codes::parse_envelope(&r.body) {
        Some(e) => {
            Failure::new(e.outcome(status), format!("{what}: HTTP {status}, {} {}", e.error_code, e.error_message))
        }
        None => {
            let outcome = if r.status.is_server_error() { Outcome::GatewayError } else { Outcome::AssertionFailed };
            Failure::new(outcome, format!("{what}: HTTP {status}, body {:?}", ctx.start(&r.text(), 120)))
        }
    }
}

/// What the payment's ResultCode means for this journey.
fn classify(k: &StkStep, r: &StkResult, source: ResultSource) -> Result<Done, Failure> {
    let (meaning, class) = codes::describe(r.result_code);
    let last = Final { text: r.raw.to_string(), json: Some(r.raw.clone()), source, ..Final::default() };
    let words = format!("ResultCode {} ({meaning}): {}", r.result_code, r.result_desc);
    if k.success_codes.contains(&r.result_code) {
        Ok(Done { outcome: Outcome::Ok, note: Some(words), last })
    } else if k.expected_codes.contains(&r.result_code) {
        Ok(Done { outcome: Outcome::Expected, note: Some(words), last })
    } else {
        let class = if class == Outcome::Ok { Outcome::AssertionFailed } else { class };
        Err(Failure::new(class, words))
    }
}
