//! Seeded randomness shared by the handlers, so a run can be replayed from `--seed`.

use std::sync::Arc;

use parking_lot::Mutex;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded ChaCha8 stream behind a lock (held only to draw, never across `.await`).
#[derive(Clone)]
pub(crate) struct SharedRng(Arc<Mutex<ChaCha8Rng>>);

const ALNUM_UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const ALNUM_MIXED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

impl SharedRng {
    /// `stream` separates independent uses of one seed (faults, identifiers), so drawing an
    /// identifier does not shift the fault decisions.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Self(Arc::new(Mutex::new(rng)))
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut ChaCha8Rng) -> R) -> R {
        f(&mut self.0.lock())
    }

    /// `len` characters of `A-Z0-9`, like an M-Pesa receipt (`OEB44R5U3U`).
    pub fn upper_alnum(&self, len: usize) -> String {
        self.with(|r| (0..len).map(|_| ALNUM_UPPER[r.random_range(0..ALNUM_UPPER.len())] as char).collect())
    }

    /// `len` characters of `A-Za-z0-9`, like a Daraja access token.
    pub fn mixed_alnum(&self, len: usize) -> String {
        self.with(|r| (0..len).map(|_| ALNUM_MIXED[r.random_range(0..ALNUM_MIXED.len())] as char).collect())
    }

    /// `len` decimal digits.
    pub fn digits(&self, len: usize) -> String {
        self.with(|r| (0..len).map(|_| char::from(b'0' + r.random_range(0..10u8))).collect())
    }

    /// `len` lowercase hexadecimal digits, like a MoMo API key.
    pub fn hex(&self, len: usize) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.with(|r| (0..len).map(|_| HEX[r.random_range(0..16)] as char).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::SharedRng;

    #[test]
    fn same_seed_same_values_and_streams_differ() {
        let a = SharedRng::new(7, 1);
        let b = SharedRng::new(7, 1);
        let c = SharedRng::new(7, 2);
        let ra = a.upper_alnum(10);
        assert_eq!(ra, b.upper_alnum(10));
        assert_ne!(ra, c.upper_alnum(10));
        assert_eq!(ra.len(), 10);
        assert!(ra.chars().all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit()));
        assert!(a.digits(8).chars().all(|ch| ch.is_ascii_digit()));
        assert!(a.hex(32).chars().all(|ch| ch.is_ascii_digit() || ('a'..='f').contains(&ch)));
    }
}
