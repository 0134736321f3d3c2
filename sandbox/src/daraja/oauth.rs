//! `GET /oauth/v1/generate?grant_type=client_credentials` with `Authorization: Basic
//! base64(key:secret)` → `{"access_token": "...", "expires_in": "3599"}` (`expires_in` a string,
//! as Daraja sends it). Tokens live for the configured TTL; the other endpoints accept only live
//! ones.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json,
    extract::{Query, State},
    http::HeaderMap,
};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Daraja, DarajaError};

/// Length of an issued token (Daraja's are 28 characters).
const TOKEN_LEN: usize = 28;

/// `GET /oauth/v1/generate`.
pub(crate) async fn generate(
    State(daraja): State<Arc<Daraja>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, DarajaError> {
    if query.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return Err(DarajaError::invalid_grant_type());
    }
    if !basic_auth_matches(&headers, &daraja.consumer_key, &daraja.consumer_secret) {
        tracing::info!("oauth refused: missing or wrong Basic credentials");
        return Err(DarajaError::invalid_authentication());
    }
    let token = daraja.rng.mixed_alnum(TOKEN_LEN);
    let dropped = daraja.tokens.lock().insert(token.clone(), (), Instant::now());
    tracing::debug!(expires_in = daraja.token_ttl.as_secs(), dropped, "oauth token issued");
    Ok(Json(json!({ "access_token": token, "expires_in": daraja.token_ttl.as_secs().to_string() })))
}

fn basic_auth_matches(headers: &HeaderMap, key: &str, secret: &str) -> bool {
    crate::auth::basic(headers).is_some_and(|(k, s)| k == key && s == secret)
}

impl Daraja {
    /// Accepts a request only with `Authorization: Bearer <live token>`; anything else is
    /// `404.001.03 Invalid Access Token` (HTTP 404).
    pub(crate) fn check_bearer(&self, headers: &HeaderMap) -> Result<(), DarajaError> {
        match crate::auth::bearer(headers) {
            Some(token) if self.tokens.lock().get(&token, Instant::now()).is_some() => Ok(()),
            _ => Err(DarajaError::invalid_token()),
        }
    }
}
