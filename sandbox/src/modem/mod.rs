//! # A GSM modem emulator on a pseudo-terminal or a TCP port
//!
//! A prober that dials USSD through a real modem's AT port can be tested against this: it speaks
//! the AT command set of ITU-T V.250 and 3GPP TS 27.007/27.005 as the Quectel, SIMCom and Huawei
//! families do (see `README.md` in this folder), and its network side is the sandbox's own USSD
//! menu ([`crate::ussd::menu`]) called in process. Its faults are those of the `modem` service in
//! [`crate::faults`], shared with the HTTP server when both run in one process.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sandbox::Error> {
//! let modem = sandbox::modem::Emulator::start_pty(sandbox::modem::ModemConfig::default()).await?;
//! println!("modem: {}", modem.port()); // /dev/pts/N
//! modem.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! One file per concern: [`pty`] (the pseudo-terminal), [`at`] (the interpreter), [`network`]
//! (dial strings and the menu), [`codec`] and [`gsm`] (encodings), [`sms`] (the SIM's messages),
//! [`smsc`] (the SMS centre),
//! `driver` (line assembly, echo, timing).

pub mod at;
pub mod codec;
mod driver;
pub mod gsm;
pub mod network;
pub mod pty;
pub mod sms;
pub mod smsc;

use std::{net::SocketAddr, time::Duration};

use tokio::task::JoinHandle;

use crate::{
    Error,
    faults::{FaultSet, Faults},
    ussd::menu::Menu,
};

/// The modem family whose behaviour the emulator copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Quectel EC25/EG25: `+CUSD` strings in the `+CSCS` character set, DCS 15.
    #[default]
    Quectel,
    /// SIMCom SIM7600: as Quectel.
    Simcom,
    /// Huawei E3372/E173 (stick firmware): `+CUSD` strings as packed GSM 7-bit in hex.
    Huawei,
}

impl Profile {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "quectel" => Some(Profile::Quectel),
            "simcom" => Some(Profile::Simcom),
            "huawei" => Some(Profile::Huawei),
            _ => None,
        }
    }

    pub fn manufacturer(self) -> &'static str {
        match self {
            Profile::Quectel => "Quectel",
            Profile::Simcom => "SIMCOM INCORPORATED",
            Profile::Huawei => "huawei",
        }
    }

    pub fn model(self) -> &'static str {
        match self {
            Profile::Quectel => "EC25",
            Profile::Simcom => "SIMCOM_SIM7600E-H",
            Profile::Huawei => "E3372",
        }
    }

    pub fn revision(self) -> &'static str {
        match self {
            Profile::Quectel => "EC25EFAR06A06M4G-SANDBOX",
            Profile::Simcom => "SIM7600M22-SANDBOX",
            Profile::Huawei => "22.315.01.00.00-SANDBOX",
        }
    }
}

/// What the radio reports: signal, operator, access technology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Radio {
    /// `+CSQ` rssi, 0..=31 (TS 27.007 §8.5: −113 dBm + 2·rssi).
    pub rssi: u8,
    /// `+CSQ` ber, 0..=7 or 99.
    pub ber: u8,
    /// `+CESQ` rsrq (LTE), 0..=34.
    pub rsrq: u8,
    /// `+CESQ` rsrp (LTE), 0..=97.
    pub rsrp: u8,
    /// Operator long name (`+COPS` format 0), e.g. "MTN UG".
    pub operator_long: String,
    /// Short name (format 1).
    pub operator_short: String,
    /// Numeric MCC+MNC (format 2), e.g. "64110".
    pub numeric: String,
    /// Access technology (TS 27.007 §7.3 `<AcT>`): 0 GSM, 2 UTRAN, 7 E-UTRAN.
    pub act: u8,
    /// Registered roaming (stat 5) rather than home (1).
    pub roaming: bool,
    /// Location (or tracking) area code and cell id, hex, for `+CREG: 2,…`.
    pub lac: String,
    pub cell_id: String,
}

impl Default for Radio {
    fn default() -> Self {
        Self {
            rssi: 20,
            ber: 99,
            rsrq: 20,
            rsrp: 50,
            operator_long: "MTN UG".to_owned(),
            operator_short: "MTN".to_owned(),
            numeric: "64110".to_owned(),
            act: 7,
            roaming: false,
            lac: "1A2B".to_owned(),
            cell_id: "01C3D4E5".to_owned(),
        }
    }
}

/// The emulator's configuration.
#[derive(Clone)]
pub struct ModemConfig {
    pub profile: Profile,
    /// The SIM's own number (messages to it arrive on this modem).
    pub msisdn: String,
    /// The SIM PIN `AT+CPIN` checks when the `sim_pin` fault locks the SIM.
    pub sim_pin: String,
    /// The PUK that unblocks it after three wrong PINs (`AT+CPIN="<puk>","<new pin>"`).
    pub sim_puk: String,
    /// No SIM at all: SIM commands answer `+CME ERROR: 10`.
    pub sim_absent: bool,
    /// The USSD menu's PIN (what a dialled payment confirms with).
    pub ussd_pin: String,
    /// Service codes whose parts are not inputs (see [`network`]).
    pub service_codes: Vec<String>,
    pub radio: Radio,
    /// The network ends a USSD session idle this long with `+CUSD: 5`. Networks allow roughly
    /// 20–40 s between screens (TS 24.090 leaves the timer to the operator); 30 s by default.
    pub session_idle_timeout: Duration,
    /// The SMS centre to receive from (a running sandbox's [`crate::SandboxHandle::sms`]);
    /// `None`: the emulator's own.
    pub sms: Option<smsc::SmsCentre>,
    /// Fault settings to share (a running sandbox's [`crate::SandboxHandle::faults`]); `None`: the
    /// emulator's own.
    pub faults: Option<Faults>,
}

impl std::fmt::Debug for ModemConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModemConfig")
            .field("profile", &self.profile)
            .field("msisdn", &crate::mask_phone(&self.msisdn))
            .field("sim_pin", &"<redacted>")
            .field("radio", &self.radio)
            .finish_non_exhaustive()
    }
}

impl Default for ModemConfig {
    fn default() -> Self {
        Self {
            profile: Profile::default(),
            msisdn: "+256772000100".to_owned(),
            sim_pin: "1234".to_owned(),
            sim_puk: "12345678".to_owned(),
            sim_absent: false,
            ussd_pin: "1234".to_owned(),
            service_codes: vec![crate::ussd::SERVICE_CODE.to_owned()],
            radio: Radio::default(),
            session_idle_timeout: Duration::from_secs(30),
            faults: None,
            sms: None,
        }
    }
}

/// Starts emulators.
pub struct Emulator;

impl Emulator {
    /// A modem on a new pseudo-terminal; [`EmulatorHandle::port`] is the slave's path. Must be
    /// called inside a tokio runtime.
    pub async fn start_pty(config: ModemConfig) -> Result<EmulatorHandle, Error> {
        let pty = pty::Pty::open().map_err(Error::Pty)?;
        let port = pty.slave_path().display().to_string();
        let (faults, sms, modem, idle) = parts(&config);
        let inbox = sms.attach(&config.msisdn);
        let task = tokio::spawn(driver::serve_pty(pty, modem, faults.clone(), inbox, idle));
        Ok(EmulatorHandle { port, faults, sms, task })
    }

    /// A modem behind a TCP port, as a networked serial server offers one: one client at a time,
    /// the next once the previous one has gone. [`EmulatorHandle::port`] is `tcp://ADDR:PORT`.
    pub async fn start_tcp(config: ModemConfig, addr: SocketAddr) -> Result<EmulatorHandle, Error> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })?;
        let local = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
        let (faults, sms, modem, idle) = parts(&config);
        let inbox = sms.attach(&config.msisdn);
        let task = tokio::spawn(driver::serve_tcp(listener, modem, faults.clone(), inbox, idle));
        Ok(EmulatorHandle { port: format!("tcp://{local}"), faults, sms, task })
    }
}

fn parts(config: &ModemConfig) -> (Faults, smsc::SmsCentre, at::Modem, Duration) {
    let faults = config.faults.clone().unwrap_or_else(|| Faults::new(FaultSet::default(), 0));
    let sms = config.sms.clone().unwrap_or_default();
    let settings = at::Settings {
        profile: config.profile,
        radio: config.radio.clone(),
        sim_pin: config.sim_pin.clone(),
        sim_puk: config.sim_puk.clone(),
        sim_present: !config.sim_absent,
        msisdn: config.msisdn.clone(),
    };
    let network = network::Network::new(Menu::new(config.ussd_pin.clone()), config.service_codes.clone());
    let modem = at::Modem::new(settings, network, sms::SimStorage::default());
    (faults, sms, modem, config.session_idle_timeout)
}

/// A running emulator.
pub struct EmulatorHandle {
    port: String,
    faults: Faults,
    sms: smsc::SmsCentre,
    task: JoinHandle<()>,
}

impl EmulatorHandle {
    /// Where a client connects: the pty slave's path (`/dev/pts/N`) or `tcp://127.0.0.1:PORT`.
    pub fn port(&self) -> &str {
        &self.port
    }

    /// The fault settings the modem follows (its service is [`crate::Service::Modem`]).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The SMS centre the modem receives from (inject a message with [`smsc::SmsCentre::send`]).
    pub fn sms(&self) -> &smsc::SmsCentre {
        &self.sms
    }

    /// Stops the emulator (the pty closes; a TCP client is disconnected).
    pub async fn shutdown(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
