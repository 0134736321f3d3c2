//! `savanna-pulse`: the umbrella package. Its library holds what the demo and the whole-fleet
//! tests share: [`fleet`] (sandbox, aggregator and edge probers in one process, on loopback, on a
//! simulated clock). HTTP goes through `aggregator::client` (typed replies from `aggregator::api`).

pub mod fleet;
