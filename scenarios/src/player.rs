//! The player: runs a journey over a network profile and returns its trace.
//!
//! One run is one device: its connections share a `netem` connector (and so the radio), seeded
//! with the run's seed, so a run can be replayed. Steps run in order; the first failure ends the
//! journey. Each step has its own deadline (and the journey one overall); a step cut short still
//! reports what it measured and what it was waiting for.

use std::{collections::BTreeMap, sync::Arc};

use netem::{Connector, Profile};
use parking_lot::Mutex;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustls::pki_types::CertificateDer;
use tokio::time::{Instant, timeout_at};

use crate::{
    http::{HttpClient, tls_config},
    journey::{Extract, Journey, JsonPath, Step, credentials, is_msisdn, template::Scope},
    mask::Masker,
    outcome::{Failure, Outcome},
    polite::{Limiters, Polite},
    rails::Runtime as PaymentRuntime,
    steps::{Ctx, Done, Final, Recorder, human},
    trace::{StepTrace, Trace},
};

/// How to run a journey.
#[derive(Clone)]
pub struct PlayOptions {
    pub profile: Profile,
    pub seed: u64,
    /// Variable values that replace the journey's (`--set key=value`).
    pub overrides: BTreeMap<String, String>,
    /// Shared with other runs: tokens, MSISDN locks, the callback listener.
    pub payments: Arc<PaymentRuntime>,
    /// Shared with other runs that must respect the politeness caps together (a load run's).
    pub limiters: Arc<Limiters>,
    /// CA certificates to trust besides the Mozilla roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
}

impl PlayOptions {
    pub fn new(profile: Profile, seed: u64) -> PlayOptions {
        PlayOptions {
            profile,
            seed,
            overrides: BTreeMap::new(),
            payments: PaymentRuntime::new(),
            limiters: Limiters::new(),
            extra_roots: Vec::new(),
        }
    }
}

/// One run's state: what every step's [`Ctx`] borrows.
struct Run<'j> {
    journey: &'j Journey,
    rng: ChaCha8Rng,
    run_id: String,
    scope: Scope,
    masker: Mutex<Masker>,
    http: HttpClient,
    gateway: HttpClient,
    polite: Polite,
    payments: Arc<PaymentRuntime>,
}

impl<'j> Run<'j> {
    fn new(journey: &'j Journey, opts: &PlayOptions) -> Run<'j> {
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
        let run_id = format!("{:016x}", rng.random::<u64>());
        let mut scope = Scope { vars: journey.variables.clone(), secrets: journey.secrets.clone() };
        scope.vars.extend(opts.overrides.clone());
        scope.vars.insert("run_id".into(), run_id.clone());
        if let Some(m) = journey.msisdn_pool.first() {
            scope.vars.entry("msisdn".into()).or_insert_with(|| m.clone());
        }
        let masker = Mutex::new(run_masker(journey, &scope));
        let tls = tls_config(&opts.extra_roots);
        let http = HttpClient::new(Arc::new(Connector::new(opts.profile.clone(), opts.seed)), tls.clone());
        let gateway = HttpClient::new(Arc::new(Connector::new(Profile::unshaped("gateway"), opts.seed)), tls);
        let polite = opts.limiters.for_run(&journey.politeness);
        Run { journey, rng, run_id, scope, masker, http, gateway, polite, payments: opts.payments.clone() }
    }

    /// Plays one step until its deadline (or the journey's): its trace, and its failure if any.
    async fn step(&mut self, step: &Step, start: Instant, journey_deadline: Instant) -> (StepTrace, Option<Failure>) {
        let step_start = Instant::now();
        let deadline = (step_start + step.timeout).min(journey_deadline);
        let mut rec = Recorder::default();
        let mut ctx = Ctx {
            journey: self.journey,
            http: &self.http,
            gateway: &self.gateway,
            scope: &self.scope,
            masker: &self.masker,
            rng: &mut self.rng,
            payments: &self.payments,
            run_id: &self.run_id,
            polite: &self.polite,
            deadline,
        };
        let result = match timeout_at(deadline, step.kind.run(&mut ctx, &mut rec)).await {
            Ok(r) => r,
            Err(_) => {
                let cut = deadline == journey_deadline && journey_deadline < step_start + step.timeout;
                let limit = if cut && self.journey.timeout_given {
                    format!("the journey's limit of {}", human(self.journey.timeout))
                } else if cut {
                    // The default journey limit is the sum of the steps' timeouts: earlier steps
                    // that ran over left this one less than its own.
                    format!(
                        "its timeout of {} (the earlier steps left it {} of the journey's time)",
                        human(step.timeout),
                        human(deadline - step_start)
                    )
                } else {
                    format!("its timeout of {}", human(step.timeout))
                };
                let waiting = rec.last_problem.take().map(|p| format!("; {p}")).unwrap_or_default();
                Err(Failure::new(Outcome::Timeout, format!("step `{}` ran out of time: {limit}{waiting}", step.name)))
            }
        };
        // A declared acceptable outcome (`expected`) carries no result to extract from.
        let result = result.and_then(|done| {
            if done.outcome == Outcome::Ok {
                extract(step, &done.last, &mut self.scope, &self.masker)?;
            }
            Ok(done)
        });
        let (outcome, fail, note) = match result {
            Ok(Done { outcome, note, .. }) => (outcome, None, note.map(|n| self.masker.lock().mask(&n))),
            Err(f) => (f.outcome, Some(Failure::new(f.outcome, self.masker.lock().mask(&f.message))), None),
        };
        let trace = StepTrace {
            name: step.name.clone(),
            kind: step.kind.name(),
            start_offset: step_start - start,
            duration: step_start.elapsed(),
            phases: rec.phases,
            outcome,
            failure: fail.clone(),
            excerpts: rec.excerpts,
            throttled: rec.throttled,
            rail: rec.rail,
            reason: rec.reason,
            note,
        };
        (trace, fail)
    }
}

/// Runs `journey` once.
pub async fn play(journey: &Journey, opts: &PlayOptions) -> Trace {
    let mut run = Run::new(journey, opts);
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let start = Instant::now();
    let journey_deadline = start + journey.timeout;
    let mut traces = Vec::with_capacity(journey.steps.len());
    let mut failure: Option<Failure> = None;
    let mut any_expected = false;

    for step in &journey.steps {
        let (trace, fail) = run.step(step, start, journey_deadline).await;
        any_expected |= trace.outcome == Outcome::Expected;
        traces.push(trace);
        if let Some(f) = fail {
            failure = Some(Failure::new(f.outcome, format!("step `{}`: {}", step.name, f.message)));
            break;
        }
    }
    let outcome = match (&failure, any_expected) {
        (Some(f), _) => f.outcome,
        (None, true) => Outcome::Expected,
        (None, false) => Outcome::Ok,
    };
    Trace {
        journey: journey.name.clone(),
        profile: opts.profile.name.clone(),
        seed: opts.seed,
        run_id: run.run_id,
        started_at,
        duration: start.elapsed(),
        outcome,
        failure,
        steps: traces,
    }
}

/// The run's masker: the journey's secrets and MSISDN pool, and the variables (overrides
/// included) that hold a credential or a phone number.
fn run_masker(journey: &Journey, scope: &Scope) -> Masker {
    let mut m = Masker::new(journey.secrets.values());
    for phone in &journey.msisdn_pool {
        m.add_number(phone);
    }
    for (name, value) in &scope.vars {
        hide_variable(&mut m, name, value);
    }
    m
}

/// Hides a variable's value from now on when it holds a credential or a phone number.
fn hide_variable(m: &mut Masker, name: &str, value: &str) {
    if credentials::is_credential_variable(name, value) {
        credentials::secret_parts(value).into_iter().for_each(|p| m.add_secret(p));
    }
    let compact: String = value.chars().filter(|c| !" -.()".contains(*c)).collect();
    if is_msisdn(&compact) {
        m.add_number(value);
    }
}

/// Copies `extract:` values from the step's final document into the scope (and a value that is a
/// credential or a phone number into the masker).
fn extract(step: &Step, last: &Final, scope: &mut Scope, masker: &Mutex<Masker>) -> Result<(), Failure> {
    for (var, ex) in &step.extract {
        if ex.only_from.as_ref().is_some_and(|from| !from.contains(&last.source)) {
            continue;
        }
        let value = extract_one(ex, last).ok_or_else(|| {
            let from = ex.json.as_deref().or(ex.regex.as_deref()).or(ex.header.as_deref()).unwrap_or_default();
            Failure::new(Outcome::AssertionFailed, format!("extract.{var}: `{from}` matched nothing in the response"))
        })?;
        hide_variable(&mut masker.lock(), var, &value);
        scope.vars.insert(var.clone(), value);
    }
    Ok(())
}

fn extract_one(ex: &Extract, last: &Final) -> Option<String> {
    if let Some(p) = &ex.json {
        let path = JsonPath::parse(p).ok()?;
        return match path.first(last.json.as_ref()?)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        };
    }
    if let Some(r) = &ex.regex {
        let re = regex::Regex::new(r).ok()?;
        let c = re.captures(&last.text)?;
        return Some(c.get(1).or_else(|| c.get(0))?.as_str().to_owned());
    }
    if let Some(h) = &ex.header {
        return last.headers.get(h.as_str())?.to_str().ok().map(str::to_owned);
    }
    None
}

/// A short summary line, for logs: `journey ok in 1.2 s` or the failure.
pub fn summary(t: &Trace) -> String {
    match &t.failure {
        None => format!("{} {} in {}", t.journey, t.outcome, human(t.duration)),
        Some(f) => format!("{} failed in {}: {f}", t.journey, human(t.duration)),
    }
}
