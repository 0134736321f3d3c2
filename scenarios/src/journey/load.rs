//! Loading and validating journey files (and importing dialoguss files).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use conf::Source;
use serde::Deserialize;

use super::{Dur, Extract, Journey, SecretRef, Secrets, Step, template};
use crate::{
    polite::{self, Politeness},
    steps::{self, Kind, LoadCx},
    ussd::dialoguss,
};

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
    doc.validate(src, base).inspect(|j| {
        super::credentials::warn(src, j);
        polite::journey_notices(src, j).iter().for_each(|n| tracing::warn!("{n}"));
    })
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
    /// Rate caps per target host and per MSISDN.
    #[serde(default)]
    politeness: Politeness,
    steps: Vec<StepFile>,
}

/// A step as written: its name, timeout and extractions, and one key per registered kind (of
/// which exactly one must be given).
macro_rules! step_file {
    ($($key:ident => $Variant:ident($Model:ident)),+ $(,)?) => {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct StepFile {
            name: String,
            timeout: Option<Dur>,
            $($key: Option<steps::$Model>,)+
            #[serde(default)]
            extract: BTreeMap<String, Extract>,
        }

        impl StepFile {
            /// The step's kind; `None` unless exactly one is given.
            fn take_kind(&mut self) -> Option<Kind> {
                let mut kinds = Vec::new();
                $(kinds.extend(self.$key.take().map(|k| Kind::$Variant(Box::new(k))));)+
                if kinds.len() == 1 { kinds.pop() } else { None }
            }
        }
    };
}
steps::for_each_kind!(step_file);

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
        self.politeness.validate().map_err(|(f, m)| src.error(format!("politeness.{f}"), m))?;
        let cx = LoadCx { msisdn_pool: &self.msisdn_pool, variables: &self.variables };
        for (i, s) in self.steps.into_iter().enumerate() {
            let step = validate_step(src, i, s, &cx, &mut known, &mut seen_steps)?;
            steps.push(step);
        }
        let timeout = self.timeout.map_or_else(|| steps.iter().map(|s| s.timeout).sum(), |d| d.get());
        Ok(Journey {
            name,
            description: self.description.unwrap_or_default(),
            labels: self.labels,
            profile: self.profile,
            timeout,
            timeout_given: self.timeout.is_some(),
            variables: self.variables,
            secrets,
            msisdn_pool: self.msisdn_pool,
            politeness: self.politeness,
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
    mut s: StepFile,
    cx: &LoadCx<'_>,
    known: &mut BTreeSet<String>,
    seen_steps: &mut BTreeSet<String>,
) -> Result<Step, LoadError> {
    let kind = s.take_kind();
    let at = |key: &str| if key.is_empty() { format!("steps[{i}]") } else { format!("steps[{i}].{key}") };
    let fail = |key: &str, msg: String| src.error(at(key), format!("step `{}`: {msg}", s.name));
    if s.name.trim().is_empty() {
        return Err(src.error(at("name"), "a step name must not be empty"));
    }
    if !seen_steps.insert(s.name.clone()) {
        return Err(fail("name", "two steps have this name; step names must be unique".into()));
    }
    let Some(kind) = kind else {
        return Err(fail("", format!("give exactly one of {}", one_of(Kind::NAMES))));
    };
    let within = |key: &str| if key.is_empty() { kind.name().to_owned() } else { format!("{}.{key}", kind.name()) };
    kind.validate(cx).map_err(|(k, m)| fail(&within(&k), m))?;
    for (field, t) in kind.templates() {
        let field = within(&field);
        for r in template::references(&t).map_err(|m| fail(&field, m))? {
            if !known.contains(&r) {
                return Err(fail(
                    &field,
                    format!(
                        "`{{{{ {r} }}}}` is not defined here (define it under `variables:`, `secrets:`, or extract it in an earlier step)"
                    ),
                ));
            }
        }
    }
    validate_extract(&s.extract, known).map_err(|(k, m)| fail(&k, m))?;
    let timeout = s.timeout.map_or_else(|| kind.default_timeout(), |d| d.get());
    if timeout.is_zero() {
        return Err(fail("timeout", "timeout must be more than 0".into()));
    }
    Ok(Step { name: s.name, timeout, kind, extract: s.extract, line: src.line_of(&at("")) })
}

/// Checks a step's `extract:`; the names it defines become `known`.
fn validate_extract(extract: &BTreeMap<String, Extract>, known: &mut BTreeSet<String>) -> Result<(), (String, String)> {
    for (var, ex) in extract {
        let path = format!("extract.{var}");
        let n = [ex.json.is_some(), ex.regex.is_some(), ex.header.is_some()].iter().filter(|x| **x).count();
        if n != 1 {
            return Err((path, "give exactly one of json, regex or header".into()));
        }
        if let Some(p) = &ex.json {
            super::JsonPath::parse(p).map_err(|e| (format!("{path}.json"), e.to_string()))?;
        }
        if let Some(r) = &ex.regex {
            regex::Regex::new(r).map_err(|e| (format!("{path}.regex"), format!("invalid regex: {e}")))?;
        }
        known.insert(var.clone());
    }
    Ok(())
}

/// `a, b, c or d`.
fn one_of(names: &[&str]) -> String {
    match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// 9 to 15 digits, optionally with a leading `+`.
pub fn is_msisdn(s: &str) -> bool {
    let d = s.strip_prefix('+').unwrap_or(s);
    (9..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests;
