//! `scenarios::modem::pdu` against the sandbox's SIM storage in PDU mode: the sandbox encodes
//! SMS-DELIVER PDUs (sandbox/src/modem/sms.rs), the prober decodes them. Neither was written
//! against the other; both follow 3GPP TS 23.040 §9.2.2.1 and TS 23.038.

use sandbox::modem::{at::Arg, codec::Charset, sms::SimStorage, smsc::Sms};
use scenarios::modem::pdu::{self, Deliver};

/// The PDU lines (`+CMGL: ...` then the hex) of every message stored, in PDU mode.
fn listed_pdus(sim: &mut SimStorage) -> Vec<String> {
    sim.command("+CMGF", Arg::Set("0"), Charset::Gsm).unwrap();
    let lines = sim.command("+CMGL", Arg::Set("4"), Charset::Gsm).unwrap();
    lines.into_iter().filter(|l| !l.starts_with('+')).collect()
}

fn decode_all(sim: &mut SimStorage) -> Vec<Deliver> {
    listed_pdus(sim).iter().map(|h| pdu::decode_deliver(h).unwrap()).collect()
}

#[test]
fn sandbox_deliver_pdus_decode() {
    let scts = chrono::DateTime::parse_from_rfc3339("2026-12-04T09:05:07+03:00").unwrap();
    let mut sim = SimStorage::default();
    let long = "Confirmed. ".repeat(20); // 220 septets: two concatenated parts
    for (from, text) in [("MPESA", "Ksh100 received"), ("+254712345678", "Habari \u{2713}"), ("MPESA", long.as_str())] {
        let sms = Sms { from: from.to_owned(), to: "+254700000001".to_owned(), text: text.to_owned(), scts };
        assert!(!sim.deliver(&sms).is_empty());
    }
    let decoded = decode_all(&mut sim);
    assert_eq!(decoded.len(), 4, "one, one, and two parts");
    assert_eq!(decoded[0].sender, "MPESA");
    assert_eq!(decoded[0].text, "Ksh100 received");
    assert_eq!(decoded[0].timestamp, "26/12/04 09:05:07+03:00");
    assert_eq!(decoded[1].sender, "+254712345678");
    assert_eq!(decoded[1].text, "Habari \u{2713}");
    assert!(decoded[2].part.is_some() && decoded[3].part.is_some());
    let whole = pdu::reassemble(decoded);
    assert_eq!(whole.len(), 3);
    assert_eq!(whole[2].text, long);
    assert_eq!(whole[2].part, None);
}
