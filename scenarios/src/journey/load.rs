//! Loading and validating journey files (and importing dialoguss files).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    time::Duration,
};

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

/// A journey file that cannot be used. Displays as `file:line: message`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct LoadError {
    pub file: String,
    /// 1-based; 0 when no single line is to blame.
    pub line: usize,
    pub message: String,
}

/// Reads a journey (or a dialoguss file, converted) from disk. Secrets are resolved now, so a
/// missing one is an error before anything is sent.
pub fn load_file(path: &Path) -> Result<Journey, LoadError> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| LoadError {
        file: file.clone(),
        line: 0,
        message: format!("cannot read the journey file: {e}"),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_journey(&src, &file, base)
}

/// Parses a journey from `src`. `file` names it in errors; `base` anchors relative secret paths.
pub fn parse_journey(src: &str, file: &str, base: &Path) -> Result<Journey, LoadError> {
    let err = |line: usize, message: String| LoadError { file: file.to_owned(), line, message };
    let top: serde_yaml_ng::Value = serde_yaml_ng::from_str(src).map_err(|e| yaml_error(file, &e))?;
    let Some(map) = top.as_mapping() else {
        return Err(err(1, "a journey is a mapping with `name:` and `steps:`".into()));
    };
    if map.contains_key("dial") && map.contains_key("sessions") && !map.contains_key("steps") {
        return dialoguss::import(src, file);
    }
    let doc: JourneyFile = serde_yaml_ng::from_str(src).map_err(|e| yaml_error(file, &e))?;
    doc.validate(src, file, base)
}

pub(crate) fn yaml_error(file: &str, e: &serde_yaml_ng::Error) -> LoadError {
    let line = e.location().map_or(0, |l| l.line());
    let mut message = e.to_string();
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    LoadError { file: file.to_owned(), line, message }
}

/// 1-based line of `- name: <step>` (or `name: <step>`), 0 when not found.
pub(crate) fn line_of_step(src: &str, step: &str) -> usize {
    src.lines()
        .position(|l| {
            let t = l.trim_start().trim_start_matches("- ").trim_start();
            t.strip_prefix("name:").is_some_and(|v| v.trim().trim_matches(['"', '\'']) == step)
        })
        .map_or(0, |i| i + 1)
}

/// 1-based line of the first `key:` at or after line `from`, else `from`.
fn line_of_key(src: &str, from: usize, key: &str) -> usize {
    src.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| {
            let t = l.trim_start().trim_start_matches("- ").trim_start();
            t.strip_prefix(key).is_some_and(|r| r.trim_start().starts_with(':'))
        })
        .map_or(from, |(i, _)| i + 1)
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
    fn validate(self, src: &str, file: &str, base: &Path) -> Result<Journey, LoadError> {
        let err = |line: usize, message: String| LoadError { file: file.to_owned(), line, message };
        let name = self.name.trim().to_owned();
        if name.is_empty() {
            return Err(err(line_of_key(src, 1, "name"), "name: must not be empty".into()));
        }
        if self.steps.is_empty() {
            return Err(err(line_of_key(src, 1, "steps"), "steps: a journey needs at least one step".into()));
        }
        let mut secrets = Secrets::default();
        for (k, r) in &self.secrets {
            let v = r.resolve(base).map_err(|e| err(line_of_key(src, 1, k), format!("secrets.{k}: {e}")))?;
            secrets.0.insert(k.clone(), v);
        }
        for m in &self.msisdn_pool {
            if !is_msisdn(m) {
                return Err(err(
                    line_of_key(src, 1, "msisdn_pool"),
                    "msisdn_pool: every entry must be 9–15 digits, optionally with a leading +".into(),
                ));
            }
        }

        // Names a template may use at each step: variables, secrets, builtins, earlier extractions.
        let mut known: BTreeSet<String> = self.variables.keys().cloned().collect();
        known.extend(secrets.0.keys().map(|k| format!("secrets.{k}")));
        known.extend(BUILTINS.iter().map(|s| s.to_string()));
        let mut seen_steps = BTreeSet::new();
        let mut steps = Vec::with_capacity(self.steps.len());
        for s in self.steps {
            let line = line_of_step(src, &s.name);
            let at = |key: &str| line_of_key(src, line.max(1), key);
            let fail = |key: &str, msg: String| err(at(key), format!("step `{}`: {msg}", s.name));
            if s.name.trim().is_empty() {
                return Err(err(line, "step name must not be empty".into()));
            }
            if !seen_steps.insert(s.name.clone()) {
                return Err(fail("name", "two steps have this name; step names must be unique".into()));
            }
            let kinds = [s.http.is_some(), s.ussd.is_some(), s.mpesa_stk.is_some(), s.wait.is_some()];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(fail("name", "give exactly one of http, ussd, mpesa_stk or wait".into()));
            }
            let (kind, default_timeout, templates) = if let Some(h) = s.http {
                validate_http(&h).map_err(|(k, m)| fail(k, m))?;
                let mut t = vec![h.url.clone()];
                t.extend(h.headers.values().cloned());
                t.extend(h.body.iter().cloned());
                t.extend(h.form.iter().flat_map(|f| f.values().cloned()));
                if let Some(j) = &h.json {
                    json_strings(j, &mut t);
                }
                (StepKind::Http(Box::new(h)), DEFAULT_STEP_TIMEOUT, t)
            } else if let Some(u) = s.ussd {
                validate_ussd(&u).map_err(|(k, m)| fail(k, m))?;
                let session = u.session_timeout.map_or(super::USSD_SESSION_TIMEOUT, |d| d.0);
                let mut t = vec![u.url.clone(), u.service_code.clone(), u.phone.clone()];
                t.extend(u.events_url.iter().cloned());
                t.extend(u.dialogue.iter().filter_map(|d| d.input.clone()));
                (StepKind::Ussd(Box::new(u)), session + Duration::from_secs(5), t)
            } else if let Some(k) = s.mpesa_stk {
                validate_stk(&k, !self.msisdn_pool.is_empty()).map_err(|(key, m)| fail(key, m))?;
                let mut t = vec![k.base_url.clone(), k.consumer_key.clone(), k.consumer_secret.clone()];
                t.extend([k.shortcode.clone(), k.passkey.clone(), k.phone.clone()]);
                t.extend(k.party_b.iter().cloned());
                if let Some(r) = &k.result.relay {
                    t.push(r.url.clone());
                    t.extend(r.token.iter().cloned());
                }
                (StepKind::MpesaStk(Box::new(k)), Duration::from_secs(120), t)
            } else {
                let w = s.wait.expect("one kind is present");
                let max = validate_wait(&w).map_err(|(k, m)| fail(k, m))?;
                (StepKind::Wait(w), max + Duration::from_secs(1), Vec::new())
            };
            for t in &templates {
                for r in template::references(t).map_err(|m| fail("name", m))? {
                    if !known.contains(&r) {
                        let line = src
                            .lines()
                            .enumerate()
                            .skip(line.saturating_sub(1))
                            .find(|(_, l)| l.contains(&r) && l.contains("{{"))
                            .map_or(line, |(i, _)| i + 1);
                        return Err(err(
                            line,
                            format!(
                                "step `{}`: `{{{{ {r} }}}}` is not defined here (define it under `variables:`, `secrets:`, or extract it in an earlier step)",
                                s.name
                            ),
                        ));
                    }
                }
            }
            for (var, ex) in &s.extract {
                let n = [ex.json.is_some(), ex.regex.is_some(), ex.header.is_some()].iter().filter(|x| **x).count();
                if n != 1 {
                    return Err(fail("extract", format!("extract.{var}: give exactly one of json, regex or header")));
                }
                if let Some(p) = &ex.json {
                    super::JsonPath::parse(p).map_err(|e| fail("extract", format!("extract.{var}: {e}")))?;
                }
                if let Some(r) = &ex.regex {
                    regex::Regex::new(r).map_err(|e| fail("extract", format!("extract.{var}: invalid regex: {e}")))?;
                }
                known.insert(var.clone());
            }
            let timeout = s.timeout.map_or(default_timeout, |d| d.0);
            if timeout.is_zero() {
                return Err(fail("timeout", "timeout must be more than 0".into()));
            }
            steps.push(Step { name: s.name, timeout, kind, extract: s.extract, line });
        }
        let timeout = self.timeout.map_or_else(|| steps.iter().map(|s| s.timeout).sum(), |d| d.0);
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
            source: file.to_owned(),
        })
    }
}

type FieldError = (&'static str, String);

fn validate_http(h: &HttpStep) -> Result<(), FieldError> {
    const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    if !METHODS.contains(&h.method.to_ascii_uppercase().as_str()) {
        return Err(("method", format!("http.method: `{}` is not one of {}", h.method, METHODS.join(", "))));
    }
    let bodies = [h.json.is_some(), h.form.is_some(), h.body.is_some()].iter().filter(|x| **x).count();
    if bodies > 1 {
        return Err(("json", "http: give at most one of json, form or body".into()));
    }
    if let Some(p) = &h.poll
        && (p.interval.0.is_zero() || !(p.backoff.is_finite() && p.backoff >= 1.0))
    {
        return Err(("poll", "http.poll: interval must be above 0 and backoff at least 1".into()));
    }
    Ok(())
}

fn validate_ussd(u: &UssdStep) -> Result<(), FieldError> {
    let Some(first) = u.dialogue.first() else {
        return Err(("dialogue", "ussd.dialogue: needs at least the first screen".into()));
    };
    if first.input.is_some() {
        return Err((
            "dialogue",
            "ussd.dialogue: the first entry is the answer to the dial, so it takes no input".into(),
        ));
    }
    if let Some(i) = u.dialogue.iter().skip(1).position(|t: &UssdTurn| t.input.is_none()) {
        return Err(("dialogue", format!("ussd.dialogue[{}]: every entry after the first needs an input", i + 1)));
    }
    if u.hop_timeout.is_some_and(|d| d.0.is_zero()) || u.session_timeout.is_some_and(|d| d.0.is_zero()) {
        return Err(("hop_timeout", "ussd: timeouts must be above 0".into()));
    }
    Ok(())
}

fn validate_stk(k: &StkStep, has_pool: bool) -> Result<(), FieldError> {
    if k.max_amount > HARD_AMOUNT_CAP {
        return Err((
            "max_amount",
            format!(
                "mpesa_stk.max_amount: {} KES is above the hard cap of {HARD_AMOUNT_CAP} KES for probes",
                k.max_amount
            ),
        ));
    }
    if k.amount == 0 || k.amount > k.max_amount {
        return Err((
            "amount",
            format!("mpesa_stk.amount: {} KES must be between 1 and max_amount ({} KES)", k.amount, k.max_amount),
        ));
    }
    if k.phone == "pool" && !has_pool {
        return Err(("phone", "mpesa_stk.phone: `pool` needs a non-empty msisdn_pool on the journey".into()));
    }
    if !["CustomerPayBillOnline", "CustomerBuyGoodsOnline"].contains(&k.transaction_type.as_str()) {
        return Err((
            "transaction_type",
            "mpesa_stk.transaction_type: CustomerPayBillOnline or CustomerBuyGoodsOnline".into(),
        ));
    }
    if k.account_reference.len() > 12 || k.description.is_empty() || k.description.len() > 13 {
        return Err((
            "account_reference",
            "mpesa_stk: account_reference is at most 12 characters, description 1 to 13".into(),
        ));
    }
    if k.result.mode().is_none() {
        return Err(("result", "mpesa_stk.result: give one of callback, relay or poll".into()));
    }
    if k.success_codes.is_empty() {
        return Err(("success_codes", "mpesa_stk.success_codes: list at least one ResultCode".into()));
    }
    Ok(())
}

fn validate_wait(w: &WaitStep) -> Result<Duration, FieldError> {
    match (w.fixed, w.min, w.max) {
        (Some(f), None, None) => Ok(f.0),
        (None, Some(a), Some(b)) if a <= b => Ok(b.0),
        (None, Some(_), Some(_)) => Err(("min", "wait: min must not exceed max".into())),
        _ => Err(("wait", "wait: give either `fixed`, or both `min` and `max`".into())),
    }
}

fn json_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| json_strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| json_strings(x, out)),
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
