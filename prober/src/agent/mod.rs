//! # The edge agent (`prober run`)
//!
//! Runs journeys on schedules, records each interval's HDR histograms, and streams reports to
//! one or more aggregators (destinations) through a durable outbox. Data flows one way:
//!
//! ```text
//! schedule ──runs──▶ player ──Trace──▶ journal (fsync) ──▶ recorder ──interval──▶ outbox (fsync) ──▶ sender ──▶ aggregator
//!                                                                                 ▲                 │
//!                                                                                 └──── ack/reject ─┘
//! ```
//!
//! - [`config`]: the YAML file, errors with file:line:field;
//! - [`schedule`]: absolute deadlines, offsets, concurrency cap, overlap skips (pure maths + shell);
//! - [`recorder`]: traces → per-interval series → [`report::Report`];
//! - [`journal`]: each finished run on disk before it counts, so `kill -9` loses no finished run;
//! - [`outbox`]: durable, ordered, bounded; seq never reused; one copy of each report and a
//!   cursor per destination;
//! - [`sender`]: one per destination: HTTP/2 + TLS, retries with full jitter, ack/reject handling;
//! - [`metrics`], [`endpoints`]: `/metrics`, `/healthz`, `/readyz`.
//!
//! [`run`] wires them and handles [`Control`] messages (SIGHUP → reload, SIGTERM → stop).

pub mod clock;
pub mod config;
pub mod endpoints;
mod fnv;
pub mod journal;
pub mod metrics;
pub mod outbox;
pub mod radios;
pub mod recorder;
pub mod schedule;
pub mod sender;

use std::{
    future::Future,
    io,
    net::SocketAddr,
    path::PathBuf,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use parking_lot::Mutex;
use report::Heartbeat;
use scenarios::{PlayOptions, Trace, rails::Runtime as PaymentRuntime};
use tokio::{
    net::TcpListener,
    sync::{Notify, mpsc, watch},
    time::{Instant, MissedTickBehavior, interval_at, sleep_until},
};

use self::{
    clock::{Clock, next_boundary},
    config::{ConfigError, EdgeConfig},
    journal::{Journal, Recovery},
    metrics::{JourneyLabels, Metrics, ReasonLabels, RunLabels, SkipLabels},
    outbox::Outbox,
    recorder::{Interval, Recorder, RunRecord},
    schedule::{Job, Runner, Scheduler, Sink, Skip},
    sender::{Client, Sender},
};

/// What the agent can be told while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Re-read the config file's journeys (SIGHUP).
    Reload,
    /// Finish in-flight runs, flush the interval, exit (SIGTERM, Ctrl-C).
    Stop,
}

/// Knobs that are not in the config file.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub clock: Clock,
    /// Longest wait for in-flight runs at shutdown.
    pub drain_limit: Duration,
    /// How long to keep trying to deliver the outbox at shutdown.
    pub flush_limit: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { clock: Clock::system(), drain_limit: Duration::from_secs(30), flush_limit: Duration::from_secs(5) }
    }
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("outbox {dir}: {source} (the directory must be writable by the prober)")]
    Outbox { dir: String, source: std::io::Error },
    #[error("cannot listen on {addr} for /metrics: {source} (change `listen:` in the config)")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("connections.{0}")]
    Limits(#[from] httpserve::Error),
}

/// Runs file I/O off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task panicked")
}

/// The scheduled jobs of a config: explicit offsets as given, the others spread.
pub fn jobs(cfg: &EdgeConfig) -> Vec<Job> {
    let unset: Vec<Duration> = cfg.journeys.iter().filter(|j| j.offset.is_none()).map(|j| j.interval).collect();
    let mut spread = schedule::spread_offsets(&unset, cfg.seed).into_iter();
    cfg.journeys
        .iter()
        .map(|j| Job {
            name: j.name.clone(),
            journey: j.journey.clone(),
            profile: j.profile.clone(),
            interval: j.interval,
            timeout: j.timeout,
            offset: j.offset.unwrap_or_else(|| spread.next().expect("one spread offset per unset offset")),
        })
        .collect()
}

/// Plays journeys for real, sharing one payment runtime (tokens, MSISDN locks, callbacks).
struct PlayRunner {
    payments: Arc<PaymentRuntime>,
}

impl Runner for PlayRunner {
    fn run(&self, job: &Job, seed: u64) -> Pin<Box<dyn Future<Output = Trace> + Send + 'static>> {
        let journey = job.journey.clone();
        let mut opts = PlayOptions::new(job.profile.clone(), seed);
        opts.payments = self.payments.clone();
        Box::pin(async move { scenarios::play(&journey, &opts).await })
    }
}

/// Blocking file I/O from a runtime thread that must not return before it is done: hands the
/// thread's other tasks to another worker meanwhile (on a multi-thread runtime).
fn in_place<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The interval being recorded and its journal, under one lock: a finished run is journaled and
/// counted in the same interval, and a close moves both to the next interval at once.
struct Recording {
    recorder: Recorder,
    /// The seq the current interval's report will get (its journal's).
    seq: u64,
    journal: Option<Journal>,
    dir: PathBuf,
}

impl Recording {
    /// Opens the first interval (after [`journal::recover`]), its report to be `seq`.
    fn open(dir: PathBuf, region: &str, seq: u64, start_ms: i64) -> io::Result<Recording> {
        let journal = Journal::create(&dir, seq, start_ms)?;
        Ok(Recording { recorder: Recorder::new(region, start_ms), seq, journal: Some(journal), dir })
    }

    /// Journals a finished run (fsync), then counts it. The run counts even when the journal
    /// cannot take it; the error says so.
    fn record(&mut self, r: &RunRecord) -> Option<io::Error> {
        let err = self.journal.as_mut().and_then(|j| j.append(r).err());
        self.recorder.apply(r);
        err
    }

    /// Closes the interval at `end_ms` and opens the next one's journal. Returns the interval and
    /// its seq; the closed journal stays on disk until its report is stored.
    fn close(&mut self, end_ms: i64) -> (Interval, u64) {
        let iv = self.recorder.close(end_ms);
        let seq = self.seq;
        self.seq += 1;
        self.journal = match Journal::create(&self.dir, self.seq, iv.end_ms) {
            Ok(j) => Some(j),
            Err(e) => {
                tracing::error!(
                    "cannot open the journal of report seq {}: {e}; its runs are kept in memory only until it is written",
                    self.seq
                );
                None
            }
        };
        (iv, seq)
    }

    /// At a clean stop, after the last close: deletes the new interval's journal if no run came.
    fn discard_if_empty(&mut self) {
        if self.journal.as_ref().is_some_and(|j| j.runs() == 0)
            && let Some(Err(e)) = self.journal.take().map(Journal::discard)
        {
            tracing::warn!("cannot delete an empty journal: {e}");
        }
    }
}

/// Feeds the recorder (through the journal) and the metrics.
struct AgentSink {
    recording: Arc<Mutex<Recording>>,
    metrics: Arc<Metrics>,
    clock: Clock,
}

impl Sink for AgentSink {
    fn started(&self, _job: &Job) {
        self.recording.lock().recorder.run_started();
        self.metrics.runs_in_flight.inc();
    }

    fn finished(&self, job: &Job, t: &Trace) {
        let rec = RunRecord::of(t, self.clock.wall_ms());
        if let Some(e) = in_place(|| self.recording.lock().record(&rec)) {
            self.metrics.journal_write_errors.inc();
            tracing::warn!(
                "{}: cannot journal a finished run ({e}); a crash before its report would lose it",
                job.name
            );
        }
        let m = &self.metrics;
        m.runs_in_flight.dec();
        m.runs
            .get_or_create(&RunLabels {
                journey: job.name.clone(),
                profile: job.profile.name.clone(),
                outcome: t.outcome.as_str().into(),
            })
            .inc();
        m.run_duration
            .get_or_create(&JourneyLabels { journey: job.name.clone(), profile: job.profile.name.clone() })
            .observe(t.duration.as_secs_f64());
        // Failure messages come masked from the player (secrets and phone numbers).
        if t.outcome.is_good() {
            tracing::debug!("{}", scenarios::player::summary(t));
        } else {
            tracing::info!("{} [{}]", scenarios::player::summary(t), job.profile.name);
        }
    }

    fn skipped(&self, job: &Job, why: Skip) {
        self.metrics
            .runs_skipped
            .get_or_create(&SkipLabels {
                journey: job.name.clone(),
                profile: job.profile.name.clone(),
                reason: why.as_str().into(),
            })
            .inc();
        tracing::warn!("{} [{}]: run skipped ({})", job.name, job.profile.name, why.as_str());
    }
}

struct Agent {
    cfg: EdgeConfig,
    started: Instant,
    metrics: Arc<Metrics>,
    outbox: Arc<Outbox>,
    recording: Arc<Mutex<Recording>>,
    ready: Arc<AtomicBool>,
    /// One per destination's sender.
    wake: Bell,
    /// Reports the outbox could not store (a full or failing disk), oldest first, retried at every
    /// boundary. Their journals stay on disk meanwhile, so a crash still loses none of their runs.
    unwritten: Arc<Mutex<Vec<Unwritten>>>,
    /// The modems' latest readings (empty without modems).
    radios: Arc<radios::Latest>,
}

/// An encoded report and its seq, waiting for the outbox to accept writes again.
type Unwritten = (u64, Vec<u8>);

/// A [`Notify`] per sender, rung together (each keeps its permit until its sender waits).
#[derive(Clone, Default)]
struct Bell(Vec<Arc<Notify>>);

impl Bell {
    fn add(&mut self) -> Arc<Notify> {
        let n = Arc::new(Notify::new());
        self.0.push(n.clone());
        n
    }

    fn ring(&self) {
        for n in &self.0 {
            n.notify_one();
        }
    }
}

/// Sets every destination's backlog gauges, and the outbox's bytes on disk, from the files.
fn refresh_backlog(ob: &Outbox, metrics: &Metrics) -> io::Result<()> {
    for dest in 0..ob.destinations().len() {
        let st = ob.stats_for(dest)?;
        metrics.backlog(dest, st.reports, st.bytes, st.oldest);
    }
    metrics.outbox_bytes.set(ob.stats()?.bytes as i64);
    Ok(())
}

impl Agent {
    /// Closes the interval at `end_ms` into a report in the outbox.
    async fn close_interval(&self, end_ms: i64) {
        let rec = self.recording.clone();
        let (iv, seq) = blocking(move || rec.lock().close(end_ms)).await;
        let (start, end, runs) = (iv.start_ms, iv.end_ms, iv.runs_finished);
        let hb = Heartbeat {
            journeys: self.cfg.journeys.len() as u32,
            uptime_s: self.started.elapsed().as_secs(),
            version: env!("CARGO_PKG_VERSION").into(),
            interval_ms: Some(announced_interval(&self.cfg)),
            radios: self.radios.get(),
            ..Default::default()
        };
        let (id, region) = (self.cfg.prober.id.clone(), self.cfg.prober.region.clone());
        let (ob, unwritten, metrics) = (self.outbox.clone(), self.unwritten.clone(), self.metrics.clone());
        let result = blocking(move || {
            let mut unwritten = unwritten.lock();
            let backlog = ob.stats().map_or(0, |s| s.reports);
            let series = iv.series.len();
            let hb = Heartbeat {
                outbox_backlog: backlog + unwritten.len() as u64 + 1,
                outbox_dropped_total: ob.dropped_most(),
                ..hb
            };
            unwritten.push((seq, report::encode(&iv.into_report(&id, &region, seq, hb))));
            let late = unwritten.len() - 1;
            let dir = ob.dir().to_path_buf();
            // Oldest first; the first failure leaves it and the later ones for the next boundary.
            while let Some((s, bytes)) = unwritten.first() {
                ob.store_at(*s, bytes.clone(), |s| {
                    if let Err(e) = journal::remove(&dir, s) {
                        tracing::warn!(
                            "report seq {s} is stored but its journal is not deleted ({e}); the next start does it"
                        );
                    }
                    Ok(())
                })?;
                unwritten.remove(0);
            }
            let dropped = ob.enforce_limits(SystemTime::now())?;
            for (dest, n) in dropped.iter().enumerate().filter(|(_, n)| **n > 0) {
                metrics.outbox_dropped.get_or_create(&metrics.dest_labels(dest)).inc_by(*n);
                tracing::warn!(
                    "outbox over its bounds: dropped the {n} oldest report(s) before `{}` had them",
                    ob.destinations()[dest]
                );
            }
            refresh_backlog(&ob, &metrics)?;
            Ok::<_, std::io::Error>((series, late))
        })
        .await;
        match result {
            Ok((series, late)) => {
                self.ready.store(true, Ordering::Release);
                self.metrics.reports_created.inc();
                if late > 0 {
                    tracing::info!("{late} earlier report(s) that could not be stored are now in the outbox");
                }
                tracing::info!("report seq {seq}: {runs} runs, {series} series, interval {}", span(start, end));
                self.wake.ring();
            }
            Err(e) => {
                self.ready.store(false, Ordering::Release);
                self.metrics.outbox_write_errors.inc();
                let waiting = self.unwritten.lock().len();
                tracing::error!(
                    "cannot write report seq {seq} (interval {}, {runs} runs) to the outbox: {e}; {waiting} report(s) \
                     wait in memory and are retried at every boundary (their runs are journaled, so a restart \
                     reports them too)",
                    span(start, end)
                );
            }
        }
    }

    /// Re-reads the config; applies its journeys, or keeps the running ones if it is bad.
    async fn reload(&mut self, scheduler: &mut Scheduler) {
        let path = self.cfg.source.clone();
        match blocking(move || config::load(&path)).await {
            Ok(new) => {
                let restart_only = [
                    ("prober", new.prober != self.cfg.prober),
                    ("aggregators", new.destinations != self.cfg.destinations),
                    ("outbox", new.outbox != self.cfg.outbox),
                    ("listen", new.listen != self.cfg.listen),
                    ("reporting_interval", new.reporting_interval != self.cfg.reporting_interval),
                    ("concurrency", new.concurrency != self.cfg.concurrency),
                    ("seed", new.seed != self.cfg.seed),
                    ("connections", new.connections != self.cfg.connections),
                ];
                for (field, changed) in restart_only {
                    if changed {
                        tracing::warn!("reload: `{field}` changed; it takes effect at the next restart");
                    }
                }
                scheduler.start(jobs(&new));
                self.metrics.journeys.set(new.journeys.len() as i64);
                tracing::info!("reload: {} journeys scheduled", new.journeys.len());
                self.cfg.journeys = new.journeys;
                self.cfg.profile = new.profile;
                self.metrics.config_reloads.get_or_create(&ReasonLabels { reason: "ok".into() }).inc();
            }
            Err(e) => {
                tracing::error!("reload refused, the running journeys stay: {e}");
                self.metrics.config_reloads.get_or_create(&ReasonLabels { reason: "invalid".into() }).inc();
            }
        }
    }
}

/// `07:27:45.000–07:27:46.000 UTC`, for logs.
/// The reporting interval the heartbeat announces (ms): the aggregator judges this prober late by
/// it, not by one report's length (the first interval after a start, and a report rebuilt from
/// the journal, are shorter). The config keeps it within 100 ms … 1 h, what a report may announce.
fn announced_interval(cfg: &EdgeConfig) -> u64 {
    cfg.reporting_interval.as_millis() as u64
}

fn span(start_ms: i64, end_ms: i64) -> String {
    let t = |ms| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map_or_else(|| ms.to_string(), |d| d.format("%H:%M:%S%.3f").to_string())
    };
    format!("{}–{} UTC", t(start_ms), t(end_ms))
}

/// Turns the journals of runs a previous process finished but did not report into reports.
async fn recover_journals(cfg: &EdgeConfig, outbox: &Arc<Outbox>, metrics: &Metrics) -> Result<(), AgentError> {
    let hb = Heartbeat {
        journeys: cfg.journeys.len() as u32,
        version: env!("CARGO_PKG_VERSION").into(),
        outbox_dropped_total: outbox.dropped_most(),
        interval_ms: Some(announced_interval(cfg)),
        ..Default::default()
    };
    let (ob, id, region) = (outbox.clone(), cfg.prober.id.clone(), cfg.prober.region.clone());
    let recovered = blocking(move || journal::recover(&ob, &id, &region, &hb))
        .await
        .map_err(|source| AgentError::Outbox { dir: cfg.outbox.dir.display().to_string(), source })?;
    for r in recovered {
        match r {
            Recovery::Rebuilt { seq, runs, start_ms, end_ms, torn } => {
                metrics.journal_recovered_runs.inc_by(runs);
                metrics.reports_created.inc();
                tracing::info!(
                    "report seq {seq}: {runs} runs recovered from the journal of interval {}{}",
                    span(start_ms, end_ms),
                    if torn { " (a torn last record was ignored)" } else { "" }
                );
            }
            Recovery::AlreadyReported { seq } => {
                tracing::info!("journal of report seq {seq} deleted: the report was already written");
            }
            Recovery::Empty { .. } => {}
        }
    }
    Ok(())
}

/// Waits up to `limit` for the sender to empty the outbox; the reports still in it.
async fn wait_for_delivery(outbox: &Arc<Outbox>, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    let mut poll = interval_at(Instant::now(), Duration::from_millis(50));
    poll.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        poll.tick().await;
        let ob = outbox.clone();
        let left = blocking(move || ob.stats().map(|s| s.reports).unwrap_or(u64::MAX)).await;
        if left == 0 || Instant::now() >= deadline {
            return left;
        }
    }
}

/// Reads the radios now and then once per report interval, each read bounded
/// ([`radios::READ_LIMIT`]), until aborted.
async fn poll_radios(
    src: Arc<dyn radios::RadioSource>,
    latest: Arc<radios::Latest>,
    metrics: Arc<Metrics>,
    clock: Clock,
    every: Duration,
) {
    // `every` is the reporting interval by the agent's clock; the timer runs on tokio's (real
    // time), so a scaled clock reads as often per report as an unscaled one.
    let real = every.div_f64(clock.speed()).max(Duration::from_millis(500));
    let mut tick = tokio::time::interval(real);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut rs = radios::read_bounded(src.as_ref(), || clock.wall_ms()).await;
        // The engine stamps readings by the system clock; reports speak the agent's (the same
        // in production, scaled in the demo).
        let offset = clock.wall_ms() - chrono::Utc::now().timestamp_millis();
        for r in rs.iter_mut().filter(|r| r.error != "no_answer") {
            r.read_at_ms += offset;
        }
        latest.set(rs, &metrics);
    }
}

/// The senders, one per destination, and the bells that wake and flush them.
struct Senders {
    wake: Bell,
    flush: Bell,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// `name (endpoint), …`, for the start-up log.
    to: String,
}

fn start_senders(
    cfg: &EdgeConfig,
    outbox: &Arc<Outbox>,
    metrics: &Arc<Metrics>,
    clock: Clock,
    stop: &watch::Receiver<bool>,
) -> Senders {
    let (mut wake, mut flush) = (Bell::default(), Bell::default());
    let (mut to, mut tasks) = (Vec::new(), Vec::new());
    for (dest, d) in cfg.destinations.iter().enumerate() {
        let sender = Sender {
            outbox: outbox.clone(),
            dest,
            client: Client::new(&d.url, d.token.clone(), &d.extra_roots),
            metrics: metrics.clone(),
            clock,
            wake: wake.add(),
            flush: flush.add(),
            seed: cfg.seed,
        };
        to.push(format!("{} ({})", d.name, sender.client.endpoint()));
        tasks.push(tokio::spawn(sender.run(stop.clone())));
    }
    Senders { wake, flush, tasks, to: to.join(", ") }
}

/// Runs the agent until [`Control::Stop`] (or the control channel closes). On stop: no new
/// runs, in-flight runs finish (bounded by `drain_limit`), the current interval is closed into
/// the outbox, and the sender gets `flush_limit` to deliver what is waiting.
pub async fn run(cfg: EdgeConfig, opts: Options, control: mpsc::Receiver<Control>) -> Result<(), AgentError> {
    let radios = radios::of_journeys(&cfg.journeys);
    run_with_radios(cfg, opts, radios, control).await
}

/// As [`run`], reading `radios` once per report interval into each report's heartbeat and the
/// `prober_radio_*` gauges (none: an edge without modems).
pub async fn run_with_radios(
    cfg: EdgeConfig,
    opts: Options,
    radios: Option<Arc<dyn radios::RadioSource>>,
    mut control: mpsc::Receiver<Control>,
) -> Result<(), AgentError> {
    let clock = opts.clock;
    let outbox_cfg = cfg.outbox.clone();
    let names: Vec<String> = cfg.destinations.iter().map(|d| d.name.clone()).collect();
    let metrics = Arc::new(Metrics::new());
    metrics.add_destinations(&names);
    let outbox = blocking(move || Outbox::open(&outbox_cfg, &names))
        .await
        .map_err(|source| AgentError::Outbox { dir: cfg.outbox.dir.display().to_string(), source })?;
    let outbox = Arc::new(outbox);
    for dest in 0..outbox.destinations().len() {
        metrics.outbox_dropped.get_or_create(&metrics.dest_labels(dest)).inc_by(outbox.dropped_total(dest));
    }

    // Runs a previous process finished but did not report (kill -9, power loss) become their
    // reports before the first interval opens.
    recover_journals(&cfg, &outbox, &metrics).await?;
    let (dir, seq, now) = (outbox.dir().to_path_buf(), outbox.next_seq(), clock.wall_ms());
    let region = cfg.prober.region.clone();
    let recording = blocking(move || Recording::open(dir, &region, seq, now))
        .await
        .map_err(|source| AgentError::Outbox { dir: cfg.outbox.dir.display().to_string(), source })?;
    let recording = Arc::new(Mutex::new(recording));

    let listener =
        TcpListener::bind(cfg.listen).await.map_err(|source| AgentError::Listen { addr: cfg.listen, source })?;
    let listen = listener.local_addr().unwrap_or(cfg.listen);

    let listener =
        httpserve::Listener::new(listener, endpoints::LISTENER, cfg.connections.clone(), metrics.listeners.clone())?;

    let sink = Arc::new(AgentSink { recording: recording.clone(), metrics: metrics.clone(), clock });
    let payments = PaymentRuntime::with_listener_limits(cfg.connections.clone(), metrics.listeners.clone());
    let runner = Arc::new(PlayRunner { payments });
    let mut scheduler = Scheduler::new(cfg.concurrency, runner, sink, clock, cfg.seed);
    scheduler.start(jobs(&cfg));
    metrics.journeys.set(cfg.journeys.len() as i64);

    let ready = Arc::new(AtomicBool::new(true));
    let server = tokio::spawn(endpoints::serve(listener, metrics.clone(), ready.clone()));

    let (stop_tx, stop_rx) = watch::channel(false);
    let Senders { wake, flush, tasks: sender_tasks, to } = start_senders(&cfg, &outbox, &metrics, clock, &stop_rx);
    tracing::info!(
        "prober {} ({}) running {} journeys, reporting every {} ms to {}; outbox {} (next seq {}); /metrics on http://{listen}",
        cfg.prober.id,
        cfg.prober.region,
        cfg.journeys.len(),
        cfg.reporting_interval.as_millis(),
        to,
        outbox.dir().display(),
        outbox.next_seq(),
    );
    let (ob, m) = (outbox.clone(), metrics.clone());
    if let Err(e) = blocking(move || refresh_backlog(&ob, &m)).await {
        tracing::warn!("outbox {}: cannot read the backlog: {e}", outbox.dir().display());
    }
    wake.ring(); // replay what a previous run left in the outbox

    let latest = Arc::new(radios::Latest::default());
    let every = cfg.reporting_interval;
    let poller = radios.map(|src| tokio::spawn(poll_radios(src, latest.clone(), metrics.clone(), clock, every)));
    let every = cfg.reporting_interval.as_millis() as i64;
    let (unwritten, radios) = (Default::default(), latest);
    let mut agent = Agent { cfg, started: Instant::now(), metrics, outbox, recording, ready, wake, unwritten, radios };
    let mut last_end = agent.recording.lock().recorder.start_ms();
    loop {
        let boundary = next_boundary(clock.wall_ms().max(last_end), every);
        tokio::select! {
            () = sleep_until(clock.instant_at(boundary)) => {
                agent.close_interval(boundary).await;
                last_end = boundary;
            }
            c = control.recv() => match c {
                Some(Control::Reload) => agent.reload(&mut scheduler).await,
                Some(Control::Stop) | None => break,
            },
        }
    }

    tracing::info!("stopping: no new runs; waiting for runs in flight (at most {} s)", opts.drain_limit.as_secs());
    if !scheduler.shutdown(opts.drain_limit).await {
        tracing::warn!("some runs did not finish in time; they are not in the last report");
    }
    agent.close_interval(clock.wall_ms()).await;
    let rec = agent.recording.clone();
    blocking(move || rec.lock().discard_if_empty()).await;
    flush.ring();
    let left = wait_for_delivery(&agent.outbox, opts.flush_limit).await;
    let _ = stop_tx.send(true);
    for t in sender_tasks {
        t.abort();
    }
    server.abort();
    if let Some(p) = poller {
        p.abort();
    }
    let unwritten = agent.unwritten.lock().len();
    if unwritten > 0 {
        tracing::warn!(
            "stopped with {unwritten} report(s) the outbox could not store; their journals report them at the next start"
        );
    } else if left == 0 {
        tracing::info!("stopped: every report delivered");
    } else {
        tracing::warn!("stopped with {left} report(s) in the outbox; they are sent at the next start");
    }
    Ok(())
}
