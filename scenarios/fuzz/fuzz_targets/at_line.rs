//! Whatever a modem sends on its AT port, the line parser classifies it, the USSD string
//! decoders decode it and the SMS-DELIVER decoder reads it (as sent, and as hex), never panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scenarios::modem::{
    codec::{self, Charset},
    line::{self, Line},
    pdu,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for l in text.split(['\r', '\n']) {
        if let Line::Cusd(c) = line::parse(l) {
            for cs in [Charset::Gsm, Charset::Ira, Charset::Ucs2, Charset::Packed] {
                let _ = cs.decode_ussd(c.text.unwrap_or_default(), c.dcs);
            }
        }
    }
    let _ = codec::ussd_unpack(data);
    let _ = codec::unpack7(data, usize::from(data.first().copied().unwrap_or(0) % 8), None);
    let _ = codec::ucs2_decode(data);
    let _ = pdu::decode_deliver(&text);
    if let Ok(d) = pdu::decode_deliver(&codec::to_hex(data)) {
        let _ = pdu::reassemble(vec![d.clone(), d]);
    }
});
