//! `prober load JOURNEY.yaml`: every iteration is a whole journey, played as `prober once` plays
//! it (its own connections, as a phone opening the app would), each step recorded. Every worker
//! shares one set of politeness limiters (`scenarios::polite`): the journey's caps hold for the
//! whole run (of this process), arrivals wait for them, and [`Throttled`] counts the waits.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use parking_lot::Mutex;
use scenarios::{Journey, PlayOptions};
use tokio::time::Instant;

use super::{plan::Plan, runner::Iteration, stats::Stats};

/// Iterations that waited for a politeness cap, and how long in all.
#[derive(Debug, Default)]
pub struct Throttled {
    pub iterations: AtomicU64,
    pub micros: AtomicU64,
}

impl Throttled {
    /// `None` when nothing waited; else the line the summary shows.
    pub fn summary(&self) -> Option<String> {
        let n = self.iterations.load(Relaxed);
        (n > 0).then(|| {
            format!(
                "politeness cap: {n} iterations waited {:.1} s in all for the journey's `politeness:` caps \
                 (the run was throttled; see docs/configuration.md §6)",
                self.micros.load(Relaxed) as f64 / 1e6
            )
        })
    }
}

/// The plan-time check: where this plan's peak arrival rate (of this shard) would need more than
/// a politeness cap of the journey `j` (read from `src`). Each line names the file, line, field and
/// what to do.
pub fn plan_notices(src: &conf::Source, j: &Journey, overrides: &BTreeMap<String, String>, plan: &Plan) -> Vec<String> {
    let peak = plan.segments().iter().map(|s| s.from.max(s.to)).fold(0.0, f64::max) / plan.shard_of().count as f64;
    let mut vars = j.variables.clone();
    vars.extend(overrides.clone());
    scenarios::polite::plan_notices(src, j, &vars, peak).iter().map(ToString::to_string).collect()
}

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
    throttled: Arc<Throttled>,
}

impl JourneyWorker {
    pub fn pool(journey: Arc<Journey>, opts: PlayOptions, workers: usize) -> Vec<JourneyWorker> {
        let steps: Arc<HashMap<String, usize>> =
            Arc::new(journey.steps.iter().enumerate().map(|(i, s)| (s.name.clone(), i + 1)).collect());
        let counter = Arc::new(AtomicU64::new(0));
        let throttled = Arc::new(Throttled::default());
        let base_seed = opts.seed;
        (0..workers)
            .map(|_| JourneyWorker {
                journey: journey.clone(),
                opts: opts.clone(),
                steps: steps.clone(),
                counter: counter.clone(),
                base_seed,
                throttled: throttled.clone(),
            })
            .collect()
    }

    /// The waits of every worker of this worker's pool.
    pub fn throttled(&self) -> Arc<Throttled> {
        self.throttled.clone()
    }
}

impl Iteration for JourneyWorker {
    async fn run(&mut self, intended: Instant, stats: &Mutex<Stats>) -> bool {
        self.opts.seed = self.base_seed.wrapping_add(self.counter.fetch_add(1, Relaxed));
        let started = Instant::now();
        let trace = scenarios::play(&self.journey, &self.opts).await;
        let end = Instant::now();
        let lateness = started - intended;
        let waited: std::time::Duration = trace.steps.iter().map(|s| s.throttled).sum();
        if !waited.is_zero() {
            self.throttled.iterations.fetch_add(1, Relaxed);
            self.throttled.micros.fetch_add(waited.as_micros() as u64, Relaxed);
        }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Three iterations at once against a host capped at one request per 10 minutes: the second
    /// waits 10 minutes, the third 20 (virtual time), and the summary says the run was throttled.
    #[tokio::test(start_paused = true)]
    async fn a_load_run_waits_for_the_cap_and_says_so() {
        let yaml = "name: capped\npoliteness:\n  per_host: {max: 1, per: 10m}\nsteps:\n  - name: a\n    \
                    timeout: 1h\n    http: {url: \"http://127.0.0.1:9/\"}\n";
        let j = Arc::new(scenarios::journey::parse_journey(yaml, "c.yaml", std::path::Path::new(".")).unwrap());
        let opts = PlayOptions::new(netem::Profile::unshaped("loopback"), 1);
        let mut pool = JourneyWorker::pool(j.clone(), opts, 3);
        let throttled = pool[0].throttled();
        assert_eq!(throttled.summary(), None);
        let stats = Mutex::new(Stats::new(series_names(&j).len()));
        let start = Instant::now();
        let [a, b, c] = &mut pool[..] else { panic!() };
        tokio::join!(a.run(start, &stats), b.run(start, &stats), c.run(start, &stats));
        assert_eq!(throttled.iterations.load(Relaxed), 2);
        let waited = Duration::from_micros(throttled.micros.load(Relaxed));
        assert!(waited >= Duration::from_secs(1800), "10 + 20 minutes: {waited:?}");
        assert!(waited < Duration::from_secs(1801), "never longer than the cap asks: {waited:?}");
        assert!(throttled.summary().unwrap().starts_with("politeness cap: 2 iterations waited 1800.0 s"));
    }

    #[test]
    fn a_plan_above_the_cap_is_named_before_the_run() {
        let yaml = "name: shop\nvariables: {shop: \"http://127.0.0.1:7700\"}\nsteps:\n  - name: a\n    \
                    http: {url: \"{{ shop }}/a\"}\n";
        let src = conf::Source::new("shop.yaml", yaml);
        let j = scenarios::journey::parse_journey(yaml, "shop.yaml", std::path::Path::new(".")).unwrap();
        let within = Plan::constant(50.0, Duration::from_secs(2)).unwrap();
        assert!(plan_notices(&src, &j, &BTreeMap::new(), &within).is_empty(), "50/s is the default cap");
        let above = Plan::constant(80.0, Duration::from_secs(2)).unwrap();
        let n = plan_notices(&src, &j, &BTreeMap::new(), &above);
        assert_eq!(n.len(), 1, "{n:?}");
        assert!(n[0].contains("shop.yaml:5:17: steps[0].http.url: 80 arrivals/s would need 80.0 requests/s"), "{n:?}");
        // Two shards of 80/s each send 40/s: within the cap.
        let shard = above.shard(super::super::plan::Shard { index: 0, count: 2 });
        assert!(plan_notices(&src, &j, &BTreeMap::new(), &shard).is_empty());
    }
}
