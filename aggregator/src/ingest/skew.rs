//! A prober's clock offset, from its send time against our receive time.
//!
//! Each report gives one sample `sent_at − received = offset − delay`, where `delay` (network and
//! queueing) is never negative. So every sample is at most the true offset, and the largest of the
//! recent samples (the one that travelled fastest) is the best estimate: NTP's minimum-delay
//! filter. We keep the last [`WINDOW`] samples, so a stepped clock is followed after that many
//! reports (two minutes at the default 15 s interval), and one slow upload never looks like skew.

use std::collections::VecDeque;

/// Samples kept.
pub const WINDOW: usize = 8;

#[derive(Debug, Clone, Default)]
pub struct OffsetEstimator {
    samples: VecDeque<i64>,
}

impl OffsetEstimator {
    /// Adds a sample and returns the new estimate (prober clock − aggregator clock, ms).
    pub fn add(&mut self, sent_at_ms: i64, received_ms: i64) -> i64 {
        if self.samples.len() == WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(sent_at_ms.saturating_sub(received_ms));
        self.estimate().unwrap_or(0)
    }

    pub fn estimate(&self) -> Option<i64> {
        self.samples.iter().copied().max()
    }
}

/// The correction to subtract from a report's interval: the offset when it exceeds the threshold.
pub fn correction(offset_ms: i64, threshold_ms: i64) -> i64 {
    if offset_ms.abs() > threshold_ms { offset_ms } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fastest_sample_wins() {
        let mut e = OffsetEstimator::default();
        // True offset +5 s, delays 300, 40, 2000 ms.
        assert_eq!(e.add(1_000_000 + 5_000, 1_000_300), 4_700);
        assert_eq!(e.add(2_000_000 + 5_000, 2_000_040), 4_960);
        assert_eq!(e.add(3_000_000 + 5_000, 3_002_000), 4_960);
    }

    #[test]
    fn a_stepped_clock_is_followed_after_the_window() {
        let mut e = OffsetEstimator::default();
        for i in 0..WINDOW as i64 {
            e.add(i * 15_000 + 60_000, i * 15_000);
        }
        assert_eq!(e.estimate(), Some(60_000));
        // NTP fixed the clock.
        for i in 0..WINDOW as i64 - 1 {
            assert_eq!(e.add(i * 15_000, i * 15_000 + 20), 60_000);
        }
        assert_eq!(e.add(0, 20), -20);
    }

    #[test]
    fn correction_only_beyond_the_threshold() {
        assert_eq!(correction(1_999, 2_000), 0);
        assert_eq!(correction(-2_000, 2_000), 0);
        assert_eq!(correction(-2_001, 2_000), -2_001);
        assert_eq!(correction(90_000, 2_000), 90_000);
    }
}
