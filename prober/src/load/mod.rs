//! `prober load`: on-demand load runs, open or closed model, with honest latency.
//!
//! - [`plan`]: the pure arrival plan (constant rate, ramping stages, shards) and admission
//!   (`scheduled == started + dropped`), with a runtime-free simulation for tests.
//! - [`runner`]: a release thread lets each arrival go at its absolute intended start; workers run
//!   iterations (open model), or back to back (closed model).
//! - [`raw`] (`--url`) and [`journey`] (`JOURNEY.yaml`): what one iteration does.
//! - [`stats`]: HDR histograms per series and outcome, corrected and uncorrected; memory bounded
//!   by histograms, never by the number of requests.
//! - [`thresholds`], [`output`] (summary, `--json`, `--hgrm`, `--log`), [`progress`].
//!
//! [`execute`] ties them together: it runs the workers, drains the histogram shards once a second
//! (progress, interval log, reports to the aggregator) and returns the totals.

pub mod journey;
pub mod output;
pub mod plan;
pub mod progress;
pub mod raw;
pub mod report_to;
pub mod runner;
pub mod stats;
pub mod thresholds;

use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use tokio::time::{Instant, MissedTickBehavior, interval_at};

use self::{
    output::IntervalLog,
    plan::Counters,
    progress::{Progress, Snapshot},
    runner::{Iteration, Live, Model},
    stats::{Latency, Shards, Stats},
};

/// Where `--report-to` sends the run's histograms.
pub struct ReportTo {
    pub url: http::Uri,
    pub token: scenarios::journey::Secret,
    /// CA certificates to trust besides the Mozilla roots (`--ca-file`).
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The identity the aggregator binds the token to; shared by every shard of the run.
    pub prober: String,
    /// This worker's shard: reports of different shards get different sequence numbers.
    pub shard: plan::Shard,
    pub region: String,
    pub profile: String,
    pub run_id: String,
    pub every: Duration,
}

/// Everything [`execute`] needs besides the workers.
pub struct Setup {
    /// Series names: the iteration, then the steps.
    pub names: Vec<String>,
    pub model: Model,
    /// Histogram shards (one per runtime thread).
    pub shards: usize,
    /// How long to wait for iterations still running when the plan ends.
    pub grace: Duration,
    pub progress: bool,
    pub log: Option<IntervalLog>,
    pub report: Option<ReportTo>,
}

/// What a run produced.
pub struct Outcome {
    pub totals: Stats,
    pub counters: Counters,
    pub elapsed: Duration,
    pub unfinished: u64,
    pub interrupted: bool,
    /// Open model: the last arrival's actual start, from the run's start.
    pub last_start: Duration,
}

/// Length of one collection interval (progress, `--log`).
pub const INTERVAL: Duration = Duration::from_secs(1);

pub async fn execute<I: Iteration>(workers: Vec<I>, mut setup: Setup) -> anyhow::Result<Outcome> {
    let model = Arc::new(setup.model.clone());
    let live = Arc::new(Live::default());
    let shards = Arc::new(Shards::new(setup.shards, setup.names.len()));
    let expected = match &setup.model {
        Model::Open { plan, .. } => Some(plan.duration()),
        Model::Closed { until, .. } => *until,
    };
    let progress = Progress::new(setup.progress, expected);
    let start = Instant::now();
    let mut run = tokio::spawn(runner::run(workers, model.clone(), live.clone(), shards.clone(), start));

    let mut totals = Stats::new(setup.names.len());
    let mut interval = Stats::new(setup.names.len());
    let mut unreported = Stats::new(setup.names.len());
    let mut reporter = setup.report.take().map(report_to::Reporter::start);
    let mut last_report = start;
    let mut ticks = interval_at(start + INTERVAL, INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_tick = start;
    let mut stop_signal = std::pin::pin!(conf::shutdown::signal());
    let mut interrupted = false;
    let mut stop_deadline: Option<Instant> = None;
    let mut finished = false;

    loop {
        tokio::select! {
            r = &mut run, if !finished => { r?; finished = true; }
            _ = ticks.tick() => {}
            _ = &mut stop_signal, if !interrupted => {
                interrupted = true;
                live.stop();
                stop_deadline = Some(Instant::now() + setup.grace);
            }
        }
        let now = Instant::now();
        shards.drain_into(&mut interval);
        if let Some(log) = &mut setup.log {
            log.write(&interval, last_tick - start, now - last_tick)?;
        }
        if let Some(r) = &mut reporter {
            unreported.add(&interval);
            if now - last_report >= r.every() {
                r.send(&setup.names, &mut unreported);
                last_report = now;
            }
        }
        totals.drain_from(&mut interval);
        last_tick = now;
        let elapsed = now - start;
        let m = totals.series[0].merged();
        let completed = live.completed.load(Relaxed);
        progress.update(&Snapshot {
            elapsed,
            completed,
            rate: completed as f64 / elapsed.as_secs_f64().max(1e-9),
            in_flight: live.in_flight.load(Relaxed),
            errors: live.errors.load(Relaxed),
            dropped: live.dropped.load(Relaxed),
            p50_ms: Latency::quantile_ms(&m.corrected, 0.5),
            p95_ms: Latency::quantile_ms(&m.corrected, 0.95),
            p99_ms: Latency::quantile_ms(&m.corrected, 0.99),
        });
        if finished {
            break;
        }
        // The plan is over: give the iterations still running the grace period, then abandon them.
        let planned_end = match &setup.model {
            Model::Open { admission, .. } => Some(start + admission.stop_at),
            Model::Closed { until, .. } => until.map(|u| start + u),
        };
        if stop_deadline.is_none() && planned_end.is_some_and(|e| now >= e) {
            live.stop();
            stop_deadline = Some(now + setup.grace);
        }
        if stop_deadline.is_some_and(|d| now >= d) {
            run.abort();
            let _ = (&mut run).await;
            break;
        }
    }
    progress.finish();
    shards.drain_into(&mut interval);
    if let Some(mut r) = reporter {
        unreported.add(&interval);
        r.send(&setup.names, &mut unreported);
        r.close().await;
    }
    if let Some(log) = &mut setup.log
        && !interval.series.iter().all(|s| s.is_empty())
    {
        log.write(&interval, last_tick - start, Instant::now() - last_tick)?;
    }
    totals.drain_from(&mut interval);
    Ok(Outcome {
        totals,
        counters: live.finish(&model),
        elapsed: start.elapsed(),
        unfinished: live.in_flight.load(Relaxed),
        interrupted,
        last_start: Duration::from_micros(live.last_start_us.load(Relaxed)),
    })
}
