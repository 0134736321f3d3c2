//! The shell around the plan: worker tasks that claim arrivals, wait for their absolute intended
//! start with `sleep_until`, and run iterations.
//!
//! Open model: `W` workers (`--max-in-flight`) claim arrivals in order from a shared counter; a
//! worker that claims arrival `k` sleeps until `start + plan.at(k)`, then [`Admission`] decides
//! whether it starts (late, if no worker was free on time) or is dropped. Latency is measured from
//! the intended start, so queueing behind a stalled target is counted (no coordinated omission).
//! Closed model (`--vus N`, `--rate max`): N workers run iterations back to back; there the
//! intended start is the actual start.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use parking_lot::Mutex;
use tokio::{
    sync::Notify,
    time::{Instant, sleep_until},
};

use super::{
    plan::{Admission, Admit, Counters, Plan},
    stats::{Shards, Stats},
};

/// One kind of iteration (a journey, a request). One value per worker, reused across iterations.
pub trait Iteration: Send + 'static {
    /// Runs an iteration due at `intended`, starting now; records it into `stats`. Returns whether
    /// it succeeded.
    fn run(&mut self, intended: Instant, stats: &Mutex<Stats>) -> impl Future<Output = bool> + Send;
}

/// How arrivals come.
#[derive(Debug, Clone)]
pub enum Model {
    Open { plan: Plan, admission: Admission },
    Closed { iterations: Option<u64>, until: Option<Duration> },
}

/// Counters shared by the workers and read by the progress display and the summary.
#[derive(Default)]
pub struct Live {
    next: AtomicU64,
    pub scheduled: AtomicU64,
    pub started: AtomicU64,
    pub late: AtomicU64,
    pub dropped: AtomicU64,
    pub completed: AtomicU64,
    pub errors: AtomicU64,
    pub in_flight: AtomicU64,
    /// Latest actual start of an open-model arrival, µs since the run's start.
    pub last_start_us: AtomicU64,
    stop: AtomicBool,
    stopped: Notify,
}

impl Live {
    fn count(&self, a: Admit) {
        self.scheduled.fetch_add(1, Relaxed);
        match a {
            Admit::Start { late } => {
                self.started.fetch_add(1, Relaxed);
                if late {
                    self.late.fetch_add(1, Relaxed);
                }
            }
            Admit::Drop => {
                self.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// Asks every worker to stop claiming arrivals (Ctrl-C, or the run's end).
    pub fn stop(&self) {
        self.stop.store(true, Relaxed);
        self.stopped.notify_waiters();
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Relaxed)
    }

    pub fn counters(&self) -> Counters {
        Counters {
            scheduled: self.scheduled.load(Relaxed),
            started: self.started.load(Relaxed),
            late: self.late.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
        }
    }

    /// The final counters: arrivals of the plan that were never claimed count as dropped.
    pub fn finish(&self, model: &Model) -> Counters {
        let mut c = self.counters();
        if let Model::Open { plan, .. } = model {
            let missing = plan.len().saturating_sub(c.scheduled);
            c.scheduled += missing;
            c.dropped += missing;
        }
        c
    }
}

/// Runs `iterations.len()` workers to the end of the model (or until [`Live::stop`]).
pub async fn run<I: Iteration>(
    iterations: Vec<I>,
    model: Arc<Model>,
    live: Arc<Live>,
    shards: Arc<Shards>,
    start: Instant,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, it) in iterations.into_iter().enumerate() {
        tasks.spawn(worker(i, it, model.clone(), live.clone(), shards.clone(), start));
    }
    while tasks.join_next().await.is_some() {}
}

async fn worker<I: Iteration>(
    index: usize,
    mut it: I,
    model: Arc<Model>,
    live: Arc<Live>,
    shards: Arc<Shards>,
    start: Instant,
) {
    let stats = shards.get(index);
    loop {
        if live.stopping() {
            return;
        }
        let intended = match &*model {
            Model::Open { plan, admission } => {
                let k = live.next.fetch_add(1, Relaxed);
                let Some(at) = plan.at(k) else { return };
                let intended = start + at;
                if intended > Instant::now() {
                    tokio::select! {
                        _ = sleep_until(intended) => {}
                        _ = live.stopped.notified() => return,
                    }
                }
                let now = Instant::now();
                let a = admission.decide(at, now.saturating_duration_since(start));
                live.count(a);
                if a == Admit::Drop {
                    continue;
                }
                live.last_start_us.fetch_max((now - start).as_micros() as u64, Relaxed);
                // Timer and scheduling lateness of the send itself (0 µs is recorded as 1 µs).
                report::record(&mut stats.lock().lateness, now - intended);
                intended
            }
            Model::Closed { iterations, until } => {
                let now = Instant::now();
                if until.is_some_and(|u| now >= start + u) {
                    return;
                }
                if let Some(n) = iterations
                    && live.next.fetch_add(1, Relaxed) >= *n
                {
                    return;
                }
                live.count(Admit::Start { late: false });
                now
            }
        };
        live.in_flight.fetch_add(1, Relaxed);
        let ok = it.run(intended, stats).await;
        live.in_flight.fetch_sub(1, Relaxed);
        live.completed.fetch_add(1, Relaxed);
        if !ok {
            live.errors.fetch_add(1, Relaxed);
        }
    }
}
