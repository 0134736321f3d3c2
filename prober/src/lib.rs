//! # prober — the Savanna Pulse edge agent and CLI
//!
//! - [`cli`]: one module per subcommand — `once` (one journey), `run` (the edge agent), `load`
//!   (load runs), `proxy` (a shaping TCP proxy built on [`netem`]), `profiles` (the link profiles).
//! - [`agent`]: the edge agent behind `prober run`: schedules, per-interval HDR histograms, the
//!   journal and durable outbox, the sender, `/metrics` and health endpoints.
//! - [`load`]: `prober load`: arrival plans, the runner, corrected and uncorrected latency
//!   statistics, thresholds, outputs and `--report-to`.
//!
//! The reports the agent sends are described in `docs/report-format.md`.

pub mod agent;
pub mod cli;
pub mod load;
