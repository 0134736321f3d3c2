//! Dialling USSD and reading SMS through a GSM/LTE modem's AT port (docs/protocols/modem.md).
//!
//! - `line.rs`: one response line, classified (pure);
//! - `codec.rs`: GSM 7-bit, UCS2 and the data coding schemes (pure);

pub mod codec;
pub mod line;
