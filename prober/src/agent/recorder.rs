//! Per reporting interval, one HDR histogram and count per (journey, step, outcome, region,
//! profile, rail, reason), from each finished run's trace. A run belongs to the interval in which
//! it finished.
//!
//! Each run adds one journey-level sample (step `""`, the trace's outcome and duration) and one
//! sample per step it reached (the step's outcome and duration), so the journey-level counts of
//! an interval equal the runs that finished in it. A payment step's sample also carries the step
//! trace's `rail` and label-safe `reason` (`scenarios::rails::reason_label`), so payments split
//! by provider and provider code; every other series leaves both empty.
//!
//! A run's contributions are first flattened into a [`RunRecord`], the unit the agent's journal
//! (see `journal`) makes durable before the run counts in memory. Live recording and crash
//! recovery both go through [`Recorder::apply`], so a recovered report is the report the
//! interval would have become.

use std::{collections::BTreeMap, time::Duration};

use report::{Heartbeat, Report, Series, SeriesKey, SparseHistogram};
use scenarios::Trace;
use serde::{Deserialize, Serialize};

/// What one finished run adds to an interval: the journey-level sample and one per step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// When the run finished (UTC ms).
    pub finish_ms: i64,
    pub journey: String,
    pub profile: String,
    pub outcome: String,
    pub duration_us: u64,
    pub steps: Vec<StepRecord>,
}

/// One step's sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: String,
    pub outcome: String,
    pub duration_us: u64,
    /// A payment step's rail; empty otherwise. Absent from journals written before it existed,
    /// and left out of new ones when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rail: String,
    /// A payment step's label-safe provider code; empty when there is none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl RunRecord {
    pub fn of(t: &Trace, finish_ms: i64) -> RunRecord {
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        RunRecord {
            finish_ms,
            journey: t.journey.clone(),
            profile: t.profile.clone(),
            outcome: t.outcome.as_str().to_owned(),
            duration_us: us(t.duration),
            steps: t
                .steps
                .iter()
                .map(|s| {
                    // A reason only beside a rail: the report format refuses one alone.
                    let rail = s.rail.unwrap_or_default();
                    let reason = if rail.is_empty() { None } else { s.reason.as_deref() };
                    StepRecord {
                        step: s.name.clone(),
                        outcome: s.outcome.as_str().to_owned(),
                        duration_us: us(s.duration),
                        rail: rail.to_owned(),
                        reason: reason.unwrap_or_default().to_owned(),
                    }
                })
                .collect(),
        }
    }
}

/// The interval being recorded.
#[derive(Debug)]
pub struct Recorder {
    region: String,
    start_ms: i64,
    /// Sparse: an interval holds a handful of runs per series (the fleet layout dense is 188 KB).
    series: BTreeMap<SeriesKey, SparseHistogram>,
    runs_started: u64,
    runs_finished: u64,
}

/// A closed interval, ready to become a report.
#[derive(Debug)]
pub struct Interval {
    pub start_ms: i64,
    pub end_ms: i64,
    pub series: Vec<Series>,
    pub runs_started: u64,
    pub runs_finished: u64,
}

impl Recorder {
    pub fn new(region: impl Into<String>, start_ms: i64) -> Recorder {
        Recorder { region: region.into(), start_ms, series: BTreeMap::new(), runs_started: 0, runs_finished: 0 }
    }

    /// Start of the interval being recorded (UTC ms).
    pub fn start_ms(&self) -> i64 {
        self.start_ms
    }

    pub fn run_started(&mut self) {
        self.runs_started += 1;
    }

    /// Adds a finished run.
    pub fn record(&mut self, t: &Trace) {
        self.apply(&RunRecord::of(t, self.start_ms));
    }

    /// Adds a finished run's contributions.
    pub fn apply(&mut self, r: &RunRecord) {
        self.runs_finished += 1;
        let key = |step: &str, outcome: &str| SeriesKey {
            journey: r.journey.clone(),
            step: step.to_owned(),
            outcome: outcome.to_owned(),
            region: self.region.clone(),
            profile: r.profile.clone(),
            rail: String::new(),
            reason: String::new(),
        };
        let mut add = |k: SeriesKey, us| self.series.entry(k).or_default().record_n(us, 1);
        add(key("", &r.outcome), r.duration_us);
        for s in &r.steps {
            // The journey-level series (step "") never has a rail; a step without a name cannot
            // carry one either.
            let payment = !s.step.is_empty() && !s.rail.is_empty();
            let k = key(&s.step, &s.outcome);
            let k = if payment { SeriesKey { rail: s.rail.clone(), reason: s.reason.clone(), ..k } } else { k };
            add(k, s.duration_us);
        }
    }

    /// Closes the interval at `end_ms` (kept after its start) and starts the next one there.
    pub fn close(&mut self, end_ms: i64) -> Interval {
        let end_ms = end_ms.max(self.start_ms + 1);
        let series = std::mem::take(&mut self.series)
            .into_iter()
            .map(|(key, histogram)| Series { key, count: histogram.len(), histogram })
            .collect();
        let iv = Interval {
            start_ms: self.start_ms,
            end_ms,
            series,
            runs_started: std::mem::take(&mut self.runs_started),
            runs_finished: std::mem::take(&mut self.runs_finished),
        };
        self.start_ms = end_ms;
        iv
    }
}

impl Interval {
    /// The report for this interval. `heartbeat.runs_started` is filled from the interval.
    pub fn into_report(self, prober: &str, region: &str, seq: u64, mut heartbeat: Heartbeat) -> Report {
        heartbeat.runs_started = self.runs_started;
        Report {
            prober: prober.to_owned(),
            region: region.to_owned(),
            seq,
            interval_start_ms: self.start_ms,
            interval_end_ms: self.end_ms,
            sent_at_ms: self.end_ms,
            run: None,
            heartbeat,
            series: self.series,
        }
    }
}

#[cfg(test)]
mod tests {
    use scenarios::{
        Failure, Outcome,
        trace::{Phases, StepTrace},
    };

    use super::*;

    fn step(name: &str, ms: u64, outcome: Outcome) -> StepTrace {
        StepTrace {
            name: name.into(),
            kind: "http",
            start_offset: Duration::ZERO,
            duration: Duration::from_millis(ms),
            phases: Phases::default(),
            outcome,
            failure: None,
            excerpts: Vec::new(),
            throttled: Duration::ZERO,
            rail: None,
            reason: None,
            note: None,
        }
    }

    fn trace(steps: Vec<StepTrace>) -> Trace {
        let outcome = steps.iter().map(|s| s.outcome).find(|o| !o.is_good()).unwrap_or(Outcome::Ok);
        Trace {
            journey: "checkout-mpesa".into(),
            profile: "ea-3g".into(),
            seed: 1,
            run_id: "r".into(),
            started_at: String::new(),
            duration: Duration::from_millis(steps.iter().map(|s| s.duration.as_millis() as u64).sum()),
            outcome,
            failure: (outcome != Outcome::Ok).then(|| Failure::new(outcome, "x")),
            steps,
        }
    }

    #[test]
    fn runs_become_journey_and_step_series_with_matching_counts() {
        let mut r = Recorder::new("kampala", 1_000);
        for _ in 0..3 {
            r.run_started();
            r.record(&trace(vec![step("cart", 100, Outcome::Ok), step("pay", 900, Outcome::Ok)]));
        }
        r.run_started();
        r.record(&trace(vec![step("cart", 120, Outcome::Ok), step("pay", 15_000, Outcome::Timeout)]));
        r.run_started(); // still running when the interval closes
        let iv = r.close(16_000);
        assert_eq!((iv.start_ms, iv.end_ms, iv.runs_started, iv.runs_finished), (1_000, 16_000, 5, 4));
        let rep = iv.into_report("kla-1", "kampala", 7, Heartbeat { journeys: 1, ..Default::default() });
        let get = |step: &str, outcome: &str| {
            rep.series.iter().find(|s| s.key.step == step && s.key.outcome == outcome).map(|s| s.count)
        };
        assert_eq!(get("", "ok"), Some(3));
        assert_eq!(get("", "timeout"), Some(1));
        assert_eq!(get("cart", "ok"), Some(4));
        assert_eq!(get("pay", "ok"), Some(3));
        assert_eq!(get("pay", "timeout"), Some(1));
        assert_eq!(rep.series.len(), 5);
        let journey_level: u64 = rep.series.iter().filter(|s| s.key.step.is_empty()).map(|s| s.count).sum();
        assert_eq!(journey_level, 4, "journey-level counts equal finished runs");
        let pay_timeout = rep.series.iter().find(|s| s.key.step == "pay" && s.key.outcome == "timeout").unwrap();
        assert!((pay_timeout.histogram.max() as i64 - 15_000_000).abs() < 15_000, "µs, 3 digits");
        assert!(rep.series.iter().all(|s| s.key.region == "kampala" && s.key.profile == "ea-3g"));
        assert_eq!(rep.heartbeat.runs_started, 5);
        // It survives the wire.
        assert_eq!(report::decode(&report::encode(&rep)).unwrap(), rep);
    }

    fn payment(name: &str, ms: u64, outcome: Outcome, rail: &'static str, reason: Option<&str>) -> StepTrace {
        StepTrace { kind: "payment", rail: Some(rail), reason: reason.map(str::to_owned), ..step(name, ms, outcome) }
    }

    #[test]
    fn payment_steps_report_their_rail_and_reason_and_nothing_else_does() {
        let mut r = Recorder::new("kampala", 0);
        let run = |pay: StepTrace| trace(vec![step("cart", 100, Outcome::Ok), pay]);
        r.record(&run(payment("pay", 900, Outcome::Ok, "momo", Some("SUCCESSFUL"))));
        r.record(&run(payment("pay", 800, Outcome::Ok, "momo", Some("SUCCESSFUL"))));
        r.record(&run(payment("pay", 5_000, Outcome::BusinessError, "momo", Some("APPROVAL_REJECTED"))));
        r.record(&run(payment("pay", 30_000, Outcome::Timeout, "momo", None)));
        r.record(&run(payment("pay", 700, Outcome::Expected, "momo", Some("EXPIRED"))));
        let rep = r.close(15_000).into_report("kla-1", "kampala", 1, Heartbeat::default());
        let get = |outcome: &str, reason: &str| {
            rep.series
                .iter()
                .find(|s| s.key.step == "pay" && s.key.outcome == outcome && s.key.reason == reason)
                .map(|s| (s.key.rail.as_str(), s.count))
        };
        assert_eq!(get("ok", "SUCCESSFUL"), Some(("momo", 2)));
        assert_eq!(get("business_error", "APPROVAL_REJECTED"), Some(("momo", 1)));
        assert_eq!(get("timeout", ""), Some(("momo", 1)), "no code: a rail, no reason");
        assert_eq!(get("expected", "EXPIRED"), Some(("momo", 1)));
        for s in rep.series.iter().filter(|s| s.key.step != "pay") {
            assert_eq!((s.key.rail.as_str(), s.key.reason.as_str()), ("", ""), "{:?}", s.key);
        }
        assert_eq!(report::decode(&report::encode(&rep)).unwrap(), rep);
    }

    #[test]
    fn journal_records_without_rails_still_read_and_new_ones_keep_them() {
        // A record journaled before steps had rails.
        let old = r#"{"finish_ms":1,"journey":"j","profile":"p","outcome":"ok","duration_us":5,"steps":[{"step":"pay","outcome":"ok","duration_us":5}]}"#;
        let rec: RunRecord = serde_json::from_str(old).unwrap();
        assert_eq!((rec.steps[0].rail.as_str(), rec.steps[0].reason.as_str()), ("", ""));
        assert_eq!(serde_json::to_string(&rec).unwrap(), old, "empty labels stay off the journal");
        let new = RunRecord::of(&trace(vec![payment("pay", 900, Outcome::Ok, "mpesa-ke", Some("0"))]), 1);
        let back: RunRecord = serde_json::from_str(&serde_json::to_string(&new).unwrap()).unwrap();
        assert_eq!(back, new);
        assert_eq!((back.steps[0].rail.as_str(), back.steps[0].reason.as_str()), ("mpesa-ke", "0"));
    }

    #[test]
    fn an_empty_interval_is_still_a_report_and_the_next_starts_where_it_ended() {
        let mut r = Recorder::new("dar", 0);
        let iv = r.close(15_000);
        assert!(iv.series.is_empty());
        let rep = iv.into_report("dar-1", "dar", 1, Heartbeat::default());
        assert!(report::decode(&report::encode(&rep)).is_ok());
        assert_eq!(r.start_ms(), 15_000);
        // A close at the same instant still yields a valid (1 ms) interval.
        let iv = r.close(15_000);
        assert_eq!((iv.start_ms, iv.end_ms), (15_000, 15_001));
    }
}
