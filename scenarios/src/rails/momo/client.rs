//! MoMo's calls: the Collection token (cached until it nears expiry, fetched again once when MoMo
//! refuses it), the request to pay and its status.

use base64::{Engine, engine::general_purpose::STANDARD};
use http::Method;
use serde_json::json;

use super::{ENVIRONMENT_HELP, Momo, codes, valid_environment};
use crate::{
    http::{RequestSpec, Response},
    journey::Secret,
    outcome::{Failure, Outcome},
    rails::{Collect, Requested, Status, runtime::TokenKey},
    steps::{Ctx, Recorder, exchange, json_body},
};

/// The step's MoMo, its credentials rendered and masked.
pub(super) struct Client {
    base: String,
    api_user: String,
    api_key: String,
    subscription_key: String,
    environment: String,
}

fn assertion(message: String) -> Failure {
    Failure::new(Outcome::AssertionFailed, message)
}

impl Client {
    pub(super) fn of(m: &Momo, ctx: &Ctx<'_>) -> Result<Client, Failure> {
        let f = |name: &str, v: &str| ctx.render(&format!("rail.momo.{name}"), v);
        let c = Client {
            base: f("base_url", &m.base_url)?.trim().trim_end_matches('/').to_owned(),
            api_user: f("api_user", &m.api_user)?.trim().to_owned(),
            api_key: f("api_key", &m.api_key)?,
            subscription_key: f("subscription_key", &m.subscription_key)?,
            environment: f("target_environment", &m.target_environment)?.trim().to_owned(),
        };
        let mut mask = ctx.masker.lock();
        for s in [&c.api_key, &c.subscription_key] {
            mask.add_secret(s);
        }
        drop(mask);
        if !codes::is_reference_id(&c.api_user) {
            return Err(assertion("rail.momo.api_user: the API user is a UUID (8-4-4-4-12 hexadecimal digits)".into()));
        }
        if !valid_environment(&c.environment) {
            return Err(assertion(format!("rail.momo.target_environment: give {ENVIRONMENT_HELP}")));
        }
        if c.api_key.is_empty() || c.subscription_key.is_empty() {
            return Err(assertion("rail.momo: api_key and subscription_key must not be empty".into()));
        }
        Ok(c)
    }

    /// `POST /collection/v1_0/requesttopay`: 202 with an empty body means the payer is being
    /// asked; the payment is named by our `X-Reference-Id` from now on.
    pub(super) async fn request_to_pay(
        &self,
        ctx: &Ctx<'_>,
        rec: &mut Recorder,
        c: &Collect<'_>,
    ) -> Result<Requested, Failure> {
        if let Some(want) = super::environment_currency(&self.environment).filter(|w| *w != c.currency) {
            return Err(assertion(format!(
                "rail.momo.target_environment `{}` takes {want} only, not {} (MoMo would refuse INVALID_CURRENCY)",
                self.environment, c.currency
            )));
        }
        let party: String = c.msisdn.chars().filter(char::is_ascii_digit).collect();
        let body = json!({
            "amount": c.amount.to_string(),
            "currency": c.currency.code(),
            "externalId": c.reference,
            "payer": {"partyIdType": "MSISDN", "partyId": party},
            "payerMessage": c.description,
            "payeeNote": c.reference,
        });
        let mut headers = vec![("x-reference-id".to_owned(), c.idempotency_key.to_owned())];
        if let Some(url) = c.callback_url {
            headers.push(("x-callback-url".to_owned(), url.to_owned()));
        }
        let call = Call {
            label: "request to pay",
            method: Method::POST,
            path: "/collection/v1_0/requesttopay".into(),
            headers,
            body: Some(body),
        };
        let r = self.call(ctx, rec, &call).await?;
        if r.status.as_u16() != 202 {
            return Err(if r.status.is_success() {
                Failure::new(
                    Outcome::GatewayError,
                    format!("request to pay: HTTP {}, where MoMo answers 202 Accepted", r.status.as_u16()),
                )
            } else {
                refusal("request to pay", &r, ctx)
            });
        }
        Ok(Requested::Pending { id: c.idempotency_key.to_owned() })
    }

    /// `GET /collection/v1_0/requesttopay/{id}`: 200 with the status document, even when failed.
    pub(super) async fn status(&self, ctx: &Ctx<'_>, rec: &mut Recorder, id: &str) -> Result<Status, Failure> {
        if !codes::is_reference_id(id) {
            return Err(Failure::new(Outcome::GatewayError, "status: the payment id is not an X-Reference-Id"));
        }
        let path = format!("/collection/v1_0/requesttopay/{id}");
        let call = Call { label: "status", method: Method::GET, path, headers: Vec::new(), body: None };
        let r = self.call(ctx, rec, &call).await?;
        if !r.status.is_success() {
            return Err(refusal("status", &r, ctx));
        }
        let s =
            codes::parse_status(&r.body).map_err(|e| Failure::new(Outcome::GatewayError, format!("status: {e}")))?;
        Ok(match s.state {
            codes::State::Pending => Status::Pending("PENDING".into()),
            _ => Status::Final(s.into_rail(id)),
        })
    }

    fn token_key(&self) -> TokenKey {
        TokenKey { rail: "momo", base: self.base.clone(), credential: self.api_user.clone() }
    }

    /// A valid Collection token, from the cache or `POST /collection/token/`.
    async fn token(&self, ctx: &Ctx<'_>, rec: &mut Recorder) -> Result<Secret, Failure> {
        if let Some(t) = ctx.payments.cached_token(&self.token_key()) {
            return Ok(t);
        }
        let basic = STANDARD.encode(format!("{}:{}", self.api_user, self.api_key));
        ctx.masker.lock().add_secret(&basic);
        let spec = RequestSpec {
            method: Method::POST,
            url: self.url("/collection/token/")?,
            headers: vec![
                ("authorization".into(), format!("Basic {basic}")),
                ("ocp-apim-subscription-key".into(), self.subscription_key.clone()),
            ],
            body: None,
        };
        let r = exchange(ctx, rec, ctx.http, "token".into(), &spec).await?;
        if !r.status.is_success() {
            let mut f = refusal("token", &r, ctx);
            if r.status.as_u16() == 401 {
                f.outcome = Outcome::AssertionFailed;
                f.message.push_str(" (check rail.momo.api_user, api_key and subscription_key)");
            }
            return Err(f);
        }
        let (token, ttl) =
            codes::parse_token(&r.body).map_err(|e| Failure::new(Outcome::GatewayError, format!("token: {e}")))?;
        Ok(crate::rails::keep_token(ctx, &self.token_key(), token, ttl))
    }

    /// One call with the bearer token, the target environment and the subscription key; a token
    /// MoMo refuses (401 not about the subscription key) is dropped and replaced once.
    async fn call(&self, ctx: &Ctx<'_>, rec: &mut Recorder, call: &Call) -> Result<Response, Failure> {
        for attempt in 0..2 {
            let token = self.token(ctx, rec).await?;
            let mut headers = vec![
                ("authorization".to_owned(), format!("Bearer {}", token.expose())),
                ("x-target-environment".to_owned(), self.environment.clone()),
                ("ocp-apim-subscription-key".to_owned(), self.subscription_key.clone()),
            ];
            headers.extend(call.headers.iter().cloned());
            let body = call.body.as_ref().and_then(json_body);
            let spec = RequestSpec { method: call.method.clone(), url: self.url(&call.path)?, headers, body };
            let r = exchange(ctx, rec, ctx.http, call.label.to_owned(), &spec).await?;
            let bad_key = codes::parse_error(&r.body).is_some_and(|e| e.is_bad_subscription_key());
            if r.status.as_u16() == 401 && !bad_key && attempt == 0 {
                ctx.payments.drop_token(&self.token_key());
                continue;
            }
            return Ok(r);
        }
        unreachable!("the second attempt always returns")
    }

    fn url(&self, path: &str) -> Result<url::Url, Failure> {
        let s = format!("{}{path}", self.base);
        url::Url::parse(&s).map_err(|e| assertion(format!("rail.momo.base_url: not a URL ({e})")))
    }
}

/// One MoMo API call: its label in the trace, and what it sends besides the common headers.
struct Call {
    label: &'static str,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<serde_json::Value>,
}

/// A refusal as a failure: MoMo's `{code, message}` when there is one (the message masked and
/// cut), else the start of the body.
fn refusal(what: &str, r: &Response, ctx: &Ctx<'_>) -> Failure {
    let status = r.status.as_u16();
    match codes::parse_error(&r.body) {
        Some(e) => {
            let message = ctx.start(&e.message, 120);
            let code = if e.code.is_empty() { String::new() } else { format!("{} ", ctx.start(&e.code, 40)) };
            let hint = match status {
                401 if e.is_bad_subscription_key() => " (check rail.momo.subscription_key)",
                409 => " (the X-Reference-Id was used before)",
                _ => "",
            };
            Failure::new(e.outcome(status), format!("{what}: HTTP {status}, {code}{message}{hint}"))
        }
        None => Failure::new(
            codes::by_status(status),
            format!("{what}: HTTP {status}, body {:?}", ctx.start(&r.text(), 120)),
        ),
    }
}
