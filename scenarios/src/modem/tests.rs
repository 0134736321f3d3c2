//! The engine over a real pseudo-terminal, against a scripted modem that answers as TS 27.007
//! describes (quirks included: `+CUSD` before `OK`, an extra `+CUSD: 2` after a release).

use std::{
    os::fd::{AsRawFd, OwnedFd},
    time::Duration,
};

use nix::fcntl::{FcntlArg, OFlag, fcntl};

use super::{
    CusdEvent, Modem, ModemError, ModemSpec,
    codec::Charset,
    pool::{self, QUEUE_WAIT},
    port::{Port, raw_mode},
};

/// Long enough for a loaded machine; the tests never wait for it unless something is wrong.
const LIMIT: Duration = Duration::from_secs(20);

/// A pseudo-terminal: the scripted modem holds the controller, the engine opens the device path.
pub(crate) struct Pty {
    pub path: String,
    pub master: Option<Port>,
    _slave: OwnedFd,
}

pub(crate) fn pty() -> Pty {
    let p = nix::pty::openpty(None, None).expect("openpty");
    raw_mode(&p.slave, None).expect("raw slave");
    // Through /proc: the device's /dev/pts name may be in another devpts instance (containers).
    let path = format!("/proc/self/fd/{}", p.slave.as_raw_fd());
    let flags = OFlag::from_bits_truncate(fcntl(&p.master, FcntlArg::F_GETFL).expect("getfl"));
    fcntl(&p.master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).expect("setfl");
    Pty { path, master: Some(Port::from_fd(p.master).expect("asyncfd")), _slave: p.slave }
}

/// The commands a modem answers on init, with a ready SIM.
pub(crate) const INIT: &[(&str, &str)] = &[
    ("ATZ", "OK"),
    ("ATE0", "OK"),
    ("AT+CMEE=2", "OK"),
    ("AT+CPIN?", "+CPIN: READY\r\n\r\nOK"),
    ("AT+CSCS=\"GSM\"", "OK"),
    ("AT+CUSD=1", "OK"),
];

/// Plays `script`: for each command received (which must start as given), writes the answer
/// lines framed by CR LF. Returns the commands it received, and its end of the port: closing it
/// would hang the line up and flush what the engine has not read yet.
pub(crate) async fn scripted(mut port: Port, script: Vec<(&'static str, &'static str)>) -> (Vec<String>, Port) {
    let mut got = Vec::new();
    let mut buf = Vec::new();
    for (expect, answer) in script {
        let cmd = loop {
            if let Some(end) = buf.iter().position(|b| *b == b'\r') {
                let c: Vec<u8> = buf.drain(..=end).collect();
                break String::from_utf8_lossy(&c[..end]).into_owned();
            }
            let mut chunk = [0u8; 256];
            let n = port.read(&mut chunk).await.expect("peer read");
            assert!(n > 0, "the engine closed the port; expected {expect:?}");
            buf.extend_from_slice(&chunk[..n]);
        };
        assert!(cmd.starts_with(expect), "expected {expect:?}, got {cmd:?}");
        got.push(cmd);
        let framed: String =
            answer.split("\r\n").map(|l| if l.is_empty() { String::new() } else { format!("\r\n{l}\r\n") }).collect();
        port.write_all(framed.as_bytes()).await.expect("peer write");
    }
    (got, port)
}

fn spec(path: &str, pin: Option<&str>) -> ModemSpec {
    ModemSpec { port: path.to_owned(), baud: 115_200, pin: pin.map(str::to_owned), charset: Charset::Gsm }
}

fn with_init(rest: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    INIT.iter().chain(rest).copied().collect()
}

#[tokio::test]
async fn dial_reply_end_with_cusd_before_ok() {
    let mut p = pty();
    let peer = tokio::spawn(scripted(
        p.master.take().unwrap(),
        with_init(&[
            // Quectel-style: the network's answer arrives before the OK of the dial.
            ("AT+CUSD=1,\"*384*7#\",15", "+CUSD: 1,\"Welcome, choose:\n1. Balance\",15\r\nOK"),
            ("AT+CUSD=1,\"1\",15", "OK\r\n+CUSD: 0,\"Your balance is KES 100\",15"),
        ]),
    ));
    let mut m = tokio::time::timeout(LIMIT, Modem::open(&spec(&p.path, None))).await.unwrap().unwrap();
    let first = m.dial("*384*7#", LIMIT).await.unwrap();
    assert_eq!(first, CusdEvent { m: 1, text: "Welcome, choose:\n1. Balance".into(), dcs: Some(15) });
    let last = m.reply("1", LIMIT).await.unwrap();
    assert_eq!((last.m, last.text.as_str()), (0, "Your balance is KES 100"));
    let (got, _port) = peer.await.unwrap();
    assert_eq!(got.len(), INIT.len() + 2);
    assert!(m.take_log().iter().any(|x| x.command.starts_with("AT+CUSD=1,\"1\"")));
}

#[tokio::test]
async fn sim_pin_is_entered_and_never_logged() {
    let mut p = pty();
    let peer = tokio::spawn(scripted(
        p.master.take().unwrap(),
        vec![
            ("ATZ", "OK"),
            ("ATE0", "OK"),
            ("AT+CMEE=2", "OK"),
            ("AT+CPIN?", "+CPIN: SIM PIN\r\nOK"),
            ("AT+CPIN=\"4821\"", "OK"),
            ("AT+CPIN?", "+CPIN: READY\r\nOK"),
            ("AT+CSCS=\"GSM\"", "OK"),
            ("AT+CUSD=1", "OK"),
        ],
    ));
    let mut m = tokio::time::timeout(LIMIT, Modem::open(&spec(&p.path, Some("4821")))).await.unwrap().unwrap();
    peer.await.unwrap();
    let log = format!("{:?}", m.take_log());
    assert!(log.contains("AT+CPIN=\\\"****\\\""), "{log}");
    assert!(!log.contains("4821"), "the PIN leaked: {log}");
}

#[tokio::test]
async fn sim_pin_missing_is_a_clear_error() {
    let mut p = pty();
    let _peer = tokio::spawn(scripted(
        p.master.take().unwrap(),
        vec![("ATZ", "OK"), ("ATE0", "OK"), ("AT+CMEE=2", "OK"), ("AT+CPIN?", "+CPIN: SIM PIN\r\nOK")],
    ));
    let e = tokio::time::timeout(LIMIT, Modem::open(&spec(&p.path, None))).await.unwrap().unwrap_err();
    assert!(e.to_string().contains("set modem.pin"), "{e}");
}

#[tokio::test]
async fn releases_unsupported_timeouts_and_errors() {
    let mut p = pty();
    let peer = tokio::spawn(scripted(
        p.master.take().unwrap(),
        with_init(&[
            ("AT+CUSD=1,\"*1#\",15", "OK\r\n+CUSD: 2,\"Session released\",15"),
            ("AT+CUSD=1,\"*2#\",15", "+CUSD: 4\r\nOK"),
            ("AT+CUSD=1,\"*3#\",15", "OK\r\n+CUSD: 5"),
            ("AT+CUSD=1,\"*4#\",15", "ERROR"),
            ("AT+CUSD=1,\"*5#\",15", "+CME ERROR: 30"),
            // A cancel, and the extra release some modems send after it, then a fresh dial.
            ("AT+CUSD=2", "OK\r\n+CUSD: 2"),
            ("AT+CUSD=1,\"*6#\",15", "OK\r\n+CUSD: 0,\"Done\",15"),
        ]),
    ));
    let mut m = tokio::time::timeout(LIMIT, Modem::open(&spec(&p.path, None))).await.unwrap().unwrap();
    assert_eq!(m.dial("*1#", LIMIT).await.unwrap().m, 2);
    assert_eq!(m.dial("*2#", LIMIT).await.unwrap().m, 4);
    assert_eq!(m.dial("*3#", LIMIT).await.unwrap().m, 5);
    assert!(matches!(m.dial("*4#", LIMIT).await, Err(ModemError::Error { .. })));
    let e = m.dial("*5#", LIMIT).await.unwrap_err();
    assert!(matches!(e, ModemError::Cme { code: Some(30), .. }), "{e:?}");
    assert!(e.to_string().contains("no network service"), "{e}");
    m.cancel().await;
    assert_eq!(m.dial("*6#", LIMIT).await.unwrap(), CusdEvent { m: 0, text: "Done".into(), dcs: Some(15) });
    peer.await.unwrap();
}

#[tokio::test]
async fn a_silent_modem_times_out() {
    let mut p = pty();
    let peer = tokio::spawn(scripted(p.master.take().unwrap(), with_init(&[("AT+CUSD=1,\"*9#\",15", "OK")])));
    let mut m = tokio::time::timeout(LIMIT, Modem::open(&spec(&p.path, None))).await.unwrap().unwrap();
    let e = m.dial("*9#", Duration::from_millis(300)).await.unwrap_err();
    assert!(matches!(e, ModemError::Timeout { .. }), "{e:?}");
    assert_eq!(e.outcome(), crate::Outcome::Timeout);
    peer.await.unwrap();
}

#[tokio::test]
async fn the_pool_waits_a_bounded_time_for_a_busy_modem() {
    let mut p = pty();
    let _peer = tokio::spawn(scripted(p.master.take().unwrap(), INIT.to_vec()));
    let s = spec(&p.path, None);
    let held = tokio::time::timeout(LIMIT, pool::acquire(&s, QUEUE_WAIT)).await.unwrap().unwrap();
    let e = pool::acquire(&s, Duration::from_millis(200)).await.unwrap_err();
    assert_eq!(e.outcome(), crate::Outcome::Timeout);
    assert!(e.to_string().contains("is busy with another journey"), "{e}");
    drop(held);
    // Free again: the open modem is handed over without a new init (the script has none left).
    let mut again = tokio::time::timeout(LIMIT, pool::acquire(&s, QUEUE_WAIT)).await.unwrap().unwrap();
    assert!(!again.modem().broken);
}

const JOURNEY: &str = r#"
name: modem-balance
steps:
  - name: dial
    ussd:
      via: modem
      modem: {port: "PORT", pin: "4821", queue_wait: 5s}
      service_code: "*384*7#"
      phone: "+254700000100"
      dialogue:
        - expect: {contains: "1. My balance"}
          end: false
        - input: "1"
          expect: {regex: "balance is KES [0-9,.]+"}
          end: true
"#;

async fn play_against(script: Vec<(&'static str, &'static str)>) -> (crate::Trace, Vec<String>) {
    let mut p = pty();
    let peer = tokio::spawn(scripted(p.master.take().unwrap(), script));
    let j =
        crate::journey::parse_journey(&JOURNEY.replace("PORT", &p.path), "j.yaml", std::path::Path::new(".")).unwrap();
    let profile = netem::profile::bundled("loopback").unwrap();
    let t = tokio::time::timeout(LIMIT * 2, crate::play(&j, &crate::PlayOptions::new(profile, 7))).await.unwrap();
    let (got, _port) = tokio::time::timeout(LIMIT, peer).await.expect("the script was played").unwrap();
    (t, got)
}

const PIN_INIT: &[(&str, &str)] = &[
    ("ATZ", "OK"),
    ("ATE0", "OK"),
    ("AT+CMEE=2", "OK"),
    ("AT+CPIN?", "+CPIN: SIM PIN\r\nOK"),
    ("AT+CPIN=\"4821\"", "OK"),
    ("AT+CPIN?", "+CPIN: READY\r\nOK"),
    ("AT+CSCS=\"GSM\"", "OK"),
    ("AT+CUSD=1", "OK"),
];

#[tokio::test]
async fn a_ussd_step_via_modem_plays_its_dialogue() {
    let script = PIN_INIT
        .iter()
        .copied()
        .chain([
            ("AT+CUSD=1,\"*384*7#\",15", "OK\r\n+CUSD: 1,\"1. My balance\n2. Send money\",15"),
            ("AT+CUSD=1,\"1\",15", "+CUSD: 0,\"Your balance is KES 1,000\",15\r\nOK"),
        ])
        .collect();
    let (t, got) = play_against(script).await;
    let json = serde_json::to_string_pretty(&t).unwrap();
    assert_eq!(t.outcome, crate::Outcome::Ok, "{json}");
    assert_eq!(got.len(), PIN_INIT.len() + 2);
    assert!(json.contains("AT+CUSD=1,\\\"1\\\",15"), "every AT exchange is traced: {json}");
    assert!(!json.contains("4821"), "the SIM PIN leaked: {json}");
    assert!(!json.contains("254700000100"), "the number leaked: {json}");
}

#[tokio::test]
async fn a_network_release_mid_dialogue_is_a_gateway_error() {
    let script = PIN_INIT
        .iter()
        .copied()
        .chain([
            ("AT+CUSD=1,\"*384*7#\",15", "OK\r\n+CUSD: 1,\"1. My balance\",15"),
            // Released by the network: nothing left to cancel.
            ("AT+CUSD=1,\"1\",15", "OK\r\n+CUSD: 2"),
        ])
        .collect();
    let (t, _) = play_against(script).await;
    let f = t.failure.expect("a failure");
    assert_eq!(f.outcome, crate::Outcome::GatewayError, "{f:?}");
    assert!(f.message.contains("hop 2: the network released the session"), "{f:?}");
}

#[tokio::test]
async fn radio_health_reads_the_radio() {
    let mut p = pty();
    let peer = tokio::spawn(scripted(
        p.master.take().unwrap(),
        with_init(&[
            ("AT+CPIN?", "+CPIN: READY\r\nOK"),
            ("AT+CSQ", "+CSQ: 20,99\r\nOK"),
            ("AT+CREG?", "+CREG: 0,1\r\nOK"),
            ("AT+CEREG?", "ERROR"),
            ("AT+COPS=3,0", "OK"),
            ("AT+COPS?", "+COPS: 0,0,\"Safaricom\",2\r\nOK"),
            ("AT+CESQ", "+CME ERROR: operation not supported"),
        ]),
    ));
    let h = tokio::time::timeout(LIMIT, pool::radio_health(&spec(&p.path, None))).await.unwrap();
    let (_got, _port) = tokio::time::timeout(LIMIT, peer).await.unwrap().unwrap();
    assert_eq!(h.signal_dbm, Some(-73));
    assert_eq!((h.registration.as_str(), h.sim.as_str()), ("home", "ready"));
    assert_eq!((h.operator.as_str(), h.access.as_str(), h.error.as_str()), ("Safaricom", "utran", ""));
    assert!(h.is_up());
}
