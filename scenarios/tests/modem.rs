//! `ussd` steps `via: modem` and the modem's faults, end to end: the prober's AT engine
//! (`scenarios::modem`) against the sandbox's modem emulator on a real pseudo-terminal, whose
//! network side is the sandbox's USSD menu. Neither side was written against the other: both
//! follow 3GPP TS 27.007 §7.15 and TS 23.038 (docs/protocols/modem.md, sandbox/src/modem/README.md).

use std::{path::Path, time::Duration};

use netem::Profile;
use sandbox::{
    Fault, Service,
    modem::{Emulator, EmulatorHandle, ModemConfig, Profile as Family},
};
use scenarios::{Journey, Outcome, PlayOptions, Trace, journey::parse_journey, play};

fn bundled_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A bundled gateway journey played `via: modem` on `port` instead: the same dialogue, dialled
/// from the SIM.
fn through_modem(name: &str, port: &str, charset: &str) -> Journey {
    let path = bundled_dir().join(format!("{name}.yaml"));
    let src = std::fs::read_to_string(&path).unwrap();
    let gateway = "      url: \"{{ ussd_url }}\"\n      events_url: \"{{ events_url }}\"\n";
    assert!(src.contains(gateway), "{name} no longer names its gateway URLs the way this test rewrites them");
    let src = src
        .replace(gateway, &format!("      via: modem\n      modem: {{port: \"{port}\", charset: {charset}}}\n"))
        .replace("      dialect: africastalking\n", "");
    parse_journey(&src, &path.display().to_string(), bundled_dir()).unwrap()
}

fn inline(src: &str, port: &str) -> Journey {
    parse_journey(&src.replace("PORT", port), "inline.yaml", bundled_dir()).unwrap()
}

async fn run(j: &Journey) -> Trace {
    play(j, &PlayOptions::new(Profile::unshaped("loopback"), 7)).await
}

fn explain(t: &Trace) -> String {
    serde_json::to_string_pretty(t).unwrap()
}

async fn emulator(family: Family) -> EmulatorHandle {
    Emulator::start_pty(ModemConfig { profile: family, ..ModemConfig::default() }).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundled_ussd_journeys_pass_through_a_modem_of_each_family() {
    for (family, charset) in [(Family::Quectel, "gsm"), (Family::Simcom, "ira"), (Family::Huawei, "packed")] {
        let modem = emulator(family).await;
        for name in ["ussd-balance", "ussd-send-money"] {
            let t = run(&through_modem(name, modem.port(), charset)).await;
            assert_eq!(t.outcome, Outcome::Ok, "{family:?} {name}: {}", explain(&t));
            let json = explain(&t);
            // The dialled PIN and the subscriber's number never reach the trace.
            assert!(!json.contains("\"1234\"") && !json.contains("AT+CUSD=1,\"1234\""), "{json}");
            assert!(!json.contains("254700000100"), "{json}");
            assert!(t.steps[0].excerpts.iter().any(|e| e.request.contains("AT+CUSD=1")), "{json}");
        }
        modem.shutdown().await;
    }
}

/// A dialogue through the modem that checks the balance and then walks away.
const BALANCE: &str = r#"
name: modem-balance
steps:
  - name: balance
    ussd:
      via: modem
      modem: {port: "PORT"}
      service_code: "*384*7#"
      phone: "+256772000100"
      hop_timeout: 3s
      dialogue:
        - expect: {contains: "1. My balance"}
        - input: "1"
          expect: {contains: "balance is KES"}
          end: true
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_dial_goes_through_the_modem() {
    let modem = emulator(Family::Quectel).await;
    let src = BALANCE
        .replace("service_code: \"*384*7#\"", "service_code: \"*384*7#\"\n      dial: \"*384*7*1#\"")
        .replace("        - expect: {contains: \"1. My balance\"}\n        - input: \"1\"\n", "        -\n");
    let t = run(&inline(&src, modem.port())).await;
    assert_eq!(t.outcome, Outcome::Ok, "{}", explain(&t));
    modem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_modem_fault_lands_in_its_class() {
    let cases: Vec<(Fault, Outcome, &str)> = vec![
        (Fault { no_signal: true, ..Fault::default() }, Outcome::GatewayError, "no network service"),
        (Fault { not_registered: true, ..Fault::default() }, Outcome::GatewayError, "no network service"),
        (Fault { cme_error: Some(100), ..Fault::default() }, Outcome::GatewayError, "CME ERROR"),
        (Fault { release_mid_session: Some(2), ..Fault::default() }, Outcome::GatewayError, "released"),
        (Fault { network_timeout: true, ..Fault::default() }, Outcome::Timeout, ""),
        (Fault { slow_network_ms: 5_000, ..Fault::default() }, Outcome::Timeout, ""),
        (Fault { sim_pin: true, ..Fault::default() }, Outcome::GatewayError, "PIN"),
        // Quirks of real modems the engine takes in its stride.
        (Fault { cusd_before_ok: true, ..Fault::default() }, Outcome::Ok, ""),
        (Fault { extra_release: true, ..Fault::default() }, Outcome::Ok, ""),
    ];
    for (fault, want, words) in cases {
        // A fresh modem per case: a fault can leave the SIM or the session in its state.
        let modem = emulator(Family::Quectel).await;
        modem.faults().set(Service::Modem, fault.clone()).unwrap();
        let t = run(&inline(BALANCE, modem.port())).await;
        assert_eq!(t.outcome, want, "{fault:?}: {}", explain(&t));
        if let Some(f) = &t.failure {
            assert!(f.message.contains(words), "{fault:?}: {}", f.message);
        }
        modem.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sim_is_unlocked_with_the_pin_from_a_secret() {
    let modem = emulator(Family::Quectel).await;
    modem.faults().set(Service::Modem, Fault { sim_pin: true, ..Fault::default() }).unwrap();
    let dir = std::env::temp_dir().join(format!("modem-pin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("sim-pin"), "1234\n").unwrap();
    let src = BALANCE
        .replace("name: modem-balance\n", "name: modem-balance\nsecrets:\n  sim_pin: file:sim-pin\n")
        .replace("modem: {port: \"PORT\"}", "modem: {port: \"PORT\", pin: \"{{ secrets.sim_pin }}\"}")
        .replace("PORT", modem.port());
    let j = parse_journey(&src, "inline.yaml", &dir).unwrap();
    let t = run(&j).await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(t.outcome, Outcome::Ok, "{}", explain(&t));
    let json = explain(&t);
    assert!(!json.contains("CPIN=\"1234\""), "the SIM PIN reached the trace: {json}");
    modem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journeys_wanting_the_same_modem_take_turns_within_the_queue_wait() {
    let modem = emulator(Family::Quectel).await;
    let j = inline(BALANCE, modem.port());
    let (a, b) = tokio::join!(run(&j), run(&j));
    assert_eq!((a.outcome, b.outcome), (Outcome::Ok, Outcome::Ok), "{}\n{}", explain(&a), explain(&b));
    // One session at a time: a second journey that cannot wait long enough is told why.
    modem.faults().set(Service::Modem, Fault { slow_network_ms: 1_500, ..Fault::default() }).unwrap();
    let hurried =
        inline(&BALANCE.replace("modem: {port: \"PORT\"}", "modem: {port: \"PORT\", queue_wait: 200ms}"), modem.port());
    let (slow, _) = tokio::join!(run(&j), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = run(&hurried).await;
        assert_eq!(t.outcome, Outcome::Timeout, "{}", explain(&t));
        assert!(t.failure.unwrap().message.contains("busy"));
    });
    assert_eq!(slow.outcome, Outcome::Ok, "{}", explain(&slow));
    modem.shutdown().await;
}

/// Waits for a one-time password from `SavannaShop` and takes it out of the message.
const OTP: &str = r#"
name: sms-otp
steps:
  - name: otp
    sms:
      modem: {port: "PORT"}
      mode: MODE
      from: SavannaShop
      text: {regex: "code is [0-9]{6}"}
      within: 5s
    extract:
      otp: {regex: "code is ([0-9]{6})"}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_otp_is_found_in_text_and_pdu_mode_and_deleted() {
    for mode in ["text", "pdu"] {
        let modem = emulator(Family::Quectel).await;
        // An unrelated message first, then the OTP, both before the step starts.
        modem.sms().send("+256772000100", "+256772000999", "See you at 5").unwrap();
        modem.sms().send("+256772000100", "SavannaShop", "Your Savanna code is 482913. It expires in 5 min.").unwrap();
        let t = run(&inline(&OTP.replace("MODE", mode), modem.port())).await;
        assert_eq!(t.outcome, Outcome::Ok, "{mode}: {}", explain(&t));
        assert!(t.steps[0].excerpts.iter().any(|e| e.request.starts_with("AT+CMGD=")), "{mode}: {}", explain(&t));
        // Nothing more from SavannaShop: the next wait times out and says what did arrive.
        let t = run(&inline(&OTP.replace("MODE", mode).replace("within: 5s", "within: 1s"), modem.port())).await;
        assert_eq!(t.outcome, Outcome::Timeout, "{mode}: {}", explain(&t));
        let m = t.failure.unwrap().message;
        assert!(m.contains("no SMS from a sender exactly \"SavannaShop\""), "{m}");
        modem.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_waits_for_the_payers_m_pesa_confirmation_sms() {
    // The payer's phone is the modem's SIM: the sandbox's Daraja sends its confirmation there.
    let sb = sandbox::Sandbox::start(sandbox::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        callback_delay: Duration::from_millis(100),
        ..Default::default()
    })
    .await
    .unwrap();
    let modem = Emulator::start_pty(ModemConfig {
        msisdn: "+254700000100".into(),
        sms: Some(sb.sms().clone()),
        faults: Some(sb.faults().clone()),
        ..ModemConfig::default()
    })
    .await
    .unwrap();
    let path = bundled_dir().join("checkout-mpesa.yaml");
    let src = std::fs::read_to_string(&path).unwrap().replace("http://127.0.0.1:7700", sb.base_url())
        + &r#"
  - name: payment-sms
    sms:
      modem: {port: "PORT"}
      from: MPESA
      text: {regex: "^[A-Z0-9]{10} Confirmed\\. Ksh[0-9,]+\\.00 paid to "}
      within: 20s
    extract:
      receipt: {regex: "^([A-Z0-9]{10}) Confirmed"}
"#
        .replace("PORT", modem.port());
    let j = parse_journey(&src, &path.display().to_string(), bundled_dir()).unwrap();
    let t = play(&j, &PlayOptions::new(Profile::unshaped("loopback"), 7)).await;
    assert_eq!(t.outcome, Outcome::Ok, "{}", explain(&t));
    assert_eq!(t.steps.last().unwrap().name, "payment-sms");
    modem.shutdown().await;
    sb.shutdown().await;
}
