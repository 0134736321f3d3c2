//! Whatever Vodacom's M-Pesa OpenAPI (or something pretending to be it) sends, the parsers answer
//! or refuse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scenarios::rails::mpesa_tz::codes;

fuzz_target!(|data: &[u8]| {
    let answer = codes::parse_answer(data).ok();
    let _ = (codes::is_bad_session(401, answer.as_ref()), codes::is_bad_session(500, answer.as_ref()));
    let _ = codes::parse_session(data);
    let _ = codes::conversation_id(&String::from_utf8_lossy(data));
});
