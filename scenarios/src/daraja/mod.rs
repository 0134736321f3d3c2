//! The Daraja (M-Pesa) client side of the `mpesa_stk` step: credentials, tokens, the callback
//! listener, and the money-safety locks. A [`Runtime`] outlives single runs, so tokens are reused
//! until they expire and "one push in flight per MSISDN" holds across every journey of a prober.

pub mod callback;
pub mod codes;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{FixedOffset, Utc};
use parking_lot::Mutex;
use tokio::time::{Instant, sleep};

use self::callback::CallbackServer;
use crate::journey::Secret;

/// Refresh a token this long before it expires.
pub const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// State shared by every run of a prober process.
#[derive(Default)]
pub struct Runtime {
    tokens: Mutex<HashMap<(String, String), (Secret, Instant)>>,
    in_flight: Mutex<HashSet<String>>,
    callbacks: tokio::sync::Mutex<HashMap<String, Arc<CallbackServer>>>,
    /// Bounds on the callback listener's clients, and where its refusals are counted.
    listener: (httpserve::Limits, Arc<httpserve::ServeMetrics>),
}

impl Runtime {
    pub fn new() -> Arc<Runtime> {
        Arc::new(Runtime::default())
    }

    /// A runtime whose callback listener enforces `limits` and counts refusals in `metrics`
    /// (listener `daraja_callback`).
    pub fn with_listener_limits(limits: httpserve::Limits, metrics: Arc<httpserve::ServeMetrics>) -> Arc<Runtime> {
        Arc::new(Runtime { listener: (limits, metrics), ..Runtime::default() })
    }

    /// A cached token for (base URL, consumer key) that is valid for at least [`TOKEN_MARGIN`].
    pub fn cached_token(&self, base: &str, key: &str) -> Option<Secret> {
        let tokens = self.tokens.lock();
        let (t, exp) = tokens.get(&(base.to_owned(), key.to_owned()))?;
        (Instant::now() + TOKEN_MARGIN < *exp).then(|| t.clone())
    }

    pub fn store_token(&self, base: &str, key: &str, token: Secret, expires_in: Duration) {
        self.tokens.lock().insert((base.to_owned(), key.to_owned()), (token, Instant::now() + expires_in));
    }

    /// Forgets a token Daraja refused.
    pub fn drop_token(&self, base: &str, key: &str) {
        self.tokens.lock().remove(&(base.to_owned(), key.to_owned()));
    }

    /// Takes the first MSISDN of `candidates` with no push in flight, waiting until one is free.
    /// The lock is released when the guard drops.
    pub async fn lock_msisdn(self: &Arc<Self>, candidates: &[String]) -> MsisdnGuard {
        loop {
            {
                let mut busy = self.in_flight.lock();
                if let Some(m) = candidates.iter().find(|m| !busy.contains(*m)) {
                    busy.insert(m.clone());
                    return MsisdnGuard { runtime: self.clone(), msisdn: m.clone() };
                }
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    /// The callback listener on `listen` (started on first use).
    pub async fn callback_server(&self, listen: &str) -> std::io::Result<Arc<CallbackServer>> {
        let mut servers = self.callbacks.lock().await;
        if let Some(s) = servers.get(listen) {
            return Ok(s.clone());
        }
        let (limits, metrics) = &self.listener;
        let s = Arc::new(CallbackServer::start(listen, limits.clone(), metrics.clone()).await?);
        servers.insert(listen.to_owned(), s.clone());
        Ok(s)
    }
}

/// A phone number with a push in flight; free again on drop.
pub struct MsisdnGuard {
    runtime: Arc<Runtime>,
    pub msisdn: String,
}

impl Drop for MsisdnGuard {
    fn drop(&mut self) {
        self.runtime.in_flight.lock().remove(&self.msisdn);
    }
}

/// `YYYYMMDDHHmmss` in Nairobi time (EAT, UTC+3, no daylight saving).
pub fn timestamp_now() -> String {
    let eat = FixedOffset::east_opt(3 * 3600).expect("valid offset");
    Utc::now().with_timezone(&eat).format("%Y%m%d%H%M%S").to_string()
}

/// `base64(shortcode + passkey + timestamp)`.
pub fn password(shortcode: &str, passkey: &str, timestamp: &str) -> Secret {
    Secret::new(STANDARD.encode(format!("{shortcode}{passkey}{timestamp}")))
}

/// `Basic base64(key:secret)`.
pub fn basic_auth(key: &str, secret: &str) -> Secret {
    Secret::new(format!("Basic {}", STANDARD.encode(format!("{key}:{secret}"))))
}

/// Daraja wants 12-digit `2547…` numbers, without `+`.
pub fn daraja_msisdn(phone: &str) -> String {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    match digits.strip_prefix('0') {
        Some(local) if digits.len() == 10 => format!("254{local}"),
        _ => digits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_matches_the_published_vector() {
        let p =
            password("174379", "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919", "20160216165627");
        assert_eq!(
            p.expose(),
            "MTc0Mzc5YmZiMjc5ZjlhYTliZGJjZjE1OGU5N2RkNzFhNDY3Y2QyZTBjODkzMDU5YjEwZjc4ZTZiNzJhZGExZWQyYzkxOTIwMTYwMjE2MTY1NjI3"
        );
    }

    #[test]
    fn timestamps_are_nairobi_time() {
        let t = timestamp_now();
        assert_eq!(t.len(), 14);
        let utc = Utc::now().format("%H").to_string().parse::<u32>().unwrap();
        let eat = t[8..10].parse::<u32>().unwrap();
        // Allow for the hour turning over between the two calls.
        assert!(eat == (utc + 3) % 24 || eat == (utc + 4) % 24, "{t}");
    }

    #[test]
    fn msisdns_become_daraja_format() {
        assert_eq!(daraja_msisdn("+254708920430"), "254708920430");
        assert_eq!(daraja_msisdn("0708920430"), "254708920430");
    }

    #[tokio::test]
    async fn one_push_in_flight_per_msisdn() {
        let rt = Runtime::new();
        let pool = vec!["254700000100".to_owned(), "254700000200".to_owned()];
        let a = rt.lock_msisdn(&pool).await;
        let b = rt.lock_msisdn(&pool).await;
        assert_ne!(a.msisdn, b.msisdn);
        let waiting = tokio::time::timeout(Duration::from_millis(300), rt.lock_msisdn(&pool)).await;
        assert!(waiting.is_err(), "both numbers are busy");
        drop(a);
        let c = tokio::time::timeout(Duration::from_secs(2), rt.lock_msisdn(&pool)).await.unwrap();
        assert_eq!(c.msisdn, "254700000100");
    }
}
