//! The edges' radios: each prober's modems as its last heartbeat read them, and the state of a
//! site's (a region's) radio derived from them. This is what lets the page and the alerts say
//! "the Kampala edge's radio is down" instead of "USSD is down in Kampala": a modem that lost its
//! network, or its SIM, fails every USSD journey at the site, and that is a site fault to fix on
//! site, not a service's SLO burning.
//!
//! Pure: the ingest path calls [`advance`] for each freshly stored report, the page, the API, the
//! metrics and the alert sender read the result.

use report::RadioHealth;
use serde::{Deserialize, Serialize};

/// Consecutive heartbeats a modem must read not up before `SavannaSiteRadioDown` fires (one bad
/// reading is often a modem busy with a USSD session, or a reselection).
pub const DOWN_AFTER_REPORTS: u32 = 2;

/// One modem as the aggregator keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RadioLive {
    /// The last reading.
    pub health: RadioHealth,
    /// Stored heartbeats in a row (the last one included) that read this modem not up; 0 when up.
    pub down_reports: u32,
    /// When the first of those heartbeats was received (aggregator wall time, ms).
    pub down_since_ms: Option<i64>,
}

impl RadioLive {
    /// Down long enough to alert on ([`DOWN_AFTER_REPORTS`]).
    pub fn alerting(&self) -> bool {
        self.down_reports >= DOWN_AFTER_REPORTS
    }
}

/// The modems after a newer heartbeat: its readings, each with its not-up streak carried on from
/// `prev` (by modem name). A modem the heartbeat no longer lists is dropped (the edge's
/// configuration no longer has it).
pub fn advance(prev: &[RadioLive], readings: &[RadioHealth], received_ms: i64) -> Vec<RadioLive> {
    readings
        .iter()
        .map(|h| {
            let before = prev.iter().find(|p| p.health.modem == h.modem);
            let (down_reports, down_since_ms) = if h.is_up() {
                (0, None)
            } else {
                match before {
                    Some(b) if b.down_reports > 0 => (b.down_reports.saturating_add(1), b.down_since_ms),
                    _ => (1, Some(received_ms)),
                }
            };
            RadioLive { health: h.clone(), down_reports, down_since_ms }
        })
        .collect()
}

/// A site's radio: `up` when every modem of its probers is up, `degraded` when some are, `down`
/// when none is. A site without modems has no radio state at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RadioState {
    Up,
    Degraded,
    Down,
}

impl RadioState {
    pub fn name(self) -> &'static str {
        match self {
            RadioState::Up => "up",
            RadioState::Degraded => "degraded",
            RadioState::Down => "down",
        }
    }

    /// From how many modems a site has and how many are up; none without modems.
    pub fn of(modems: u32, up: u32) -> Option<RadioState> {
        match (modems, up) {
            (0, _) => None,
            (m, u) if u >= m => Some(RadioState::Up),
            (_, 0) => Some(RadioState::Down),
            _ => Some(RadioState::Degraded),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(modem: &str, up: bool) -> RadioHealth {
        RadioHealth {
            modem: modem.into(),
            signal_dbm: Some(-71),
            registration: if up { "home" } else { "searching" }.into(),
            operator: "MTN UG".into(),
            access: "utran".into(),
            sim: "ready".into(),
            read_at_ms: 1_000,
            error: String::new(),
        }
    }

    #[test]
    fn a_streak_counts_heartbeats_in_a_row_and_an_up_reading_ends_it() {
        let one = advance(&[], &[reading("usb2", false)], 10);
        assert_eq!((one[0].down_reports, one[0].down_since_ms, one[0].alerting()), (1, Some(10), false));
        let two = advance(&one, &[reading("usb2", false)], 20);
        assert_eq!((two[0].down_reports, two[0].down_since_ms, two[0].alerting()), (2, Some(10), true));
        let up = advance(&two, &[reading("usb2", true)], 30);
        assert_eq!((up[0].down_reports, up[0].down_since_ms), (0, None));
        // Another modem's streak is its own; a modem no longer listed is gone.
        let other = advance(&two, &[reading("usb3", false)], 40);
        assert_eq!((other.len(), other[0].down_reports), (1, 1));
    }

    #[test]
    fn a_site_is_up_degraded_or_down_by_its_modems() {
        assert_eq!(RadioState::of(0, 0), None);
        assert_eq!(RadioState::of(2, 2), Some(RadioState::Up));
        assert_eq!(RadioState::of(2, 1), Some(RadioState::Degraded));
        assert_eq!(RadioState::of(2, 0), Some(RadioState::Down));
    }
}
