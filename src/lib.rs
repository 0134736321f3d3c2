//! `savanna-pulse`: the umbrella package. Its library holds what the demo and the whole-fleet
//! tests share: [`fleet`] (sandbox, aggregator and edge probers in one process, on loopback, on a
//! simulated clock) and [`http`] (a tiny loopback JSON client).

pub mod fleet;
pub mod http;
