//! When journeys run: every interval, at a fixed offset, on absolute deadlines.
//!
//! The maths is pure ([`Plan`], [`spread_offsets`], [`run_seed`]); the [`Scheduler`] is the thin
//! shell that sleeps until each tick and starts runs. Ticks are multiples of the interval since
//! the Unix epoch plus the journey's offset, so a restarted prober keeps its phase and the fleet
//! stays spread. Rules it keeps:
//! - never more than `concurrency` runs at once (a semaphore); a run that cannot start before its
//!   journey's next tick is skipped (`concurrency`);
//! - never two runs of one journey at once: a tick that finds the previous run still going is
//!   skipped (`overlap`);
//! - every run ends within its timeout plus a small grace (the player enforces the timeout; the
//!   grace is a safety net that always ends before the next tick).
//!
//! Counters that tests reason about: per journey, `ticks == started + skipped`.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use netem::Profile;
use scenarios::{Failure, Journey, Outcome, Trace};
use tokio::{
    sync::{Semaphore, watch},
    task::JoinHandle,
    time::{Instant, sleep_until, timeout, timeout_at},
};

use super::{clock::Clock, fnv::fnv1a};

/// One scheduled journey, resolved.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub journey: Arc<Journey>,
    pub profile: Profile,
    pub interval: Duration,
    pub timeout: Duration,
    pub offset: Duration,
}

impl Job {
    /// Key that tells two configurations of the same series apart (a journey may run on two
    /// profiles).
    pub fn key(&self) -> String {
        format!("{}@{}", self.name, self.profile.name)
    }

    pub fn plan(&self) -> Plan {
        Plan { interval_ms: self.interval.as_millis().max(1) as i64, offset_ms: self.offset.as_millis() as i64 }
    }

    /// How long past its timeout a run may go before the scheduler gives up on it: half the gap
    /// to the next tick, at most one second, so the safety net always fires before the next tick.
    pub fn grace(&self) -> Duration {
        (self.interval.saturating_sub(self.timeout) / 2).min(Duration::from_secs(1))
    }
}

/// Where a journey's ticks fall, in UTC milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub interval_ms: i64,
    pub offset_ms: i64,
}

impl Plan {
    /// Wall time of tick `k` (ticks count intervals since the Unix epoch).
    pub fn tick_ms(&self, k: i64) -> i64 {
        k * self.interval_ms + self.offset_ms
    }

    /// The first tick at or after `wall_ms`.
    pub fn first_tick_at_or_after(&self, wall_ms: i64) -> i64 {
        (wall_ms - self.offset_ms + self.interval_ms - 1).div_euclid(self.interval_ms)
    }
}

/// Start offsets for journeys that do not set one: the i-th of n starts `i/n` of the way into
/// its interval, plus seeded jitter below `1/(2n)` of it, so the runs of an edge are spread out
/// and two edges with different seeds do not fire in lockstep.
pub fn spread_offsets(intervals: &[Duration], seed: u64) -> Vec<Duration> {
    let n = intervals.len() as u128;
    intervals
        .iter()
        .enumerate()
        .map(|(i, iv)| {
            let ms = iv.as_millis();
            let base = ms * i as u128 / n;
            let span = (ms / (2 * n)).max(1);
            let jitter = u128::from(splitmix(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))) % span;
            Duration::from_millis(((base + jitter).min(ms.saturating_sub(1))) as u64)
        })
        .collect()
}

/// The seed of the run at tick `tick_ms` of a journey: stable, so a failing run can be replayed
/// with `prober once --seed`.
pub fn run_seed(seed: u64, job_key: &str, tick_ms: i64) -> u64 {
    splitmix(seed ^ fnv1a(job_key.as_bytes()) ^ splitmix(tick_ms as u64))
}

pub(crate) fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Why a tick did not start a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// The previous run of the same journey was still going.
    Overlap,
    /// No run slot freed up before the journey's next tick.
    Concurrency,
    /// The process was not scheduled (suspended, overloaded) and the tick passed.
    Late,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Overlap => "overlap",
            Skip::Concurrency => "concurrency",
            Skip::Late => "late",
        }
    }
}

/// Plays one run of a job.
pub trait Runner: Send + Sync + 'static {
    fn run(&self, job: &Job, seed: u64) -> Pin<Box<dyn Future<Output = Trace> + Send + 'static>>;
}

/// Hears what the scheduler does.
pub trait Sink: Send + Sync + 'static {
    fn started(&self, job: &Job);
    fn finished(&self, job: &Job, trace: &Trace);
    fn skipped(&self, job: &Job, why: Skip);
}

struct Loop {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// Runs jobs on their plans until stopped.
pub struct Scheduler {
    sem: Arc<Semaphore>,
    permits: u32,
    runner: Arc<dyn Runner>,
    sink: Arc<dyn Sink>,
    clock: Clock,
    seed: u64,
    loops: Vec<Loop>,
    busy: HashMap<String, Arc<AtomicBool>>,
    stopping: watch::Sender<bool>,
}

impl Scheduler {
    pub fn new(concurrency: usize, runner: Arc<dyn Runner>, sink: Arc<dyn Sink>, clock: Clock, seed: u64) -> Scheduler {
        let permits = concurrency.clamp(1, Semaphore::MAX_PERMITS) as u32;
        Scheduler {
            sem: Arc::new(Semaphore::new(permits as usize)),
            permits,
            runner,
            sink,
            clock,
            seed,
            loops: Vec::new(),
            busy: HashMap::new(),
            stopping: watch::channel(false).0,
        }
    }

    /// Runs `jobs` from now on, replacing what ran before. Runs in flight finish and are
    /// recorded; a journey kept across a reload keeps its "still running" state, so a reload
    /// never makes two runs of one journey overlap.
    pub fn start(&mut self, jobs: Vec<Job>) {
        for l in self.loops.drain(..) {
            let _ = l.stop.send(true);
            l.handle.abort();
        }
        let keep: std::collections::HashSet<String> = jobs.iter().map(Job::key).collect();
        self.busy.retain(|k, _| keep.contains(k));
        for job in jobs {
            let busy = self.busy.entry(job.key()).or_default().clone();
            let (stop, stop_rx) = watch::channel(false);
            let ctx = LoopCtx {
                job: Arc::new(job),
                busy,
                sem: self.sem.clone(),
                runner: self.runner.clone(),
                sink: self.sink.clone(),
                clock: self.clock,
                seed: self.seed,
                stopping: self.stopping.subscribe(),
            };
            let handle = tokio::spawn(journey_loop(ctx, stop_rx));
            self.loops.push(Loop { stop, handle });
        }
    }

    /// Stops starting runs and waits (at most `limit`) for the runs in flight. True when every
    /// run finished.
    pub async fn shutdown(&mut self, limit: Duration) -> bool {
        let _ = self.stopping.send(true);
        for l in self.loops.drain(..) {
            let _ = l.stop.send(true);
            l.handle.abort();
        }
        // Every run holds a permit: holding them all means none is left running.
        matches!(timeout(limit, self.sem.acquire_many(self.permits)).await, Ok(Ok(_)))
    }
}

#[derive(Clone)]
struct LoopCtx {
    job: Arc<Job>,
    busy: Arc<AtomicBool>,
    sem: Arc<Semaphore>,
    runner: Arc<dyn Runner>,
    sink: Arc<dyn Sink>,
    clock: Clock,
    seed: u64,
    stopping: watch::Receiver<bool>,
}

async fn journey_loop(ctx: LoopCtx, mut stop: watch::Receiver<bool>) {
    let plan = ctx.job.plan();
    let mut k = plan.first_tick_at_or_after(ctx.clock.wall_ms());
    loop {
        let at = ctx.clock.instant_at(plan.tick_ms(k));
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            () = sleep_until(at) => {}
        }
        if *stop.borrow() || *ctx.stopping.borrow() {
            return;
        }
        let next_at = ctx.clock.instant_at(plan.tick_ms(k + 1));
        if ctx.busy.swap(true, Ordering::AcqRel) {
            ctx.sink.skipped(&ctx.job, Skip::Overlap);
        } else {
            let seed = run_seed(ctx.seed, &ctx.job.key(), plan.tick_ms(k));
            tokio::spawn(run_one(ctx.clone(), seed, next_at));
        }
        // Ticks that passed while this task was not scheduled are skipped, not fired in a burst.
        let now_k = plan.first_tick_at_or_after(ctx.clock.wall_ms());
        for _ in (k + 1)..now_k {
            ctx.sink.skipped(&ctx.job, Skip::Late);
        }
        k = (k + 1).max(now_k);
    }
}

/// One run of `ctx.job` with `seed`, if a concurrency slot frees up before `next_tick`.
async fn run_one(ctx: LoopCtx, seed: u64, next_tick: Instant) {
    let LoopCtx { job, busy, sem, runner, sink, mut stopping, .. } = ctx;
    let permit = tokio::select! {
        biased;
        _ = stopping.wait_for(|s| *s) => None,
        p = sem.acquire_owned() => p.ok(),
        () = sleep_until(next_tick) => {
            sink.skipped(&job, Skip::Concurrency);
            None
        }
    };
    let Some(permit) = permit.filter(|_| !*stopping.borrow()) else {
        busy.store(false, Ordering::Release);
        return;
    };
    sink.started(&job);
    let limit = Instant::now() + job.timeout + job.grace();
    let trace = match timeout_at(limit, runner.run(&job, seed)).await {
        Ok(t) => t,
        Err(_) => Trace {
            journey: job.name.clone(),
            profile: job.profile.name.clone(),
            seed,
            run_id: String::new(),
            started_at: String::new(),
            duration: job.timeout + job.grace(),
            outcome: Outcome::Timeout,
            failure: Some(Failure::new(Outcome::Timeout, "the run did not end within its timeout")),
            steps: Vec::new(),
        },
    };
    sink.finished(&job, &trace);
    drop(permit);
    busy.store(false, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use parking_lot::Mutex;

    use super::*;

    fn journey(name: &str) -> Arc<Journey> {
        let src = format!("name: {name}\nsteps:\n  - name: think\n    wait: {{fixed: 1ms}}\n");
        Arc::new(scenarios::journey::parse_journey(&src, "t.yaml", std::path::Path::new(".")).unwrap())
    }

    fn job(name: &str, interval_s: u64, timeout_s: u64, offset_s: u64) -> Job {
        Job {
            name: name.into(),
            journey: journey(name),
            profile: Profile::unshaped("loopback"),
            interval: Duration::from_secs(interval_s),
            timeout: Duration::from_secs(timeout_s),
            offset: Duration::from_secs(offset_s),
        }
    }

    /// Takes `took[name]` per run; records starts (ms since t0) and the most runs at once.
    struct Fake {
        t0: Instant,
        took: HashMap<String, Duration>,
        starts: Mutex<Vec<(String, u64)>>,
        running: AtomicUsize,
        most: AtomicUsize,
        per_job: Mutex<HashMap<String, usize>>,
    }

    impl Runner for Arc<Fake> {
        fn run(&self, job: &Job, seed: u64) -> Pin<Box<dyn Future<Output = Trace> + Send + 'static>> {
            let me = self.clone();
            let name = job.name.clone();
            let profile = job.profile.name.clone();
            let took = self.took[&name];
            Box::pin(async move {
                let now = me.running.fetch_add(1, Ordering::SeqCst) + 1;
                me.most.fetch_max(now, Ordering::SeqCst);
                {
                    let mut per = me.per_job.lock();
                    let c = per.entry(name.clone()).or_default();
                    *c += 1;
                    assert_eq!(*c, 1, "two runs of {name} at once");
                }
                me.starts.lock().push((name.clone(), (Instant::now() - me.t0).as_millis() as u64));
                // Counts down even when the scheduler drops a run that overran.
                struct Done(Arc<Fake>, String);
                impl Drop for Done {
                    fn drop(&mut self) {
                        *self.0.per_job.lock().get_mut(&self.1).unwrap() -= 1;
                        self.0.running.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                let _done = Done(me.clone(), name.clone());
                tokio::time::sleep(took).await;
                Trace {
                    journey: name,
                    profile,
                    seed,
                    run_id: String::new(),
                    started_at: String::new(),
                    duration: took,
                    outcome: Outcome::Ok,
                    failure: None,
                    steps: Vec::new(),
                }
            })
        }
    }

    #[derive(Default)]
    struct Count {
        started: Mutex<HashMap<String, u64>>,
        finished: Mutex<HashMap<String, u64>>,
        skipped: Mutex<HashMap<(String, Skip), u64>>,
    }

    impl Sink for Count {
        fn started(&self, job: &Job) {
            *self.started.lock().entry(job.name.clone()).or_default() += 1;
        }
        fn finished(&self, job: &Job, _: &Trace) {
            *self.finished.lock().entry(job.name.clone()).or_default() += 1;
        }
        fn skipped(&self, job: &Job, why: Skip) {
            *self.skipped.lock().entry((job.name.clone(), why)).or_default() += 1;
        }
    }

    fn fake(took: &[(&str, u64)]) -> Arc<Fake> {
        Arc::new(Fake {
            t0: Instant::now(),
            took: took.iter().map(|(n, ms)| (n.to_string(), Duration::from_millis(*ms))).collect(),
            starts: Mutex::default(),
            running: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            per_job: Mutex::default(),
        })
    }

    #[test]
    fn plan_ticks_are_absolute_multiples_plus_offset() {
        let p = Plan { interval_ms: 10_000, offset_ms: 2_500 };
        assert_eq!(p.tick_ms(3), 32_500);
        assert_eq!(p.first_tick_at_or_after(32_500), 3);
        assert_eq!(p.first_tick_at_or_after(32_501), 4);
        assert_eq!(p.first_tick_at_or_after(0), 0);
        assert_eq!(p.tick_ms(p.first_tick_at_or_after(1_700_000_001_234)), 1_700_000_002_500);
    }

    #[test]
    fn offsets_spread_over_the_interval_with_seeded_jitter() {
        let iv = vec![Duration::from_secs(60); 4];
        let a = spread_offsets(&iv, 7);
        assert_eq!(a, spread_offsets(&iv, 7), "same seed, same offsets");
        assert_ne!(a, spread_offsets(&iv, 8), "another seed jitters differently");
        for (i, o) in a.iter().enumerate() {
            let lo = Duration::from_secs(15 * i as u64);
            assert!(*o >= lo && *o < lo + Duration::from_millis(7_500), "offset {i} = {o:?}");
        }
        // Mixed intervals stay inside their own interval.
        let b = spread_offsets(&[Duration::from_secs(10), Duration::from_secs(300)], 1);
        assert!(
            b[0] < Duration::from_millis(2_500) && b[1] >= Duration::from_secs(150) && b[1] < Duration::from_secs(300)
        );
    }

    #[test]
    fn run_seeds_differ_per_tick_and_journey_and_replay() {
        assert_eq!(run_seed(1, "a@x", 10), run_seed(1, "a@x", 10));
        assert_ne!(run_seed(1, "a@x", 10), run_seed(1, "a@x", 20));
        assert_ne!(run_seed(1, "a@x", 10), run_seed(1, "b@x", 10));
        assert_ne!(run_seed(1, "a@x", 10), run_seed(2, "a@x", 10));
    }

    #[tokio::test(start_paused = true)]
    async fn runs_start_on_absolute_deadlines() {
        // Wall time 1_000_000_000_500: the 10 s grid is at ...000, so the first tick with offset
        // 2 s is 1.5 s away; later ticks every 10 s, however long the runs took.
        let clock = Clock::at(1_000_000_000_500);
        let f = fake(&[("a", 3_700)]);
        let sink = Arc::new(Count::default());
        let mut s = Scheduler::new(4, Arc::new(f.clone()), sink.clone(), clock, 1);
        s.start(vec![job("a", 10, 5, 2)]);
        tokio::time::sleep(Duration::from_millis(45_000)).await;
        assert!(s.shutdown(Duration::from_secs(30)).await);
        let starts: Vec<u64> = f.starts.lock().iter().map(|(_, t)| *t).collect();
        assert_eq!(starts, vec![1_500, 11_500, 21_500, 31_500, 41_500]);
        assert_eq!(sink.started.lock()["a"], 5);
        assert_eq!(sink.finished.lock()["a"], 5, "shutdown waited for the run in flight");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_capped_and_overlaps_are_skipped_and_counted() {
        let clock = Clock::at(0);
        // Three journeys want to run at t=0 every 10 s for 6 s each; one slot only.
        let f = fake(&[("a", 6_000), ("b", 6_000), ("c", 6_000)]);
        let sink = Arc::new(Count::default());
        let mut s = Scheduler::new(1, Arc::new(f.clone()), sink.clone(), clock, 1);
        s.start(vec![job("a", 10, 8, 0), job("b", 10, 8, 0), job("c", 10, 8, 0)]);
        tokio::time::sleep(Duration::from_millis(95_000)).await;
        assert!(s.shutdown(Duration::from_secs(30)).await);
        assert_eq!(f.most.load(Ordering::SeqCst), 1, "never more than `concurrency` at once");
        let started = sink.started.lock().clone();
        let skipped = sink.skipped.lock().clone();
        let mut total_skips = 0;
        for name in ["a", "b", "c"] {
            let st = started.get(name).copied().unwrap_or(0);
            let sk: u64 = skipped.iter().filter(|((n, _), _)| n == name).map(|(_, c)| *c).sum();
            total_skips += sk;
            // Ticks at 0, 10, ..., 90: ten per journey, each started or skipped.
            assert_eq!(st + sk, 10, "{name}: started {st} + skipped {sk}");
        }
        assert!(total_skips > 0, "one slot cannot fit three 6 s runs every 10 s");
        assert!(skipped.keys().any(|(_, w)| *w == Skip::Overlap), "a late start overlaps the next tick: {skipped:?}");
        // Runs of one journey never overlapped (the fake asserts it), and slots were used back
        // to back: one run every 6 s.
        assert_eq!(f.starts.lock().len() as u64, started.values().sum::<u64>());
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_that_hangs_is_cut_at_timeout_plus_grace_before_the_next_tick() {
        let clock = Clock::at(0);
        let f = fake(&[("slow", 60_000)]);
        let sink = Arc::new(Count::default());
        let mut s = Scheduler::new(2, Arc::new(f.clone()), sink.clone(), clock, 1);
        s.start(vec![job("slow", 10, 5, 0)]);
        tokio::time::sleep(Duration::from_millis(35_000)).await;
        s.shutdown(Duration::from_secs(10)).await;
        assert_eq!(sink.started.lock()["slow"], 4, "ticks at 0, 10, 20, 30 all started");
        assert!(sink.skipped.lock().is_empty(), "no overlap: the safety net ended each run in time");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_starting_runs_and_is_bounded() {
        let clock = Clock::at(0);
        let f = fake(&[("a", 4_000)]);
        let sink = Arc::new(Count::default());
        let mut s = Scheduler::new(1, Arc::new(f.clone()), sink.clone(), clock, 1);
        s.start(vec![job("a", 10, 8, 0)]);
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let t = Instant::now();
        assert!(s.shutdown(Duration::from_secs(30)).await);
        assert_eq!(Instant::now() - t, Duration::from_secs(3), "waited for the one run in flight");
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(sink.started.lock()["a"], 1, "nothing started after shutdown");
    }
}
