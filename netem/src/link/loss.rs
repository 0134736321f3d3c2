//! Per-segment loss decisions.

use rand::{Rng, RngExt};

use crate::profile::Loss;

/// A loss model with its state (the Gilbert-Elliott chain remembers whether it is in a burst).
#[derive(Debug, Clone)]
pub struct LossState {
    model: Loss,
    in_bad_state: bool,
}

impl LossState {
    pub fn new(model: Loss) -> LossState {
        LossState { model, in_bad_state: false }
    }

    /// Decides whether the next segment is lost, then advances the chain.
    pub fn lose(&mut self, rng: &mut impl Rng) -> bool {
        match self.model {
            Loss::None => false,
            Loss::Random { pct } => rng.random_bool(pct / 100.0),
            Loss::GilbertElliott(ge) => {
                let (loss_pct, leave_pct) =
                    if self.in_bad_state { (ge.bad_loss_pct, ge.r_pct) } else { (ge.good_loss_pct, ge.p_pct) };
                let lost = rng.random_bool(loss_pct / 100.0);
                if rng.random_bool(leave_pct / 100.0) {
                    self.in_bad_state = !self.in_bad_state;
                }
                lost
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::profile::GilbertElliott;

    fn rate(model: Loss, n: usize) -> (f64, f64) {
        let mut s = LossState::new(model);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let draws: Vec<bool> = (0..n).map(|_| s.lose(&mut rng)).collect();
        let lost = draws.iter().filter(|&&l| l).count();
        // Mean length of runs of consecutive losses: bursts show up here.
        let runs = draws.windows(2).filter(|w| w[1] && !w[0]).count() + usize::from(draws[0]);
        (lost as f64 / n as f64, lost as f64 / runs.max(1) as f64)
    }

    #[test]
    fn random_loss_hits_its_rate() {
        let (r, burst) = rate(Loss::Random { pct: 2.0 }, 200_000);
        assert!((r - 0.02).abs() < 0.002, "{r}");
        assert!(burst < 1.1, "independent losses rarely come in runs: {burst}");
        assert_eq!(rate(Loss::None, 1000).0, 0.0);
    }

    #[test]
    fn gilbert_elliott_matches_its_stationary_rate_and_is_bursty() {
        let ge = GilbertElliott { p_pct: 1.0, r_pct: 20.0, bad_loss_pct: 100.0, good_loss_pct: 0.0 };
        let expected = ge.mean_loss(); // 1/21
        let (r, burst) = rate(Loss::GilbertElliott(ge), 400_000);
        assert!((r - expected).abs() < 0.005, "{r} vs {expected}");
        // Bad-state sojourns last 1/r = 5 segments on average.
        assert!((burst - 5.0).abs() < 0.5, "{burst}");
    }
}
