//! `prober run`: the edge agent.

use std::path::PathBuf;

use clap::Args;
use tokio::sync::mpsc;

use super::UsageError;
use crate::agent::{self, Control, Options, config};

/// Run the edge agent: replay journeys on schedules, record latency histograms per reporting
/// interval, and stream them to the aggregator through a durable outbox.
///
/// Every journey in the config runs once per `interval`, at a fixed offset inside it (spread
/// evenly with seeded jitter unless `offset:` is set), on its own or the edge's network profile,
/// never more than `concurrency` at once. Each `reporting_interval` (15 s by default, aligned to
/// the clock) becomes one report: an HDR histogram and a count per (journey, step, outcome,
/// region, profile), plus a heartbeat. Reports are written (fsync) to `outbox.dir` before they
/// are sent and removed only when the aggregator acknowledges them, so an aggregator outage or a
/// prober restart loses nothing; they are replayed oldest first.
///
/// Signals: SIGHUP re-reads the config's journeys (a bad file is logged and the running journeys
/// stay); SIGTERM or Ctrl-C stops starting runs, waits for those in flight (at most 30 s),
/// closes the current interval into the outbox, tries to deliver it for a few seconds, and exits 0.
///
/// Endpoints on `listen` (default 127.0.0.1:9464): /metrics (Prometheus), /healthz, /readyz.
///
/// Exit code: 0 after a clean stop, 2 when the config is bad (the error names file, line and
/// field), 1 for anything else.
///
/// Example (see prober/examples/edge.yaml), with `sandbox` and the aggregator running:
///
///   export PROBER_TOKEN=...        # the config says `token: env:PROBER_TOKEN`
///   prober run --config prober/examples/edge.yaml --check
///   prober run --config prober/examples/edge.yaml
///   kill -HUP $(pidof prober)      # after editing the journeys
#[derive(Debug, Clone, Args)]
#[command(verbatim_doc_comment)]
pub struct RunArgs {
    /// The edge config (YAML): identity, aggregator, journeys, outbox.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,

    /// Check the config (and every journey file it lists), print a summary, and exit.
    #[arg(long)]
    pub check: bool,
}

/// Runs the agent until SIGTERM/Ctrl-C.
pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let cfg = config::load(&args.config).map_err(|e| UsageError(e.to_string()))?;
    if args.check {
        println!(
            "{}: prober {} in {}, {} journeys, reporting every {} ms to {}",
            args.config.display(),
            cfg.prober.id,
            cfg.prober.region,
            cfg.journeys.len(),
            cfg.reporting_interval.as_millis(),
            cfg.destinations.iter().map(|d| format!("{} ({})", d.name, d.url)).collect::<Vec<_>>().join(", ")
        );
        for j in agent::jobs(&cfg) {
            println!(
                "  {:<24} every {:>7} ms, offset {:>7} ms, timeout {:>7} ms, profile {}",
                j.name,
                j.interval.as_millis(),
                j.offset.as_millis(),
                j.timeout.as_millis(),
                j.profile.name
            );
        }
        return Ok(true);
    }
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(signals(tx));
    agent::run(cfg, Options::default(), rx).await?;
    Ok(true)
}

/// SIGHUP → reload; SIGTERM / SIGINT → stop (a second one exits at once).
async fn signals(tx: mpsc::Sender<Control>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot install the SIGHUP handler; restart the prober to reload its config");
        return;
    };
    let mut stopping = false;
    loop {
        let c = tokio::select! {
            _ = hup.recv() => Control::Reload,
            _ = conf::shutdown::signal() => Control::Stop,
        };
        if c == Control::Stop {
            if stopping {
                tracing::warn!("second stop signal: exiting now; the outbox keeps what was not sent");
                std::process::exit(130);
            }
            stopping = true;
        }
        if tx.send(c).await.is_err() {
            return;
        }
    }
}
