//! Whatever Airtel Money (or something pretending to be it) sends, the parsers answer or refuse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scenarios::rails::airtel::codes;

fuzz_target!(|data: &[u8]| {
    let _ = codes::parse_token(data);
    let _ = codes::parse_collect(data);
    let _ = (codes::is_bad_token(401, data), codes::is_bad_token(500, data));
    if let Ok(r) = codes::parse_status(data) {
        let _ = (codes::is_pending(&r.status), codes::describe(&r.status));
    }
    let _ = codes::parse_callback(data);
});
