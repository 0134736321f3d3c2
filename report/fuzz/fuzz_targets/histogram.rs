//! The aggregator reads stored and received histograms with its own sparse V2 decoder: any bytes
//! give a histogram or a reason, a histogram re-encodes to bytes that read back the same, and
//! HdrHistogram's own deserializer agrees on what our encoder writes.
#![no_main]

use hdrhistogram::serialization::Deserializer;
use libfuzzer_sys::fuzz_target;
use report::SparseHistogram;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = SparseHistogram::decode(data) {
        let again = h.encode();
        assert_eq!(SparseHistogram::decode(&again).unwrap(), h);
        let theirs: hdrhistogram::Histogram<u64> =
            Deserializer::new().deserialize(&mut std::io::Cursor::new(&again)).unwrap();
        assert_eq!(theirs, h.to_histogram());
    }
});
