//! Test support shared by every crate's tests (a dev-dependency only; never published).
//!
//! - [`dir`]: temporary directories that are removed when dropped, also when a test panics;
//! - [`gate`]: the one rule for a tool a test needs: skipped with a printed reason locally, a
//!   failure under `CI=true` (`.ci/run` installs every tool);
//! - [`prometheus`] and [`alertmanager`]: the launchers of Debian's `promtool`, `prometheus` and
//!   `prometheus-alertmanager`, on loopback, with their state in a temporary directory;
//! - [`reports`]: builders of `report::Report` values and wire bodies;
//! - [`config`]: typed edge (prober) and aggregator configs, written as YAML through serde.
//!
//! No test that uses it leaves a file in the system temp directory when it passes.

pub mod alertmanager;
pub mod config;
pub mod dir;
pub mod gate;
mod http;
pub mod prometheus;
pub mod reports;

pub use self::{
    dir::{TempDir, temp_dir},
    gate::{in_ci, require_tool, require_tool_with, skip},
};
