use proptest::prelude::*;

use super::*;

const GOLDEN: &[u8] = include_bytes!("../tests/golden/report-v1.json");
const GOLDEN_RAIL: &[u8] = include_bytes!("../tests/golden/report-v1-rail.json");

fn key(journey: &str, step: &str, outcome: &str) -> SeriesKey {
    SeriesKey {
        journey: journey.into(),
        step: step.into(),
        outcome: outcome.into(),
        region: "nairobi".into(),
        profile: "ea-3g".into(),
        ..SeriesKey::default()
    }
}

fn pay(outcome: &str, rail: &str, reason: &str) -> SeriesKey {
    SeriesKey { rail: rail.into(), reason: reason.into(), ..key("checkout-mpesa", "pay", outcome) }
}

fn sample() -> Report {
    let mut h = new_histogram();
    for v in [300_000u64, 850_000, 1_250_000] {
        h.record(v).unwrap();
    }
    Report {
        prober: "nbo-1".into(),
        region: "nairobi".into(),
        seq: 7,
        interval_start_ms: 1_795_000_000_000,
        interval_end_ms: 1_795_000_015_000,
        sent_at_ms: 1_795_000_015_020,
        run: None,
        heartbeat: Heartbeat { outbox_backlog: 1, journeys: 4, version: "0.1.0".into(), ..Default::default() },
        series: vec![Series { key: key("checkout-mpesa", "", "ok"), count: 3, histogram: (&h).into() }],
    }
}

#[test]
fn the_golden_report_decodes_with_a_third_party_histogram() {
    let r = decode(GOLDEN).unwrap();
    assert_eq!((r.prober.as_str(), r.region.as_str(), r.seq), ("nbo-1", "nairobi", 42));
    assert_eq!(r.interval_end_ms - r.interval_start_ms, 15_000);
    assert_eq!(r.heartbeat.journeys, 4);
    assert_eq!(r.series[0].histogram.len(), 5);
    let h = r.series[0].histogram.to_histogram();
    assert_eq!(h.value_at_quantile(0.5), 1_250_303, "the same p50 Python's hdrh reports");
    assert!(h.equivalent(h.max(), 2_100_000));
    assert_eq!(r.series[1].key.step, "wait-until-paid");
    assert_eq!(r.series[1].count, 0);
    // What we encode, we read back identically.
    assert_eq!(decode(&encode(&r)).unwrap(), r);
}

#[test]
fn the_rail_golden_report_round_trips_byte_for_byte() {
    let r = decode(GOLDEN_RAIL).unwrap();
    assert_eq!((r.prober.as_str(), r.region.as_str(), r.series.len()), ("kla-1", "kampala", 5));
    let k = |i: usize| (r.series[i].key.step.as_str(), r.series[i].key.rail.as_str(), r.series[i].key.reason.as_str());
    assert_eq!(k(0), ("", "", ""), "the journey-level series has no rail");
    assert_eq!(k(1), ("pay", "momo", "SUCCESSFUL"));
    assert_eq!(k(2), ("pay", "momo", "APPROVAL_REJECTED"));
    assert_eq!(k(3), ("collect", "airtel", ""), "a payment that ended without a code has a rail, no reason");
    assert_eq!(k(4), ("collect", "airtel", "unknown"));
    assert_eq!(r.series[1].histogram.len(), 5);
    let written = String::from_utf8(encode(&r)).unwrap();
    assert_eq!(
        written.as_bytes(),
        GOLDEN_RAIL.trim_ascii_end(),
        "what we read we write back, byte for byte:\n{written}"
    );
}

#[test]
fn a_report_without_payment_series_has_no_rail_or_reason_on_the_wire() {
    let golden = decode(GOLDEN).unwrap();
    assert!(golden.series.iter().all(|s| s.key.rail.is_empty() && s.key.reason.is_empty()));
    let wire = String::from_utf8(encode(&golden)).unwrap();
    assert!(!wire.contains("\"rail\"") && !wire.contains("\"reason\""), "{wire}");
    let mut r = sample();
    r.series.push(Series { key: pay("ok", "mpesa-ke", "0"), count: 0, histogram: SparseHistogram::new() });
    r.series.push(Series { key: pay("timeout", "mpesa-ke", ""), count: 0, histogram: SparseHistogram::new() });
    let wire = String::from_utf8(encode(&r)).unwrap();
    assert!(wire.contains(r#""profile":"ea-3g","rail":"mpesa-ke","reason":"0","count""#), "{wire}");
    assert!(wire.contains(r#""profile":"ea-3g","rail":"mpesa-ke","count""#), "an empty reason is left out: {wire}");
    assert_eq!(decode(&encode(&r)).unwrap(), r);
}

#[test]
fn rails_and_reasons_are_labels_and_belong_to_payment_steps() {
    let with = |rail: &str, reason: &str, step: &str| {
        let mut r = sample();
        r.series[0].key = SeriesKey { step: step.into(), ..pay("ok", rail, reason) };
        decode(&encode(&r)).map(|_| ()).map_err(|e| e.to_string())
    };
    assert_eq!(with("momo", "APPROVAL_REJECTED", "pay"), Ok(()));
    assert_eq!(with("mpesa-tz", "INS-9", "pay"), Ok(()));
    assert!(with("mo mo", "", "pay").unwrap_err().starts_with("series[0].rail: `mo mo` may use only"));
    assert!(with("momo", "a\"b", "pay").unwrap_err().starts_with("series[0].reason:"));
    assert!(with("momo", &"9".repeat(MAX_LABEL + 1), "pay").unwrap_err().starts_with("series[0].reason: longer than"));
    assert!(with("momo", "0", "").unwrap_err().starts_with("series[0].rail: only a step's series"));
    assert!(with("", "1037", "pay").unwrap_err().starts_with("series[0].reason: a reason is only given with a rail"));
    // The same step under two reasons is two series; the same key twice is still refused.
    let mut r = sample();
    r.series = vec![
        Series { key: pay("business_error", "mpesa-ke", "1032"), count: 0, histogram: SparseHistogram::new() },
        Series { key: pay("business_error", "mpesa-ke", "2001"), count: 0, histogram: SparseHistogram::new() },
    ];
    assert_eq!(decode(&encode(&r)).unwrap(), r);
    r.series.push(r.series[0].clone());
    assert!(decode(&encode(&r)).unwrap_err().to_string().contains("appears twice"));
}

#[test]
fn histograms_use_the_standard_compressed_encoding() {
    // The V2 compressed cookie, base64: every HdrHistogram library recognises "HISTF".
    let wire: serde_json::Value = serde_json::from_slice(&encode(&sample())).unwrap();
    assert!(wire["series"][0]["hist"].as_str().unwrap().starts_with("HISTF"));
}

fn refused(mutate: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut v: serde_json::Value = serde_json::from_slice(&encode(&sample())).unwrap();
    mutate(&mut v);
    decode(&serde_json::to_vec(&v).unwrap()).unwrap_err().to_string()
}

#[test]
fn bad_reports_are_refused_with_the_reason() {
    assert!(refused(|v| v["v"] = 2.into()).contains("version 2 is not supported"));
    assert!(refused(|v| v["seq"] = 0.into()).starts_with("seq:"));
    assert!(refused(|v| v["prober"] = "nbo 1".into()).starts_with("prober:"));
    assert!(refused(|v| v["interval_end_ms"] = v["interval_start_ms"].clone()).starts_with("interval_end_ms:"));
    assert!(refused(|v| v["series"][0]["count"] = 4.into()).contains("count 4 differs from the histogram's 3"));
    assert!(refused(|v| v["series"][0]["hist"] = "!!!".into()).contains("not base64"));
    assert!(refused(|v| v["series"][0]["hist"] = "SElTVA==".into()).contains("not an HdrHistogram"));
    assert!(refused(|v| v["series"][0]["region"] = "kampala".into()).contains("differs from the report's region"));
    assert!(refused(|v| v["extra"] = 1.into()).contains("unknown field `extra`"));
    assert!(refused(|v| v["series"][0]["extra"] = 1.into()).contains("unknown field `extra`"));
    assert!(
        refused(|v| {
            let s = v["series"][0].clone();
            v["series"].as_array_mut().unwrap().push(s);
        })
        .contains("appears twice")
    );
    // A histogram of another configuration would make merges inexact.
    let mut other = Histogram::<u64>::new_with_bounds(1, 1000, 2).unwrap();
    other.record(5).unwrap();
    let mut raw = Vec::new();
    hdrhistogram::serialization::Serializer::serialize(
        &mut hdrhistogram::serialization::V2DeflateSerializer::new(),
        &other,
        &mut raw,
    )
    .unwrap();
    let b64 = STANDARD.encode(raw);
    assert!(refused(|v| v["series"][0]["hist"] = b64.into()).contains("the fleet uses 1..3600000000 at 3"));
    assert!(matches!(decode(&vec![b' '; MAX_REPORT_BYTES + 1]), Err(DecodeError::TooLarge(_))));
    assert!(matches!(decode(b"{\"v\":1"), Err(DecodeError::Malformed(_))));
}

#[test]
fn the_outcome_vocabulary_is_closed() {
    let m = refused(|v| v["series"][0]["outcome"] = "pwned".into());
    assert!(m.starts_with("series[0].outcome: `pwned` is not an outcome; use one of ok, assertion_failed,"), "{m}");
    assert!(m.contains("expected"), "{m}");
    for o in OUTCOMES {
        let mut r = sample();
        r.series[0].key.outcome = o.into();
        assert_eq!(decode(&encode(&r)).unwrap(), r);
    }
}

#[test]
fn the_heartbeat_refuses_unknown_fields_and_reads_missing_ones_as_defaults() {
    let m = refused(|v| v["heartbeat"]["outbox_backlg"] = 1.into());
    assert!(m.contains("unknown field `outbox_backlg`"), "{m}");
    let mut v: serde_json::Value = serde_json::from_slice(&encode(&sample())).unwrap();
    v["heartbeat"] = serde_json::json!({});
    assert_eq!(decode(&serde_json::to_vec(&v).unwrap()).unwrap().heartbeat, Heartbeat::default());
    // A heartbeat without `interval_ms` (older probers) is the golden file's; one with it round-trips.
    assert_eq!(decode(GOLDEN).unwrap().heartbeat.interval_ms, None);
    let mut r = sample();
    r.heartbeat.interval_ms = Some(15_000);
    assert_eq!(decode(&encode(&r)).unwrap(), r);
    assert!(!String::from_utf8(encode(&sample())).unwrap().contains("interval_ms\":"));
    assert!(refused(|v| v["heartbeat"]["interval_ms"] = 0.into()).starts_with("heartbeat.interval_ms:"));
    assert!(refused(|v| v["heartbeat"]["interval_ms"] = 7_200_000.into()).starts_with("heartbeat.interval_ms:"));
    assert!(refused(|v| v["heartbeat"]["version"] = "x".repeat(200).into()).starts_with("heartbeat.version:"));
    assert!(refused(|v| v["heartbeat"]["version"] = "1.0\n\u{1b}[31m".into()).starts_with("heartbeat.version:"));
}

#[test]
fn journey_and_step_names_may_have_spaces_but_identifiers_may_not() {
    let mut r = sample();
    r.series[0].key.step = "Checks the balance".into();
    assert_eq!(decode(&encode(&r)).unwrap(), r);
    r.series[0].key.profile = "ea 3g".into();
    assert!(decode(&encode(&r)).unwrap_err().to_string().starts_with("series[0].profile"));
}

type AnySeries = (String, String, (String, String), Vec<u64>);

fn any_series() -> impl Strategy<Value = Vec<AnySeries>> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["ok", "timeout", "gateway_error"]),
            prop::sample::select(vec!["", "browse", "checkout"]),
            prop::sample::select(vec![("", ""), ("momo", ""), ("momo", "SUCCESSFUL"), ("mpesa-ke", "1037")]),
            prop::collection::vec(1u64..HIST_HIGH_US, 0..50),
        )
            .prop_map(|(o, s, (rail, reason), v)| {
                // Only a step's series has a rail.
                let (rail, reason) = if s.is_empty() { ("", "") } else { (rail, reason) };
                (o.to_owned(), s.to_owned(), (rail.to_owned(), reason.to_owned()), v)
            }),
        0..12,
    )
}

proptest! {
    /// Whatever a prober records, the aggregator decodes exactly the same report.
    #[test]
    fn encode_then_decode_is_the_identity(series in any_series(), seq in 1u64..u64::MAX / 2, start in 0i64..4_000_000_000_000) {
        let mut r = sample();
        r.seq = seq;
        r.interval_start_ms = start;
        r.interval_end_ms = start + 15_000;
        r.series.clear();
        let mut seen = std::collections::HashSet::new();
        for (outcome, step, (rail, reason), values) in series {
            let k = SeriesKey { rail, reason, ..key("j", &step, &outcome) };
            if !seen.insert(k.clone()) { continue; }
            let mut h = new_histogram();
            for v in &values { h.record(*v).unwrap(); }
            r.series.push(Series { key: k, count: values.len() as u64, histogram: (&h).into() });
        }
        prop_assert_eq!(decode(&encode(&r)).unwrap(), r);
    }

    /// The decoder never panics, whatever the bytes.
    #[test]
    fn decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode(&bytes);
    }

    /// Merging histograms (what the aggregator does) is associative and keeps every count.
    #[test]
    fn merging_is_associative(a in prop::collection::vec(1u64..HIST_HIGH_US, 0..40), b in prop::collection::vec(1u64..HIST_HIGH_US, 0..40), c in prop::collection::vec(1u64..HIST_HIGH_US, 0..40)) {
        let h = |v: &[u64]| { let mut h = new_histogram(); for x in v { h.record(*x).unwrap(); } h };
        let (ha, hb, hc) = (h(&a), h(&b), h(&c));
        let mut left = ha.clone(); left.add(&hb).unwrap(); left.add(&hc).unwrap();
        let mut bc = hb.clone(); bc.add(&hc).unwrap();
        let mut right = ha.clone(); right.add(&bc).unwrap();
        prop_assert_eq!(&left, &right);
        prop_assert_eq!(left.len(), (a.len() + b.len() + c.len()) as u64);
    }
}

#[test]
fn radios_round_trip_and_bad_ones_are_refused_by_field() {
    let up = RadioHealth {
        modem: "ttyUSB2".into(),
        signal_dbm: Some(-83),
        registration: "home".into(),
        operator: "MTN UG".into(),
        access: "utran".into(),
        sim: "ready".into(),
        read_at_ms: 1_700_000_000_000,
        error: String::new(),
    };
    assert!(up.is_up());
    let mut r = sample();
    r.heartbeat.radios = vec![up.clone()];
    assert_eq!(decode(&encode(&r)).unwrap(), r);
    // No radios, no field: older aggregators read the report as before.
    assert!(!String::from_utf8(encode(&sample())).unwrap().contains("radios"));
    let no_signal = RadioHealth { signal_dbm: None, ..up.clone() };
    assert!(!no_signal.is_up());
    assert!(!RadioHealth { registration: "searching".into(), ..up.clone() }.is_up());
    assert!(!RadioHealth { sim: "pin_required".into(), ..up.clone() }.is_up());

    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let up = up.clone();
        refused(move |v| {
            v["heartbeat"]["radios"] = serde_json::json!([serde_json::to_value(&up).unwrap()]);
            f(&mut v["heartbeat"]["radios"][0]);
        })
    };
    assert!(with(&|r| r["registration"] = "maybe".into()).starts_with("heartbeat.radios[0].registration:"));
    assert!(with(&|r| r["sim"] = "READY".into()).starts_with("heartbeat.radios[0].sim:"));
    assert!(with(&|r| r["signal_dbm"] = 12.into()).starts_with("heartbeat.radios[0].signal_dbm:"));
    assert!(with(&|r| r["modem"] = "/dev/ttyUSB2".into()).starts_with("heartbeat.radios[0].modem:"));
    assert!(with(&|r| r["imsi"] = "6410".into()).contains("unknown field `imsi`"));
    let m = refused(|v| {
        let one = serde_json::to_value(&up).unwrap();
        v["heartbeat"]["radios"] = serde_json::json!([one.clone(), one]);
    });
    assert!(m.contains("the same modem appears twice"), "{m}");
}
