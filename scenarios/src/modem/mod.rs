//! Dialling USSD and reading SMS through a GSM/LTE modem's AT port (docs/protocols/modem.md).
//!
//! - `line.rs`: one response line, classified (pure);
//! - `codec.rs`: GSM 7-bit, UCS2 and the data coding schemes (pure);
//! - `port.rs`: the AT port, a serial device or `tcp://host:port`;
//! - `engine.rs`: [`Modem`]: init, commands with deadlines, unsolicited results, USSD sessions;
//! - `health.rs`: the radio, read into `report::RadioHealth`;
//! - `pool.rs`: one journey per modem at a time, process-wide, and [`pool::radio_health`].

pub mod codec;
pub mod engine;
pub mod health;
pub mod line;
pub mod pool;
pub mod port;
#[cfg(test)]
mod tests;

pub use engine::{AtExchange, CusdEvent, Modem, ModemError, ModemSpec};
