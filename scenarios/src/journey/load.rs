//! Loading and validating journey files (and importing dialoguss files).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    time::Duration,
};

use conf::Source;
use serde::Deserialize;

use super::{
    DEFAULT_STEP_TIMEOUT, Dur, Extract, HttpStep, Journey, SecretRef, Secrets, Step, StepKind, StkStep, UssdStep,
    UssdTurn, WaitStep, template,
};
use crate::ussd::dialoguss;

/// The most a probe may ever move in one payment, whatever the journey says (KES).
pub const HARD_AMOUNT_CAP: u64 = 100;

/// Builtin template names, always available.
pub const BUILTINS: &[&str] = &["run_id", "msisdn"];

/// A journey file that cannot be used: `file:line:column: field: message`.
pub type LoadError = conf::Error;

/// Reads a journey (or a dialoguss file, converted) from disk. Secrets are resolved now, so a
/// missing one is an error before anything is sent.
pub fn load_file(path: &Path) -> Result<Journey, LoadError> {
    let base = path.parent().unwrap_or(Path::new("."));
    parse_source(&Source::read(path)?, base)
}

/// Parses a journey from `src`. `file` names it in errors; `base` anchors relative secret paths.
pub fn parse_journey(src: &str, file: &str, base: &Path) -> Result<Journey, LoadError> {
    parse_source(&Source::new(file, src), base)
}

fn parse_source(src: &Source, base: &Path) -> Result<Journey, LoadError> {
    let top = src.value()?;
    let Some(map) = top.as_mapping() else {
        return Err(src.error("", "a journey is a mapping with `name:` and `steps:`"));
    };
    if map.contains_key("dial") && map.contains_key("sessions") && !map.contains_key("steps") {
        return dialoguss::import(src);
    }
    let doc: JourneyFile = src.parse()?;
    doc.validate(src, base).inspect(|j| super::credentials::warn(src, j))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JourneyFile {
    /// Journey name, used in metrics and reports.
    name: String,
    description: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// Default network profile (`prober profiles` lists them).
    profile: Option<String>,
    /// Limit for the whole journey; default: the sum of the step timeouts.
    timeout: Option<Dur>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    /// name → `env:NAME` or `file:PATH`.
    #[serde(default)]
    secrets: BTreeMap<String, SecretRef>,
    #[serde(default)]
    msisdn_pool: Vec<String>,
    steps: Vec<StepFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    name: String,
    timeout: Option<Dur>,
    http: Option<HttpStep>,
    ussd: Option<UssdStep>,
    mpesa_stk: Option<StkStep>,
    wait: Option<WaitStep>,
    #[serde(default)]
    extract: BTreeMap<String, Extract>,
}

impl JourneyFile {
    fn validate(self, src: &Source, base: &Path) -> Result<Journey, LoadError> {
        let name = self.name.trim().to_owned();
        if name.is_empty() {
            return Err(src.error("name", "must not be empty"));
        }
        if self.steps.is_empty() {
            return Err(src.error("steps", "a journey needs at least one step"));
        }
        let mut secrets = Secrets::default();
        for (k, r) in &self.secrets {
            let v = r.resolve(base).map_err(|e| src.error(format!("secrets.{k}"), e))?;
            secrets.0.insert(k.clone(), v);
        }
        if let Some(i) = self.msisdn_pool.iter().position(|m| !is_msisdn(m)) {
            return Err(
                src.error(format!("msisdn_pool[{i}]"), "every entry must be 9–15 digits, optionally with a leading +")
            );
        }

        // Names a template may use at each step: variables, secrets, builtins, earlier extractions.
        let mut known: BTreeSet<String> = self.variables.keys().cloned().collect();
        known.extend(secrets.0.keys().map(|k| format!("secrets.{k}")));
        known.extend(BUILTINS.iter().map(|s| s.to_string()));
        let mut seen_steps = BTreeSet::new();
        let mut steps = Vec::with_capacity(self.steps.len());
        let has_pool = !self.msisdn_pool.is_empty();
        for (i, s) in self.steps.into_iter().enumerate() {
            let step = validate_step(src, i, s, has_pool, &mut known, &mut seen_steps)?;
            steps.push(step);
        }
        let timeout = self.timeout.map_or_else(|| steps.iter().map(|s| s.timeout).sum(), |d| d.get());
        Ok(Journey {
            name,
            description: self.description.unwrap_or_default(),
            labels: self.labels,
            profile: self.profile,
            timeout,
            variables: self.variables,
            secrets,
            msisdn_pool: self.msisdn_pool,
            steps,
            source: src.file().to_owned(),
        })
    }
}

/// Checks one step (`steps[i]`): its kind, templates and extractions. Names it extracts become
/// `known` to the steps after it.
fn validate_step(
    src: &Source,
    i: usize,
    s: StepFile,
    has_pool: bool,
    known: &mut BTreeSet<String>,
    seen_steps: &mut BTreeSet<String>,
) -> Result<Step, LoadError> {
    let at = |key: &str| if key.is_empty() { format!("steps[{i}]") } else { format!("steps[{i}].{key}") };
    let fail = |key: &str, msg: String| src.error(at(key), format!("step `{}`: {msg}", s.name));
    let within = |kind: &str, key: &str| if key.is_empty() { kind.to_owned() } else { format!("{kind}.{key}") };
    if s.name.trim().is_empty() {
        return Err(src.error(at("name"), "a step name must not be empty"));
    }
    if !seen_steps.insert(s.name.clone()) {
        return Err(fail("name", "two steps have this name; step names must be unique".into()));
    }
    let kinds = [s.http.is_some(), s.ussd.is_some(), s.mpesa_stk.is_some(), s.wait.is_some()];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err(fail("", "give exactly one of http, ussd, mpesa_stk or wait".into()));
    }
    let (kind, default_timeout, templates) = if let Some(h) = s.http {
        validate_http(&h).map_err(|(k, m)| fail(&within("http", &k), m))?;
        let mut t = vec![("http.url".to_owned(), h.url.clone())];
        t.extend(h.headers.iter().map(|(k, v)| (format!("http.headers.{k}"), v.clone())));
        t.extend(h.body.iter().map(|b| ("http.body".to_owned(), b.clone())));
        t.extend(h.form.iter().flatten().map(|(k, v)| (format!("http.form.{k}"), v.clone())));
        if let Some(j) = &h.json {
            json_strings("http.json", j, &mut t);
        }
        (StepKind::Http(Box::new(h)), DEFAULT_STEP_TIMEOUT, t)
    } else if let Some(u) = s.ussd {
        validate_ussd(&u).map_err(|(k, m)| fail(&within("ussd", &k), m))?;
        let session = u.session_timeout.map_or(super::USSD_SESSION_TIMEOUT, |d| d.get());
        let mut t = vec![
            ("ussd.url".to_owned(), u.url.clone()),
            ("ussd.service_code".to_owned(), u.service_code.clone()),
            ("ussd.phone".to_owned(), u.phone.clone()),
        ];
        t.extend(u.events_url.iter().map(|e| ("ussd.events_url".to_owned(), e.clone())));
        t.extend(
            u.dialogue
                .iter()
                .enumerate()
                .filter_map(|(j, d)| Some((format!("ussd.dialogue[{j}].input"), d.input.clone()?))),
        );
        (StepKind::Ussd(Box::new(u)), session + Duration::from_secs(5), t)
    } else if let Some(k) = s.mpesa_stk {
        validate_stk(&k, has_pool).map_err(|(key, m)| fail(&within("mpesa_stk", &key), m))?;
        let field = |f: &str, v: &String| (format!("mpesa_stk.{f}"), v.clone());
        let mut t = vec![
            field("base_url", &k.base_url),
            field("consumer_key", &k.consumer_key),
            field("consumer_secret", &k.consumer_secret),
            field("shortcode", &k.shortcode),
            field("passkey", &k.passkey),
            field("phone", &k.phone),
        ];
        t.extend(k.party_b.iter().map(|v| field("party_b", v)));
        if let Some(r) = &k.result.relay {
            t.push(field("result.relay.url", &r.url));
            t.extend(r.token.iter().map(|v| field("result.relay.token", v)));
        }
        (StepKind::MpesaStk(Box::new(k)), Duration::from_secs(120), t)
    } else {
        let w = s.wait.expect("one kind is present");
        let max = validate_wait(&w).map_err(|(k, m)| fail(&within("wait", &k), m))?;
        (StepKind::Wait(w), max + Duration::from_secs(1), Vec::new())
    };
    for (field, t) in &templates {
        for r in template::references(t).map_err(|m| fail(field, m))? {
            if !known.contains(&r) {
                return Err(fail(
                    field,
                    format!(
                        "`{{{{ {r} }}}}` is not defined here (define it under `variables:`, `secrets:`, or extract it in an earlier step)"
                    ),
                ));
            }
        }
    }
    for (var, ex) in &s.extract {
        let path = format!("extract.{var}");
        let n = [ex.json.is_some(), ex.regex.is_some(), ex.header.is_some()].iter().filter(|x| **x).count();
        if n != 1 {
            return Err(fail(&path, "give exactly one of json, regex or header".into()));
        }
        if let Some(p) = &ex.json {
            super::JsonPath::parse(p).map_err(|e| fail(&format!("{path}.json"), e.to_string()))?;
        }
        if let Some(r) = &ex.regex {
            regex::Regex::new(r).map_err(|e| fail(&format!("{path}.regex"), format!("invalid regex: {e}")))?;
        }
        known.insert(var.clone());
    }
    let timeout = s.timeout.map_or(default_timeout, |d| d.get());
    if timeout.is_zero() {
        return Err(fail("timeout", "timeout must be more than 0".into()));
    }
    Ok(Step { name: s.name, timeout, kind, extract: s.extract, line: src.line_of(&at("")) })
}

type FieldError = (String, String);

fn validate_http(h: &HttpStep) -> Result<(), FieldError> {
    const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    if !METHODS.contains(&h.method.to_ascii_uppercase().as_str()) {
        return Err(("method".into(), format!("`{}` is not one of {}", h.method, METHODS.join(", "))));
    }
    let bodies = [h.json.is_some(), h.form.is_some(), h.body.is_some()].iter().filter(|x| **x).count();
    if bodies > 1 {
        return Err(("json".into(), "give at most one of json, form or body".into()));
    }
    if let Some(p) = &h.poll
        && (p.interval.get().is_zero() || !(p.backoff.is_finite() && p.backoff >= 1.0))
    {
        return Err(("poll".into(), "interval must be above 0 and backoff at least 1".into()));
    }
    Ok(())
}

fn validate_ussd(u: &UssdStep) -> Result<(), FieldError> {
    let Some(first) = u.dialogue.first() else {
        return Err(("dialogue".into(), "needs at least the first screen".into()));
    };
    if first.input.is_some() {
        return Err(("dialogue".into(), "the first entry is the answer to the dial, so it takes no input".into()));
    }
    if let Some(i) = u.dialogue.iter().skip(1).position(|t: &UssdTurn| t.input.is_none()) {
        return Err((format!("dialogue[{}]", i + 1), "every entry after the first needs an input".into()));
    }
    if u.hop_timeout.is_some_and(|d| d.get().is_zero()) || u.session_timeout.is_some_and(|d| d.get().is_zero()) {
        return Err(("hop_timeout".into(), "timeouts must be above 0".into()));
    }
    Ok(())
}

fn validate_stk(k: &StkStep, has_pool: bool) -> Result<(), FieldError> {
    if k.max_amount > HARD_AMOUNT_CAP {
        return Err((
            "max_amount".into(),
            format!("{} KES is above the hard cap of {HARD_AMOUNT_CAP} KES for probes", k.max_amount),
        ));
    }
    if k.amount == 0 || k.amount > k.max_amount {
        return Err((
            "amount".into(),
            format!("{} KES must be between 1 and max_amount ({} KES)", k.amount, k.max_amount),
        ));
    }
    if k.phone == "pool" && !has_pool {
        return Err(("phone".into(), "`pool` needs a non-empty msisdn_pool on the journey".into()));
    }
    if !["CustomerPayBillOnline", "CustomerBuyGoodsOnline"].contains(&k.transaction_type.as_str()) {
        return Err(("transaction_type".into(), "CustomerPayBillOnline or CustomerBuyGoodsOnline".into()));
    }
    if k.account_reference.len() > 12 || k.description.is_empty() || k.description.len() > 13 {
        return Err((
            "account_reference".into(),
            "account_reference is at most 12 characters, description 1 to 13".into(),
        ));
    }
    if k.result.mode().is_none() {
        return Err(("result".into(), "give one of callback, relay or poll".into()));
    }
    if k.success_codes.is_empty() {
        return Err(("success_codes".into(), "list at least one ResultCode".into()));
    }
    Ok(())
}

fn validate_wait(w: &WaitStep) -> Result<Duration, FieldError> {
    match (w.fixed, w.min, w.max) {
        (Some(f), None, None) => Ok(f.get()),
        (None, Some(a), Some(b)) if a <= b => Ok(b.get()),
        (None, Some(_), Some(_)) => Err(("min".into(), "min must not exceed max".into())),
        _ => Err(("".into(), "give either `fixed`, or both `min` and `max`".into())),
    }
}

/// Every string in a JSON body, with its path (`http.json.items[0].name`).
fn json_strings(path: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::String(s) => out.push((path.to_owned(), s.clone())),
        serde_json::Value::Array(a) => {
            a.iter().enumerate().for_each(|(i, x)| json_strings(&format!("{path}[{i}]"), x, out))
        }
        serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| json_strings(&format!("{path}.{k}"), x, out)),
        _ => {}
    }
}

/// 9 to 15 digits, optionally with a leading `+`.
pub fn is_msisdn(s: &str) -> bool {
    let d = s.strip_prefix('+').unwrap_or(s);
    (9..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests;
