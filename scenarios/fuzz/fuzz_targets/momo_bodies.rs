//! Whatever MTN MoMo (or something pretending to be it) sends, the parsers answer or refuse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scenarios::rails::momo::codes;

fuzz_target!(|data: &[u8]| {
    let _ = codes::parse_token(data);
    if let Some(e) = codes::parse_error(data) {
        let _ = (e.is_bad_subscription_key(), e.outcome(401), e.outcome(500));
    }
    if let Ok(s) = codes::parse_status(data) {
        let code = s.code();
        let _ = (codes::describe(&code), s.into_rail("3f1b6a34-7a4e-4c47-9b55-2a2f0f6b9a10"));
    }
    // The callback path is attacker-controlled too: split the input into path and body.
    let cut = data.iter().position(|b| *b == b'\n').unwrap_or(0);
    let (rest, body) = data.split_at(cut);
    let _ = codes::parse_callback(&String::from_utf8_lossy(rest), body);
});
