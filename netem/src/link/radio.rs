//! Radio resource control: the promotion delay a 3G/4G phone pays after idling.

use super::At;
use crate::profile::RadioPromotion;

/// The radio of one device, shared by both directions of its connections.
#[derive(Debug, Clone, Default)]
pub struct RadioState {
    config: Option<RadioPromotion>,
    last_activity: Option<At>,
    ready_at: At,
    promotions: u64,
}

impl RadioState {
    pub fn new(config: Option<RadioPromotion>) -> RadioState {
        RadioState { config, ..RadioState::default() }
    }

    /// The earliest time at or after `t` when the radio can move bytes. Starts a promotion when the
    /// radio has never been used or has idled past its tail timer.
    pub fn ready_for(&mut self, t: At) -> At {
        let Some(cfg) = self.config else { return t };
        let idle = match self.last_activity {
            None => true,
            Some(last) => t > last + cfg.tail && t >= self.ready_at,
        };
        if idle {
            self.ready_at = t + cfg.promotion;
            self.promotions += 1;
        }
        t.max(self.ready_at)
    }

    /// Records that the radio was busy until `t`.
    pub fn touch(&mut self, t: At) {
        self.last_activity = Some(self.last_activity.map_or(t, |l| l.max(t)));
    }

    /// How many promotions have been paid so far.
    pub fn promotions(&self) -> u64 {
        self.promotions
    }
}
