//! `prober load JOURNEY.yaml`: every iteration is a whole journey, played as `prober once` plays
//! it (its own connections, as a phone opening the app would), each step recorded.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use parking_lot::Mutex;
use scenarios::{Journey, PlayOptions};
use tokio::time::Instant;

use super::{runner::Iteration, stats::Stats};

/// Series names of a journey run: the journey, then its steps in order.
pub fn series_names(j: &Journey) -> Vec<String> {
    std::iter::once(j.name.clone()).chain(j.steps.iter().map(|s| s.name.clone())).collect()
}

pub struct JourneyWorker {
    journey: Arc<Journey>,
    opts: PlayOptions,
    /// Step name → series index.
    steps: Arc<HashMap<String, usize>>,
    /// Iterations begun by every worker (each gets its own seed: base + number).
    counter: Arc<AtomicU64>,
    base_seed: u64,
}

impl JourneyWorker {
    pub fn pool(journey: Arc<Journey>, opts: PlayOptions, workers: usize) -> Vec<JourneyWorker> {
        let steps: Arc<HashMap<String, usize>> =
            Arc::new(journey.steps.iter().enumerate().map(|(i, s)| (s.name.clone(), i + 1)).collect());
        let counter = Arc::new(AtomicU64::new(0));
        let base_seed = opts.seed;
        (0..workers)
            .map(|_| JourneyWorker {
                journey: journey.clone(),
                opts: opts.clone(),
                steps: steps.clone(),
                counter: counter.clone(),
                base_seed,
            })
            .collect()
    }
}

impl Iteration for JourneyWorker {
    async fn run(&mut self, intended: Instant, stats: &Mutex<Stats>) -> bool {
        self.opts.seed = self.base_seed.wrapping_add(self.counter.fetch_add(1, Relaxed));
        let started = Instant::now();
        let trace = scenarios::play(&self.journey, &self.opts).await;
        let end = Instant::now();
        let lateness = started - intended;
        let mut s = stats.lock();
        s.series[0].record(trace.outcome, end - intended, end - started);
        for (i, step) in trace.steps.iter().enumerate() {
            if let Some(&idx) = self.steps.get(&step.name) {
                // The user who arrived late waited before the first step: that wait is theirs.
                let corrected = if i == 0 { step.duration + lateness } else { step.duration };
                s.series[idx].record(step.outcome, corrected, step.duration);
            }
        }
        trace.outcome.is_good()
    }
}
