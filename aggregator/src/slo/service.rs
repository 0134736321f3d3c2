//! The SLO engine inside the running aggregator: fed by ingest (stored scheduled reports only,
//! never duplicates or load runs), rebuilt from the store at start-up, evaluated on the
//! aggregator's clock, published to `/metrics`, the JSON API and Alertmanager.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use super::{
    engine::{Engine, Firing, Scope, ScopeStatus, SeriesEvent, Transition},
    export::SloMetrics,
    spec::{Sli, Slo},
};
use crate::{
    clock::SharedClock,
    store::{Selection, Store, StoreError},
};

/// The latest evaluation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evaluation {
    pub at_ms: i64,
    pub statuses: Vec<ScopeStatus>,
    pub firing: Vec<Firing>,
}

/// One point of a scope's history (for the status page's charts).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    pub at_ms: i64,
    pub burn_rate_5m: Option<f64>,
    pub burn_rate_1h: Option<f64>,
    pub error_budget_remaining: Option<f64>,
}

/// History kept per scope: one sample a minute for a day.
pub const HISTORY_SAMPLES: usize = 24 * 60;

/// The engine, its exporter and its latest results.
pub struct SloService {
    engine: Mutex<Engine>,
    /// Reports stored while an evaluation held the engine: ingest never waits for an evaluation
    /// (hundreds of ms at 10,000 scopes); the next observation or evaluation records them first.
    backlog: Mutex<Vec<(Arc<report::Report>, i64)>>,
    metrics: SloMetrics,
    clock: SharedClock,
    latest: RwLock<Evaluation>,
    history: RwLock<BTreeMap<Scope, VecDeque<Sample>>>,
}

impl SloService {
    pub fn new(slos: Vec<Slo>, clock: SharedClock) -> Arc<SloService> {
        let metrics = SloMetrics::new(&slos);
        Arc::new(SloService {
            engine: Mutex::new(Engine::new(slos)),
            backlog: Mutex::default(),
            metrics,
            clock,
            latest: RwLock::default(),
            history: RwLock::default(),
        })
    }

    /// The collector for `/metrics`.
    pub fn metrics(&self) -> &SloMetrics {
        &self.metrics
    }

    pub fn slos(&self) -> Vec<Slo> {
        self.engine.lock().slos().to_vec()
    }

    /// Rebuilds the windows from the store (the last period, plus an hour of late data ahead of
    /// `now`). Compacted hours land at the end of their hour.
    pub fn hydrate(&self, store: &Store, now_ms: i64) -> Result<usize, StoreError> {
        let longest = self.engine.lock().slos().iter().map(|s| s.period.duration()).max().unwrap_or(Duration::ZERO);
        let from = now_ms - longest.as_millis() as i64 - 3_600_000;
        let buckets = store.minutes(&Selection::all(), from, now_ms + 3_600_000)?;
        let mut engine = self.engine.lock();
        for b in &buckets {
            engine.record(&SeriesEvent::of(&b.key, b.count, &b.histogram, b.start_ms + b.width_ms));
        }
        Ok(buckets.len())
    }

    /// Counts a freshly stored report. Load runs are kept apart from SLO data. Never waits for an
    /// evaluation: while one holds the engine, the report joins the backlog.
    pub fn observe(&self, r: &Arc<report::Report>, correction_ms: i64) {
        if r.run.is_some() {
            return;
        }
        self.metrics.record_all(r.series.iter().map(|s| (&s.key, s.count, &s.histogram)));
        match self.engine.try_lock() {
            Some(mut engine) => {
                self.drain_backlog(&mut engine);
                record(&mut engine, r, correction_ms);
            }
            None => {
                self.backlog.lock().push((r.clone(), correction_ms));
                // The evaluation may have finished in between.
                if let Some(mut engine) = self.engine.try_lock() {
                    self.drain_backlog(&mut engine);
                }
            }
        }
    }

    /// Reports waiting to be recorded.
    pub fn backlog_len(&self) -> usize {
        self.backlog.lock().len()
    }

    fn drain_backlog(&self, engine: &mut Engine) {
        let waiting = std::mem::take(&mut *self.backlog.lock());
        for (r, correction_ms) in &waiting {
            record(engine, r, *correction_ms);
        }
    }

    /// Evaluates every scope now and publishes the results; returns the alert transitions.
    pub fn evaluate(&self) -> Vec<Transition> {
        let now = self.clock.now_ms();
        let (statuses, transitions, firing) = {
            let mut engine = self.engine.lock();
            self.drain_backlog(&mut engine);
            let (s, t) = engine.evaluate(now);
            self.drain_backlog(&mut engine);
            (s, t, engine.firing())
        };
        for t in &transitions {
            tracing::warn!(
                slo = %t.scope.slo, journey = %t.scope.journey, region = %t.scope.region,
                severity = t.severity.as_str(), firing = t.firing,
                "{}", if t.firing { "SLO alert firing" } else { "SLO alert resolved" }
            );
        }
        self.metrics.set_statuses(statuses.clone());
        {
            let mut history = self.history.write();
            for st in &statuses {
                let h = history.entry(st.scope.clone()).or_default();
                if h.back().is_some_and(|last| now - last.at_ms < 60_000) {
                    continue;
                }
                h.push_back(Sample {
                    at_ms: now,
                    burn_rate_5m: st.burn_rate(super::windows::W5M),
                    burn_rate_1h: st.burn_rate(super::windows::W1H),
                    error_budget_remaining: st.error_budget_remaining,
                });
                if h.len() > HISTORY_SAMPLES {
                    h.pop_front();
                }
            }
        }
        *self.latest.write() = Evaluation { at_ms: now, statuses, firing };
        transitions
    }

    /// The recorded history of one scope, oldest first.
    pub fn history(&self, scope: &Scope) -> Vec<Sample> {
        self.history.read().get(scope).map(|h| h.iter().copied().collect()).unwrap_or_default()
    }

    /// The latest evaluation.
    pub fn latest(&self) -> Evaluation {
        self.latest.read().clone()
    }

    /// Re-evaluates every `every` until `stop` turns true.
    pub async fn run(
        self: Arc<Self>,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
        on_eval: impl Fn(&SloService, Vec<Transition>) + Send + 'static,
    ) {
        loop {
            let transitions = self.evaluate();
            on_eval(&self, transitions);
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// One line describing an SLO's indicator, for the API and the status page.
pub fn describe_sli(slo: &Slo) -> String {
    let rails = slo.selection.rails.join(", ");
    let what = match (&slo.selection.step, rails.is_empty()) {
        (Some(step), true) => format!("step `{step}`"),
        (Some(step), false) => format!("step `{step}` on {rails}"),
        (None, false) => format!("payment steps on {rails}"),
        (None, true) => "whole runs".to_owned(),
    };
    match &slo.sli {
        Sli::Availability => format!("availability of {what}: bad = failed runs"),
        Sli::Latency { threshold } => {
            format!("latency of {what}: bad = successful runs slower than {} ms", threshold.as_millis())
        }
    }
}

/// Adds a report's series to the engine at the end of its (corrected) interval.
fn record(engine: &mut Engine, r: &report::Report, correction_ms: i64) {
    let at_ms = r.interval_end_ms - correction_ms;
    for s in &r.series {
        engine.record(&SeriesEvent::of(&s.key, s.count, &s.histogram, at_ms));
    }
}

#[cfg(test)]
mod tests {
    use report::{Heartbeat, Report, Series, SeriesKey, SparseHistogram};

    use super::*;
    use crate::{clock::ManualClock, slo::spec::bundled};

    const NOW: i64 = 1_800_000_000_000;

    fn failing_checkouts(seq: u64, end_ms: i64) -> Arc<Report> {
        let mut h = SparseHistogram::new();
        h.record_n(3_000_000, 4);
        let key = SeriesKey {
            journey: "checkout-mpesa".into(),
            step: String::new(),
            outcome: "gateway_error".into(),
            region: "kampala".into(),
            profile: "ea-3g".into(),
            ..SeriesKey::default()
        };
        Arc::new(Report {
            prober: "kla-1".into(),
            region: "kampala".into(),
            seq,
            interval_start_ms: end_ms - 15_000,
            interval_end_ms: end_ms,
            sent_at_ms: end_ms,
            run: None,
            heartbeat: Heartbeat::default(),
            series: vec![Series { key, count: 4, histogram: h }],
        })
    }

    fn kampala_checkout_events(e: &Evaluation) -> u64 {
        e.statuses
            .iter()
            .find(|s| s.scope.slo == "checkout-availability" && s.scope.region == "kampala")
            .map_or(0, |s| s.period.events)
    }

    #[test]
    fn a_report_stored_during_an_evaluation_waits_and_is_counted_once() {
        let svc = SloService::new(bundled(), Arc::new(ManualClock::new(NOW)));
        svc.observe(&failing_checkouts(1, NOW - 60_000), 0);
        {
            // An evaluation holds the engine: ingest must not wait for it.
            let _evaluating = svc.engine.lock();
            svc.observe(&failing_checkouts(2, NOW - 45_000), 0);
            svc.observe(&failing_checkouts(3, NOW - 30_000), 0);
            assert_eq!(svc.backlog_len(), 2);
        }
        // /metrics counted them at once.
        let runs: u64 = svc.metrics().journey_snapshot().runs.iter().map(|r| r.count).sum();
        assert_eq!(runs, 12);
        svc.evaluate();
        assert_eq!(svc.backlog_len(), 0);
        assert_eq!(kampala_checkout_events(&svc.latest()), 12, "every report once");
        // The next observation with the engine free drains nothing twice.
        svc.observe(&failing_checkouts(4, NOW - 15_000), 0);
        svc.evaluate();
        assert_eq!(kampala_checkout_events(&svc.latest()), 16);
    }
}
