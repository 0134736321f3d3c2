//! # aggregator — the central service
//!
//! Probers at the edge send interval reports (see the `report` crate); the aggregator
//! authenticates them, stores them durably (acknowledging only after the commit), rolls them up
//! per minute and per hour, and answers queries and status. Layout:
//!
//! - [`config`]: `aggregator.yaml` (listen, TLS, data dir, probers and their token references).
//! - [`ingest`]: `POST /api/v1/reports`: auth, limits, decoding, identity, clock offset.
//! - [`store`]: SQLite (WAL, synchronous=FULL): idempotency, rollups, compaction, retention, disk
//!   bound, and the read API the SLO engine uses ([`store::Store::counts`],
//!   [`store::Store::histogram`], [`store::Store::minutes`]).
//! - [`api`]: the JSON API's replies as types (Serialize + Deserialize): the wire, defined once.
//! - [`client`]: the one HTTP client for JSON APIs (hyper-util, rustls): [`client::HttpClient`]
//!   and the typed [`client::AggregatorClient`]; Alertmanager and OTLP pushes use it too.
//! - [`web`]: the query API, prober status, the status page (askama templates), metrics, health.
//! - [`relay`]: the Daraja STK callback relay.
//! - [`server`]: listener (rustls, HTTP/1.1 + HTTP/2), maintenance, graceful shutdown.
//! - [`slo`]: SLO files, the burn-rate engine, the `/metrics` exporter, Sloth-compatible rules, and
//!   the service that runs them inside the aggregator.
//! - [`radio`]: the edges' modems from their heartbeats, and each site's radio state (up,
//!   degraded, down), kept apart from the SLOs.
//! - [`alerts`]: SLO alerts, and the non-SLO `SavannaSiteRadioDown`, to Alertmanager (API v2).
//! - [`otlp`]: the same SLO gauges, journey histograms and run counters pushed to an
//!   OpenTelemetry collector (OTLP/HTTP, protobuf) every `otlp.interval`, when configured.

pub mod alerts;
pub mod api;
pub mod client;
pub mod clock;
pub mod config;
pub mod ingest;
pub mod metrics;
pub mod otlp;
pub mod radio;
pub mod relay;
pub mod remote_write;
pub mod server;
pub mod slo;
pub mod store;
pub mod web;

pub use config::Config;
pub use server::Server;
pub use store::{Selection, Store};
