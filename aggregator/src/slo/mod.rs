//! SLOs and burn rates (docs/slo.md).
//!
//! - [`spec`]: SLO files, validation (tiers that can never fire are refused, low traffic warned
//!   about, with the numbers), the bundled marketplace SLOs.
//! - [`windows`]: the evaluation windows and the multi-window, multi-burn-rate tables (30 d, 28 d).
//! - [`ledger`]: exact per-minute event counts of one scope, by event time.
//! - [`engine`]: windows, burn rates, budgets, time to exhaustion, alert transitions, driven by
//!   the caller's clock.

pub mod engine;
pub mod export;
pub mod ledger;
pub mod rules;
pub mod service;
pub mod spec;
pub mod windows;

pub use engine::{ALL_REGIONS, Engine, Firing, Scope, ScopeStatus, SeriesEvent, Transition, WindowStatus};
pub use spec::{Slo, Warning};
pub use windows::{Period, Severity, Window};
