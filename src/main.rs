//! `savanna-pulse`: the umbrella binary. Every `prober` subcommand, plus `demo`.

mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Savanna Pulse: synthetic monitoring for East African payment and USSD journeys.
#[derive(Debug, Parser)]
#[command(name = "savanna-pulse", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    #[command(flatten)]
    log: prober::cli::LogArgs,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    Demo(demo::DemoArgs),
    #[command(flatten)]
    Prober(prober::cli::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        // The demo logs to a file in its data directory: the terminal belongs to its table.
        Cmd::Demo(args) => match prober::cli::runtime().and_then(|rt| rt.block_on(demo::run(args, &cli.log.log))) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Cmd::Prober(cmd) => {
            cli.log.init();
            prober::cli::run(cmd)
        }
    }
}
