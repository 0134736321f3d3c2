//! A bounded, expiring map: every piece of state the sandbox keeps (USSD sessions, tokens, STK
//! transactions, carts, orders) lives in one, so memory stays bounded under any load.

use std::{collections::HashMap, hash::Hash, time::Duration};

use tokio::time::Instant;

/// At most `cap` entries; an entry older than `ttl` (since it was inserted or last
/// [`touch`](Bounded::touch)ed) is gone. Inserting into a full map first drops expired entries,
/// then the oldest one.
#[derive(Debug)]
pub(crate) struct Bounded<K, V> {
    map: HashMap<K, (Instant, V)>,
    cap: usize,
    ttl: Duration,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    pub fn new(cap: usize, ttl: Duration) -> Self {
        Self { map: HashMap::new(), cap: cap.max(1), ttl }
    }

    fn fresh(&self, at: Instant, now: Instant) -> bool {
        now.saturating_duration_since(at) < self.ttl
    }

    /// Inserts or replaces; returns how many entries were dropped to make room.
    pub fn insert(&mut self, key: K, value: V, now: Instant) -> usize {
        let mut dropped = 0;
        if !self.map.contains_key(&key) && self.map.len() >= self.cap {
            let before = self.map.len();
            self.purge(now);
            dropped = before - self.map.len();
            if self.map.len() >= self.cap
                && let Some(oldest) = self.map.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| k.clone())
            {
                self.map.remove(&oldest);
                dropped += 1;
            }
        }
        self.map.insert(key, (now, value));
        dropped
    }

    pub fn get(&self, key: &K, now: Instant) -> Option<&V> {
        self.map.get(key).filter(|(at, _)| self.fresh(*at, now)).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &K, now: Instant) -> Option<&mut V> {
        let ttl = self.ttl;
        self.map.get_mut(key).filter(|(at, _)| now.saturating_duration_since(*at) < ttl).map(|(_, v)| v)
    }

    /// Restarts the entry's time to live.
    pub fn touch(&mut self, key: &K, now: Instant) {
        if let Some((at, _)) = self.map.get_mut(key) {
            *at = now;
        }
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.map.remove(key).map(|(_, v)| v)
    }

    pub fn purge(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.map.retain(|_, (at, _)| now.saturating_duration_since(*at) < ttl);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

/// A payment a [`Ledger`] keeps: whose it is, and whether it is still waiting for the payer.
pub(crate) trait Payment {
    fn msisdn(&self) -> &str;
    fn pending(&self) -> bool;
}

/// Why a [`Ledger`] did not take a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The id is known already.
    Duplicate,
    /// The MSISDN has a payment pending (the providers' "one transaction per subscriber").
    Locked,
    /// As many MSISDNs are locked as the ledger holds.
    Full,
}

/// Payments by id, and the subscriber lock: at most one pending payment per MSISDN. Shared by
/// every emulated provider that locks its subscribers.
pub(crate) struct Ledger<T> {
    pub txns: Bounded<String, T>,
    in_flight: HashMap<String, String>,
    max: usize,
}

impl<T: Payment> Ledger<T> {
    pub fn new(max: usize, ttl: Duration) -> Self {
        Self { txns: Bounded::new(max, ttl), in_flight: HashMap::new(), max: max.max(1) }
    }

    /// Checks the id is new and the subscriber free, then records the payment and locks its
    /// subscriber, atomically.
    pub fn admit(&mut self, id: &str, txn: T) -> Result<(), Refusal> {
        let now = Instant::now();
        let id = id.to_owned();
        if self.txns.get(&id, now).is_some() {
            return Err(Refusal::Duplicate);
        }
        if let Some(other) = self.in_flight.get(txn.msisdn())
            && self.txns.get(other, now).is_some_and(Payment::pending)
        {
            return Err(Refusal::Locked);
        }
        if self.in_flight.len() >= self.max && !self.in_flight.contains_key(txn.msisdn()) {
            self.in_flight.retain(|_, other| self.txns.get(other, now).is_some_and(Payment::pending));
            if self.in_flight.len() >= self.max {
                return Err(Refusal::Full);
            }
        }
        self.in_flight.insert(txn.msisdn().to_owned(), id.clone());
        self.txns.insert(id, txn, now);
        Ok(())
    }

    /// Applies `settle` to the payment (if it is still kept) and releases its subscriber.
    pub fn settle<R>(&mut self, id: &str, msisdn: &str, settle: impl FnOnce(&mut T) -> R) -> Option<R> {
        let result = self.txns.get_mut(&id.to_owned(), Instant::now()).map(settle);
        if self.in_flight.get(msisdn).map(String::as_str) == Some(id) {
            self.in_flight.remove(msisdn);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_exceeds_its_cap_and_drops_the_oldest() {
        let now = Instant::now();
        let mut m = Bounded::new(3, Duration::from_secs(60));
        for i in 0..3u32 {
            m.insert(i, i, now + Duration::from_millis(u64::from(i)));
        }
        let dropped = m.insert(9, 9, now + Duration::from_millis(10));
        assert_eq!(dropped, 1);
        assert_eq!(m.len(), 3);
        assert!(m.get(&0, now).is_none(), "the oldest entry goes first");
        assert_eq!(m.get(&9, now + Duration::from_millis(10)), Some(&9));
    }

    #[test]
    fn entries_expire_and_touch_renews() {
        let now = Instant::now();
        let mut m = Bounded::new(10, Duration::from_secs(5));
        m.insert("a", 1, now);
        m.insert("b", 2, now);
        m.touch(&"b", now + Duration::from_secs(4));
        let later = now + Duration::from_secs(6);
        assert!(m.get(&"a", later).is_none());
        assert_eq!(m.get(&"b", later), Some(&2));
        m.purge(later);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn replacing_a_key_in_a_full_map_drops_nothing() {
        let now = Instant::now();
        let mut m = Bounded::new(2, Duration::from_secs(5));
        m.insert(1, "x", now);
        m.insert(2, "y", now);
        assert_eq!(m.insert(1, "z", now), 0);
        assert_eq!(m.len(), 2);
    }

    #[derive(Debug)]
    struct P(&'static str, bool);

    impl Payment for P {
        fn msisdn(&self) -> &str {
            self.0
        }
        fn pending(&self) -> bool {
            self.1
        }
    }

    #[test]
    fn the_ledger_locks_a_subscriber_until_the_payment_settles() {
        let mut l = Ledger::new(2, Duration::from_secs(60));
        l.admit("a", P("2547", true)).unwrap();
        assert_eq!(l.admit("a", P("2548", true)), Err(Refusal::Duplicate));
        assert_eq!(l.admit("b", P("2547", true)), Err(Refusal::Locked));
        l.admit("c", P("2549", true)).unwrap();
        assert_eq!(l.admit("d", P("2540", true)), Err(Refusal::Full));
        assert_eq!(l.settle("a", "2547", |p| p.1 = false), Some(()));
        l.admit("b", P("2547", true)).unwrap();
        assert_eq!(l.settle("zz", "2541", |p| p.1 = false), None, "an unknown id changes nothing");
    }
}
