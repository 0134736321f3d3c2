//! Time for the agent: deadlines on tokio's clock (so tests can pause it), labels in UTC.
//!
//! Schedules and interval boundaries are absolute deadlines (`sleep_until`), computed from wall
//! time each time so that lateness never accumulates. In tests, [`Clock::at`] pins wall time to
//! tokio's (paused) clock, so a test can run an hour of schedule in milliseconds.

use std::time::Duration;

use tokio::time::Instant;

/// Where wall time comes from.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor: Option<(i64, Instant)>,
}

impl Clock {
    /// The system's UTC clock.
    pub fn system() -> Clock {
        Clock { anchor: None }
    }

    /// Wall time that reads `wall_ms` now and advances with tokio's clock (paused in tests).
    pub fn at(wall_ms: i64) -> Clock {
        Clock { anchor: Some((wall_ms, Instant::now())) }
    }

    /// UTC now, Unix milliseconds.
    pub fn wall_ms(&self) -> i64 {
        match self.anchor {
            None => chrono::Utc::now().timestamp_millis(),
            Some((w, i)) => w + Instant::now().saturating_duration_since(i).as_millis() as i64,
        }
    }

    /// The tokio instant at which wall time reads `wall_ms` (a past instant for a past time, or
    /// now when that is before tokio's clock began).
    pub fn instant_at(&self, wall_ms: i64) -> Instant {
        let now = Instant::now();
        let delta = wall_ms - self.wall_ms();
        if delta >= 0 {
            now + Duration::from_millis(delta as u64)
        } else {
            now.checked_sub(Duration::from_millis(delta.unsigned_abs())).unwrap_or(now)
        }
    }
}

/// The first multiple of `every_ms` since the Unix epoch strictly after `after_ms`.
pub fn next_boundary(after_ms: i64, every_ms: i64) -> i64 {
    (after_ms.div_euclid(every_ms) + 1) * every_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_aligned_to_the_epoch() {
        assert_eq!(next_boundary(0, 15_000), 15_000);
        assert_eq!(next_boundary(14_999, 15_000), 15_000);
        assert_eq!(next_boundary(15_000, 15_000), 30_000);
        assert_eq!(next_boundary(1_700_000_007_123, 15_000), 1_700_000_010_000);
    }

    #[tokio::test(start_paused = true)]
    async fn pinned_clock_follows_paused_time() {
        let c = Clock::at(1_000_000);
        let t0 = Instant::now();
        assert_eq!(c.instant_at(1_005_000), t0 + Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(c.wall_ms(), 1_002_500);
        assert_eq!(c.instant_at(1_005_000), t0 + Duration::from_secs(5));
    }
}
