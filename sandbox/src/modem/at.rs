//! The AT interpreter: a pure state machine from one command line to what the modem writes back.
//! It follows ITU-T V.250 (command line syntax, `E`, `Z`, result codes framed `<CR><LF>…<CR><LF>`)
//! and 3GPP TS 27.007 / 27.005 for the `+` commands; the transport (pty or TCP), echo of typed
//! characters and the timing of delayed answers are the driver's (`driver.rs`).

use std::time::Duration;

use super::{
    Profile, Radio,
    codec::{self, Charset},
    network::{Dial, Network},
    sms::SimStorage,
};
use crate::{faults::Fault, ussd::menu::Screen};

/// What the modem writes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// Bytes to send as they are (already framed).
    Text(String),
    /// Wait this long before what follows (the simulated network).
    Delay(Duration),
}

/// A command's failure, shown per `AT+CMEE` (TS 27.007 §9.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtError {
    /// Plain `ERROR` whatever `+CMEE` says (syntax errors, unknown commands).
    Error,
    /// `+CME ERROR: <n>` (TS 27.007 §9.2).
    Cme(u16),
    /// `+CMS ERROR: <n>` (TS 27.005 §3.2.5), for the SMS commands.
    Cms(u16),
}

/// The verbose text of a CME error number (TS 27.007 §9.2.1).
pub fn cme_text(n: u16) -> &'static str {
    match n {
        0 => "phone failure",
        3 => "operation not allowed",
        4 => "operation not supported",
        10 => "SIM not inserted",
        11 => "SIM PIN required",
        12 => "SIM PUK required",
        13 => "SIM failure",
        14 => "SIM busy",
        16 => "incorrect password",
        21 => "invalid index",
        22 => "not found",
        30 => "no network service",
        31 => "network timeout",
        32 => "network not allowed - emergency calls only",
        50 => "Incorrect parameters",
        _ => "unknown",
    }
}

/// The SIM's state (`+CPIN`, TS 27.007 §8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimState {
    Ready,
    Pin,
    Puk,
    Absent,
}

/// An open USSD session on the network side.
#[derive(Debug, Clone)]
struct Session {
    inputs: Vec<String>,
    /// Network answers so far (for `release_mid_session`).
    answers: u32,
}

/// The settings the interpreter needs from the emulator's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub profile: Profile,
    pub radio: Radio,
    pub sim_pin: String,
    pub sim_puk: String,
    pub sim_present: bool,
    pub msisdn: String,
}

/// The modem: its settings (V.250 and TS 27.007 state), the SIM and the USSD session.
pub struct Modem {
    settings: Settings,
    network: Network,
    pub(crate) sms: SimStorage,
    echo: bool,
    cmee: u8,
    charset: Charset,
    creg_n: u8,
    cereg_n: u8,
    cops_format: u8,
    cusd_presentation: bool,
    sim: SimState,
    pin_attempts: u8,
    /// The `sim_pin` fault has locked the SIM once; it locks again only after it is cleared.
    pin_fault_seen: bool,
    session: Option<Session>,
    /// Network answers in any session so far: the driver restarts the inactivity timer when it moves.
    network_answers: u64,
}

type Result<T> = std::result::Result<T, AtError>;

/// What one command produced: information lines, and events that follow the final result.
#[derive(Default)]
struct Done {
    info: Vec<String>,
    after: Vec<Out>,
}

impl Done {
    fn info(line: impl Into<String>) -> Self {
        Self { info: vec![line.into()], after: Vec::new() }
    }
}

impl Modem {
    pub fn new(settings: Settings, network: Network, sms: SimStorage) -> Self {
        let sim = if settings.sim_present { SimState::Ready } else { SimState::Absent };
        Self {
            settings,
            network,
            sms,
            echo: true,
            cmee: 0,
            charset: Charset::Gsm,
            creg_n: 0,
            cereg_n: 0,
            cops_format: 0,
            cusd_presentation: true,
            sim,
            pin_attempts: 0,
            pin_fault_seen: false,
            session: None,
            network_answers: 0,
        }
    }

    /// How many answers the network has sent (the inactivity timer runs from the latest).
    pub fn network_answers(&self) -> u64 {
        self.network_answers
    }

    /// Whether typed characters are echoed (V.250 `E`).
    pub fn echo(&self) -> bool {
        self.echo
    }

    /// Whether a USSD session is open (the driver runs the network's inactivity timer then).
    pub fn in_session(&self) -> bool {
        self.session.is_some()
    }

    /// The network's inactivity timer ran out: the session ends with `+CUSD: 5`.
    pub fn session_timed_out(&mut self) -> Vec<Out> {
        match self.session.take() {
            Some(_) if self.cusd_presentation => vec![Out::Text(urc("+CUSD: 5"))],
            _ => Vec::new(),
        }
    }

    /// Runs one command line (without its trailing CR). Lines not starting `AT` are ignored, as
    /// V.250 §5.2.1 says.
    pub fn line(&mut self, line: &str, fault: &Fault) -> Vec<Out> {
        let line = line.trim_matches(|c: char| c == ' ' || c == '\n');
        if line.len() < 2 || !line[..2].eq_ignore_ascii_case("AT") {
            return Vec::new();
        }
        self.apply_sim_fault(fault);
        let mut out = Vec::new();
        let mut after = Vec::new();
        let mut before_ok = Vec::new();
        match self.commands(&line[2..], fault) {
            Ok(done) => {
                for info in done.info {
                    out.push(Out::Text(urc(&info)));
                }
                if fault.cusd_before_ok {
                    before_ok = done.after;
                } else {
                    after = done.after;
                }
                out.extend(before_ok);
                out.push(Out::Text(urc("OK")));
                out.extend(after);
            }
            Err(e) => out.push(Out::Text(urc(&self.error_text(e)))),
        }
        out
    }

    fn error_text(&self, e: AtError) -> String {
        match (e, self.cmee) {
            (AtError::Error, _) | (_, 0) => "ERROR".to_owned(),
            (AtError::Cme(n), 1) => format!("+CME ERROR: {n}"),
            (AtError::Cme(n), _) => format!("+CME ERROR: {}", cme_text(n)),
            (AtError::Cms(n), _) => format!("+CMS ERROR: {n}"),
        }
    }

    fn apply_sim_fault(&mut self, fault: &Fault) {
        if fault.sim_pin && !self.pin_fault_seen {
            self.pin_fault_seen = true;
            if self.sim == SimState::Ready {
                self.sim = SimState::Pin;
                self.session = None;
            }
        } else if !fault.sim_pin {
            self.pin_fault_seen = false;
        }
    }

    /// The commands of one line: basic ones (`E0`, `Z`, `I`…) then extended ones separated by `;`.
    fn commands(&mut self, rest: &str, fault: &Fault) -> Result<Done> {
        let mut done = Done::default();
        let (basic, extended) = match rest.find('+') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        self.basic(basic, &mut done)?;
        for cmd in split_outside_quotes(extended, ';').into_iter().filter(|c| !c.trim().is_empty()) {
            let d = self.extended(cmd.trim(), fault)?;
            done.info.extend(d.info);
            done.after.extend(d.after);
        }
        Ok(done)
    }

    fn basic(&mut self, s: &str, done: &mut Done) -> Result<()> {
        let mut chars = s.trim_end_matches(';').chars().peekable();
        while let Some(c) = chars.next() {
            let mut number = String::new();
            let amp = c == '&';
            let c = if amp { chars.next().ok_or(AtError::Error)? } else { c };
            while let Some(d) = chars.next_if(|d| d.is_ascii_digit()) {
                number.push(d);
            }
            let n: u32 = if number.is_empty() { 0 } else { number.parse().map_err(|_| AtError::Error)? };
            match (amp, c.to_ascii_uppercase()) {
                (false, 'E') if n <= 1 => self.echo = n == 1,
                (false, 'Z') | (true, 'F') => self.reset(),
                (false, 'I') => done.info.extend(self.identity()),
                (false, 'V' | 'Q' | 'X') | (true, 'C' | 'D' | 'K' | 'W') => {}
                (false, ' ') => {}
                _ => return Err(AtError::Error),
            }
        }
        Ok(())
    }

    /// `ATZ`: back to the power-on settings (the SIM and the network are not touched).
    fn reset(&mut self) {
        self.echo = true;
        self.cmee = 0;
        self.charset = Charset::Gsm;
        self.creg_n = 0;
        self.cereg_n = 0;
        self.cops_format = 0;
        self.cusd_presentation = true;
        self.sms.reset_settings();
    }

    fn identity(&self) -> Vec<String> {
        let p = self.settings.profile;
        vec![p.manufacturer().to_owned(), p.model().to_owned(), format!("Revision: {}", p.revision())]
    }

    fn extended(&mut self, cmd: &str, fault: &Fault) -> Result<Done> {
        let upper = cmd.to_ascii_uppercase();
        let (name, arg) = split_command(&upper, cmd);
        match name {
            "+CGMI" | "+GMI" => Ok(Done::info(self.settings.profile.manufacturer())),
            "+CGMM" | "+GMM" => Ok(Done::info(self.settings.profile.model())),
            "+CGMR" | "+GMR" => Ok(Done::info(self.settings.profile.revision())),
            "+CGSN" | "+GSN" => Ok(Done::info("867698040123456")),
            "+CMEE" => self.cmee(arg),
            "+CSCS" => self.cscs(arg),
            "+CPIN" => self.cpin(arg),
            "+CSQ" => Ok(Done::info(self.csq(fault))),
            "+CESQ" => Ok(Done::info(self.cesq(fault))),
            "+CREG" => self.creg(arg, fault, false),
            "+CEREG" => self.creg(arg, fault, true),
            "+COPS" => self.cops(arg, fault),
            "+CUSD" => self.cusd(arg, fault),
            "+CFUN" => match arg {
                Arg::Query => Ok(Done::info("+CFUN: 1")),
                Arg::Test => Ok(Done::info("+CFUN: (0,1,4),(0,1)")),
                _ => Ok(Done::default()),
            },
            // Call and SMS-sending settings a client sets at start; accepted, nothing to do here.
            "+CLIP" | "+CRC" | "+CVHU" | "+CSMP" | "+CLIR" => Ok(Done::default()),
            "+CSCA" => match arg {
                Arg::Query => Ok(Done::info(format!("+CSCA: \"{}\",145", super::sms::SMSC))),
                _ => Ok(Done::default()),
            },
            "+CNUM" => {
                self.sim_ready()?;
                Ok(Done::info(format!("+CNUM: \"\",\"{}\",145", self.settings.msisdn)))
            }
            "+CIMI" => {
                self.sim_ready()?;
                Ok(Done::info(format!("{}0000000100", self.settings.radio.numeric)))
            }
            "+CMGF" | "+CNMI" | "+CPMS" | "+CMGR" | "+CMGL" | "+CMGD" | "+CSMS" | "+CSDH" => {
                // TS 27.005 §3.2.5: 310 SIM not inserted, 311 SIM PIN required, 316 SIM PUK required.
                self.sim_ready().map_err(|e| match e {
                    AtError::Cme(12) => AtError::Cms(316),
                    AtError::Cme(n) => AtError::Cms(n + 300),
                    e => e,
                })?;
                let info = self.sms.command(name, arg, self.charset)?;
                Ok(Done { info, after: Vec::new() })
            }
            _ => Err(AtError::Error),
        }
    }

    fn sim_ready(&self) -> Result<()> {
        match self.sim {
            SimState::Ready => Ok(()),
            SimState::Pin => Err(AtError::Cme(11)),
            SimState::Puk => Err(AtError::Cme(12)),
            SimState::Absent => Err(AtError::Cme(10)),
        }
    }

    fn cmee(&mut self, arg: Arg<'_>) -> Result<Done> {
        match arg {
            Arg::Set(v) => {
                self.cmee = match v.trim() {
                    "0" | "" => 0,
                    "1" => 1,
                    "2" => 2,
                    _ => return Err(AtError::Cme(50)),
                };
                Ok(Done::default())
            }
            Arg::Query => Ok(Done::info(format!("+CMEE: {}", self.cmee))),
            Arg::Test => Ok(Done::info("+CMEE: (0-2)")),
            Arg::None => Err(AtError::Error),
        }
    }

    fn cscs(&mut self, arg: Arg<'_>) -> Result<Done> {
        match arg {
            Arg::Set(v) => {
                self.charset = Charset::parse(unquote(v.trim())).ok_or(AtError::Cme(50))?;
                Ok(Done::default())
            }
            Arg::Query => Ok(Done::info(format!("+CSCS: \"{}\"", self.charset.name()))),
            Arg::Test => Ok(Done::info("+CSCS: (\"GSM\",\"IRA\",\"UCS2\")")),
            Arg::None => Err(AtError::Error),
        }
    }

    fn cpin(&mut self, arg: Arg<'_>) -> Result<Done> {
        match arg {
            Arg::Query => match self.sim {
                SimState::Ready => Ok(Done::info("+CPIN: READY")),
                SimState::Pin => Ok(Done::info("+CPIN: SIM PIN")),
                SimState::Puk => Ok(Done::info("+CPIN: SIM PUK")),
                SimState::Absent => Err(AtError::Cme(10)),
            },
            Arg::Set(v) => {
                let args = split_outside_quotes(v, ',');
                let first = args.first().map(|a| unquote(a.trim())).unwrap_or_default();
                match self.sim {
                    SimState::Absent => Err(AtError::Cme(10)),
                    SimState::Ready => Err(AtError::Cme(3)),
                    SimState::Pin if first == self.settings.sim_pin => {
                        self.sim = SimState::Ready;
                        self.pin_attempts = 0;
                        Ok(Done::default())
                    }
                    SimState::Pin => {
                        self.pin_attempts += 1;
                        if self.pin_attempts >= 3 {
                            self.sim = SimState::Puk;
                        }
                        Err(AtError::Cme(16))
                    }
                    SimState::Puk => {
                        let new_pin = args.get(1).map(|a| unquote(a.trim()));
                        match new_pin {
                            Some(pin) if first == self.settings.sim_puk && !pin.is_empty() => {
                                self.settings.sim_pin = pin.to_owned();
                                self.sim = SimState::Ready;
                                self.pin_attempts = 0;
                                Ok(Done::default())
                            }
                            _ => Err(AtError::Cme(16)),
                        }
                    }
                }
            }
            Arg::Test => Ok(Done::default()),
            Arg::None => Err(AtError::Error),
        }
    }

    fn csq(&self, fault: &Fault) -> String {
        if fault.no_signal {
            "+CSQ: 99,99".to_owned()
        } else {
            format!("+CSQ: {},{}", self.settings.radio.rssi, self.settings.radio.ber)
        }
    }

    /// `+CESQ: <rxlev>,<ber>,<rscp>,<ecno>,<rsrq>,<rsrp>` (TS 27.007 §8.69): the fields of the
    /// serving access technology, the others "not known" (99 or 255).
    fn cesq(&self, fault: &Fault) -> String {
        let r = &self.settings.radio;
        if fault.no_signal {
            return "+CESQ: 99,99,255,255,255,255".to_owned();
        }
        match r.act {
            7 => format!("+CESQ: 99,99,255,255,{},{}", r.rsrq, r.rsrp),
            2 => format!("+CESQ: 99,99,{},{},255,255", (u16::from(r.rssi) * 3).min(96), 40),
            _ => format!("+CESQ: {},{},255,255,255,255", (u16::from(r.rssi) * 2).min(63), r.ber),
        }
    }

    /// Registration status (TS 27.007 §7.2): 0 not searching, 1 home, 2 searching, 3 denied, 5 roaming.
    fn reg_stat(&self, fault: &Fault) -> u8 {
        if self.sim != SimState::Ready {
            0
        } else if fault.no_signal {
            2
        } else if fault.not_registered {
            3
        } else if self.settings.radio.roaming {
            5
        } else {
            1
        }
    }

    fn creg(&mut self, arg: Arg<'_>, fault: &Fault, eps: bool) -> Result<Done> {
        let name = if eps { "+CEREG" } else { "+CREG" };
        match arg {
            Arg::Set(v) => {
                let n: u8 = v.trim().parse().map_err(|_| AtError::Cme(50))?;
                if n > 2 {
                    return Err(AtError::Cme(50));
                }
                if eps {
                    self.cereg_n = n
                } else {
                    self.creg_n = n
                }
                Ok(Done::default())
            }
            Arg::Query => {
                let n = if eps { self.cereg_n } else { self.creg_n };
                let stat = self.reg_stat(fault);
                let r = &self.settings.radio;
                if n == 2 && matches!(stat, 1 | 5) {
                    Ok(Done::info(format!("{name}: 2,{stat},\"{}\",\"{}\",{}", r.lac, r.cell_id, r.act)))
                } else {
                    Ok(Done::info(format!("{name}: {n},{stat}")))
                }
            }
            Arg::Test => Ok(Done::info(format!("{name}: (0-2)"))),
            Arg::None => Err(AtError::Error),
        }
    }

    fn cops(&mut self, arg: Arg<'_>, fault: &Fault) -> Result<Done> {
        let r = &self.settings.radio;
        match arg {
            Arg::Query => {
                self.sim_ready()?;
                if matches!(self.reg_stat(fault), 1 | 5) {
                    let name = match self.cops_format {
                        0 => &r.operator_long,
                        1 => &r.operator_short,
                        _ => &r.numeric,
                    };
                    Ok(Done::info(format!("+COPS: 0,{},\"{name}\",{}", self.cops_format, r.act)))
                } else {
                    Ok(Done::info("+COPS: 0"))
                }
            }
            Arg::Set(v) => {
                let args = split_outside_quotes(v, ',');
                match args.first().map(|a| a.trim()) {
                    Some("3") => {
                        let f: u8 = args.get(1).and_then(|f| f.trim().parse().ok()).ok_or(AtError::Cme(50))?;
                        if f > 2 {
                            return Err(AtError::Cme(50));
                        }
                        self.cops_format = f;
                        Ok(Done::default())
                    }
                    Some("0" | "1" | "2" | "4") => Ok(Done::default()),
                    _ => Err(AtError::Cme(50)),
                }
            }
            Arg::Test => {
                self.sim_ready()?;
                Ok(Done::info(format!(
                    "+COPS: (2,\"{}\",\"{}\",\"{}\",{}),,(0-4),(0-2)",
                    r.operator_long, r.operator_short, r.numeric, r.act
                )))
            }
            Arg::None => Err(AtError::Error),
        }
    }

    /// `+CUSD` (TS 27.007 §7.15): `=<n>[,<str>[,<dcs>]]`, `?`, `=?`.
    fn cusd(&mut self, arg: Arg<'_>, fault: &Fault) -> Result<Done> {
        let v = match arg {
            Arg::Query => return Ok(Done::info(format!("+CUSD: {}", u8::from(self.cusd_presentation)))),
            Arg::Test => return Ok(Done::info("+CUSD: (0-2)")),
            Arg::None => return Err(AtError::Error),
            Arg::Set(v) => v,
        };
        let args = split_outside_quotes(v, ',');
        let n = args.first().map(|a| a.trim()).unwrap_or("0");
        match n {
            "2" => {
                self.session = None;
                return Ok(Done::default());
            }
            "0" | "1" | "" => self.cusd_presentation = n == "1",
            _ => return Err(AtError::Cme(50)),
        }
        let Some(raw) = args.get(1) else { return Ok(Done::default()) };
        let raw = raw.trim();
        if !(raw.starts_with('"') && raw.ends_with('"') && raw.len() >= 2) {
            return Err(AtError::Cme(50));
        }
        let dcs: u8 = match args.get(2) {
            Some(d) => d.trim().parse().map_err(|_| AtError::Cme(50))?,
            None => 15,
        };
        let text =
            codec::decode_ussd(self.settings.profile, self.charset, unquote(raw), dcs).ok_or(AtError::Cme(50))?;
        self.sim_ready()?;
        if fault.no_signal || fault.not_registered {
            self.session = None;
            return Err(AtError::Cme(30));
        }
        let mut done = Done::default();
        if let Some(ms) = Some(fault.slow_network_ms).filter(|ms| *ms > 0) {
            done.after.push(Out::Delay(Duration::from_millis(ms)));
        }
        let inputs = match self.session.take() {
            Some(mut session) => {
                session.inputs.push(text);
                session
            }
            None => {
                if let Some(n) = fault.cme_error {
                    return Err(AtError::Cme(n));
                }
                match self.network.parse(&text) {
                    Dial::NotUssd => {
                        done.after.push(Out::Text(urc("+CUSD: 4")));
                        return Ok(done);
                    }
                    Dial::Ussd { inputs, .. } => Session { inputs, answers: 0 },
                }
            }
        };
        let mut session = inputs;
        if fault.network_timeout {
            done.after.push(Out::Text(urc("+CUSD: 5")));
            return Ok(done);
        }
        session.answers += 1;
        if fault.release_mid_session == Some(session.answers) {
            done.after.push(Out::Text(urc("+CUSD: 2")));
            return Ok(done);
        }
        self.network_answers += 1;
        let screen = self.network.screen(&session.inputs);
        let (m, text) = match &screen {
            Screen::Continue(t) => (1, t),
            Screen::End(t) => (0, t),
        };
        let (body, dcs) = codec::encode_ussd(self.settings.profile, self.charset, text);
        done.after.push(Out::Text(urc(&format!("+CUSD: {m},\"{body}\",{dcs}"))));
        if screen.is_end() {
            if fault.extra_release {
                done.after.push(Out::Text(urc("+CUSD: 2")));
            }
        } else {
            self.session = Some(session);
        }
        Ok(done)
    }

    /// A new message is in the SIM storage: the `+CMTI` to send, if `+CNMI` asked for it.
    pub fn new_message_indication(&self, index: usize) -> Option<Vec<Out>> {
        self.sms.indication(index).map(|line| vec![Out::Text(urc(&line))])
    }
}

/// A result code or an unsolicited result, framed as V.250 §5.7.1 says for `V1`.
pub fn urc(line: &str) -> String {
    format!("\r\n{line}\r\n")
}

/// The argument part of an extended command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg<'a> {
    /// `+X` alone (an action).
    None,
    /// `+X?`
    Query,
    /// `+X=?`
    Test,
    /// `+X=<values>` (the original case, quotes kept).
    Set(&'a str),
}

/// The upper-case name and the argument of one extended command.
fn split_command<'a>(upper: &'a str, original: &'a str) -> (&'a str, Arg<'a>) {
    let end = upper[1..].find(|c: char| !c.is_ascii_alphanumeric()).map_or(upper.len(), |i| i + 1);
    let name = &upper[..end];
    let rest = &original[end..];
    let arg = if rest == "?" {
        Arg::Query
    } else if rest == "=?" {
        Arg::Test
    } else if let Some(v) = rest.strip_prefix('=') {
        Arg::Set(v)
    } else if rest.is_empty() {
        Arg::None
    } else {
        Arg::Set(rest)
    };
    (name, arg)
}

/// Splits on `sep` outside double quotes.
pub fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    parts.push(&s[start..]);
    parts
}

/// The inside of a double-quoted string (the string itself when it is not quoted).
pub fn unquote(s: &str) -> &str {
    s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ussd::menu::Menu;

    fn modem(sim_present: bool) -> Modem {
        let settings = Settings {
            profile: Profile::Quectel,
            radio: Radio::default(),
            sim_pin: "1234".into(),
            sim_puk: "12345678".into(),
            sim_present,
            msisdn: "+256772000100".into(),
        };
        Modem::new(settings, Network::new(Menu::new("1234"), vec!["*384*7#".into()]), SimStorage::default())
    }

    fn text(out: Vec<Out>) -> String {
        out.into_iter()
            .map(|o| match o {
                Out::Text(t) => t,
                Out::Delay(d) => format!("<{}ms>", d.as_millis()),
            })
            .collect()
    }

    #[test]
    fn command_line_syntax() {
        let mut m = modem(true);
        let f = Fault::default();
        assert_eq!(text(m.line("hello", &f)), "", "not a command line: ignored");
        assert_eq!(text(m.line("at", &f)), "\r\nOK\r\n", "case-insensitive prefix");
        assert_eq!(text(m.line("ATE0V1+CMEE=2;+CSCS?", &f)), "\r\n+CSCS: \"GSM\"\r\n\r\nOK\r\n");
        assert!(!m.echo());
        assert_eq!(text(m.line("AT+CSQ;+BOGUS", &f)), "\r\nERROR\r\n", "one failure fails the line");
        assert_eq!(text(m.line("ATQ9Y", &f)), "\r\nERROR\r\n");
        assert_eq!(split_outside_quotes(r#"1,"a,b",15"#, ','), ["1", "\"a,b\"", "15"]);
    }

    #[test]
    fn no_sim_and_delays() {
        let mut m = modem(false);
        let f = Fault::default();
        m.line("AT+CMEE=1", &f);
        assert_eq!(text(m.line("AT+CPIN?", &f)), "\r\n+CME ERROR: 10\r\n");
        assert_eq!(text(m.line("AT+CUSD=1,\"*384*7#\",15", &f)), "\r\n+CME ERROR: 10\r\n");
        assert_eq!(text(m.line("AT+CMGR=1", &f)), "\r\n+CMS ERROR: 310\r\n", "SIM not inserted, TS 27.005 §3.2.5");

        let mut m = modem(true);
        let slow = Fault { slow_network_ms: 250, ..Default::default() };
        let out = text(m.line("AT+CUSD=1,\"*384*7*1#\",15", &slow));
        assert_eq!(out, "\r\nOK\r\n<250ms>\r\n+CUSD: 0,\"Your M-Pesa balance is KES 1,250.00\",15\r\n");
    }
}
