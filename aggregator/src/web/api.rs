//! The JSON query API.
//!
//! `GET /api/v1/query?journey=a,b&step=&region=&outcome=&profile=&rail=&reason=&from=&to=&group_by=region,outcome`
//!
//! - Label filters are comma lists; absent means all. `step` absent or empty means the
//!   journey-level series (one per run); `step=*` means every step *and* the journey level.
//! - `rail` and `reason` keep payment steps' series of those rails and provider codes. Only step
//!   series have a rail, so when `rail` or `reason` is given and `step` is not, `step` means
//!   every step (`rail=momo` alone is every MoMo payment step, whatever it is called).
//! - `from`/`to`: Unix ms or RFC 3339; default the last hour. A bucket counts when it starts in
//!   `[from, to)`: one minute wide for recent data, one hour after compaction.
//! - `group_by`: any of journey, step, outcome, region, profile, rail, reason.
//!
//! Each group: `count`, `outcomes` (per-outcome counts), `latency_ms` (min, p50, p90, p95, p99,
//! max), merged exactly from the stored histograms.
//!
//! `GET /api/v1/runs/{run_id}` answers the same for a load run (default: every step, grouped by
//! journey, step and outcome; `from`/`to` do not apply).

use super::{AppState, error};
use crate::{
    api::{Group, Latency, QueryReply, RunReply},
    store::{Dim, Group as StoreGroup, Selection},
};
use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};

fn groups_out(groups: Vec<StoreGroup>) -> Vec<Group> {
    groups
        .into_iter()
        .map(|g| Group {
            labels: g.key.into_iter().map(|(d, v)| (d.name().to_owned(), v)).collect(),
            count: g.counts.total,
            latency_ms: Latency::of(&g.histogram),
            outcomes: g.counts.by_outcome,
        })
        .collect()
}

/// A parsed query string.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySpec {
    pub selection: Selection,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub group_by: Vec<Dim>,
}

/// Parses the query parameters; `step_default` applies when `step` is absent.
pub fn parse_query(params: &[(String, String)], step_default: Option<Vec<String>>) -> Result<QuerySpec, String> {
    let mut sel = Selection { steps: step_default, ..Selection::default() };
    let mut spec = QuerySpec { selection: Selection::default(), from_ms: None, to_ms: None, group_by: Vec::new() };
    let list = |v: &str| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect::<Vec<_>>();
    for (k, v) in params {
        match k.as_str() {
            "journey" => sel.journeys = Some(list(v)).filter(|l| !l.is_empty()),
            "outcome" => sel.outcomes = Some(list(v)).filter(|l| !l.is_empty()),
            "region" => sel.regions = Some(list(v)).filter(|l| !l.is_empty()),
            "profile" => sel.profiles = Some(list(v)).filter(|l| !l.is_empty()),
            "rail" => sel.rails = Some(list(v)).filter(|l| !l.is_empty()),
            "reason" => sel.reasons = Some(list(v)).filter(|l| !l.is_empty()),
            "step" => {
                sel.steps = match v.trim() {
                    "*" => None,
                    "" => Some(vec![String::new()]),
                    // `step=,pay` keeps the journey level and `pay`.
                    _ => Some(v.split(',').map(|s| s.trim().to_owned()).collect()),
                }
            }
            "from" => spec.from_ms = Some(parse_time(v).map_err(|e| format!("from: {e}"))?),
            "to" => spec.to_ms = Some(parse_time(v).map_err(|e| format!("to: {e}"))?),
            "group_by" => {
                spec.group_by = list(v)
                    .iter()
                    .map(|d| {
                        Dim::parse(d).ok_or_else(|| {
                            format!(
                                "group_by: `{d}` is not one of journey, step, outcome, region, profile, rail, reason"
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?
            }
            other => {
                return Err(format!(
                    "unknown parameter `{other}`; use journey, step, outcome, region, profile, rail, reason, from, to, group_by"
                ));
            }
        }
    }
    let payment = sel.rails.is_some() || sel.reasons.is_some();
    if payment && !params.iter().any(|(k, _)| k == "step") {
        // The default (journey level) has no rail: a rail filter means its payment steps.
        sel.steps = None;
    }
    spec.selection = sel;
    Ok(spec)
}

/// Unix milliseconds or RFC 3339.
pub fn parse_time(v: &str) -> Result<i64, String> {
    if let Ok(ms) = v.trim().parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(v.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|_| format!("`{v}` is neither Unix milliseconds nor RFC 3339 (2026-01-31T12:00:00Z)"))
}

pub async fn query(State(app): State<AppState>, Query(params): Query<Vec<(String, String)>>) -> Response {
    let spec = match parse_query(&params, Some(vec![String::new()])) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let to = spec.to_ms.unwrap_or_else(|| app.clock.now_ms());
    let from = spec.from_ms.unwrap_or(to - 3_600_000);
    if from >= to {
        return error(StatusCode::BAD_REQUEST, format!("from ({from}) must be before to ({to})"));
    }
    let store = app.store.clone();
    let (sel, group_by) = (spec.selection.clone(), spec.group_by.clone());
    let groups = match tokio::task::spawn_blocking(move || store.groups(&sel, from, to, &group_by)).await {
        Ok(Ok(g)) => g,
        Ok(Err(e)) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    Json(QueryReply {
        from_ms: from,
        to_ms: to,
        selection: spec.selection,
        group_by: spec.group_by,
        groups: groups_out(groups),
    })
    .into_response()
}

pub async fn run(
    State(app): State<AppState>,
    Path(run_id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let mut spec = match parse_query(&params, None) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if !params.iter().any(|(k, _)| k == "group_by") {
        spec.group_by = vec![Dim::Journey, Dim::Step, Dim::Outcome];
    }
    let store = app.store.clone();
    let (sel, group_by) = (spec.selection.clone(), spec.group_by.clone());
    let id = run_id.clone();
    let result = tokio::task::spawn_blocking(move || {
        let info = store.run(&id)?;
        let groups = match &info {
            Some(_) => store.run_groups(&id, &sel, &group_by)?,
            None => Vec::new(),
        };
        Ok::<_, crate::store::StoreError>((info, groups))
    })
    .await;
    match result {
        Ok(Ok((Some(info), groups))) => {
            Json(RunReply { run: info, selection: spec.selection, group_by: spec.group_by, groups: groups_out(groups) })
                .into_response()
        }
        Ok(Ok((None, _))) => error(StatusCode::NOT_FOUND, format!("no load run `{run_id}`")),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn step_defaults_to_journey_level() {
        let s = parse_query(&p(&[("journey", "a,b")]), Some(vec![String::new()])).unwrap();
        assert_eq!(s.selection.journeys, Some(vec!["a".into(), "b".into()]));
        assert_eq!(s.selection.steps, Some(vec![String::new()]));
        let s = parse_query(&p(&[("step", "*")]), Some(vec![String::new()])).unwrap();
        assert_eq!(s.selection.steps, None);
        let s = parse_query(&p(&[("step", ",pay")]), None).unwrap();
        assert_eq!(s.selection.steps, Some(vec![String::new(), "pay".into()]));
        let s = parse_query(&p(&[("region", "")]), None).unwrap();
        assert_eq!(s.selection.regions, None);
    }

    #[test]
    fn rail_and_reason_filter_payment_steps_and_group() {
        let s = parse_query(&p(&[("rail", "momo,airtel"), ("group_by", "rail,reason")]), Some(vec![String::new()]))
            .unwrap();
        assert_eq!(s.selection.rails, Some(vec!["momo".into(), "airtel".into()]));
        assert_eq!(s.selection.steps, None, "a rail filter alone means every (payment) step");
        assert_eq!(s.group_by, vec![Dim::Rail, Dim::Reason]);
        let s = parse_query(&p(&[("reason", "1037"), ("step", "pay")]), Some(vec![String::new()])).unwrap();
        assert_eq!((s.selection.reasons, s.selection.steps), (Some(vec!["1037".into()]), Some(vec!["pay".into()])));
        let s = parse_query(&p(&[("rail", "")]), Some(vec![String::new()])).unwrap();
        assert_eq!((s.selection.rails, s.selection.steps), (None, Some(vec![String::new()])));
        let e = parse_query(&p(&[("group_by", "provider")]), None).unwrap_err();
        assert!(e.contains("rail, reason"), "{e}");
    }

    #[test]
    fn times_and_groups() {
        let s = parse_query(
            &p(&[("from", "2023-11-14T22:13:20Z"), ("to", "1700000060000"), ("group_by", "region,outcome")]),
            None,
        )
        .unwrap();
        assert_eq!(s.from_ms, Some(1_700_000_000_000));
        assert_eq!(s.to_ms, Some(1_700_000_060_000));
        assert_eq!(s.group_by, vec![Dim::Region, Dim::Outcome]);
        assert!(parse_query(&p(&[("group_by", "city")]), None).unwrap_err().contains("city"));
        assert!(parse_query(&p(&[("form", "1")]), None).unwrap_err().contains("unknown parameter `form`"));
        assert!(parse_query(&p(&[("from", "yesterday")]), None).unwrap_err().starts_with("from:"));
    }
}
