//! The politeness caps: how often runs may call one target host, and reach one phone number.
//!
//! A journey's `politeness:` block (docs/configuration.md §6) sets two caps, each "at most `max`
//! at once, then one every `per`/`max`" (a GCRA, `governor`'s): `per_host` counts every HTTP
//! request to one `host:port`, `per_msisdn` every USSD session and STK push to one number. The
//! limiters live in [`Limiters`], shared by every run that shares it (a `prober load` run's
//! workers), and run on tokio's clock. A request or session over its cap **waits** (inside the
//! step's deadline) and never goes early; the wait is recorded in the step's trace
//! (`throttled`). At load and plan time, [`journey_notices`] and [`plan_notices`] say, with the
//! file, line and field, when one run or a planned arrival rate would need more than the cap.

use std::{collections::BTreeMap, num::NonZeroU32, sync::Arc, time::Duration};

use conf::Source;
use governor::{
    Quota, RateLimiter, clock::Clock, middleware::NoOpMiddleware, nanos::Nanos, state::keyed::HashMapStateStore,
};
use parking_lot::Mutex;
use serde::Deserialize;

use crate::{
    journey::{Dur, Journey, Secrets, template::Scope},
    steps::{Recorder, human},
};

/// One cap: at most `max` at once, and `max` per `per` sustained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cap {
    pub max: NonZeroU32,
    pub per: Dur,
}

impl Cap {
    fn new(max: u32, per: Duration) -> Cap {
        Cap { max: NonZeroU32::new(max).expect("a default above 0"), per: Dur::new(per).expect("within bounds") }
    }

    /// The sustained rate, per second.
    pub fn per_second(&self) -> f64 {
        f64::from(self.max.get()) / self.per.get().as_secs_f64()
    }

    fn quota(&self) -> Quota {
        Quota::with_period(self.per.get() / self.max.get()).expect("validated above 0").allow_burst(self.max)
    }
}

impl std::fmt::Display for Cap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} per {}", self.max, self.per)
    }
}

/// A journey's `politeness:` block. Both caps have defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Politeness {
    /// HTTP requests to one `host:port` (every step kind's, the USSD gateway's and Daraja's too).
    pub per_host: Cap,
    /// USSD sessions and STK pushes to one phone number.
    pub per_msisdn: Cap,
}

/// Default `per_host`: 50 requests at once, 50 per second.
pub const DEFAULT_PER_HOST: (u32, Duration) = (50, Duration::from_secs(1));
/// Default `per_msisdn`: 5 sessions or pushes at once, 5 per minute (one every 12 s).
pub const DEFAULT_PER_MSISDN: (u32, Duration) = (5, Duration::from_secs(60));

impl Default for Politeness {
    fn default() -> Politeness {
        Politeness {
            per_host: Cap::new(DEFAULT_PER_HOST.0, DEFAULT_PER_HOST.1),
            per_msisdn: Cap::new(DEFAULT_PER_MSISDN.0, DEFAULT_PER_MSISDN.1),
        }
    }
}

impl Politeness {
    /// `(field, message)` when a cap cannot work: a period of 0, or finer than a microsecond.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (name, c) in [("per_host", &self.per_host), ("per_msisdn", &self.per_msisdn)] {
            if c.per.get() / c.max.get() < Duration::from_micros(1) {
                return Err((format!("{name}.per"), format!("`{}` is too short for max {}", c.per, c.max)));
            }
        }
        Ok(())
    }
}

/// What one run of a step sends at least, for the load- and plan-time checks.
#[derive(Debug, Clone)]
pub enum Use {
    /// `requests` HTTP requests to the host of the URL template in `field` (below the kind).
    Host { field: String, url: String, requests: u32 },
    /// One session or push to the number template in `field`.
    Msisdn { field: String, phone: String },
}

/// governor's clock on tokio's time, so that paused-clock tests and the player agree.
#[derive(Debug, Clone, Default)]
pub struct TokioClock {
    origin: Arc<std::sync::OnceLock<tokio::time::Instant>>,
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        let origin = *self.origin.get_or_init(tokio::time::Instant::now);
        Nanos::from(tokio::time::Instant::now().saturating_duration_since(origin))
    }
}

type Limiter = RateLimiter<String, HashMapStateStore<String>, TokioClock, NoOpMiddleware<Nanos>>;
/// (scope, max, per): one limiter per distinct cap.
type CapKey = (&'static str, u32, Duration);

/// The limiters, one per (scope, cap), keyed by host or number. Share one between runs that must
/// respect the caps together (`PlayOptions::limiters`).
#[derive(Default)]
pub struct Limiters {
    clock: TokioClock,
    by_cap: Mutex<BTreeMap<CapKey, Arc<Limiter>>>,
}

impl Limiters {
    pub fn new() -> Arc<Limiters> {
        Arc::new(Limiters::default())
    }

    fn limiter(&self, scope: &'static str, cap: Cap) -> Arc<Limiter> {
        let key = (scope, cap.max.get(), cap.per.get());
        let mut m = self.by_cap.lock();
        m.entry(key)
            .or_insert_with(|| Arc::new(RateLimiter::hashmap_with_clock(cap.quota(), self.clock.clone())))
            .clone()
    }

    /// The caps of one journey's run.
    pub fn for_run(&self, p: &Politeness) -> Polite {
        Polite {
            clock: self.clock.clone(),
            host: (self.limiter("per_host", p.per_host), p.per_host),
            msisdn: (self.limiter("per_msisdn", p.per_msisdn), p.per_msisdn),
        }
    }
}

/// A run's view of the caps.
pub struct Polite {
    clock: TokioClock,
    host: (Arc<Limiter>, Cap),
    msisdn: (Arc<Limiter>, Cap),
}

impl Polite {
    /// Waits until one more request to `host` (`host:port`) is within the cap.
    pub async fn host(&self, host: &str, rec: &mut Recorder) {
        let what = format!("politeness.per_host ({}) towards {host}", self.host.1);
        self.wait(&self.host.0, host.to_owned(), what, rec).await;
    }

    /// Waits until one more session or push to `phone` is within the cap. The number is never
    /// shown: messages say "one MSISDN".
    pub async fn msisdn(&self, phone: &str, rec: &mut Recorder) {
        let what = format!("politeness.per_msisdn ({}) for one MSISDN", self.msisdn.1);
        self.wait(&self.msisdn.0, msisdn_key(phone), what, rec).await;
    }

    async fn wait(&self, limiter: &Limiter, key: String, what: String, rec: &mut Recorder) {
        let Err(first) = limiter.check_key(&key) else { return };
        let before = rec.last_problem.replace(format!("waiting for the cap {what}"));
        let mut w = Waiting { rec, started: tokio::time::Instant::now(), before: Some(before) };
        let mut not_until = first;
        loop {
            let wait = not_until.wait_time_from(self.clock.now());
            tokio::time::sleep(wait.max(Duration::from_nanos(1))).await;
            match limiter.check_key(&key) {
                Ok(()) => break,
                Err(n) => not_until = n,
            }
        }
        w.done();
    }
}

/// Adds the wait to the step's `throttled` however it ends: when a deadline drops the wait, the
/// step's `last_problem` keeps saying what it was waiting for.
struct Waiting<'r> {
    rec: &'r mut Recorder,
    started: tokio::time::Instant,
    /// The problem before the wait, put back once the wait is over.
    before: Option<Option<String>>,
}

impl Waiting<'_> {
    fn done(&mut self) {
        if let Some(before) = self.before.take() {
            self.rec.last_problem = before;
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.rec.throttled += self.started.elapsed();
    }
}

/// `host:port` of a URL (the port explicit or the scheme's).
pub fn host_key(url: &url::Url) -> Option<String> {
    Some(format!("{}:{}", url.host_str()?, url.port_or_known_default()?))
}

/// A number's digits: `+254 700…` and `254700…` are one MSISDN.
fn msisdn_key(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

/// How much of a cap one run of the journey needs at least: (path of the first field, count).
fn demand(j: &Journey, vars: &BTreeMap<String, String>) -> [BTreeMap<String, (String, u32)>; 2] {
    // Secrets are left out: a host or number made from one is not shown, nor counted.
    let scope = Scope { vars: vars.clone(), secrets: Secrets::default() };
    let (mut hosts, mut numbers) = (BTreeMap::new(), BTreeMap::new());
    for (i, step) in j.steps.iter().enumerate() {
        let at = |f: &str| format!("steps[{i}].{}.{f}", step.kind.name());
        for u in step.kind.uses() {
            let (map, key, field, n) = match u {
                Use::Host { field, url, requests } => {
                    let host =
                        scope.render(&url).ok().and_then(|u| url::Url::parse(&u).ok()).and_then(|u| host_key(&u));
                    (&mut hosts, host, field, requests)
                }
                Use::Msisdn { field, phone } => {
                    (&mut numbers, scope.render(&phone).ok().map(|p| msisdn_key(&p)), field, 1)
                }
            };
            let Some(key) = key.filter(|k| !k.is_empty()) else { continue };
            map.entry(key).or_insert_with(|| (at(&field), 0)).1 += n;
        }
    }
    [hosts, numbers]
}

/// Where one run of `j` (loaded from `src`) needs more than a cap allows at once: it would wait.
pub fn journey_notices(src: &Source, j: &Journey) -> Vec<conf::Error> {
    let mut out = Vec::new();
    let [hosts, numbers] = demand(j, &j.variables);
    let caps = [("per_host", j.politeness.per_host, "requests to"), ("per_msisdn", j.politeness.per_msisdn, "")];
    for ((name, cap, verb), map) in caps.into_iter().zip([hosts, numbers]) {
        for (key, (field, n)) in map {
            if n <= cap.max.get() {
                continue;
            }
            let wait = cap.per.get() / cap.max.get() * (n - cap.max.get());
            let whom = if name == "per_host" {
                format!("{n} {verb} {key}")
            } else {
                format!("{n} sessions or pushes to one MSISDN")
            };
            out.push(src.error(
                field,
                format!(
                    "one run sends {whom}, above politeness.{name} ({cap}): each run will wait about {} for the cap \
                     (inside its step timeouts); raise politeness.{name}.max to at least {n} if the owner agrees",
                    human(wait)
                ),
            ));
        }
    }
    out
}

/// Where a load of `rate` arrivals per second of `j` (overrides in `vars`) would exceed a cap:
/// the run will wait for the cap, so fewer arrivals per second will get through.
pub fn plan_notices(src: &Source, j: &Journey, vars: &BTreeMap<String, String>, rate: f64) -> Vec<conf::Error> {
    let mut out = Vec::new();
    let [hosts, numbers] = demand(j, vars);
    let caps = [("per_host", j.politeness.per_host), ("per_msisdn", j.politeness.per_msisdn)];
    for ((name, cap), map) in caps.into_iter().zip([hosts, numbers]) {
        for (key, (field, n)) in map {
            let need = rate * f64::from(n);
            if need <= cap.per_second() * 1.000_001 {
                continue;
            }
            let whom = if name == "per_host" {
                format!("requests/s to {key}")
            } else {
                "sessions or pushes/s to one MSISDN".into()
            };
            let most = cap.per_second() / f64::from(n);
            out.push(src.error(
                field,
                format!(
                    "{rate} arrivals/s would need {need:.1} {whom}, above politeness.{name} ({cap}, {:.1}/s): the \
                     run will wait for the cap, so at most about {most:.1} arrivals/s get through; lower the rate, or \
                     raise politeness.{name} in the journey if the owner agrees",
                    cap.per_second()
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests;
