//! The whole ingest handler, `POST /api/v1/reports` (`post_report`: Authorization, Content-Length,
//! body limit, decoding, identity, runs per series, clock, horizon, store), on arbitrary headers
//! and bodies, against a real store in a temp dir and a clock the input moves. Bodies are raw
//! bytes, or reports built from the input (so that most of them get past the decoder), some with
//! a byte changed.
//!
//! Invariants, after every request:
//! - no panic, and the reply is `stored`/`duplicate` (200), `rejected` (400, 401, 403, 413) —
//!   never `unavailable`: nothing here makes the store fail;
//! - `rejected`: nothing stored (totals, series, that seq), and no prober's status changed but the
//!   sender's `rejected` count — and, for a refusal by the horizon alone, its clock reading;
//! - `duplicate`: nothing stored, no status changed but the sender's `duplicates` count;
//! - `stored`: the seq is recorded and the SLO totals grew by exactly the report's runs.
#![no_main]

use std::{
    path::PathBuf,
    sync::{Arc, OnceLock},
};

use aggregator::{
    clock::{Clock, ManualClock},
    config::{ProberBinding, ProberKind, Token},
    ingest::{IngestOptions, Ingestor, ProberLive, bearer_token, post_report},
    metrics::Metrics,
    store::{Selection, Store, StoreOptions},
};
use arbitrary::Arbitrary;
use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, header},
};
use libfuzzer_sys::fuzz_target;

const T0: i64 = 1_800_000_000_000;
const YEAR: i64 = 365 * 86_400_000;
const DAY: i64 = 86_400_000;
const PROBERS: [(&str, &str, &str, ProberKind); 3] = [
    ("nbo-1", "nairobi", "nbo-secret-0123456789", ProberKind::Edge),
    ("kla-1", "kampala", "kla-secret-0123456789", ProberKind::Edge),
    ("load", "load", "load-secret-0123456789", ProberKind::Load),
];

struct World {
    rt: tokio::runtime::Runtime,
    ingest: Arc<Ingestor>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    clock: ManualClock,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        // tmpfs when there is one: the store fsyncs every commit.
        let base =
            if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let dir = base.join(format!("aggregator-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let store = Arc::new(Store::open(&dir, StoreOptions::default()).unwrap());
        let clock = ManualClock::new(T0);
        let metrics = Arc::new(Metrics::new());
        let probers = PROBERS
            .iter()
            .map(|(id, region, token, kind)| ProberBinding {
                id: (*id).into(),
                region: (*region).into(),
                token: Token::new(*token),
                kind: *kind,
            })
            .collect();
        let opts = IngestOptions { max_body_bytes: 16 * 1024, ..IngestOptions::default() };
        let ingest = rt.block_on(async {
            Arc::new(Ingestor::new(probers, store.clone(), Arc::new(clock.clone()), metrics.clone(), opts).unwrap())
        });
        World { rt, ingest, store, metrics, clock }
    })
}

#[derive(Arbitrary, Debug)]
enum Credentials {
    None,
    /// One of the configured probers' tokens.
    Prober(u8),
    Other(String),
    /// The whole header value.
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Scheme {
    Bearer,
    Lower,
    Upper,
    Basic,
    Spaces,
}

#[derive(Arbitrary, Debug)]
struct SeriesShape {
    journey: u8,
    step: u8,
    /// 0..8 are the vocabulary.
    outcome: u8,
    region_of: u8,
    values: Vec<u32>,
    /// Added to the count (0: the histogram's own).
    count_delta: i8,
    /// Runs at one value (a large count without a large input).
    bulk: Option<u32>,
}

#[derive(Arbitrary, Debug)]
struct ReportShape {
    prober: u8,
    seq: u16,
    /// Interval end relative to the aggregator's clock, from a table of interesting places.
    end_at: u8,
    end_jitter_ms: i16,
    len_ms: u16,
    /// `sent_at − interval end`, from a table.
    sent_at: u8,
    sent_jitter_ms: i16,
    run: Option<u8>,
    series: Vec<SeriesShape>,
    backlog: u32,
    version: u8,
    interval_ms: Option<u32>,
    /// A heartbeat field nobody knows.
    extra_heartbeat_field: bool,
}

#[derive(Arbitrary, Debug)]
enum BodyShape {
    Raw(Vec<u8>),
    Report(ReportShape),
    Changed(ReportShape, u16, u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    credentials: Credentials,
    scheme: Scheme,
    content_length: Option<u32>,
    advance_ms: u16,
    body: BodyShape,
}

const OUTCOMES: [&str; 10] = [
    "ok",
    "assertion_failed",
    "timeout",
    "network_error",
    "tls_error",
    "gateway_error",
    "business_error",
    "expected",
    "pwned",
    "",
];

fn build(shape: &ReportShape, now: i64) -> Vec<u8> {
    let (id, region, ..) = PROBERS[shape.prober as usize % PROBERS.len()];
    let end_table = [0, -15_000, -DAY + 60_000, -30 * DAY, -40 * DAY, 60_000, 600_000, 3_600_000];
    let end = match shape.end_at % 10 {
        8 => 4_102_444_800_000, // 2100
        9 => 15_000,            // 1970
        i => now + end_table[i as usize],
    } + i64::from(shape.end_jitter_ms);
    let sent_table = [0, 40, -2_000, 180_000, 3_600_000, 3_700_000, YEAR, -YEAR];
    let sent_at = end + sent_table[shape.sent_at as usize % sent_table.len()] + i64::from(shape.sent_jitter_ms);
    let series = shape
        .series
        .iter()
        .take(8)
        .map(|s| {
            let mut h = report::SparseHistogram::new();
            for v in s.values.iter().take(64) {
                h.record_n(u64::from(*v).max(1), 1);
            }
            if let Some(n) = s.bulk {
                h.record_n(1_000, u64::from(n));
            }
            let count = h.len().saturating_add_signed(i64::from(s.count_delta));
            report::Series {
                key: report::SeriesKey {
                    journey: ["checkout", "ussd-balance", "a b"][s.journey as usize % 3].into(),
                    step: ["", "pay", "browse"][s.step as usize % 3].into(),
                    outcome: OUTCOMES[s.outcome as usize % OUTCOMES.len()].into(),
                    region: if s.region_of % 8 == 7 { "elsewhere".into() } else { region.into() },
                    profile: "ea-3g".into(),
                    // A payment step's labels now and then, a bad one among them.
                    rail: ["", "", "momo", "mo mo"][s.step as usize / 3 % 4].into(),
                    reason: ["", "SUCCESSFUL", "unknown"][s.outcome as usize / 8 % 3].into(),
                },
                count,
                histogram: h,
            }
        })
        .collect();
    let r = report::Report {
        prober: id.into(),
        region: region.into(),
        seq: u64::from(shape.seq),
        interval_start_ms: end - i64::from(shape.len_ms) * 10,
        interval_end_ms: end,
        sent_at_ms: sent_at,
        run: shape.run.map(|n| format!("run-{}", n % 4)),
        heartbeat: report::Heartbeat {
            outbox_backlog: u64::from(shape.backlog),
            version: ["0.1.0", "", "evil\n"][shape.version as usize % 3].into(),
            interval_ms: shape.interval_ms.map(u64::from),
            ..Default::default()
        },
        series,
    };
    let mut v: serde_json::Value = serde_json::from_slice(&report::encode(&r)).unwrap();
    if shape.extra_heartbeat_field {
        v["heartbeat"]["outbox_backlg"] = 1.into();
    }
    serde_json::to_vec(&v).unwrap()
}

fn headers(input: &Input) -> HeaderMap {
    let mut h = HeaderMap::new();
    let token = match &input.credentials {
        Credentials::None => None,
        Credentials::Prober(i) => Some(PROBERS[*i as usize % PROBERS.len()].2.to_owned()),
        Credentials::Other(t) => Some(t.clone()),
        Credentials::Raw(v) => {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert(header::AUTHORIZATION, v);
            }
            None
        }
    };
    if let Some(t) = token {
        let value = match input.scheme {
            Scheme::Bearer => format!("Bearer {t}"),
            Scheme::Lower => format!("bearer {t}"),
            Scheme::Upper => format!("BEARER {t}"),
            Scheme::Basic => format!("Basic {t}"),
            Scheme::Spaces => format!("  Bearer   {t}  "),
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(header::AUTHORIZATION, v);
        }
    }
    if let Some(n) = input.content_length {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    h
}

fn lives(w: &World) -> Vec<ProberLive> {
    PROBERS.iter().map(|p| w.ingest.live(p.0).unwrap()).collect()
}

/// `after` equals `before` but for the fields a refusal or duplicate of `who` may move.
fn unchanged(before: &[ProberLive], after: &[ProberLive], who: Option<usize>, counter: &str, clock_may_move: bool) {
    for (i, (b, a)) in before.iter().zip(after).enumerate() {
        let mut a = a.clone();
        if Some(i) == who {
            match counter {
                "rejected" => assert_eq!(a.rejected, b.rejected + 1),
                _ => assert_eq!(a.duplicates, b.duplicates + 1),
            }
            a.rejected = b.rejected;
            a.duplicates = b.duplicates;
            if clock_may_move {
                a.estimator = b.estimator.clone();
                a.offset_ms = b.offset_ms;
                a.skewed = b.skewed;
                a.clock_jump = b.clock_jump;
            }
        }
        assert_eq!(&a, b, "prober {} changed", PROBERS[i].0);
    }
}

fuzz_target!(|input: Input| {
    let w = world();
    w.clock.advance_ms(i64::from(input.advance_ms));
    let now = w.clock.now_ms();
    let body = match &input.body {
        BodyShape::Raw(b) => b.clone(),
        BodyShape::Report(s) => build(s, now),
        BodyShape::Changed(s, at, byte) => {
            let mut b = build(s, now);
            let i = *at as usize % b.len();
            b[i] = *byte;
            b
        }
    };
    let decoded = report::decode(&body).ok();
    let key = decoded.as_ref().map(|r| (r.prober.clone(), r.seq));
    let seen = |k: &Option<(String, u64)>| k.as_ref().is_some_and(|(p, s)| w.store.seen(p, *s).unwrap());
    let all = Selection::all();
    let (total_before, series_before, seen_before) =
        (w.store.counts(&all, 0, i64::MAX).unwrap().total, w.store.series_count(), seen(&key));
    let (live_before, horizon_before) = (lives(w), w.metrics.report_count("rejected", "horizon"));

    let headers = headers(&input);
    // The prober the request authenticates as, whatever the input meant.
    let who = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .and_then(|t| PROBERS.iter().position(|p| p.2 == t));
    let resp = w.rt.block_on(post_report(State(w.ingest.clone()), headers, Body::from(body)));
    let code = resp.status().as_u16();
    let bytes = w.rt.block_on(axum::body::to_bytes(resp.into_body(), usize::MAX)).unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let status = reply["status"].as_str().unwrap().to_owned();

    let total_after = w.store.counts(&all, 0, i64::MAX).unwrap().total;
    let live_after = lives(w);
    match status.as_str() {
        "stored" => {
            assert_eq!(code, 200);
            let r = decoded.expect("a stored report decodes");
            assert!(!seen_before && seen(&key), "the seq is recorded");
            let runs: u64 = if r.run.is_none() { r.series.iter().map(|s| s.count).sum() } else { 0 };
            assert_eq!(total_after, total_before + runs, "exactly its runs are added");
            let others = |l: &[ProberLive]| {
                l.iter().enumerate().filter(|(i, _)| Some(*i) != who).map(|(_, l)| l.clone()).collect::<Vec<_>>()
            };
            assert_eq!(others(&live_after), others(&live_before), "only the sender's status moves");
            let i = who.expect("a stored report was authenticated");
            assert_eq!(live_after[i].stored_total, live_before[i].stored_total + 1);
        }
        "duplicate" => {
            assert_eq!(code, 200);
            assert!(seen_before);
            assert_eq!((total_after, w.store.series_count()), (total_before, series_before));
            unchanged(&live_before, &live_after, who, "duplicates", false);
        }
        "rejected" => {
            assert!(matches!(code, 400 | 401 | 403 | 413), "{code} {reply}");
            assert_eq!((total_after, w.store.series_count()), (total_before, series_before), "{reply}");
            assert_eq!(seen(&key), seen_before);
            let horizon = w.metrics.report_count("rejected", "horizon") > horizon_before;
            let who = if code == 401 { None } else { who };
            unchanged(&live_before, &live_after, who, "rejected", horizon);
        }
        other => panic!("unexpected reply {other} ({code}): {reply}"),
    }
});
