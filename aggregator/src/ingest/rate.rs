//! The per-prober report rate: each prober may send `ingest.max_reports_per_minute` reports, in
//! bursts of up to `ingest.report_burst` (GCRA, by `governor`). A report past it is answered
//! `429 Too Many Requests` with `Retry-After` (RFC 6585 §4, RFC 9110 §10.2.3) before its body is
//! read; the prober's sender keeps it in its outbox and waits that long.
//!
//! The defaults let a prober drain a day's outbox (5,760 reports at a 15 s cadence) in about five
//! minutes while a stolen token, or a prober in a loop, cannot flood the store. The rate runs on
//! the monotonic clock (tokio's, so tests can pause it), not on the store's wall clock, which the
//! demo speeds up.

use std::{collections::HashMap, num::NonZeroU32, time::Duration};

use governor::{
    Quota, RateLimiter,
    clock::Clock,
    middleware::NoOpMiddleware,
    nanos::Nanos,
    state::{InMemoryState, NotKeyed},
};

/// Monotonic time since the limiter was made, on tokio's clock.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: tokio::time::Instant,
}

impl Clock for MonotonicClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(self.origin.elapsed())
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, MonotonicClock, NoOpMiddleware<Nanos>>;

/// One limiter per configured prober (the set is fixed at start).
pub struct ReportRate {
    clock: MonotonicClock,
    limiters: HashMap<String, Limiter>,
}

impl ReportRate {
    /// `per_minute` and `burst` are at least 1 (the config checks them).
    pub fn new<'a>(probers: impl IntoIterator<Item = &'a str>, per_minute: u32, burst: u32) -> ReportRate {
        let clock = MonotonicClock { origin: tokio::time::Instant::now() };
        let one = NonZeroU32::MIN;
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(one))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(one));
        let limiters =
            probers.into_iter().map(|id| (id.to_owned(), RateLimiter::direct_with_clock(quota, clock))).collect();
        ReportRate { clock, limiters }
    }

    /// `Ok` if `prober` may send a report now (and counts it), else how long until it may.
    pub fn check(&self, prober: &str) -> Result<(), Duration> {
        let Some(limiter) = self.limiters.get(prober) else { return Ok(()) };
        limiter.check().map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// The `Retry-After` value for a wait: whole seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_then_the_rate_holds_and_says_how_long_to_wait() {
        let rate = ReportRate::new(["nbo-1", "kla-1"], 60, 3);
        for _ in 0..3 {
            rate.check("nbo-1").unwrap();
        }
        let wait = rate.check("nbo-1").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert_eq!(retry_after_secs(wait), 1);
        // Another prober has its own allowance.
        rate.check("kla-1").unwrap();
        // One report per second refills.
        tokio::time::advance(Duration::from_secs(1)).await;
        rate.check("nbo-1").unwrap();
        assert!(rate.check("nbo-1").is_err());
        // A full minute of silence refills the burst, never more.
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            rate.check("nbo-1").unwrap();
        }
        assert!(rate.check("nbo-1").is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(59)), 59);
    }
}
