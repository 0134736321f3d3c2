//! The SIM's message storage and the TS 27.005 commands on it (filled in below).

use super::{at::Arg, at::AtError};

/// Messages on the SIM (`"SM"`) and the SMS settings of the AT interface.
#[derive(Debug, Default)]
pub struct SimStorage {
    pdu_mode: bool,
    cnmi_mt: u8,
}

impl SimStorage {
    pub fn reset_settings(&mut self) {
        self.pdu_mode = false;
        self.cnmi_mt = 0;
    }

    pub fn command(&mut self, name: &str, arg: Arg<'_>) -> Result<Vec<String>, AtError> {
        let _ = (name, arg);
        Ok(Vec::new())
    }

    pub fn indication(&self, index: usize) -> Option<String> {
        (self.cnmi_mt > 0).then(|| format!("+CMTI: \"SM\",{index}"))
    }
}
