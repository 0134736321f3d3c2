//! Whatever Daraja (or something pretending to be it) sends, the parsers answer or refuse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scenarios::rails::mpesa_ke::codes;

fuzz_target!(|data: &[u8]| {
    let _ = codes::parse_token(data);
    let _ = codes::parse_push(data);
    let _ = codes::parse_callback(data);
    let _ = codes::parse_query(data);
    if let Some(e) = codes::parse_envelope(data) {
        let _ = (e.is_pending(), e.is_bad_token(), e.outcome(500));
    }
    let _ = scenarios::mask::mask_phones(&String::from_utf8_lossy(data));
});
