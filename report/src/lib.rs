//! # report — what a prober tells the aggregator
//!
//! Every reporting interval (15 s by default) a prober sends one [`Report`]: who it is (prober id,
//! region), a per-prober sequence number (the aggregator counts a `(prober, seq)` once, so retries
//! are safe), the interval's bounds and the send time (all UTC, Unix milliseconds), a heartbeat
//! (outbox backlog, drops), and one [`Series`] per `(journey, step, outcome, region, profile)` (a
//! payment step's series also by `rail` and `reason`): a run count and an HDR histogram of
//! durations in microseconds.
//!
//! All histograms share one configuration fleet-wide ([`new_histogram`]: 1 µs … 1 h, 3 significant
//! digits) so merges stay exact. Probers record into dense `Histogram<u64>`s; a report carries each
//! as a [`SparseHistogram`] (its non-empty buckets only, see [`sparse`]), which is what the
//! aggregator merges and stores. They travel in the standard HdrHistogram V2 compressed encoding
//! (DEFLATE), base64 in the JSON envelope, so any HdrHistogram library can read them. [`decode`]
//! checks everything before a report may be stored: sizes, identities, the closed outcome vocabulary
//! ([`OUTCOMES`]), intervals, unknown fields (refused at every level, heartbeat included),
//! histogram configuration, and that each series' count equals its histogram's.
//!
//! ```
//! let mut h = report::new_histogram();
//! h.record(1_250_000).unwrap(); // a 1.25 s checkout
//! let r = report::Report {
//!     prober: "nbo-1".into(), region: "nairobi".into(), seq: 1,
//!     interval_start_ms: 1_700_000_000_000, interval_end_ms: 1_700_000_015_000, sent_at_ms: 1_700_000_015_020,
//!     run: None, heartbeat: Default::default(),
//!     series: vec![report::Series { key: report::SeriesKey { journey: "checkout-mpesa".into(), step: String::new(),
//!         outcome: "ok".into(), region: "nairobi".into(), profile: "ea-4g-urban".into(), ..Default::default() },
//!         count: 1, histogram: (&h).into() }],
//! };
//! let bytes = report::encode(&r);
//! assert_eq!(report::decode(&bytes).unwrap(), r);
//! ```

pub mod sparse;
pub mod vocab;

use base64::{Engine, engine::general_purpose::STANDARD};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

pub use self::{
    sparse::SparseHistogram,
    vocab::{MAX_LABEL, OUTCOMES, Outcome, check_label, check_name, is_good},
};

/// Lowest recordable value: 1 µs.
pub const HIST_LOW_US: u64 = 1;
/// Highest recordable value: 1 h, in µs.
pub const HIST_HIGH_US: u64 = 3_600_000_000;
/// Significant decimal digits.
pub const HIST_SIGFIG: u8 = 3;

/// Format version; a decoder refuses any other.
pub const VERSION: u32 = 1;
/// Largest encoded report accepted (bytes).
pub const MAX_REPORT_BYTES: usize = 4 * 1024 * 1024;
/// Most series in one report.
pub const MAX_SERIES: usize = 10_000;
/// Shortest reporting interval a heartbeat may announce (a prober schedules nothing faster).
pub const MIN_ANNOUNCED_INTERVAL_MS: u64 = 100;
/// Longest interval one report may cover (an edge that slept through many intervals sends them
/// one by one from its outbox).
pub const MAX_INTERVAL_MS: i64 = 3_600_000;

/// The fleet-wide histogram configuration: durations in µs, 1 µs … 1 h, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(HIST_LOW_US, HIST_HIGH_US, HIST_SIGFIG).expect("valid fleet histogram bounds")
}

/// Records a duration, saturating at one hour.
pub fn record(h: &mut Histogram<u64>, d: std::time::Duration) {
    h.saturating_record((d.as_micros() as u64).clamp(HIST_LOW_US, HIST_HIGH_US));
}

/// One interval of one prober.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub prober: String,
    pub region: String,
    /// Per prober, starting at 1, +1 per report, never reused (kept across restarts).
    pub seq: u64,
    /// UTC Unix milliseconds, by the prober's clock.
    pub interval_start_ms: i64,
    pub interval_end_ms: i64,
    /// When the prober (last) sent it, by its clock: the aggregator compares it with its own.
    pub sent_at_ms: i64,
    /// Set for on-demand load runs (`prober load --report-to`): kept apart from SLO data.
    pub run: Option<String>,
    pub heartbeat: Heartbeat,
    pub series: Vec<Series>,
}

/// The prober's own health, sent with every report. Missing fields read as zero (or none), so a
/// newer aggregator understands older probers; unknown fields are refused, as everywhere else in a
/// report, so the aggregator is upgraded before the probers whenever the heartbeat gains a field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Heartbeat {
    /// Reports waiting in the outbox (this one included) when it was sent.
    pub outbox_backlog: u64,
    /// Reports dropped from the outbox since the prober started keeping it (size or age limits).
    pub outbox_dropped_total: u64,
    /// Journeys the prober has configured.
    pub journeys: u32,
    /// Runs started in this interval (finished or not).
    pub runs_started: u64,
    pub uptime_s: u64,
    /// Prober version.
    pub version: String,
    /// The prober's configured reporting interval (ms): the cadence the aggregator expects its
    /// reports at. A report's own length is no guide: the first interval after a start, and one
    /// rebuilt from the run journal, are shorter. Absent from probers before it was added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    /// The radio of each modem the edge dials USSD and reads SMS through, as last read (empty
    /// for an edge without modems, and from probers before modems existed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub radios: Vec<RadioHealth>,
}

/// Most modems one heartbeat may describe.
pub const MAX_RADIOS: usize = 16;

/// One modem's radio as the edge last read it (3GPP TS 27.007: `+CSQ`, `+CESQ`, `+CREG?`,
/// `+CEREG?`, `+COPS?`, `+CPIN?`). It says whether the *site* can reach the network at all, so the
/// aggregator tells "the Kampala edge's radio is down" apart from "USSD is down".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RadioHealth {
    /// The modem's name at the edge (a label: the device's file name or `host-port`; never a
    /// number or an IMSI).
    pub modem: String,
    /// Signal in dBm (`+CSQ` rssi, or `+CESQ` RSRP/RSCP where supported); none when the modem says
    /// it is unknown or undetectable (`+CSQ: 99,99`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal_dbm: Option<i32>,
    /// Registration, one of [`REGISTRATIONS`] (`+CREG?`/`+CEREG?` `<stat>`).
    pub registration: String,
    /// The operator's name or MCC+MNC (`+COPS?`), empty when none.
    pub operator: String,
    /// Radio access technology from `+COPS?` (`gsm`, `utran`, `eutran`, …), empty when unknown.
    pub access: String,
    /// SIM state, one of [`SIM_STATES`] (`+CPIN?`).
    pub sim: String,
    /// When it was read, UTC Unix milliseconds by the prober's clock.
    pub read_at_ms: i64,
    /// Why the modem could not be read (`no_answer`, `port_error`, a `+CME ERROR` text), empty
    /// when it answered.
    pub error: String,
}

/// What [`RadioHealth::registration`] may say.
pub const REGISTRATIONS: &[&str] = &["home", "roaming", "searching", "denied", "not_registered", "unknown"];
/// What [`RadioHealth::sim`] may say.
pub const SIM_STATES: &[&str] = &["ready", "pin_required", "puk_required", "absent", "error", "unknown"];

impl RadioHealth {
    /// The site can dial: the modem answered, its SIM is ready, it is registered (home or
    /// roaming) and it hears the network.
    pub fn is_up(&self) -> bool {
        self.error.is_empty()
            && self.sim == "ready"
            && matches!(self.registration.as_str(), "home" | "roaming")
            && self.signal_dbm.is_some()
    }
}

/// What a series counts: one (journey, step, outcome, region, profile, rail, reason). `step` is
/// empty for the journey-level series (one per run). `rail` and `reason` are set on payment steps'
/// series only and empty everywhere else; empty ones are left off the wire, so a report without
/// payment series reads, and encodes, exactly as before they existed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    pub journey: String,
    #[serde(default)]
    pub step: String,
    pub outcome: String,
    pub region: String,
    pub profile: String,
    /// The payment rail a payment step ran on (`mpesa-ke`, `momo`, `airtel`, `mpesa-tz`); empty
    /// for every other series.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rail: String,
    /// The provider's code the payment ended with, as the prober labels it (`0`, `1037`,
    /// `APPROVAL_REJECTED`, or `unknown` for a code its rail's table does not know); empty when
    /// the payment ended without a code, and for every series without a rail.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// Runs of one series in one interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub key: SeriesKey,
    /// Runs (equals the histogram's total count).
    pub count: u64,
    /// Durations in µs, in the fleet layout.
    pub histogram: SparseHistogram,
}

// === wire form ===

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u32,
    prober: String,
    region: String,
    seq: u64,
    interval_start_ms: i64,
    interval_end_ms: i64,
    sent_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run: Option<String>,
    heartbeat: Heartbeat,
    series: Vec<WireSeries>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSeries {
    #[serde(flatten)]
    key: SeriesKey,
    count: u64,
    /// HdrHistogram V2 compressed (DEFLATE), base64.
    hist: String,
}

/// Encodes a report for the wire (JSON, histograms V2-compressed and base64).
pub fn encode(r: &Report) -> Vec<u8> {
    let series = r
        .series
        .iter()
        .map(|s| WireSeries { key: s.key.clone(), count: s.count, hist: STANDARD.encode(s.histogram.encode()) })
        .collect();
    let w = Wire {
        v: VERSION,
        prober: r.prober.clone(),
        region: r.region.clone(),
        seq: r.seq,
        interval_start_ms: r.interval_start_ms,
        interval_end_ms: r.interval_end_ms,
        sent_at_ms: r.sent_at_ms,
        run: r.run.clone(),
        heartbeat: r.heartbeat.clone(),
        series,
    };
    serde_json::to_vec(&w).expect("reports always serialize")
}

/// One dense histogram in the standard V2 compressed encoding (what [`SparseHistogram::encode`]
/// writes for the same counts).
pub fn encode_histogram(h: &Histogram<u64>) -> Vec<u8> {
    SparseHistogram::from_histogram(h).encode()
}

/// Why a report was refused. Every variant names what is wrong, for the 4xx reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("report is {0} bytes, above the limit of {MAX_REPORT_BYTES}")]
    TooLarge(usize),
    #[error("not a report: {0}")]
    Malformed(String),
    #[error("report version {0} is not supported (this aggregator reads version {VERSION})")]
    Version(u32),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> DecodeError {
    DecodeError::Invalid { field: field.into(), reason: reason.into() }
}

/// Decodes and checks a report. Nothing about a refused report is trusted.
pub fn decode(bytes: &[u8]) -> Result<Report, DecodeError> {
    if bytes.len() > MAX_REPORT_BYTES {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    let w: Wire = serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if w.v != VERSION {
        return Err(DecodeError::Version(w.v));
    }
    label("prober", &w.prober)?;
    label("region", &w.region)?;
    if let Some(run) = &w.run {
        label("run", run)?;
    }
    if w.seq == 0 {
        return Err(invalid("seq", "sequence numbers start at 1"));
    }
    if w.interval_end_ms <= w.interval_start_ms {
        return Err(invalid("interval_end_ms", "the interval must end after it starts"));
    }
    if w.interval_end_ms - w.interval_start_ms > MAX_INTERVAL_MS {
        return Err(invalid("interval_end_ms", format!("an interval may cover at most {MAX_INTERVAL_MS} ms")));
    }
    if w.interval_start_ms < 0 || w.sent_at_ms < 0 {
        return Err(invalid("interval_start_ms", "times are Unix milliseconds, not negative"));
    }
    if !w.heartbeat.version.is_empty() {
        name("heartbeat.version", &w.heartbeat.version)?;
    }
    if let Some(every) = w.heartbeat.interval_ms
        && !(MIN_ANNOUNCED_INTERVAL_MS..=MAX_INTERVAL_MS as u64).contains(&every)
    {
        return Err(invalid(
            "heartbeat.interval_ms",
            format!("{every} is not a reporting interval ({MIN_ANNOUNCED_INTERVAL_MS} to {MAX_INTERVAL_MS} ms)"),
        ));
    }
    radios(&w.heartbeat.radios)?;
    if w.series.len() > MAX_SERIES {
        return Err(invalid("series", format!("{} series, above the limit of {MAX_SERIES}", w.series.len())));
    }
    let mut series = Vec::with_capacity(w.series.len());
    let mut seen = std::collections::HashSet::with_capacity(w.series.len());
    for (i, s) in w.series.into_iter().enumerate() {
        let at = |f: &str| format!("series[{i}].{f}");
        name(&at("journey"), &s.key.journey)?;
        if !s.key.step.is_empty() {
            name(&at("step"), &s.key.step)?;
        }
        s.key.outcome.parse::<Outcome>().map_err(|reason| invalid(at("outcome"), reason))?;
        label(&at("profile"), &s.key.profile)?;
        payment_labels(&s.key, &at)?;
        if s.key.region != w.region {
            return Err(invalid(
                at("region"),
                format!("`{}` differs from the report's region `{}`", s.key.region, w.region),
            ));
        }
        if !seen.insert(s.key.clone()) {
            return Err(invalid(at("journey"), "the same series appears twice"));
        }
        let raw = STANDARD.decode(&s.hist).map_err(|e| invalid(at("hist"), format!("not base64: {e}")))?;
        let h = SparseHistogram::decode(&raw).map_err(|e| invalid(at("hist"), e))?;
        if h.len() != s.count {
            return Err(invalid(at("count"), format!("count {} differs from the histogram's {}", s.count, h.len())));
        }
        series.push(Series { key: s.key, count: s.count, histogram: h });
    }
    Ok(Report {
        prober: w.prober,
        region: w.region,
        seq: w.seq,
        interval_start_ms: w.interval_start_ms,
        interval_end_ms: w.interval_end_ms,
        sent_at_ms: w.sent_at_ms,
        run: w.run,
        heartbeat: w.heartbeat,
        series,
    })
}

/// `rail` and `reason`: identifiers when set; a rail only on a step series, a reason only with a
/// rail.
fn payment_labels(k: &SeriesKey, at: &dyn Fn(&str) -> String) -> Result<(), DecodeError> {
    if !k.rail.is_empty() {
        label(&at("rail"), &k.rail)?;
        if k.step.is_empty() {
            return Err(invalid(at("rail"), "only a step's series has a rail, not the journey-level one"));
        }
    }
    if !k.reason.is_empty() {
        label(&at("reason"), &k.reason)?;
        if k.rail.is_empty() {
            return Err(invalid(at("reason"), "a reason is only given with a rail"));
        }
    }
    Ok(())
}

/// Journey and step names ([`check_name`]).
fn name(field: &str, v: &str) -> Result<(), DecodeError> {
    check_name(v).map_err(|reason| invalid(field, reason))
}

/// The heartbeat's radios: at most [`MAX_RADIOS`], each named by a label once, states from the
/// documented vocabularies, free text (operator, error) as names.
fn radios(rs: &[RadioHealth]) -> Result<(), DecodeError> {
    if rs.len() > MAX_RADIOS {
        return Err(invalid("heartbeat.radios", format!("{} radios, above the limit of {MAX_RADIOS}", rs.len())));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, r) in rs.iter().enumerate() {
        let at = |f: &str| format!("heartbeat.radios[{i}].{f}");
        label(&at("modem"), &r.modem)?;
        if !seen.insert(r.modem.as_str()) {
            return Err(invalid(at("modem"), "the same modem appears twice"));
        }
        if !REGISTRATIONS.contains(&r.registration.as_str()) {
            return Err(invalid(at("registration"), format!("must be one of {}", REGISTRATIONS.join(", "))));
        }
        if !SIM_STATES.contains(&r.sim.as_str()) {
            return Err(invalid(at("sim"), format!("must be one of {}", SIM_STATES.join(", "))));
        }
        if let Some(dbm) = r.signal_dbm
            && !(-160..=0).contains(&dbm)
        {
            return Err(invalid(at("signal_dbm"), format!("{dbm} dBm is not a received signal (-160 to 0)")));
        }
        if !r.access.is_empty() {
            label(&at("access"), &r.access)?;
        }
        for (f, v) in [("operator", &r.operator), ("error", &r.error)] {
            if !v.is_empty() {
                name(&at(f), v)?;
            }
        }
    }
    Ok(())
}

/// Identifiers: prober, region, profile, run, rail, reason ([`check_label`]).
fn label(field: &str, v: &str) -> Result<(), DecodeError> {
    check_label(v).map_err(|reason| invalid(field, reason))
}

#[cfg(test)]
mod tests;
