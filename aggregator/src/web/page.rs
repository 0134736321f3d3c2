//! The status page (`GET /status`): one self-contained HTML document, no external assets, no
//! scripts. Every SLO with its objective, SLI, remaining budget and burn rates per window against
//! the alert thresholds; what is firing; per-region percentiles per journey over the last hour; the
//! edge sites' heartbeat and lag; and small server-rendered SVG charts of burn rate and budget.
//!
//! Numbers carry `data-*` attributes (`data-slo`, `data-journey`, `data-region`, `data-field`) so
//! tests can read them back and compare them with the JSON API.

use std::fmt::Write as _;

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use chrono::{SecondsFormat, TimeZone, Utc};

use super::{AppState, status};
use crate::{
    slo::{Severity, service::Sample},
    store::{Dim, Selection},
};

const WINDOWS: [&str; 6] = ["5m", "30m", "1h", "6h", "1d", "3d"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn when(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms).single().map_or("-".into(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn pct(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".to_owned(), |x| format!("{:.*} %", digits, x * 100.0))
}

/// A sparkline of `values` (None = gap) scaled to [0, max], with a dashed threshold line.
fn sparkline(values: &[Option<f64>], max: f64, threshold: Option<f64>, title: &str) -> String {
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
    let line = threshold
        .map_or(String::new(), |t| format!(r#"<line x1="0" x2="{w}" y1="{y:.1}" y2="{y:.1}" class="thr"/>"#, y = y(t)));
    format!(
        r#"<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{t}"><title>{t}</title><rect width="{w}" height="{h}" class="bg"/>{line}<path d="{path}" class="ln"/></svg>"#,
        t = esc(title)
    )
}

pub async fn page(State(app): State<AppState>) -> Response {
    let eval = app.slo.latest();
    let slos = app.slo.slos();
    let now = app.clock.now_ms();
    let mut h = String::with_capacity(64 * 1024);
    h.push_str(concat!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Savanna Pulse: status</title>",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>",
        "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2b23;background:#fbfaf6}",
        "h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.6em 0 .4em;border-bottom:2px solid #d9a441}",
        "table{border-collapse:collapse;margin:.3em 0}th,td{padding:.25em .6em;text-align:right;border-bottom:1px solid #e6e1d3}",
        "th{background:#f1ecdf}td.l,th.l{text-align:left}.bad{color:#b3261e;font-weight:600}.ok{color:#1e7d32}",
        ".warn{color:#9a6700;font-weight:600}.muted{color:#6b6b6b}svg .bg{fill:#f4f1e8}svg .ln{fill:none;stroke:#2b6cb0;stroke-width:1.5}",
        "svg .thr{stroke:#b3261e;stroke-dasharray:3 2}.pill{padding:.1em .5em;border-radius:.8em;color:#fff}",
        ".page{background:#b3261e}.ticket{background:#9a6700}.up{background:#1e7d32}.late{background:#9a6700}.down{background:#b3261e}.never{background:#6b6b6b}.idle{background:#6b6b6b}",
        "</style></head><body>"
    ));
    let _ = write!(
        h,
        "<h1>Savanna Pulse: status</h1><p class=\"muted\">Evaluated at <span data-field=\"evaluated_at\">{}</span> · page generated {}</p>",
        when(eval.at_ms),
        when(now)
    );

    // Firing alerts.
    h.push_str("<h2>Alerts firing</h2>");
    if eval.firing.is_empty() {
        h.push_str("<p class=\"ok\" data-field=\"alerts-none\">Nothing is firing.</p>");
    } else {
        h.push_str("<table><tr><th class=l>severity</th><th class=l>SLO</th><th class=l>journey</th><th class=l>region</th><th class=l>since</th><th class=l>team</th></tr>");
        for f in &eval.firing {
            let team = slos.iter().find(|s| s.name == f.scope.slo).map_or("", |s| s.alerting.team.as_str());
            let _ = write!(
                h,
                "<tr data-field=\"alert\" data-slo=\"{slo}\" data-journey=\"{j}\" data-region=\"{r}\" data-severity=\"{sev}\"><td class=l><span class=\"pill {sev}\">{sev}</span></td><td class=l>{slo}</td><td class=l>{j}</td><td class=l>{r}</td><td class=l>{since}</td><td class=l>{team}</td></tr>",
                slo = esc(&f.scope.slo),
                j = esc(&f.scope.journey),
                r = esc(&f.scope.region),
                sev = f.severity.as_str(),
                since = when(f.since_ms),
                team = esc(team)
            );
        }
        h.push_str("</table>");
    }

    // SLOs.
    h.push_str("<h2>Service level objectives</h2>");
    for slo in &slos {
        let windows = slo.period.alert_windows();
        let page_f = windows.iter().find(|w| w.severity == Severity::Page).map(|w| w.factor);
        let _ = write!(
            h,
            "<h3 id=\"slo-{n}\">{n} <span class=muted>· {svc} · objective {obj:.3} % over {p} · {sli} · team {team} · <a href=\"{rb}\">runbook</a></span></h3>",
            n = esc(&slo.name),
            svc = esc(&slo.service),
            obj = slo.objective * 100.0,
            p = slo.period.label(),
            sli = esc(&crate::slo::service::describe_sli(slo)),
            team = esc(&slo.alerting.team),
            rb = esc(&slo.alerting.runbook_url)
        );
        let thresholds: Vec<String> = windows
            .iter()
            .map(|w| format!("{} {}/{} &gt; {:.2}", w.severity.as_str(), w.short, w.long, w.factor))
            .collect();
        let _ = write!(h, "<p class=muted>Burn-rate alerts: {}.</p>", thresholds.join(" · "));
        h.push_str(
            "<table><tr><th class=l>journey</th><th class=l>region</th><th>SLI (period)</th><th>budget left</th>",
        );
        for w in WINDOWS {
            let _ = write!(h, "<th>burn {w}</th>");
        }
        h.push_str("<th class=l>alert</th><th class=l>burn 1h, 24 h</th><th class=l>budget, 24 h</th></tr>");
        let scopes: Vec<_> = eval.statuses.iter().filter(|s| s.scope.slo == slo.name).collect();
        if scopes.is_empty() {
            h.push_str("<tr><td class=l colspan=12 class=muted>no runs yet</td></tr>");
        }
        for st in scopes {
            let key = format!(
                "data-slo=\"{}\" data-journey=\"{}\" data-region=\"{}\"",
                esc(&st.scope.slo),
                esc(&st.scope.journey),
                esc(&st.scope.region)
            );
            let sli = st.period.error_ratio.map(|e| 1.0 - e);
            let sli_class = if sli.is_some_and(|v| v < slo.objective) { "bad" } else { "ok" };
            let budget = st.error_budget_remaining;
            let budget_class = match budget {
                Some(b) if b <= 0.0 => "bad",
                Some(b) if b < 0.25 => "warn",
                _ => "",
            };
            let _ = write!(
                h,
                "<tr {key}><td class=l>{}</td><td class=l>{}</td><td class=\"{sli_class}\" data-field=\"sli\">{}</td><td class=\"{budget_class}\" data-field=\"budget\">{}</td>",
                esc(&st.scope.journey),
                esc(&st.scope.region),
                pct(sli, 3),
                pct(budget, 1)
            );
            for w in WINDOWS {
                let b = st.windows.iter().find(|x| x.window == w).and_then(|x| x.burn_rate);
                let hot = windows
                    .iter()
                    .any(|a| (a.short.to_string() == w || a.long.to_string() == w) && b.is_some_and(|v| v > a.factor));
                let _ = write!(
                    h,
                    "<td class=\"{}\" data-field=\"burn-{w}\">{}</td>",
                    if hot { "bad" } else { "" },
                    b.map_or("–".to_owned(), |v| format!("{v:.2}"))
                );
            }
            let alert = if st.firing.contains(&Severity::Page) {
                "<span class=\"pill page\">page</span>"
            } else if st.firing.contains(&Severity::Ticket) {
                "<span class=\"pill ticket\">ticket</span>"
            } else {
                "<span class=ok>ok</span>"
            };
            let history: Vec<Sample> = app.slo.history(&st.scope);
            let burns: Vec<Option<f64>> = history.iter().map(|s| s.burn_rate_1h).collect();
            let budgets: Vec<Option<f64>> =
                history.iter().map(|s| s.error_budget_remaining.map(|b| b.max(0.0))).collect();
            let max_burn = burns.iter().flatten().copied().fold(page_f.unwrap_or(14.4) * 1.5, f64::max);
            let _ = write!(
                h,
                "<td class=l data-field=\"alert\">{alert}</td><td class=l>{}</td><td class=l>{}</td></tr>",
                sparkline(
                    &burns,
                    max_burn,
                    page_f,
                    &format!("{}: 1 h burn rate over the last day (dashed: page threshold)", st.scope.region)
                ),
                sparkline(
                    &budgets,
                    1.0,
                    None,
                    &format!("{}: error budget remaining over the last day", st.scope.region)
                )
            );
        }
        h.push_str("</table>");
    }

    // Percentiles per journey and region, last hour.
    h.push_str("<h2>Journeys, last hour</h2>");
    let store = app.store.clone();
    let groups = tokio::task::spawn_blocking(move || {
        store.groups(&Selection::journey_level(), now - 3_600_000, now + 1, &[Dim::Journey, Dim::Region])
    })
    .await;
    match groups {
        Ok(Ok(groups)) if !groups.is_empty() => {
            h.push_str("<table><tr><th class=l>journey</th><th class=l>region</th><th>runs</th><th>failed</th><th>p50</th><th>p95</th><th>p99</th></tr>");
            for g in groups {
                let label = |d: Dim| g.key.iter().find(|(k, _)| *k == d).map_or("", |(_, v)| v.as_str()).to_owned();
                let failed: u64 =
                    g.counts.by_outcome.iter().filter(|(o, _)| !report::is_good(o)).map(|(_, n)| *n).sum();
                let q = |p: f64| {
                    if g.histogram.is_empty() {
                        "–".to_owned()
                    } else {
                        format!("{:.0} ms", g.histogram.value_at_quantile(p) as f64 / 1000.0)
                    }
                };
                let _ = write!(
                    h,
                    "<tr data-journey=\"{j}\" data-region=\"{r}\"><td class=l>{j}</td><td class=l>{r}</td><td data-field=\"runs\">{}</td><td class=\"{}\">{failed}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    g.counts.total,
                    if failed > 0 { "bad" } else { "" },
                    q(0.5),
                    q(0.95),
                    q(0.99),
                    j = esc(&label(Dim::Journey)),
                    r = esc(&label(Dim::Region)),
                );
            }
            h.push_str("</table>");
        }
        Ok(Ok(_)) => h.push_str("<p class=muted>No runs in the last hour.</p>"),
        _ => h.push_str("<p class=bad>The store could not be read.</p>"),
    }

    // Edge sites.
    h.push_str("<h2>Edge sites</h2><table><tr><th class=l>prober</th><th class=l>region</th><th class=l>state</th><th>last report</th><th>lag</th><th>outbox</th><th>dropped</th><th>clock offset</th></tr>");
    let (sites, load): (Vec<_>, Vec<_>) =
        status::statuses(&app).into_iter().partition(|p| p.kind == crate::config::ProberKind::Edge);
    for p in sites {
        let state = p.state.name();
        let _ = write!(
            h,
            "<tr data-prober=\"{id}\" data-field=\"edge\"><td class=l>{id}</td><td class=l>{r}</td><td class=l><span class=\"pill {state}\" data-field=\"state\">{state}</span></td><td>{age}</td><td>{lag}</td><td>{}</td><td>{}</td><td class=\"{}\">{off}</td></tr>",
            p.outbox_backlog,
            p.outbox_dropped_total,
            if p.clock_skewed || p.clock_jump { "bad" } else { "" },
            id = esc(&p.id),
            r = esc(&p.region),
            age = p.last_report_age_s.map_or("never".to_owned(), |s| format!("{s:.0} s ago")),
            lag = p.lag_s.map_or("–".to_owned(), |s| format!("{s:.0} s")),
            off = match (p.clock_observed_offset_ms, p.clock_offset_ms) {
                (Some(seen), _) => format!("clock jump: reads {seen} ms"),
                (None, Some(o)) => format!("{o} ms"),
                (None, None) => "–".to_owned(),
            },
        );
    }
    h.push_str("</table>");
    if !load.is_empty() {
        h.push_str("<p class=muted>Load-run identities (<code>prober load --report-to</code>; their runs are at <code>/api/v1/runs/{id}</code>, not in the SLOs): ");
        for (i, p) in load.iter().enumerate() {
            let _ = write!(
                h,
                "{sep}<span data-prober=\"{id}\" data-field=\"load\">{id} <span class=\"pill {state}\">{state}</span>{age}</span>",
                sep = if i == 0 { "" } else { " · " },
                id = esc(&p.id),
                state = p.state.name(),
                age = p.last_report_age_s.map_or(String::new(), |s| format!(", last report {s:.0} s ago")),
            );
        }
        h.push_str("</p>");
    }
    h.push_str("<p class=muted>JSON: <a href=\"/api/v1/slos\">/api/v1/slos</a> · <a href=\"/api/v1/alerts\">/api/v1/alerts</a> · <a href=\"/api/v1/probers\">/api/v1/probers</a> · <a href=\"/metrics\">/metrics</a></p></body></html>");
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], h).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_draw_gaps_and_thresholds() {
        let svg = sparkline(&[Some(1.0), None, Some(20.0), Some(30.0)], 30.0, Some(14.4), "t<1>");
        assert!(svg.contains("<title>t&lt;1&gt;</title>"));
        assert_eq!(svg.matches('M').count(), 2, "a gap lifts the pen: {svg}");
        assert!(svg.contains("class=\"thr\""));
        assert!(esc("<a href=\"x\">&") == "&lt;a href=&quot;x&quot;&gt;&amp;");
    }
}
