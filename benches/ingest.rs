//! Ingest benchmark: a load generator that posts real encoded reports (the `report` wire format,
//! checked with `report::decode` before the run) to a real `aggregator serve`, over HTTP/1.1
//! keep-alive or HTTP/2 over TLS, on loopback. Driven by `benches/fleet-bench.sh`; see
//! benches/README.md. Every run is bounded by a report count and a time limit.
//!
//! Subcommands:
//! - `config --dir D --probers N --regions R --port P [--tls] [--compact-after 2d]`: writes
//!   `D/aggregator.yaml`, one token file per simulated prober, and (with `--tls`) a self-signed
//!   certificate for `localhost` (`D/agg.crt`, `D/agg.key`).
//! - `load --url URL …`: the load; prints one markdown row (and a `# json` line) on stdout.
//! - `sizes --db FILE --series N --minutes M`: bytes per series-day from a stopped store.
//!
//! Run with no subcommand (as `cargo test --all-targets` does) it prints a hint and exits 0.

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
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::time::Instant;

use self::common::{Rng, cpu_secs, wall_ms};

/// Journeys and steps of the simulated fleet: 5 journeys × (journey level + 9 steps) = 50 series
/// per report, like a prober running a handful of multi-step journeys.
const JOURNEYS: [&str; 5] = ["checkout-mpesa", "ussd-balance", "ussd-send-money", "mpesa-stk-push", "shop-browse"];
const STEPS_PER_JOURNEY: usize = 9;
/// Histogram variants pre-encoded per (region, series); a report picks one per series.
const VARIANTS: usize = 16;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Config(ConfigArgs),
    Load(LoadArgs),
    Sizes(SizesArgs),
}

#[derive(clap::Args)]
struct ConfigArgs {
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value_t = 1000)]
    probers: usize,
    #[arg(long, default_value_t = 20)]
    regions: usize,
    #[arg(long, default_value_t = 18088)]
    port: u16,
    #[arg(long)]
    tls: bool,
    #[arg(long, default_value = "2d")]
    compact_after: String,
}

#[derive(clap::Args, Clone)]
struct LoadArgs {
    /// `http://127.0.0.1:PORT` (HTTP/1.1) or `https://localhost:PORT` (HTTP/2 over TLS, needs --ca).
    #[arg(long)]
    url: String,
    /// PEM certificate to trust (the aggregator's self-signed one).
    #[arg(long)]
    ca: Option<PathBuf>,
    #[arg(long, default_value_t = 1000)]
    probers: usize,
    #[arg(long, default_value_t = 20)]
    regions: usize,
    /// Runs recorded per series per report (a prober running each journey every 10–15 s has 1–2).
    #[arg(long, default_value_t = 2)]
    samples: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Connections for HTTP/2 (requests are multiplexed over them); HTTP/1.1 uses one per request
    /// in flight.
    #[arg(long, default_value_t = 4)]
    h2_conns: usize,
    /// Stop after this many reports …
    #[arg(long, default_value_t = 20_000)]
    reports: u64,
    /// … or after this many seconds, whichever comes first.
    #[arg(long, default_value_t = 60.0)]
    max_secs: f64,
    /// The simulated reporting interval: report k of prober p covers interval k.
    #[arg(long, default_value_t = 10_000)]
    interval_ms: i64,
    /// Simulated time of the first interval's start (Unix ms); default: now minus the simulated
    /// span of the run, so every interval is in the past and inside the retention.
    #[arg(long)]
    start_ms: Option<i64>,
    /// The aggregator's pid: its CPU time (utime + stime) over the run is reported.
    #[arg(long)]
    pid: Option<u32>,
    /// A label for the row.
    #[arg(long, default_value = "")]
    label: String,
    /// Print the table header first.
    #[arg(long)]
    header: bool,
}

#[derive(clap::Args)]
struct SizesArgs {
    #[arg(long)]
    db: PathBuf,
    #[arg(long)]
    label: String,
    /// Series-days the store holds (series × simulated days).
    #[arg(long)]
    series_days: f64,
    #[arg(long)]
    header: bool,
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().collect();
    args.retain(|a| a != "--bench");
    if args.len() == 1 {
        println!("ingest: nothing to do without a subcommand; run benches/fleet-bench.sh");
        return ExitCode::SUCCESS;
    }
    let cli = Cli::parse_from(args);
    let result = match cli.command {
        Cmd::Config(a) => config_cmd(&a),
        Cmd::Sizes(a) => sizes_cmd(&a),
        Cmd::Load(a) => match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(rt) => rt.block_on(load_cmd(a)),
            Err(e) => Err(format!("cannot start the runtime: {e}")),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingest: {e}");
            ExitCode::FAILURE
        }
    }
}

fn prober_id(p: usize) -> String {
    format!("bp{p:05}")
}

fn region_of(p: usize, regions: usize) -> String {
    format!("r{:02}", p % regions)
}

fn token(p: usize) -> String {
    format!("bench-token-{p:05}-0123456789abcdef")
}

fn series_names() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for j in JOURNEYS {
        out.push((j.to_owned(), String::new()));
        for s in 1..=STEPS_PER_JOURNEY {
            out.push((j.to_owned(), format!("step-{s}")));
        }
    }
    out
}

// === config ===

fn config_cmd(a: &ConfigArgs) -> Result<(), String> {
    let io = |e: std::io::Error| format!("{}: {e}", a.dir.display());
    std::fs::create_dir_all(a.dir.join("tokens")).map_err(io)?;
    let mut y = format!("listen: 127.0.0.1:{}\ndata_dir: data\n", a.port);
    if a.tls {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).map_err(|e| e.to_string())?;
        std::fs::write(a.dir.join("agg.crt"), ck.cert.pem()).map_err(io)?;
        std::fs::write(a.dir.join("agg.key"), ck.signing_key.serialize_pem()).map_err(io)?;
        y.push_str("tls:\n  cert_file: agg.crt\n  key_file: agg.key\n");
    }
    // One load generator on loopback stands for every prober: it is one peer to the per-peer cap.
    y.push_str("connections:\n  max_connections_per_peer: 4096\n");
    let _ = writeln!(y, "compact_after: {}\nmax_disk_bytes: 8GiB\nprobers:", a.compact_after);
    for p in 0..a.probers {
        let f = format!("tokens/{}", prober_id(p));
        std::fs::write(a.dir.join(&f), token(p)).map_err(io)?;
        let _ = writeln!(y, "  - id: {}\n    region: {}\n    token: file:{f}", prober_id(p), region_of(p, a.regions));
    }
    std::fs::write(a.dir.join("aggregator.yaml"), y).map_err(io)?;
    Ok(())
}

// === the reports ===

/// Pre-encoded series objects, `[region][series][variant]`, each a JSON object of the wire format
/// with a real HdrHistogram V2 + DEFLATE histogram (µs, log-normal durations: journeys around
/// 1.5–6 s, steps around 80–900 ms).
struct Fleet {
    fragments: Vec<Vec<Vec<String>>>,
    probers: usize,
    regions: usize,
}

impl Fleet {
    fn new(probers: usize, regions: usize, samples: usize) -> Fleet {
        let names = series_names();
        let mut rng = Rng(2024);
        let fragments = (0..regions)
            .map(|r| {
                let region = format!("r{r:02}");
                names
                    .iter()
                    .enumerate()
                    .map(|(i, (journey, step))| {
                        let median_us = if step.is_empty() {
                            1_500_000.0 + 1e6 * (i % 4) as f64
                        } else {
                            80_000.0 * (1 + i % 11) as f64
                        };
                        (0..VARIANTS)
                            .map(|_| {
                                let mut h = report::new_histogram();
                                for _ in 0..samples {
                                    h.saturating_record(rng.lognormal(median_us, 0.6).clamp(1.0, 3.6e9) as u64);
                                }
                                let v = serde_json::json!({
                                    "journey": journey, "step": step, "outcome": "ok", "region": region,
                                    "profile": "ea-3g", "count": h.len(),
                                    "hist": STANDARD.encode(report::encode_histogram(&h)),
                                });
                                v.to_string()
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Fleet { fragments, probers, regions }
    }

    /// Report number `k` of the run: prober `k % probers`, its interval `k / probers`.
    fn body(&self, k: u64, start_ms: i64, interval_ms: i64, now_ms: i64) -> (usize, Vec<u8>) {
        let p = (k % self.probers as u64) as usize;
        let i = (k / self.probers as u64) as i64;
        let region = p % self.regions;
        let start = start_ms + i * interval_ms;
        let mut s = String::with_capacity(16 * 1024);
        let _ = write!(
            s,
            r#"{{"v":1,"prober":"{}","region":"r{region:02}","seq":{},"interval_start_ms":{start},"interval_end_ms":{},"sent_at_ms":{now_ms},"heartbeat":{{"outbox_backlog":1,"outbox_dropped_total":0,"journeys":5,"runs_started":5,"uptime_s":{},"version":"bench"}},"series":["#,
            prober_id(p),
            i + 1,
            start + interval_ms,
            i * interval_ms / 1000,
        );
        let mut mix = k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for (n, variants) in self.fragments[region].iter().enumerate() {
            if n > 0 {
                s.push(',');
            }
            mix = mix.rotate_left(5) ^ n as u64;
            s.push_str(&variants[(mix % VARIANTS as u64) as usize]);
        }
        s.push_str("]}");
        (p, s.into_bytes())
    }
}

// === load ===

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn send(&mut self, req: http::Request<Full<Bytes>>) -> Result<(u16, Bytes), String> {
        let resp = match self {
            Sender::H1(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(req).await
            }
            Sender::H2(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(req).await
            }
        }
        .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((status, body))
    }
}

async fn connect_h1(addr: &str) -> Result<Sender, String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("{addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (s, conn) = http1::handshake(TokioIo::new(tcp)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(Sender::H1(s))
}

async fn connect_h2(addr: &str, ca: &Path) -> Result<Sender, String> {
    Ok(Sender::H2(common::connect_h2(addr, common::h2_tls_config(ca)?).await?))
}

#[derive(Default)]
struct Tally {
    stored: AtomicU64,
    duplicate: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
}

/// What the load workers share.
struct Work {
    fleet: Arc<Fleet>,
    /// The next report to send, across workers.
    next: Arc<AtomicU64>,
    tally: Arc<Tally>,
    latency: Arc<Mutex<Histogram<u64>>>,
    first_error: Arc<Mutex<Option<String>>>,
    limit: u64,
    interval_ms: i64,
    start_ms: i64,
    deadline: Instant,
    uri: String,
}

/// Sends reports on one connection until the count or the deadline is reached, or the
/// connection breaks.
async fn worker(mut sender: Sender, w: Arc<Work>) {
    let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    loop {
        let k = w.next.fetch_add(1, Ordering::Relaxed);
        if k >= w.limit || Instant::now() >= w.deadline {
            break;
        }
        let (p, body) = w.fleet.body(k, w.start_ms, w.interval_ms, wall_ms());
        w.tally.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        let req = http::Request::builder()
            .method("POST")
            .uri(&w.uri)
            .header("authorization", format!("Bearer {}", token(p)))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("a valid request");
        let t = Instant::now();
        let result = sender.send(req).await;
        local.saturating_record(t.elapsed().as_micros() as u64);
        match result {
            Ok((200, b)) if b.windows(9).any(|w| w == b"duplicate") => {
                w.tally.duplicate.fetch_add(1, Ordering::Relaxed);
            }
            Ok((200, _)) => {
                w.tally.stored.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status, b)) => {
                w.tally.failed.fetch_add(1, Ordering::Relaxed);
                w.first_error.lock().get_or_insert_with(|| format!("{status}: {}", String::from_utf8_lossy(&b)));
            }
            Err(e) => {
                w.tally.failed.fetch_add(1, Ordering::Relaxed);
                w.first_error.lock().get_or_insert(e);
                break; // a broken connection: this worker stops
            }
        }
    }
    let _ = w.latency.lock().add(&local);
}

/// The connections of a run: `--h2-conns` shared HTTP/2 ones, or one HTTP/1.1 per worker.
async fn connect_all(a: &LoadArgs, h2: bool, addr: &str) -> Result<Vec<Sender>, String> {
    let mut senders = Vec::new();
    if h2 {
        let ca = a.ca.clone().unwrap_or_default();
        for _ in 0..a.h2_conns.max(1) {
            senders.push(connect_h2(addr, &ca).await?);
        }
    } else {
        for _ in 0..a.concurrency {
            senders.push(connect_h1(addr).await?);
        }
    }
    Ok(senders)
}

async fn load_cmd(a: LoadArgs) -> Result<(), String> {
    let h2 = a.url.starts_with("https://");
    let authority = a.url.split("://").nth(1).unwrap_or_default().trim_end_matches('/').to_owned();
    let addr = authority.replace("localhost", "127.0.0.1");
    if h2 && a.ca.is_none() {
        return Err("https:// needs --ca".into());
    }
    let fleet = Arc::new(Fleet::new(a.probers, a.regions, a.samples));
    let intervals = a.reports.div_ceil(a.probers as u64) as i64;
    let start_ms = a.start_ms.unwrap_or_else(|| (wall_ms() - (intervals + 6) * a.interval_ms) / 60_000 * 60_000);
    // The bodies are the real wire format: the decoder the aggregator uses accepts them.
    let (_, sample) = fleet.body(0, start_ms, a.interval_ms, wall_ms());
    let decoded = report::decode(&sample).map_err(|e| format!("the generated report does not decode: {e}"))?;
    let series = decoded.series.len() as u64;
    let senders = connect_all(&a, h2, &addr).await?;
    let shared_h2: Vec<_> =
        senders.iter().filter_map(|s| if let Sender::H2(s) = s { Some(s.clone()) } else { None }).collect();
    let tally = Arc::new(Tally::default());
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds")));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let pid = a.pid.map(|p| p.to_string());
    let cpu0 = pid.as_deref().and_then(cpu_secs);
    let self0 = cpu_secs("self");
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(a.max_secs);
    let mut tasks = Vec::new();
    let mut h1 = senders.into_iter().filter(|s| matches!(s, Sender::H1(_)));
    let work = Arc::new(Work {
        fleet: fleet.clone(),
        next: Arc::new(AtomicU64::new(0)),
        tally: tally.clone(),
        latency: latency.clone(),
        first_error: first_error.clone(),
        limit: a.reports,
        interval_ms: a.interval_ms,
        start_ms,
        deadline,
        uri: format!("{}/api/v1/reports", a.url.trim_end_matches('/')),
    });
    for w in 0..a.concurrency {
        let sender =
            if h2 { Sender::H2(shared_h2[w % shared_h2.len()].clone()) } else { h1.next().expect("one per worker") };
        tasks.push(tokio::spawn(worker(sender, work.clone())));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = match (cpu0, pid.as_deref().and_then(cpu_secs)) {
        (Some(a0), Some(a1)) => Some(a1 - a0),
        _ => None,
    };
    let own_cpu = match (self0, cpu_secs("self")) {
        (Some(a0), Some(a1)) => a1 - a0,
        _ => f64::NAN,
    };
    let (stored, dup, failed) = (
        tally.stored.load(Ordering::Relaxed),
        tally.duplicate.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    let ok = stored + dup;
    let lat = latency.lock();
    let ms = |q: f64| lat.value_at_quantile(q) as f64 / 1000.0;
    let rps = ok as f64 / secs;
    if a.header {
        println!(
            "| run | protocol | conc. | reports ok (stored/dup) | failed | secs | **reports/s** | **series-snapshots/s** | ack p50 ms | ack p99 ms | max ms | aggregator CPU s | aggregator cores | aggregator CPU ms/report | loadgen CPU s | body KiB |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    }
    let cpu_cols = match cpu {
        Some(c) => format!("{c:.2} | {:.2} | {:.3}", c / secs, 1000.0 * c / ok.max(1) as f64),
        None => "– | – | –".into(),
    };
    println!(
        "| {} | {} | {} | {ok} ({stored}/{dup}) | {failed} | {secs:.1} | **{rps:.0}** | **{:.0}** | {:.2} | {:.2} | {:.2} | {cpu_cols} | {own_cpu:.2} | {:.1} |",
        a.label,
        if h2 { "HTTP/2 + TLS" } else { "HTTP/1.1" },
        a.concurrency,
        rps * series as f64,
        ms(0.5),
        ms(0.99),
        lat.max() as f64 / 1000.0,
        tally.bytes.load(Ordering::Relaxed) as f64 / 1024.0 / (ok + failed).max(1) as f64,
    );
    println!(
        "# json {}",
        serde_json::json!({"label": a.label, "h2": h2, "stored": stored, "duplicate": dup, "failed": failed,
            "secs": secs, "reports_per_s": rps, "series_per_s": rps * series as f64, "p50_ms": ms(0.5),
            "p99_ms": ms(0.99), "max_ms": lat.max() as f64 / 1000.0, "aggregator_cpu_s": cpu,
            "start_ms": start_ms, "series_per_report": series})
    );
    if let Some(e) = first_error.lock().take() {
        eprintln!("ingest: first failure: {e}");
    }
    Ok(())
}

// === sizes ===

fn sizes_cmd(a: &SizesArgs) -> Result<(), String> {
    let db = rusqlite::Connection::open_with_flags(&a.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("{}: {e}", a.db.display()))?;
    let q = |sql: &str| -> Result<(i64, i64), String> {
        db.query_row(sql, [], |r| {
            Ok((r.get::<_, Option<i64>>(0)?.unwrap_or(0), r.get::<_, Option<i64>>(1)?.unwrap_or(0)))
        })
        .map_err(|e| format!("{sql}: {e}"))
    };
    let file = std::fs::metadata(&a.db).map_err(|e| e.to_string())?.len() as f64;
    let (minute_rows, minute_blob) = q("SELECT count(*), sum(length(hist)) FROM rollup_minute")?;
    let (hour_rows, hour_blob) = q("SELECT count(*), sum(length(hist)) FROM rollup_hour")?;
    let (seen_rows, _) = q("SELECT count(*), 0 FROM reports_seen")?;
    // Bytes per table and index, when SQLite was built with the dbstat table.
    let per_table: Vec<(String, i64)> = db
        .prepare("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")
        .and_then(|mut st| st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .unwrap_or_default();
    let table =
        |names: &[&str]| per_table.iter().filter(|(n, _)| names.contains(&n.as_str())).map(|(_, b)| *b).sum::<i64>();
    let rollups = table(&[
        "rollup_minute",
        "rollup_hour",
        "rollup_minute_time",
        "rollup_hour_time",
        "sqlite_autoindex_rollup_minute_1",
        "sqlite_autoindex_rollup_hour_1",
    ]) as f64;
    let seen = table(&["reports_seen", "reports_seen_received", "sqlite_autoindex_reports_seen_1"]) as f64;
    if a.header {
        println!(
            "| store | file MiB | minute rows | hour rows | avg hist blob B | rollup pages MiB | **rollup bytes / series-day** | idempotency rows | idempotency MiB | **file bytes / series-day** |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    }
    let rows = (minute_rows + hour_rows).max(1);
    println!(
        "| {} | {:.1} | {minute_rows} | {hour_rows} | {:.0} | {:.1} | **{:.0}** | {seen_rows} | {:.1} | **{:.0}** |",
        a.label,
        file / 1048576.0,
        (minute_blob + hour_blob) as f64 / rows as f64,
        rollups / 1048576.0,
        rollups / a.series_days,
        seen / 1048576.0,
        file / a.series_days,
    );
    Ok(())
}
