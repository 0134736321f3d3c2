//! The SLO engine: events in (by event time), windows, burn rates, budgets and alert states out.
//!
//! It is a pure state machine driven by the caller's clock: [`Engine::record`] adds the runs of
//! one report series at the time they happened (late data included), [`Engine::evaluate`] computes
//! every SLO scope at `now` and returns alert transitions. A test can run 30 simulated days through
//! it in seconds.
//!
//! Maths (docs/slo.md §4–§6): E(W) = bad/total, BR(W) = E(W)/B, undefined when total = 0;
//! remaining budget R = 1 − bad(T)/(B·total(T)); time to exhaustion R·T/BR(1h); page =
//! (BR1h > f₁ ∧ BR5m > f₁) ∨ (BR6h > f₂ ∧ BR30m > f₂), ticket likewise with 1d/2h and 3d/6h.

use std::{collections::BTreeMap, time::Duration};

use report::SparseHistogram;
use serde::{Deserialize, Serialize};

use super::{
    ledger::{Counts, Ledger},
    spec::{Sli, Slo},
    windows::{Severity, WINDOWS, Window},
};

/// The label value of the all-regions scope.
pub const ALL_REGIONS: &str = "all";

/// Events more than this far ahead of the latest evaluation are ignored (a clock gone wrong).
const FUTURE_SLACK_MS: i64 = 3_600_000;

/// One place an SLO is evaluated: a journey in a region (or in all regions).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Scope {
    pub slo: String,
    pub journey: String,
    pub region: String,
}

/// One window's numbers. Ratios are `None` when the window has no events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowStatus {
    pub window: String,
    pub events: u64,
    pub bad: u64,
    pub error_ratio: Option<f64>,
    pub burn_rate: Option<f64>,
}

/// A scope at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeStatus {
    pub scope: Scope,
    pub objective: f64,
    pub windows: Vec<WindowStatus>,
    /// Over the whole period.
    pub period: WindowStatus,
    /// 1 − bad/(B·total) over the period; below 0 when overspent; `None` without events.
    pub error_budget_remaining: Option<f64>,
    /// At the 1 h burn rate, assuming constant traffic; `None` when not burning.
    pub time_to_exhaustion_s: Option<f64>,
    pub firing: Vec<Severity>,
}

impl ScopeStatus {
    pub fn window(&self, w: Window) -> Option<&WindowStatus> {
        let label = w.to_string();
        self.windows.iter().find(|s| s.window == label)
    }

    pub fn burn_rate(&self, w: Window) -> Option<f64> {
        self.window(w).and_then(|s| s.burn_rate)
    }
}

/// An alert that started or stopped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub scope: Scope,
    pub severity: Severity,
    pub firing: bool,
    pub at_ms: i64,
}

/// A firing alert and since when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Firing {
    pub scope: Scope,
    pub severity: Severity,
    pub since_ms: i64,
}

/// The engine.
pub struct Engine {
    slos: Vec<Slo>,
    ledgers: BTreeMap<Scope, (usize, Ledger)>,
    firing: BTreeMap<(Scope, Severity), i64>,
    latest_now_ms: i64,
}

/// The runs of one report series.
#[derive(Debug, Clone, Copy)]
pub struct SeriesEvent<'a> {
    pub journey: &'a str,
    /// Empty for the journey-level series.
    pub step: &'a str,
    pub outcome: &'a str,
    pub region: &'a str,
    /// A payment step's rail; empty for every other series.
    pub rail: &'a str,
    pub count: u64,
    /// Durations in µs (the fleet histogram).
    pub histogram: &'a SparseHistogram,
    /// When the runs happened (the interval's end, corrected for clock skew).
    pub at_ms: i64,
}

impl<'a> SeriesEvent<'a> {
    /// The runs of one report series (or stored bucket) that happened at `at_ms`.
    pub fn of(key: &'a report::SeriesKey, count: u64, histogram: &'a SparseHistogram, at_ms: i64) -> SeriesEvent<'a> {
        SeriesEvent {
            journey: &key.journey,
            step: &key.step,
            outcome: &key.outcome,
            region: &key.region,
            rail: &key.rail,
            count,
            histogram,
            at_ms,
        }
    }
}

/// Runs within `threshold`: the rule shared with the exported `le` buckets. A run counts as fast
/// when its HDR bucket starts at or below the threshold (values up to the bucket's highest
/// equivalent value, at most 0.1 % above it) — what `count_between(1, threshold)` counts.
pub fn count_within(h: &SparseHistogram, threshold: Duration) -> u64 {
    counts_within(h, &[threshold.as_micros() as u64])[0]
}

/// [`count_within`] for several thresholds (µs) in one pass over the non-empty buckets: the cost
/// follows the values recorded, not the size of the fleet layout, once per report series.
pub fn counts_within(h: &SparseHistogram, thresholds_us: &[u64]) -> Vec<u64> {
    let mut out = vec![0u64; thresholds_us.len()];
    for b in h.iter() {
        for (i, t) in thresholds_us.iter().enumerate() {
            if *t >= report::HIST_LOW_US && b.low <= *t {
                out[i] = out[i].saturating_add(b.count);
            }
        }
    }
    out
}

impl Engine {
    pub fn new(slos: Vec<Slo>) -> Engine {
        Engine { slos, ledgers: BTreeMap::new(), firing: BTreeMap::new(), latest_now_ms: i64::MIN }
    }

    pub fn slos(&self) -> &[Slo] {
        &self.slos
    }

    /// Memory held by the ledgers, in bytes.
    pub fn bytes(&self) -> usize {
        self.ledgers.values().map(|(_, l)| l.bytes()).sum()
    }

    /// Adds one series' runs to every SLO that selects them, in its region and in all regions.
    pub fn record(&mut self, e: &SeriesEvent<'_>) {
        if self.latest_now_ms != i64::MIN && e.at_ms > self.latest_now_ms + FUTURE_SLACK_MS {
            return;
        }
        for (i, slo) in self.slos.iter().enumerate() {
            let Some(Counts { total, bad }) = counts_for(slo, e) else { continue };
            if total == 0 {
                continue;
            }
            for region in [e.region, ALL_REGIONS] {
                let scope = Scope { slo: slo.name.clone(), journey: e.journey.to_owned(), region: region.to_owned() };
                let hours = slo.period.days() as usize * 24;
                let (_, ledger) = self.ledgers.entry(scope).or_insert_with(|| (i, Ledger::new(hours)));
                ledger.add(e.at_ms, total, bad);
            }
        }
    }

    /// Evaluates every scope at `now_ms` and returns their status and the alert transitions since
    /// the previous evaluation.
    pub fn evaluate(&mut self, now_ms: i64) -> (Vec<ScopeStatus>, Vec<Transition>) {
        self.latest_now_ms = self.latest_now_ms.max(now_ms);
        let mut statuses = Vec::with_capacity(self.ledgers.len());
        let mut transitions = Vec::new();
        for (scope, (i, ledger)) in &self.ledgers {
            let slo = &self.slos[*i];
            let b = slo.budget();
            let hours = slo.period.days() * 24;
            let (counts, period) = ledger.windows(now_ms, hours);
            let status_of = |label: String, c: Counts| {
                let ratio = (c.total > 0).then(|| c.bad as f64 / c.total as f64);
                WindowStatus {
                    window: label,
                    events: c.total,
                    bad: c.bad,
                    error_ratio: ratio,
                    burn_rate: ratio.map(|r| r / b),
                }
            };
            let windows: Vec<WindowStatus> =
                WINDOWS.iter().zip(counts).map(|(w, c)| status_of(w.to_string(), c)).collect();
            let period_status = status_of(slo.period.label().to_owned(), period);
            let remaining = (period.total > 0).then(|| 1.0 - period.bad as f64 / (b * period.total as f64));
            let br = |w: Window| windows.iter().find(|s| s.window == w.to_string()).and_then(|s| s.burn_rate);
            let tte = match (remaining, br(super::windows::W1H)) {
                (Some(r), Some(burn)) if burn > 0.0 => Some((r.max(0.0) * slo.period.duration().as_secs_f64()) / burn),
                _ => None,
            };
            let mut firing = Vec::new();
            for severity in [Severity::Page, Severity::Ticket] {
                let enabled = match severity {
                    Severity::Page => slo.alerting.page,
                    Severity::Ticket => slo.alerting.ticket,
                };
                let all_pairs = slo.period.alert_windows();
                let pairs = || all_pairs.iter().filter(|a| a.severity == severity);
                // Strictly above; an undefined burn rate (no events) never fires.
                let on = enabled
                    && pairs()
                        .any(|a| br(a.short).is_some_and(|x| x > a.factor) && br(a.long).is_some_and(|x| x > a.factor));
                let key = (scope.clone(), severity);
                let was = self.firing.contains_key(&key);
                // No data is not good: a firing alert whose long window still burns but whose
                // short window has no events (a partition, a restart, a backlog still on its
                // way) holds, rather than resolving and paging again when the data lands. It
                // resolves once the short window has data below the factor, or the long window
                // empties (at most the long window's length without any data).
                let held = was
                    && !on
                    && enabled
                    && pairs().any(|a| br(a.short).is_none() && br(a.long).is_some_and(|x| x > a.factor));
                let on = on || held;
                if on && !was {
                    self.firing.insert(key, now_ms);
                    transitions.push(Transition { scope: scope.clone(), severity, firing: true, at_ms: now_ms });
                } else if !on && was {
                    self.firing.remove(&key);
                    transitions.push(Transition { scope: scope.clone(), severity, firing: false, at_ms: now_ms });
                }
                if on {
                    firing.push(severity);
                }
            }
            statuses.push(ScopeStatus {
                scope: scope.clone(),
                objective: slo.objective,
                windows,
                period: period_status,
                error_budget_remaining: remaining,
                time_to_exhaustion_s: tte,
                firing,
            });
        }
        (statuses, transitions)
    }

    /// Alerts firing now, and since when.
    pub fn firing(&self) -> Vec<Firing> {
        self.firing
            .iter()
            .map(|((scope, severity), since)| Firing { scope: scope.clone(), severity: *severity, since_ms: *since })
            .collect()
    }

    /// The SLO called `name`.
    pub fn slo(&self, name: &str) -> Option<&Slo> {
        self.slos.iter().find(|s| s.name == name)
    }
}

/// How the series' runs count for `slo`: `None` when the SLO does not select them.
pub fn counts_for(slo: &Slo, e: &SeriesEvent<'_>) -> Option<Counts> {
    let sel = &slo.selection;
    if !sel.journeys.is_empty() && !sel.journeys.iter().any(|j| j == e.journey) {
        return None;
    }
    if !sel.regions.is_empty() && !sel.regions.iter().any(|r| r == e.region) {
        return None;
    }
    if !sel.rails.is_empty() && !sel.rails.iter().any(|r| r == e.rail) {
        return None;
    }
    match sel.step.as_deref() {
        Some(step) if e.step != step => return None,
        // By rail: its payment steps, whatever they are called (a journey-level series has no
        // rail, so it never gets here).
        None if sel.rails.is_empty() && !e.step.is_empty() => return None,
        _ => {}
    }
    match &slo.sli {
        Sli::Availability => Some(Counts { total: e.count, bad: if report::is_good(e.outcome) { 0 } else { e.count } }),
        Sli::Latency { threshold } => {
            if e.outcome != "ok" {
                return None;
            }
            let fast = count_within(e.histogram, *threshold).min(e.count);
            Some(Counts { total: e.count, bad: e.count - fast })
        }
    }
}

#[cfg(test)]
mod tests;
