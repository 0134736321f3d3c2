//! The step kinds, and what they share: a context to run in and a recorder that keeps what a
//! step measured even when a deadline cuts it short.
//!
//! Each kind is one folder (`http/`, `ussd/`, `payment/`, `mpesa_stk/`, `wait/`): its YAML model, its
//! validation, its run and its unit tests, behind the [`StepKind`] trait. The list below is the
//! one place that names them; the loader and the player dispatch on the [`Kind`] it declares.
//! Adding a kind is a new folder and one line here (CONTRIBUTING.md, "Adding a step kind").

mod kind;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use parking_lot::Mutex;
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use self::kind::declare_kinds;
pub use self::kind::{FieldError, LoadCx, StepKind};
use crate::{
    http::{HttpClient, HttpError, RequestSpec, Response},
    journey::{Journey, template::Scope},
    mask::Masker,
    outcome::{Failure, Outcome},
    polite::{self, Polite},
    rails::Runtime as Payments,
    trace::{Excerpt, Phases},
};

/// The registration point: `yaml_key => Variant(Model)`, one line per kind. The key is the kind's
/// folder, its key under a step in a journey file, and its [`StepKind::NAME`].
macro_rules! for_each_kind {
    ($then:ident) => {
        $then! {
            http => Http(HttpStep),
            ussd => Ussd(UssdStep),
            payment => Payment(PaymentStep),
            mpesa_stk => MpesaStk(StkStep),
            wait => Wait(WaitStep),
            sms => Sms(SmsStep),
        }
    };
}
pub(crate) use for_each_kind;
for_each_kind!(declare_kinds);

/// Everything a step needs while it runs.
pub struct Ctx<'a> {
    pub journey: &'a Journey,
    /// Connections over the run's emulated link (the phone's side).
    pub http: &'a HttpClient,
    /// Connections of the USSD gateway role: no IP path crosses the phone's radio for USSD, so
    /// these are not shaped (docs/link-model.md §8); the gateway's deadlines apply instead.
    pub gateway: &'a HttpClient,
    pub scope: &'a Scope,
    pub masker: &'a Mutex<Masker>,
    pub rng: &'a mut ChaCha8Rng,
    /// What every payment of the prober shares: tokens, MSISDN locks, callback listeners.
    pub payments: &'a Arc<Payments>,
    pub run_id: &'a str,
    /// The politeness caps: every request waits for its host's, a session or push for its MSISDN's.
    pub polite: &'a Polite,
    /// When this step's timeout expires.
    pub deadline: Instant,
}

impl Ctx<'_> {
    /// Renders a template; an unset variable fails the step with the variable named.
    pub fn render(&self, field: &str, text: &str) -> Result<String, Failure> {
        self.scope.render(text).map_err(|e| {
            Failure::new(
                Outcome::AssertionFailed,
                format!("{field}: variable `{}` has no value (did the step that extracts it run?)", e.0),
            )
        })
    }

    pub fn mask(&self, text: &str) -> String {
        self.masker.lock().mask(text)
    }

    /// The first `chars` characters of `text`, masked before the cut.
    pub fn start(&self, text: &str, chars: usize) -> String {
        self.masker.lock().start(text, chars)
    }

    /// Hides a phone number the step uses from now on, in every shape.
    pub fn hide_number(&self, phone: &str) {
        self.masker.lock().add_number(phone);
    }
}

/// What a step measured so far. Lives outside the step's future, so a timeout keeps it.
#[derive(Debug, Default)]
pub struct Recorder {
    pub phases: Phases,
    pub excerpts: Vec<Excerpt>,
    /// The most recent problem, for the message when a deadline cuts the step short.
    pub last_problem: Option<String>,
    /// Time spent waiting for the politeness caps.
    pub throttled: Duration,
    /// The payment rail a payment step went through (its `rail` label in reports).
    pub rail: Option<&'static str>,
    /// The provider's code the step ended with, label-safe (its `reason` in traces and reports).
    pub reason: Option<String>,
}

impl Recorder {
    /// Records one exchange and adds its phases. Label, request and response are masked whole,
    /// and only then cut to excerpts.
    pub fn exchange(
        &mut self,
        masker: &Mutex<Masker>,
        label: &str,
        request: &str,
        result: &Result<Response, HttpError>,
        started: Instant,
    ) {
        let duration = started.elapsed();
        let m = masker.lock();
        let (status, response) = match result {
            Ok(r) => {
                self.phases.add(&r.phases);
                (Some(r.status.as_u16()), m.excerpt(&r.text()))
            }
            Err(e) => (None, m.excerpt(&format!("(no response: {e})"))),
        };
        self.excerpts.push(Excerpt { label: m.mask(label), status, request: m.excerpt(request), response, duration });
    }

    /// Records an exchange a deadline cut short: its request, the phases it got through, and
    /// `why` in place of a response.
    pub fn unanswered(
        &mut self,
        masker: &Mutex<Masker>,
        label: &str,
        request: &str,
        phases: Phases,
        started: Instant,
        why: &str,
    ) {
        let duration = started.elapsed();
        self.phases.add(&phases);
        let m = masker.lock();
        let response = m.excerpt(&format!("({why})"));
        self.excerpts.push(Excerpt {
            label: m.mask(label),
            status: None,
            request: m.excerpt(request),
            response,
            duration,
        });
    }
}

/// The document a step ended with, for `extract:`.
#[derive(Debug, Clone, Default)]
pub struct Final {
    pub text: String,
    pub json: Option<serde_json::Value>,
    pub headers: ::http::HeaderMap,
    /// What the document is (`extract: … only_from:` selects by it).
    pub source: crate::journey::ResultSource,
}

impl Final {
    pub fn from_response(r: &Response) -> Final {
        Final {
            text: r.text(),
            json: serde_json::from_slice(&r.body).ok(),
            headers: r.headers.clone(),
            ..Final::default()
        }
    }
}

/// A step that finished: `Ok` or an outcome the journey declared acceptable.
#[derive(Debug, Clone)]
pub struct Done {
    pub outcome: Outcome,
    pub note: Option<String>,
    pub last: Final,
}

impl Done {
    pub fn ok(last: Final) -> Done {
        Done { outcome: Outcome::Ok, note: None, last }
    }
}

/// Sends `spec` and records it under `label`.
pub async fn exchange(
    ctx: &Ctx<'_>,
    rec: &mut Recorder,
    client: &HttpClient,
    label: String,
    spec: &RequestSpec,
) -> Result<Response, Failure> {
    if let Some(host) = polite::host_key(&spec.url) {
        ctx.polite.host(&host, rec).await;
    }
    let started = Instant::now();
    let result = client.send(spec).await;
    let shown = shown(spec);
    rec.exchange(ctx.masker, &label, &shown, &result, started);
    result.map_err(|e| Failure::new(e.outcome(), ctx.mask(&e.to_string())))
}

/// [`exchange`] within `limit`: `Ok(None)` when the deadline passed first. The trace keeps the
/// request, the phases the exchange got through and, as its response, how long it waited, so a
/// timed-out hop is as visible as an answered one.
pub async fn exchange_within(
    ctx: &Ctx<'_>,
    rec: &mut Recorder,
    client: &HttpClient,
    label: String,
    spec: &RequestSpec,
    limit: Duration,
) -> Result<Option<Response>, Failure> {
    if let Some(host) = polite::host_key(&spec.url) {
        ctx.polite.host(&host, rec).await;
    }
    let started = Instant::now();
    let mut phases = Phases::default();
    let sent = tokio::time::timeout(limit, client.send_recording(spec, &mut phases)).await;
    let shown = shown(spec);
    match sent {
        Ok(result) => {
            rec.exchange(ctx.masker, &label, &shown, &result, started);
            result.map(Some).map_err(|e| Failure::new(e.outcome(), ctx.mask(&e.to_string())))
        }
        Err(_) => {
            // What is not DNS, connect or TLS was the wait for the answer.
            phases.ttfb = started.elapsed().saturating_sub(phases.dns + phases.connect + phases.tls);
            rec.unanswered(ctx.masker, &label, &shown, phases, started, &format!("no answer within {}", human(limit)));
            Ok(None)
        }
    }
}

fn shown(spec: &RequestSpec) -> String {
    match &spec.body {
        Some((_, b)) => format!("{} {}\n{}", spec.method, spec.url, String::from_utf8_lossy(b)),
        None => format!("{} {}", spec.method, spec.url),
    }
}

/// A JSON body.
pub fn json_body(v: &serde_json::Value) -> Option<(String, Bytes)> {
    Some(("application/json".to_owned(), Bytes::from(v.to_string())))
}

/// How long `d` is, in words for messages.
pub fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) { format!("{} ms", d.as_millis()) } else { format!("{:.1} s", d.as_secs_f64()) }
}
