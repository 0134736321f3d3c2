//! The shell around the plan: a release thread that lets each arrival go at its absolute intended
//! start, and worker tasks that claim released arrivals and run iterations.
//!
//! Open model: a thread of its own ([`release_arrivals`]) adds one permit to a semaphore when
//! arrival `k` is due (`start + plan.at(k)`, absolute, never a sum of intervals); `W` workers
//! (`--max-in-flight`) take permits, claim arrivals in order from a shared counter, and
//! [`Admission`] decides whether each starts (late, if no worker was free on time) or is dropped.
//! Latency is measured from the intended start, so queueing behind a stalled target is counted
//! (no coordinated omission). Closed model (`--vus N`, `--rate max`): N workers run iterations
//! back to back; there the intended start is the actual start.
//!
//! Why a thread and not `sleep_until` in each worker: tokio's timer has a resolution of one
//! millisecond. It rounds each deadline up to the next tick, and the runtime parks in
//! `epoll_wait`, whose timeout is whole milliseconds too, so a parked runtime wakes up to another
//! millisecond after the tick: a timer-driven send is 0–2 ms late (1 ms on average) even on an
//! idle machine. Aiming half a tick early (netem's `TIMER_LEAD`) would centre that error, but an
//! arrival woken early must then either start early (and be measured from before it was due) or
//! spin. The release thread parks with `thread::park_timeout` (a futex with a nanosecond
//! timeout, within the kernel's 50 µs timer slack), never releases an arrival before it is due,
//! and releases every arrival due at once in one batch; a worker it wakes starts within
//! microseconds. The thread does no I/O and wakes at most once per arrival and about once per
//! millisecond of the run (`MIN_PARK`): arrivals alone in their millisecond go on time within the
//! timer slack; above 1,000/s they go in batches, each send at most 1 ms late, for no more CPU
//! than per-worker timers took.

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
    sync::{Notify, Semaphore},
    time::Instant,
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
    let released = Arc::new(Semaphore::new(0));
    let workers = iterations.len();
    let releaser = match &*model {
        Model::Open { plan, .. } => {
            let (plan, released, live) = (plan.clone(), released.clone(), live.clone());
            Some(
                std::thread::Builder::new()
                    .name("load-arrivals".into())
                    .spawn(move || release_arrivals(&plan, start, &released, &live, workers))
                    .expect("spawning the arrival thread"),
            )
        }
        Model::Closed { .. } => None,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (i, it) in iterations.into_iter().enumerate() {
        tasks.spawn(worker(i, it, model.clone(), live.clone(), shards.clone(), released.clone(), start));
    }
    while tasks.join_next().await.is_some() {}
    if let Some(t) = releaser {
        // It has released the whole plan (or seen the stop) by now, or does within MAX_PARK.
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
}

/// Longest the release thread parks at once, so it sees [`Live::stop`] promptly.
const MAX_PARK: Duration = Duration::from_millis(10);
/// The release thread wakes at most about once per millisecond of the run (at an arrival's time,
/// or at the next millisecond boundary when the next arrival falls in the current millisecond):
/// above 1,000/s arrivals go in batches, each at most 1 ms late (never early; the lateness is
/// recorded). Each wake costs two context switches (the thread's, and the runtime's when it was
/// parked in `epoll_wait`): waking every 200 µs doubled the CPU of a 10k/s run on one core and
/// made a 50k/s run fall behind; once a millisecond costs what tokio's own timer did
/// (benches/RESULTS.md).
const MIN_PARK: Duration = Duration::from_millis(1);
/// Most arrivals released in one batch (after a long stall of the thread), so a stop is seen.
const MAX_BATCH: u64 = 1 << 16;

/// The release thread: adds a permit to `released` for each arrival of `plan` once it is due
/// (every arrival due by now in one batch), then one more per worker, so that each worker claims
/// past the plan's end and returns. Stops early on [`Live::stop`]. Never releases an arrival
/// before its intended start.
pub fn release_arrivals(plan: &Plan, start: Instant, released: &Semaphore, live: &Live, workers: usize) {
    let n = plan.len();
    let mut k = 0;
    while k < n && !live.stopping() {
        let now = Instant::now();
        let mut due = 0;
        while due < MAX_BATCH && plan.at(k + due).is_some_and(|at| start + at <= now) {
            due += 1;
        }
        if due > 0 {
            released.add_permits(due as usize);
            k += due;
            continue;
        }
        let Some(next) = plan.at(k) else { break };
        // Until the arrival is due, but not before the next millisecond boundary of the run when
        // it falls in the current one: then the batch of that millisecond goes at its end.
        let tick = MIN_PARK.as_nanos();
        let next_tick = start + Duration::from_nanos((((now - start).as_nanos() / tick + 1) * tick) as u64);
        let wake = (start + next).max(next_tick);
        std::thread::park_timeout(wake.saturating_duration_since(now).min(MAX_PARK));
    }
    released.add_permits(workers);
}

async fn worker<I: Iteration>(
    index: usize,
    mut it: I,
    model: Arc<Model>,
    live: Arc<Live>,
    shards: Arc<Shards>,
    released: Arc<Semaphore>,
    start: Instant,
) {
    let stats = shards.get(index);
    loop {
        if live.stopping() {
            return;
        }
        let intended = match &*model {
            Model::Open { plan, admission } => {
                // A permit: one more arrival is due (or the plan is over).
                tokio::select! {
                    p = released.acquire() => match p {
                        Ok(p) => p.forget(),
                        Err(_) => return,
                    },
                    _ = live.stopped.notified() => return,
                }
                let k = live.next.fetch_add(1, Relaxed);
                let Some(at) = plan.at(k) else { return };
                let intended = start + at;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the machine's timing, the i-th permit exists only once arrival i was due, and
    /// after the plan every worker gets one more permit (to claim past the end and return).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn arrivals_are_released_in_order_never_early_then_the_workers_are_let_go() {
        let plan = Plan::constant(2000.0, Duration::from_millis(50)).unwrap();
        assert_eq!(plan.len(), 100);
        let (live, released) = (Arc::new(Live::default()), Arc::new(Semaphore::new(0)));
        let start = Instant::now();
        let thread = {
            let (plan, live, released) = (plan.clone(), live.clone(), released.clone());
            std::thread::spawn(move || release_arrivals(&plan, start, &released, &live, 3))
        };
        for k in 0..plan.len() {
            released.acquire().await.unwrap().forget();
            let due = start + plan.at(k).unwrap();
            assert!(Instant::now() >= due, "arrival {k} was released before it was due");
        }
        tokio::task::spawn_blocking(move || thread.join().unwrap()).await.unwrap();
        assert_eq!(released.available_permits(), 3);
    }

    #[tokio::test]
    async fn a_stop_releases_only_the_workers() {
        let plan = Plan::constant(10.0, Duration::from_secs(3600)).unwrap();
        let (live, released) = (Live::default(), Semaphore::new(0));
        live.stop();
        release_arrivals(&plan, Instant::now(), &released, &live, 4);
        assert_eq!(released.available_permits(), 4);
    }
}
