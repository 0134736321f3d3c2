//! # scenarios — journeys that real users take, and the player that replays them
//!
//! - [`journey`]: the YAML journey format, loading with errors that name file, line and field,
//!   templates and secrets by reference.
//! - [`player`]: runs a journey over a `netem` profile and returns a [`trace::Trace`].
//! - [`steps`]: the step kinds (`http`, `ussd`, `payment` and its older form `mpesa_stk`, `wait`, `sms`).
//! - [`ussd`]: USSD gateway dialects (Africa's Talking, Hubtel, Nalo) and the dialoguss import.
//! - [`rails`]: the payment rails a `payment` step collects through (M-Pesa Kenya, …).
//! - [`outcome`]: the failure taxonomy shared with the aggregator.

pub mod http;
pub mod journey;
pub mod mask;
pub mod modem;
pub mod outcome;
pub mod player;
pub mod polite;
pub mod rails;
pub mod steps;
pub mod trace;
pub mod ussd;

pub use journey::{Journey, load_file};
pub use outcome::{Failure, Outcome};
pub use player::{PlayOptions, play};
pub use trace::Trace;
