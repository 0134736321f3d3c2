//! `GET /oauth/v1/generate?grant_type=client_credentials` with `Authorization: Basic
//! base64(key:secret)` → `{"access_token": "...", "expires_in": "3599"}` (`expires_in` a string,
//! as Daraja sends it). Tokens live for the configured TTL; the other endpoints accept only live
//! ones.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json,
    extract::{Query, State},
    http::{HeaderMap, header},
};
use base64::Engine as _;
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
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else { return false };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return false };
    let Ok(decoded) = String::from_utf8(decoded) else { return false };
    decoded.split_once(':') == Some((key, secret))
}

impl Daraja {
    /// Accepts a request only with `Authorization: Bearer <live token>`; anything else is
    /// `404.001.03 Invalid Access Token` (HTTP 404).
    pub(crate) fn check_bearer(&self, headers: &HeaderMap) -> Result<(), DarajaError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned());
        match token {
            Some(token) if self.tokens.lock().get(&token, Instant::now()).is_some() => Ok(()),
            _ => Err(DarajaError::invalid_token()),
        }
    }
}
