//! Accuracy benchmark for the `netem` link emulator, measured through the real `prober proxy` binary.
//!
//! Run everything with `benches/netem-accuracy.sh` (it builds, runs this program and the kernel
//! `tbf` comparison, and prints markdown tables). See `benches/README.md` for what is measured.
//!
//! Subcommands (so the script can run pieces inside network namespaces):
//!
//! - `serve --listen ADDR`: the test server (downloads and echo sessions).
//! - `fetch --addr ADDR --kbps R`: one timed download; prints a markdown row.
//! - `ping --addr ADDR`: closed-loop ping-pong sessions; prints percentiles.
//! - `all --prober PATH`: every measurement through `prober proxy` on 127.0.0.1.
//!
//! Run with no arguments (as `cargo test --all-targets` does) it only prints a hint and exits.
//! Traffic goes only to the address it is given or to 127.0.0.1. Every loop is bounded in count and
//! every network wait has a deadline.

use std::{
    fmt::Write as _,
    io::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{ExitCode, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use anyhow::{Context as _, bail, ensure};
use clap::{Args, Parser, Subcommand};
use netem::{
    Direction, Profile, Rate,
    link::{Link, RadioState, derive_seed},
    profile::Loss,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    process::{Child, Command},
    task::JoinSet,
    time::{Instant, sleep, sleep_until, timeout, timeout_at},
};

/// Payload bytes per full segment (netem's default MTU 1500 − 40).
const MSS: u64 = 1460;
/// Header bytes netem counts per segment (IPv4 + TCP; `tc tbf` on an Ethernet device also counts the
/// 14-byte Ethernet header, 54 in all).
const NETEM_OVERHEAD: u64 = 40;
/// Bytes ignored at the start of a download before the clock starts (covers a token bucket's burst
/// and the first read), applied the same way to every shaper.
const DEFAULT_SKIP: u64 = 8 * 1024;
/// Request header: one op byte and a big-endian u64.
const HEADER: usize = 9;
const OP_DOWNLOAD: u8 = b'D';
const OP_ECHO: u8 = b'E';
/// Largest download the server agrees to send.
const MAX_DOWNLOAD: u64 = 256 * 1024 * 1024;
/// Reads one echo session may serve.
const MAX_ECHO_READS: usize = 100_000;
/// Longest any server connection may live.
const MAX_CONN_LIFETIME: Duration = Duration::from_secs(600);
/// Ping message size.
const PING_BYTES: usize = 8;
/// Most pings or connections one measurement may ask for.
const MAX_PINGS: usize = 20_000;
const MAX_CONNS: usize = 64;

// === command line ===

#[derive(Debug, Parser)]
#[command(name = "netem_accuracy", about = "Accuracy benchmark for the netem link emulator")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serve downloads and echo sessions until --max-secs have passed.
    Serve(ServeArgs),
    /// One timed download from a `serve`; prints a markdown row.
    Fetch(FetchArgs),
    /// Closed-loop ping-pong sessions against a `serve`; prints RTT percentiles.
    Ping(PingArgs),
    /// Every measurement through `prober proxy` on 127.0.0.1; prints markdown tables.
    All(AllArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (127.0.0.1 or an address of a namespace the script created).
    #[arg(long)]
    listen: SocketAddr,
    /// Exit after this many seconds even if nobody stops us.
    #[arg(long, default_value_t = 600)]
    max_secs: u64,
}

#[derive(Debug, Args)]
struct FetchArgs {
    /// The `serve` to download from (directly, or through a shaper).
    #[arg(long)]
    addr: SocketAddr,
    /// Configured rate of the shaper, kbit/s (1 kbit = 1000 bit).
    #[arg(long)]
    kbps: f64,
    /// Length of the measured window to aim for, seconds.
    #[arg(long, default_value_t = 4.0)]
    secs: f64,
    /// Bytes to let through before the clock starts.
    #[arg(long, default_value_t = DEFAULT_SKIP)]
    skip_bytes: u64,
    /// Header bytes the shaper counts per full segment of --mss payload bytes.
    #[arg(long, default_value_t = NETEM_OVERHEAD)]
    overhead_bytes: u64,
    /// Payload bytes per full segment.
    #[arg(long, default_value_t = MSS)]
    mss: u64,
    /// Shaper name for the row.
    #[arg(long, default_value = "shaper")]
    label: String,
    /// How the shaper counts bytes, for the row.
    #[arg(long, default_value = "L3: payload + 40 B/segment")]
    accounting: String,
    /// Print the markdown table header first.
    #[arg(long)]
    header: bool,
    /// Append a tab-separated result line (label, kbps, wire kbps, error %, goodput kbps, payload B)
    /// to this file.
    #[arg(long)]
    record: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct PingArgs {
    /// The `serve` to ping (directly, or through a shaper).
    #[arg(long)]
    addr: SocketAddr,
    /// Pings in total.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// Concurrent connections (each runs its own closed loop).
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// Idle time after each answer before the next ping, ms.
    #[arg(long, default_value_t = 20)]
    gap_ms: u64,
}

#[derive(Debug, Args)]
struct AllArgs {
    /// The prober binary to run `prober proxy` from.
    #[arg(long, default_value = "target/release/prober")]
    prober: PathBuf,
    /// Seed passed to every proxy (jitter and loss draws).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Measured window per throughput run, seconds.
    #[arg(long, default_value_t = 4.0)]
    secs: f64,
    /// Append tab-separated throughput results to this file (for the script's comparison table).
    #[arg(long)]
    record: Option<PathBuf>,
    /// Run only these sections, comma-separated: timer, throughput, delay, loss, bulk-loss.
    #[arg(long, default_value = "")]
    only: String,
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` passes nothing.
    let mut args: Vec<String> = std::env::args().collect();
    let cargo_bench = args.iter().any(|a| a == "--bench");
    args.retain(|a| a != "--bench");
    if args.len() == 1 {
        if !cargo_bench {
            println!("netem_accuracy: nothing to do without a subcommand; run benches/netem-accuracy.sh");
            return ExitCode::SUCCESS;
        }
        args.push("all".into());
    }
    let cli = Cli::parse_from(args);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Cmd::Serve(a) => serve_cmd(a).await,
            Cmd::Fetch(a) => fetch_cmd(a).await,
            Cmd::Ping(a) => ping_cmd(a).await,
            Cmd::All(a) => all_cmd(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// === server ===

async fn serve_cmd(args: ServeArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    eprintln!("serving on {} for at most {} s", listener.local_addr()?, args.max_secs);
    serve(listener, Instant::now() + Duration::from_secs(args.max_secs)).await;
    Ok(())
}

/// Accepts until `until`; each connection is served by its own task, for at most
/// [`MAX_CONN_LIFETIME`].
async fn serve(listener: TcpListener, until: Instant) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            () = sleep_until(until) => break,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => {
                    tasks.spawn(timeout(MAX_CONN_LIFETIME, serve_conn(s)));
                }
                Err(e) => {
                    eprintln!("accept failed: {e}; retrying in 100 ms");
                    sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tasks.shutdown().await;
}

async fn serve_conn(mut s: TcpStream) -> anyhow::Result<()> {
    s.set_nodelay(true)?;
    let mut hdr = [0u8; HEADER];
    s.read_exact(&mut hdr).await?;
    let arg = u64::from_be_bytes(hdr[1..].try_into().expect("8 bytes"));
    match hdr[0] {
        OP_DOWNLOAD => {
            ensure!(arg <= MAX_DOWNLOAD, "download of {arg} bytes refused (max {MAX_DOWNLOAD})");
            let chunk = vec![0x5a_u8; 64 * 1024];
            let mut left = arg;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                s.write_all(&chunk[..n]).await?;
                left -= n as u64;
            }
            s.shutdown().await?;
        }
        OP_ECHO => {
            s.write_all(b"K").await?;
            let mut buf = [0u8; 4096];
            for _ in 0..MAX_ECHO_READS {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).await?;
            }
        }
        op => bail!("unknown op {op}"),
    }
    Ok(())
}

fn request(op: u8, arg: u64) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0] = op;
    h[1..].copy_from_slice(&arg.to_be_bytes());
    h
}

/// Connects, retrying for up to 5 s while the server starts.
async fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(5);
    for _ in 0..100 {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Ok(Err(_)) if Instant::now() + Duration::from_millis(50) < deadline => {
                sleep(Duration::from_millis(50)).await;
            }
            Ok(Err(e)) => return Err(e).with_context(|| format!("connecting to {addr}")),
            Err(_) => break,
        }
    }
    bail!("connecting to {addr}: timed out after 5 s")
}

// === throughput ===

/// Arrival times of a download: (seconds since the first byte, cumulative bytes) after each read.
struct Timeline {
    points: Vec<(f64, u64)>,
}

/// What a download's timeline says about its rate.
#[derive(Debug, Clone, Copy)]
struct RateMeasurement {
    /// Bytes that had arrived when the clock started (the read that crossed the skip).
    start_cum: u64,
    /// From the read that crossed the skip to the last byte.
    window_s: f64,
    goodput_kbps: f64,
    /// Least-squares slope of bytes over time between 10 % and 90 % of the payload.
    mid_slope_kbps: f64,
    /// Gaps between consecutive arrivals longer than the stall threshold.
    stalls: usize,
}

impl Timeline {
    fn measure(&self, skip: u64, stall: Duration) -> anyhow::Result<RateMeasurement> {
        let start = self.points.iter().find(|(_, c)| *c >= skip.max(1)).context("no byte arrived past the skip")?;
        let last = *self.points.last().expect("non-empty");
        let window_s = last.0 - start.0;
        let bytes = last.1 - start.1;
        ensure!(window_s > 0.0 && bytes > 0, "the download arrived in one piece; nothing to time");
        let total = last.1 as f64;
        let mid: Vec<(f64, f64)> = self
            .points
            .iter()
            .filter(|(_, c)| (0.1 * total..=0.9 * total).contains(&(*c as f64)))
            .map(|&(t, c)| (t, c as f64))
            .collect();
        let mid_slope_kbps = slope(&mid) * 8.0 / 1000.0;
        let stalls = self.points.windows(2).filter(|w| w[1].0 - w[0].0 > stall.as_secs_f64()).count();
        Ok(RateMeasurement {
            start_cum: start.1,
            window_s,
            goodput_kbps: bytes as f64 * 8.0 / window_s / 1000.0,
            mid_slope_kbps,
            stalls,
        })
    }
}

impl Timeline {
    /// Seconds from the arrival of the first `from` bytes to the last byte.
    fn window_from(&self, from: u64) -> Option<f64> {
        let start = self.points.iter().find(|(_, c)| *c >= from)?;
        Some(self.points.last()?.0 - start.0)
    }
}

/// Least-squares slope of y over x (NaN with fewer than two distinct x).
fn slope(p: &[(f64, f64)]) -> f64 {
    let n = p.len() as f64;
    let (sx, sy) = p.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, y) in p {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
    }
    sxy / sxx
}

/// Payload for a measured window of `secs` at `kbps` (wire rate) after `skip` bytes, rounded up to
/// whole segments so that every segment is full and the per-segment header accounting is exact.
fn payload_for(kbps: f64, secs: f64, skip: u64, mss: u64, overhead: u64) -> u64 {
    let goodput_bytes_per_s = kbps * 1000.0 / 8.0 * mss as f64 / (mss + overhead) as f64;
    ((goodput_bytes_per_s * secs).ceil() as u64 + skip).div_ceil(mss) * mss
}

/// Downloads `payload` bytes from a `serve` at `addr`, timing every read.
async fn download(addr: SocketAddr, payload: u64, limit: Duration) -> anyhow::Result<Timeline> {
    let deadline = Instant::now() + limit;
    let mut s = connect(addr).await?;
    s.write_all(&request(OP_DOWNLOAD, payload)).await?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    let mut first: Option<Instant> = None;
    let mut points = Vec::new();
    // Each read returns at least one byte, so `payload + 1` reads is a hard bound.
    for _ in 0..=payload {
        let n = timeout_at(deadline, s.read(&mut buf))
            .await
            .with_context(|| format!("download of {payload} B from {addr} still running after {limit:?}"))??;
        let now = Instant::now();
        if n == 0 {
            break;
        }
        got += n as u64;
        let t0 = *first.get_or_insert(now);
        points.push(((now - t0).as_secs_f64(), got));
    }
    ensure!(got == payload, "download from {addr} ended after {got} of {payload} bytes");
    Ok(Timeline { points })
}

/// Generous time limit for a download expected to take `secs`.
fn download_limit(kbps: f64, payload: u64) -> Duration {
    Duration::from_secs_f64(payload as f64 * 8.0 / (kbps * 1000.0) * 2.0 + 30.0)
}

fn pct_err(measured: f64, configured: f64) -> f64 {
    (measured / configured - 1.0) * 100.0
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

const THROUGHPUT_HEADER: &str = "| shaper | link | rate kbit/s | window s | goodput kbit/s | accounting | wire kbit/s | \
                                 **error vs rate** | mid-80 % slope (wire) | model window s (measured vs model) | ±1 % |\n\
                                 |---|---|---:|---:|---:|---|---:|---:|---:|---:|---|";

/// How a shaper counts bytes: its label, and the per-segment overhead on `mss` payload bytes.
struct Accounting<'a> {
    label: &'a str,
    overhead: u64,
    mss: u64,
}

fn throughput_row(
    shaper: &str,
    link: &str,
    kbps: f64,
    m: &RateMeasurement,
    Accounting { label: accounting, overhead, mss }: Accounting<'_>,
    model_window_s: Option<f64>,
) -> (String, f64, f64) {
    let factor = (mss + overhead) as f64 / mss as f64;
    let wire = m.goodput_kbps * factor;
    let err = pct_err(wire, kbps);
    let mid = m.mid_slope_kbps * factor;
    let model = match model_window_s {
        Some(w) => format!("{w:.4} ({:+.3} %)", pct_err(m.window_s, w)),
        None => "n/a".into(),
    };
    let row = format!(
        "| {shaper} | {link} | {kbps} | {:.4} | {:.2} | {accounting} | {wire:.2} | **{err:+.3} %** | {mid:.2} ({:+.2} %) | {model} | {} |",
        m.window_s,
        m.goodput_kbps,
        pct_err(mid, kbps),
        verdict(err.abs() <= 1.0),
    );
    (row, wire, err)
}

fn record(path: &Option<PathBuf>, line: &str) -> anyhow::Result<()> {
    if let Some(p) = path {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .with_context(|| format!("opening {}", p.display()))?;
        writeln!(f, "{line}")?;
    }
    Ok(())
}

async fn fetch_cmd(a: FetchArgs) -> anyhow::Result<()> {
    ensure!(a.kbps > 0.0 && a.secs > 0.0 && a.secs <= 120.0, "--kbps must be positive and --secs in (0, 120]");
    ensure!(a.mss > 0, "--mss must be positive");
    let payload = payload_for(a.kbps, a.secs, a.skip_bytes, a.mss, a.overhead_bytes);
    ensure!(payload <= MAX_DOWNLOAD, "{payload} bytes is more than the server sends");
    eprintln!("fetch: {payload} B from {} at {} kbit/s ({})", a.addr, a.kbps, a.label);
    let t = download(a.addr, payload, download_limit(a.kbps, payload)).await?;
    let m = t.measure(a.skip_bytes, Duration::from_secs(3600))?;
    let (row, wire, err) = throughput_row(
        &a.label,
        "bulk",
        a.kbps,
        &m,
        Accounting { label: &a.accounting, overhead: a.overhead_bytes, mss: a.mss },
        None,
    );
    if a.header {
        println!("{THROUGHPUT_HEADER}");
    }
    println!("{row}");
    record(&a.record, &format!("{}\t{}\t{wire:.3}\t{err:.4}\t{:.3}\t{payload}", a.label, a.kbps, m.goodput_kbps))?;
    Ok(())
}

// === ping ===

/// One connection's closed loop: `count` pings of [`PING_BYTES`], each sent `gap` after the
/// previous answer, starting at `start`. Returns each round-trip time.
async fn ping_session(addr: SocketAddr, count: usize, gap: Duration, start: Instant) -> anyhow::Result<Vec<Duration>> {
    const SETUP: Duration = Duration::from_secs(60);
    const PER_PING: Duration = Duration::from_secs(30);
    sleep_until(start).await;
    let mut s = timeout(SETUP, connect(addr)).await.context("connect timed out")??;
    s.write_all(&request(OP_ECHO, 0)).await?;
    let mut ack = [0u8; 1];
    timeout(SETUP, s.read_exact(&mut ack)).await.context("echo session set-up timed out")??;
    ensure!(ack[0] == b'K', "unexpected echo acknowledgement {ack:?}");
    let mut rtts = Vec::with_capacity(count);
    let mut msg = [0u8; PING_BYTES];
    let mut back = [0u8; PING_BYTES];
    for i in 0..count {
        sleep(gap).await;
        msg[..4].copy_from_slice(&(i as u32).to_be_bytes());
        let t0 = Instant::now();
        s.write_all(&msg).await?;
        timeout(PER_PING, s.read_exact(&mut back)).await.with_context(|| format!("ping {i} unanswered"))??;
        rtts.push(t0.elapsed());
        ensure!(back == msg, "echo of ping {i} does not match");
    }
    Ok(rtts)
}

/// `count` pings spread over `conns` closed-loop connections, staggered so they do not line up.
async fn ping_many(addr: SocketAddr, count: usize, conns: usize, gap: Duration) -> anyhow::Result<Vec<Duration>> {
    ensure!((1..=MAX_PINGS).contains(&count) && (1..=MAX_CONNS).contains(&conns), "count or conns out of range");
    let per = count.div_ceil(conns);
    let mut set = JoinSet::new();
    let now = Instant::now();
    for i in 0..conns {
        let start = now + gap.mul_f64(i as f64 / conns as f64) + Duration::from_micros(137 * i as u64);
        set.spawn(ping_session(addr, per, gap, start));
    }
    let mut all = Vec::with_capacity(per * conns);
    while let Some(r) = set.join_next().await {
        all.extend(r.context("ping task panicked")??);
    }
    Ok(all)
}

/// Sorted samples in milliseconds.
fn sorted_ms(d: &[Duration]) -> Vec<f64> {
    let mut v: Vec<f64> = d.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Nearest-rank percentile of sorted samples.
fn pctl(sorted: &[f64], q: f64) -> f64 {
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

async fn ping_cmd(a: PingArgs) -> anyhow::Result<()> {
    let rtts = ping_many(a.addr, a.count, a.conns, Duration::from_millis(a.gap_ms)).await?;
    let v = sorted_ms(&rtts);
    println!(
        "pings={} min={:.3}ms p50={:.3}ms p90={:.3}ms p99={:.3}ms max={:.3}ms",
        v.len(),
        v[0],
        pctl(&v, 0.5),
        pctl(&v, 0.9),
        pctl(&v, 0.99),
        v[v.len() - 1]
    );
    Ok(())
}

// === the prober proxy as a subprocess ===

/// Counters parsed from the proxy's log.
#[derive(Default)]
struct ProxyLog {
    closed: AtomicU64,
    retransmissions: AtomicU64,
}

struct ProxyProc {
    child: Child,
    addr: SocketAddr,
    log: Arc<ProxyLog>,
    drain: tokio::task::JoinHandle<()>,
}

impl ProxyProc {
    /// Starts `prober proxy` on an ephemeral 127.0.0.1 port in front of `upstream`, and waits for
    /// its "proxy ready" line.
    async fn start(prober: &Path, upstream: SocketAddr, link: &[&str]) -> anyhow::Result<ProxyProc> {
        let mut cmd = Command::new(prober);
        cmd.args(["--log", "info", "proxy", "--listen", "127.0.0.1:0", "--grace-secs", "0", "--upstream"])
            .arg(upstream.to_string())
            .args(link)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().with_context(|| format!("starting {}", prober.display()))?;
        let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        let ready = timeout(Duration::from_secs(10), async {
            for _ in 0..1000 {
                match lines.next_line().await? {
                    Some(l) if l.contains("proxy ready") => return Ok(l),
                    Some(_) => {}
                    None => break,
                }
            }
            bail!("prober proxy exited before it was ready")
        })
        .await
        .context("prober proxy not ready after 10 s")??;
        let addr: SocketAddr = field(&ready, "listen").context("no listen= in the ready line")?.parse()?;
        let log = Arc::new(ProxyLog::default());
        let drain = tokio::spawn({
            let log = log.clone();
            async move {
                // Ends when the proxy exits (stderr closes); the proxy is always killed by `stop`
                // (or on drop), and a proxy that logs a million lines is cut off anyway.
                for _ in 0..1_000_000 {
                    let Ok(Some(l)) = lines.next_line().await else { break };
                    if l.contains("connection closed") || l.contains("connection failed") {
                        if let Some(r) = field(&l, "retransmissions").and_then(|r| r.parse::<u64>().ok()) {
                            log.retransmissions.fetch_add(r, Relaxed);
                        }
                        log.closed.fetch_add(1, Relaxed);
                    } else if l.contains("WARN") || l.contains("ERROR") {
                        eprintln!("  proxy: {l}");
                    }
                }
            }
        });
        Ok(ProxyProc { child, addr, log, drain })
    }

    /// Waits (up to 5 s) until `conns` connections were logged as closed, then kills the proxy.
    async fn stop(mut self, conns: u64) -> anyhow::Result<u64> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.log.closed.load(Relaxed) < conns && Instant::now() < deadline {
            sleep(Duration::from_millis(10)).await;
        }
        self.child.start_kill()?;
        timeout(Duration::from_secs(5), self.child.wait()).await.context("prober proxy did not exit")??;
        let _ = timeout(Duration::from_secs(5), self.drain).await;
        Ok(self.log.retransmissions.load(Relaxed))
    }
}

/// The value of `key=value` in a log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    line[at..].split_whitespace().next()
}

// === all: every measurement through prober proxy ===

/// The sections `all` runs, in order.
const SECTIONS: [&str; 5] = ["timer", "throughput", "delay", "loss", "bulk-loss"];

struct Ctx {
    prober: PathBuf,
    server: SocketAddr,
    seed: String,
    secs: f64,
    record: Option<PathBuf>,
    /// p50 RTT of pings through the proxy with `--profile loopback`, ms (measured once).
    base_p50: Option<f64>,
}

fn note(msg: &str) {
    eprintln!("[netem_accuracy] {msg}");
}

fn flush(out: &mut String) {
    print!("{out}");
    let _ = std::io::stdout().flush();
    out.clear();
}

async fn all_cmd(a: AllArgs) -> anyhow::Result<()> {
    ensure!(
        a.prober.is_file(),
        "{} not found: build it first (cargo build --release -p prober --bin prober)",
        a.prober.display()
    );
    ensure!(a.secs > 0.0 && a.secs <= 60.0, "--secs must be in (0, 60]");
    let only: Vec<&str> = a.only.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    for s in &only {
        ensure!(SECTIONS.contains(s), "unknown section `{s}` in --only (known: {})", SECTIONS.join(", "));
    }
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let server = listener.local_addr()?;
    let server_task = tokio::spawn(serve(listener, Instant::now() + Duration::from_secs(900)));
    let started = Instant::now();
    let mut ctx =
        Ctx { prober: a.prober, server, seed: a.seed.to_string(), secs: a.secs, record: a.record, base_p50: None };
    let mut out = String::new();
    for section in SECTIONS.iter().filter(|s| only.is_empty() || only.contains(s)) {
        match *section {
            "timer" => timer_section(&mut out).await?,
            "throughput" => throughput_section(&mut ctx, &mut out).await?,
            "delay" => delay_section(&mut ctx, &mut out).await?,
            "loss" => loss_section(&mut ctx, &mut out).await?,
            "bulk-loss" => bulk_loss_section(&mut ctx, &mut out).await?,
            _ => unreachable!("checked above"),
        }
        flush(&mut out);
    }
    server_task.abort();
    note(&format!("done in {:.1} s", started.elapsed().as_secs_f64()));
    Ok(())
}

// --- 0. the timer floor ---

/// Lateness of tokio's `sleep_until` against deadlines at arbitrary sub-millisecond phases, ms
/// (negative: woke early). `early` wakes that much before the deadline; `spin` then yields until the
/// deadline has passed.
async fn timer_lateness(n: usize, early: Duration, spin: bool) -> Vec<f64> {
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let deadline = Instant::now() + Duration::from_micros(2_000 + (i as u64 * 373) % 1_000);
        sleep_until(deadline.checked_sub(early).unwrap_or(deadline)).await;
        if spin {
            for _ in 0..1_000_000 {
                if Instant::now() >= deadline {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        let now = Instant::now();
        let late = if now >= deadline { (now - deadline).as_secs_f64() } else { -(deadline - now).as_secs_f64() };
        v.push(late * 1000.0);
    }
    v.sort_by(f64::total_cmp);
    v
}

async fn timer_section(out: &mut String) -> anyhow::Result<()> {
    note("timer: tokio sleep_until lateness");
    writeln!(out, "### 0. Timer floor: tokio `sleep_until` on this machine (the proxy's only clock)\n")?;
    writeln!(out, "Deadlines 2–3 ms ahead at spread sub-millisecond phases; lateness = wake − deadline.\n")?;
    writeln!(out, "| wait | samples | min ms | p50 ms | p99 ms | max ms |")?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
    for (label, early, spin) in [
        ("`sleep_until(deadline)` (what the pump does)", Duration::ZERO, false),
        ("`sleep_until(deadline − 1 ms)`", Duration::from_millis(1), false),
        ("`sleep_until(deadline − 1 ms)`, then `yield_now` until the deadline", Duration::from_millis(1), true),
    ] {
        let v = timer_lateness(300, early, spin).await;
        writeln!(
            out,
            "| {label} | {} | {:+.3} | {:+.3} | {:+.3} | {:+.3} |",
            v.len(),
            v[0],
            pctl(&v, 0.5),
            pctl(&v, 0.99),
            v[v.len() - 1]
        )?;
    }
    writeln!(out)?;
    Ok(())
}

// --- 1. throughput ---

async fn throughput_section(ctx: &mut Ctx, out: &mut String) -> anyhow::Result<()> {
    writeln!(out, "### 1. Throughput through `prober proxy` (window: first read past {DEFAULT_SKIP} B → last byte)\n")?;
    writeln!(out, "{THROUGHPUT_HEADER}")?;
    let cases: [(f64, f64, &[&str]); 5] = [
        (50.0, ctx.secs, &[]),
        (400.0, ctx.secs, &[]),
        (1600.0, ctx.secs, &[]),
        (17000.0, ctx.secs, &[]),
        (1600.0, ctx.secs * 2.0, &["--rtt-ms", "300", "--jitter-ms", "50"]),
    ];
    for (kbps, secs, extra) in cases {
        let k = kbps.to_string();
        let mut link = vec!["--profile", "custom", "--down-kbps", &k, "--up-kbps", &k, "--seed", &ctx.seed];
        link.extend_from_slice(extra);
        let desc = if extra.is_empty() { "bulk".to_owned() } else { format!("bulk, `{}`", extra.join(" ")) };
        note(&format!("throughput: {kbps} kbit/s ({desc})"));
        let proxy = ProxyProc::start(&ctx.prober, ctx.server, &link).await?;
        let payload = payload_for(kbps, secs, DEFAULT_SKIP, MSS, NETEM_OVERHEAD);
        let t = download(proxy.addr, payload, download_limit(kbps, payload)).await;
        proxy.stop(1).await?;
        let m = t?.measure(DEFAULT_SKIP, Duration::from_secs(3600))?;
        let (model, _) = replay(&link, payload)?;
        let model_window = model.window_from(m.start_cum);
        let (row, wire, err) = throughput_row(
            "netem (prober proxy)",
            &desc,
            kbps,
            &m,
            Accounting { label: "L3: +40 B/seg", overhead: NETEM_OVERHEAD, mss: MSS },
            model_window,
        );
        writeln!(out, "{row}")?;
        if extra.is_empty() {
            record(&ctx.record, &format!("netem\t{kbps}\t{wire:.3}\t{err:.4}\t{:.3}", m.goodput_kbps))?;
        }
    }
    writeln!(out)?;
    Ok(())
}

// --- 2. added delay ---

/// p50 RTT through the proxy with `--profile loopback` (no emulation), measured once.
async fn baseline(ctx: &mut Ctx, out: &mut String) -> anyhow::Result<f64> {
    if let Some(b) = ctx.base_p50 {
        return Ok(b);
    }
    note("delay: baseline (--profile loopback)");
    let proxy = ProxyProc::start(&ctx.prober, ctx.server, &["--profile", "loopback", "--seed", &ctx.seed]).await?;
    let v = ping_many(proxy.addr, 200, 8, Duration::from_millis(20)).await;
    proxy.stop(8).await?;
    let v = sorted_ms(&v?);
    let p50 = pctl(&v, 0.5);
    writeln!(
        out,
        "Baseline (same path through `prober proxy --profile loopback`, no emulation): {} pings, \
         min {:.3} ms, p50 {p50:.3} ms, p99 {:.3} ms.\n",
        v.len(),
        v[0],
        pctl(&v, 0.99)
    )?;
    ctx.base_p50 = Some(p50);
    Ok(p50)
}

/// Serialisation of one ping (payload + 40 header bytes) at `kbps`, ms.
fn ping_serialisation_ms(kbps: f64) -> f64 {
    (PING_BYTES as f64 + NETEM_OVERHEAD as f64) * 8.0 / kbps
}

async fn delay_section(ctx: &mut Ctx, out: &mut String) -> anyhow::Result<()> {
    writeln!(out, "### 2. Added delay: closed-loop {PING_BYTES}-byte pings, link idle between pings (20 ms gap)\n")?;
    let base = baseline(ctx, out).await?;
    writeln!(
        out,
        "| link | expected RTT ms | pings | conns | min ms | p50 ms | p99 ms | added − expected: min / **p50** / p99 ms | ±2 ms at p50 |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|---|")?;
    let rate = 400.0;
    let k = rate.to_string();
    // Link flags, expected RTT (the configured one plus a ping's serialisation both ways), pings,
    // connections.
    let cases: [(&[&str], f64, usize, usize); 4] = [
        (&["--rtt-ms", "40"], 40.0, 200, 8),
        (&["--rtt-ms", "300"], 300.0, 120, 12),
        (&["--rtt-ms", "1300"], 1300.0, 60, 15),
        (&["--rtt-ms", "300", "--down-kbps", &k, "--up-kbps", &k], 300.0 + 2.0 * ping_serialisation_ms(rate), 120, 12),
    ];
    for (flags, expected, count, conns) in cases {
        let rtt = flags.join(" ");
        let mut link = vec!["--profile", "custom", "--seed", &ctx.seed];
        link.extend_from_slice(flags);
        note(&format!("delay: {rtt}"));
        let proxy = ProxyProc::start(&ctx.prober, ctx.server, &link).await?;
        let v = ping_many(proxy.addr, count, conns, Duration::from_millis(20)).await;
        proxy.stop(conns as u64).await?;
        let v = sorted_ms(&v?);
        let added = |x: f64| x - base - expected;
        let p50 = added(pctl(&v, 0.5));
        writeln!(
            out,
            "| `{rtt}` | {expected:.2} | {} | {conns} | {:.3} | {:.3} | {:.3} | {:+.3} / **{p50:+.3}** / {:+.3} | {} |",
            v.len(),
            v[0],
            pctl(&v, 0.5),
            pctl(&v, 0.99),
            added(v[0]),
            added(pctl(&v, 0.99)),
            verdict(p50.abs() <= 2.0)
        )?;
    }
    writeln!(out)?;
    Ok(())
}

// --- 3a. loss on isolated pings ---

async fn loss_section(ctx: &mut Ctx, out: &mut String) -> anyhow::Result<()> {
    let (rtt_ms, loss_pct, pings, conns) = (100u64, 5.0f64, 1200usize, 24usize);
    writeln!(out, "### 3a. Loss: isolated pings, `--rtt-ms {rtt_ms} --loss-pct {loss_pct}`\n")?;
    let base = baseline(ctx, out).await?;
    note(&format!("loss: --rtt-ms {rtt_ms} --loss-pct {loss_pct}, {pings} pings"));
    let (r, l) = (rtt_ms.to_string(), loss_pct.to_string());
    let link = ["--profile", "custom", "--rtt-ms", &r, "--loss-pct", &l, "--seed", &ctx.seed];
    let proxy = ProxyProc::start(&ctx.prober, ctx.server, &link).await?;
    let v = ping_many(proxy.addr, pings, conns, Duration::from_millis(20)).await;
    let retrans = proxy.stop(conns as u64).await?;
    loss_table(out, &v?, base, rtt_ms, loss_pct, conns, retrans)
}

/// Probability that one leg (one segment) is lost exactly `k` times before it gets through.
fn leg_prob(p: f64, k: u32) -> f64 {
    p.powi(k as i32) * (1.0 - p)
}

/// Wilson 95 % interval of a proportion.
fn wilson(x: usize, n: usize) -> (f64, f64) {
    let (n, p, z) = (n as f64, x as f64 / n as f64, 1.96f64);
    let c = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let h = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / (1.0 + z * z / n);
    (c - h, c + h)
}

fn loss_table(
    out: &mut String,
    rtts: &[Duration],
    base_p50: f64,
    rtt_ms: u64,
    loss_pct: f64,
    conns: usize,
    retrans: u64,
) -> anyhow::Result<()> {
    let p = loss_pct / 100.0;
    // max(200 ms, RTT + 4·jitter), no jitter here.
    let rto = 200f64.max(rtt_ms as f64);
    let n = rtts.len();
    // Extra delay of each ping; a tail loss costs RTO·(2^k − 1) for k losses of one leg.
    let extra: Vec<f64> = rtts.iter().map(|d| d.as_secs_f64() * 1000.0 - base_p50 - rtt_ms as f64).collect();
    let units: Vec<u64> = extra.iter().map(|e| (e / rto).round().max(0.0) as u64).collect();
    let delayed = units.iter().filter(|&&u| u >= 1).count();
    let expected_delayed = 1.0 - (1.0 - p) * (1.0 - p);
    let (lo, hi) = wilson(delayed, n);
    // The model's distribution of the extra delay in RTO units, both legs, up to 6 losses a leg.
    let mut model = [0.0f64; 5];
    for a in 0..7u32 {
        for b in 0..7u32 {
            let u = ((1u64 << a) - 1 + (1u64 << b) - 1).min(4) as usize;
            model[u] += leg_prob(p, a) * leg_prob(p, b);
        }
    }
    let class = |k: u64| -> Vec<f64> {
        let mut v: Vec<f64> = extra.iter().zip(&units).filter(|(_, u)| **u == k).map(|(e, _)| *e).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (on_time, one) = (class(0), class(1));
    // Segments that crossed the link: two per ping plus each session's set-up (header up, ack down).
    let segs = (2 * n + 2 * conns) as f64;
    let exp_retrans = segs * p / (1.0 - p);

    writeln!(
        out,
        "RTO = max(200 ms, RTT + 4·jitter) = {rto} ms. Extra delay of a ping = (RTT − baseline p50) − {rtt_ms} ms, classed by rounding to whole RTOs.\n"
    )?;
    writeln!(out, "| quantity | measured | model | agrees |")?;
    writeln!(out, "|---|---:|---:|---|")?;
    writeln!(
        out,
        "| pings delayed by ≥ 1 RTO | {delayed} / {n} = {:.2} % (95 % CI {:.2}–{:.2} %) | 1−(1−p)² = {:.2} % | {} |",
        100.0 * delayed as f64 / n as f64,
        100.0 * lo,
        100.0 * hi,
        100.0 * expected_delayed,
        verdict((lo..=hi).contains(&expected_delayed))
    )?;
    let labels = [
        "+0 (on time)",
        "+1 RTO (one leg lost once)",
        "+2 RTO (both legs lost once)",
        "+3 RTO (one leg lost twice)",
        "≥ +4 RTO",
    ];
    for (u, label) in labels.iter().enumerate() {
        let c = units.iter().filter(|&&x| if u == 4 { x >= 4 } else { x == u as u64 }).count();
        writeln!(out, "| pings {label} | {c} | {:.1} | |", model[u] * n as f64)?;
    }
    if let (false, false) = (on_time.is_empty(), one.is_empty()) {
        let (m0, m1) = (pctl(&on_time, 0.5), pctl(&one, 0.5));
        writeln!(out, "| extra delay, on-time pings: p50 | {m0:+.3} ms | 0 ms | (the idle-link offset of §2) |")?;
        writeln!(
            out,
            "| extra delay, +1 RTO pings: p50 (min–max) | {m1:.3} ms ({:.3}–{:.3}) | {rto} ms | |",
            one[0],
            one[one.len() - 1]
        )?;
        writeln!(
            out,
            "| **loss-induced delay** = p50(+1 RTO) − p50(on time) | {:.3} ms | {rto} ms | {} |",
            m1 - m0,
            verdict((m1 - m0 - rto).abs() <= 2.0)
        )?;
    }
    writeln!(
        out,
        "| retransmissions logged by the proxy | {retrans} | ≈ {exp_retrans:.0} ({segs:.0} segments × p/(1−p)) | |"
    )?;
    writeln!(out)?;
    Ok(())
}

// --- 3b. bulk transfer with loss against the link model ---

/// What the pure link model predicts for a download of `payload` bytes, sent the way the shaped
/// stream's pump sends a bulk transfer: full segments back to back (a partial tail waits for more
/// bytes, as a TCP sender coalesces), so only the last segment has nothing behind it. Returns the
/// delivery timeline (seconds since the first delivery) and the retransmissions.
fn simulate_bulk(profile: &Profile, seed: u64, payload: u64) -> anyhow::Result<(Timeline, u64)> {
    let mut link = Link::new(profile, Direction::Down, seed);
    let mut radio = RadioState::new(profile.radio);
    let mut points: Vec<(f64, u64)> = Vec::new();
    let (mut cum, mut retrans) = (0u64, 0u64);
    while cum < payload {
        let seg = (payload - cum).min(MSS);
        cum += seg;
        let s = link.send(Duration::ZERO, seg as usize, cum < payload, &mut radio)?;
        retrans += u64::from(s.retransmissions);
        points.push((s.deliver_at.as_secs_f64(), cum));
    }
    let t0 = points[0].0;
    Ok((Timeline { points: points.into_iter().map(|(t, c)| (t - t0, c)).collect() }, retrans))
}

/// The profile and seed `prober proxy --profile custom` builds from the link flags this bench
/// passes it, rebuilt with netem's public API (as `prober`'s `--profile custom` does: an unshaped
/// profile with the flags applied). If the CLI's meaning drifts, the "measured vs model" columns
/// show it.
fn resolve_link(link: &[&str]) -> anyhow::Result<(Profile, u64)> {
    let mut p = Profile::unshaped("custom");
    let mut seed = 0;
    let ms = |v: &str| -> anyhow::Result<Duration> { Ok(Duration::from_secs_f64(v.parse::<f64>()? / 1000.0)) };
    for pair in link.chunks(2) {
        let [flag, value] = pair else { bail!("link flags must come in pairs: {link:?}") };
        match *flag {
            "--profile" => ensure!(*value == "custom", "the model only rebuilds `--profile custom`"),
            "--down-kbps" => p.down = Rate::Kbps(value.parse()?),
            "--up-kbps" => p.up = Rate::Kbps(value.parse()?),
            "--rtt-ms" => p.one_way_delay = ms(value)? / 2,
            "--jitter-ms" => p.jitter.amount = ms(value)?,
            "--loss-pct" => p.loss = Loss::Random { pct: value.parse()? },
            "--seed" => seed = value.parse()?,
            other => bail!("the model does not know the flag {other}"),
        }
    }
    p.validate().map_err(|e| anyhow::anyhow!("model profile: {e}"))?;
    Ok((p, seed))
}

/// Replays the proxy's first connection (index 0), down direction, with the seed it derived.
fn replay(link: &[&str], payload: u64) -> anyhow::Result<(Timeline, u64)> {
    let (profile, seed) = resolve_link(link)?;
    simulate_bulk(&profile, derive_seed(derive_seed(seed, 0, 0), 0, 1), payload)
}

async fn bulk_loss_section(ctx: &mut Ctx, out: &mut String) -> anyhow::Result<()> {
    const RUNS: u64 = 400;
    let (kbps, rtt_ms, loss_pct) = (1600.0, 100u64, 2.0);
    let payload = payload_for(kbps, ctx.secs * 1.5, DEFAULT_SKIP, MSS, NETEM_OVERHEAD);
    let stall = Duration::from_millis(rtt_ms / 2);
    note(&format!("bulk loss: {kbps} kbit/s --rtt-ms {rtt_ms} --loss-pct {loss_pct}"));
    let (k, r, l) = (kbps.to_string(), rtt_ms.to_string(), loss_pct.to_string());
    let link = [
        "--profile",
        "custom",
        "--down-kbps",
        &k,
        "--up-kbps",
        &k,
        "--rtt-ms",
        &r,
        "--loss-pct",
        &l,
        "--seed",
        &ctx.seed,
    ];
    let proxy = ProxyProc::start(&ctx.prober, ctx.server, &link).await?;
    let t = download(proxy.addr, payload, download_limit(kbps, payload)).await;
    let retrans = proxy.stop(1).await?;
    let m = t?.measure(DEFAULT_SKIP, stall)?;

    let (profile, _) = resolve_link(&link)?;
    let (same, replay_retrans) = replay(&link, payload)?;
    let replay_window = same.window_from(m.start_cum).context("replay too short")?;
    let replay = same.measure(DEFAULT_SKIP, stall)?;
    let (mut windows, mut stalls, mut model_retrans) = (Vec::new(), 0usize, 0u64);
    for run in 0..RUNS {
        let (t, x) = simulate_bulk(&profile, derive_seed(0xbe, run, 9), payload)?;
        let r = t.measure(DEFAULT_SKIP, stall)?;
        windows.push(r.window_s);
        stalls += r.stalls;
        model_retrans += x;
    }
    windows.sort_by(f64::total_cmp);
    let mut lossless = profile.clone();
    lossless.loss = Loss::None;
    let ideal = simulate_bulk(&lossless, 1, payload)?.0.measure(DEFAULT_SKIP, stall)?;

    writeln!(
        out,
        "### 3b. Loss: bulk download of {payload} B at {kbps} kbit/s, `--rtt-ms {rtt_ms} --loss-pct {loss_pct}`\n"
    )?;
    writeln!(
        out,
        "Model = `netem::link::Link` driven directly: full {MSS} B segments back to back, only the last with \
         nothing behind it. \"Same seed\" replays the seed the proxy derived for this connection.\n"
    )?;
    writeln!(
        out,
        "| quantity | measured (proxy) | model, same seed | model, {RUNS} seeds p5 / p50 / p95 | model, no loss |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|")?;
    writeln!(
        out,
        "| window s | {:.4} | {:.4} | {:.3} / {:.3} / {:.3} | {:.4} |",
        m.window_s,
        replay_window,
        pctl(&windows, 0.05),
        pctl(&windows, 0.5),
        pctl(&windows, 0.95),
        ideal.window_s
    )?;
    writeln!(
        out,
        "| goodput kbit/s | {:.1} | {:.1} | | {:.1} |",
        m.goodput_kbps, replay.goodput_kbps, ideal.goodput_kbps
    )?;
    writeln!(
        out,
        "| stalls (arrival gaps > {} ms) | {} | {} | mean {:.2} | {} |",
        stall.as_millis(),
        m.stalls,
        replay.stalls,
        stalls as f64 / RUNS as f64,
        ideal.stalls
    )?;
    writeln!(
        out,
        "| retransmissions | {retrans} (proxy log) | {replay_retrans} | mean {:.2} | 0 |",
        model_retrans as f64 / RUNS as f64
    )?;
    let vs_replay = pct_err(m.window_s, replay_window);
    writeln!(
        out,
        "\nMeasured window vs the same-seed model: {vs_replay:+.3} % ({}, target ±1 %); vs the {RUNS}-seed median: {:+.2} %.\n",
        verdict(vs_replay.abs() <= 1.0),
        pct_err(m.window_s, pctl(&windows, 0.5))
    )?;
    Ok(())
}
