//! A prober's clock offset, from its send time against our receive time, and how much of it may be
//! applied to the data it sends.
//!
//! Each report gives one sample `s = sent_at − received = offset − delay`, where `delay` (network
//! and queueing) is never negative: every sample is at most the true offset, and the largest of
//! the recent samples (the one that travelled fastest) is the best estimate — NTP's
//! minimum-delay filter (RFC 5905 §10). That filter alone trusts a single sample, and a single
//! report whose `sent_at_ms` is a year ahead would then re-time every later report by a year, so:
//!
//! - **Agreement.** Two samples agree when they differ by at most the tolerance (`skew_threshold`,
//!   at least 1 s). A new offset is *adopted* only when the newest sample and at least
//!   [`AGREEING`]` − 1` other recent samples agree with it; the adopted offset is the largest of
//!   those agreeing samples. Recent means among the last [`WINDOW`] samples and received within
//!   [`SAMPLE_MAX_AGE_MS`] of the newest one (a week-old sample says nothing about today's clock).
//! - **Bound.** An agreed offset larger than `max_clock_correction` is never adopted: the prober
//!   is flagged (`clock_jump`) and its reports are not re-timed.
//! - **Consistency.** A report is corrected by the adopted offset `A` only when its own sample is
//!   consistent with it: `A − max_delay ≤ s ≤ A + tolerance` (a sample above `A` means the clock
//!   stepped forward, since delays are never negative; one far below it means it stepped back, as
//!   no upload takes longer than `max_delay`). Otherwise the prober is flagged `clock_jump` with
//!   the observed sample and the report is taken uncorrected, to be stored or refused by the
//!   horizon rule (`ingest/mod.rs`).
//! - **Threshold.** An adopted offset within `skew_threshold` is noise: nothing is corrected.
//!
//! The estimator is pure: [`OffsetEstimator::plan`] says what a report would get without changing
//! anything, and [`OffsetEstimator::observe`] feeds a sample — which ingest does only for fresh
//! reports (stored, or refused for their horizon alone), never for duplicates or refused input.

use std::collections::VecDeque;

/// Samples kept.
pub const WINDOW: usize = 8;
/// Samples (the newest included) that must agree before an offset is adopted.
pub const AGREEING: usize = 3;
/// Samples received longer than this before the newest one no longer count.
pub const SAMPLE_MAX_AGE_MS: i64 = 3_600_000;
/// The longest delay a report is assumed to take (at least; see [`ClockRules::new`]).
pub const MIN_MAX_DELAY_MS: i64 = 60_000;

/// The bounds the estimator works within (from the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockRules {
    /// Offsets up to this are noise: nothing is corrected (`skew_threshold`).
    pub threshold_ms: i64,
    /// Samples agree when they differ by at most this.
    pub tolerance_ms: i64,
    /// A sample this far below the adopted offset is a slow upload still; further, a clock step.
    pub max_delay_ms: i64,
    /// The largest offset ever applied to a prober's data (`max_clock_correction`).
    pub max_correction_ms: i64,
}

impl ClockRules {
    /// Tolerance `max(threshold, 1 s)`; max delay `max(60 s, 30 × threshold)` (the fleet demo
    /// raises the threshold with its speed-up, and network delays look as many times longer).
    pub fn new(threshold_ms: i64, max_correction_ms: i64) -> ClockRules {
        let threshold_ms = threshold_ms.max(0);
        ClockRules {
            threshold_ms,
            tolerance_ms: threshold_ms.max(1_000),
            max_delay_ms: threshold_ms.saturating_mul(30).max(MIN_MAX_DELAY_MS),
            max_correction_ms: max_correction_ms.max(0),
        }
    }
}

/// A clock that does not fit the adopted offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockJump {
    /// What was observed: the agreed offset when it is beyond `max_clock_correction`, else the
    /// report's own sample (prober − aggregator, ms).
    pub observed_ms: i64,
    /// The prober's clock agrees with itself, but is further off than may be corrected.
    pub beyond_max: bool,
}

/// What one report gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// This report's sample (`sent_at − received`), ms.
    pub sample_ms: i64,
    /// The adopted offset once this sample is counted (what the status shows), ms.
    pub offset_ms: i64,
    /// Subtracted from the report's interval: the adopted offset when the report is consistent
    /// with it and it exceeds the threshold, else 0.
    pub correction_ms: i64,
    pub jump: Option<ClockJump>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    received_ms: i64,
    offset_ms: i64,
}

/// One prober's samples and adopted offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetEstimator {
    samples: VecDeque<Sample>,
    adopted_ms: i64,
}

impl OffsetEstimator {
    /// Starts from an offset adopted before (the store's record), if it is within the bound.
    pub fn seeded(offset_ms: i64, rules: &ClockRules) -> OffsetEstimator {
        let adopted_ms = if offset_ms.unsigned_abs() <= rules.max_correction_ms.unsigned_abs() { offset_ms } else { 0 };
        OffsetEstimator { samples: VecDeque::new(), adopted_ms }
    }

    /// The adopted offset (prober − aggregator, ms).
    pub fn offset_ms(&self) -> i64 {
        self.adopted_ms
    }

    /// What a report sent at `sent_at_ms` and received at `received_ms` would get, changing
    /// nothing.
    pub fn plan(&self, rules: &ClockRules, sent_at_ms: i64, received_ms: i64) -> Plan {
        let mut next = self.clone();
        let agreed = next.observe(rules, sent_at_ms, received_ms);
        let sample_ms = sent_at_ms.saturating_sub(received_ms);
        let a = next.adopted_ms;
        let consistent =
            sample_ms <= a.saturating_add(rules.tolerance_ms) && sample_ms >= a.saturating_sub(rules.max_delay_ms);
        let jump = match agreed {
            Some(c) if c.unsigned_abs() > rules.max_correction_ms.unsigned_abs() => {
                Some(ClockJump { observed_ms: c, beyond_max: true })
            }
            _ if !consistent => Some(ClockJump { observed_ms: sample_ms, beyond_max: false }),
            _ => None,
        };
        let correction_ms = if consistent { correction(a, rules.threshold_ms) } else { 0 };
        Plan { sample_ms, offset_ms: a, correction_ms, jump }
    }

    /// Counts a sample, adopting a new offset when enough recent samples agree and it is within
    /// the bound. Returns the agreed offset, if the samples agree (adopted or not).
    pub fn observe(&mut self, rules: &ClockRules, sent_at_ms: i64, received_ms: i64) -> Option<i64> {
        let newest = Sample { received_ms, offset_ms: sent_at_ms.saturating_sub(received_ms) };
        if self.samples.len() == WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(newest);
        self.samples.retain(|s| s.received_ms >= received_ms.saturating_sub(SAMPLE_MAX_AGE_MS));
        let tolerance = rules.tolerance_ms.unsigned_abs();
        let agreeing = self.samples.iter().filter(|s| s.offset_ms.abs_diff(newest.offset_ms) <= tolerance);
        if agreeing.clone().count() < AGREEING {
            return None;
        }
        let agreed = agreeing.map(|s| s.offset_ms).max().unwrap_or(newest.offset_ms);
        if agreed.unsigned_abs() <= rules.max_correction_ms.unsigned_abs() {
            self.adopted_ms = agreed;
        }
        Some(agreed)
    }
}

/// The correction to subtract from a report's interval: the offset when it exceeds the threshold.
pub fn correction(offset_ms: i64, threshold_ms: i64) -> i64 {
    if offset_ms.unsigned_abs() > threshold_ms.unsigned_abs() { offset_ms } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const YEAR: i64 = 365 * 24 * HOUR;

    fn rules() -> ClockRules {
        ClockRules::new(2_000, HOUR)
    }

    /// Feeds reports sent `offset − delay` after receipt, every 15 s from `t0`; returns the plans.
    fn feed(e: &mut OffsetEstimator, t0: i64, samples: &[i64]) -> Vec<Plan> {
        samples
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let received = t0 + i as i64 * 15_000;
                let plan = e.plan(&rules(), received + s, received);
                e.observe(&rules(), received + s, received);
                plan
            })
            .collect()
    }

    #[test]
    fn the_fastest_of_the_agreeing_samples_wins() {
        let mut e = OffsetEstimator::default();
        // True offset +5 s, delays 300, 40, 2000, 500 ms.
        let plans = feed(&mut e, 1_000_000, &[4_700, 4_960, 3_000, 4_500]);
        // Not adopted before three samples agree: the first two are taken uncorrected, flagged.
        assert_eq!(plans[0].correction_ms, 0);
        assert_eq!(plans[0].jump, Some(ClockJump { observed_ms: 4_700, beyond_max: false }));
        assert_eq!(plans[1].correction_ms, 0);
        assert_eq!((plans[2].offset_ms, plans[2].correction_ms, plans[2].jump), (4_960, 4_960, None));
        assert_eq!((plans[3].offset_ms, plans[3].correction_ms), (4_960, 4_960));
        assert_eq!(e.offset_ms(), 4_960);
    }

    #[test]
    fn one_sample_a_year_ahead_moves_nothing() {
        let mut e = OffsetEstimator::default();
        feed(&mut e, 0, &[-20, -35, -18, -25]);
        let p = e.plan(&rules(), 100_000 + YEAR, 100_000);
        assert_eq!(p.correction_ms, 0, "the report itself is not re-timed");
        assert_eq!(p.jump, Some(ClockJump { observed_ms: YEAR, beyond_max: false }));
        e.observe(&rules(), 100_000 + YEAR, 100_000);
        assert_eq!(e.offset_ms(), -18);
        // The next real reports are consistent with the adopted offset: nothing to correct.
        for i in 0..WINDOW as i64 {
            let t = 115_000 + i * 15_000;
            let p = e.plan(&rules(), t - 30, t);
            assert_eq!((p.correction_ms, p.jump), (0, None), "{i}");
            e.observe(&rules(), t - 30, t);
        }
    }

    #[test]
    fn an_agreed_offset_beyond_the_bound_is_flagged_never_applied() {
        let mut e = OffsetEstimator::default();
        let plans = feed(&mut e, 0, &[YEAR, YEAR - 40, YEAR - 10, YEAR - 5]);
        for p in &plans[2..] {
            assert_eq!(p.correction_ms, 0);
            assert_eq!(p.offset_ms, 0);
            assert_eq!(p.jump, Some(ClockJump { observed_ms: YEAR, beyond_max: true }));
        }
        // Within the bound, the same story ends in a correction.
        let mut e = OffsetEstimator::default();
        let plans = feed(&mut e, 0, &[50 * 60_000, 50 * 60_000 - 40, 50 * 60_000 - 10]);
        assert_eq!((plans[2].correction_ms, plans[2].jump), (50 * 60_000, None));
    }

    #[test]
    fn a_stepped_clock_is_followed_after_three_agreeing_reports() {
        let mut e = OffsetEstimator::default();
        feed(&mut e, 0, &[60_000; WINDOW]);
        assert_eq!(e.offset_ms(), 60_000);
        // NTP fixed the clock: the first two reports are consistent with no offset, not with the
        // adopted one, so they are taken uncorrected (which is right) and flagged; the third
        // agrees with them and the offset follows.
        let plans = feed(&mut e, WINDOW as i64 * 15_000, &[-20, -30, -25, -20]);
        assert_eq!(plans[0].correction_ms, 0);
        assert_eq!(plans[0].jump.map(|j| j.observed_ms), Some(-20));
        assert_eq!(plans[1].offset_ms, 60_000);
        assert_eq!((plans[2].offset_ms, plans[2].correction_ms, plans[2].jump), (-20, 0, None));
        assert_eq!(e.offset_ms(), -20);
    }

    #[test]
    fn a_slow_upload_is_not_a_clock_step() {
        let mut e = OffsetEstimator::default();
        feed(&mut e, 0, &[180_000, 179_990, 179_950]);
        // 40 s in flight: still consistent with the adopted +3 min, so still corrected.
        let p = e.plan(&rules(), 1_000_000 + 140_000, 1_000_000);
        assert_eq!((p.correction_ms, p.jump), (180_000, None));
    }

    #[test]
    fn old_samples_do_not_vote() {
        let mut e = OffsetEstimator::default();
        feed(&mut e, 0, &[HOUR / 2, HOUR / 2]);
        // Two hours later one more sample at the same offset is alone.
        let p = e.plan(&rules(), 2 * HOUR + HOUR / 2, 2 * HOUR);
        assert_eq!((p.offset_ms, p.correction_ms), (0, 0));
    }

    #[test]
    fn a_seed_beyond_the_bound_is_dropped() {
        assert_eq!(OffsetEstimator::seeded(YEAR, &rules()).offset_ms(), 0);
        assert_eq!(OffsetEstimator::seeded(-90_000, &rules()).offset_ms(), -90_000);
    }

    #[test]
    fn correction_only_beyond_the_threshold() {
        assert_eq!(correction(1_999, 2_000), 0);
        assert_eq!(correction(-2_000, 2_000), 0);
        assert_eq!(correction(-2_001, 2_000), -2_001);
        assert_eq!(correction(90_000, 2_000), 90_000);
    }
}
