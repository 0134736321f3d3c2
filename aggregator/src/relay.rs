//! The Daraja STK callback relay. Daraja POSTs the payment's result to `/stk/callback` (the
//! `CallBackURL` a prober gives in its push); the prober polls `GET /stk/{CheckoutRequestID}` with
//! its report token (`Authorization: Bearer`), because a callback names the payer's phone number.
//! Daraja's POST carries no credentials (Daraja sends none); an unknown CheckoutRequestID is
//! useless to a stranger, and the body is validated and bounded.
//! Callbacks live in memory, bounded in number (oldest dropped first) and age (TTL). Daraja may
//! deliver a callback more than once: the first one is kept.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use parking_lot::Mutex;
use serde_json::json;

use crate::{clock::SharedClock, ingest::Ingestor, metrics::Metrics};

/// Largest callback body accepted.
pub const MAX_CALLBACK_BYTES: usize = 64 * 1024;

/// Why a callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("no Body.stkCallback.CheckoutRequestID string")]
    NoCheckoutRequestId,
}

/// What `put` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Stored,
    Duplicate,
}

pub struct Relay {
    clock: SharedClock,
    ttl_ms: i64,
    max_kept: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, Bytes>,
    /// (stored at, id), oldest first.
    order: VecDeque<(i64, String)>,
}

impl Relay {
    pub fn new(clock: SharedClock, ttl: std::time::Duration, max_kept: usize) -> Relay {
        Relay { clock, ttl_ms: ttl.as_millis() as i64, max_kept: max_kept.max(1), inner: Mutex::default() }
    }

    fn expire(&self, inner: &mut Inner) {
        let now = self.clock.now_ms();
        while let Some((at, id)) = inner.order.front() {
            if *at + self.ttl_ms > now && inner.order.len() <= self.max_kept {
                break;
            }
            inner.by_id.remove(id);
            inner.order.pop_front();
        }
    }

    /// Keeps a callback by its CheckoutRequestID (the first delivery wins).
    pub fn put(&self, body: &[u8]) -> Result<(Put, String), RelayError> {
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| RelayError::NotJson(e.to_string()))?;
        let id = v
            .pointer("/Body/stkCallback/CheckoutRequestID")
            .and_then(|x| x.as_str())
            .filter(|s| !s.is_empty() && s.len() <= 128)
            .ok_or(RelayError::NoCheckoutRequestId)?
            .to_owned();
        let mut inner = self.inner.lock();
        self.expire(&mut inner);
        if inner.by_id.contains_key(&id) {
            return Ok((Put::Duplicate, id));
        }
        inner.by_id.insert(id.clone(), Bytes::copy_from_slice(body));
        inner.order.push_back((self.clock.now_ms(), id.clone()));
        self.expire(&mut inner);
        Ok((Put::Stored, id))
    }

    /// The callback for `id`, while kept.
    pub fn get(&self, id: &str) -> Option<Bytes> {
        let mut inner = self.inner.lock();
        self.expire(&mut inner);
        inner.by_id.get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone)]
struct RelayState {
    relay: Arc<Relay>,
    /// Knows the probers' tokens: only a prober may read a callback.
    ingest: Arc<Ingestor>,
    metrics: Arc<Metrics>,
}

/// `POST /stk/callback` and `GET /stk/{CheckoutRequestID}`.
pub fn router(relay: Arc<Relay>, ingest: Arc<Ingestor>, metrics: Arc<Metrics>) -> Router {
    Router::new().route("/stk/callback", post(callback)).route("/stk/{id}", get(fetch)).with_state(RelayState {
        relay,
        ingest,
        metrics,
    })
}

async fn callback(State(s): State<RelayState>, headers: header::HeaderMap, body: axum::body::Body) -> Response {
    let count = |result: &str| {
        s.metrics.relay_callbacks.get_or_create(&crate::metrics::RelayLabels { result: result.into() }).inc();
    };
    let refuse = |status: StatusCode, why: String| {
        (status, Json(json!({"ResultCode": 1, "ResultDesc": format!("Rejected: {why}")}))).into_response()
    };
    // A declared length above the bound is refused before a byte of the body is read.
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > MAX_CALLBACK_BYTES as u64) {
        count("too_large");
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is {n} bytes, above {MAX_CALLBACK_BYTES}"));
    }
    let body = match Limited::new(body, MAX_CALLBACK_BYTES).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            count("too_large");
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is above {MAX_CALLBACK_BYTES} bytes"));
        }
        Err(e) if httpserve::Error::is_body_too_slow(&*e) => {
            count("too_slow");
            return refuse(StatusCode::REQUEST_TIMEOUT, e.to_string());
        }
        Err(e) => {
            count("incomplete");
            return refuse(StatusCode::BAD_REQUEST, format!("the body could not be read: {e}"));
        }
    };
    match s.relay.put(&body) {
        Ok((put, id)) => {
            count(if put == Put::Stored { "stored" } else { "duplicate" });
            tracing::debug!(checkout_request_id = %id, ?put, "STK callback relayed");
            // Daraja's own acknowledgement shape.
            Json(json!({"ResultCode": 0, "ResultDesc": "Accepted"})).into_response()
        }
        Err(e) => {
            count("rejected");
            refuse(StatusCode::BAD_REQUEST, e.to_string())
        }
    }
}

async fn fetch(State(s): State<RelayState>, Path(id): Path<String>, headers: header::HeaderMap) -> Response {
    let presented =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(crate::ingest::bearer_token);
    if presented.and_then(|t| s.ingest.prober_with_token(t)).is_none() {
        let reason = if presented.is_none() { "missing `Authorization: Bearer <token>`" } else { "unknown token" };
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({
                "status": "error",
                "reason": format!("{reason}: a relayed callback is read with a prober's report token \
                    (`mpesa_stk.result.relay.token` in the journey)"),
            })),
        )
            .into_response();
    }
    match s.relay.get(&id) {
        Some(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"status": "pending", "reason": "no callback for this CheckoutRequestID (yet)"})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    fn callback(id: &str, code: i64) -> Vec<u8> {
        format!(r#"{{"Body":{{"stkCallback":{{"MerchantRequestID":"m","CheckoutRequestID":"{id}","ResultCode":{code},"ResultDesc":"x"}}}}}}"#)
            .into_bytes()
    }

    #[test]
    fn keeps_the_first_delivery_until_the_ttl() {
        let clock = ManualClock::new(1_000_000);
        let r = Relay::new(Arc::new(clock.clone()), Duration::from_secs(60), 10);
        assert!(r.get("ws_CO_1").is_none());
        assert_eq!(r.put(&callback("ws_CO_1", 0)).unwrap().0, Put::Stored);
        assert_eq!(r.put(&callback("ws_CO_1", 1032)).unwrap().0, Put::Duplicate);
        assert_eq!(r.get("ws_CO_1").unwrap(), Bytes::from(callback("ws_CO_1", 0)));
        clock.advance_ms(59_999);
        assert!(r.get("ws_CO_1").is_some());
        clock.advance_ms(1);
        assert!(r.get("ws_CO_1").is_none());
    }

    #[test]
    fn bounded_oldest_first() {
        let r = Relay::new(Arc::new(ManualClock::new(0)), Duration::from_secs(60), 3);
        for i in 0..5 {
            r.put(&callback(&format!("id{i}"), 0)).unwrap();
        }
        assert_eq!(r.len(), 3);
        assert!(r.get("id1").is_none());
        assert!(r.get("id2").is_some() && r.get("id4").is_some());
    }

    #[test]
    fn refuses_what_is_not_a_callback() {
        let r = Relay::new(Arc::new(ManualClock::new(0)), Duration::from_secs(60), 3);
        assert!(matches!(r.put(b"nope"), Err(RelayError::NotJson(_))));
        assert_eq!(r.put(br#"{"Body":{}}"#), Err(RelayError::NoCheckoutRequestId));
        assert!(r.is_empty());
    }
}
