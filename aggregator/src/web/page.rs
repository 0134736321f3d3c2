//! The status page (`GET /status`): one self-contained HTML document, no external assets, no
//! scripts. Every SLO with its objective, SLI, remaining budget and burn rates per window against
//! the alert thresholds; what is firing; per-region percentiles per journey over the last hour; the
//! edge sites' heartbeat and lag; and small server-rendered SVG charts of burn rate and budget.
//!
//! The HTML is `aggregator/templates/status.html` (askama: checked at compile time, every value
//! HTML-escaped); this module computes what it shows. Numbers carry `data-*` attributes (`data-slo`, `data-journey`, `data-region`, `data-field`) so
//! tests can read them back and compare them with the JSON API.

use std::fmt::Write as _;

use askama::Template;
use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{SecondsFormat, TimeZone, Utc};

use super::{AppState, status};
use crate::{
    config::ProberKind,
    slo::{ScopeStatus, Severity, Slo, service::Evaluation},
    store::{Dim, Group, Selection},
};

const WINDOWS: [&str; 6] = ["5m", "30m", "1h", "6h", "1d", "3d"];

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    evaluated_at: String,
    generated: String,
    alerts: Vec<AlertRow>,
    slos: Vec<SloSection>,
    windows: [&'static str; 6],
    journeys: Journeys,
    sites: Vec<SiteRow>,
    load: Vec<LoadItem>,
    radios: Vec<RadioRow>,
}

struct AlertRow {
    slo: String,
    journey: String,
    region: String,
    severity: &'static str,
    since: String,
    team: String,
}

struct SloSection {
    name: String,
    service: String,
    /// Percent, three decimals.
    objective: String,
    period: &'static str,
    sli: String,
    team: String,
    runbook_url: String,
    /// `page 5m/1h > 14.40`.
    thresholds: Vec<String>,
    scopes: Vec<ScopeRow>,
}

struct ScopeRow {
    slo: String,
    journey: String,
    region: String,
    sli: String,
    sli_class: &'static str,
    budget: String,
    budget_class: &'static str,
    burns: Vec<BurnCell>,
    /// `page`, `ticket` or `ok`.
    alert: &'static str,
    /// The 1 h burn rate and the budget over the last day.
    charts: [Sparkline; 2],
    /// "radio down at kampala" when this USSD journey's site cannot reach the network: its
    /// failures are the site's radio, not the service (the SLO maths are unchanged).
    radio_note: String,
}

struct BurnCell {
    window: &'static str,
    class: &'static str,
    text: String,
}

/// A small SVG line chart: its path, and a dashed threshold line.
#[derive(Debug, Clone, PartialEq)]
struct Sparkline {
    width: f64,
    height: f64,
    title: String,
    path: String,
    threshold_y: Option<String>,
}

enum Journeys {
    Rows(Vec<JourneyRow>),
    None,
    Unreadable,
}

struct JourneyRow {
    journey: String,
    region: String,
    runs: u64,
    failed: u64,
    p50: String,
    p95: String,
    p99: String,
    radio_note: String,
}

struct SiteRow {
    id: String,
    region: String,
    state: &'static str,
    age: String,
    lag: String,
    outbox: u64,
    dropped: u64,
    clock_bad: bool,
    offset: String,
    /// The site's radio (`up`, `degraded`, `down`), empty for a site without modems.
    radio: &'static str,
}

/// One modem of an edge.
struct RadioRow {
    region: String,
    prober: String,
    modem: String,
    up: bool,
    signal: String,
    /// 0–5 bars ([`bars`]), and drawn: `▮▮▮▯▯`.
    bars_n: u8,
    bars: String,
    registration: String,
    network: String,
    sim: String,
    error: String,
    age: String,
}

struct LoadItem {
    id: String,
    state: &'static str,
    /// `, last report 12 s ago` or empty.
    age: String,
}

fn when(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms).single().map_or("-".into(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn pct(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".to_owned(), |x| format!("{:.*} %", digits, x * 100.0))
}

/// A sparkline of `values` (None = gap) scaled to [0, max], with a dashed threshold line.
fn sparkline(values: &[Option<f64>], max: f64, threshold: Option<f64>, title: String) -> Sparkline {
    let (w, h) = (180.0, 36.0);
    let n = values.len().max(2) as f64;
    let y = |v: f64| h - (v.clamp(0.0, max) / max) * (h - 2.0) - 1.0;
    let mut path = String::new();
    let mut pen_down = false;
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => {
                let x = i as f64 / (n - 1.0) * w;
                let _ = write!(path, "{}{x:.1},{:.1} ", if pen_down { "L" } else { "M" }, y(*v));
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    Sparkline { width: w, height: h, title, path, threshold_y: threshold.map(|t| format!("{:.1}", y(t))) }
}

pub async fn page(State(app): State<AppState>) -> Response {
    let eval = app.slo.latest();
    let slos = app.slo.slos();
    let now = app.clock.now_ms();
    let store = app.store.clone();
    let groups = tokio::task::spawn_blocking(move || {
        store.groups(&Selection::journey_level(), now - 3_600_000, now + 1, &[Dim::Journey, Dim::Region])
    })
    .await;
    let journeys = match groups {
        Ok(Ok(groups)) if !groups.is_empty() => Journeys::Rows(groups.iter().map(journey_row).collect()),
        Ok(Ok(_)) => Journeys::None,
        _ => Journeys::Unreadable,
    };
    let (sites, load): (Vec<_>, Vec<_>) = status::statuses(&app).into_iter().partition(|p| p.kind == ProberKind::Edge);
    let radio = RadioDown::of(&status::radio_sites(&sites));
    let journeys = match journeys {
        Journeys::Rows(mut rows) => {
            for j in &mut rows {
                j.radio_note = radio.note(j.journey.starts_with("ussd"), &j.region);
            }
            Journeys::Rows(rows)
        }
        other => other,
    };
    let page = StatusPage {
        evaluated_at: when(eval.at_ms),
        generated: when(now),
        alerts: alert_rows(&eval, &slos),
        slos: slos.iter().map(|slo| slo_section(&app, &eval, slo, &radio)).collect(),
        windows: WINDOWS,
        journeys,
        radios: sites.iter().flat_map(radio_rows).collect(),
        sites: sites.iter().map(site_row).collect(),
        load: load
            .iter()
            .map(|p| LoadItem {
                id: p.id.clone(),
                state: p.state.name(),
                age: p.last_report_age_s.map_or(String::new(), |s| format!(", last report {s:.0} s ago")),
            })
            .collect(),
    };
    match page.render() {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => {
            super::error(StatusCode::INTERNAL_SERVER_ERROR, format!("the status page could not be rendered: {e}"))
        }
    }
}

fn alert_rows(eval: &Evaluation, slos: &[Slo]) -> Vec<AlertRow> {
    eval.firing
        .iter()
        .map(|f| AlertRow {
            slo: f.scope.slo.clone(),
            journey: f.scope.journey.clone(),
            region: f.scope.region.clone(),
            severity: f.severity.as_str(),
            since: when(f.since_ms),
            team: slos.iter().find(|s| s.name == f.scope.slo).map_or("", |s| s.alerting.team.as_str()).to_owned(),
        })
        .collect()
}

/// The sites whose radio is down or degraded, for the notes beside USSD journeys.
struct RadioDown {
    /// region → `down` or `degraded`.
    sites: Vec<(String, &'static str)>,
}

impl RadioDown {
    fn of(sites: &[status::SiteRadio]) -> RadioDown {
        RadioDown {
            sites: sites
                .iter()
                .filter(|s| s.state != crate::radio::RadioState::Up)
                .map(|s| (s.region.clone(), s.state.name()))
                .collect(),
        }
    }

    /// The note beside a journey (or an SLO scope) at `region` (`all`: every site): only for
    /// journeys that dial through the edge's modem, i.e. USSD ones.
    fn note(&self, dials_ussd: bool, region: &str) -> String {
        if !dials_ussd {
            return String::new();
        }
        let at: Vec<String> = self
            .sites
            .iter()
            .filter(|(r, _)| region == "all" || r == region)
            .map(|(r, s)| if *s == "down" { format!("radio down at {r}") } else { format!("radio degraded at {r}") })
            .collect();
        at.join(", ")
    }
}

/// Whether an SLO's journeys dial USSD through the edge's modem: the `ussd` service, or a journey
/// named `ussd-…` (the convention of the journey files).
fn dials_ussd(slo: &Slo, journey: &str) -> bool {
    slo.service == "ussd" || journey.starts_with("ussd")
}

fn slo_section(app: &AppState, eval: &Evaluation, slo: &Slo, radio: &RadioDown) -> SloSection {
    let windows = slo.period.alert_windows();
    SloSection {
        name: slo.name.clone(),
        service: slo.service.clone(),
        objective: format!("{:.3}", slo.objective * 100.0),
        period: slo.period.label(),
        sli: crate::slo::service::describe_sli(slo),
        team: slo.alerting.team.clone(),
        runbook_url: slo.alerting.runbook_url.clone(),
        thresholds: windows
            .iter()
            .map(|w| format!("{} {}/{} > {:.2}", w.severity.as_str(), w.short, w.long, w.factor))
            .collect(),
        scopes: eval
            .statuses
            .iter()
            .filter(|s| s.scope.slo == slo.name)
            .map(|st| ScopeRow {
                radio_note: radio.note(dials_ussd(slo, &st.scope.journey), &st.scope.region),
                ..scope_row(app, slo, st)
            })
            .collect(),
    }
}

fn scope_row(app: &AppState, slo: &Slo, st: &ScopeStatus) -> ScopeRow {
    let windows = slo.period.alert_windows();
    let page_f = windows.iter().find(|w| w.severity == Severity::Page).map(|w| w.factor);
    let sli = st.period.error_ratio.map(|e| 1.0 - e);
    let budget = st.error_budget_remaining;
    let burns = WINDOWS
        .iter()
        .map(|&w| {
            let b = st.windows.iter().find(|x| x.window == w).and_then(|x| x.burn_rate);
            let hot = windows
                .iter()
                .any(|a| (a.short.to_string() == w || a.long.to_string() == w) && b.is_some_and(|v| v > a.factor));
            BurnCell {
                window: w,
                class: if hot { "bad" } else { "" },
                text: b.map_or("–".to_owned(), |v| format!("{v:.2}")),
            }
        })
        .collect();
    let history = app.slo.history(&st.scope);
    let burn_history: Vec<Option<f64>> = history.iter().map(|s| s.burn_rate_1h).collect();
    let budget_history: Vec<Option<f64>> =
        history.iter().map(|s| s.error_budget_remaining.map(|b| b.max(0.0))).collect();
    let max_burn = burn_history.iter().flatten().copied().fold(page_f.unwrap_or(14.4) * 1.5, f64::max);
    let region = &st.scope.region;
    ScopeRow {
        slo: st.scope.slo.clone(),
        journey: st.scope.journey.clone(),
        region: region.clone(),
        sli: pct(sli, 3),
        sli_class: if sli.is_some_and(|v| v < slo.objective) { "bad" } else { "ok" },
        budget: pct(budget, 1),
        budget_class: match budget {
            Some(b) if b <= 0.0 => "bad",
            Some(b) if b < 0.25 => "warn",
            _ => "",
        },
        burns,
        alert: if st.firing.contains(&Severity::Page) {
            "page"
        } else if st.firing.contains(&Severity::Ticket) {
            "ticket"
        } else {
            "ok"
        },
        charts: [
            sparkline(
                &burn_history,
                max_burn,
                page_f,
                format!("{region}: 1 h burn rate over the last day (dashed: page threshold)"),
            ),
            sparkline(&budget_history, 1.0, None, format!("{region}: error budget remaining over the last day")),
        ],
        radio_note: String::new(),
    }
}

fn journey_row(g: &Group) -> JourneyRow {
    let label = |d: Dim| g.key.iter().find(|(k, _)| *k == d).map_or("", |(_, v)| v.as_str()).to_owned();
    let q = |p: f64| {
        if g.histogram.is_empty() {
            "–".to_owned()
        } else {
            format!("{:.0} ms", g.histogram.value_at_quantile(p) as f64 / 1000.0)
        }
    };
    JourneyRow {
        journey: label(Dim::Journey),
        region: label(Dim::Region),
        runs: g.counts.total,
        failed: g.counts.by_outcome.iter().filter(|(o, _)| !report::is_good(o)).map(|(_, n)| *n).sum(),
        p50: q(0.5),
        p95: q(0.95),
        p99: q(0.99),
        radio_note: String::new(),
    }
}

/// Signal bars from dBm, in the steps phones use for GSM/UMTS RSSI: ≥ −73 five, ≥ −83 four,
/// ≥ −93 three, ≥ −103 two, ≥ −109 one (the `+CSQ` floor is −113), else none.
pub(crate) fn bars(dbm: Option<i32>) -> u8 {
    match dbm {
        Some(d) if d >= -73 => 5,
        Some(d) if d >= -83 => 4,
        Some(d) if d >= -93 => 3,
        Some(d) if d >= -103 => 2,
        Some(d) if d >= -109 => 1,
        _ => 0,
    }
}

fn radio_rows(p: &status::ProberStatus) -> Vec<RadioRow> {
    p.radios
        .iter()
        .map(|r| RadioRow {
            region: p.region.clone(),
            prober: p.id.clone(),
            modem: r.modem.clone(),
            up: r.up,
            signal: r.signal_dbm.map_or("no signal".to_owned(), |d| format!("{d} dBm")),
            bars_n: bars(r.signal_dbm),
            bars: (0..5).map(|i| if i < bars(r.signal_dbm) { '▮' } else { '▯' }).collect(),
            registration: r.registration.clone(),
            network: match (r.operator.as_str(), r.access.as_str()) {
                ("", "") => "–".to_owned(),
                (o, "") => o.to_owned(),
                ("", a) => a.to_owned(),
                (o, a) => format!("{o} · {a}"),
            },
            sim: r.sim.clone(),
            error: r.error.clone(),
            age: format!("{:.0} s ago", r.read_age_s),
        })
        .collect()
}

fn site_row(p: &status::ProberStatus) -> SiteRow {
    let up = p.radios.iter().filter(|r| r.up).count() as u32;
    let radio_state = crate::radio::RadioState::of(p.radios.len() as u32, up).map_or("", |s| s.name());
    SiteRow {
        id: p.id.clone(),
        region: p.region.clone(),
        state: p.state.name(),
        age: p.last_report_age_s.map_or("never".to_owned(), |s| format!("{s:.0} s ago")),
        lag: p.lag_s.map_or("–".to_owned(), |s| format!("{s:.0} s")),
        outbox: p.outbox_backlog,
        dropped: p.outbox_dropped_total,
        clock_bad: p.clock_skewed || p.clock_jump,
        offset: match (p.clock_observed_offset_ms, p.clock_offset_ms) {
            (Some(seen), _) => format!("clock jump: reads {seen} ms"),
            (None, Some(o)) => format!("{o} ms"),
            (None, None) => "–".to_owned(),
        },
        radio: radio_state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_draw_gaps_and_thresholds() {
        let s = sparkline(&[Some(1.0), None, Some(20.0), Some(30.0)], 30.0, Some(14.4), "t<1>".into());
        assert_eq!(s.path.matches('M').count(), 2, "a gap lifts the pen: {s:?}");
        assert!(s.threshold_y.is_some());
        assert_eq!(sparkline(&[Some(1.0)], 2.0, None, String::new()).threshold_y, None);
    }

    fn page(title: &str, team: &str) -> String {
        let chart = sparkline(&[Some(1.0), Some(2.0)], 2.0, Some(1.5), title.into());
        StatusPage {
            evaluated_at: "now".into(),
            generated: "now".into(),
            alerts: vec![AlertRow {
                slo: "s".into(),
                journey: "j".into(),
                region: "r".into(),
                severity: "page",
                since: "then".into(),
                team: team.into(),
            }],
            slos: vec![SloSection {
                name: "s".into(),
                service: "svc".into(),
                objective: "99.900".into(),
                period: "30d",
                sli: "availability".into(),
                team: team.into(),
                runbook_url: "https://runbooks.example/s?a=1&b=2".into(),
                thresholds: vec!["page 5m/1h > 14.40".into()],
                scopes: vec![ScopeRow {
                    slo: "s".into(),
                    journey: "j".into(),
                    region: "r".into(),
                    sli: "99.000 %".into(),
                    sli_class: "bad",
                    budget: "50.0 %".into(),
                    budget_class: "",
                    burns: vec![BurnCell { window: "5m", class: "bad", text: "20.00".into() }],
                    alert: "page",
                    charts: [chart.clone(), chart],
                    radio_note: "radio down at r".into(),
                }],
            }],
            windows: WINDOWS,
            journeys: Journeys::None,
            sites: vec![SiteRow {
                id: "kla-1".into(),
                region: "r".into(),
                state: "up",
                age: "1 s ago".into(),
                lag: "1 s".into(),
                outbox: 0,
                dropped: 0,
                clock_bad: false,
                offset: "0 ms".into(),
                radio: "down",
            }],
            load: vec![LoadItem { id: "load-1".into(), state: "idle", age: String::new() }],
            radios: vec![RadioRow {
                region: "r".into(),
                prober: "kla-1".into(),
                modem: "ttyUSB2".into(),
                up: false,
                signal: "-101 dBm".into(),
                bars_n: bars(Some(-101)),
                bars: "▮▮▯▯▯".into(),
                registration: "searching".into(),
                network: "MTN UG · utran".into(),
                sim: "ready".into(),
                error: String::new(),
                age: "3 s ago".into(),
            }],
        }
        .render()
        .unwrap()
    }

    #[test]
    fn every_value_is_escaped() {
        let html = page("t<1>", "<script>alert(1)</script>");
        assert!(html.contains("<title>t&#60;1&#62;</title>") || html.contains("<title>t&lt;1&gt;</title>"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("page 5m/1h &#62; 14.40") || html.contains("page 5m/1h &gt; 14.40"), "{html}");
        assert!(html.contains("a=1&#38;b=2") || html.contains("a=1&amp;b=2"), "{html}");
        assert!(html.contains(r#"<td class="bad" data-field="burn-5m">20.00</td>"#), "{html}");
        assert!(html.contains(r#"<tr data-slo="s" data-journey="j" data-region="r">"#), "{html}");
        assert!(
            html.contains(r#"data-field="alert" data-slo="s" data-journey="j" data-region="r" data-severity="page""#)
        );
        assert!(html.contains("No runs in the last hour."));
        assert!(html.contains(r#"<span data-prober="load-1" data-field="load">"#));
    }

    #[test]
    fn a_down_radio_reads_as_the_site_not_as_an_outage() {
        let html = page("t", "ussd");
        assert!(html.contains(r#"<span class="pill down" data-field="radio">radio down</span>"#), "{html}");
        assert!(html.contains(r#"<span class="radio" data-field="radio-note">radio down at r</span>"#), "{html}");
        assert!(html.contains(r#"data-prober="kla-1" data-modem="ttyUSB2" data-field="radio-row""#), "{html}");
        assert!(
            html.contains(r#"title="2 of 5 bars">▮▮▯▯▯</span> <span data-field="signal">-101 dBm</span>"#),
            "{html}"
        );
        assert!(html.contains("MTN UG · utran"), "{html}");
    }

    #[test]
    fn bars_follow_the_signal_and_notes_only_ussd_journeys() {
        assert_eq!([-60, -80, -90, -100, -108, -113].map(|d| bars(Some(d))), [5, 4, 3, 2, 1, 0]);
        assert_eq!(bars(None), 0);
        let down = RadioDown { sites: vec![("kampala".into(), "down"), ("dar".into(), "degraded")] };
        assert_eq!(down.note(true, "kampala"), "radio down at kampala");
        assert_eq!(down.note(false, "kampala"), "", "an HTTP journey does not dial through the modem");
        assert_eq!(down.note(true, "nairobi"), "");
        assert_eq!(down.note(true, "all"), "radio down at kampala, radio degraded at dar");
    }
}
