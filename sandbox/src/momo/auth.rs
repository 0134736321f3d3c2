//! Who may call: the subscription key on every call, sandbox API users and their keys, and the
//! Collection token.
//!
//! - `POST /v1_0/apiuser`, `X-Reference-Id: <UUID v4>`, `{"providerCallbackHost": "host"}` → 201,
//!   empty body (409 `RESOURCE_ALREADY_EXIST` for a used id);
//! - `GET /v1_0/apiuser/{id}` → `{"providerCallbackHost", "targetEnvironment": "sandbox"}`;
//! - `POST /v1_0/apiuser/{id}/apikey` → 201 `{"apiKey": "<32 hex digits>"}` (a new key each time);
//! - `POST /collection/token/`, `Authorization: Basic base64(apiUser:apiKey)`, no body →
//!   `{"access_token", "token_type": "access_token", "expires_in": 3600}` (a number), or 401
//!   `{"error": "login_failed"}`.

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{ApiUser, Momo, MomoError, uuid_v4};

/// Length of an issued token (MTN's are long JWTs; any opaque string serves a client).
const TOKEN_LEN: usize = 64;

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

impl Momo {
    /// `Ocp-Apim-Subscription-Key` must be the Collection key.
    pub(crate) fn check_subscription(&self, headers: &HeaderMap) -> Result<(), MomoError> {
        match header_text(headers, "ocp-apim-subscription-key") {
            None => Err(MomoError::missing_subscription_key()),
            Some(key) if key == self.subscription_key => Ok(()),
            Some(_) => Err(MomoError::invalid_subscription_key()),
        }
    }

    /// The subscription key, then `Authorization: Bearer <live token>`; the API user it was
    /// issued to.
    pub(crate) fn check_bearer(&self, headers: &HeaderMap) -> Result<String, MomoError> {
        self.check_subscription(headers)?;
        let user = crate::auth::bearer(headers).and_then(|t| self.tokens.lock().get(&t, Instant::now()).cloned());
        user.ok_or_else(MomoError::invalid_token)
    }

    /// The callback host registered for an API user.
    pub(crate) fn callback_host(&self, api_user: &str) -> Option<String> {
        self.users.lock().get(&api_user.to_owned(), Instant::now()).map(|u| u.callback_host.clone())
    }
}

/// `POST /v1_0/apiuser`.
pub(crate) async fn create_user(
    State(momo): State<Arc<Momo>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, MomoError> {
    momo.check_subscription(&headers)?;
    let id = header_text(&headers, "x-reference-id")
        .and_then(uuid_v4)
        .ok_or_else(|| MomoError::bad_request("X-Reference-Id: give a new UUID version 4"))?;
    let host = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("providerCallbackHost").and_then(Value::as_str).map(|h| h.trim().to_owned()))
        .filter(|h| !h.is_empty() && h.len() <= 255 && !h.contains(['/', ' ']))
        .ok_or_else(|| MomoError::bad_request("providerCallbackHost: give the host name callbacks go to"))?;
    let now = Instant::now();
    let mut users = momo.users.lock();
    if users.get(&id, now).is_some() {
        return Err(MomoError::duplicate_reference());
    }
    users.insert(id, ApiUser { callback_host: host, api_key: None }, now);
    tracing::info!("momo api user created");
    Ok(StatusCode::CREATED)
}

/// `GET /v1_0/apiuser/{id}`.
pub(crate) async fn get_user(
    State(momo): State<Arc<Momo>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, MomoError> {
    momo.check_subscription(&headers)?;
    let host = momo.callback_host(&id.to_ascii_lowercase()).ok_or_else(MomoError::not_found)?;
    Ok(Json(json!({ "providerCallbackHost": host, "targetEnvironment": "sandbox" })))
}

/// `POST /v1_0/apiuser/{id}/apikey`.
pub(crate) async fn create_key(
    State(momo): State<Arc<Momo>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, MomoError> {
    momo.check_subscription(&headers)?;
    let key = momo.rng.hex(32);
    let mut users = momo.users.lock();
    let user = users.get_mut(&id.to_ascii_lowercase(), Instant::now()).ok_or_else(MomoError::not_found)?;
    user.api_key = Some(key.clone());
    Ok((StatusCode::CREATED, Json(json!({ "apiKey": key }))).into_response())
}

/// The API user whose Basic credentials these are.
fn basic_user(momo: &Momo, headers: &HeaderMap) -> Option<String> {
    let (user, key) = crate::auth::basic(headers)?;
    let user = user.to_ascii_lowercase();
    let known = momo.users.lock().get(&user, Instant::now()).and_then(|u| u.api_key.clone());
    (known.as_deref() == Some(key.as_str())).then_some(user)
}

/// `POST /collection/token/`.
pub(crate) async fn token(State(momo): State<Arc<Momo>>, headers: HeaderMap) -> Result<Json<Value>, MomoError> {
    momo.check_subscription(&headers)?;
    let Some(user) = basic_user(&momo, &headers) else {
        tracing::info!("momo token refused: missing or wrong Basic API user and key");
        return Err(MomoError::login_failed());
    };
    let token = momo.rng.mixed_alnum(TOKEN_LEN);
    momo.tokens.lock().insert(token.clone(), user, Instant::now());
    Ok(Json(json!({
        "access_token": token,
        "token_type": "access_token",
        "expires_in": momo.token_ttl.as_secs(),
    })))
}
