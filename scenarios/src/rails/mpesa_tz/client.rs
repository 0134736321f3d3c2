//! The OpenAPI's calls: the session (cached, replaced once if refused) and the C2B single stage,
//! each with an RSA-encrypted bearer.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};
use http::Method;
use rsa::{Pkcs1v15Encrypt, RsaPublicKey, pkcs1::DecodeRsaPublicKey, pkcs8::DecodePublicKey};
use serde_json::{Value, json};

use super::{Vodacom, codes};
use crate::{
    http::{RequestSpec, Response},
    journey::Secret,
    outcome::{Failure, Outcome},
    rails::{Collect, RailResult, Requested, runtime::TokenKey},
    steps::{Ctx, Recorder, exchange, json_body},
};

/// How long a session is reused. Unsure: the portal does not state a lifetime; a refused session
/// is replaced at once anyway.
const SESSION_TTL: Duration = Duration::from_secs(3600);

/// The portal's public key: base64 SubjectPublicKeyInfo DER (as the portal shows it), or a PEM
/// (`PUBLIC KEY` or `RSA PUBLIC KEY`).
pub fn public_key(text: &str) -> Result<RsaPublicKey, String> {
    let body: String = text.lines().filter(|l| !l.trim_start().starts_with("-----")).collect();
    let body: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD.decode(body.as_bytes()).map_err(|_| "public_key: not base64".to_owned())?;
    RsaPublicKey::from_public_key_der(&der)
        .or_else(|_| RsaPublicKey::from_pkcs1_der(&der))
        .map_err(|_| "public_key: not an RSA public key (SubjectPublicKeyInfo or PKCS#1 DER)".to_owned())
}

/// `base64(RSA-PKCS#1-v1.5-encrypt(key, secret))`, with randomness from the OS.
pub fn bearer(key: &RsaPublicKey, secret: &str) -> Result<String, String> {
    let mut rng = rsa::rand_core::OsRng;
    key.encrypt(&mut rng, Pkcs1v15Encrypt, secret.as_bytes())
        .map(|c| STANDARD.encode(c))
        .map_err(|_| "public_key: the key is too small to encrypt the credential".to_owned())
}

/// The step's OpenAPI, its credentials rendered and masked.
pub(super) struct Client {
    /// `{base}/{environment}/ipg/v2/{market}`.
    root: String,
    api_key: String,
    key: RsaPublicKey,
    provider: String,
}

impl Client {
    pub(super) fn of(v: &Vodacom, ctx: &Ctx<'_>) -> Result<Client, Failure> {
        let f = |name: &str, s: &str| ctx.render(&format!("rail.mpesa-tz.{name}"), s);
        let base = f("base_url", &v.base_url)?;
        let api_key = f("api_key", &v.api_key)?;
        ctx.masker.lock().add_secret(&api_key);
        let key = public_key(&f("public_key", &v.public_key)?)
            .map_err(|e| Failure::new(Outcome::AssertionFailed, format!("rail.mpesa-tz.{e}")))?;
        Ok(Client {
            root: format!("{}/{}/ipg/v2/{}", base.trim_end_matches('/'), v.environment, v.market),
            api_key,
            key,
            provider: f("service_provider_code", &v.service_provider_code)?,
        })
    }

    /// The C2B single stage; its answer is the payment's result.
    pub(super) async fn pay(&self, ctx: &Ctx<'_>, rec: &mut Recorder, c: &Collect<'_>) -> Result<Requested, Failure> {
        let conversation = codes::conversation_id(c.idempotency_key);
        let body = json!({
            "input_Amount": c.amount.to_string(),
            "input_Country": "TZN",
            "input_Currency": c.currency.code(),
            "input_CustomerMSISDN": c.msisdn,
            "input_ServiceProviderCode": self.provider,
            "input_ThirdPartyConversationID": conversation,
            "input_TransactionReference": c.reference,
            "input_PurchasedItemsDesc": c.description,
        });
        for attempt in 0..2 {
            let session = self.session(ctx, rec).await?;
            let r = self.call(ctx, rec, "c2b", "/c2bPayment/singleStage/", &session, Some(&body)).await?;
            let answer = codes::parse_answer(&r.body).ok();
            if attempt == 0 && !r.status.is_success() && codes::is_bad_session(r.status.as_u16(), answer.as_ref()) {
                ctx.payments.drop_token(&self.token_key());
                continue;
            }
            let Some(a) = answer else { return Err(refusal("c2b", &r, ctx)) };
            let id = a.third_party_conversation_id.clone().unwrap_or_else(|| conversation.clone());
            if id != conversation {
                return Err(Failure::new(
                    Outcome::GatewayError,
                    format!("c2b: the answer is for conversation {id:?}, not the requested {conversation:?}"),
                ));
            }
            // The step compares the result's id with the requested one; keep the step's key.
            return Ok(Requested::Done(RailResult {
                id: c.idempotency_key.to_owned(),
                code: a.code,
                text: a.desc,
                raw: a.raw,
            }));
        }
        Err(Failure::new(Outcome::GatewayError, "c2b: the OpenAPI refused a fresh session too"))
    }

    fn token_key(&self) -> TokenKey {
        // The service provider code names the credential: never the API key itself.
        TokenKey { rail: "mpesa-tz", base: self.root.clone(), credential: self.provider.clone() }
    }

    /// A session id, from the cache or `getSession`.
    async fn session(&self, ctx: &Ctx<'_>, rec: &mut Recorder) -> Result<Secret, Failure> {
        if let Some(s) = ctx.payments.cached_token(&self.token_key()) {
            return Ok(s);
        }
        let r = self.call(ctx, rec, "session", "/getSession/", &self.api_key, None).await?;
        let id = match codes::parse_session(&r.body) {
            Ok(id) => id,
            Err(Ok(a)) => {
                let info = codes::describe(&a.code);
                let class = if info.known { info.class } else { Outcome::GatewayError };
                let class = if class == Outcome::Ok { Outcome::GatewayError } else { class };
                return Err(Failure::new(
                    class,
                    format!("session: HTTP {}, {} ({}): {}", r.status.as_u16(), a.code, info.meaning, a.desc),
                ));
            }
            Err(Err(_)) if !r.status.is_success() => return Err(refusal("session", &r, ctx)),
            Err(Err(e)) => return Err(Failure::new(Outcome::GatewayError, format!("session: {e}"))),
        };
        Ok(crate::rails::keep_token(ctx, &self.token_key(), id, SESSION_TTL))
    }

    /// One call with the bearer encrypted from `secret` (masked before anything is recorded): a
    /// POST of `body`, or a GET without one.
    async fn call(
        &self,
        ctx: &Ctx<'_>,
        rec: &mut Recorder,
        label: &str,
        path: &str,
        secret: &impl AsSecret,
        body: Option<&Value>,
    ) -> Result<Response, Failure> {
        let b = bearer(&self.key, secret.text())
            .map_err(|e| Failure::new(Outcome::AssertionFailed, format!("rail.mpesa-tz.{e}")))?;
        ctx.masker.lock().add_secret(&b);
        let url = format!("{}{path}", self.root);
        let url = url::Url::parse(&url).map_err(|e| {
            Failure::new(
                Outcome::AssertionFailed,
                format!("rail.mpesa-tz.base_url: not a URL with the path {path}: {e}"),
            )
        })?;
        // `json_body` sets `Content-Type: application/json`.
        let headers = vec![("authorization".into(), format!("Bearer {b}")), ("origin".into(), "*".into())];
        let method = if body.is_some() { Method::POST } else { Method::GET };
        let spec = RequestSpec { method, url, headers, body: body.and_then(json_body) };
        exchange(ctx, rec, ctx.http, label.to_owned(), &spec).await
    }
}

/// What a bearer is encrypted from: the API key or a session id.
trait AsSecret {
    fn text(&self) -> &str;
}

impl AsSecret for String {
    fn text(&self) -> &str {
        self
    }
}

impl AsSecret for Secret {
    fn text(&self) -> &str {
        self.expose()
    }
}

/// An answer without an OpenAPI code, as a failure (the body masked before it is cut).
fn refusal(what: &str, r: &Response, ctx: &Ctx<'_>) -> Failure {
    let status = r.status.as_u16();
    let outcome = if r.status.is_server_error() || r.status.is_success() {
        Outcome::GatewayError
    } else {
        Outcome::AssertionFailed
    };
    Failure::new(
        outcome,
        format!("{what}: HTTP {status} without an output_ResponseCode, body {:?}", ctx.start(&r.text(), 120)),
    )
}
