//! Fault injection: per service, a fixed added latency, normal jitter, a fraction of requests
//! answered with HTTP 500, a full outage (HTTP 503), an echo (HTTP 500 whose body repeats the
//! request, as careless error pages do), and for Daraja an override of the callback delay.
//! Changed at runtime over `/admin/faults`, by `--fault` flags, or through [`Faults`].
//!
//! The decision for one request is drawn from a seeded stream, so a run replays from `--seed`.

use std::{fmt, str::FromStr, sync::Arc, time::Duration};

use axum::{
    extract::Request,
    response::{IntoResponse, Response},
};
use http::{HeaderValue, StatusCode, header};
use parking_lot::RwLock;
use rand::RngExt;
use serde::Serialize;
use serde_json::Value;

use crate::rng::SharedRng;

/// The services faults apply to. Each owns its paths: `ussd` → `/ussd/...`; `daraja` →
/// `/oauth/...` and `/mpesa/...`; `momo` → `/collection/...` and `/v1_0/apiuser...`; `airtel` →
/// `/auth/oauth2/...`, `/merchant/...` and `/standard/...`; `mpesa-tz` → `/{sandbox,openapi}/ipg/...`;
/// `shop` → `/shop/...`; `modem` is the AT modem emulator ([`crate::modem`]), whose faults are the
/// radio and USSD ones below ([`Fault::no_signal`] and after) rather than HTTP ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Ussd,
    Daraja,
    Momo,
    Airtel,
    #[serde(rename = "mpesa-tz")]
    MpesaTz,
    Shop,
    Modem,
}

impl Service {
    pub const ALL: [Service; 7] = [
        Service::Ussd,
        Service::Daraja,
        Service::Momo,
        Service::Airtel,
        Service::MpesaTz,
        Service::Shop,
        Service::Modem,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Service::Ussd => "ussd",
            Service::Daraja => "daraja",
            Service::Momo => "momo",
            Service::Airtel => "airtel",
            Service::MpesaTz => "mpesa-tz",
            Service::Shop => "shop",
            Service::Modem => "modem",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Service {
    type Err = FaultError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ussd" => Ok(Service::Ussd),
            "daraja" => Ok(Service::Daraja),
            "momo" => Ok(Service::Momo),
            "airtel" => Ok(Service::Airtel),
            "mpesa-tz" => Ok(Service::MpesaTz),
            "shop" => Ok(Service::Shop),
            "modem" => Ok(Service::Modem),
            other => Err(FaultError::new(
                "service",
                format!("unknown service `{other}` (use ussd, daraja, momo, airtel, mpesa-tz, shop or modem)"),
            )),
        }
    }
}

/// A fault description that cannot be used: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct FaultError {
    pub field: String,
    pub reason: String,
}

impl FaultError {
    fn new(field: &str, reason: impl Into<String>) -> Self {
        Self { field: field.to_owned(), reason: reason.into() }
    }
}

/// Longest latency, jitter or callback delay accepted (10 minutes): more is a typo.
pub const MAX_DELAY_MS: u64 = 600_000;

/// The faults of one service. The default is no fault.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Fault {
    /// Fixed latency added before the service answers, in milliseconds.
    pub latency_ms: u64,
    /// Standard deviation of normal jitter around the latency, in milliseconds (the total delay is
    /// clamped at zero).
    pub jitter_ms: u64,
    /// Fraction (0..=1) of requests answered with HTTP 500 instead of the service's answer.
    pub error_rate: f64,
    /// Every request of the service gets HTTP 503 at once.
    pub outage: bool,
    /// Every request of the service gets HTTP 500 whose body is the request as received: the
    /// request line, every header and the body (the first [`ECHO_BODY_LIMIT`] bytes). Many real
    /// error pages do this; it puts the caller's credentials and phone numbers into the response,
    /// which is what the prober's masking must survive. Left out of the JSON when off.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub echo: bool,
    /// Daraja only: overrides the configured STK callback delay, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_delay_ms: Option<u64>,
    /// Modem only: no radio signal (`+CSQ: 99,99`, `+CREG: 0,2` searching, USSD refused with
    /// `+CME ERROR: 30`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_signal: bool,
    /// Modem only: registration denied (`+CREG`/`+CEREG` stat 3); USSD refused with CME 30.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub not_registered: bool,
    /// Modem only: the SIM asks for its PIN (`+CPIN: SIM PIN`, network commands refused with
    /// `+CME ERROR: 11`) until `AT+CPIN="<pin>"`; set again to lock it again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sim_pin: bool,
    /// Modem only: every new USSD dial is answered with `+CME ERROR: <n>` (TS 27.007 §9.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cme_error: Option<u16>,
    /// Modem only: the network releases the session at its N-th answer (1 = the first):
    /// `+CUSD: 2` instead of the screen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_mid_session: Option<u32>,
    /// Modem only: delay before each `+CUSD` the network sends, in milliseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub slow_network_ms: u64,
    /// Modem only: the `+CUSD` result arrives before the command's `OK` (some Qualcomm firmwares).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cusd_before_ok: bool,
    /// Modem only: an extra `+CUSD: 2` follows a final `+CUSD: 0`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub extra_release: bool,
    /// Modem only: the network never answers a USSD request and the session ends `+CUSD: 5`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub network_timeout: bool,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Fault {
    /// Checks the ranges; `service` decides whether `callback_delay_ms` is allowed.
    pub fn validate(&self, service: Service) -> Result<(), FaultError> {
        if self.latency_ms > MAX_DELAY_MS {
            return Err(FaultError::new("latency_ms", format!("must be at most {MAX_DELAY_MS}")));
        }
        if self.jitter_ms > MAX_DELAY_MS {
            return Err(FaultError::new("jitter_ms", format!("must be at most {MAX_DELAY_MS}")));
        }
        if !self.error_rate.is_finite() || !(0.0..=1.0).contains(&self.error_rate) {
            return Err(FaultError::new("error_rate", "must be a number from 0 to 1"));
        }
        match self.callback_delay_ms {
            Some(_) if service != Service::Daraja => {
                Err(FaultError::new("callback_delay_ms", format!("applies to daraja only, not {service}")))
            }
            Some(ms) if ms > MAX_DELAY_MS => {
                Err(FaultError::new("callback_delay_ms", format!("must be at most {MAX_DELAY_MS}")))
            }
            _ => self.validate_modem(service),
        }
    }

    /// The modem fields apply to the modem only, and the HTTP ones (latency, errors) not to it.
    fn validate_modem(&self, service: Service) -> Result<(), FaultError> {
        let modem_field = [
            ("no_signal", self.no_signal),
            ("not_registered", self.not_registered),
            ("sim_pin", self.sim_pin),
            ("cme_error", self.cme_error.is_some()),
            ("release_mid_session", self.release_mid_session.is_some()),
            ("slow_network_ms", self.slow_network_ms > 0),
            ("cusd_before_ok", self.cusd_before_ok),
            ("extra_release", self.extra_release),
            ("network_timeout", self.network_timeout),
        ]
        .into_iter()
        .find(|(_, set)| *set);
        let http_field = [
            ("latency_ms", self.latency_ms > 0),
            ("jitter_ms", self.jitter_ms > 0),
            ("error_rate", self.error_rate > 0.0),
            ("outage", self.outage),
            ("echo", self.echo),
        ]
        .into_iter()
        .find(|(_, set)| *set);
        match (service, modem_field, http_field) {
            (Service::Modem, _, Some((field, _))) => {
                Err(FaultError::new(field, "applies to the HTTP services, not modem (e.g. use slow_network_ms)"))
            }
            (Service::Modem, _, None) => {
                if self.slow_network_ms > MAX_DELAY_MS {
                    return Err(FaultError::new("slow_network_ms", format!("must be at most {MAX_DELAY_MS}")));
                }
                if self.release_mid_session == Some(0) {
                    return Err(FaultError::new("release_mid_session", "counts answers from 1"));
                }
                Ok(())
            }
            (_, Some((field, _)), _) => Err(FaultError::new(field, format!("applies to modem only, not {service}"))),
            _ => Ok(()),
        }
    }

    /// Sets one field from a JSON value, checking its type.
    pub fn set_field(&mut self, field: &str, value: &Value) -> Result<(), FaultError> {
        let millis = |v: &Value| {
            v.as_u64().ok_or_else(|| FaultError::new(field, format!("must be a whole number of milliseconds, got {v}")))
        };
        let flag =
            |v: &Value| v.as_bool().ok_or_else(|| FaultError::new(field, format!("must be true or false, got {v}")));
        match field {
            "latency_ms" => self.latency_ms = millis(value)?,
            "jitter_ms" => self.jitter_ms = millis(value)?,
            "error_rate" => {
                self.error_rate =
                    value.as_f64().ok_or_else(|| FaultError::new(field, format!("must be a number, got {value}")))?
            }
            "outage" => self.outage = flag(value)?,
            "echo" => self.echo = flag(value)?,
            "callback_delay_ms" => self.callback_delay_ms = if value.is_null() { None } else { Some(millis(value)?) },
            "no_signal" => self.no_signal = flag(value)?,
            "not_registered" => self.not_registered = flag(value)?,
            "sim_pin" => self.sim_pin = flag(value)?,
            "cme_error" => {
                self.cme_error = match value {
                    Value::Null => None,
                    v => Some(v.as_u64().and_then(|n| u16::try_from(n).ok()).ok_or_else(|| {
                        FaultError::new(field, format!("must be a CME error number (TS 27.007 §9.2), got {v}"))
                    })?),
                }
            }
            "release_mid_session" => {
                self.release_mid_session = match value {
                    Value::Null => None,
                    v => Some(v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
                        FaultError::new(field, format!("must be the answer number (1 = the first), got {v}"))
                    })?),
                }
            }
            "slow_network_ms" => self.slow_network_ms = millis(value)?,
            "cusd_before_ok" => self.cusd_before_ok = flag(value)?,
            "extra_release" => self.extra_release = flag(value)?,
            "network_timeout" => self.network_timeout = flag(value)?,
            other => {
                return Err(FaultError::new(
                    other,
                    "unknown field (expected latency_ms, jitter_ms, error_rate, outage, echo, callback_delay_ms; \
                     for modem: no_signal, not_registered, sim_pin, cme_error, release_mid_session, \
                     slow_network_ms, cusd_before_ok, extra_release, network_timeout)",
                ));
            }
        }
        Ok(())
    }

    /// Builds a fault from a JSON object (the body of `PUT /admin/faults/{service}`): fields not
    /// given are zero/off, unknown fields are refused.
    pub fn from_json(service: Service, value: &Value) -> Result<Fault, FaultError> {
        let object = value.as_object().ok_or_else(|| FaultError::new("body", "must be a JSON object"))?;
        let mut fault = Fault::default();
        for (field, v) in object {
            fault.set_field(field, v)?;
        }
        fault.validate(service)?;
        Ok(fault)
    }
}

/// One `--fault` flag: `SERVICE:FIELD=VALUE[,FIELD=VALUE...]`, for example
/// `daraja:error_rate=0.5` or `ussd:latency_ms=4000,jitter_ms=200`.
pub fn parse_fault_flag(flag: &str) -> Result<(Service, Vec<(String, Value)>), FaultError> {
    let (service, assignments) = flag.split_once(':').ok_or_else(|| {
        FaultError::new("service", format!("`{flag}` is not SERVICE:FIELD=VALUE (e.g. daraja:error_rate=0.5)"))
    })?;
    let service: Service = service.trim().parse()?;
    let mut fields = Vec::new();
    for assignment in assignments.split(',').filter(|a| !a.trim().is_empty()) {
        let (field, raw) = assignment
            .split_once('=')
            .ok_or_else(|| FaultError::new(assignment.trim(), "expected FIELD=VALUE (e.g. latency_ms=4000)"))?;
        // Numbers and booleans are JSON literals; anything else stays a string and fails the field's type check.
        let raw = raw.trim();
        let value = serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
        fields.push((field.trim().to_owned(), value));
    }
    if fields.is_empty() {
        return Err(FaultError::new("service", format!("`{flag}` sets no field (e.g. {service}:latency_ms=4000)")));
    }
    Ok((service, fields))
}

/// The faults of all services.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct FaultSet {
    pub ussd: Fault,
    pub daraja: Fault,
    pub momo: Fault,
    pub airtel: Fault,
    #[serde(rename = "mpesa-tz")]
    pub mpesa_tz: Fault,
    pub shop: Fault,
    pub modem: Fault,
}

impl FaultSet {
    pub fn get(&self, service: Service) -> &Fault {
        match service {
            Service::Ussd => &self.ussd,
            Service::Daraja => &self.daraja,
            Service::Momo => &self.momo,
            Service::Airtel => &self.airtel,
            Service::MpesaTz => &self.mpesa_tz,
            Service::Shop => &self.shop,
            Service::Modem => &self.modem,
        }
    }

    pub fn get_mut(&mut self, service: Service) -> &mut Fault {
        match service {
            Service::Ussd => &mut self.ussd,
            Service::Daraja => &mut self.daraja,
            Service::Momo => &mut self.momo,
            Service::Airtel => &mut self.airtel,
            Service::MpesaTz => &mut self.mpesa_tz,
            Service::Shop => &mut self.shop,
            Service::Modem => &mut self.modem,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (Service, &Fault)> {
        Service::ALL.into_iter().map(|s| (s, self.get(s)))
    }

    /// Applies `--fault` flags in order (later flags overwrite earlier values of the same field).
    pub fn apply_flags<S: AsRef<str>>(&mut self, flags: &[S]) -> Result<(), FaultError> {
        for flag in flags {
            let (service, fields) = parse_fault_flag(flag.as_ref())?;
            let fault = self.get_mut(service);
            for (field, value) in &fields {
                fault.set_field(field, value)?;
            }
            fault.validate(service)?;
        }
        Ok(())
    }
}

/// What the fault layer does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub outage: bool,
    pub delay: Duration,
    pub error: bool,
    /// After the delay, answer with the request echoed (see [`echo`]).
    pub echo: bool,
}

/// The live fault settings of a running sandbox. Cloning shares them.
#[derive(Clone)]
pub struct Faults {
    set: Arc<RwLock<FaultSet>>,
    rng: SharedRng,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Faults").field(&*self.set.read()).finish()
    }
}

impl Faults {
    pub(crate) fn new(initial: FaultSet, seed: u64) -> Self {
        Self { set: Arc::new(RwLock::new(initial)), rng: SharedRng::new(seed, 1) }
    }

    /// Replaces the faults of one service.
    pub fn set(&self, service: Service, fault: Fault) -> Result<(), FaultError> {
        fault.validate(service)?;
        *self.set.write().get_mut(service) = fault;
        Ok(())
    }

    /// The faults of one service now.
    pub fn get(&self, service: Service) -> Fault {
        self.set.read().get(service).clone()
    }

    /// All faults now.
    pub fn snapshot(&self) -> FaultSet {
        self.set.read().clone()
    }

    /// Removes the faults of one service.
    pub fn clear_service(&self, service: Service) {
        *self.set.write().get_mut(service) = Fault::default();
    }

    /// Removes every fault.
    pub fn clear(&self) {
        *self.set.write() = FaultSet::default();
    }

    /// The callback delay override for Daraja, if one is set.
    pub(crate) fn callback_delay(&self) -> Option<Duration> {
        self.set.read().daraja.callback_delay_ms.map(Duration::from_millis)
    }

    /// Draws the fate of one request to `service`.
    pub(crate) fn decide(&self, service: Service) -> Decision {
        let fault = self.get(service);
        if fault.outage {
            return Decision { outage: true, delay: Duration::ZERO, error: false, echo: false };
        }
        if fault.latency_ms == 0 && fault.jitter_ms == 0 && fault.error_rate <= 0.0 {
            return Decision { outage: false, delay: Duration::ZERO, error: false, echo: fault.echo };
        }
        self.rng.with(|rng| {
            let mut delay_ms = fault.latency_ms as f64;
            if fault.jitter_ms > 0 {
                let z: f64 = rng.sample(rand_distr::StandardNormal);
                delay_ms += z * fault.jitter_ms as f64;
            }
            let error = fault.error_rate > 0.0 && rng.random_bool(fault.error_rate);
            let delay = Duration::from_secs_f64(delay_ms.max(0.0) / 1000.0);
            Decision { outage: false, delay, error, echo: fault.echo }
        })
    }
}

/// The most of a request body the echo fault repeats.
pub const ECHO_BODY_LIMIT: usize = 64 * 1024;

/// The echo fault's answer: HTTP 500, `text/plain`, `x-sandbox-fault: echo`, and the request as
/// received (request line with the query, every header, a blank line, the body) after one line
/// saying what this is.
pub(crate) async fn echo(request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut text = format!(
        "injected echo fault: the request as received\n{} {} {:?}\n",
        parts.method,
        parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        parts.version
    );
    for (name, value) in &parts.headers {
        text.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())));
    }
    text.push('\n');
    match axum::body::to_bytes(body, ECHO_BODY_LIMIT).await {
        Ok(b) => text.push_str(&String::from_utf8_lossy(&b)),
        Err(_) => text.push_str(&format!("(a body of more than {ECHO_BODY_LIMIT} bytes, or one that failed)")),
    }
    let mut response = (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text)
        .into_response();
    response.headers_mut().insert("x-sandbox-fault", HeaderValue::from_static("echo"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn from_json_names_the_bad_field() {
        let e = Fault::from_json(Service::Ussd, &json!({"error_rate": 1.5})).unwrap_err();
        assert_eq!(e.field, "error_rate");
        let e = Fault::from_json(Service::Ussd, &json!({"latency_ms": "slow"})).unwrap_err();
        assert_eq!(e.field, "latency_ms");
        let e = Fault::from_json(Service::Ussd, &json!({"latncy_ms": 5})).unwrap_err();
        assert_eq!(e.field, "latncy_ms");
        let e = Fault::from_json(Service::Shop, &json!({"callback_delay_ms": 5})).unwrap_err();
        assert_eq!(e.field, "callback_delay_ms");
        let e = Fault::from_json(Service::Shop, &json!({"outage": 1})).unwrap_err();
        assert_eq!(e.field, "outage");
        let e = Fault::from_json(Service::Shop, &json!([1])).unwrap_err();
        assert_eq!(e.field, "body");
        let ok = Fault::from_json(Service::Daraja, &json!({"callback_delay_ms": 100, "outage": true})).unwrap();
        assert_eq!(ok, Fault { callback_delay_ms: Some(100), outage: true, ..Default::default() });
    }

    #[test]
    fn modem_fields_belong_to_the_modem() {
        let ok = Fault::from_json(Service::Modem, &json!({"no_signal": true, "release_mid_session": 2})).unwrap();
        assert_eq!(ok, Fault { no_signal: true, release_mid_session: Some(2), ..Default::default() });
        for (service, body, field) in [
            (Service::Ussd, json!({"no_signal": true}), "no_signal"),
            (Service::Modem, json!({"latency_ms": 5}), "latency_ms"),
            (Service::Modem, json!({"cme_error": "x"}), "cme_error"),
            (Service::Modem, json!({"release_mid_session": 0}), "release_mid_session"),
            (Service::Modem, json!({"slow_network_ms": MAX_DELAY_MS + 1}), "slow_network_ms"),
        ] {
            assert_eq!(Fault::from_json(service, &body).unwrap_err().field, field, "{body}");
        }
        let mut set = FaultSet::default();
        set.apply_flags(&["modem:cme_error=31,extra_release=true"]).unwrap();
        assert_eq!(set.modem, Fault { cme_error: Some(31), extra_release: true, ..Default::default() });
    }

    #[test]
    fn flags_parse_and_accumulate() {
        let mut set = FaultSet::default();
        set.apply_flags(&["daraja:error_rate=0.5", "ussd:latency_ms=4000,jitter_ms=20", "daraja:outage=true"]).unwrap();
        assert_eq!(set.daraja, Fault { error_rate: 0.5, outage: true, ..Default::default() });
        assert_eq!(set.ussd, Fault { latency_ms: 4000, jitter_ms: 20, ..Default::default() });
        assert_eq!(set.shop, Fault::default());

        for (flag, field) in [
            ("daraja", "service"),
            ("mpesa:latency_ms=1", "service"),
            ("ussd:latency_ms", "latency_ms"),
            ("ussd:latency_ms=fast", "latency_ms"),
            ("ussd:error_rate=2", "error_rate"),
            ("ussd:", "service"),
        ] {
            let e = FaultSet::default().apply_flags(&[flag]).unwrap_err();
            assert_eq!(e.field, field, "{flag}: {e}");
        }
    }

    #[test]
    fn decisions_follow_the_rate_and_replay_from_the_seed() {
        let draw = |seed| {
            let faults = Faults::new(FaultSet::default(), seed);
            faults.set(Service::Shop, Fault { error_rate: 0.3, jitter_ms: 10, ..Default::default() }).unwrap();
            (0..2000).map(|_| faults.decide(Service::Shop)).collect::<Vec<_>>()
        };
        let a = draw(5);
        assert_eq!(a, draw(5));
        assert_ne!(a, draw(6));
        let errors = a.iter().filter(|d| d.error).count();
        assert!((500..700).contains(&errors), "{errors} errors of 2000 at rate 0.3");
        assert!(a.iter().any(|d| d.delay > Duration::ZERO));
        assert!(a.iter().any(|d| d.delay == Duration::ZERO), "negative jitter clamps to zero");
    }

    #[test]
    fn outage_and_no_fault() {
        let faults = Faults::new(FaultSet::default(), 1);
        assert_eq!(
            faults.decide(Service::Ussd),
            Decision { outage: false, delay: Duration::ZERO, error: false, echo: false }
        );
        faults.set(Service::Ussd, Fault { outage: true, ..Default::default() }).unwrap();
        assert!(faults.decide(Service::Ussd).outage);
        assert!(!faults.decide(Service::Daraja).outage);
        faults.clear();
        assert!(!faults.decide(Service::Ussd).outage);
    }
}
