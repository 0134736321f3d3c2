//! # conf — how a Savanna Pulse process is configured
//!
//! Every file a person writes (journeys, network profiles, the edge config, the aggregator config,
//! SLOs) is read through [`Source`]: YAML deserialized with serde, and every problem — a typo
//! caught by `deny_unknown_fields`, a wrong type, or a check the loader makes afterwards — reported
//! as one [`Error`] that names the file, line, column and field path:
//!
//! ```text
//! edge.yaml:14:12: journeys[1].every: `90x` is not a duration (write e.g. 250ms, 15s, 2m, 1h30m, 7d)
//! ```
//!
//! Positions come from the YAML parser itself (an index of every node built from its events), so
//! they are right in flow style (`- {id: nbo-1, token: …}`) and for nested fields alike.
//!
//! Values shared by every file have one grammar each, documented once in `docs/configuration.md`:
//! [`Dur`] (durations), [`Size`] (byte sizes), [`SecretRef`] (secrets by reference, resolved into a
//! [`Secret`] that never prints). [`shutdown::signal`] is the one way a process learns it should
//! stop (SIGINT or SIGTERM).
//!
//! ```
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Edge { every: conf::Dur, token: conf::SecretRef }
//!
//! let src = conf::Source::new("edge.yaml", "every: 1m30s\ntoken: env:EDGE_TOKEN\n");
//! let edge: Edge = src.parse().unwrap();
//! assert_eq!(edge.every.get(), std::time::Duration::from_secs(90));
//!
//! // A check made after parsing points at the field the same way.
//! let e = src.error("every", "must be at most 1m");
//! assert_eq!(e.to_string(), "edge.yaml:1:8: every: must be at most 1m");
//! ```

pub mod duration;
mod index;
pub mod secret;
pub mod shutdown;
pub mod size;
mod source;

pub use self::{
    duration::Dur,
    secret::{Secret, SecretRef},
    size::Size,
    source::{Error, Invalid, Source},
};
