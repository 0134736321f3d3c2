//! `POST /api/v1/reports`.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::{Ingestor, Reason, Reply};

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match self.retry_after_s {
            Some(s) => (status, [(header::RETRY_AFTER, s.to_string())], axum::Json(self)).into_response(),
            None => (status, axum::Json(self)).into_response(),
        }
    }
}

/// Authenticates, holds the prober to its report rate, enforces the body limit (Content-Length first, then while reading), and hands
/// the body to [`Ingestor::accept`].
pub async fn post_report(State(ingest): State<Arc<Ingestor>>, headers: HeaderMap, body: Body) -> Response {
    let started = tokio::time::Instant::now();
    let received_ms = ingest.clock().now_ms();
    let reply = receive(&ingest, &headers, body, received_ms).await;
    ingest.metrics.ingest_seconds.observe(started.elapsed().as_secs_f64());
    reply.into_response()
}

/// The token of an `Authorization: Bearer <token>` header value. The scheme is matched
/// case-insensitively (RFC 9110 §11.1: `bearer`, `BEARER` are the same scheme), then one or more
/// spaces (RFC 6750 §2.1); surrounding whitespace is ignored. `None` for another scheme or an
/// empty token.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn receive(ingest: &Ingestor, headers: &HeaderMap, body: Body, received_ms: i64) -> Reply {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let who = match ingest.authenticate(auth) {
        Ok(who) => who,
        Err(reply) => return reply,
    };
    if let Err(reply) = ingest.throttle(who) {
        return reply;
    }
    let limit = ingest.max_body_bytes();
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return ingest.refuse(
            Some(who),
            Reason::TooLarge,
            format!("the body is {} bytes, above the limit of {limit}", declared.unwrap_or_default()),
        );
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return ingest.refuse(Some(who), Reason::TooLarge, format!("the body is above the limit of {limit} bytes"));
        }
        Err(e) if httpserve::Error::is_body_too_slow(&*e) => {
            return ingest.refuse(Some(who), Reason::TooSlow, e.to_string());
        }
        Err(e) => return ingest.refuse(Some(who), Reason::Incomplete, format!("the body ended early: {e}")),
    };
    ingest.accept(who, bytes, received_ms).await
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for h in ["Bearer abc", "bearer abc", "BEARER abc", "BeArEr   abc ", " Bearer abc"] {
            assert_eq!(bearer_token(h), Some("abc"), "{h:?}");
        }
        for h in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "", "Token abc"] {
            assert_eq!(bearer_token(h), None, "{h:?}");
        }
    }
}
