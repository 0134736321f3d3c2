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

    /// Counts a freshly stored report. Load runs are kept apart from SLO data.
    pub fn observe(&self, r: &report::Report, correction_ms: i64) {
        if r.run.is_some() {
            return;
        }
        let at_ms = r.interval_end_ms - correction_ms;
        let mut engine = self.engine.lock();
        for s in &r.series {
            engine.record(&SeriesEvent::of(&s.key, s.count, &s.histogram, at_ms));
            self.metrics.record(&s.key.journey, &s.key.step, &s.key.region, &s.key.outcome, s.count, &s.histogram);
        }
    }

    /// Evaluates every scope now and publishes the results; returns the alert transitions.
    pub fn evaluate(&self) -> Vec<Transition> {
        let now = self.clock.now_ms();
        let (statuses, transitions, firing) = {
            let mut engine = self.engine.lock();
            let (s, t) = engine.evaluate(now);
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
    let what = match &slo.selection.step {
        Some(step) => format!("step `{step}`"),
        None => "whole runs".to_owned(),
    };
    match &slo.sli {
        Sli::Availability => format!("availability of {what}: bad = failed runs"),
        Sli::Latency { threshold } => {
            format!("latency of {what}: bad = successful runs slower than {} ms", threshold.as_millis())
        }
    }
}
