//! `prober load`: a load run of a journey (`JOURNEY.yaml`) or of one URL (`--url`).

use std::{collections::BTreeMap, path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use clap::Args;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use rustls::pki_types::{CertificateDer, pem::PemObject};
use scenarios::PlayOptions;

use super::{UsageError, link_args::LinkArgs};
use crate::load::{
    self, ReportTo, Setup,
    journey::{JourneyWorker, series_names},
    output::{self, IntervalLog, Summary},
    plan::{Admission, LATE_AFTER, Plan, Shard, parse_duration, parse_stages},
    raw::{RawWorker, Target},
    runner::Model,
    stats::Latency,
    thresholds::Threshold,
};

/// Run load: a journey (every iteration is the whole journey, each step recorded) or one URL (one
/// request per iteration, for raw throughput).
///
/// Models: open (--rate N, or --stages for a k6-style ramp) on absolute intended start times, or
/// closed (--vus N; --rate max = as fast as --max-in-flight connections allow). Latency is measured
/// from each iteration's intended start (no coordinated omission) and from the actual send.
///
/// Exit code: 0 when every --threshold holds, 1 when one fails, 2 for bad input.
///
///   prober load scenarios/checkout-mpesa.yaml --rate 50 --duration 5m --profile ea-3g \
///       --threshold 'checkout:p95<2s' --threshold 'errors<1%'
///   prober load --url http://127.0.0.1:8080/ --rate max --duration 10s --hgrm out.hgrm
///   prober load --url http://127.0.0.1:8080/ --stages 30s:1000,1m:1000,30s:0 --shard 0/4
#[derive(Debug, Clone, Args)]
#[command(verbatim_doc_comment)]
pub struct LoadArgs {
    /// The journey to run (omit with --url).
    #[arg(value_name = "JOURNEY.yaml", required_unless_present = "url", conflicts_with = "url")]
    pub journey: Option<PathBuf>,

    /// Load one URL instead of a journey.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// HTTP method for --url.
    #[arg(long, short = 'X', default_value = "GET", requires = "url")]
    pub method: String,
    /// Request header for --url (repeatable): -H 'accept: application/json'.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", requires = "url")]
    pub headers: Vec<String>,
    /// Request body for --url.
    #[arg(long, requires = "url")]
    pub body: Option<String>,
    /// HTTP/2 (prior knowledge on http://, ALPN on https://) for --url.
    #[arg(long, requires = "url")]
    pub http2: bool,
    /// A new connection for every request (as a phone would), instead of keep-alive.
    #[arg(long)]
    pub new_connection: bool,
    /// Trust the CA certificates in this PEM file (repeatable), besides the Mozilla roots: for
    /// https targets and the --report-to aggregator signed by a private or test CA.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Vec<PathBuf>,
    /// Per-request time limit for --url (journeys use their own step timeouts).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Arrival rate per second (open model), or `max` (closed model, as fast as possible).
    #[arg(long, short = 'r', conflicts_with_all = ["stages", "vus"])]
    pub rate: Option<String>,
    /// Ramping arrival rate like k6's: DURATION:TARGET,... each stage ramps linearly from the
    /// previous target (the first from --start-rate).
    #[arg(long, value_name = "30s:50,1m:50,30s:0", conflicts_with = "vus")]
    pub stages: Option<String>,
    /// Starting rate for --stages.
    #[arg(long, default_value_t = 0.0, requires = "stages")]
    pub start_rate: f64,
    /// Closed model: N virtual users running iterations back to back.
    #[arg(long)]
    pub vus: Option<usize>,
    /// How long to generate load (with --rate or --vus).
    #[arg(long, short = 'd', value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many iterations (the whole run, every shard together).
    #[arg(long, short = 'n')]
    pub iterations: Option<u64>,
    /// Most iterations in flight at once (workers; in URL mode also connections). Default 1000
    /// for journeys, 64 for URLs.
    #[arg(long, short = 'c', visible_alias = "connections")]
    pub max_in_flight: Option<usize>,
    /// Drop an arrival that could not start within this lag (default: never drop, queue; the
    /// latency from the intended start then shows the wait).
    #[arg(long, value_parser = parse_duration)]
    pub max_lag: Option<Duration>,
    /// Wait this long for iterations still running when the plan ends.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub grace: Duration,
    /// This worker's part of a distributed run: i/N (0-based), e.g. from a Kubernetes Indexed Job.
    #[arg(long, default_value = "0/1")]
    pub shard: Shard,
    /// Runtime threads (default: the CPUs this process may use).
    #[arg(long)]
    pub threads: Option<usize>,

    #[command(flatten)]
    pub link: LinkArgs,
    /// Override a journey variable (repeatable): --set base_url=http://127.0.0.1:7700
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,

    /// Pass/fail criterion (repeatable): 'checkout:p95<2s', 'errors<1%', 'p99<500ms', 'rate>=45'.
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<Threshold>,
    /// Write the summary as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the HdrHistogram percentile distribution (.hgrm) of the iteration latency.
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<PathBuf>,
    /// Write an HdrHistogram interval log (one interval per second). (`--log` is taken: it sets
    /// the log filter for every subcommand.)
    #[arg(long = "hdr-log", value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Stream the run's histograms to this aggregator (base URL), labelled with --run-id.
    #[arg(long, value_name = "URL")]
    pub report_to: Option<String>,
    /// The aggregator token, by reference: env:NAME or file:PATH. The aggregator binds it to
    /// --prober-id and --region (an entry under `probers:` in aggregator.yaml).
    #[arg(long, value_name = "env:NAME", requires = "report_to")]
    pub token: Option<String>,
    /// The identity the reports are sent as; every shard of a run shares it. Give load runs an
    /// identity of their own, never an edge prober's: report sequence numbers of load runs are
    /// derived from the clock and the shard, and would clash with an agent's.
    #[arg(long, value_name = "ID", default_value = "load", requires = "report_to")]
    pub prober_id: String,
    /// Run id (shared by every shard of a distributed run; default: a fresh one).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Region label of the reports (must be the region the aggregator binds --prober-id to).
    #[arg(long, default_value = "load")]
    pub region: String,
    /// Seconds between reports to the aggregator.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub report_every: Duration,
    /// No live progress.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Builds a runtime sized for the run and runs it.
pub fn main(args: LoadArgs) -> anyhow::Result<bool> {
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?
    };
    rt.block_on(run(args, threads))
}

fn usage(m: impl Into<String>) -> anyhow::Error {
    UsageError(m.into()).into()
}

fn model(args: &LoadArgs, workers: usize) -> anyhow::Result<(Model, String, usize)> {
    let rate = args.rate.as_deref().map(|r| r.trim().trim_end_matches("/s").to_ascii_lowercase());
    let closed = |vus: usize, label: String| {
        if args.duration.is_none() && args.iterations.is_none() {
            return Err(usage("a closed-model run needs --duration or --iterations"));
        }
        // Shards split the iteration count; a closed model has no arrival plan to split.
        let iterations = args.iterations.map(|n| {
            let s = args.shard;
            if n <= s.index { 0 } else { (n - s.index).div_ceil(s.count) }
        });
        Ok((Model::Closed { iterations, until: args.duration }, label, vus))
    };
    if let Some(vus) = args.vus {
        if vus == 0 {
            return Err(usage("--vus must be at least 1"));
        }
        return closed(vus, format!("closed {vus} vus"));
    }
    if rate.as_deref() == Some("max") {
        return closed(workers, format!("closed, max rate on {workers} connections"));
    }
    let plan = if let Some(stages) = &args.stages {
        let st = parse_stages(stages).map_err(usage)?;
        Plan::stages(args.start_rate, &st).map_err(|e| usage(format!("--stages: {e}")))?
    } else {
        let Some(rate) = rate else {
            return Err(usage("give --rate N (per second), --rate max, --stages or --vus"));
        };
        let r: f64 = rate
            .parse()
            .ok()
            .filter(|r: &f64| r.is_finite() && *r > 0.0)
            .ok_or_else(|| usage(format!("--rate `{rate}` is not a positive number per second or `max`")))?;
        let duration = match (args.duration, args.iterations) {
            (Some(d), _) => d,
            (None, Some(n)) => Duration::from_secs_f64(n as f64 / r),
            (None, None) => return Err(usage("--rate needs --duration or --iterations")),
        };
        Plan::constant(r, duration).map_err(|e| usage(format!("--rate: {e}")))?
    };
    let plan = match args.iterations {
        Some(n) => plan.limit(n),
        None => plan,
    }
    .shard(args.shard);
    let label = match &args.stages {
        Some(s) => format!("open, stages {s} ({} arrivals)", plan.total()),
        None => format!(
            "open {}/s for {:.1}s ({} arrivals)",
            args.rate.as_deref().unwrap_or("?"),
            plan.duration().as_secs_f64(),
            plan.total()
        ),
    };
    // Arrivals may start up to one second after the plan's end (a timer tick, a busy moment);
    // later ones are dropped.
    let admission =
        Admission { late_after: LATE_AFTER, max_lag: args.max_lag, stop_at: plan.duration() + Duration::from_secs(1) };
    Ok((Model::Open { plan, admission }, label, workers))
}

fn run_id(args: &LoadArgs, seed: u64) -> String {
    args.run_id.clone().unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        format!("load-{:012x}", (t ^ seed.rotate_left(17)) & 0xffff_ffff_ffff)
    })
}

async fn run(args: LoadArgs, threads: usize) -> anyhow::Result<bool> {
    let seed = args.link.seed();
    let run_id = run_id(&args, seed);
    if let Some(r) = &args.run_id {
        report::check_label(r).map_err(|m| usage(format!("--run-id: {m}")))?;
    }
    let extra_roots = ca_roots(&args.ca_file)?;
    let journey = match &args.journey {
        Some(p) => Some(Arc::new(scenarios::load_file(p).map_err(|e| usage(e.to_string()))?)),
        None => None,
    };
    let default_profile = journey.as_ref().and_then(|j| j.profile.clone()).unwrap_or_else(|| "loopback".into());
    let profile = args.link.resolve(Some(&default_profile))?;
    let workers = args.max_in_flight.unwrap_or(if journey.is_some() { 1000 } else { 64 }).max(1);
    let (model, model_label, workers) = model(&args, workers)?;
    let model_for_rate = match &model {
        Model::Open { plan, .. } => Some(plan.clone()),
        Model::Closed { .. } => None,
    };

    let (names, mode, target_label) = match &journey {
        Some(j) => (series_names(j), "journey", j.name.clone()),
        None => {
            let url = args.url.as_deref().unwrap_or_default();
            (vec![format!("{} {url}", args.method.to_ascii_uppercase())], "url", url.to_owned())
        }
    };
    let mut verdict_index = Vec::new();
    for t in &args.thresholds {
        verdict_index.push(t.series_index(&names).map_err(usage)?);
    }
    let log = match &args.log_file {
        Some(p) => Some(
            IntervalLog::create(p, std::time::SystemTime::now(), &names, &format!("{mode} {target_label}"))
                .map_err(|e| usage(format!("--hdr-log {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let report = report_to(&args, &profile.name, &run_id, &extra_roots)?;
    let setup =
        Setup { names: names.clone(), model, shards: threads, grace: args.grace, progress: !args.quiet, log, report };
    if !args.quiet {
        eprintln!("prober load: {mode} {target_label}, {model_label}, profile {}, run {run_id}", profile.name);
    }

    let mut throttled = None;
    let outcome = match &journey {
        Some(j) => {
            let mut opts = PlayOptions::new(profile.clone(), seed);
            opts.overrides = overrides(&args.set, j)?;
            opts.extra_roots = extra_roots;
            if let (Some(plan), Some(path)) = (&model_for_rate, &args.journey) {
                journey_notices(path, j, &opts.overrides, plan);
            }
            let pool = JourneyWorker::pool(j.clone(), opts, workers);
            throttled = pool.first().map(JourneyWorker::throttled);
            load::execute(pool, setup).await?
        }
        None => {
            let target = Arc::new(target(&args, profile.clone(), seed, &extra_roots).await?);
            let pool = (0..workers).map(|i| RawWorker::new(target.clone(), i)).collect();
            load::execute::<RawWorker>(pool, setup).await?
        }
    };

    let elapsed = outcome.elapsed;
    let thresholds = args
        .thresholds
        .iter()
        .zip(&verdict_index)
        .map(|(t, &i)| t.evaluate(&outcome.totals.series[i], &outcome.counters, elapsed.as_secs_f64()))
        .collect::<Vec<_>>();
    let summary = Summary {
        run_id,
        mode,
        target: target_label,
        profile: profile.name.clone(),
        model: model_label,
        shard: args.shard.to_string(),
        elapsed_s: elapsed.as_secs_f64(),
        arrivals: outcome.counters,
        unfinished: outcome.unfinished,
        series: output::series_summaries(
            &names,
            if journey.is_some() { "journey" } else { "request" },
            &outcome.totals,
            elapsed,
        ),
        send_lateness_ms: (!outcome.totals.lateness.is_empty()).then(|| Latency::of(&outcome.totals.lateness)),
        achieved_rate: achieved_rate(model_for_rate.as_ref(), outcome.counters.started, outcome.last_start),
        thresholds,
        throttled: throttled.and_then(|t| t.summary()),
    };
    write_outputs(&args, &summary, &outcome)?;
    Ok(summary.thresholds.iter().all(|v| v.passed))
}

/// The summary table on stdout, then `--json` and `--hgrm`.
fn write_outputs(args: &LoadArgs, summary: &Summary, outcome: &load::Outcome) -> anyhow::Result<()> {
    print!("{}", output::render(summary));
    if let Some(p) = &args.json {
        output::write_json(p, summary).map_err(|e| anyhow::anyhow!("--json {}: {e}", p.display()))?;
    }
    if let Some(p) = &args.hgrm {
        output::write_hgrm(p, &outcome.totals).map_err(|e| anyhow::anyhow!("--hgrm {}: {e}", p.display()))?;
    }
    if outcome.interrupted {
        eprintln!("interrupted: the summary covers the run until the stop signal (SIGINT or SIGTERM)");
    }
    Ok(())
}

/// `--report-to`, `--token`, `--prober-id`, `--region`: where interval reports of the run go.
fn report_to(
    args: &LoadArgs,
    profile: &str,
    run_id: &str,
    extra_roots: &[CertificateDer<'static>],
) -> anyhow::Result<Option<ReportTo>> {
    let Some(u) = &args.report_to else { return Ok(None) };
    let url: Uri = u.parse().map_err(|_| usage(format!("--report-to `{u}` is not a URL")))?;
    let token_ref = args.token.as_deref().ok_or_else(|| usage("--report-to needs --token env:NAME"))?;
    let token = conf::SecretRef::parse(token_ref)
        .and_then(|r| r.resolve(std::path::Path::new(".")))
        .map_err(|e| usage(format!("--token: {e}")))?;
    for (flag, v) in [("--prober-id", &args.prober_id), ("--region", &args.region)] {
        report::check_label(v).map_err(|m| usage(format!("{flag}: {m}")))?;
    }
    Ok(Some(ReportTo {
        url,
        token,
        extra_roots: extra_roots.to_vec(),
        prober: args.prober_id.clone(),
        shard: args.shard,
        region: args.region.clone(),
        profile: profile.to_owned(),
        run_id: run_id.to_owned(),
        every: args.report_every.max(Duration::from_secs(1)),
    }))
}

/// `--set KEY=VALUE`: each names one of the journey's variables.
fn overrides(set: &[String], j: &scenarios::Journey) -> anyhow::Result<BTreeMap<String, String>> {
    let mut overrides = BTreeMap::new();
    for kv in set {
        let (k, v) = kv.split_once('=').ok_or_else(|| usage(format!("--set `{kv}` is not KEY=VALUE")))?;
        if !j.variables.contains_key(k) {
            let known: Vec<&str> = j.variables.keys().map(String::as_str).collect();
            return Err(usage(format!("--set {k}: the journey has no variable `{k}` (it has: {})", known.join(", "))));
        }
        overrides.insert(k.to_owned(), v.to_owned());
    }
    Ok(overrides)
}

/// Arrivals per second between the first and the last start of an open-model run.
fn achieved_rate(plan: Option<&Plan>, started: u64, last_start: Duration) -> Option<f64> {
    let plan = plan?;
    if started <= 1 || last_start.is_zero() {
        return None;
    }
    // Arrival 0 is due at 0: (started − 1) intervals between the first and last start.
    let first = plan.at(0).unwrap_or_default();
    Some((started - 1) as f64 / (last_start - first.min(last_start)).as_secs_f64().max(1e-9))
}

/// Says, before the run, where the plan would exceed a politeness cap of the journey.
fn journey_notices(path: &std::path::Path, j: &scenarios::Journey, overrides: &BTreeMap<String, String>, plan: &Plan) {
    let Ok(src) = conf::Source::read(path) else { return };
    for n in load::journey::plan_notices(&src, j, overrides, plan) {
        eprintln!("prober load: {n}");
    }
}

/// The certificates of every `--ca-file`.
fn ca_roots(files: &[PathBuf]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let mut roots = Vec::new();
    for p in files {
        let certs = CertificateDer::pem_file_iter(p)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| usage(format!("--ca-file {}: cannot read PEM certificates: {e}", p.display())))?;
        if certs.is_empty() {
            return Err(usage(format!(
                "--ca-file {}: holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
                p.display()
            )));
        }
        roots.extend(certs);
    }
    Ok(roots)
}

async fn target(
    args: &LoadArgs,
    profile: netem::Profile,
    seed: u64,
    extra_roots: &[CertificateDer<'static>],
) -> anyhow::Result<Target> {
    let raw = args.url.as_deref().unwrap_or_default();
    let url = url::Url::parse(raw).map_err(|e| usage(format!("--url `{raw}`: {e}")))?;
    let https = match url.scheme() {
        "http" => false,
        "https" => true,
        s => return Err(usage(format!("--url `{raw}`: scheme `{s}` (only http and https)"))),
    };
    // `[::1]` in the Host header; `::1` to resolve and as the TLS server name.
    let host = url.host_str().ok_or_else(|| usage(format!("--url `{raw}` has no host")))?.to_owned();
    let name = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = url.port_or_known_default().unwrap_or(if https { 443 } else { 80 });
    let method = Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| usage(format!("--method `{}` is not an HTTP method", args.method)))?;
    let mut path = url.path().to_owned();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let uri: Uri = if args.http2 { url.as_str().parse() } else { path.parse() }
        .map_err(|_| usage(format!("--url `{raw}` is not a valid request target")))?;
    let mut headers = HeaderMap::new();
    if !args.http2 {
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        headers.insert(header::HOST, HeaderValue::from_str(&authority).map_err(|_| usage("bad host"))?);
    }
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static(concat!("savanna-pulse-load/", env!("CARGO_PKG_VERSION"))),
    );
    for h in &args.headers {
        let (k, v) = h.split_once(':').ok_or_else(|| usage(format!("--header `{h}` is not `NAME: VALUE`")))?;
        let name =
            HeaderName::from_bytes(k.trim().as_bytes()).map_err(|_| usage(format!("--header `{h}`: bad name")))?;
        let value = HeaderValue::from_str(v.trim()).map_err(|_| usage(format!("--header `{h}`: bad value")))?;
        headers.insert(name, value);
    }
    let body = args.body.clone().map(Bytes::from).unwrap_or_default();
    let passthrough = profile.is_passthrough();
    let addr = if passthrough {
        tokio::net::lookup_host((name.as_str(), port))
            .await
            .map_err(|e| usage(format!("--url `{raw}`: cannot resolve {host}: {e}")))?
            .next()
    } else {
        None
    };
    let alpn: &[u8] = if args.http2 { b"h2" } else { b"http/1.1" };
    let tls = https.then(|| scenarios::http::tls_config_with_alpn(extra_roots, &[alpn]));
    Ok(Target {
        https,
        host: name,
        port,
        addr,
        method,
        uri,
        headers,
        body,
        http2: args.http2,
        new_connection: args.new_connection,
        profile: (!passthrough).then_some(profile),
        seed,
        tls,
        timeout: args.timeout,
    })
}
