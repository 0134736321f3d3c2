//! Airtel's calls: OAuth with a JSON body (cached until it nears expiry, replaced once if Airtel
//! refuses it), the collection request and the status query.

use http::Method;
use serde_json::json;

use super::{Airtel, codes, local_msisdn, transaction_id};
use crate::{
    http::{RequestSpec, Response},
    journey::Secret,
    outcome::{Failure, Outcome},
    rails::{Collect, Country, Requested, Status, runtime::TokenKey},
    steps::{Ctx, Recorder, exchange, json_body},
};

/// The step's Airtel, its credentials rendered and masked.
pub(super) struct Client {
    base: String,
    id: String,
    secret: String,
    country: Country,
}

impl Client {
    pub(super) fn of(a: &Airtel, ctx: &Ctx<'_>) -> Result<Client, Failure> {
        let f = |name: &str, v: &str| ctx.render(&format!("rail.airtel.{name}"), v);
        let c = Client {
            base: f("base_url", &a.base_url)?.trim_end_matches('/').to_owned(),
            id: f("client_id", &a.client_id)?,
            secret: f("client_secret", &a.client_secret)?,
            country: a.country,
        };
        let mut m = ctx.masker.lock();
        m.add_secret(&c.id);
        m.add_secret(&c.secret);
        drop(m);
        Ok(c)
    }

    fn currency(&self) -> &'static str {
        match self.country {
            Country::Tz => "TZS",
            _ => "UGX",
        }
    }

    /// The USSD push; `status.success` true with code 200 means the prompt is on its way.
    pub(super) async fn collect(
        &self,
        ctx: &Ctx<'_>,
        rec: &mut Recorder,
        c: &Collect<'_>,
    ) -> Result<Requested, Failure> {
        let (country, currency) = (self.country.code(), c.currency.code());
        let id = transaction_id(c.idempotency_key);
        let body = json!({
            "reference": c.reference,
            "subscriber": {"country": country, "currency": currency, "msisdn": local_msisdn(self.country, c.msisdn)},
            "transaction": {"amount": c.amount, "country": country, "currency": currency, "id": id},
        });
        let r = self.call(ctx, rec, "collection", Method::POST, "/merchant/v1/payments/", Some(&body)).await?;
        if !r.status.is_success() {
            return Err(refusal("collection", &r, ctx));
        }
        let e = codes::parse_collect(&r.body)
            .map_err(|e| Failure::new(Outcome::GatewayError, format!("collection: {e}")))?;
        if !e.accepted() {
            return Err(Failure::new(Outcome::GatewayError, format!("collection: not accepted, {}", e.summary())));
        }
        Ok(Requested::Pending { id })
    }

    /// One status query; `TIP` is pending, `TS`/`TF`/`TA` final.
    pub(super) async fn query(&self, ctx: &Ctx<'_>, rec: &mut Recorder, id: &str) -> Result<Status, Failure> {
        let path = format!("/standard/v1/payments/{id}");
        let r = self.call(ctx, rec, "status", Method::GET, &path, None).await?;
        if !r.status.is_success() {
            return Err(refusal("status", &r, ctx));
        }
        let s =
            codes::parse_status(&r.body).map_err(|e| Failure::new(Outcome::GatewayError, format!("status: {e}")))?;
        if codes::is_pending(&s.status) {
            return Ok(Status::Pending(format!("Airtel says {} (in progress)", s.status)));
        }
        Ok(Status::Final(s.into_rail()))
    }

    fn token_key(&self) -> TokenKey {
        TokenKey { rail: "airtel", base: self.base.clone(), credential: self.id.clone() }
    }

    /// A valid access token, from the cache or a fresh OAuth call.
    async fn token(&self, ctx: &Ctx<'_>, rec: &mut Recorder) -> Result<Secret, Failure> {
        if let Some(t) = ctx.payments.cached_token(&self.token_key()) {
            return Ok(t);
        }
        let body = json!({"client_id": self.id, "client_secret": self.secret, "grant_type": "client_credentials"});
        let spec = RequestSpec {
            method: Method::POST,
            url: self.url("/auth/oauth2/token")?,
            headers: vec![("accept".into(), "*/*".into())],
            body: json_body(&body),
        };
        let r = exchange(ctx, rec, ctx.http, "oauth".into(), &spec).await?;
        if !r.status.is_success() {
            return Err(refusal("oauth", &r, ctx));
        }
        let (token, ttl) =
            codes::parse_token(&r.body).map_err(|e| Failure::new(Outcome::GatewayError, format!("oauth: {e}")))?;
        Ok(crate::rails::keep_token(ctx, &self.token_key(), token, ttl))
    }

    /// A call with the bearer token and Airtel's `X-Country`/`X-Currency`; a refused token is
    /// replaced once.
    async fn call(
        &self,
        ctx: &Ctx<'_>,
        rec: &mut Recorder,
        label: &str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, Failure> {
        let mut attempt = 0;
        loop {
            let token = self.token(ctx, rec).await?;
            let spec = RequestSpec {
                method: method.clone(),
                url: self.url(path)?,
                headers: vec![
                    ("authorization".into(), format!("Bearer {}", token.expose())),
                    ("x-country".into(), self.country.code().to_owned()),
                    ("x-currency".into(), self.currency().to_owned()),
                    ("accept".into(), "*/*".into()),
                ],
                body: body.and_then(json_body),
            };
            let r = exchange(ctx, rec, ctx.http, label.to_owned(), &spec).await?;
            if attempt == 0 && !r.status.is_success() && codes::is_bad_token(r.status.as_u16(), &r.body) {
                ctx.payments.drop_token(&self.token_key());
                attempt += 1;
                continue;
            }
            return Ok(r);
        }
    }

    fn url(&self, path: &str) -> Result<url::Url, Failure> {
        let s = format!("{}{path}", self.base);
        url::Url::parse(&s)
            .map_err(|e| Failure::new(Outcome::AssertionFailed, format!("rail.airtel.base_url: not a URL: {e}")))
    }
}

/// A non-2xx answer, as a failure: 401/403 and 4xx are our request or credentials
/// (`assertion_failed`), 5xx the gateway's; Airtel's `status` envelope when there is one, else
/// the start of the body (masked before it is cut).
fn refusal(what: &str, r: &Response, ctx: &Ctx<'_>) -> Failure {
    let status = r.status.as_u16();
    let outcome = if r.status.is_server_error() { Outcome::GatewayError } else { Outcome::AssertionFailed };
    let env = serde_json::from_slice(&r.body).ok().and_then(|v| codes::parse_envelope(&v));
    match env {
        Some(e) => Failure::new(outcome, format!("{what}: HTTP {status}, {}", ctx.start(&e.summary(), 200))),
        None => Failure::new(outcome, format!("{what}: HTTP {status}, body {:?}", ctx.start(&r.text(), 120))),
    }
}
