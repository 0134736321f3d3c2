//! Fleet ingest benchmark (issue 16): 10,000 configured probers, each sending one report every
//! 15 s, to one real `aggregator serve` or to an HA pair of them; see benches/README.md.
//!
//! The bench writes the aggregators' configs (one binding and token per prober, TLS with a
//! self-signed certificate), starts the release binaries, opens an HTTP/2 connection per prober
//! and per aggregator (as the edge agent keeps one open between sends), and then runs the fleet
//! in real time: prober `p` sends report `k` (seq `k + 1`) at `t0 + p·15 s/N + k·15 s`, so the
//! fleet's reports are spread evenly over each interval. In HA mode each prober sends each report
//! to every aggregator independently (a task per prober and destination, as the edge's outbox
//! keeps one acknowledgement per destination). Ack latency is measured from the planned send
//! time, so a report queued behind a slow one counts its wait (no coordinated omission).
//!
//! Measured per aggregator: reports stored / duplicate / refused / unacknowledged, ack latency
//! (HdrHistogram p50/p99/p99.9/max), VmRSS and VmHWM sampled each interval, CPU seconds
//! (utime + stime), the store's size on disk, one `/metrics` scrape per interval (as Prometheus
//! would), and at the end the journey-level run counts through `/api/v1/query` against what was
//! sent. Bounded: `--intervals` intervals plus a drain of at most three more.
//!
//! Run with no arguments (as `cargo test --all-targets` does) it prints a hint and exits 0.

#[path = "common/mod.rs"]
mod common;

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use parking_lot::Mutex;
use tokio::time::Instant;

use self::common::{Rng, cpu_secs, wall_ms};

/// A payment step: (step, rail, the provider's code of a success).
type Payment = (&'static str, &'static str, &'static str);
/// (journey, its steps, its payment step).
type Journey = (&'static str, &'static [&'static str], Option<Payment>);

/// The journeys of one simulated prober: the eight bundled in `scenarios/`, with their steps, and
/// the rail and provider code of their payment step.
const JOURNEYS: [Journey; 8] = [
    (
        "checkout-mpesa",
        &["browse", "think", "create-cart", "add-to-cart", "checkout", "wait-until-paid"],
        Some(("checkout", "mpesa-ke", "0")),
    ),
    ("checkout-momo", &["browse", "create-cart", "add-to-cart", "pay"], Some(("pay", "momo", "SUCCESSFUL"))),
    ("checkout-mpesa-tz", &["browse", "create-cart", "add-to-cart", "pay"], Some(("pay", "mpesa-tz", "INS-0"))),
    ("mpesa-stk-push", &["stk-push"], Some(("stk-push", "mpesa-ke", "0"))),
    ("airtel-collect", &["collect"], Some(("collect", "airtel", "TS"))),
    ("ussd-balance", &["balance"], None),
    ("ussd-send-money", &["send-money"], None),
    ("ussd-balance-modem", &["balance"], None),
];
const PROFILES: [&str; 3] = ["ea-4g-urban", "ea-3g", "ea-3g-slow"];
/// Histogram variants pre-encoded per series shape; a report picks one per series.
const VARIANTS: usize = 8;
/// One journey run in this many fails (deterministically chosen per prober, report and journey).
const FAIL_ONE_IN: u64 = 6;

#[derive(Parser, Clone)]
#[command(about = "Ingest at fleet scale: N probers reporting every interval to one aggregator or an HA pair")]
struct Args {
    /// The aggregator binary (built with `cargo build --release -p aggregator`).
    #[arg(long, default_value = "target/release/aggregator")]
    aggregator: PathBuf,
    /// 1: one aggregator; 2: an HA pair, every report sent to both.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    replicas: u8,
    #[arg(long, default_value_t = 10_000)]
    probers: usize,
    /// Regions (sites); a series is per region, so this sets the store's cardinality.
    #[arg(long, default_value_t = 100)]
    regions: usize,
    /// The reporting interval, seconds.
    #[arg(long, default_value_t = 15)]
    interval_s: u64,
    /// Intervals to run (each prober sends this many reports to each aggregator).
    #[arg(long, default_value_t = 8)]
    intervals: u64,
    /// Runs per journey per interval (every series of a journey counts this many, split between
    /// `ok` and `timeout` when a run fails).
    #[arg(long, default_value_t = 3)]
    runs: u64,
    /// HTTP/2 connections per aggregator, shared round-robin by the probers; default one per
    /// prober (each connection carries one prober's reports, one at a time).
    #[arg(long)]
    conns: Option<usize>,
    /// The first aggregator's port on 127.0.0.1; the second listens on the next one.
    #[arg(long, default_value_t = 18_200)]
    port: u16,
    /// Working directory (configs, tokens, stores, logs); removed at the end unless --keep.
    #[arg(long, default_value = "target/fleet-bench")]
    dir: PathBuf,
    #[arg(long)]
    keep: bool,
    /// 1,000 probers for 3 intervals: a quick check of the setup.
    #[arg(long)]
    quick: bool,
    /// Do not scrape `/metrics` each interval (by default the bench scrapes it as Prometheus would).
    #[arg(long)]
    no_scrape: bool,
    /// A report without an answer after this long counts as unacknowledged.
    #[arg(long, default_value_t = 30)]
    request_timeout_s: u64,
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().collect();
    args.retain(|a| a != "--bench");
    if args.len() == 1 && std::env::var_os("FLEET_INGEST").is_none() {
        println!("fleet_ingest: nothing to do without arguments; run benches/fleet-ingest.sh");
        return ExitCode::SUCCESS;
    }
    let mut a = Args::parse_from(args);
    if a.quick {
        a.probers = a.probers.min(1_000);
        a.intervals = a.intervals.min(3);
    }
    let result = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt.block_on(run(a)),
        Err(e) => Err(format!("cannot start the runtime: {e}")),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("fleet_ingest: a target was missed (see the table)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("fleet_ingest: {e}");
            ExitCode::FAILURE
        }
    }
}

fn prober_id(p: usize) -> String {
    format!("fp{p:05}")
}

fn region(r: usize) -> String {
    format!("site-{r:03}")
}

fn token(p: usize) -> String {
    format!("fleet-token-{p:05}-{:016x}", Rng(p as u64).next())
}

// === setup ===

/// Writes the token files, the certificate and one config per aggregator; returns the configs.
fn write_configs(a: &Args, dir: &Path) -> Result<Vec<PathBuf>, String> {
    let io = |e: std::io::Error| format!("{}: {e}", dir.display());
    std::fs::create_dir_all(dir.join("tokens")).map_err(io)?;
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("agg.crt"), ck.cert.pem()).map_err(io)?;
    std::fs::write(dir.join("agg.key"), ck.signing_key.serialize_pem()).map_err(io)?;
    let mut probers = String::from("probers:\n");
    for p in 0..a.probers {
        std::fs::write(dir.join("tokens").join(prober_id(p)), token(p)).map_err(io)?;
        let _ = writeln!(
            probers,
            "  - id: {}\n    region: {}\n    token: file:tokens/{}",
            prober_id(p),
            region(p % a.regions),
            prober_id(p)
        );
    }
    let conns = conns_per_aggregator(a) + 64;
    (0..a.replicas)
        .map(|i| {
            let path = dir.join(format!("aggregator-{i}.yaml"));
            let y = format!(
                "listen: 127.0.0.1:{}\ndata_dir: data-{i}\ntls:\n  cert_file: agg.crt\n  key_file: agg.key\n\
                 # One load generator on loopback stands for every prober: one peer to the per-peer cap.\n\
                 connections:\n  max_connections: {conns}\n  max_connections_per_peer: {conns}\n{probers}",
                a.port + u16::from(i),
            );
            std::fs::write(&path, y).map_err(io)?;
            Ok(path)
        })
        .collect()
}

/// `--conns`, or one per prober when the open-file limit allows it, else probers share evenly.
fn conns_per_aggregator(a: &Args) -> usize {
    if let Some(c) = a.conns {
        return c.clamp(1, a.probers);
    }
    let budget = open_files_limit().unwrap_or(1024).saturating_sub(512).max(1);
    let share = (a.probers * usize::from(a.replicas)).div_ceil(budget).max(1);
    a.probers.div_ceil(share)
}

/// The soft limit on open files of this process (from /proc/self/limits).
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// One started aggregator.
struct Aggregator {
    name: String,
    addr: String,
    child: tokio::process::Child,
    pid: String,
    data_dir: PathBuf,
}

async fn start(a: &Args, dir: &Path, configs: &[PathBuf]) -> Result<Vec<Aggregator>, String> {
    let mut out = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let log = std::fs::File::create(dir.join(format!("aggregator-{i}.log"))).map_err(|e| e.to_string())?;
        let child = tokio::process::Command::new(&a.aggregator)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{}: {e} (build it: cargo build --release -p aggregator)", a.aggregator.display()))?;
        let pid = child.id().map(|p| p.to_string()).unwrap_or_default();
        out.push(Aggregator {
            name: format!("aggregator-{i}"),
            addr: format!("127.0.0.1:{}", a.port + i as u16),
            child,
            pid,
            data_dir: dir.join(format!("data-{i}")),
        });
    }
    Ok(out)
}

/// GET `path` on `s`; the status and the body.
async fn get(s: &mut SendRequest<Full<Bytes>>, path: &str) -> Result<(u16, Bytes), String> {
    let req = http::Request::get(format!("https://localhost{path}")).body(Full::new(Bytes::new())).expect("a request");
    s.ready().await.map_err(|e| e.to_string())?;
    let resp = s.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, body))
}

/// Waits (bounded) until the aggregator answers `/readyz` 200; returns a connection for reads.
async fn ready(agg: &Aggregator, tls: &Arc<rustls::ClientConfig>) -> Result<SendRequest<Full<Bytes>>, String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = String::new();
    while Instant::now() < deadline {
        match common::connect_h2(&agg.addr, tls.clone()).await {
            Ok(mut s) => match get(&mut s, "/readyz").await {
                Ok((200, _)) => return Ok(s),
                Ok((status, b)) => last = format!("{status} {}", String::from_utf8_lossy(&b)),
                Err(e) => last = e,
            },
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!("{} was not ready within 120 s: {last}", agg.name))
}

/// The connections to one aggregator: each opened by the first prober that needs it (the edge
/// connects when it has something to send: a connection that sits unused past the aggregator's
/// `header_read_timeout` before its first request is closed), and again after one breaks.
struct Pool {
    addr: String,
    tls: Arc<rustls::ClientConfig>,
    slots: Vec<tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>>,
    opened: AtomicU64,
}

impl Pool {
    fn new(addr: &str, tls: Arc<rustls::ClientConfig>, n: usize) -> Pool {
        let slots = (0..n).map(|_| tokio::sync::Mutex::new(None)).collect();
        Pool { addr: addr.to_owned(), tls, slots, opened: AtomicU64::new(0) }
    }

    /// Prober `p`'s connection, opened (or reopened) when it has none.
    async fn get(&self, p: usize) -> Result<SendRequest<Full<Bytes>>, String> {
        let mut slot = self.slots[p % self.slots.len()].lock().await;
        if let Some(s) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let s = common::connect_h2(&self.addr, self.tls.clone()).await?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        *slot = Some(s.clone());
        Ok(s)
    }
}

// === the reports ===

/// One series of a journey: the journey level (`step` empty) or a step.
struct SeriesDef {
    journey: usize,
    step: &'static str,
    /// The step where a failing run stops (its last step), and the journey level.
    fails: bool,
    pay: Option<(&'static str, &'static str)>,
    median_us: f64,
}

fn series_defs() -> Vec<SeriesDef> {
    let mut out = Vec::new();
    for (j, (_, steps, pay)) in JOURNEYS.iter().enumerate() {
        out.push(SeriesDef { journey: j, step: "", fails: true, pay: None, median_us: 2e6 + 1.5e6 * (j % 4) as f64 });
        for (s, step) in steps.iter().enumerate() {
            out.push(SeriesDef {
                journey: j,
                step,
                fails: s + 1 == steps.len(),
                pay: pay.filter(|(at, _, _)| at == step).map(|(_, rail, reason)| (rail, reason)),
                median_us: 90_000.0 * (1 + (j + s) % 9) as f64,
            });
        }
    }
    out
}

/// Pre-encoded series objects of the wire format, `[region][series][shape][variant]`, shape 0:
/// `ok` × runs, 1: `ok` × (runs − 1), 2: `timeout` × 1. Each holds a real HdrHistogram V2 +
/// DEFLATE histogram of log-normal durations (µs).
struct Fleet {
    defs: Vec<SeriesDef>,
    fragments: Vec<Vec<[Vec<String>; 3]>>,
    probers: usize,
    regions: usize,
    runs: u64,
    interval_ms: i64,
}

impl Fleet {
    fn new(probers: usize, regions: usize, runs: u64, interval_ms: i64) -> Fleet {
        let defs = series_defs();
        let mut rng = Rng(2026);
        let mut fragment = |r: usize, d: &SeriesDef, outcome: &str, n: u64| -> Vec<String> {
            (0..VARIANTS)
                .map(|_| {
                    let mut h = report::new_histogram();
                    for _ in 0..n {
                        let scale = if outcome == "timeout" { 8.0 } else { 1.0 };
                        h.saturating_record(rng.lognormal(d.median_us * scale, 0.5).clamp(1.0, 3.6e9) as u64);
                    }
                    let mut v = serde_json::json!({
                        "journey": JOURNEYS[d.journey].0, "step": d.step, "outcome": outcome, "region": region(r),
                        "profile": PROFILES[r % PROFILES.len()], "count": h.len(),
                        "hist": STANDARD.encode(report::encode_histogram(&h)),
                    });
                    if let Some((rail, reason)) = d.pay {
                        v["rail"] = rail.into();
                        v["reason"] = if outcome == "ok" { reason.into() } else { "unknown".into() };
                    }
                    v.to_string()
                })
                .collect()
        };
        let fragments = (0..regions)
            .map(|r| {
                defs.iter()
                    .map(|d| [fragment(r, d, "ok", runs), fragment(r, d, "ok", runs - 1), fragment(r, d, "timeout", 1)])
                    .collect()
            })
            .collect();
        Fleet { defs, fragments, probers, regions, runs, interval_ms }
    }

    /// Whether journey `j`'s runs in report `k` of prober `p` include a failed one.
    fn fails(p: usize, k: u64, j: usize) -> bool {
        Rng(((p as u64) << 32) ^ (k << 8) ^ j as u64).next().is_multiple_of(FAIL_ONE_IN)
    }

    /// Journey-level runs in one report (every journey runs `runs` times, failed or not).
    fn runs_per_report(&self) -> u64 {
        JOURNEYS.len() as u64 * self.runs
    }

    /// Report `k` of prober `p`, its interval ending at `end_ms`, sent at `sent_ms`.
    fn body(&self, p: usize, k: u64, end_ms: i64, sent_ms: i64) -> Vec<u8> {
        let r = p % self.regions;
        let mut s = String::with_capacity(12 * 1024);
        let _ = write!(
            s,
            r#"{{"v":1,"prober":"{}","region":"{}","seq":{},"interval_start_ms":{},"interval_end_ms":{end_ms},"sent_at_ms":{sent_ms},"heartbeat":{{"outbox_backlog":1,"outbox_dropped_total":0,"journeys":{},"runs_started":{},"uptime_s":{},"version":"bench","interval_ms":{},"radios":[{{"modem":"ttyUSB2","signal_dbm":-{},"registration":"home","operator":"Safaricom","access":"eutran","sim":"ready","read_at_ms":{end_ms},"error":""}}]}},"series":["#,
            prober_id(p),
            region(r),
            k + 1,
            end_ms - self.interval_ms,
            JOURNEYS.len(),
            self.runs_per_report(),
            (k as i64 + 1) * self.interval_ms / 1000,
            self.interval_ms,
            60 + p % 40,
        );
        let mut first = true;
        let mut push = |s: &mut String, frag: &str| {
            if !first {
                s.push(',');
            }
            first = false;
            s.push_str(frag);
        };
        for (n, d) in self.defs.iter().enumerate() {
            let v = (Rng(((p as u64) << 20) ^ (k << 6) ^ n as u64).next() % VARIANTS as u64) as usize;
            let shapes = &self.fragments[r][n];
            if d.fails && Fleet::fails(p, k, d.journey) {
                if self.runs > 1 {
                    push(&mut s, &shapes[1][v]);
                }
                push(&mut s, &shapes[2][v]);
            } else {
                push(&mut s, &shapes[0][v]);
            }
        }
        s.push_str("]}");
        s.into_bytes()
    }
}

// === the fleet in real time ===

/// What one aggregator received, as the probers saw it.
struct Tally {
    stored: AtomicU64,
    duplicate: AtomicU64,
    /// Answered with a status other than 200.
    refused: AtomicU64,
    /// No answer: the connection broke or `--request-timeout-s` passed.
    unacked: AtomicU64,
    sent: AtomicU64,
    bytes: AtomicU64,
    /// Ack latency from the planned send time, whole run and per interval (µs).
    latency: Mutex<Histogram<u64>>,
    per_interval: Vec<Mutex<Histogram<u64>>>,
    /// How late sends started against their plan (µs).
    lateness: Mutex<Histogram<u64>>,
    first_error: Mutex<Option<String>>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("bounds")
}

impl Tally {
    fn new(intervals: u64) -> Tally {
        Tally {
            stored: AtomicU64::new(0),
            duplicate: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            unacked: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            latency: Mutex::new(histogram()),
            per_interval: (0..intervals).map(|_| Mutex::new(histogram())).collect(),
            lateness: Mutex::new(histogram()),
            first_error: Mutex::new(None),
        }
    }

    fn acked(&self) -> u64 {
        self.stored.load(Ordering::Relaxed) + self.duplicate.load(Ordering::Relaxed)
    }
}

/// The plan every prober task shares.
struct Plan {
    fleet: Fleet,
    t0: Instant,
    /// Wall clock (Unix ms) at `t0`.
    wall0_ms: i64,
    intervals: u64,
    timeout: Duration,
    /// Scrape `/metrics` at each interval's end.
    scrape: bool,
}

impl Plan {
    fn interval(&self) -> Duration {
        Duration::from_millis(self.fleet.interval_ms as u64)
    }

    /// When prober `p` sends report `k`.
    fn send_at(&self, p: usize, k: u64) -> Instant {
        let phase = self.interval().mul_f64(p as f64 / self.fleet.probers as f64);
        self.t0 + phase + self.interval() * k as u32
    }
}

/// One prober's reports to one aggregator: report `k` at its planned time, the next one after
/// the answer (the edge sends its outbox in order, one at a time per destination).
async fn prober(plan: Arc<Plan>, p: usize, pool: Arc<Pool>, tally: Arc<Tally>) {
    let auth = format!("Bearer {}", token(p));
    for k in 0..plan.intervals {
        let at = plan.send_at(p, k);
        tokio::time::sleep_until(at).await;
        let late = at.elapsed();
        let end_ms = plan.wall0_ms + (at - plan.t0).as_millis() as i64;
        tally.sent.fetch_add(1, Ordering::Relaxed);
        let answer = tokio::time::timeout(plan.timeout, async {
            let mut s = pool.get(p).await?;
            s.ready().await.map_err(|e| e.to_string())?;
            // Stamped when the request goes out, as the edge re-stamps `sent_at_ms` at every
            // attempt: the aggregator reads the prober's clock offset from it.
            let body = plan.fleet.body(p, k, end_ms, wall_ms());
            tally.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
            let req = http::Request::post("https://localhost/api/v1/reports")
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .expect("a valid request");
            let resp = s.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let b = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok::<_, String>((status, b))
        })
        .await;
        let us = at.elapsed().as_micros() as u64;
        match answer {
            Ok(Ok((200, b))) => {
                let dup = b.windows(9).any(|w| w == b"duplicate");
                let c = if dup { &tally.duplicate } else { &tally.stored };
                c.fetch_add(1, Ordering::Relaxed);
                tally.latency.lock().saturating_record(us);
                tally.per_interval[k as usize].lock().saturating_record(us);
                tally.lateness.lock().saturating_record(late.as_micros() as u64);
            }
            Ok(Ok((status, b))) => {
                tally.refused.fetch_add(1, Ordering::Relaxed);
                let msg = format!("{status}: {}", String::from_utf8_lossy(&b));
                tally.first_error.lock().get_or_insert(msg);
            }
            Ok(Err(e)) => {
                tally.unacked.fetch_add(1, Ordering::Relaxed);
                tally.first_error.lock().get_or_insert(e);
            }
            Err(_) => {
                tally.unacked.fetch_add(1, Ordering::Relaxed);
                tally.first_error.lock().get_or_insert_with(|| "no answer within the request timeout".into());
            }
        }
    }
}

/// `VmRSS` and `VmHWM` of a process, MiB.
fn rss_mib(pid: &str) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Bytes of every file in `dir` (the store, its WAL and shared memory).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// One sample of one aggregator, taken at the end of an interval.
#[derive(Clone, Default)]
struct Sample {
    acked: u64,
    rss: f64,
    hwm: f64,
    cpu: f64,
    store_bytes: u64,
    scrape_ms: f64,
    scrape_bytes: usize,
}

/// The aggregators being measured, with a connection for reads to each.
struct Target {
    agg: Aggregator,
    reads: Mutex<SendRequest<Full<Bytes>>>,
    tls: Arc<rustls::ClientConfig>,
    pool: Arc<Pool>,
    tally: Arc<Tally>,
}

impl Target {
    /// A GET on the read connection, reopened when the aggregator has closed it (idle).
    async fn get(&self, path: &str) -> Result<(u16, Bytes), String> {
        let mut s = self.reads.lock().clone();
        if !s.is_closed()
            && let Ok(answer) = get(&mut s, path).await
        {
            return Ok(answer);
        }
        s = common::connect_h2(&self.agg.addr, self.tls.clone()).await?;
        *self.reads.lock() = s.clone();
        get(&mut s, path).await
    }

    async fn sample(&self, scrape: bool) -> Sample {
        let (rss, hwm) = rss_mib(&self.agg.pid);
        let t = Instant::now();
        let scrape = if scrape { self.get("/metrics").await } else { Err(String::new()) };
        let scrape_ms = t.elapsed().as_secs_f64() * 1e3;
        Sample {
            acked: self.tally.acked(),
            rss,
            hwm,
            cpu: cpu_secs(&self.agg.pid).unwrap_or(f64::NAN),
            store_bytes: dir_bytes(&self.agg.data_dir),
            scrape_ms,
            scrape_bytes: scrape.map_or(0, |(_, b)| b.len()),
        }
    }
}

// === the run ===

async fn run(a: Args) -> Result<bool, String> {
    let conns = conns_per_aggregator(&a);
    let need = conns * usize::from(a.replicas) + 256;
    if let Some(limit) = open_files_limit().filter(|l| *l < need) {
        return Err(format!(
            "{need} open files needed ({conns} connections per aggregator), the limit is {limit}: raise it \
             (`ulimit -n {}`, as benches/fleet-ingest.sh does) or pass --conns",
            need.next_power_of_two()
        ));
    }
    let dir = a.dir.clone();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let configs = write_configs(&a, &dir)?;
    let dir = std::fs::canonicalize(&dir).map_err(|e| e.to_string())?;
    let aggs = start(&a, &dir, &configs).await?;
    let result = measure(&a, &dir, aggs).await;
    if !a.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn measure(a: &Args, dir: &Path, aggs: Vec<Aggregator>) -> Result<bool, String> {
    let tls = common::h2_tls_config(&dir.join("agg.crt"))?;
    let conns = conns_per_aggregator(a);
    let mut targets = Vec::new();
    for agg in aggs {
        let reads = ready(&agg, &tls).await?;
        let pool = Arc::new(Pool::new(&agg.addr, tls.clone(), conns));
        targets.push(Target {
            agg,
            reads: Mutex::new(reads),
            tls: tls.clone(),
            pool,
            tally: Arc::new(Tally::new(a.intervals)),
        });
    }
    let interval_ms = i64::try_from(a.interval_s * 1000).map_err(|e| e.to_string())?;
    let fleet = Fleet::new(a.probers, a.regions, a.runs.max(1), interval_ms);
    let sample = fleet.body(0, 0, interval_ms, interval_ms);
    let decoded = report::decode(&sample).map_err(|e| format!("the generated report does not decode: {e}"))?;
    let t0 = Instant::now() + Duration::from_secs(2);
    let plan = Arc::new(Plan {
        fleet,
        t0,
        wall0_ms: wall_ms() + 2_000,
        intervals: a.intervals,
        timeout: Duration::from_secs(a.request_timeout_s),
        scrape: !a.no_scrape,
    });
    let cpu0: Vec<f64> = targets.iter().map(|t| cpu_secs(&t.agg.pid).unwrap_or(f64::NAN)).collect();
    let self0 = cpu_secs("self").unwrap_or(f64::NAN);
    let mut tasks = tokio::task::JoinSet::new();
    for t in &targets {
        for p in 0..a.probers {
            tasks.spawn(prober(plan.clone(), p, t.pool.clone(), t.tally.clone()));
        }
    }
    let samples = sample_each_interval(&plan, &targets, &mut tasks).await;
    let cpu: Vec<f64> =
        targets.iter().zip(&cpu0).map(|(t, c0)| cpu_secs(&t.agg.pid).unwrap_or(f64::NAN) - c0).collect();
    let own_cpu = cpu_secs("self").unwrap_or(f64::NAN) - self0;
    let secs = t0.elapsed().as_secs_f64();
    let mut counts = Vec::new();
    for t in &targets {
        // A bucket counts when it *starts* in [from, to): the first intervals' minute buckets start
        // up to a minute before their interval does. The stores are fresh, so a wide window is exact.
        let from_ms = (plan.wall0_ms - 2 * interval_ms) / 60_000 * 60_000 - 60_000;
        counts.push(run_counts(t, from_ms, wall_ms() + 60_000).await?);
    }
    let cx =
        Tables { a, plan: &plan, targets: &targets, samples: &samples, cpu0: &cpu0, cpu: &cpu, counts: &counts, secs };
    cx.intervals_table();
    let ok = cx.summary_table(decoded.series.len(), own_cpu);
    for t in targets {
        let mut child = t.agg.child;
        let _ = child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    }
    Ok(ok)
}

/// Samples every aggregator at the end of each interval until every prober task is done (or
/// three intervals after the last, when the rest are aborted and count as unacknowledged).
async fn sample_each_interval(
    plan: &Plan,
    targets: &[Target],
    tasks: &mut tokio::task::JoinSet<()>,
) -> Vec<Vec<Sample>> {
    let mut samples = vec![Vec::new(); targets.len()];
    let last = plan.intervals + 3;
    for k in 1..=last {
        let at = plan.t0 + plan.interval() * k as u32;
        let done = tokio::time::timeout_at(at, async { while tasks.join_next().await.is_some() {} }).await.is_ok();
        for (i, t) in targets.iter().enumerate() {
            samples[i].push(t.sample(plan.scrape).await);
        }
        let acked: Vec<String> = targets.iter().map(|t| t.tally.acked().to_string()).collect();
        eprintln!("interval {k}: acked {}", acked.join(" / "));
        if done && k >= plan.intervals {
            break;
        }
    }
    if !tasks.is_empty() {
        eprintln!("{} prober tasks still sending after the drain: aborted", tasks.len());
        tasks.abort_all();
    }
    samples
}

/// What an aggregator holds: journey-level runs through `/api/v1/query`, and its own
/// `aggregator_reports_total` by result.
struct Counts {
    runs: u64,
    by_result: Vec<(String, u64)>,
}

async fn run_counts(t: &Target, from_ms: i64, to_ms: i64) -> Result<Counts, String> {
    let (status, body) = t.get(&format!("/api/v1/query?from={from_ms}&to={to_ms}")).await?;
    if status != 200 {
        return Err(format!("{}: /api/v1/query answered {status}: {}", t.agg.name, String::from_utf8_lossy(&body)));
    }
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let runs = v["groups"].as_array().map_or(0, |g| g.iter().filter_map(|g| g["count"].as_u64()).sum());
    let (_, metrics) = t.get("/metrics").await?;
    let mut by_result: Vec<(String, u64)> = Vec::new();
    for line in String::from_utf8_lossy(&metrics).lines().filter(|l| l.starts_with("aggregator_reports_total{")) {
        let result = line.split("result=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("?").to_owned();
        let n = line.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()).unwrap_or(0.0) as u64;
        match by_result.iter_mut().find(|(r, _)| *r == result) {
            Some((_, c)) => *c += n,
            None => by_result.push((result, n)),
        }
    }
    Ok(Counts { runs, by_result })
}

// === the tables ===

/// Everything measured, for printing.
struct Tables<'a> {
    a: &'a Args,
    plan: &'a Plan,
    targets: &'a [Target],
    samples: &'a [Vec<Sample>],
    /// CPU seconds of each aggregator at `t0`, and used from `t0` to the end.
    cpu0: &'a [f64],
    cpu: &'a [f64],
    counts: &'a [Counts],
    secs: f64,
}

fn ms_at(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() { f64::NAN } else { h.value_at_quantile(q) as f64 / 1e3 }
}

const MIB: f64 = 1024.0 * 1024.0;

impl Tables<'_> {
    /// Interval by interval: what was acknowledged, the latency of that interval's reports, and
    /// the aggregator's memory, CPU and store at the interval's end.
    fn intervals_table(&self) {
        println!(
            "| interval | aggregator | reports acked (total) | ack p50 ms | ack p99 ms | VmRSS MiB | VmHWM MiB | CPU s in interval | cores | store MiB | /metrics scrape ms (KiB) |"
        );
        println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let secs = self.plan.interval().as_secs_f64();
        for (i, t) in self.targets.iter().enumerate() {
            let mut cpu_before = self.cpu0[i];
            for (k, s) in self.samples[i].iter().enumerate() {
                let (p50, p99) = t.tally.per_interval.get(k).map_or((f64::NAN, f64::NAN), |h| {
                    let h = h.lock();
                    (ms_at(&h, 0.5), ms_at(&h, 0.99))
                });
                let d = s.cpu - cpu_before;
                cpu_before = s.cpu;
                println!(
                    "| {} | {} | {} | {p50:.1} | {p99:.1} | {:.1} | {:.1} | {d:.2} | {:.2} | {:.1} | {:.0} ({:.0}) |",
                    k + 1,
                    t.agg.name,
                    s.acked,
                    s.rss,
                    s.hwm,
                    d / secs,
                    s.store_bytes as f64 / MIB,
                    s.scrape_ms,
                    s.scrape_bytes as f64 / 1024.0,
                );
            }
        }
        println!();
    }

    /// The whole run per aggregator, and the checks; true when every target is met.
    fn summary_table(&self, series: usize, own_cpu: f64) -> bool {
        let a = self.a;
        let runs_per_report = self.plan.fleet.runs_per_report();
        println!(
            "{} probers in {} regions, a report every {} s for {} intervals, {series} series per report (the first), \
             {} runs per journey; {} HTTP/2 + TLS connections per aggregator (opened at a prober's first send); load generator CPU {own_cpu:.1} s",
            a.probers,
            a.regions,
            a.interval_s,
            a.intervals,
            a.runs,
            conns_per_aggregator(a),
        );
        println!();
        println!(
            "| aggregator | reports sent | stored | duplicate | **refused** | **unacked** | connections opened | ack p50 ms | **ack p99 ms** | ack p99.9 ms | ack max ms | send lateness p99 ms | VmRSS after interval 2 MiB | VmRSS end MiB | VmHWM MiB | CPU s | cores | CPU ms/report | store MiB | body KiB | runs (API) | runs sent |"
        );
        println!(
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let mut ok = true;
        for (i, t) in self.targets.iter().enumerate() {
            let tl = &t.tally;
            let (sent, stored, dup) = (
                tl.sent.load(Ordering::Relaxed),
                tl.stored.load(Ordering::Relaxed),
                tl.duplicate.load(Ordering::Relaxed),
            );
            let (refused, unacked) = (tl.refused.load(Ordering::Relaxed), tl.unacked.load(Ordering::Relaxed));
            let lat = tl.latency.lock();
            let s = &self.samples[i];
            let warm = s.get(1).or(s.last()).map_or(f64::NAN, |s| s.rss);
            let end = s.last().cloned().unwrap_or_default();
            let runs_sent = sent * runs_per_report;
            let cpu = self.cpu[i];
            println!(
                "| {} | {sent} | {stored} | {dup} | **{refused}** | **{unacked}** | {} | {:.1} | **{:.1}** | {:.1} | {:.1} | {:.1} | {warm:.1} | {:.1} | {:.1} | {cpu:.1} | {:.2} | {:.3} | {:.1} | {:.1} | {} | {runs_sent} |",
                t.agg.name,
                t.pool.opened.load(Ordering::Relaxed),
                ms_at(&lat, 0.5),
                ms_at(&lat, 0.99),
                ms_at(&lat, 0.999),
                lat.max() as f64 / 1e3,
                ms_at(&tl.lateness.lock(), 0.99),
                end.rss,
                end.hwm,
                cpu / self.secs,
                1e3 * cpu / (stored + dup).max(1) as f64,
                end.store_bytes as f64 / MIB,
                tl.bytes.load(Ordering::Relaxed) as f64 / 1024.0 / sent.max(1) as f64,
                self.counts[i].runs,
            );
            ok &= refused == 0 && unacked == 0 && stored == sent && self.counts[i].runs == runs_sent;
            ok &= ms_at(&lat, 0.99) < 50.0;
        }
        println!();
        for (t, c) in self.targets.iter().zip(self.counts) {
            let by: Vec<String> = c.by_result.iter().map(|(r, n)| format!("{r} {n}")).collect();
            println!("- {} counted `aggregator_reports_total`: {}", t.agg.name, by.join(", "));
            if let Some(e) = t.tally.first_error.lock().as_ref() {
                println!("- {} first failure: {e}", t.agg.name);
            }
        }
        if let [a0, a1] = self.counts {
            let same = a0.runs == a1.runs;
            println!(
                "- HA pair: journey-level runs {} and {}: {}",
                a0.runs,
                a1.runs,
                if same { "equal" } else { "**differ**" }
            );
            ok &= same;
        }
        ok
    }
}
