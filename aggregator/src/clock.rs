//! Time as a dependency: the store, the status page and the relay take a [`Clock`], so tests can
//! move time (compaction after two days, retention after 35) without waiting.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

/// `ms` (UTC Unix milliseconds) as RFC 3339 with milliseconds, e.g. `2027-01-15T08:00:00.000Z`;
/// a value chrono cannot place is shown as it is.
pub fn rfc3339(ms: i64) -> String {
    use chrono::{SecondsFormat, TimeZone, Utc};
    Utc.timestamp_millis_opt(ms)
        .single()
        .map_or_else(|| format!("{ms} ms after 1970"), |t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// Wall-clock time as UTC Unix milliseconds.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// The machine's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(now_ms: i64) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(now_ms)))
    }

    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Simulated time (the demo's `--speed`): reads `origin_ms` at tokio instant `anchor` and advances
/// `speed` times as fast as tokio's clock. Give the probers the same origin, anchor and speed
/// (`prober::agent::clock::Clock::scaled`) so send and receive times, interval bounds and SLO
/// windows all agree.
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    origin_ms: i64,
    anchor: tokio::time::Instant,
    speed: f64,
}

impl ScaledClock {
    /// Speeds that are not finite and above zero are taken as 1.
    pub fn new(origin_ms: i64, anchor: tokio::time::Instant, speed: f64) -> ScaledClock {
        let speed = if speed.is_finite() && speed > 0.0 { speed } else { 1.0 };
        ScaledClock { origin_ms, anchor, speed }
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }
}

impl Clock for ScaledClock {
    fn now_ms(&self) -> i64 {
        let real = tokio::time::Instant::now().saturating_duration_since(self.anchor);
        self.origin_ms + (real.as_secs_f64() * 1e3 * self.speed) as i64
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1_000);
        assert_eq!(c.now_ms(), 1_000);
        c.advance_ms(500);
        assert_eq!(c.clone().now_ms(), 1_500);
        c.set(7);
        assert_eq!(c.now_ms(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn scaled_clock_runs_speed_times_faster_from_its_anchor() {
        let anchor = tokio::time::Instant::now();
        let c = ScaledClock::new(1_000_000, anchor, 60.0);
        assert_eq!(c.now_ms(), 1_000_000);
        tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
        assert_eq!(c.now_ms(), 1_090_000, "1.5 s at 60× is 90 simulated seconds");
        let same = ScaledClock::new(1_000_000, anchor, 60.0);
        assert_eq!(same.now_ms(), c.now_ms(), "one anchor, one time");
        assert_eq!(ScaledClock::new(5, anchor, f64::NAN).speed(), 1.0);
        assert_eq!(ScaledClock::new(5, anchor, 0.0).now_ms(), 1_505);
    }

    #[test]
    fn system_clock_is_after_2024() {
        assert!(SystemClock.now_ms() > 1_704_067_200_000);
    }
}
