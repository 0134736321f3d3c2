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
    metrics::{ProberLabels, RadioLabels, StateLabels},
    radio::{RadioLive, RadioState},
};
pub use crate::{
    api::{ProberState, ProberStatus, RadioStatus, ReportCounts, SiteRadio},
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
                radios: l.radios.iter().map(|r| radio_status(now, r)).collect(),
            }
        })
        .collect()
}

fn radio_status(now_ms: i64, r: &RadioLive) -> RadioStatus {
    let h = &r.health;
    RadioStatus {
        modem: h.modem.clone(),
        signal_dbm: h.signal_dbm,
        registration: h.registration.clone(),
        operator: h.operator.clone(),
        access: h.access.clone(),
        sim: h.sim.clone(),
        error: h.error.clone(),
        read_at_ms: h.read_at_ms,
        read_age_s: (now_ms - h.read_at_ms).max(0) as f64 / 1000.0,
        up: h.is_up(),
        down_reports: r.down_reports,
    }
}

/// The radio of every site whose edge probers have modems, by region. Load identities have none.
pub fn radio_sites(statuses: &[ProberStatus]) -> Vec<SiteRadio> {
    let mut sites: std::collections::BTreeMap<&str, (u32, u32)> = Default::default();
    for p in statuses.iter().filter(|p| p.kind == ProberKind::Edge && !p.radios.is_empty()) {
        let e = sites.entry(p.region.as_str()).or_default();
        for r in &p.radios {
            e.0 += 1;
            e.1 += u32::from(r.up);
        }
    }
    sites
        .into_iter()
        .filter_map(|(region, (modems, up))| {
            RadioState::of(modems, up).map(|state| SiteRadio { region: region.to_owned(), state, modems, up })
        })
        .collect()
}

/// Per-site gauges, computed at scrape time (ages move with the clock, not with reports). Load-run
/// identities are not sites and get none.
pub fn refresh_gauges(app: &AppState) {
    let m = &app.metrics;
    // A modem the edge no longer lists leaves no stale series behind.
    m.site_radio_up.clear();
    m.site_radio_signal.clear();
    for s in statuses(app).into_iter().filter(|s| s.kind == ProberKind::Edge) {
        for r in &s.radios {
            let labels = RadioLabels { region: s.region.clone(), prober: s.id.clone(), modem: r.modem.clone() };
            m.site_radio_up.get_or_create(&labels).set(i64::from(r.up));
            if let Some(dbm) = r.signal_dbm {
                m.site_radio_signal.get_or_create(&labels).set(i64::from(dbm));
            }
        }
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
    let probers = statuses(&app);
    Json(ProbersReply { now_ms: app.clock.now_ms(), radio_sites: radio_sites(&probers), probers })
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
