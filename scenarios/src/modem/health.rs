//! The modem's radio, read into [`report::RadioHealth`] (TS 27.007 §8.5 `+CSQ`, §8.69 `+CESQ`,
//! §7.2 `+CREG`, §10.1.22 `+CEREG`, §7.3 `+COPS`, §8.3 `+CPIN`), in the vocabularies `report`
//! documents ([`report::REGISTRATIONS`], [`report::SIM_STATES`]).

use report::RadioHealth;

use super::{
    Modem, ModemError,
    engine::COMMAND_TIMEOUT,
    line::{self, Line},
};

impl Modem {
    /// Reads signal, registration, operator and SIM; a command that fails leaves its field
    /// unknown, and the first failure is the reading's `error`.
    pub async fn radio_health(&mut self, label: &str) -> RadioHealth {
        let mut h = RadioHealth {
            modem: label.to_owned(),
            registration: "unknown".into(),
            sim: "unknown".into(),
            read_at_ms: chrono::Utc::now().timestamp_millis(),
            ..RadioHealth::default()
        };
        let mut first_error = None;
        let mut note = |e: ModemError| {
            first_error.get_or_insert_with(|| error_word(&e));
        };
        match self.sim_state().await {
            Ok(s) => h.sim = sim_state(&s).into(),
            Err(e) => {
                h.sim = "error".into();
                note(e);
            }
        }
        let mut lines = Vec::new();
        for cmd in ["AT+CSQ", "AT+CREG?", "AT+CEREG?", "AT+COPS=3,0", "AT+COPS?"] {
            match self.command(cmd, COMMAND_TIMEOUT).await {
                Ok(l) => lines.extend(l),
                // +CEREG is LTE-only and optional; a 2G/3G modem refuses it.
                Err(ModemError::Error { .. } | ModemError::Cme { .. }) if cmd == "AT+CEREG?" => {}
                Err(e) => note(e),
            }
        }
        // +CESQ is optional too (TS 27.007 §8.69); RSRP/RSCP are better than +CSQ's rssi.
        if let Ok(l) = self.command("AT+CESQ", COMMAND_TIMEOUT).await {
            lines.extend(l);
        }
        read_lines(&mut h, &lines);
        h.error = first_error.unwrap_or_default();
        h
    }
}

/// Fills `h` from the answers' lines.
pub fn read_lines(h: &mut RadioHealth, lines: &[String]) {
    let (mut csq, mut cesq, mut regs) = (None, None, Vec::new());
    for l in lines {
        match line::parse(l) {
            Line::Csq { rssi, .. } => csq = csq_dbm(rssi),
            Line::Cesq(f) => cesq = cesq_dbm(f),
            Line::Reg { stat, .. } => regs.push(registration(stat)),
            Line::Cops { oper, act, .. } => {
                h.operator = oper.unwrap_or_default().to_owned();
                h.access = act.map(access).unwrap_or_default().to_owned();
            }
            _ => {}
        }
    }
    h.signal_dbm = cesq.or(csq);
    // The better of the circuit-switched and EPS registrations.
    let rank = |r: &&&str| {
        ["home", "roaming", "searching", "denied", "not_registered", "unknown"].iter().position(|x| x == *r)
    };
    if let Some(best) = regs.iter().min_by_key(rank) {
        (*best).clone_into(&mut h.registration);
    }
}

/// `+CSQ` rssi: 0 is -113 dBm or less, 31 is -51 or more, 2 dB a step; 99 unknown.
pub fn csq_dbm(rssi: u8) -> Option<i32> {
    (rssi <= 31).then(|| -113 + 2 * i32::from(rssi))
}

/// `+CESQ`: RSRP (0..=97, -140 dBm a step of 1 from 1) where known, else RSCP (0..=96, -120 from 1).
pub fn cesq_dbm(f: [u8; 6]) -> Option<i32> {
    let (rscp, rsrp) = (f[2], f[5]);
    if rsrp <= 97 {
        Some(-141 + i32::from(rsrp))
    } else if rscp <= 96 {
        Some(-121 + i32::from(rscp))
    } else {
        None
    }
}

/// `<stat>` of `+CREG`/`+CEREG` (6/7: SMS only, 9/10: CSFB not preferred, still registered).
pub fn registration(stat: u8) -> &'static str {
    match stat {
        1 | 6 | 9 => "home",
        5 | 7 | 10 => "roaming",
        2 => "searching",
        3 => "denied",
        0 | 8 => "not_registered",
        _ => "unknown",
    }
}

/// `+COPS` `<AcT>` as a label.
pub fn access(act: u8) -> &'static str {
    match act {
        0 | 1 | 3 | 8 => "gsm",
        2 | 4..=6 => "utran",
        7 | 9 => "eutran",
        10 => "eutran_5gcn",
        11 | 12 => "nr",
        13 => "eutran_nr",
        _ => "",
    }
}

/// `+CPIN` code in [`report::SIM_STATES`].
pub fn sim_state(code: &str) -> &'static str {
    match code {
        "READY" => "ready",
        "SIM PIN" | "SIM PIN2" | "PH-SIM PIN" => "pin_required",
        "SIM PUK" | "SIM PUK2" => "puk_required",
        "" => "unknown",
        _ => "error",
    }
}

/// The reading's `error`: a short word or the modem's error text.
fn error_word(e: &ModemError) -> String {
    match e {
        ModemError::Timeout { .. } => "no_answer".into(),
        ModemError::Port { .. } => "port_error".into(),
        ModemError::Cme { text, .. } | ModemError::Cms { text, .. } => text.clone(),
        ModemError::Busy { .. } => "busy".into(),
        ModemError::Error { .. } => "error".into(),
        ModemError::Sim(_) => "sim_error".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_map_to_the_report_vocabularies() {
        assert_eq!(csq_dbm(0), Some(-113));
        assert_eq!(csq_dbm(31), Some(-51));
        assert_eq!(csq_dbm(99), None);
        assert_eq!(cesq_dbm([99, 99, 255, 255, 20, 45]), Some(-96));
        assert_eq!(cesq_dbm([99, 99, 40, 30, 255, 255]), Some(-81));
        assert_eq!(cesq_dbm([99, 99, 255, 255, 255, 255]), None);
        let mut h = RadioHealth { registration: "unknown".into(), ..RadioHealth::default() };
        let lines: Vec<String> =
            ["+CSQ: 17,99", "+CREG: 0,0", "+CEREG: 0,5", "+COPS: 0,0,\"Safaricom\",7", "+CESQ: 99,99,255,255,20,45"]
                .map(str::to_owned)
                .to_vec();
        read_lines(&mut h, &lines);
        assert_eq!(h.signal_dbm, Some(-96));
        assert_eq!(h.registration, "roaming");
        assert_eq!((h.operator.as_str(), h.access.as_str()), ("Safaricom", "eutran"));
        for s in ["READY", "SIM PIN", "SIM PUK", "", "PH-NET PIN"] {
            assert!(report::SIM_STATES.contains(&sim_state(s)));
        }
        for stat in 0..=11 {
            assert!(report::REGISTRATIONS.contains(&registration(stat)));
        }
    }
}
