//! # prober — the Savanna Pulse edge agent and CLI
//!
//! Today it hosts the network side of the CLI: `prober profiles` (the bundled link profiles) and
//! `prober proxy` (a shaping TCP proxy built on [`netem`]). The journey player, schedules, reports
//! and load runs arrive with later issues and live beside [`cli`].
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod agent;
pub mod cli;
pub mod load;
