use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer, V2Serializer};
use proptest::prelude::*;

use super::*;
use crate::new_histogram;

fn dense(values: &[u64]) -> Histogram<u64> {
    let mut h = new_histogram();
    for v in values {
        h.record(*v).unwrap();
    }
    h
}

fn theirs_compressed(h: &Histogram<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    V2DeflateSerializer::new().serialize(h, &mut out).unwrap();
    out
}

fn theirs_plain(h: &Histogram<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    V2Serializer::new().serialize(h, &mut out).unwrap();
    out
}

fn their_decode(raw: &[u8]) -> Result<Histogram<u64>, String> {
    Deserializer::new().deserialize(&mut std::io::Cursor::new(raw)).map_err(|e| format!("{e:?}"))
}

#[test]
fn the_layout_is_hdrhistograms_for_every_bucket() {
    let h = new_histogram();
    assert_eq!(FLEET_COUNTERS, h.distinct_values());
    for i in 0..FLEET_COUNTERS {
        let low = lowest_of(i);
        assert_eq!(h.lowest_equivalent(low), low, "bucket {i}");
        assert_eq!(h.highest_equivalent(low), highest_of(i), "bucket {i}");
        assert_eq!(h.median_equivalent(low), median_of(i), "bucket {i}");
        assert_eq!(index_of(low), Some(i));
        assert_eq!(index_of(highest_of(i)), Some(i));
    }
    assert_eq!(index_of(0), Some(0));
    assert_eq!(index_of(highest_of(FLEET_COUNTERS - 1) + 1), None);
    assert!(index_of(HIST_HIGH_US).is_some());
    assert_eq!(index_of(u64::MAX), None);
}

#[test]
fn an_empty_histogram_encodes_like_hdrhistograms() {
    let h = new_histogram();
    assert_eq!(SparseHistogram::new().encode(), theirs_compressed(&h));
    let mut plain = Vec::new();
    SparseHistogram::new().encode_plain(&mut plain);
    assert_eq!(plain, theirs_plain(&h));
    let back = SparseHistogram::decode(&plain).unwrap();
    assert!(back.is_empty());
    assert_eq!(back.max(), 0);
    assert_eq!(back.mean(), 0.0);
}

#[test]
fn refusals_say_what_is_wrong() {
    let err = |raw: &[u8]| SparseHistogram::decode(raw).unwrap_err();
    assert!(err(b"").contains("shorter than its cookie"));
    assert!(err(b"HIST").contains("unknown cookie"));
    let mut other = Histogram::<u64>::new_with_bounds(1, 1000, 2).unwrap();
    other.record(5).unwrap();
    assert!(err(&theirs_compressed(&other)).contains("the fleet uses 1..3600000000 at 3"));
    // A wider histogram of the same resolution is read, as long as its values fit the layout.
    let mut wide = Histogram::<u64>::new_with_bounds(1, 3_600_000_000 * 4, 3).unwrap();
    wide.record(3_000_000_000).unwrap();
    let read = SparseHistogram::decode(&theirs_compressed(&wide)).unwrap();
    assert_eq!(read.to_histogram(), dense(&[3_000_000_000]));
    wide.record(10_000_000_000).unwrap();
    assert!(err(&theirs_compressed(&wide)).contains("above the fleet layout"));
    // Cut anywhere, an encoding is refused, never misread.
    let full = theirs_compressed(&dense(&[1, 500, 70_000, 1_250_000, 3_000_000_000]));
    for cut in 0..full.len() {
        assert!(SparseHistogram::decode(&full[..cut]).is_err(), "cut at {cut}");
    }
    let plain = theirs_plain(&dense(&[1, 500, 70_000, 1_250_000, 3_000_000_000]));
    for cut in 0..plain.len() {
        assert!(SparseHistogram::decode(&plain[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn fuzzer_findings_decode_without_panicking() {
    // A zero run reaching usize::MAX followed by an empty counter (found by `cargo fuzz`).
    let runs_to_the_end = "HISTFAAAAC14nJNpmSzMwMCgygABzFCaEURcm7yEwf4DIv////v//yv//5gAwwAA9gAAAC2E";
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.decode(runs_to_the_end).unwrap();
    let _ = SparseHistogram::decode(&raw);
}

#[test]
fn a_deflate_bomb_is_refused_without_inflating_it() {
    // A header claiming a 64 MiB payload of zero runs, compressed to a few KB.
    let mut plain = Vec::new();
    SparseHistogram::new().encode_plain(&mut plain);
    plain.truncate(V2_HEADER);
    plain[4..8].copy_from_slice(&(64u32 << 20).to_be_bytes());
    plain.resize(V2_HEADER + (64 << 20), 0);
    let mut c = Compress::new(Compression::best(), true);
    let mut z = Vec::with_capacity(1 << 20);
    assert_eq!(c.compress_vec(&plain, &mut z, FlushCompress::Finish).unwrap(), Status::StreamEnd);
    let mut raw = V2_COMPRESSED_COOKIE.to_be_bytes().to_vec();
    raw.extend_from_slice(&(z.len() as u32).to_be_bytes());
    raw.extend_from_slice(&z);
    assert!(SparseHistogram::decode(&raw).unwrap_err().contains("inflates beyond"));
}

#[test]
fn a_histogram_with_every_bucket_filled_round_trips() {
    // Far larger than one DEFLATE output chunk: every counter of the layout, counts of all sizes.
    let mut d = new_histogram();
    for i in 0..FLEET_COUNTERS {
        d.record_n(lowest_of(i), 1 + (i as u64 * 7_919) % 1_000_003).unwrap();
    }
    let s = SparseHistogram::from(&d);
    assert_eq!(s.buckets(), FLEET_COUNTERS);
    let raw = s.encode();
    assert_eq!(raw, theirs_compressed(&d));
    assert_eq!(SparseHistogram::decode(&raw).unwrap(), s);
    assert_eq!(SparseHistogram::decode(&theirs_plain(&d)).unwrap(), s);
}

#[test]
fn compact_encodings_are_plain_when_small_and_deflated_when_large() {
    let small = SparseHistogram::from(&dense(&[300_000, 1_250_000]));
    let raw = small.encode_compact(256);
    assert_eq!(read_u32(&raw, 0), Some(V2_COOKIE));
    assert_eq!(SparseHistogram::decode(&raw).unwrap(), small);
    let wide = SparseHistogram::from(&dense(&(1..400).map(|i| i * 9_973).collect::<Vec<_>>()));
    let raw = wide.encode_compact(256);
    assert_eq!(raw, wide.encode());
    assert_eq!(SparseHistogram::decode(&raw).unwrap(), wide);
}

#[test]
fn records_clamp_to_the_fleet_range() {
    let mut s = SparseHistogram::new();
    s.record_n(0, 2);
    s.record_n(u64::MAX, 1);
    s.record_n(1_250_000, 0);
    let mut d = new_histogram();
    d.record_n(1, 2).unwrap();
    d.record(HIST_HIGH_US).unwrap();
    assert_eq!(s.to_histogram(), d);
    assert_eq!(s.len(), 3);
    assert_eq!(s.buckets(), 2);
}

fn values() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(
        prop_oneof![1u64..2_048, 2_048u64..5_000_000, 1u64..=HIST_HIGH_US, Just(HIST_HIGH_US)],
        0..200,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Bit for bit what HdrHistogram's serializers write, and read back by its deserializer.
    #[test]
    fn encodings_are_hdrhistograms_own(v in values()) {
        let d = dense(&v);
        let s = SparseHistogram::from(&d);
        prop_assert_eq!(s.encode(), theirs_compressed(&d));
        let mut plain = Vec::new();
        s.encode_plain(&mut plain);
        prop_assert_eq!(&plain, &theirs_plain(&d));
        prop_assert_eq!(their_decode(&s.encode()).unwrap(), d.clone());
    }

    /// What HdrHistogram writes reads back with the same counts, max and mean.
    #[test]
    fn decoding_hdrhistograms_encodings_keeps_every_count(v in values(), repeat in 1u64..1_000_000) {
        let mut d = dense(&v);
        for x in &v { d.record_n(*x, repeat).unwrap(); }
        for raw in [theirs_compressed(&d), theirs_plain(&d)] {
            let s = SparseHistogram::decode(&raw).unwrap();
            prop_assert_eq!(s.len(), d.len());
            prop_assert_eq!(s.to_histogram(), d.clone());
            prop_assert_eq!(s.max(), d.max());
            prop_assert_eq!(s.mean().to_bits(), d.mean().to_bits());
            prop_assert_eq!(s.iter().map(|r| (r.high, r.count)).collect::<Vec<_>>(),
                d.iter_recorded().map(|r| (r.value_iterated_to(), r.count_at_value())).collect::<Vec<_>>());
        }
    }

    /// Merging sparse histograms is merging dense ones.
    #[test]
    fn merges_equal_hdrhistograms(a in values(), b in values(), c in values()) {
        let (da, db, dc) = (dense(&a), dense(&b), dense(&c));
        let (sa, sb, sc) = (SparseHistogram::from(&da), SparseHistogram::from(&db), SparseHistogram::from(&dc));
        let mut want = da.clone();
        want.add(&db).unwrap();
        want.add(&dc).unwrap();
        let mut pairwise = sa.clone();
        pairwise.add(&sb);
        pairwise.add(&sc);
        prop_assert_eq!(pairwise.to_histogram(), want.clone());
        let summed = SparseHistogram::sum([&sa, &sb, &sc]);
        prop_assert_eq!(&summed, &pairwise);
        prop_assert_eq!(summed.encode(), theirs_compressed(&want));
        let mut into = dense(&a);
        sb.add_to(&mut into);
        sc.add_to(&mut into);
        prop_assert_eq!(into, want);
    }

    /// Any bytes: a histogram or a reason, never a panic; and where HdrHistogram reads a fleet
    /// histogram from them, the same counts.
    #[test]
    fn decoding_never_panics_and_agrees_with_hdrhistogram(
        v in values(),
        flips in prop::collection::vec((0usize..4096, any::<u8>()), 0..4),
        compressed in any::<bool>(),
    ) {
        let d = dense(&v);
        let mut raw = if compressed { theirs_compressed(&d) } else { theirs_plain(&d) };
        for (at, byte) in flips {
            let at = at % raw.len();
            raw[at] = byte;
        }
        // Where ours reads it, the header is a fleet one, so HdrHistogram's reading is cheap.
        if let Ok(s) = SparseHistogram::decode(&raw)
            && let Ok(t) = their_decode(&raw)
            && t.high() == HIST_HIGH_US
            && t.len() < u64::MAX / 2
        {
            prop_assert_eq!(s.to_histogram(), t);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = SparseHistogram::decode(&bytes);
    }
}
