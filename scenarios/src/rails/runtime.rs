//! What every payment of a prober shares, whatever its rail: access tokens, the money-safety locks
//! and the callback listeners. A [`Runtime`] outlives single runs, so tokens are reused until they
//! expire and "one request in flight per MSISDN" holds across every journey and every rail.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use parking_lot::Mutex;
use tokio::time::{Instant, sleep};

use super::callback::CallbackServer;
use crate::journey::Secret;

/// Refresh a token this long before it expires (or at half its lifetime, if that is later).
pub const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// State shared by every run of a prober process.
#[derive(Default)]
pub struct Runtime {
    /// By (rail, base URL, credential id).
    tokens: Mutex<HashMap<TokenKey, (Secret, Instant)>>,
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
    /// (listener `payment_callback`).
    pub fn with_listener_limits(limits: httpserve::Limits, metrics: Arc<httpserve::ServeMetrics>) -> Arc<Runtime> {
        Arc::new(Runtime { listener: (limits, metrics), ..Runtime::default() })
    }

    /// A cached token that is still usable (see [`Runtime::store_token`]).
    pub fn cached_token(&self, key: &TokenKey) -> Option<Secret> {
        let tokens = self.tokens.lock();
        let (t, usable_until) = tokens.get(key)?;
        (Instant::now() < *usable_until).then(|| t.clone())
    }

    pub fn store_token(&self, key: &TokenKey, token: Secret, expires_in: Duration) {
        // Refresh a minute early, but never make a short-lived token (Airtel's last minutes)
        // useless: keep at least half of its lifetime.
        let usable = expires_in.saturating_sub(TOKEN_MARGIN).max(expires_in / 2);
        self.tokens.lock().insert(key.clone(), (token, Instant::now() + usable));
    }

    /// Forgets a token the provider refused.
    pub fn drop_token(&self, key: &TokenKey) {
        self.tokens.lock().remove(key);
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

/// Names a cached token: the rail, its base URL and the credential the token was issued for (a
/// consumer key or API user id, never a secret).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    pub rail: &'static str,
    pub base: String,
    pub credential: String,
}

/// A phone number with a request in flight; free again on drop.
pub struct MsisdnGuard {
    runtime: Arc<Runtime>,
    pub msisdn: String,
}

impl Drop for MsisdnGuard {
    fn drop(&mut self) {
        self.runtime.in_flight.lock().remove(&self.msisdn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token is used until a minute before it expires, but at least for half its lifetime (an
    /// Airtel token may live only a few minutes); a dropped token is gone.
    #[tokio::test(start_paused = true)]
    async fn tokens_are_refreshed_early_but_short_ones_stay_useful() {
        let rt = Runtime::new();
        let key = |rail| TokenKey { rail, base: "http://x".into(), credential: "app".into() };
        rt.store_token(&key("mpesa-ke"), Secret::new(String::from("long")), Duration::from_secs(3600));
        rt.store_token(&key("airtel"), Secret::new(String::from("short")), Duration::from_secs(90));
        assert!(rt.cached_token(&key("momo")).is_none(), "tokens are per rail");
        tokio::time::advance(Duration::from_secs(44)).await;
        assert_eq!(rt.cached_token(&key("airtel")).unwrap().expose(), "short");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(rt.cached_token(&key("airtel")).is_none(), "half of 90 s has passed");
        tokio::time::advance(Duration::from_secs(3600 - 60 - 47)).await;
        assert!(rt.cached_token(&key("mpesa-ke")).is_some());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(rt.cached_token(&key("mpesa-ke")).is_none(), "refreshed a minute early");
        rt.store_token(&key("mpesa-ke"), Secret::new(String::from("again")), Duration::from_secs(3600));
        rt.drop_token(&key("mpesa-ke"));
        assert!(rt.cached_token(&key("mpesa-ke")).is_none());
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
