//! The modem emulator over a real pseudo-terminal (and its TCP port): the init sequence, USSD in
//! each profile with the encodings decoded independently here, the faults, the SIM PIN, reopening
//! the port; the SMS centre (text and PDU mode, concatenation, the admin API, the Daraja
//! confirmation after an STK push).

mod common;

use std::time::Duration;

use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use sandbox::{
    Fault, Service,
    modem::{Emulator, EmulatorHandle, ModemConfig, Profile},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, unix::pipe},
    time::timeout,
};

/// Generous: this machine is shared and noisy.
const DEADLINE: Duration = Duration::from_secs(20);

enum Link {
    Pty { rx: pipe::Receiver, tx: pipe::Sender },
    Tcp(TcpStream),
}

/// A terminal on the modem's port: what a prober's AT engine sees.
struct Client {
    link: Link,
    buf: String,
}

impl Client {
    async fn open(port: &str) -> Client {
        if let Some(addr) = port.strip_prefix("tcp://") {
            return Client { link: Link::Tcp(TcpStream::connect(addr).await.expect("connect")), buf: String::new() };
        }
        // The slave is a character device, not a FIFO: tokio's pipe types take it unchecked.
        let rx = pipe::OpenOptions::new().unchecked(true).read_write(true).open_receiver(port).expect("open rx");
        let tx = pipe::OpenOptions::new().unchecked(true).read_write(true).open_sender(port).expect("open tx");
        let mut attrs = tcgetattr(&rx).expect("tcgetattr");
        cfmakeraw(&mut attrs);
        tcsetattr(&rx, SetArg::TCSANOW, &attrs).expect("raw mode");
        Client { link: Link::Pty { rx, tx }, buf: String::new() }
    }

    async fn send(&mut self, line: &str) {
        let data = format!("{line}\r");
        match &mut self.link {
            Link::Pty { tx, .. } => tx.write_all(data.as_bytes()).await.expect("write"),
            Link::Tcp(s) => s.write_all(data.as_bytes()).await.expect("write"),
        }
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 1024];
        let read = async {
            match &mut self.link {
                Link::Pty { rx, .. } => rx.read(&mut chunk).await,
                Link::Tcp(s) => s.read(&mut chunk).await,
            }
        };
        let n = timeout(DEADLINE, read).await.unwrap_or_else(|_| panic!("no answer; so far {:?}", self.buf));
        let n = n.expect("read");
        assert!(n > 0, "port closed; so far {:?}", self.buf);
        self.buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }

    /// Everything up to and including the first line for which `done` holds.
    async fn until(&mut self, done: impl Fn(&str) -> bool) -> String {
        for _ in 0..10_000 {
            let mut at = 0;
            for line in self.buf.split_inclusive("\r\n") {
                at += line.len();
                if line.ends_with("\r\n") && done(line.trim_end_matches("\r\n")) {
                    let taken = self.buf[..at].to_owned();
                    self.buf.drain(..at);
                    return taken;
                }
            }
            self.fill().await;
        }
        panic!("too many reads; so far {:?}", self.buf)
    }

    /// Sends a command and returns what came back up to its final result code.
    async fn cmd(&mut self, line: &str) -> String {
        self.send(line).await;
        self.until(is_final).await
    }

    /// The next unsolicited line starting with `prefix`.
    async fn urc(&mut self, prefix: &str) -> String {
        let text = self.until(|l| l.starts_with(prefix)).await;
        let line = text.rsplit("\r\n").find(|l| l.starts_with(prefix)).unwrap_or_default();
        line.to_owned()
    }
}

fn is_final(line: &str) -> bool {
    line == "OK" || line == "ERROR" || line.starts_with("+CME ERROR:") || line.starts_with("+CMS ERROR:")
}

async fn modem(profile: Profile) -> EmulatorHandle {
    Emulator::start_pty(ModemConfig { profile, ..Default::default() }).await.expect("start the emulator")
}

async fn ready(port: &str) -> Client {
    let mut c = Client::open(port).await;
    assert!(c.cmd("ATE0").await.ends_with("\r\nOK\r\n"));
    assert_eq!(c.cmd("AT+CMEE=2").await, "\r\nOK\r\n");
    c
}

/// `+CUSD: <m>,"<str>",<dcs>` split.
fn cusd(line: &str) -> (u8, String, u8) {
    let rest = line.strip_prefix("+CUSD: ").expect("+CUSD");
    let (m, rest) = rest.split_once(',').unwrap_or((rest, ""));
    let (s, dcs) = rest.rsplit_once(',').unwrap_or(("", "0"));
    (m.parse().unwrap(), s.trim_matches('"').to_owned(), dcs.parse().unwrap())
}

// --- independent decoders (TS 23.038), written here so the test does not trust the emulator's ---

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// Unpacks GSM 7-bit septets (LSB first) and maps the ASCII-compatible part of the alphabet.
fn unpack_gsm7(octets: &[u8]) -> String {
    let mut septets = Vec::new();
    let bits: Vec<u8> = octets.iter().flat_map(|o| (0..8).map(move |i| (o >> i) & 1)).collect();
    for chunk in bits.chunks_exact(7) {
        septets.push(chunk.iter().enumerate().fold(0u8, |acc, (i, b)| acc | (b << i)));
    }
    if septets.len() % 8 == 0 && septets.last() == Some(&0x0D) {
        septets.pop();
    }
    septets
        .iter()
        .map(|&s| match s {
            0x00 => '@',
            0x02 => '$',
            0x0A => '\n',
            0x0D => '\r',
            0x11 => '_',
            s => s as char,
        })
        .collect()
}

fn pack_gsm7(text: &str) -> String {
    let bits: Vec<u8> = text.bytes().flat_map(|c| (0..7).map(move |i| (c >> i) & 1)).collect();
    bits.chunks(8).map(|c| format!("{:02X}", c.iter().enumerate().fold(0u8, |acc, (i, b)| acc | (b << i)))).collect()
}

fn ucs2(hex: &str) -> String {
    let units: Vec<u16> = unhex(hex).chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
    String::from_utf16(&units).expect("utf-16")
}

const MAIN_MENU: &str = "Savanna Pay\n1. My balance\n2. Send money\n3. Buy airtime\n4. Lipa na M-Pesa";
const BALANCE: &str = "Your M-Pesa balance is KES 1,250.00";

#[tokio::test]
async fn init_sequence_and_radio_health() {
    let m = modem(Profile::Quectel).await;
    assert!(m.port().starts_with("/dev/pts/"), "{}", m.port());
    let mut c = Client::open(m.port()).await;
    // Echo is on until ATE0 (V.250 §6.2.4): the command comes back first.
    assert_eq!(c.cmd("ATZ").await, "ATZ\r\r\nOK\r\n");
    assert_eq!(c.cmd("ATE0").await, "ATE0\r\r\nOK\r\n");
    assert_eq!(c.cmd("AT").await, "\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CGMI").await, "\r\nQuectel\r\n\r\nOK\r\n");
    assert!(c.cmd("ATI").await.contains("EC25"));
    assert_eq!(c.cmd("AT+FOO").await, "\r\nERROR\r\n");
    assert_eq!(c.cmd("AT+CSCS=\"KLINGON\"").await, "\r\nERROR\r\n", "CMEE=0: plain ERROR");
    assert_eq!(c.cmd("AT+CMEE=1").await, "\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CSCS=\"KLINGON\"").await, "\r\n+CME ERROR: 50\r\n");
    assert_eq!(c.cmd("AT+CMEE=2").await, "\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CSCS=\"KLINGON\"").await, "\r\n+CME ERROR: Incorrect parameters\r\n");
    assert_eq!(c.cmd("AT+CSCS=\"IRA\"").await, "\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CSCS?").await, "\r\n+CSCS: \"IRA\"\r\n\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CPIN?").await, "\r\n+CPIN: READY\r\n\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CSQ").await, "\r\n+CSQ: 20,99\r\n\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CESQ").await, "\r\n+CESQ: 99,99,255,255,20,50\r\n\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CREG?").await, "\r\n+CREG: 0,1\r\n\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CEREG=2").await, "\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CEREG?").await, "\r\n+CEREG: 2,1,\"1A2B\",\"01C3D4E5\",7\r\n\r\nOK\r\n");
    assert_eq!(c.cmd("AT+COPS=3,0").await, "\r\nOK\r\n");
    assert_eq!(c.cmd("AT+COPS?").await, "\r\n+COPS: 0,0,\"MTN UG\",7\r\n\r\nOK\r\n");
    assert_eq!(c.cmd("AT+COPS=3,2;+COPS?").await, "\r\n+COPS: 0,2,\"64110\",7\r\n\r\nOK\r\n");
    // ATZ restores echo and CMEE=0.
    assert_eq!(c.cmd("ATZ").await, "\r\nOK\r\n");
    assert_eq!(c.cmd("AT").await, "AT\r\r\nOK\r\n");
    m.shutdown().await;
}

#[tokio::test]
async fn ussd_balance_in_text_profiles() {
    for profile in [Profile::Quectel, Profile::Simcom] {
        let m = modem(profile).await;
        let mut c = ready(m.port()).await;
        assert_eq!(c.cmd("AT+CSCS=\"GSM\"").await, "\r\nOK\r\n");
        assert_eq!(c.cmd("AT+CUSD=1,\"*384*7#\",15").await, "\r\nOK\r\n");
        assert_eq!(cusd(&c.urc("+CUSD:").await), (1, MAIN_MENU.to_owned(), 15), "{profile:?}");
        assert_eq!(c.cmd("AT+CUSD=1,\"1\",15").await, "\r\nOK\r\n");
        assert_eq!(cusd(&c.urc("+CUSD:").await), (0, BALANCE.to_owned(), 15));
        // A direct dial: the digits after the service code are the first inputs.
        c.cmd("AT+CUSD=1,\"*384*7*1#\",15").await;
        assert_eq!(cusd(&c.urc("+CUSD:").await), (0, BALANCE.to_owned(), 15));
        assert_eq!(c.cmd("AT+CUSD?").await, "\r\n+CUSD: 1\r\n\r\nOK\r\n");
        // Not a USSD string: a supplementary-service code.
        c.cmd("AT+CUSD=1,\"#31#\",15").await;
        assert_eq!(c.urc("+CUSD:").await, "+CUSD: 4");
        m.shutdown().await;
    }
}

#[tokio::test]
async fn ussd_in_huawei_packed_hex_and_in_ucs2() {
    let m = modem(Profile::Huawei).await;
    let mut c = ready(m.port()).await;
    assert_eq!(pack_gsm7("*100#"), "AA180C3602", "the test's own packer");
    c.cmd(&format!("AT+CUSD=1,\"{}\",15", pack_gsm7("*384*7#"))).await;
    let (mode, hex, dcs) = cusd(&c.urc("+CUSD:").await);
    assert_eq!((mode, dcs), (1, 15));
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{hex}");
    assert_eq!(unpack_gsm7(&unhex(&hex)), MAIN_MENU);
    c.cmd(&format!("AT+CUSD=1,\"{}\",15", pack_gsm7("1"))).await;
    let (mode, hex, _) = cusd(&c.urc("+CUSD:").await);
    assert_eq!((mode, unpack_gsm7(&unhex(&hex))), (0, BALANCE.to_owned()));
    m.shutdown().await;

    // UCS2 when the TE asks for it: the dial string and the answer in UTF-16 hex, DCS 72.
    let m = modem(Profile::Quectel).await;
    let mut c = ready(m.port()).await;
    assert_eq!(c.cmd("AT+CSCS=\"UCS2\"").await, "\r\nOK\r\n");
    let dial: String = "*384*7#".encode_utf16().map(|u| format!("{u:04X}")).collect();
    c.cmd(&format!("AT+CUSD=1,\"{dial}\",15")).await;
    let (mode, hex, dcs) = cusd(&c.urc("+CUSD:").await);
    assert_eq!((mode, dcs, ucs2(&hex)), (1, 72, MAIN_MENU.to_owned()));
    m.shutdown().await;
}

#[tokio::test]
async fn cancel_and_network_inactivity_timeout() {
    let m = Emulator::start_pty(ModemConfig { session_idle_timeout: Duration::from_millis(300), ..Default::default() })
        .await
        .unwrap();
    let mut c = ready(m.port()).await;
    c.cmd("AT+CUSD=1,\"*384*7#\",15").await;
    assert_eq!(cusd(&c.urc("+CUSD:").await).0, 1);
    assert_eq!(c.cmd("AT+CUSD=2").await, "\r\nOK\r\n");
    // After the cancel a new dial starts over at the main menu.
    c.cmd("AT+CUSD=1,\"*384*7#\",15").await;
    assert_eq!(cusd(&c.urc("+CUSD:").await), (1, MAIN_MENU.to_owned(), 15));
    // Nobody answers: the network ends the session.
    assert_eq!(c.urc("+CUSD:").await, "+CUSD: 5");
    m.shutdown().await;
}

#[tokio::test]
async fn the_pty_survives_a_reopen() {
    let m = modem(Profile::Quectel).await;
    let mut c = ready(m.port()).await;
    c.cmd("AT+CUSD=1,\"*384*7#\",15").await;
    c.urc("+CUSD:").await;
    drop(c);
    let mut c = Client::open(m.port()).await;
    // Settings stay (echo off), and the port answers.
    assert_eq!(c.cmd("AT+CSQ").await, "\r\n+CSQ: 20,99\r\n\r\nOK\r\n");
    drop(c);
    let mut c = Client::open(m.port()).await;
    assert_eq!(c.cmd("AT").await, "\r\nOK\r\n");
    m.shutdown().await;
}

#[tokio::test]
async fn the_tcp_listener_serves_one_client_after_another() {
    let m = Emulator::start_tcp(ModemConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    assert!(m.port().starts_with("tcp://127.0.0.1:"), "{}", m.port());
    let mut c = ready(m.port()).await;
    c.cmd("AT+CUSD=1,\"*384*7*1#\",15").await;
    assert_eq!(cusd(&c.urc("+CUSD:").await), (0, BALANCE.to_owned(), 15));
    drop(c);
    let mut c = Client::open(m.port()).await;
    assert_eq!(c.cmd("AT+CPIN?").await, "\r\n+CPIN: READY\r\n\r\nOK\r\n");
    m.shutdown().await;
}

#[tokio::test]
async fn sim_pin_flow() {
    let m = modem(Profile::Quectel).await;
    let mut c = ready(m.port()).await;
    m.faults().set(Service::Modem, Fault { sim_pin: true, ..Default::default() }).unwrap();
    assert_eq!(c.cmd("AT+CPIN?").await, "\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CUSD=1,\"*384*7#\",15").await, "\r\n+CME ERROR: SIM PIN required\r\n");
    assert_eq!(c.cmd("AT+COPS?").await, "\r\n+CME ERROR: SIM PIN required\r\n");
    assert_eq!(c.cmd("AT+CREG?").await, "\r\n+CREG: 0,0\r\n\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CPIN=\"0000\"").await, "\r\n+CME ERROR: incorrect password\r\n");
    assert_eq!(c.cmd("AT+CPIN=\"1234\"").await, "\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CPIN?").await, "\r\n+CPIN: READY\r\n\r\nOK\r\n");
    // Still set, but it has locked once: the SIM stays open until the fault is cleared (as
    // seen by a command) and set again, like a modem that is power-cycled.
    assert_eq!(c.cmd("AT+CPIN?").await, "\r\n+CPIN: READY\r\n\r\nOK\r\n");
    m.faults().clear_service(Service::Modem);
    c.cmd("AT").await;
    m.faults().set(Service::Modem, Fault { sim_pin: true, ..Default::default() }).unwrap();
    for _ in 0..3 {
        c.cmd("AT+CPIN=\"9999\"").await;
    }
    assert_eq!(c.cmd("AT+CPIN?").await, "\r\n+CPIN: SIM PUK\r\n\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CPIN=\"12345678\",\"4321\"").await, "\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CPIN?").await, "\r\n+CPIN: READY\r\n\r\nOK\r\n");
    m.shutdown().await;
}

#[tokio::test]
async fn radio_faults() {
    let m = modem(Profile::Quectel).await;
    let mut c = ready(m.port()).await;
    let set = |f: Fault| m.faults().set(Service::Modem, f).unwrap();
    set(Fault { no_signal: true, ..Default::default() });
    assert_eq!(c.cmd("AT+CSQ").await, "\r\n+CSQ: 99,99\r\n\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CREG?").await, "\r\n+CREG: 0,2\r\n\r\nOK\r\n");
    assert_eq!(c.cmd("AT+COPS?").await, "\r\n+COPS: 0\r\n\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CUSD=1,\"*384*7#\",15").await, "\r\n+CME ERROR: no network service\r\n");
    set(Fault { not_registered: true, ..Default::default() });
    assert_eq!(c.cmd("AT+CREG?").await, "\r\n+CREG: 0,3\r\n\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CUSD=1,\"*384*7#\",15").await, "\r\n+CME ERROR: no network service\r\n");
    set(Fault { cme_error: Some(31), ..Default::default() });
    assert_eq!(c.cmd("AT+CUSD=1,\"*384*7#\",15").await, "\r\n+CME ERROR: network timeout\r\n");
    m.faults().clear();
    assert_eq!(c.cmd("AT+CSQ").await, "\r\n+CSQ: 20,99\r\n\r\nOK\r\n");
    m.shutdown().await;
}

#[tokio::test]
async fn ussd_faults() {
    let m = modem(Profile::Quectel).await;
    let mut c = ready(m.port()).await;
    let set = |f: Fault| m.faults().set(Service::Modem, f).unwrap();

    set(Fault { release_mid_session: Some(2), ..Default::default() });
    c.cmd("AT+CUSD=1,\"*384*7#\",15").await;
    assert_eq!(cusd(&c.urc("+CUSD:").await).0, 1);
    c.cmd("AT+CUSD=1,\"1\",15").await;
    assert_eq!(c.urc("+CUSD:").await, "+CUSD: 2");

    set(Fault { cusd_before_ok: true, ..Default::default() });
    let text = c.cmd("AT+CUSD=1,\"*384*7*1#\",15").await;
    assert!(text.starts_with("\r\n+CUSD: 0,\"Your M-Pesa"), "{text:?}");
    assert!(text.ends_with("\r\nOK\r\n"), "{text:?}");

    set(Fault { extra_release: true, ..Default::default() });
    c.cmd("AT+CUSD=1,\"*384*7*1#\",15").await;
    assert_eq!(cusd(&c.urc("+CUSD:").await).0, 0);
    assert_eq!(c.urc("+CUSD:").await, "+CUSD: 2");

    set(Fault { network_timeout: true, ..Default::default() });
    assert_eq!(c.cmd("AT+CUSD=1,\"*384*7#\",15").await, "\r\nOK\r\n");
    assert_eq!(c.urc("+CUSD:").await, "+CUSD: 5");

    set(Fault { slow_network_ms: 300, ..Default::default() });
    let start = tokio::time::Instant::now();
    c.cmd("AT+CUSD=1,\"*384*7*1#\",15").await;
    assert_eq!(cusd(&c.urc("+CUSD:").await).0, 0);
    assert!(start.elapsed() >= Duration::from_millis(300));
    m.shutdown().await;
}

/// Parses an SMS-DELIVER PDU (TS 23.040 §9.2.2.1) independently: (sender, UDH, text).
fn parse_deliver(pdu: &str) -> (String, Option<Vec<u8>>, String) {
    let b = unhex(pdu);
    let mut i = 1 + b[0] as usize; // SMSC
    let first = b[i];
    assert_eq!(first & 0x03, 0, "TP-MTI deliver");
    i += 1;
    let oa_len = b[i] as usize;
    let ton = b[i + 1];
    let oa_octets = oa_len.div_ceil(2);
    let oa_raw = &b[i + 2..i + 2 + oa_octets];
    let sender = if ton == 0xD0 {
        unpack_gsm7(oa_raw).chars().take(oa_len * 4 / 7).collect()
    } else {
        let digits: String = oa_raw.iter().map(|o| format!("{}{}", o & 0x0F, o >> 4)).collect();
        format!("+{}", &digits[..oa_len])
    };
    i += 2 + oa_octets;
    let (pid, dcs) = (b[i], b[i + 1]);
    assert_eq!(pid, 0);
    i += 2 + 7; // SCTS
    let udl = b[i] as usize;
    let ud = &b[i + 1..];
    let (udh, body_start) =
        if first & 0x40 != 0 { (Some(ud[1..=ud[0] as usize].to_vec()), 1 + ud[0] as usize) } else { (None, 0) };
    let text = match dcs {
        0x00 => {
            // Septets: drop the header's septets (with the fill bits) from the unpacked stream.
            let header_septets = (body_start * 8).div_ceil(7);
            let all_bits: Vec<u8> = ud.iter().flat_map(|o| (0..8).map(move |k| (o >> k) & 1)).collect();
            let septets: Vec<u8> = all_bits
                .chunks_exact(7)
                .take(udl)
                .map(|c| c.iter().enumerate().fold(0u8, |a, (k, bit)| a | (bit << k)))
                .collect();
            septets[header_septets..].iter().map(|&s| if s == 0 { '@' } else { s as char }).collect()
        }
        0x08 => ucs2(&ud[body_start..udl].iter().map(|o| format!("{o:02X}")).collect::<String>()),
        other => panic!("dcs {other}"),
    };
    (sender, udh, text)
}

#[tokio::test]
async fn sms_delivery_in_text_and_pdu_mode() {
    let m = modem(Profile::Quectel).await;
    let mut c = ready(m.port()).await;
    assert_eq!(c.cmd("AT+CMGF=1").await, "\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CNMI=2,1,0,0,0").await, "\r\nOK\r\n");
    m.sms().send("+256772000100", "MPESA", "Your OTP is 482913").unwrap();
    assert_eq!(c.urc("+CMTI:").await, "+CMTI: \"SM\",1");
    let text = c.cmd("AT+CMGR=1").await;
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[0].starts_with("+CMGR: \"REC UNREAD\",\"MPESA\",,\""), "{text:?}");
    assert!(lines[0].ends_with("+12\""), "EAT is +12 quarter hours: {text:?}");
    assert_eq!(lines[1..], ["Your OTP is 482913", "OK"]);
    assert!(c.cmd("AT+CMGR=1").await.contains("REC READ"));
    assert_eq!(c.cmd("AT+CMGL=\"REC UNREAD\"").await, "\r\nOK\r\n");

    // PDU mode: the same message as an SMS-DELIVER, alphanumeric sender.
    assert_eq!(c.cmd("AT+CMGF=0").await, "\r\nOK\r\n");
    let text = c.cmd("AT+CMGR=1").await;
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    let len: usize = lines[0].rsplit(',').next().unwrap().parse().unwrap();
    let pdu = lines[1];
    assert_eq!(len, pdu.len() / 2 - 1 - unhex(&pdu[..2])[0] as usize, "length excludes the SMSC");
    assert_eq!(parse_deliver(pdu), ("MPESA".to_owned(), None, "Your OTP is 482913".to_owned()));

    // A number sender and a UCS2 text.
    m.sms().send("+256772000100", "+254712345678", "Habari ✓").unwrap();
    assert_eq!(c.urc("+CMTI:").await, "+CMTI: \"SM\",2");
    let text = c.cmd("AT+CMGR=2").await;
    let pdu = text.split("\r\n").filter(|l| !l.is_empty()).nth(1).unwrap().to_owned();
    assert_eq!(parse_deliver(&pdu), ("+254712345678".to_owned(), None, "Habari ✓".to_owned()));

    assert_eq!(c.cmd("AT+CMGD=1").await, "\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CMGR=1").await, "\r\n+CMS ERROR: 321\r\n");
    assert_eq!(c.cmd("AT+CMGD=1,4").await, "\r\nOK\r\n");
    assert_eq!(c.cmd("AT+CMGL=4").await, "\r\nOK\r\n");
    // Not for this SIM: stored at the centre, not delivered here.
    m.sms().send("+256772999999", "MPESA", "someone else").unwrap();
    assert_eq!(m.sms().messages_for("+256772999999").len(), 1);
    assert_eq!(c.cmd("AT+CMGL=4").await, "\r\nOK\r\n");
    m.shutdown().await;
}

#[tokio::test]
async fn a_long_message_arrives_as_concatenated_parts() {
    let m = modem(Profile::Quectel).await;
    let mut c = ready(m.port()).await;
    c.cmd("AT+CNMI=2,1,0,0,0").await;
    c.cmd("AT+CMGF=0").await;
    let long: String = (0..200).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    m.sms().send("+256772000100", "MTNMoMo", &long).unwrap();
    assert_eq!(c.urc("+CMTI:").await, "+CMTI: \"SM\",1");
    assert_eq!(c.urc("+CMTI:").await, "+CMTI: \"SM\",2");
    let mut joined = String::new();
    for (index, seq) in [(1, 1u8), (2, 2)] {
        let text = c.cmd(&format!("AT+CMGR={index}")).await;
        let pdu = text.split("\r\n").filter(|l| !l.is_empty()).nth(1).unwrap().to_owned();
        let (sender, udh, part) = parse_deliver(&pdu);
        assert_eq!(sender, "MTNMoMo");
        let udh = udh.expect("a UDH");
        assert_eq!((udh[0], udh[1], udh[3], udh[4]), (0x00, 0x03, 2, seq), "{udh:?}");
        joined.push_str(&part);
    }
    assert_eq!(joined, long);
    m.shutdown().await;
}

#[tokio::test]
async fn admin_sms_api_and_the_daraja_confirmation() {
    let sb = common::start().await;
    let (http, base) = (common::Http::default(), sb.base_url().to_owned());
    let m = Emulator::start_pty(ModemConfig {
        msisdn: "+254708920400".to_owned(),
        sms: Some(sb.sms().clone()),
        faults: Some(sb.faults().clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut c = ready(m.port()).await;
    c.cmd("AT+CMGF=1").await;
    c.cmd("AT+CNMI=2,1,0,0,0").await;

    // The modem's faults are the sandbox's: the admin API reaches it.
    let r = http.put_json(&format!("{base}/admin/faults/modem"), &serde_json::json!({"no_signal": true})).await;
    assert_eq!(r.status, http::StatusCode::OK, "{}", r.text());
    assert_eq!(c.cmd("AT+CSQ").await, "\r\n+CSQ: 99,99\r\n\r\nOK\r\n");
    let r = http.put_json(&format!("{base}/admin/faults/modem"), &serde_json::json!({"latency_ms": 5})).await;
    assert_eq!(r.status, http::StatusCode::BAD_REQUEST);
    http.delete(&format!("{base}/admin/faults/modem")).await;

    let body = serde_json::json!({"to": "+254708920400", "from": "MPESA", "text": "OTP 111222"});
    let r = http.post_json(&format!("{base}/admin/sms"), &body).await;
    assert_eq!(r.status, http::StatusCode::CREATED, "{}", r.text());
    c.urc("+CMTI:").await;
    assert!(c.cmd("AT+CMGR=1").await.contains("OTP 111222"));
    let r = http
        .post_json(&format!("{base}/admin/sms"), &serde_json::json!({"to": "07", "from": "MPESA", "text": "x"}))
        .await;
    assert_eq!(r.status, http::StatusCode::BAD_REQUEST);
    assert!(r.text().contains("`to`"), "{}", r.text());
    let listed = http.get(&format!("{base}/admin/sms")).await.text();
    assert!(listed.contains("OTP 111222") && !listed.contains("254708920400"), "numbers masked: {listed}");

    // An STK push that succeeds (suffix 00) sends the payer M-Pesa's confirmation.
    let sink = common::CallbackSink::start().await;
    let token = common::token(&http, &base).await;
    let r = common::push(&http, &base, &token, &common::push_body("254708920400", 10, &sink.url)).await;
    let checkout = r.json()["CheckoutRequestID"].as_str().unwrap().to_owned();
    let callbacks = sink.wait_for(&checkout, 1, DEADLINE).await;
    let items = callbacks[0].1["Body"]["stkCallback"]["CallbackMetadata"]["Item"].as_array().unwrap().clone();
    let receipt =
        items.iter().find(|i| i["Name"] == "MpesaReceiptNumber").unwrap()["Value"].as_str().unwrap().to_owned();
    assert_eq!(c.urc("+CMTI:").await, "+CMTI: \"SM\",2");
    let text = c.cmd("AT+CMGR=2").await;
    assert!(text.contains("\"MPESA\""), "{text:?}");
    assert!(text.contains(&format!("{receipt} Confirmed. Ksh10.00 paid to ")), "{text:?}");
    m.shutdown().await;
    sb.shutdown().await;
}

const GSMMODEM_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/gsmmodem_ussd.py");
/// The pinned third-party client (`.ci/run` installs it).
const GSMMODEM_PIN: &str = "python-gsmmodem-new==0.13.0";

/// A client nobody here wrote, python-gsmmodem-new, runs its own init sequence, reads the radio,
/// holds a USSD dialogue and lists the stored SMS (decoding our PDUs with its own decoder).
#[tokio::test]
async fn python_gsmmodem_new_drives_the_pty() {
    let check = tokio::process::Command::new("python3")
        .args(["-c", "import importlib.metadata as m, gsmmodem; print(m.version('python-gsmmodem-new'))"])
        .output()
        .await;
    match check {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return testkit::skip(format!("python-gsmmodem-new is not installed: {why} (pip install {GSMMODEM_PIN})"));
        }
        Err(e) => return testkit::skip(format!("cannot run python3: {e} (pip install {GSMMODEM_PIN})")),
    }
    let m = modem(Profile::Quectel).await;
    m.sms().send("+256772000100", "MPESA", "QK12AB34CD Confirmed. Ksh10.00 paid").unwrap();
    let run = tokio::process::Command::new("python3")
        .arg(GSMMODEM_SCRIPT)
        .arg(m.port())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = timeout(Duration::from_secs(90), run).await.expect("python-gsmmodem-new finishes").expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout {stdout}\nstderr {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(v["manufacturer"], "Quectel");
    assert_eq!(v["signal"], 20);
    assert_eq!(v["network"], "MTN UG");
    assert_eq!(v["menu"], MAIN_MENU);
    assert_eq!(v["menu_session_active"], true);
    assert_eq!(v["balance"], BALANCE);
    assert_eq!(v["balance_session_active"], false);
    assert_eq!(v["sms"], serde_json::json!([{"number": "MPESA", "text": "QK12AB34CD Confirmed. Ksh10.00 paid"}]));
    m.shutdown().await;
}
