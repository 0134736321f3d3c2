//! # aggregator — the central service (being built)
//!
//! Ingest, durable store, SLO engine, alerts and exports land here; see the issues.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod slo;
