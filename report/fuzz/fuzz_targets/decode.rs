//! The aggregator decodes reports from the network: any bytes give a report or a refusal, and a
//! report that decodes re-encodes to the same report.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = report::decode(data) {
        assert_eq!(report::decode(&report::encode(&r)).unwrap(), r);
    }
});
