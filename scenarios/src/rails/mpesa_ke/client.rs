//! Daraja's calls: OAuth (cached until it nears expiry, replaced once if Daraja refuses it), the
//! STK push and the STK Query.

use http::Method;
use serde_json::{Value, json};

use super::{Daraja, basic_auth, codes, daraja_msisdn, password, timestamp_now};
use crate::{
    http::{RequestSpec, Response},
    journey::Secret,
    outcome::{Failure, Outcome},
    rails::{Collect, Requested, Status, runtime::TokenKey},
    steps::{Ctx, Recorder, exchange, json_body},
};

/// A CallBackURL for polling mode, where nothing listens (Daraja requires the field).
const UNUSED_CALLBACK: &str = "https://localhost/savanna-pulse/unused-callback";

/// The step's Daraja, its credentials rendered and masked.
pub(super) struct Client {
    base: String,
    key: String,
    secret: String,
    shortcode: String,
    passkey: String,
}

impl Client {
    pub(super) fn of(d: &Daraja, ctx: &Ctx<'_>) -> Result<Client, Failure> {
        let f = |name: &str, v: &str| ctx.render(&format!("rail.mpesa-ke.{name}"), v);
        let c = Client {
            base: f("base_url", &d.base_url)?.trim_end_matches('/').to_owned(),
            key: f("consumer_key", &d.consumer_key)?,
            secret: f("consumer_secret", &d.consumer_secret)?,
            shortcode: f("shortcode", &d.shortcode)?,
            passkey: f("passkey", &d.passkey)?,
        };
        let mut m = ctx.masker.lock();
        for s in [&c.key, &c.secret, &c.passkey] {
            m.add_secret(s);
        }
        drop(m);
        Ok(c)
    }

    /// The STK push; `ResponseCode` 0 means the prompt is on its way.
    pub(super) async fn push(
        &self,
        ctx: &Ctx<'_>,
        rec: &mut Recorder,
        d: &Daraja,
        c: &Collect<'_>,
    ) -> Result<Requested, Failure> {
        let timestamp = timestamp_now();
        let pw = password(&self.shortcode, &self.passkey, &timestamp);
        ctx.masker.lock().add_secret(pw.expose());
        let party_b = match &d.party_b {
            Some(p) => ctx.render("rail.mpesa-ke.party_b", p)?,
            None => self.shortcode.clone(),
        };
        let msisdn = daraja_msisdn(c.msisdn);
        let body = json!({
            "BusinessShortCode": self.shortcode,
            "Password": pw.expose(),
            "Timestamp": timestamp,
            "TransactionType": d.transaction_type,
            "Amount": c.amount,
            "PartyA": msisdn,
            "PartyB": party_b,
            "PhoneNumber": msisdn,
            "CallBackURL": c.callback_url.unwrap_or(UNUSED_CALLBACK),
            "AccountReference": c.reference,
            "TransactionDesc": c.description,
        });
        let r = self.call(ctx, rec, "stk push", "/mpesa/stkpush/v1/processrequest", &body).await?;
        if !r.status.is_success() {
            return Err(refusal("stk push", &r, ctx));
        }
        let accepted =
            codes::parse_push(&r.body).map_err(|e| Failure::new(Outcome::GatewayError, format!("stk push: {e}")))?;
        if accepted.response_code != "0" {
            return Err(Failure::new(
                Outcome::GatewayError,
                format!("stk push: ResponseCode {} ({})", accepted.response_code, accepted.response_description),
            ));
        }
        Ok(Requested::Pending { id: accepted.checkout_request_id })
    }

    /// One STK Query; "The transaction is being processed" is pending.
    pub(super) async fn query(&self, ctx: &Ctx<'_>, rec: &mut Recorder, id: &str) -> Result<Status, Failure> {
        let timestamp = timestamp_now();
        let pw = password(&self.shortcode, &self.passkey, &timestamp);
        ctx.masker.lock().add_secret(pw.expose());
        let body = json!({"BusinessShortCode": self.shortcode, "Password": pw.expose(), "Timestamp": timestamp, "CheckoutRequestID": id});
        let r = self.call(ctx, rec, "stk query", "/mpesa/stkpushquery/v1/query", &body).await?;
        if r.status.is_success() {
            return codes::parse_query(&r.body)
                .map(|q| Status::Final(q.into_rail()))
                .map_err(|e| Failure::new(Outcome::GatewayError, format!("stk query: {e}")));
        }
        match codes::parse_envelope(&r.body) {
            Some(e) if e.is_pending() => Ok(Status::Pending(format!("STK Query still says {:?}", e.error_message))),
            _ => Err(refusal("stk query", &r, ctx)),
        }
    }

    fn token_key(&self) -> TokenKey {
        TokenKey { rail: "mpesa-ke", base: self.base.clone(), credential: self.key.clone() }
    }

    /// A valid access token, from the cache or a fresh OAuth call.
    async fn token(&self, ctx: &Ctx<'_>, rec: &mut Recorder) -> Result<Secret, Failure> {
        if let Some(t) = ctx.payments.cached_token(&self.token_key()) {
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
        Ok(crate::rails::keep_token(ctx, &self.token_key(), token, ttl))
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
                Some(e) if e.is_bad_token() && attempt == 0 => ctx.payments.drop_token(&self.token_key()),
                _ => return Ok(r),
            }
        }
        unreachable!("the second attempt always returns")
    }

    fn url(&self, path: &str) -> Result<url::Url, Failure> {
        let s = format!("{}{path}", self.base);
        url::Url::parse(&s).map_err(|e| {
            Failure::new(Outcome::AssertionFailed, format!("rail.mpesa-ke.base_url: `{s}` is not a URL: {e}"))
        })
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
