use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = prober::cli::Cli::parse();
    prober::cli::main(cli)
}
