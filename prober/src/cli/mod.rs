//! The `prober` command line: one module per subcommand.

pub mod link_args;
pub mod load;
pub mod once;
pub mod profiles;
pub mod proxy;
pub mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Savanna Pulse prober: replays East African user journeys over honest 2G/3G/4G links.
#[derive(Debug, Parser)]
#[command(name = "prober", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Logging options shared by every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log filter, e.g. `info`, `debug`, `netem=debug,info`.
    #[arg(long, global = true, env = "PROBER_LOG", default_value = "info")]
    pub log: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Load(Box<load::LoadArgs>),
    Once(once::OnceArgs),
    Profiles(profiles::ProfilesArgs),
    Proxy(proxy::ProxyArgs),
    Run(run::RunArgs),
}

impl LogArgs {
    /// Installs the global log subscriber (stderr, so tables on stdout stay clean).
    pub fn init(&self) {
        let filter = tracing_subscriber::EnvFilter::try_new(&self.log).unwrap_or_else(|e| {
            eprintln!("warning: --log `{}` is not a valid filter ({e}); using `info`", self.log);
            tracing_subscriber::EnvFilter::new("info")
        });
        use std::io::IsTerminal;
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init();
    }
}

/// Runs one subcommand and maps the outcome to an exit code: 0 ok, 2 bad input, 1 anything else.
pub fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Load(args) => load::main(*args),
        Command::Once(args) => runtime().and_then(|rt| rt.block_on(once::run(args))),
        Command::Profiles(args) => profiles::run(args).map(|()| true),
        Command::Proxy(args) => runtime().and_then(|rt| rt.block_on(proxy::run(args))).map(|()| true),
        Command::Run(args) => runtime().and_then(|rt| rt.block_on(run::run(args))),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}

/// Parses logging options and runs the command.
pub fn main(cli: Cli) -> ExitCode {
    cli.log.init();
    run(cli.command)
}

/// A mistake in what the user gave us (a flag, a file): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The multi-threaded runtime every long-running subcommand uses.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}
