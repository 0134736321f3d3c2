//! The `ussd` model and its load-time checks; the sessions are played in `scenarios/tests/journeys.rs`.

use std::{path::Path, time::Duration};

use crate::{
    journey::{Journey, parse_journey},
    steps::Kind,
    ussd::DialectName,
};

fn parse(src: &str) -> Result<Journey, String> {
    parse_journey(src, "j.yaml", Path::new(".")).map_err(|e| e.to_string())
}

const USSD: &str = r#"
name: balance
steps:
  - name: dial
    ussd:
      url: http://127.0.0.1:7700/ussd/at
      service_code: "*384*7#"
      phone: "+254700000100"
      dialogue:
        - expect: {contains: "1. My balance"}
        - input: "1"
          expect: {regex: "balance is KES [0-9,.]+"}
          end: true
"#;

#[test]
fn ussd_dialogues_start_with_the_dial() {
    let j = parse(USSD).unwrap();
    let Kind::Ussd(u) = &j.steps[0].kind else { panic!() };
    assert_eq!(u.dialect, DialectName::Africastalking);
    assert_eq!(u.dialogue.len(), 2);
    assert_eq!(j.steps[0].timeout, Duration::from_secs(185));
    let e = parse(&USSD.replace("        - expect: {contains: \"1. My balance\"}\n", "        - input: \"9\"\n"))
        .unwrap_err();
    assert!(e.contains("the first entry is the answer to the dial"), "{e}");
    let e = parse(&USSD.replace("dialect_none", "").replace("      url:", "      dialect: safaricom\n      url:"))
        .unwrap_err();
    assert!(e.contains("unknown variant `safaricom`"), "{e}");
}

#[test]
fn every_entry_after_the_dial_needs_an_input_and_templates_are_checked() {
    let e = parse(&USSD.replace("        - input: \"1\"\n          expect", "        - expect")).unwrap_err();
    assert!(e.contains("steps[0].ussd.dialogue[1]: step `dial`: every entry after the first needs an input"), "{e}");
    let e = parse(&USSD.replace("phone: \"+254700000100\"", "phone: \"{{ who }}\"")).unwrap_err();
    assert!(e.contains("steps[0].ussd.phone: step `dial`: `{{ who }}` is not defined here"), "{e}");
}

#[test]
fn via_modem_needs_a_modem_and_refuses_a_url() {
    let modem = USSD.replace(
        "      url: http://127.0.0.1:7700/ussd/at\n",
        "      via: modem\n      modem: {port: /dev/ttyUSB2, pin: \"{{ secrets.sim_pin }}\", charset: packed}\n",
    );
    let e = parse(&modem).unwrap_err();
    // The PIN's secret is checked like every template.
    assert!(e.contains("modem.pin"), "{e}");
    let ok = parse(&modem.replace(", pin: \"{{ secrets.sim_pin }}\"", "")).unwrap();
    let Kind::Ussd(u) = &ok.steps[0].kind else { panic!() };
    assert_eq!(u.via, super::Via::Modem);
    assert_eq!(ok.steps[0].timeout, Duration::from_secs(215), "the queue wait counts in the step's timeout");
    let e = parse(&modem.replace("      via: modem\n", "      via: modem\n      url: http://x/\n")).unwrap_err();
    assert!(e.contains("remove `url` for `via: modem`"), "{e}");
    let e = parse(&USSD.replace("      url: http://127.0.0.1:7700/ussd/at\n", "      via: modem\n")).unwrap_err();
    assert!(e.contains("`via: modem` needs a `modem:` block"), "{e}");
    let e = parse(&USSD.replace("      url: http://127.0.0.1:7700/ussd/at\n", "")).unwrap_err();
    assert!(e.contains("needs the app's callback URL"), "{e}");
    let e = parse(&modem.replace("charset: packed", "charset: packed, baud: 1234")).unwrap_err();
    assert!(e.contains("1234 is not a standard rate"), "{e}");
}
