//! Time for the agent: deadlines on tokio's clock (so tests can pause it), labels in UTC.
//!
//! Schedules and interval boundaries are absolute deadlines (`sleep_until`), computed from wall
//! time each time so that lateness never accumulates. In tests, [`Clock::at`] pins wall time to
//! tokio's (paused) clock, so a test can run an hour of schedule in milliseconds.
//! [`Clock::scaled`] runs wall time faster than tokio's clock (the demo's simulated time): schedules
//! and interval boundaries follow it, while journey timeouts, which are plain durations, stay real.

use std::time::Duration;

use tokio::time::Instant;

/// Where wall time comes from.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor: Option<(i64, Instant)>,
    /// Simulated milliseconds per real millisecond (1 unless [`Clock::scaled`]).
    speed: f64,
}

impl Clock {
    /// The system's UTC clock.
    pub fn system() -> Clock {
        Clock { anchor: None, speed: 1.0 }
    }

    /// Wall time that reads `wall_ms` now and advances with tokio's clock (paused in tests).
    pub fn at(wall_ms: i64) -> Clock {
        Clock { anchor: Some((wall_ms, Instant::now())), speed: 1.0 }
    }

    /// Simulated time: reads `wall_ms` at tokio instant `anchor` and advances `speed` times as
    /// fast as tokio's clock (`speed` 60: a minute per real second). Deadlines computed with
    /// [`Clock::instant_at`] come `speed` times sooner. Speeds that are not finite and above zero
    /// are taken as 1.
    pub fn scaled(wall_ms: i64, anchor: Instant, speed: f64) -> Clock {
        let speed = if speed.is_finite() && speed > 0.0 { speed } else { 1.0 };
        Clock { anchor: Some((wall_ms, anchor)), speed }
    }

    /// Simulated milliseconds per real millisecond.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// UTC now, Unix milliseconds.
    pub fn wall_ms(&self) -> i64 {
        match self.anchor {
            None => chrono::Utc::now().timestamp_millis(),
            Some((w, i)) if self.speed == 1.0 => w + Instant::now().saturating_duration_since(i).as_millis() as i64,
            Some((w, i)) => w + (Instant::now().saturating_duration_since(i).as_secs_f64() * 1e3 * self.speed) as i64,
        }
    }

    /// The tokio instant at which wall time reads `wall_ms` (a past instant for a past time, or
    /// now when that is before tokio's clock began).
    pub fn instant_at(&self, wall_ms: i64) -> Instant {
        let now = Instant::now();
        let delta = wall_ms - self.wall_ms();
        // Real time to wait: the simulated delta divided by the speed.
        let real = |ms: u64| {
            if self.speed == 1.0 {
                Duration::from_millis(ms)
            } else {
                Duration::from_secs_f64(ms as f64 / 1e3 / self.speed)
            }
        };
        if delta >= 0 { now + real(delta as u64) } else { now.checked_sub(real(delta.unsigned_abs())).unwrap_or(now) }
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

    #[tokio::test(start_paused = true)]
    async fn scaled_clock_runs_faster_and_deadlines_come_sooner() {
        let t0 = Instant::now();
        let c = Clock::scaled(1_000_000, t0, 60.0);
        assert_eq!(c.speed(), 60.0);
        assert_eq!(c.wall_ms(), 1_000_000);
        // A simulated minute is a real second.
        assert_eq!(c.instant_at(1_060_000), t0 + Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(c.wall_ms(), 1_030_000);
        assert_eq!(c.instant_at(1_060_000), t0 + Duration::from_secs(1));
        // A past simulated time maps to a past instant, scaled the same way.
        assert_eq!(c.instant_at(1_000_000), t0);
        // The epoch-aligned boundaries the agent sleeps to are the same, only sooner.
        assert_eq!(next_boundary(c.wall_ms(), 15_000), 1_035_000);
        let at = c.instant_at(1_035_000) - t0;
        assert!(at > Duration::from_millis(583) && at < Duration::from_millis(584), "{at:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn scaled_clock_refuses_nonsense_speeds() {
        for bad in [0.0, -2.0, f64::NAN, f64::INFINITY] {
            assert_eq!(Clock::scaled(0, Instant::now(), bad).speed(), 1.0, "{bad}");
        }
    }
}
