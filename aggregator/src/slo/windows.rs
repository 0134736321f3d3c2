//! The windows and the multi-window, multi-burn-rate alert tables (SRE Workbook ch. 5, Sloth's
//! `google-30d.yaml` / `google-28d.yaml`).

use std::{fmt, time::Duration};

/// A rolling SLO period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Period {
    Days30,
    Days28,
}

impl Period {
    pub fn duration(self) -> Duration {
        Duration::from_secs(self.days() * 86_400)
    }

    pub fn days(self) -> u64 {
        match self {
            Period::Days30 => 30,
            Period::Days28 => 28,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Period::Days30 => "30d",
            Period::Days28 => "28d",
        }
    }

    /// The alert table for this period.
    pub fn alert_windows(self) -> [AlertWindow; 4] {
        let t = self.duration().as_secs_f64() / 3600.0;
        // (budget consumed %, short, long, severity): the factor is pct/100 · T / long.
        let rows = [
            (2.0, W5M, W1H, Severity::Page),
            (5.0, W30M, W6H, Severity::Page),
            (10.0, W2H, W1D, Severity::Ticket),
            (10.0, W6H, W3D, Severity::Ticket),
        ];
        rows.map(|(pct, short, long, severity)| AlertWindow {
            short,
            long,
            factor: pct / 100.0 * t / (long.0.as_secs_f64() / 3600.0),
            severity,
        })
    }
}

/// An evaluation window, written as Prometheus writes durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window(pub Duration);

pub const W5M: Window = Window(Duration::from_secs(300));
pub const W30M: Window = Window(Duration::from_secs(1_800));
pub const W1H: Window = Window(Duration::from_secs(3_600));
pub const W2H: Window = Window(Duration::from_secs(7_200));
pub const W6H: Window = Window(Duration::from_secs(21_600));
pub const W1D: Window = Window(Duration::from_secs(86_400));
pub const W3D: Window = Window(Duration::from_secs(259_200));

/// Every window an SLO is evaluated over, besides its period.
pub const WINDOWS: [Window; 7] = [W5M, W30M, W1H, W2H, W6H, W1D, W3D];

impl Window {
    pub fn minutes(self) -> u64 {
        self.0.as_secs() / 60
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        if s.is_multiple_of(86_400) {
            write!(f, "{}d", s / 86_400)
        } else if s.is_multiple_of(3_600) {
            write!(f, "{}h", s / 3_600)
        } else {
            write!(f, "{}m", s / 60)
        }
    }
}

/// Alert severity: a page wakes someone; a ticket waits for business hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Page,
    Ticket,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }
}

/// One row of the table: fire when both windows burn faster than `factor`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertWindow {
    pub short: Window,
    pub long: Window,
    pub factor: f64,
    pub severity: Severity,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_match_the_workbook_and_sloth() {
        let f30: Vec<f64> = Period::Days30.alert_windows().iter().map(|w| w.factor).collect();
        for (got, want) in f30.iter().zip([14.4, 6.0, 3.0, 1.0]) {
            assert!((got - want).abs() < 1e-9, "{f30:?}");
        }
        let f28: Vec<f64> = Period::Days28.alert_windows().iter().map(|w| w.factor).collect();
        for (got, want) in f28.iter().zip([13.44, 5.6, 2.8, 0.9333333333]) {
            assert!((got - want).abs() < 1e-6, "{f28:?}");
        }
        assert_eq!(W5M.to_string(), "5m");
        assert_eq!(W6H.to_string(), "6h");
        assert_eq!(W3D.to_string(), "3d");
        assert_eq!(Window(Period::Days30.duration()).to_string(), "30d");
    }
}
