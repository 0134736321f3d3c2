//! Whatever a USSD application answers, every dialect parses it or refuses it, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scenarios::ussd::{DialectName, dialect};

fuzz_target!(|data: &[u8]| {
    let Some((&status, body)) = data.split_first() else { return };
    let body = String::from_utf8_lossy(body);
    for &name in DialectName::ALL {
        if let Ok(screen) = dialect(name).parse(150 + u16::from(status), &body) {
            let _ = scenarios::ussd::screen_capacity(&screen.text);
        }
    }
});
