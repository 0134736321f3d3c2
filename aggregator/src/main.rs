//! `aggregator serve --config aggregator.yaml`.

use std::{path::PathBuf, sync::Arc};

use aggregator::{Config, Server, clock::SystemClock};
use anyhow::Context;
use clap::{Parser, Subcommand};

/// The Savanna Pulse aggregator: receives probers' interval reports, stores them durably, and
/// answers queries about latency and availability per journey, step, region and profile.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve ingest, queries, prober status, the STK relay and metrics on one listener.
    ///
    /// Routes: POST /api/v1/reports (probers, `Authorization: Bearer <token>`),
    /// GET /api/v1/query?journey=&region=&from=&to=&group_by=, GET /api/v1/runs/{run_id},
    /// GET /api/v1/probers, POST /stk/callback, GET /stk/{CheckoutRequestID}, GET /metrics,
    /// GET /healthz, GET /readyz. SIGTERM or Ctrl-C stops accepting, finishes in-flight requests
    /// and closes the store; every acknowledged report is already on disk.
    #[command(after_help = "Example config: aggregator/examples/aggregator.yaml\n\
        Tokens are references (env:NAME or file:PATH), never inline.\n\
        Plain HTTP only on a loopback address; elsewhere give tls: {cert_file, key_file}.")]
    Serve {
        /// The YAML config file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Load and check a config file (tokens resolved), then exit.
    CheckConfig {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Print Sloth-compatible Prometheus recording and alert rules for the SLOs.
    ///
    /// The rules read the aggregator's own counters (`synthetic_journey_runs_total`,
    /// `synthetic_journey_duration_seconds`), so Prometheus computes the same burn rates and fires
    /// the same alerts as the aggregator. Without --config or --slos: the bundled SLOs.
    /// Check the output with `promtool check rules`.
    Rules {
        /// Take the SLOs from this aggregator config (its `slo.file`).
        #[arg(long, short, value_name = "FILE", conflicts_with = "slos")]
        config: Option<PathBuf>,
        /// Take the SLOs from this SLO file.
        #[arg(long, value_name = "FILE")]
        slos: Option<PathBuf>,
    },
}

fn main() {
    // Errors are for people: one line with file, line and field, no backtrace.
    if let Err(e) = run() {
        eprintln!("aggregator: {e:#}");
        std::process::exit(2);
    }
}

/// Colour the log only when stderr is a terminal and `NO_COLOR` is unset (<https://no-color.org>).
fn colour_logs() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,hyper=warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour is for people at a terminal: a log file or journald gets plain text.
        .with_ansi(colour_logs())
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => {
            let c = Config::load(&config)?;
            println!(
                "{}: ok ({} probers, listen {}, {})",
                config.display(),
                c.probers.len(),
                c.listen,
                if c.tls.is_some() { "TLS" } else { "plain HTTP on loopback" }
            );
            Ok(())
        }
        Command::Rules { config, slos } => {
            let slos = match (config, slos) {
                (Some(c), _) => Config::load(&c)?.slo.slos,
                (None, Some(f)) => aggregator::slo::spec::load_file(&f)?,
                (None, None) => aggregator::slo::spec::bundled(),
            };
            for slo in &slos {
                for w in aggregator::slo::spec::check(slo, None) {
                    eprintln!("warning: slo `{}`: {}", w.slo, w.message);
                }
            }
            print!("{}", aggregator::slo::rules::rules_yaml(&slos));
            Ok(())
        }
        Command::Serve { config } => {
            let config = Config::load(&config)?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(serve(config))
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let server = Server::start(&config, Arc::new(SystemClock)).await.context("starting the aggregator")?;
    // Scripts and tests read this line to learn the bound address.
    println!("aggregator listening on {}", server.base_url());
    tracing::info!(url = %server.base_url(), probers = config.probers.len(), data_dir = %config.data_dir.display(), "listening");
    let signal = conf::shutdown::signal().await;
    tracing::info!(%signal, "shutting down");
    server.shutdown().await.context("closing the store")?;
    tracing::info!("stopped");
    Ok(())
}
