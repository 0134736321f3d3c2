//! Dialling USSD and reading SMS through a GSM/LTE modem's AT port (docs/protocols/modem.md).
//!
//! - `line.rs`: one response line, classified (pure);
//! - `codec.rs`: GSM 7-bit, UCS2 and the data coding schemes (pure);
//! - `pdu.rs`: SMS-DELIVER PDUs (PDU mode) decoded, concatenated parts joined (pure);
//! - `port.rs`: the AT port, a serial device or `tcp://host:port`;
//! - `engine.rs`: [`Modem`]: init, commands with deadlines, unsolicited results, USSD sessions;
//! - `health.rs`: the radio, read into `report::RadioHealth`;
//! - `pool.rs`: one journey per modem at a time, process-wide, and [`pool::radio_health`].

pub mod codec;
pub mod engine;
pub mod health;
pub mod line;
pub mod pdu;
pub mod pool;
pub mod port;
#[cfg(test)]
mod tests;

pub use engine::{AtExchange, CusdEvent, Modem, ModemError, ModemSpec};

/// The modems a journey dials through (its `ussd` steps `via: modem`), their ports and PINs
/// rendered from the journey's variables and secrets, each port once: what an edge reads the
/// radio health of. A step whose port needs a value only a run has (an extracted one) is left
/// out: its modem is read when the run dials it.
pub fn modems_of(journey: &crate::Journey) -> Vec<ModemSpec> {
    use crate::steps::{Kind, ussd::Via};
    let scope = crate::journey::template::Scope { vars: journey.variables.clone(), secrets: journey.secrets.clone() };
    let mut out: Vec<ModemSpec> = Vec::new();
    for step in &journey.steps {
        let Kind::Ussd(u) = &step.kind else { continue };
        let (Via::Modem, Some(m)) = (u.via, &u.modem) else { continue };
        let Ok(port) = scope.render(&m.port) else { continue };
        let pin = match m.pin.as_deref().map(|p| scope.render(p)) {
            Some(Ok(p)) => Some(p),
            Some(Err(_)) => continue,
            None => None,
        };
        if !out.iter().any(|s| s.port == port) {
            out.push(ModemSpec { port, baud: m.baud, pin, charset: m.charset });
        }
    }
    out
}
