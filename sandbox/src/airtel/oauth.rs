//! `POST /auth/oauth2/token` with a JSON body (not a form) `{"client_id", "client_secret",
//! "grant_type": "client_credentials"}` → `{"access_token": "…", "expires_in": "3599",
//! "token_type": "bearer"}` (`expires_in` a string, as Airtel's example has it). Checked in this
//! order: a JSON object, `client_id` and `client_secret` present, `grant_type`, then the
//! credentials. Tokens live for the configured TTL; the payment paths accept only live ones.

use std::sync::Arc;

use axum::{Json, body::Bytes, extract::State};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::{Airtel, AirtelError};

/// Length of an issued token (Airtel's are opaque; this is the sandbox's choice).
const TOKEN_LEN: usize = 32;

fn text<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, AirtelError> {
    obj.get(field).and_then(Value::as_str).ok_or_else(|| AirtelError::oauth_invalid_request(field))
}

/// Checks a token request body against the configured credentials.
pub(crate) fn check_request(body: &[u8], client_id: &str, client_secret: &str) -> Result<(), AirtelError> {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return Err(AirtelError::oauth_not_json());
    };
    let id = text(&obj, "client_id")?;
    let secret = text(&obj, "client_secret")?;
    if obj.get("grant_type").and_then(Value::as_str) != Some("client_credentials") {
        return Err(AirtelError::oauth_grant_type());
    }
    if id != client_id || secret != client_secret {
        return Err(AirtelError::oauth_invalid_client());
    }
    Ok(())
}

/// `POST /auth/oauth2/token`.
pub(crate) async fn token(State(airtel): State<Arc<Airtel>>, body: Bytes) -> Result<Json<Value>, AirtelError> {
    if let Err(e) = check_request(&body, &airtel.settings.client_id, &airtel.settings.client_secret) {
        tracing::info!(error = %e, "airtel oauth refused");
        return Err(e);
    }
    let token = airtel.rng.mixed_alnum(TOKEN_LEN);
    let dropped = airtel.tokens.lock().insert(token.clone(), (), Instant::now());
    tracing::debug!(expires_in = airtel.token_ttl.as_secs(), dropped, "airtel oauth token issued");
    Ok(Json(json!({
        "access_token": token,
        "expires_in": airtel.token_ttl.as_secs().to_string(),
        "token_type": "bearer",
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_in_order() {
        let ok = br#"{"client_id":"a","client_secret":"b","grant_type":"client_credentials"}"#;
        assert!(check_request(ok, "a", "b").is_ok());
        let e = |body: &[u8]| check_request(body, "a", "b").unwrap_err();
        assert!(e(b"client_id=a").message.contains("JSON object"));
        assert!(e(br#"{"client_secret":"b"}"#).message.contains("client_id"));
        assert!(e(br#"{"client_id":"a","client_secret":1}"#).message.contains("client_secret"));
        assert_eq!(
            e(br#"{"client_id":"a","client_secret":"b","grant_type":"password"}"#).oauth,
            Some("unsupported_grant_type")
        );
        let wrong = e(br#"{"client_id":"a","client_secret":"x","grant_type":"client_credentials"}"#);
        assert_eq!((wrong.status.as_u16(), wrong.oauth), (401, Some("invalid_client")));
    }
}
