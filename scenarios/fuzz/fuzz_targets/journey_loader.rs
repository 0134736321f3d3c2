//! Any text given to the journey loader yields a journey or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(src) = std::str::from_utf8(data) {
        let _ = scenarios::journey::parse_journey(src, "fuzz.yaml", std::path::Path::new("/nonexistent"));
    }
});
