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
}
