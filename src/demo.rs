//! `savanna-pulse demo`: the whole fleet on loopback, a scripted incident, and a live table.
//!
//! The fleet ([`savanna_pulse::fleet`]): per region a sandbox, one aggregator (store in a
//! temporary directory or `--data-dir`), and probers in Nairobi (ea-4g-urban), Kampala (ea-3g) and
//! Dar es Salaam (ea-3g-slow) running the four bundled journeys every 15 s of simulated time.
//!
//! The storyline (simulated time, so `--speed` shortens it): five healthy minutes; then Dar's
//! Daraja fails every STK push (payments and checkouts fail) and its USSD app slows down; ten
//! minutes later both recover. The page alerts fire within a minute or two of the incident and
//! resolve once the failures leave the 30-minute window of the slower page condition, about 47
//! simulated minutes in. Meanwhile, from minute 7 to 11, Kampala's GSM modem (an emulator on a
//! pty) loses its signal: the status page shows the site's radio down, apart from any outage. Every number in the table comes from the aggregator's JSON API (the same
//! as its status page) and, for skipped runs, from each prober's `/metrics`.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{IsTerminal as _, Write as _},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use aggregator::{
    api::{Dim, FiringAlert, QueryParams, ScopeStatus, Severity, SloFilter},
    client::{AggregatorClient, HttpClient, error_chain, metric_sums},
};
use anyhow::{Context as _, bail};
use clap::Args;
use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use sandbox::{Fault, Service};
use savanna_pulse::fleet::{EDGES, Fleet, FleetOptions};
use tokio::time::{Instant, sleep_until};

/// Fastest useful `--speed`: beyond it a journey runs less than once per simulated five minutes
/// (a run takes 2–5 s of real time on the slow links), and the 5-minute burn rates go blank.
pub const MAX_SPEED: f64 = 60.0;

/// Run the whole fleet on loopback with a scripted incident and a live table.
///
/// Starts, in this one process: a sandbox per region (USSD app, Daraja emulation, shop), the
/// aggregator (store, SLO engine, status page, /metrics) and three edge probers (Nairobi on
/// ea-4g-urban, Kampala on ea-3g, Dar es Salaam on ea-3g-slow) running the four bundled journeys
/// every 15 s of simulated time. The storyline injects an STK failure and a USSD slowdown in Dar
/// after 5 simulated minutes and recovers 10 minutes later; watch the budgets burn and the page
/// alerts fire and resolve. Ctrl-C stops everything cleanly.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Simulated seconds per real second: SLO windows, schedules and report intervals run this
    /// much faster; networks, journeys and their timeouts stay real. At 10 the storyline takes
    /// about 5 minutes; above 60 journeys run too rarely for 5-minute burn rates.
    #[arg(long, default_value_t = 10.0, value_parser = parse_speed)]
    speed: f64,
    /// Stop by itself after this much real time (e.g. 90s, 10m); default: run until Ctrl-C.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Keep the aggregator's store, the outboxes and the logs here (default: a temporary
    /// directory removed on exit). A later demo with the same directory continues its history.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// No scripted incident: a healthy fleet (inject faults yourself through the sandbox admin URLs).
    #[arg(long)]
    no_story: bool,
    /// Print plain lines instead of redrawing a table (the default when stdout is not a terminal).
    #[arg(long)]
    plain: bool,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if !(1.0..=MAX_SPEED).contains(&v) {
        return Err(format!("{v} is out of range: use 1 (real time) to {MAX_SPEED}"));
    }
    Ok(v)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = conf::duration::parse(s)?;
    if d.is_zero() {
        return Err("must be above zero".into());
    }
    Ok(d)
}

/// One act of the storyline: from `at` (simulated time since the start) on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Healthy,
    Incident,
    Recovering,
    Resolved,
    Free,
}

impl Act {
    fn describe(self) -> &'static str {
        match self {
            Act::Healthy => "1/4 healthy: every region green, budgets full",
            Act::Incident => "2/4 incident in dar: every STK push fails (Daraja HTTP 500), USSD +1.5 s per screen",
            Act::Recovering => "3/4 recovered: faults cleared; pages resolve once the failures leave the 30m window",
            Act::Resolved => "4/4 resolved: no page firing; the spent budget stays spent",
            Act::Free => "no storyline (--no-story): inject faults through the sandbox admin URLs",
        }
    }
}

/// Simulated time of the storyline's steps.
const INCIDENT_AT: Duration = Duration::from_secs(5 * 60);
const RECOVERY_AT: Duration = Duration::from_secs(15 * 60);
/// The region the incident hits.
const STORY_REGION: &str = "dar";
/// Meanwhile Kampala's modem loses its signal for a while: the site's radio is down, which the
/// aggregator tells apart from an outage of USSD.
const RADIO_LOST_AT: Duration = Duration::from_secs(7 * 60);
const RADIO_BACK_AT: Duration = Duration::from_secs(11 * 60);
const RADIO_REGION: &str = "kampala";

pub async fn run(args: DemoArgs, log_filter: &str) -> anyhow::Result<()> {
    let (data_dir, temporary) = match &args.data_dir {
        Some(d) => (d.clone(), false),
        None => {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let d =
                std::env::temp_dir().join(format!("savanna-pulse-demo-{}-{}", std::process::id(), nanos.as_nanos()));
            (d, true)
        }
    };
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let log_path = data_dir.join("demo.log");
    init_log(&log_path, log_filter)?;
    let result = run_in(&args, &data_dir, &log_path).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    result
}

/// The previous run's simulated end (kept data resumes after it instead of overlapping).
const CLOCK_FILE: &str = "demo-clock";

async fn run_in(args: &DemoArgs, data_dir: &Path, log_path: &Path) -> anyhow::Result<()> {
    let plain = args.plain || !std::io::stdout().is_terminal();
    let mut opts = FleetOptions::new(data_dir);
    opts.speed = args.speed;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let resumed = std::fs::read_to_string(data_dir.join(CLOCK_FILE)).ok().and_then(|s| s.trim().parse::<i64>().ok());
    opts.origin_ms = Some(resumed.map_or(now, |r| now.max(r + 60_000)));
    let origin_ms = opts.origin_ms.unwrap_or(now);

    let fleet = Fleet::start(opts.clone()).await.context("starting the fleet")?;
    let agg = fleet.aggregator_url();
    let mut header = vec![
        format!("Savanna Pulse demo: the whole fleet on loopback, simulated time at {}× real time", args.speed),
        format!("  status page   {agg}/status"),
        format!("  metrics       {agg}/metrics   (JSON API: {agg}/api/v1/slos, /api/v1/alerts)"),
    ];
    for (e, sb) in &fleet.sandboxes {
        header.push(format!("  sandbox {:<8}{}/admin/faults   ({}, {})", e.region, sb.base_url(), e.id, e.profile));
    }
    for (e, m) in &fleet.modems {
        header.push(format!(
            "  modem {:<10}{}   ({}'s GSM modem, emulated; faults: service `modem`)",
            e.region,
            m.port(),
            e.id
        ));
    }
    header.push(format!("  data          {}   log {}", data_dir.display(), log_path.display()));
    header.push(format!(
        "  journeys every {} s simulated, reports every {} s simulated, SLOs evaluated every {:.1} s real",
        opts.journey_interval.as_secs(),
        opts.reporting_interval().as_secs(),
        opts.evaluation_interval().as_secs_f64()
    ));
    for l in &header {
        println!("{l}");
    }
    let _ = std::io::stdout().flush();

    let started = Instant::now();
    let deadline = args.duration.map(|d| started + d);
    let mut screen = Screen { plain, header, events: Vec::new(), last_plain: None };
    let mut story = Story::new(!args.no_story);
    let api = AggregatorClient::new(fleet.aggregator_url());
    let mut firing: BTreeMap<String, FiringAlert> = BTreeMap::new();
    let mut seen_page = false;
    let stop = conf::shutdown::signal();
    tokio::pin!(stop);
    let mut tick = started;
    let why = loop {
        tick += Duration::from_secs(1);
        let wake = deadline.map_or(tick, |d| d.min(tick));
        tokio::select! {
            _ = &mut stop => break "stop signal (SIGINT or SIGTERM)",
            () = sleep_until(wake) => {}
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break "--duration reached";
        }
        let snap = Snapshot::read(&fleet, &api, origin_ms).await;
        if let Some(s) = &snap {
            let now: BTreeMap<String, FiringAlert> = s.firing.iter().map(|a| (a.key(), a.clone())).collect();
            for (k, a) in &now {
                if !firing.contains_key(k) {
                    seen_page |= a.severity == Severity::Page;
                    screen.event(&fleet, format!("ALERT FIRING   {k}"));
                }
            }
            for (k, _) in firing.iter().filter(|(k, _)| !now.contains_key(*k)) {
                screen.event(&fleet, format!("ALERT RESOLVED {k}"));
            }
            firing = now;
        }
        let sim = Duration::from_millis((fleet.now_ms() - origin_ms).max(0) as u64);
        let paging = firing.values().any(|a| a.severity == Severity::Page);
        for line in story.advance(&fleet, sim, seen_page && !paging)? {
            screen.event(&fleet, line);
        }
        screen.draw(&fleet, sim, story.act, snap.as_ref(), started.elapsed());
    };
    screen.event(
        &fleet,
        format!("stopping ({why}): probers flush their outboxes, then the aggregator and the sandboxes stop"),
    );
    let end_ms = fleet.now_ms();
    let stopped = fleet.stop().await;
    let _ = std::fs::write(data_dir.join(CLOCK_FILE), format!("{end_ms}\n"));
    stopped.context("stopping the fleet")?;
    println!("demo stopped cleanly after {:.0} s ({why}).", started.elapsed().as_secs_f64());
    Ok(())
}

/// Where the storyline is.
struct Story {
    enabled: bool,
    act: Act,
    /// Kampala's modem: 0 signal, 1 lost, 2 back.
    radio: u8,
}

impl Story {
    fn new(enabled: bool) -> Story {
        Story { enabled, act: if enabled { Act::Healthy } else { Act::Free }, radio: 0 }
    }

    /// Kampala's radio sub-plot: the modem loses its signal, then finds it again.
    fn radio(&mut self, fleet: &Fleet, sim: Duration, out: &mut Vec<String>) -> anyhow::Result<()> {
        let Some(sb) = fleet.sandbox(RADIO_REGION) else { return Ok(()) };
        if fleet.modem(RADIO_REGION).is_none() {
            return Ok(());
        }
        if self.radio == 0 && sim >= RADIO_LOST_AT {
            sb.faults().set(Service::Modem, Fault { no_signal: true, ..Default::default() })?;
            self.radio = 1;
            out.push(format!(
                "STORY {RADIO_REGION}'s modem loses its signal: the site's radio is down (status page), not an outage of USSD"
            ));
        }
        if self.radio == 1 && sim >= RADIO_BACK_AT {
            sb.faults().clear_service(Service::Modem);
            self.radio = 2;
            out.push(format!("STORY {RADIO_REGION}'s modem has its signal back"));
        }
        Ok(())
    }

    /// Moves to the act simulated time `sim` calls for, injecting or clearing faults; `calm`: a
    /// page fired and none fires now. Returns what happened.
    fn advance(&mut self, fleet: &Fleet, sim: Duration, calm: bool) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        if !self.enabled {
            return Ok(out);
        }
        self.radio(fleet, sim, &mut out)?;
        let Some(sb) = fleet.sandbox(STORY_REGION) else { bail!("no sandbox for region {STORY_REGION}") };
        if self.act == Act::Healthy && sim >= INCIDENT_AT {
            sb.faults().set(Service::Daraja, Fault { error_rate: 1.0, ..Default::default() })?;
            sb.faults().set(Service::Ussd, Fault { latency_ms: 1500, jitter_ms: 200, ..Default::default() })?;
            self.act = Act::Incident;
            out.push(format!("STORY {}", self.act.describe()));
        }
        if self.act == Act::Incident && sim >= RECOVERY_AT {
            sb.faults().clear();
            self.act = Act::Recovering;
            out.push(format!("STORY {}", self.act.describe()));
        }
        if self.act == Act::Recovering && calm {
            self.act = Act::Resolved;
            out.push(format!("STORY {}", self.act.describe()));
        }
        Ok(out)
    }
}

/// What the aggregator (and the probers' /metrics) say now.
struct Snapshot {
    /// (region, journey) → (runs, failed, p95 ms).
    runs: BTreeMap<(String, String), (u64, u64, Option<f64>)>,
    /// (region, journey) → runs skipped by the prober (overlap, concurrency, late).
    skipped: BTreeMap<(String, String), u64>,
    /// Every SLO scope from `/api/v1/slos`.
    scopes: Vec<ScopeStatus>,
    firing: Vec<FiringAlert>,
}

impl Snapshot {
    async fn read(fleet: &Fleet, api: &AggregatorClient, origin_ms: i64) -> Option<Snapshot> {
        let q = QueryParams {
            from_ms: Some(origin_ms),
            to_ms: Some(fleet.now_ms() + 3_600_000),
            group_by: vec![Dim::Journey, Dim::Region],
            ..QueryParams::default()
        };
        let all = SloFilter::default();
        let (runs, slos, alerts) = tokio::join!(api.query(&q), api.slos(&all), api.alerts());
        let (runs, slos, alerts) = match (runs, slos, alerts) {
            (Ok(r), Ok(s), Ok(a)) => (r, s, a),
            (r, s, a) => {
                for e in [r.err(), s.err(), a.err()].into_iter().flatten() {
                    tracing::warn!("the aggregator's API: {}", error_chain(&e));
                }
                return None;
            }
        };
        let mut out = Snapshot {
            runs: BTreeMap::new(),
            skipped: BTreeMap::new(),
            scopes: slos.slos.into_iter().flat_map(|s| s.scopes).collect(),
            firing: alerts.firing,
        };
        for g in &runs.groups {
            out.runs.insert(
                (g.label(Dim::Region).to_owned(), g.label(Dim::Journey).to_owned()),
                (g.count, g.failed(), g.latency_ms.as_ref().map(|l| l.p95)),
            );
        }
        for p in &fleet.probers {
            for (journey, n) in skipped_runs(api.http(), &p.metrics_url).await {
                out.skipped.insert((p.edge.region.to_owned(), journey), n);
            }
        }
        Some(out)
    }
}

/// journey → runs skipped, from a prober's `/metrics` (`prober_runs_skipped_total`); empty when
/// the prober does not answer.
async fn skipped_runs(http: &HttpClient, metrics_url: &str) -> BTreeMap<String, u64> {
    let text = match http.get_text(metrics_url).await {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!("a prober's metrics: {}", error_chain(&e));
            return BTreeMap::new();
        }
    };
    match metric_sums(&text, "prober_runs_skipped_total", "journey") {
        Ok(m) => m.into_iter().map(|(j, n)| (j, n as u64)).collect(),
        Err(e) => {
            tracing::debug!("a prober's metrics: {e}");
            BTreeMap::new()
        }
    }
}

/// The terminal: a table redrawn in place, or plain lines.
struct Screen {
    plain: bool,
    header: Vec<String>,
    events: Vec<String>,
    last_plain: Option<Instant>,
}

impl Screen {
    /// A storyline step or an alert transition: printed at once as a line in plain mode, kept
    /// under the table otherwise.
    fn event(&mut self, fleet: &Fleet, what: String) {
        let line = format!("[{}] {what}", sim_clock(fleet.now_ms()));
        tracing::info!("{line}");
        if self.plain {
            println!("{line}");
            let _ = std::io::stdout().flush();
        } else {
            self.events.push(line);
            if self.events.len() > 8 {
                self.events.remove(0);
            }
        }
    }

    fn draw(&mut self, fleet: &Fleet, sim: Duration, act: Act, snap: Option<&Snapshot>, real: Duration) {
        let status = format!(
            "simulated {} (+{}), real +{:.0} s, speed {}×   {}",
            sim_clock(fleet.now_ms()),
            human(sim),
            real.as_secs_f64(),
            fleet.speed(),
            act.describe()
        );
        if self.plain {
            // A summary line every 10 s of real time; events are printed as they happen.
            if self.last_plain.is_some_and(|t| t.elapsed() < Duration::from_secs(10)) {
                return;
            }
            self.last_plain = Some(Instant::now());
            let Some(s) = snap else {
                println!("{status} | the aggregator is not answering");
                return;
            };
            let runs: u64 = s.runs.values().map(|r| r.0).sum();
            let failed: u64 = s.runs.values().map(|r| r.1).sum();
            let skipped: u64 = s.skipped.values().sum();
            let pages: Vec<String> =
                s.firing.iter().filter(|a| a.severity == Severity::Page).map(FiringAlert::key).collect();
            println!(
                "{status} | runs {runs}, failed {failed}, skipped {skipped} | pages firing: {}",
                if pages.is_empty() { "none".to_owned() } else { pages.join("; ") }
            );
            let _ = std::io::stdout().flush();
            return;
        }
        let mut out = String::from("\x1b[H\x1b[2J");
        for l in &self.header {
            out += l;
            out.push('\n');
        }
        out += &format!("\n{status}\n");
        match snap {
            None => out += "\n(the aggregator is not answering yet)\n",
            Some(s) => {
                out += &format!("\n{}\n", runs_table(s));
                out += &format!("{}\n", slo_table(s));
            }
        }
        for e in &self.events {
            out += e;
            out.push('\n');
        }
        out += "Ctrl-C stops everything cleanly.\n";
        print!("{out}");
        let _ = std::io::stdout().flush();
    }
}

const REGIONS_ALL: [&str; 4] = ["nairobi", "kampala", "dar", "all"];

fn runs_table(s: &Snapshot) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    let mut head = vec![Cell::new("journey (runs since start)")];
    head.extend(EDGES.iter().map(|e| Cell::new(format!("{} ({})", e.region, e.profile))));
    t.set_header(head);
    let journeys: BTreeSet<&str> =
        savanna_pulse::fleet::JOURNEYS.iter().map(|(f, _)| f.trim_end_matches(".yaml")).collect();
    for j in journeys {
        let mut row = vec![Cell::new(j)];
        for e in EDGES {
            if !e.runs(j) {
                row.push(Cell::new("-").set_alignment(CellAlignment::Center));
                continue;
            }
            let key = (e.region.to_owned(), j.to_owned());
            let (runs, failed, p95) = s.runs.get(&key).copied().unwrap_or((0, 0, None));
            let skipped = s.skipped.get(&key).copied().unwrap_or(0);
            let p95 = p95.map_or_else(|| "-".to_owned(), |ms| format!("{:.0} ms", ms));
            row.push(
                Cell::new(format!("{runs} runs, {failed} failed\n{skipped} skipped, p95 {p95}"))
                    .set_alignment(CellAlignment::Right),
            );
        }
        t.add_row(row);
    }
    t
}

fn slo_table(s: &Snapshot) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    let mut head = vec![Cell::new("SLO / journey\n(burn 5m · 1h, budget left)")];
    head.extend(REGIONS_ALL.iter().map(Cell::new));
    t.set_header(head);
    let mut rows: BTreeMap<(&str, &str), BTreeMap<&str, &ScopeStatus>> = BTreeMap::new();
    for sc in &s.scopes {
        rows.entry((&sc.scope.slo, &sc.scope.journey)).or_default().insert(&sc.scope.region, sc);
    }
    for ((slo, journey), by_region) in rows {
        let mut row = vec![Cell::new(format!("{slo}\n{journey}"))];
        for r in REGIONS_ALL {
            row.push(Cell::new(by_region.get(r).map_or_else(|| "-".to_owned(), |sc| scope_cell(sc))));
        }
        t.add_row(row);
    }
    t
}

fn scope_cell(sc: &ScopeStatus) -> String {
    let burn = |w: &str| {
        sc.windows
            .iter()
            .find(|x| x.window == w)
            .and_then(|x| x.burn_rate)
            .map_or_else(|| "-".to_owned(), |b| format!("{b:.1}"))
    };
    let budget = sc.error_budget_remaining.map_or_else(|| "-".to_owned(), |b| format!("{:.0}%", b * 100.0));
    let alerts: Vec<String> = sc.firing.iter().map(|x| x.as_str().to_uppercase()).collect();
    let state = if alerts.is_empty() { "ok".to_owned() } else { alerts.join("+") };
    format!("{} · {}  {budget}\n{state}", burn("5m"), burn("1h"))
}

/// `2026-11-22 09:13:05 UTC` for a simulated time.
fn sim_clock(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| format!("{ms} ms"), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

/// `1h 05m`, `12m 30s`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 { format!("{}h {:02}m", s / 3600, s % 3600 / 60) } else { format!("{}m {:02}s", s / 60, s % 60) }
}

/// The fleet's logs go to a file: the terminal belongs to the table.
fn init_log(path: &Path, filter: &str) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening the log file {}", path.display()))?;
    let file = Arc::new(file);
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("warning: --log `{filter}` is not a valid filter ({e}); using `info`");
        tracing_subscriber::EnvFilter::new("info")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(move || LogFile(file.clone()))
        .try_init();
    Ok(())
}

struct LogFile(Arc<std::fs::File>);

impl std::io::Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_clock_labels() {
        assert_eq!(sim_clock(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(sim_clock(1_795_338_000_000), "2026-11-22 09:00:00 UTC");
        assert_eq!(human(Duration::from_secs(3_900)), "1h 05m");
        assert_eq!(human(Duration::from_secs(750)), "12m 30s");
    }

    #[test]
    fn speed_bounds() {
        assert!(parse_speed("10").is_ok());
        assert!(parse_speed("0.5").is_err());
        assert!(parse_speed("1000").is_err());
        assert!(parse_duration("90s").is_ok());
    }
}
