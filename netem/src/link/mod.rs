//! The link model, as pure functions of time: no runtime, no I/O, no wall clock.
//!
//! One [`Link`] models one direction of one connection (docs/link-model.md §2–§5):
//!
//! 1. **Serialisation on a virtual link clock.** A segment starts when the link is free:
//!    `tx_start = max(link_free_at, now)`, and ends `(payload + overhead)·8 / rate` later. Deadlines
//!    chain from the previous deadline, not from the moment the caller woke up, so timer lateness
//!    never turns into lost throughput. The clock re-anchors to `now` only when the link has really
//!    been idle (longer than [`REANCHOR_SLACK`]). End times are computed from a bit count since the
//!    anchor, so there is no rounding drift however long the transfer.
//! 2. **Propagation plus jitter, in order.** `deliver_at = tx_end + one_way_delay + jitter`, then
//!    clamped to be no earlier than the previous segment's delivery: TCP delivers bytes in order, so
//!    jitter shows up as head-of-line delay, never as reordering.
//! 3. **Loss as retransmission delay.** A lost segment is delivered late: one RTT when more data
//!    follows it (fast retransmit after duplicate ACKs), or the RTO (≥ 200 ms, doubling on each
//!    further loss) for a tail loss. A segment lost [`MAX_RETRANSMISSIONS`] times breaks the link,
//!    as Linux gives up after `tcp_retries2`.
//! 4. **Radio promotion.** With a [`RadioPromotion`](crate::RadioPromotion), the first bytes after
//!    the radio has been idle longer than its tail timer wait for the promotion delay. The radio is
//!    shared by both directions (and, through a connector, by all connections of one device).
//!
//! Time is a [`Duration`] since an epoch the caller picks; the stream driver maps it to
//! `tokio::time::Instant`.

mod loss;
mod radio;

use std::time::Duration;

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::profile::{Jitter, JitterDistribution, Profile, Rate};

pub use loss::LossState;
pub use radio::RadioState;

/// A point on the link's timeline, as an offset from the caller's epoch.
pub type At = Duration;

/// How late (behind the link clock) a sender may be and still be treated as back-to-back.
/// Larger than tokio's timer tick (1 ms) plus scheduling noise; smaller than any pause that means
/// "the application had nothing to send".
pub const REANCHOR_SLACK: Duration = Duration::from_millis(2);

/// Retransmissions of one segment before the connection is declared broken.
pub const MAX_RETRANSMISSIONS: u32 = 15;

/// Which way bytes flow, seen from the client (the phone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → server.
    Up,
    /// Server → client.
    Down,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// When one segment used the link and when its bytes reach the far end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub tx_start: At,
    pub tx_end: At,
    pub deliver_at: At,
    /// Times the segment was lost before it got through.
    pub retransmissions: u32,
}

/// A segment was lost more than [`MAX_RETRANSMISSIONS`] times: the connection is dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("link broken: a segment was lost {MAX_RETRANSMISSIONS} times in a row (retransmission limit)")]
pub struct LinkBroken;

/// One direction of one emulated link.
#[derive(Debug, Clone)]
pub struct Link {
    bits_per_sec: Option<f64>,
    overhead_bytes: u64,
    mss: usize,
    one_way: Duration,
    jitter: Jitter,
    rtt: Duration,
    rto: Duration,
    loss: LossState,
    rng: ChaCha8Rng,
    /// Start of the current back-to-back run and bits sent since.
    anchor: At,
    bits_since_anchor: u128,
    link_free_at: At,
    last_deliver_at: At,
}

impl Link {
    /// A link for `direction` of `profile`, with its own seeded randomness.
    pub fn new(profile: &Profile, direction: Direction, seed: u64) -> Link {
        let rate = match direction {
            Direction::Up => profile.up,
            Direction::Down => profile.down,
        };
        Link {
            bits_per_sec: match rate {
                Rate::Unlimited => None,
                Rate::Kbps(_) => rate.bits_per_sec(),
            },
            overhead_bytes: u64::from(profile.overhead_bytes),
            mss: profile.mss(),
            one_way: profile.one_way_delay,
            jitter: profile.jitter,
            rtt: profile.rtt(),
            rto: profile.rto(),
            loss: LossState::new(profile.loss),
            rng: ChaCha8Rng::seed_from_u64(seed),
            anchor: Duration::ZERO,
            bits_since_anchor: 0,
            link_free_at: Duration::ZERO,
            last_deliver_at: Duration::ZERO,
        }
    }

    /// Largest payload per segment.
    pub fn mss(&self) -> usize {
        self.mss
    }

    /// When the link finishes what it has been given so far.
    pub fn free_at(&self) -> At {
        self.link_free_at
    }

    /// Sends one segment of `payload` bytes (at most [`Link::mss`]) handed over at `now`.
    /// `more_follows` tells whether the sender has more data queued right behind it, which decides
    /// how a loss is recovered (fast retransmit vs RTO).
    pub fn send(
        &mut self,
        now: At,
        payload: usize,
        more_follows: bool,
        radio: &mut RadioState,
    ) -> Result<Segment, LinkBroken> {
        debug_assert!(payload <= self.mss, "segment of {payload} bytes exceeds the MSS {}", self.mss);
        // 1. When can the link start? Back-to-back with the previous segment if the sender kept up
        //    (within the slack), otherwise now.
        let mut earliest = now;
        if self.link_free_at >= now.saturating_sub(REANCHOR_SLACK) {
            earliest = self.link_free_at;
        }
        let earliest = radio.ready_for(earliest);
        if earliest > self.link_free_at || self.bits_since_anchor == 0 {
            self.anchor = earliest;
            self.bits_since_anchor = 0;
        }
        let tx_start = earliest;
        let bits = (payload as u128 + u128::from(self.overhead_bytes)) * 8;
        self.bits_since_anchor += bits;
        let tx_end = match self.bits_per_sec {
            None => tx_start,
            Some(bps) => {
                // ceil(bits · 1e9 / bps) ns after the anchor: the segment's last bit has left.
                let ns = (self.bits_since_anchor as f64 * 1e9 / bps).ceil();
                self.anchor + Duration::from_nanos(ns as u64)
            }
        };
        self.link_free_at = tx_end;

        // 2. Loss → retransmission delay.
        let mut retransmissions = 0;
        let mut recovery = Duration::ZERO;
        while self.loss.lose(&mut self.rng) {
            if retransmissions == MAX_RETRANSMISSIONS {
                return Err(LinkBroken);
            }
            recovery += match (retransmissions, more_follows) {
                // Duplicate ACKs from the segments behind it: fast retransmit after one RTT.
                (0, true) => self.rtt,
                // The retransmission was lost as well, or nothing followed: wait for the RTO,
                // doubling each time (exponential backoff), capped like Linux's TCP_RTO_MAX.
                (n, true) => backoff(self.rto, n - 1),
                (n, false) => backoff(self.rto, n),
            };
            retransmissions += 1;
        }

        // 3. Propagation + jitter, clamped to keep byte order.
        let delay = self.one_way_delay_sample();
        let deliver_at = (tx_end + recovery + delay).max(self.last_deliver_at);
        self.last_deliver_at = deliver_at;
        radio.touch(tx_end);
        Ok(Segment { tx_start, tx_end, deliver_at, retransmissions })
    }

    /// One one-way delay: the propagation delay plus a jitter sample truncated to the profile's
    /// maximum deviation, never below zero.
    pub fn one_way_delay_sample(&mut self) -> Duration {
        sample_one_way(&self.jitter, self.one_way, &mut self.rng)
    }
}

/// Linux's upper bound on one retransmission timeout.
pub const TCP_RTO_MAX: Duration = Duration::from_secs(120);

fn backoff(rto: Duration, doublings: u32) -> Duration {
    rto.saturating_mul(1 << doublings.min(16)).min(TCP_RTO_MAX)
}

/// A one-way delay drawn from `jitter` around `one_way`, truncated to ±[`Jitter::max_deviation`].
pub fn sample_one_way(jitter: &Jitter, one_way: Duration, rng: &mut impl Rng) -> Duration {
    if jitter.amount.is_zero() {
        return one_way;
    }
    let amount = jitter.amount.as_secs_f64();
    let max = jitter.max_deviation().as_secs_f64();
    let dev = match jitter.distribution {
        JitterDistribution::Uniform => rng.random_range(-amount..=amount),
        JitterDistribution::Normal => {
            let n: f64 = rng.sample(rand_distr::StandardNormal);
            (n * amount).clamp(-max, max)
        }
    };
    Duration::from_secs_f64((one_way.as_secs_f64() + dev).max(0.0))
}

/// Mixes a base seed with a connection index and a stream tag into an independent seed
/// (SplitMix64 finaliser), so every connection and direction gets its own reproducible randomness.
pub fn derive_seed(base: u64, index: u64, tag: u64) -> u64 {
    let mut z = base ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ tag.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
