//! [`Modem`]: the prober's side of an AT port (3GPP TS 27.007, TS 27.005, ITU-T V.250).
//!
//! Commands wait for their final result within a deadline. Unsolicited results (`+CUSD`,
//! `+CMTI`) may arrive before the `OK` of the command that caused them, or between the lines of
//! another answer: they are queued wherever they arrive, and the USSD operations take the next
//! `+CUSD` from that queue.

use std::{collections::VecDeque, time::Duration};

use tokio::time::{Instant, timeout_at};

use super::{
    codec::Charset,
    line::{self, ErrCode, Line},
    port::Port,
};
use crate::outcome::Outcome;

/// Which modem, and how to talk to it (the step's `modem:` block, rendered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModemSpec {
    /// A device path (`/dev/ttyUSB2`) or `tcp://host:port`.
    pub port: String,
    pub baud: u32,
    /// The SIM PIN, entered when `AT+CPIN?` says `SIM PIN`.
    pub pin: Option<String>,
    pub charset: Charset,
}

impl ModemSpec {
    /// A label for the modem (the device's file name or `host-port`), for reports.
    pub fn label(&self) -> String {
        let p = self.port.strip_prefix("tcp://").map_or_else(
            || {
                // `/dev/pts/3` reads `pts-3`; `/dev/ttyUSB2` reads `ttyUSB2`.
                let mut parts = self.port.rsplit('/');
                let name = parts.next().unwrap_or(&self.port);
                match parts.next() {
                    Some("pts") => format!("pts-{name}"),
                    _ => name.to_owned(),
                }
            },
            |a| a.replace(':', "-"),
        );
        p.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' }).collect()
    }
}

/// Deadline for an ordinary command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed modem operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModemError {
    #[error("the modem did not answer `{command}` within {} s", limit.as_secs_f64())]
    Timeout { command: String, limit: Duration },
    #[error("the AT port {port} failed: {reason}")]
    Port { port: String, reason: String },
    #[error("the modem answered `{command}` with ERROR")]
    Error { command: String },
    #[error("the modem answered `{command}` with +CME ERROR: {text}{}", hint(*code))]
    Cme { command: String, code: Option<u16>, text: String },
    #[error("the modem answered `{command}` with +CMS ERROR: {text}")]
    Cms { command: String, code: Option<u16>, text: String },
    #[error("the modem's SIM is not usable: {0}")]
    Sim(String),
    #[error("the modem {port} is busy with another journey for {} s", waited.as_secs())]
    Busy { port: String, waited: Duration },
}

/// What to do about the SIM and registration errors of TS 27.007 §9.2.1.
fn hint(code: Option<u16>) -> &'static str {
    match code {
        Some(10) => " (no SIM: insert one)",
        Some(11) => " (the SIM needs its PIN: set modem.pin)",
        Some(12) => " (the SIM is PUK-locked: unlock it by hand)",
        Some(13 | 15) => " (the SIM failed)",
        Some(16) => " (wrong SIM PIN: check modem.pin before the SIM locks)",
        Some(30) => " (no network service: check the antenna and coverage)",
        Some(31) => " (the network timed out)",
        Some(32) => " (network not allowed: emergency calls only)",
        _ => "",
    }
}

impl ModemError {
    /// The outcome class (docs/protocols/modem.md, "Errors").
    pub fn outcome(&self) -> Outcome {
        match self {
            ModemError::Timeout { .. } | ModemError::Busy { .. } => Outcome::Timeout,
            ModemError::Cme { code: Some(31), .. } => Outcome::Timeout,
            ModemError::Port { .. } => Outcome::NetworkError,
            _ => Outcome::GatewayError,
        }
    }
}

/// One `+CUSD` result: `m` (0 ended, 1 more input wanted, 2 released by the network, 3 another
/// client answered, 4 not supported, 5 network timeout) and its text, decoded per its dcs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CusdEvent {
    pub m: u8,
    pub text: String,
    pub dcs: Option<u8>,
}

/// One command and its answer, for the step's trace (the PIN already hidden).
#[derive(Debug, Clone)]
pub struct AtExchange {
    pub command: String,
    pub response: String,
    pub took: Duration,
}

/// An open, initialised modem.
#[derive(Debug)]
pub struct Modem {
    port: Port,
    name: String,
    charset: Charset,
    buf: Vec<u8>,
    cusd: VecDeque<CusdEvent>,
    /// `+CMTI` indications: storage and index.
    pub(crate) cmti: VecDeque<(String, u32)>,
    /// The exchanges since the caller last took them.
    pub log: Vec<AtExchange>,
    /// The port failed: the pool reopens it on next use.
    pub broken: bool,
    /// We cancelled a session and its `+CUSD: 2` has not come yet: it is not the next session's.
    stale_release: bool,
}

/// Longest line kept; a modem sending more without a line end is cut there.
const MAX_LINE: usize = 16 * 1024;
/// Most continuation lines of one multi-line `+CUSD` string.
const MAX_CUSD_LINES: usize = 64;

impl Modem {
    /// Opens the port and initialises the modem (`ATZ`, `ATE0`, `AT+CMEE=2`, the SIM PIN, `AT+CSCS`).
    pub async fn open(spec: &ModemSpec) -> Result<Modem, ModemError> {
        let port = Port::open(&spec.port, spec.baud)
            .await
            .map_err(|e| ModemError::Port { port: spec.port.clone(), reason: e.to_string() })?;
        let mut m = Modem::over(port, &spec.port, spec.charset);
        m.init(spec.pin.as_deref()).await?;
        Ok(m)
    }

    /// A modem over an open port, not yet initialised.
    pub fn over(port: Port, name: &str, charset: Charset) -> Modem {
        Modem {
            port,
            name: name.to_owned(),
            charset,
            buf: Vec::new(),
            cusd: VecDeque::new(),
            cmti: VecDeque::new(),
            log: Vec::new(),
            broken: false,
            stale_release: false,
        }
    }

    pub fn charset(&self) -> Charset {
        self.charset
    }

    /// The init sequence; enters `pin` when the SIM asks for it.
    pub async fn init(&mut self, pin: Option<&str>) -> Result<(), ModemError> {
        for c in ["ATZ", "ATE0", "AT+CMEE=2"] {
            self.command(c, COMMAND_TIMEOUT).await?;
        }
        let state = self.sim_state().await?;
        match state.as_str() {
            "READY" => {}
            "SIM PIN" => {
                let Some(pin) = pin else {
                    return Err(ModemError::Sim("it asks for its PIN (SIM PIN): set modem.pin".into()));
                };
                self.command(&format!("AT+CPIN=\"{pin}\""), COMMAND_TIMEOUT).await?;
                self.wait_ready().await?;
            }
            "SIM PUK" | "SIM PUK2" => {
                return Err(ModemError::Sim("it is PUK-locked (SIM PUK): unlock it by hand".into()));
            }
            other => return Err(ModemError::Sim(format!("+CPIN: {other}"))),
        }
        self.command(&format!("AT+CSCS=\"{}\"", self.charset.cscs()), COMMAND_TIMEOUT).await?;
        // Present unsolicited +CUSD results (TS 27.007 §7.15, <n>=1).
        self.command("AT+CUSD=1", COMMAND_TIMEOUT).await?;
        Ok(())
    }

    /// `AT+CPIN?`'s code (`READY`, `SIM PIN`, ...).
    pub async fn sim_state(&mut self) -> Result<String, ModemError> {
        let lines = self.command("AT+CPIN?", COMMAND_TIMEOUT).await?;
        Ok(lines
            .iter()
            .find_map(|l| match line::parse(l) {
                Line::Cpin(c) => Some(c.to_owned()),
                _ => None,
            })
            .unwrap_or_default())
    }

    /// After the PIN, the SIM takes a moment to become ready: a few bounded polls.
    async fn wait_ready(&mut self) -> Result<(), ModemError> {
        for _ in 0..10 {
            if self.sim_state().await? == "READY" {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(ModemError::Sim("it did not become READY after its PIN was entered".into()))
    }

    /// Sends `cmd` and reads up to its final result; returns the intermediate lines.
    pub async fn command(&mut self, cmd: &str, limit: Duration) -> Result<Vec<String>, ModemError> {
        let shown = shown(cmd);
        let started = Instant::now();
        let deadline = started + limit;
        let mut out = Vec::new();
        let result = self.exchange(cmd, &shown, deadline, &mut out).await.map_err(|e| with_limit(e, limit));
        let mut response = out.join("\n");
        match &result {
            Ok(()) => response.push_str(if response.is_empty() { "OK" } else { "\nOK" }),
            Err(e) => {
                if !response.is_empty() {
                    response.push('\n');
                }
                response.push_str(&e.to_string());
            }
        }
        self.log.push(AtExchange { command: shown, response, took: started.elapsed() });
        result.map(|()| out)
    }

    async fn exchange(
        &mut self,
        cmd: &str,
        shown: &str,
        deadline: Instant,
        out: &mut Vec<String>,
    ) -> Result<(), ModemError> {
        let wrote = timeout_at(deadline, self.port.write_all(format!("{cmd}\r").as_bytes())).await;
        match wrote {
            Err(_) => return Err(self.timed_out(shown)),
            Ok(Err(e)) => return Err(self.port_error(&e.to_string())),
            Ok(Ok(())) => {}
        }
        loop {
            let l = self.read_line(shown, deadline).await?;
            let err = |code: ErrCode<'_>| match code {
                ErrCode::Num(n) => (Some(n), n.to_string()),
                ErrCode::Text(t) => (None, t.to_owned()),
            };
            match line::parse(&l) {
                Line::Ok => return Ok(()),
                Line::Error | Line::NoCarrier => return Err(ModemError::Error { command: shown.to_owned() }),
                Line::CmeError(c) => {
                    let (code, text) = err(c);
                    return Err(ModemError::Cme { command: shown.to_owned(), code, text });
                }
                Line::CmsError(c) => {
                    let (code, text) = err(c);
                    return Err(ModemError::Cms { command: shown.to_owned(), code, text });
                }
                Line::Echo(_) => {}
                _ => {
                    if !self.unsolicited(&l) {
                        out.push(l);
                    }
                }
            }
        }
    }

    /// Queues `l` when it is an unsolicited result; false for anything else.
    fn unsolicited(&mut self, l: &str) -> bool {
        match line::parse(l) {
            Line::Cusd(c) if c.m == 2 && c.text.is_none() && self.stale_release => {
                self.stale_release = false;
                true
            }
            Line::Cusd(c) => {
                let text = c.text.map(|t| self.charset.decode_ussd(t, c.dcs)).unwrap_or_default();
                self.cusd.push_back(CusdEvent { m: c.m, text, dcs: c.dcs });
                true
            }
            Line::Cmti { mem, index } => {
                self.cmti.push_back((mem.to_owned(), index));
                true
            }
            _ => false,
        }
    }

    /// Reads what the modem says unasked until `until`, queueing the unsolicited results
    /// (`+CMTI`, `+CUSD`); reaching `until` is not an error.
    pub async fn listen(&mut self, until: Instant) -> Result<(), ModemError> {
        loop {
            match self.read_line("(listening)", until).await {
                Ok(l) => {
                    self.unsolicited(&l);
                }
                Err(ModemError::Timeout { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes the `+CMTI` notifications queued so far: (storage, index).
    pub fn take_cmti(&mut self) -> Vec<(String, u32)> {
        self.cmti.drain(..).collect()
    }

    /// The next non-empty line; a `+CUSD` string that spans lines is joined with `\n`.
    async fn read_line(&mut self, shown: &str, deadline: Instant) -> Result<String, ModemError> {
        let first = self.raw_line(shown, deadline).await?;
        if !first.starts_with("+CUSD:") || first.matches('"').count() != 1 {
            return Ok(first);
        }
        let mut joined = first;
        for _ in 0..MAX_CUSD_LINES {
            let next = self.raw_line(shown, deadline).await?;
            joined.push('\n');
            joined.push_str(&next);
            if next.contains('"') {
                break;
            }
        }
        Ok(joined)
    }

    async fn raw_line(&mut self, shown: &str, deadline: Instant) -> Result<String, ModemError> {
        loop {
            if let Some(end) = self.buf.iter().position(|b| *b == b'\r' || *b == b'\n') {
                let l: Vec<u8> = self.buf.drain(..=end).collect();
                let text = String::from_utf8_lossy(&l[..end]).into_owned();
                if !text.trim().is_empty() {
                    return Ok(text);
                }
                continue;
            }
            if self.buf.len() >= MAX_LINE {
                let l: Vec<u8> = std::mem::take(&mut self.buf);
                return Ok(String::from_utf8_lossy(&l).into_owned());
            }
            let mut chunk = [0u8; 512];
            match timeout_at(deadline, self.port.read(&mut chunk)).await {
                Err(_) => return Err(self.timed_out(shown)),
                Ok(Ok(0)) => return Err(self.port_error("the other end closed")),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => return Err(self.port_error(&e.to_string())),
            }
        }
    }

    /// The caller's [`with_limit`] fills in the limit.
    fn timed_out(&self, shown: &str) -> ModemError {
        ModemError::Timeout { command: shown.to_owned(), limit: Duration::ZERO }
    }

    fn port_error(&mut self, reason: &str) -> ModemError {
        self.broken = true;
        ModemError::Port { port: self.name.clone(), reason: reason.to_owned() }
    }

    /// Dials `code` (hop 1) and returns the network's first `+CUSD`.
    pub async fn dial(&mut self, code: &str, limit: Duration) -> Result<CusdEvent, ModemError> {
        self.send_ussd(code, limit).await
    }

    /// Answers the open session with `input`.
    pub async fn reply(&mut self, input: &str, limit: Duration) -> Result<CusdEvent, ModemError> {
        self.send_ussd(input, limit).await
    }

    async fn send_ussd(&mut self, s: &str, limit: Duration) -> Result<CusdEvent, ModemError> {
        // Whatever is queued belongs to an earlier session (an extra `+CUSD: 2` after a release).
        self.cusd.clear();
        let started = Instant::now();
        let deadline = started + limit;
        let cmd = format!("AT+CUSD=1,\"{}\",15", self.charset.encode_ussd(s));
        self.command(&cmd, limit).await.map_err(|e| with_limit(e, limit))?;
        self.next_cusd(&cmd, deadline).await.map_err(|e| with_limit(e, limit))
    }

    /// The next `+CUSD`, queued or still to come.
    pub async fn next_cusd(&mut self, cmd: &str, deadline: Instant) -> Result<CusdEvent, ModemError> {
        let shown = shown(cmd);
        // Bounded: every line read either ends the loop or comes before the deadline.
        loop {
            if let Some(ev) = self.cusd.pop_front() {
                return Ok(ev);
            }
            let l = self.read_line(&shown, deadline).await?;
            self.unsolicited(&l);
        }
    }

    /// Ends the session (`AT+CUSD=2`), best effort. Many modems then send a `+CUSD: 2` of their
    /// own, before or after the `OK`, or even during the next command: it is dropped wherever it
    /// arrives, not taken for the next session's answer.
    pub async fn cancel(&mut self) {
        self.stale_release = true;
        let _ = self.command("AT+CUSD=2", COMMAND_TIMEOUT).await;
        self.cusd.clear();
    }

    /// Takes the exchanges logged since the last call.
    pub fn take_log(&mut self) -> Vec<AtExchange> {
        std::mem::take(&mut self.log)
    }
}

fn with_limit(e: ModemError, limit: Duration) -> ModemError {
    match e {
        ModemError::Timeout { command, .. } => ModemError::Timeout { command, limit },
        e => e,
    }
}

/// The command as traces and errors show it: never the SIM PIN.
fn shown(cmd: &str) -> String {
    if cmd.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("AT+CPIN=")) {
        "AT+CPIN=\"****\"".to_owned()
    } else {
        cmd.to_owned()
    }
}
