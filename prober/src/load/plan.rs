//! The arrival plan of a load run: when each iteration should start. Pure, lazy and indexable.
//!
//! An open-model plan is a rate over time: a constant `--rate`, or k6-style ramping stages (each
//! stage ramps linearly from the previous target to its own over its duration). Arrival `n`
//! (0-based, over the whole plan) is due at the time `t` where the integral of the rate reaches
//! `n`, so a stage of `r`/s over `d` seconds holds exactly `r·d` arrivals and the plan never
//! drifts: times are absolute offsets from the run's start, computed from `n`, never by adding
//! intervals.
//!
//! `--shard i/N` gives worker `i` the arrivals `n ≡ i (mod N)`: the N shards partition the plan,
//! so N workers started together produce exactly the requested rate, interleaved.
//!
//! [`Admission`] decides, from an arrival's intended time and the time a worker could start it,
//! whether it starts (perhaps late) or is dropped; [`Counters`] keep `scheduled == started +
//! dropped`. [`simulate`] runs the same decisions on a pool of workers with given service times,
//! without a runtime, so tests can reason about them.

use std::{fmt, str::FromStr, time::Duration};

/// One stretch of the plan: the rate goes linearly from `from` to `to` (per second) over `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub duration: Duration,
    pub from: f64,
    pub to: f64,
}

impl Segment {
    /// Arrivals the segment holds (the integral of its rate).
    pub fn arrivals(&self) -> f64 {
        (self.from + self.to) / 2.0 * self.duration.as_secs_f64()
    }

    /// Offset into the segment of its arrival number `x` (0 ≤ x < arrivals()), in seconds.
    fn offset(&self, x: f64) -> f64 {
        if x <= 0.0 {
            return 0.0;
        }
        let d = self.duration.as_secs_f64();
        let a = self.from;
        let k = (self.to - self.from) / d;
        // Solve a·t + k·t²/2 = x. This form is stable whatever the sign of k (ramping up or down)
        // and reduces to x/a when k = 0.
        let disc = (a * a + 2.0 * k * x).max(0.0);
        (2.0 * x / (a + disc.sqrt())).min(d)
    }
}

/// Worker `index` of `count` (0-based, like a Kubernetes Indexed Job's completion index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };
    /// Most shards a run may have (the shard index is part of a report's sequence number, see
    /// `report_to`).
    pub const MAX_COUNT: u64 = 1_000_000;
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("`{s}` is not a shard: give i/N with 0 ≤ i < N, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = i.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        if count > Shard::MAX_COUNT {
            return Err(format!("`{s}`: at most {} shards", Shard::MAX_COUNT));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// An open-model arrival plan (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    segments: Vec<Segment>,
    /// Arrivals before each segment (cumulative), plus the total at the end.
    cumulative: Vec<f64>,
    /// Arrivals in the whole plan (every shard), after any iteration limit.
    total: u64,
    shard: Shard,
}

/// Why a plan cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

impl Plan {
    /// `rate` per second for `duration`.
    pub fn constant(rate: f64, duration: Duration) -> Result<Plan, PlanError> {
        Plan::new(vec![Segment { duration, from: rate, to: rate }])
    }

    /// k6 ramping-arrival-rate: start at `start_rate`, then each `(duration, target)` ramps linearly.
    pub fn stages(start_rate: f64, stages: &[(Duration, f64)]) -> Result<Plan, PlanError> {
        let mut from = start_rate;
        let mut segments = Vec::with_capacity(stages.len());
        for &(duration, to) in stages {
            segments.push(Segment { duration, from, to });
            from = to;
        }
        Plan::new(segments)
    }

    pub fn new(segments: Vec<Segment>) -> Result<Plan, PlanError> {
        if segments.is_empty() {
            return Err(PlanError("the plan has no stages".into()));
        }
        let mut cumulative = Vec::with_capacity(segments.len() + 1);
        let mut acc = 0.0;
        for (i, s) in segments.iter().enumerate() {
            if !(s.from.is_finite() && s.to.is_finite() && s.from >= 0.0 && s.to >= 0.0) {
                return Err(PlanError(format!("stage {}: rates must be finite and not negative", i + 1)));
            }
            if s.duration.is_zero() {
                return Err(PlanError(format!("stage {}: the duration must be positive", i + 1)));
            }
            cumulative.push(acc);
            acc += s.arrivals();
        }
        cumulative.push(acc);
        // A plan of r/s over d s holds r·d arrivals; round away float noise before counting.
        let total = if (acc - acc.round()).abs() < 1e-6 { acc.round() } else { acc.ceil() };
        Ok(Plan { segments, cumulative, total: total as u64, shard: Shard::WHOLE })
    }

    /// At most `n` arrivals in the whole plan (the first `n`).
    pub fn limit(mut self, n: u64) -> Plan {
        self.total = self.total.min(n);
        self
    }

    pub fn shard(mut self, shard: Shard) -> Plan {
        self.shard = shard;
        self
    }

    /// The shard this plan is (the whole plan unless `shard` was called).
    pub fn shard_of(&self) -> Shard {
        self.shard
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The plan's length (the last segment's end).
    pub fn duration(&self) -> Duration {
        self.segments.iter().map(|s| s.duration).sum()
    }

    /// Arrivals in the whole plan, every shard together.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Arrivals of this shard.
    pub fn len(&self) -> u64 {
        let Shard { index, count } = self.shard;
        if self.total <= index { 0 } else { (self.total - index).div_ceil(count) }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The global number of this shard's `k`-th arrival.
    pub fn global_index(&self, k: u64) -> u64 {
        self.shard.index + k * self.shard.count
    }

    /// When this shard's `k`-th arrival is due, from the run's start; `None` past the end.
    pub fn at(&self, k: u64) -> Option<Duration> {
        if k >= self.len() {
            return None;
        }
        Some(self.global_at(self.global_index(k)))
    }

    /// When arrival `n` of the whole plan is due (`n < total()`).
    pub fn global_at(&self, n: u64) -> Duration {
        let x = n as f64;
        // The segment holding arrival n: the last one that starts at or before it and is not empty.
        let i = self.cumulative[1..].partition_point(|&c| c <= x).min(self.segments.len() - 1);
        let before: Duration = self.segments[..i].iter().map(|s| s.duration).sum();
        before + Duration::from_secs_f64(self.segments[i].offset(x - self.cumulative[i]))
    }

    /// This shard's arrivals in order (lazy).
    pub fn iter(&self) -> impl Iterator<Item = Duration> + '_ {
        (0..self.len()).map(|k| self.global_at(self.global_index(k)))
    }
}

/// What happened to the arrivals of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Arrivals the plan holds (for this shard); for a closed model, iterations begun.
    pub scheduled: u64,
    pub started: u64,
    /// Started more than [`Admission::late_after`] after their intended time.
    pub late: u64,
    /// Never started: no worker was free within `--max-lag`, or the run ended first.
    pub dropped: u64,
}

impl Counters {
    pub fn count(&mut self, a: Admit) {
        self.scheduled += 1;
        match a {
            Admit::Start { late } => {
                self.started += 1;
                self.late += u64::from(late);
            }
            Admit::Drop => self.dropped += 1,
        }
    }
}

/// The decision for one arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Start { late: bool },
    Drop,
}

/// When an arrival that could not start on time is late, and when it is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Lateness above which a start counts as late (timer granularity is about 1–2 ms).
    pub late_after: Duration,
    /// Lateness above which the arrival is dropped instead (`None`: queue, never drop).
    pub max_lag: Option<Duration>,
    /// No arrival starts at or after this offset (the run's end); later ones are dropped.
    pub stop_at: Duration,
}

/// Arrivals starting more than this after their intended time count as late.
pub const LATE_AFTER: Duration = Duration::from_millis(10);

impl Admission {
    /// Decides for an arrival due at `intended` that a worker could start at `now` (offsets from
    /// the run's start).
    pub fn decide(&self, intended: Duration, now: Duration) -> Admit {
        let lag = now.saturating_sub(intended);
        if now >= self.stop_at || self.max_lag.is_some_and(|m| lag > m) {
            return Admit::Drop;
        }
        Admit::Start { late: lag > self.late_after }
    }
}

/// Runs the open model without a runtime: `workers` workers claim arrivals in order, each starts
/// its arrival at `max(free, intended)` (or drops it), and is busy for `service(n)` after a start.
/// This is the runner's logic with time made explicit.
pub fn simulate(
    plan: &Plan,
    workers: usize,
    admission: &Admission,
    mut service: impl FnMut(u64) -> Duration,
) -> Counters {
    let mut free = vec![Duration::ZERO; workers.max(1)];
    let mut counters = Counters::default();
    for (k, intended) in plan.iter().enumerate() {
        // The earliest-free worker claims the next arrival (claims happen in order).
        let w = (0..free.len()).min_by_key(|&i| free[i]).expect("at least one worker");
        let now = free[w].max(intended);
        let a = admission.decide(intended, now);
        counters.count(a);
        match a {
            Admit::Start { .. } => free[w] = now + service(k as u64),
            Admit::Drop => free[w] = now,
        }
    }
    counters
}

/// Parses `--stages 30s:50,1m:50,30s:0` (duration:target rate per stage).
pub fn parse_stages(s: &str) -> Result<Vec<(Duration, f64)>, String> {
    s.split(',')
        .map(|part| {
            let (d, r) =
                part.split_once(':').ok_or_else(|| format!("stage `{part}` is not DURATION:RATE, e.g. 30s:50"))?;
            let d = parse_duration(d.trim())?;
            let r: f64 = r
                .trim()
                .trim_end_matches("/s")
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("stage `{part}`: `{r}` is not a rate per second"))?;
            Ok((d, r))
        })
        .collect()
}

/// A duration on the command line, in the grammar of every file (`500ms`, `10s`, `2m`, `1.5s`,
/// `250us`, `1h30m`; see the `conf` crate).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    conf::duration::parse(s)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn constant_rate_is_exact_and_absolute() {
        let p = Plan::constant(1000.0, secs(10.0)).unwrap();
        assert_eq!(p.total(), 10_000);
        assert_eq!(p.at(0), Some(Duration::ZERO));
        assert_eq!(p.at(1), Some(secs(0.001)));
        // No drift: the millionth arrival of a long plan is where it should be.
        let long = Plan::constant(1000.0, secs(3600.0)).unwrap();
        let t = long.at(1_000_000).unwrap();
        assert!((t.as_secs_f64() - 1000.0).abs() < 1e-6, "{t:?}");
        assert_eq!(p.at(10_000), None);
    }

    #[test]
    fn ramps_follow_the_integral() {
        // 0 → 100/s over 10 s: N(t) = 5 t², so arrival 125 is due at 5 s.
        let p = Plan::stages(0.0, &[(secs(10.0), 100.0)]).unwrap();
        assert_eq!(p.total(), 500);
        let t = p.at(125).unwrap().as_secs_f64();
        assert!((t - 5.0).abs() < 1e-9, "{t}");
        // Ramp down: 100 → 0 over 10 s holds 500, the last ones sparse.
        let d = Plan::stages(100.0, &[(secs(10.0), 0.0)]).unwrap();
        assert_eq!(d.total(), 500);
        assert!(d.at(499).unwrap() < secs(10.0));
    }

    #[test]
    fn shards_parse_and_refuse_nonsense() {
        assert_eq!("2/4".parse::<Shard>().unwrap(), Shard { index: 2, count: 4 });
        assert!("4/4".parse::<Shard>().is_err());
        assert!("1/0".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
        assert!("999999/1000000".parse::<Shard>().is_ok());
        assert!("0/1000001".parse::<Shard>().unwrap_err().contains("at most 1000000 shards"));
    }

    #[test]
    fn stages_and_durations_parse() {
        assert_eq!(
            parse_stages("30s:50,1m:50/s,10s:0").unwrap(),
            vec![(secs(30.0), 50.0), (secs(60.0), 50.0), (secs(10.0), 0.0)]
        );
        assert!(parse_stages("30s").is_err());
        assert_eq!(parse_duration("250ms").unwrap(), secs(0.25));
        assert!(parse_duration("3 fortnights").is_err());
    }

    #[test]
    fn a_slow_target_makes_arrivals_late_then_dropped() {
        let p = Plan::constant(100.0, secs(10.0)).unwrap();
        let adm = Admission { late_after: LATE_AFTER, max_lag: Some(secs(0.5)), stop_at: secs(11.0) };
        // One worker, 50 ms per iteration: it keeps up with only half of the 100/s.
        let c = simulate(&p, 1, &adm, |_| secs(0.05));
        assert_eq!(c.scheduled, 1000);
        assert_eq!(c.scheduled, c.started + c.dropped);
        assert!(c.dropped > 300 && c.late > 0, "{c:?}");
        // Enough workers: nothing late, nothing dropped.
        let c = simulate(&p, 10, &adm, |_| secs(0.05));
        assert_eq!((c.started, c.late, c.dropped), (1000, 0, 0));
    }

    fn stages() -> impl Strategy<Value = (f64, Vec<(Duration, f64)>)> {
        (0.0..2000.0f64, prop::collection::vec((1u64..20_000, 0.0..2000.0f64), 1..5))
            .prop_map(|(s, v)| (s, v.into_iter().map(|(ms, r)| (Duration::from_millis(ms), r)).collect()))
    }

    proptest! {
        #[test]
        fn ramps_integrate_to_the_right_count((start, st) in stages()) {
            let p = Plan::stages(start, &st).unwrap();
            let mut from = start;
            let mut expected = 0.0;
            for (d, to) in &st {
                expected += (from + to) / 2.0 * d.as_secs_f64();
                from = *to;
            }
            prop_assert!((p.total() as f64 - expected).abs() <= 1.0, "{} vs {expected}", p.total());
            // Times are non-decreasing and inside the plan.
            let mut last = Duration::ZERO;
            for t in p.iter().step_by(97) {
                prop_assert!(t >= last && t <= p.duration());
                last = t;
            }
        }

        #[test]
        fn shards_partition_the_plan((start, st) in stages(), n in 1u64..9, limit in prop::option::of(0u64..5000)) {
            let mut whole = Plan::stages(start, &st).unwrap();
            if let Some(l) = limit { whole = whole.limit(l); }
            let sum: u64 = (0..n).map(|i| whole.clone().shard(Shard { index: i, count: n }).len()).sum();
            prop_assert_eq!(sum, whole.total());
            // Every arrival belongs to exactly one shard, at the time the whole plan gives it.
            let mut times: Vec<Duration> = (0..n).flat_map(|i| whole.clone().shard(Shard { index: i, count: n }).iter().collect::<Vec<_>>()).collect();
            times.sort();
            let mut all: Vec<Duration> = whole.iter().collect();
            all.sort();
            prop_assert_eq!(times, all);
        }

        #[test]
        fn scheduled_is_started_plus_dropped(
            rate in 1.0..500.0f64, secs_ in 1u64..20, workers in 1usize..8,
            service_ms in prop::collection::vec(0u64..400, 1..50), max_lag in prop::option::of(0u64..500),
        ) {
            let p = Plan::constant(rate, Duration::from_secs(secs_)).unwrap();
            let adm = Admission { late_after: LATE_AFTER, max_lag: max_lag.map(Duration::from_millis), stop_at: Duration::from_secs(secs_ + 1) };
            let c = simulate(&p, workers, &adm, |k| Duration::from_millis(service_ms[k as usize % service_ms.len()]));
            prop_assert_eq!(c.scheduled, p.len());
            prop_assert_eq!(c.scheduled, c.started + c.dropped);
            prop_assert!(c.late <= c.started);
            if service_ms.iter().all(|&s| (s + 1) as f64 * rate < 1000.0) {
                // Every iteration ends before the next arrival is due: nothing late, nothing dropped.
                prop_assert_eq!((c.late, c.dropped), (0, 0));
            }
        }
    }
}
