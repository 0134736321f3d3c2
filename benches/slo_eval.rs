//! SLO evaluation at 10,000 series: how long the aggregator's SLO engine takes to evaluate every
//! scope over every window (5m, 30m, 1h, 2h, 6h, 1d, 3d and the 30d period), and the memory the
//! windows take. See benches/README.md (`slo_eval`) and benches/slo-eval.sh.
//!
//! A "series" here is one SLO scope, the unit the engine evaluates and exports: (SLO, journey,
//! region), the all-regions scope included. Two SLOs (availability 99.9 %, latency 95 % under
//! 2 s) over `journeys` journeys in `regions` regions give 2 × journeys × (regions + 1) scopes:
//! 10,000 with the defaults (1000 journeys, 4 regions).
//!
//! Data: 30 simulated days through `Engine::record`, the call ingest makes: one batch of runs per
//! (journey, region) every `--step-min` minutes for the last 3 days (the per-minute windows) and
//! every 12 h before (the period's hourly part). Evaluation cost does not depend on how densely
//! the rings are filled (every window scans its slots either way); the fill only makes the
//! numbers real. Then `Engine::evaluate` at the same instant, `--reps` times; the first call is
//! reported apart (cold caches, allocating the statuses). Memory: `Engine::bytes()` (the ledgers'
//! own accounting) and the process RSS before and after (VmRSS from /proc/self/status).
//! Also timed: building and encoding the OTLP push for that evaluation (aggregator::otlp).
//!
//! Output: markdown on stdout. `--emit-openmetrics FILE --hours H` instead writes the same
//! traffic's counters as OpenMetrics text (for `promtool tsdb create-blocks-from openmetrics`),
//! and `--emit-slos FILE` / `--emit-rules FILE` the SLO file and its Sloth-compatible rules (what
//! `aggregator rules --slos FILE` prints), so Prometheus can evaluate the same SLOs.

use std::{fmt::Write as _, io::Write as _, time::Duration};

use aggregator::{
    otlp::encode::{MAX_POINTS_PER_REQUEST, Times, encoded},
    slo::{
        engine::{Engine, SeriesEvent},
        export::SloMetrics,
        service::Evaluation,
        spec,
    },
};
use tokio::time::Instant;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Two SLOs over every journey (an empty selection: the engine and the generated rules then match
/// no journey list).
fn slo_yaml() -> String {
    "slos:
  - name: bench-availability
    service: bench
    description: availability over every bench journey
    objective: 99.9
    period: 30d
    sli: {availability: {}}
    selection: {}
    alerting: {team: platform, runbook_url: https://runbooks.example/bench-availability}
  - name: bench-latency
    service: bench
    description: 95 % of runs under 2 s
    objective: 95
    period: 30d
    sli:
      latency: {threshold: 2s}
    selection: {}
    alerting: {team: platform, runbook_url: https://runbooks.example/bench-latency}
"
    .to_owned()
}

fn journey(j: usize) -> String {
    format!("bench-j{j:04}")
}

fn region(r: usize) -> String {
    format!("region-{r}")
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

struct Args {
    journeys: usize,
    regions: usize,
    reps: usize,
    step_min: i64,
    emit_openmetrics: Option<String>,
    emit_slos: Option<String>,
    emit_rules: Option<String>,
    hours: i64,
}

fn args() -> Args {
    let mut a = Args {
        journeys: 1000,
        regions: 4,
        reps: 7,
        step_min: 30,
        emit_openmetrics: None,
        emit_slos: None,
        emit_rules: None,
        hours: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--journeys" => a.journeys = val().parse().expect("--journeys N"),
            "--regions" => a.regions = val().parse().expect("--regions N"),
            "--reps" => a.reps = val().parse().expect("--reps N"),
            "--step-min" => a.step_min = val().parse().expect("--step-min N"),
            "--emit-openmetrics" => a.emit_openmetrics = Some(val()),
            "--emit-slos" => a.emit_slos = Some(val()),
            "--emit-rules" => a.emit_rules = Some(val()),
            "--hours" => a.hours = val().parse().expect("--hours N"),
            // cargo bench passes --bench
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(a.journeys > 0 && a.regions > 0 && a.reps > 0 && a.step_min > 0 && a.hours > 0);
    a
}

/// Runs per batch of a (journey, region) and whether this batch has a failure: a steady 4 runs,
/// one failed batch in 50; latency: journeys alternate fast (0.4 s) and slow-tailed (2.5 s).
fn batch(j: usize, r: usize, step: i64) -> (u64, u64) {
    let failed = u64::from((j as i64 + r as i64 * 7 + step).rem_euclid(50) == 0);
    (4, failed)
}

/// The `--emit-*` modes: write the bench's SLOs, their rules or an OpenMetrics file, and stop.
fn emit(a: &Args, slos: &[aggregator::slo::spec::Slo]) -> bool {
    if let Some(path) = &a.emit_slos {
        std::fs::write(path, slo_yaml()).unwrap();
    }
    if let Some(path) = &a.emit_rules {
        // What `aggregator rules --slos FILE` prints for these SLOs.
        std::fs::write(path, aggregator::slo::rules::rules_yaml(slos)).unwrap();
    }
    if a.emit_slos.is_some() || a.emit_rules.is_some() {
        return true;
    }
    if let Some(path) = &a.emit_openmetrics {
        // Ending at the last whole minute: later samples would put Prometheus' head (where rule
        // results are written) ahead of its evaluations, and discard every rule result.
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        emit_openmetrics(a, path, wall - wall % MINUTE_MS);
        return true;
    }
    false
}

/// Records every batch at every time into the engine; the events recorded. `[fast, slow, empty]`
/// are the histograms of even journeys, odd journeys and failures.
fn fill(
    engine: &mut Engine,
    times: &[i64],
    names: &[String],
    regions: &[String],
    [fast, slow, empty]: [&report::SparseHistogram; 3],
) -> u64 {
    let mut events = 0u64;
    for (step, &at_ms) in times.iter().enumerate() {
        for (j, name) in names.iter().enumerate() {
            for (r, region) in regions.iter().enumerate() {
                let (runs, failed) = batch(j, r, step as i64);
                let h = if j % 2 == 0 { fast } else { slow };
                let ok = SeriesEvent {
                    journey: name,
                    step: "",
                    outcome: "ok",
                    region,
                    rail: "",
                    count: runs - failed,
                    histogram: h,
                    at_ms,
                };
                engine.record(&ok);
                events += 1;
                if failed > 0 {
                    let bad = SeriesEvent { outcome: "gateway_error", count: failed, histogram: empty, ..ok };
                    engine.record(&bad);
                    events += 1;
                }
            }
        }
    }
    events
}

fn main() {
    let a = args();
    let slos = spec::parse(&slo_yaml(), "bench.yaml").expect("bench SLOs are valid");
    if emit(&a, &slos) {
        return;
    }
    // A fixed instant on an hour boundary, so runs are repeatable.
    let now = 1_795_000_000_000 - 1_795_000_000_000 % HOUR_MS;
    let scopes = slos.len() * a.journeys * (a.regions + 1);
    let mut fast = report::SparseHistogram::new();
    fast.record_n(400_000, 1);
    let mut slow = report::SparseHistogram::new();
    slow.record_n(2_500_000, 1);
    let empty = report::SparseHistogram::new();
    let names: Vec<String> = (0..a.journeys).map(journey).collect();
    let regions: Vec<String> = (0..a.regions).map(region).collect();

    let rss_before = rss_kib();
    let mut engine = Engine::new(slos.clone());
    let mut times: Vec<i64> = (3..30).rev().flat_map(|d| [now - d * DAY_MS, now - d * DAY_MS + 12 * HOUR_MS]).collect();
    times.extend((0..(3 * DAY_MS / (a.step_min * MINUTE_MS))).rev().map(|k| now - k * a.step_min * MINUTE_MS));
    let fill_start = Instant::now();
    let events = fill(&mut engine, &times, &names, &regions, [&fast, &slow, &empty]);
    let fill = fill_start.elapsed();
    let rss_filled = rss_kib();
    let ledger_bytes = engine.bytes();

    // Evaluate: the first call apart, then `reps` more.
    let t = Instant::now();
    let (statuses, _) = engine.evaluate(now);
    let cold = t.elapsed();
    assert_eq!(statuses.len(), scopes, "every scope evaluated");
    let windows_per_scope = statuses[0].windows.len() + 1;
    drop(statuses);
    let mut warm: Vec<Duration> = Vec::with_capacity(a.reps);
    let mut last = Vec::new();
    for _ in 0..a.reps {
        let t = Instant::now();
        let (s, _) = engine.evaluate(now);
        warm.push(t.elapsed());
        last = s;
    }
    warm.sort();
    let rss_statuses = rss_kib();
    // Sanity: the all-regions availability scope of a journey saw 30 days of runs.
    let sample = last.iter().find(|s| s.scope.region == "all" && s.scope.slo == "bench-availability").unwrap();
    assert!(sample.period.events > 0 && sample.windows.iter().all(|w| w.events > 0), "{sample:?}");

    // The OTLP push of this evaluation: journey counters for every (journey, region, outcome).
    let metrics = SloMetrics::new(&slos);
    for name in &names {
        for region in &regions {
            let key = report::SeriesKey {
                journey: name.clone(),
                step: String::new(),
                outcome: "ok".into(),
                region: region.clone(),
                profile: "ea-3g".into(),
                rail: String::new(),
                reason: String::new(),
            };
            metrics.record(&key, 4, &fast);
        }
    }
    let eval = Evaluation { at_ms: now, statuses: last, firing: vec![] };
    let snapshot = metrics.journey_snapshot();
    let mut otlp: Vec<(Duration, usize, usize)> = Vec::new();
    for _ in 0..a.reps.min(5) {
        let t = Instant::now();
        let bodies = encoded(&snapshot, &eval, Times { start_ms: now - DAY_MS, now_ms: now }, MAX_POINTS_PER_REQUEST);
        otlp.push((t.elapsed(), bodies.iter().map(Vec::len).sum(), bodies.len()));
    }
    otlp.sort();

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let med = |v: &[Duration]| v[v.len() / 2];
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| scopes | windows each | eval p50 ms | eval min–max ms | first eval ms | ns / scope·window | ledger MiB | bytes / scope (ledgers) | RSS Δ fill MiB | RSS Δ with statuses MiB | OTLP encode p50 ms | OTLP KiB (requests) | fill: events, s | load avg 1/5/15 |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
    let _ = writeln!(
        out,
        "| {scopes} | {windows_per_scope} | {:.1} | {:.1}–{:.1} | {:.1} | {:.0} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {:.0} ({}) | {events}, {:.1} | {} |",
        ms(med(&warm)),
        ms(warm[0]),
        ms(warm[warm.len() - 1]),
        ms(cold),
        med(&warm).as_nanos() as f64 / (scopes * windows_per_scope) as f64,
        ledger_bytes as f64 / (1 << 20) as f64,
        ledger_bytes / scopes,
        (rss_filled.saturating_sub(rss_before)) as f64 / 1024.0,
        (rss_statuses.saturating_sub(rss_before)) as f64 / 1024.0,
        ms(otlp[otlp.len() / 2].0),
        otlp[0].1 as f64 / 1024.0,
        otlp[0].2,
        fill.as_secs_f64(),
        load.join(" "),
    );
    print!("{out}");
    let _ = std::io::stdout().flush();
}

/// The same traffic as cumulative `synthetic_journey_runs_total` and duration-bucket counters,
/// one sample a minute for the last `hours` hours, as OpenMetrics text for promtool's backfill.
fn emit_openmetrics(a: &Args, path: &str, now: i64) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = std::io::BufWriter::new(file);
    writeln!(w, "# TYPE synthetic_journey_runs counter").unwrap();
    let minutes = a.hours * 60;
    let start = now - minutes * MINUTE_MS;
    // Per series, the cumulative (ok, failed) runs at each minute: one batch per (journey, region)
    // each step_min minutes, as in the engine's fill.
    let cumulative = |j: usize, r: usize| -> Vec<(u64, u64)> {
        let (mut ok, mut bad) = (0, 0);
        (0..=minutes)
            .map(|m| {
                if m % a.step_min == 0 {
                    let (runs, failed) = batch(j, r, m / a.step_min);
                    ok += runs - failed;
                    bad += failed;
                }
                (ok, bad)
            })
            .collect()
    };
    // OpenMetrics wants each family's samples together.
    for j in 0..a.journeys {
        for r in 0..a.regions {
            let c = cumulative(j, r);
            for outcome in ["ok", "gateway_error"] {
                for (k, (ok, bad)) in c.iter().enumerate() {
                    let v = if outcome == "ok" { ok } else { bad };
                    writeln!(
                        w,
                        "synthetic_journey_runs_total{{journey=\"{}\",step=\"\",region=\"{}\",outcome=\"{outcome}\"}} {v} {}",
                        journey(j),
                        region(r),
                        (start + k as i64 * MINUTE_MS) / 1000
                    )
                    .unwrap();
                }
            }
        }
    }
    writeln!(w, "# TYPE synthetic_journey_duration_seconds histogram").unwrap();
    for j in 0..a.journeys {
        for r in 0..a.regions {
            let c = cumulative(j, r);
            let l = format!("journey=\"{}\",step=\"\",region=\"{}\"", journey(j), region(r));
            // One histogram point per timestamp: its buckets and count together.
            for (k, (ok, _)) in c.iter().enumerate() {
                let ts = (start + k as i64 * MINUTE_MS) / 1000;
                let under_2s = if j % 2 == 0 { *ok } else { 0 };
                writeln!(w, "synthetic_journey_duration_seconds_bucket{{{l},le=\"2.0\"}} {under_2s} {ts}").unwrap();
                writeln!(w, "synthetic_journey_duration_seconds_bucket{{{l},le=\"+Inf\"}} {ok} {ts}").unwrap();
                writeln!(w, "synthetic_journey_duration_seconds_count{{{l}}} {ok} {ts}").unwrap();
            }
        }
    }
    writeln!(w, "# EOF").unwrap();
    w.flush().unwrap();
}
