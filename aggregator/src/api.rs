//! The wire of the aggregator's JSON API (`/api/v1/*`), defined once: the handlers in
//! [`crate::web`] build these structs, and [`crate::client::AggregatorClient`], the demo and the
//! tests read them back. Every type derives both `Serialize` and `Deserialize`; a renamed field
//! fails to compile in the readers and fails `tests/api_wire.rs`, which pins each shape.
//!
//! | route | reply |
//! |---|---|
//! | `POST /api/v1/reports` | [`ReportReply`] |
//! | `GET /api/v1/query` | [`QueryReply`] |
//! | `GET /api/v1/runs/{run_id}` | [`RunReply`] |
//! | `GET /api/v1/probers` | [`ProbersReply`] |
//! | `GET /api/v1/slos` | [`SlosReply`] |
//! | `GET /api/v1/alerts` | [`AlertsReply`] |
//! | `/healthz`, `/readyz` | [`Health`] |
//! | any refusal | [`ErrorReply`] |

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

pub use crate::{
    config::ProberKind,
    slo::{Scope, ScopeStatus, Severity, WindowStatus},
    store::{Dim, RunInfo, Selection},
};

/// `{"status": "error", "reason": …}`: what every refusal but ingest's says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// Always `error`.
    pub status: String,
    pub reason: String,
}

impl ErrorReply {
    pub fn new(reason: impl Into<String>) -> ErrorReply {
        ErrorReply { status: "error".into(), reason: reason.into() }
    }
}

/// `/healthz` (`ok`) and `/readyz` (`ready`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
}

// ---------------------------------------------------------------------------------------------
// POST /api/v1/reports

/// What became of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportStatus {
    Stored,
    /// Already stored (same prober and seq, same content): acknowledged, nothing changed.
    Duplicate,
    /// Refused for good (the reason says why; 4xx).
    Rejected,
    /// Not stored now (the store is unavailable; 503): send again later.
    Unavailable,
}

/// The JSON reply to a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportReply {
    /// The HTTP status the reply is sent with (not on the wire).
    #[serde(skip)]
    pub http_status: u16,
    pub status: ReportStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Seconds for a `Retry-After` header (a 429; not in the body).
    #[serde(skip)]
    pub retry_after_s: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// GET /api/v1/query, GET /api/v1/runs/{run_id}

/// Latency summary of a merged histogram (durations recorded in µs, shown in ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Latency {
            min: ms(h.min()),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        })
    }
}

/// One group of a query reply: its labels (one per `group_by` dimension), run counts and latency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub labels: BTreeMap<String, String>,
    pub count: u64,
    /// Runs per outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// `None` when the group holds no runs.
    pub latency_ms: Option<Latency>,
}

impl Group {
    /// The group's value of `dim` (empty when the reply was not grouped by it).
    pub fn label(&self, dim: Dim) -> &str {
        self.labels.get(dim.name()).map_or("", String::as_str)
    }

    /// Runs with a good outcome ([`report::is_good`]).
    pub fn good(&self) -> u64 {
        self.outcomes.iter().filter(|(o, _)| report::is_good(o)).map(|(_, n)| n).sum()
    }

    /// Runs with any other outcome.
    pub fn failed(&self) -> u64 {
        self.count.saturating_sub(self.good())
    }
}

/// `GET /api/v1/query`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryReply {
    pub from_ms: i64,
    pub to_ms: i64,
    pub selection: Selection,
    pub group_by: Vec<Dim>,
    pub groups: Vec<Group>,
}

/// `GET /api/v1/runs/{run_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReply {
    pub run: RunInfo,
    pub selection: Selection,
    pub group_by: Vec<Dim>,
    pub groups: Vec<Group>,
}

/// The parameters of `GET /api/v1/query` (and of a run's query: `from`/`to` do not apply there).
/// Lists are sent comma-separated; an empty list or `None` is not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryParams {
    pub journeys: Vec<String>,
    /// `None`: the route's default (journey level for `/query`); `Some("*")` every step and the
    /// journey level; `Some("")` the journey level.
    pub step: Option<String>,
    pub outcomes: Vec<String>,
    pub regions: Vec<String>,
    pub profiles: Vec<String>,
    /// Payment rails (`mpesa-ke`, `momo`, …): without `step`, every payment step of them.
    pub rails: Vec<String>,
    /// Payment steps' provider codes (`1037`, `APPROVAL_REJECTED`, `unknown`, …).
    pub reasons: Vec<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub group_by: Vec<Dim>,
}

impl QueryParams {
    /// The query string, without `?`.
    pub fn encode(&self) -> String {
        let list = |v: &[String]| (!v.is_empty()).then(|| v.join(","));
        let dims = self.group_by.iter().map(|d| d.name()).collect::<Vec<_>>().join(",");
        let pairs: Vec<(&str, Option<String>)> = vec![
            ("journey", list(&self.journeys)),
            ("step", self.step.clone()),
            ("outcome", list(&self.outcomes)),
            ("region", list(&self.regions)),
            ("profile", list(&self.profiles)),
            ("rail", list(&self.rails)),
            ("reason", list(&self.reasons)),
            ("from", self.from_ms.map(|v| v.to_string())),
            ("to", self.to_ms.map(|v| v.to_string())),
            ("group_by", (!dims.is_empty()).then_some(dims)),
        ];
        let pairs: Vec<(&str, String)> = pairs.into_iter().filter_map(|(k, v)| Some((k, v?))).collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// GET /api/v1/probers

/// A prober's derived state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProberState {
    /// A report arrived within the last 2 intervals, and it is not far behind.
    Up,
    /// Silent for more than 2 intervals, or catching up on a backlog (its newest data is more than
    /// 3 intervals old).
    Late,
    /// Silent for more than `down_after_intervals` intervals.
    Down,
    /// Never reported.
    Never,
    /// A load-run identity with no run reporting now.
    Idle,
}

impl ProberState {
    pub const ALL: [ProberState; 4] = [ProberState::Up, ProberState::Late, ProberState::Down, ProberState::Never];

    pub fn name(self) -> &'static str {
        match self {
            ProberState::Up => "up",
            ProberState::Late => "late",
            ProberState::Down => "down",
            ProberState::Never => "never",
            ProberState::Idle => "idle",
        }
    }
}

/// One prober's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProberStatus {
    pub id: String,
    pub region: String,
    /// `edge` (a site) or `load` (on-demand load runs).
    pub kind: ProberKind,
    pub state: ProberState,
    /// Aggregator wall time of the last report stored or acknowledged (ms).
    pub last_report_ms: Option<i64>,
    pub last_report_age_s: Option<f64>,
    /// The newest interval end received (corrected for skew), ms.
    pub last_interval_end_ms: Option<i64>,
    /// now − last interval end, seconds.
    pub lag_s: Option<f64>,
    /// The reporting cadence the state is judged by: announced by the prober's heartbeat, else
    /// the longest report seen (at least 15 s).
    pub interval_s: Option<f64>,
    pub outbox_backlog: u64,
    pub outbox_dropped_total: u64,
    /// The adopted clock offset (prober − aggregator): what consistent reports are corrected by
    /// when it exceeds `skew_threshold`.
    pub clock_offset_ms: Option<i64>,
    pub clock_skewed: bool,
    /// The prober's last fresh report did not fit the adopted offset (its clock stepped, or is
    /// further off than `ingest.max_clock_correction`): it was taken uncorrected, or refused by the
    /// horizon.
    pub clock_jump: bool,
    /// What that report's clock read (prober − aggregator, ms), while `clock_jump`.
    pub clock_observed_offset_ms: Option<i64>,
    pub reports: ReportCounts,
    pub version: String,
    /// The prober's modems as its newest heartbeat read them; absent for an edge without modems.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub radios: Vec<RadioStatus>,
}

/// One modem of a prober (`heartbeat.radios`, docs/report-format.md), as the aggregator judges it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RadioStatus {
    pub modem: String,
    /// dBm; none when the modem could not tell.
    pub signal_dbm: Option<i32>,
    pub registration: String,
    pub operator: String,
    pub access: String,
    pub sim: String,
    /// Why the modem could not be read; empty when it answered.
    pub error: String,
    /// When the prober read it (prober clock, UTC ms).
    pub read_at_ms: i64,
    /// now − `read_at_ms`, seconds (by the aggregator's clock: skewed probers read off by their
    /// offset).
    pub read_age_s: f64,
    /// Answered, SIM ready, registered, hears the network.
    pub up: bool,
    /// Heartbeats in a row that read it not up (0 when up); `SavannaSiteRadioDown` fires from 2.
    pub down_reports: u32,
}

/// One site's (region's) radio, over every modem of its edge probers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRadio {
    pub region: String,
    /// `up` (every modem up), `degraded` (some), `down` (none).
    pub state: crate::radio::RadioState,
    pub modems: u32,
    pub up: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportCounts {
    /// Since the store was created.
    pub stored_total: u64,
    /// Since the aggregator started.
    pub duplicates: u64,
    /// Since the aggregator started (after the token identified the prober).
    pub rejected: u64,
}

/// `GET /api/v1/probers`: every configured prober, in configuration order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbersReply {
    pub now_ms: i64,
    pub probers: Vec<ProberStatus>,
    /// The radio of every site with modems, by region; absent when no edge has modems.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub radio_sites: Vec<SiteRadio>,
}

// ---------------------------------------------------------------------------------------------
// GET /api/v1/slos, GET /api/v1/alerts

/// The parameters of `GET /api/v1/slos`: absent means all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloFilter {
    /// Only this SLO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<String>,
    /// Only this region (`all` for the all-regions scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Only this journey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journey: Option<String>,
}

/// `GET /api/v1/slos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlosReply {
    pub evaluated_at_ms: i64,
    pub slos: Vec<SloReply>,
}

/// One SLO: its definition and every scope's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloReply {
    pub name: String,
    pub service: String,
    pub description: String,
    pub objective: f64,
    pub error_budget: f64,
    /// `30d` or `28d`.
    pub period: String,
    /// In words.
    pub sli: String,
    /// For a latency SLI.
    pub latency_threshold_ms: Option<u64>,
    pub selection: SloSelection,
    pub alerting: SloAlerting,
    pub alert_windows: Vec<AlertWindow>,
    pub scopes: Vec<ScopeStatus>,
}

/// Which runs an SLO counts (empty lists: all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SloSelection {
    pub journeys: Vec<String>,
    pub regions: Vec<String>,
    pub step: Option<String>,
    /// Payment rails: the SLO counts these rails' payment steps. Left out when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rails: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SloAlerting {
    pub team: String,
    pub runbook_url: String,
    pub page: bool,
    pub ticket: bool,
}

/// A multi-window burn-rate condition: both windows above the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertWindow {
    pub severity: Severity,
    pub short: String,
    pub long: String,
    pub burn_rate_threshold: f64,
}

/// `GET /api/v1/alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertsReply {
    pub evaluated_at_ms: i64,
    pub firing: Vec<FiringAlert>,
}

/// An alert firing now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiringAlert {
    /// As the generated Prometheus rules name it.
    pub alertname: String,
    pub slo: String,
    pub journey: String,
    pub region: String,
    pub severity: Severity,
    pub paging: bool,
    pub since_ms: i64,
}

impl FiringAlert {
    /// `page checkout-availability checkout-mpesa dar`.
    pub fn key(&self) -> String {
        format!("{} {} {} {}", self.severity.as_str(), self.slo, self.journey, self.region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_in_ms() {
        let mut h = report::new_histogram();
        for v in [1_000, 2_000, 3_000, 4_000] {
            h.record(v).unwrap();
        }
        let l = Latency::of(&h).unwrap();
        assert_eq!(l.min, 1.0);
        assert_eq!(l.p50, 2.0);
        assert!((l.max - 4.0).abs() < 0.01);
        assert_eq!(Latency::of(&report::new_histogram()), None);
    }

    #[test]
    fn query_params_encode_lists_and_skip_absent_ones() {
        let q = QueryParams {
            journeys: vec!["a".into(), "b c".into()],
            step: Some("*".into()),
            from_ms: Some(5),
            group_by: vec![Dim::Journey, Dim::Region],
            ..QueryParams::default()
        };
        assert_eq!(q.encode(), "journey=a%2Cb+c&step=*&from=5&group_by=journey%2Cregion");
        assert_eq!(QueryParams::default().encode(), "");
    }

    #[test]
    fn good_and_failed_runs_follow_the_vocabulary() {
        let g = Group {
            labels: BTreeMap::from([("region".into(), "dar".into())]),
            count: 10,
            outcomes: BTreeMap::from([("ok".into(), 6), ("expected".into(), 1), ("timeout".into(), 3)]),
            latency_ms: None,
        };
        assert_eq!((g.good(), g.failed()), (7, 3));
        assert_eq!(g.label(Dim::Region), "dar");
        assert_eq!(g.label(Dim::Journey), "");
    }
}
