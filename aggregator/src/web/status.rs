//! `GET /api/v1/probers`: is each configured site reporting? This separates "the Kampala site is
//! down" (its prober is `down`: nothing received) from "checkout is down in Kampala" (the prober is
//! `up` and its reports say checkout fails). Identities configured `kind: load` (on-demand load
//! runs) are listed too, `up` while a run reports and `idle` otherwise: never late or down, and
//! without the per-site gauges.

use axum::{Json, extract::State};

use super::AppState;
use crate::{
    api::ProbersReply,
    config::ProberKind,
    ingest::ProberLive,
    metrics::{ProberLabels, StateLabels},
};
pub use crate::{
    api::{ProberState, ProberStatus, ReportCounts},
    ingest::DEFAULT_INTERVAL_MS,
};

/// The state from the last reception, the last interval end and the prober's reporting cadence
/// (announced, not a report's length: see [`ProberLive::interval_ms`]).
pub fn derive_state(
    now_ms: i64,
    last_received_ms: Option<i64>,
    last_interval_end_ms: Option<i64>,
    interval_ms: Option<i64>,
    down_after_intervals: u32,
) -> ProberState {
    let Some(received) = last_received_ms else { return ProberState::Never };
    let interval = interval_ms.unwrap_or(DEFAULT_INTERVAL_MS).max(1_000);
    let age = now_ms - received;
    let lag = last_interval_end_ms.map_or(0, |e| now_ms - e);
    if age > i64::from(down_after_intervals) * interval {
        ProberState::Down
    } else if age > 2 * interval || lag > 3 * interval {
        ProberState::Late
    } else {
        ProberState::Up
    }
}

/// A load-run identity's state: `up` while a run reports (a report within 2 intervals), else idle.
pub fn derive_load_state(now_ms: i64, last_received_ms: Option<i64>, interval_ms: Option<i64>) -> ProberState {
    let interval = interval_ms.unwrap_or(DEFAULT_INTERVAL_MS).max(1_000);
    match last_received_ms {
        Some(received) if now_ms - received <= 2 * interval => ProberState::Up,
        _ => ProberState::Idle,
    }
}

/// The status of every configured prober, in configuration order.
pub fn statuses(app: &AppState) -> Vec<ProberStatus> {
    let now = app.clock.now_ms();
    app.ingest
        .probers()
        .iter()
        .map(|p| {
            let l: ProberLive = app.ingest.live(&p.id).unwrap_or_default();
            let state = match p.kind {
                ProberKind::Edge => derive_state(
                    now,
                    l.last_received_ms,
                    l.last_interval_end_ms,
                    l.interval_ms,
                    app.down_after_intervals,
                ),
                ProberKind::Load => derive_load_state(now, l.last_received_ms, l.interval_ms),
            };
            ProberStatus {
                id: p.id.clone(),
                region: p.region.clone(),
                kind: p.kind,
                state,
                last_report_ms: l.last_received_ms,
                last_report_age_s: l.last_received_ms.map(|t| (now - t) as f64 / 1000.0),
                last_interval_end_ms: l.last_interval_end_ms,
                lag_s: l.last_interval_end_ms.map(|t| (now - t) as f64 / 1000.0),
                interval_s: l.interval_ms.map(|i| i as f64 / 1000.0),
                outbox_backlog: l.outbox_backlog,
                outbox_dropped_total: l.outbox_dropped_total,
                clock_offset_ms: l.offset_ms,
                clock_skewed: l.skewed,
                clock_jump: l.clock_jump.is_some(),
                clock_observed_offset_ms: l.clock_jump.map(|j| j.observed_ms),
                reports: ReportCounts { stored_total: l.stored_total, duplicates: l.duplicates, rejected: l.rejected },
                version: l.version,
            }
        })
        .collect()
}

/// Per-site gauges, computed at scrape time (ages move with the clock, not with reports). Load-run
/// identities are not sites and get none.
pub fn refresh_gauges(app: &AppState) {
    let m = &app.metrics;
    for s in statuses(app).into_iter().filter(|s| s.kind == ProberKind::Edge) {
        let labels = ProberLabels { prober: s.id.clone(), region: s.region.clone() };
        if let Some(age) = s.last_report_age_s {
            m.prober_last_report_age.get_or_create(&labels).set(age);
        }
        if let Some(off) = s.clock_offset_ms {
            m.prober_clock_offset.get_or_create(&labels).set(off as f64 / 1000.0);
        }
        m.prober_clock_skewed.get_or_create(&labels).set(i64::from(s.clock_skewed));
        m.prober_clock_jump.get_or_create(&labels).set(i64::from(s.clock_jump));
        m.prober_outbox_backlog.get_or_create(&labels).set(s.outbox_backlog as i64);
        for state in ProberState::ALL {
            m.prober_state
                .get_or_create(&StateLabels {
                    prober: s.id.clone(),
                    region: s.region.clone(),
                    state: state.name().into(),
                })
                .set(i64::from(state == s.state));
        }
    }
}

pub async fn probers(State(app): State<AppState>) -> Json<ProbersReply> {
    Json(ProbersReply { now_ms: app.clock.now_ms(), probers: statuses(&app) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn a_load_identity_is_up_while_a_run_reports_and_idle_otherwise() {
        assert_eq!(derive_load_state(NOW, None, None), ProberState::Idle);
        assert_eq!(derive_load_state(NOW, Some(NOW - 5_000), Some(10_000)), ProberState::Up);
        assert_eq!(derive_load_state(NOW, Some(NOW - 3_600_000), Some(10_000)), ProberState::Idle);
    }

    #[test]
    fn states_follow_silence_and_lag() {
        let s = |received: Option<i64>, end: Option<i64>| derive_state(NOW, received, end, Some(15_000), 8);
        assert_eq!(s(None, None), ProberState::Never);
        assert_eq!(s(Some(NOW - 1_000), Some(NOW - 1_500)), ProberState::Up);
        assert_eq!(s(Some(NOW - 30_000), Some(NOW - 30_000)), ProberState::Up);
        assert_eq!(s(Some(NOW - 30_001), Some(NOW - 30_001)), ProberState::Late);
        assert_eq!(s(Some(NOW - 120_000), Some(NOW - 120_000)), ProberState::Late);
        assert_eq!(s(Some(NOW - 120_001), Some(NOW - 120_001)), ProberState::Down);
        // Sending now, but replaying an hour-old backlog: late, not up.
        assert_eq!(s(Some(NOW - 100), Some(NOW - 3_600_000)), ProberState::Late);
        // A 60 s cadence stretches every threshold.
        assert_eq!(derive_state(NOW, Some(NOW - 100_000), Some(NOW - 100_000), Some(60_000), 8), ProberState::Up);
    }
}
