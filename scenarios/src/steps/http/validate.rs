//! What the loader checks in an `http:` step.

use std::collections::BTreeMap;

use super::HttpStep;
use crate::{journey::credentials, steps::FieldError};

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

pub(super) fn validate(h: &HttpStep) -> Result<(), FieldError> {
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

pub(super) fn templates(h: &HttpStep) -> Vec<(String, String)> {
    let mut t = vec![("url".to_owned(), h.url.clone())];
    t.extend(h.headers.iter().map(|(k, v)| (format!("headers.{k}"), v.clone())));
    t.extend(h.body.iter().map(|b| ("body".to_owned(), b.clone())));
    t.extend(h.form.iter().flatten().map(|(k, v)| (format!("form.{k}"), v.clone())));
    if let Some(j) = &h.json {
        json_strings("json", j, &mut t);
    }
    t
}

/// Credential headers written literally, journey variables sent in one, and credential-named
/// form fields, JSON fields and query parameters.
pub(super) fn plain_credentials(h: &HttpStep, variables: &BTreeMap<String, String>) -> Vec<(String, &'static str)> {
    let mut found: Vec<(String, &'static str)> = Vec::new();
    for (k, v) in &h.headers {
        if let Some(why) = credentials::header_reason(k, v) {
            found.push((format!("headers.{k}"), why));
        }
        // A plain variable sent as a credential is one too, whatever its name.
        for r in crate::journey::template::references(v).unwrap_or_default() {
            let literal = variables.get(&r).is_some_and(|v| !credentials::literal(v).is_empty());
            let path = format!("variables.{r}");
            if credentials::is_credential_header(k) && literal && !found.iter().any(|(p, _)| *p == path) {
                found.push((path, "a value sent in a credential header is"));
            }
        }
    }
    let fields = h.form.iter().flatten().map(|(k, v)| (format!("form.{k}"), k.clone(), v.clone()));
    for (path, key, value) in
        fields.chain(json_fields(h.json.as_ref())).chain(query_fields(&h.url))
    {
        if let Some(why) = credentials::variable_reason(&key, &value) {
            found.push((path, why));
        }
    }
    found
}

/// Every string in a JSON body, with its path (`json.items[0].name`).
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

/// (field, key, value) of every string in a JSON body: the key is the nearest object key.
fn json_fields(json: Option<&serde_json::Value>) -> Vec<(String, String, String)> {
    fn walk(path: String, key: &str, v: &serde_json::Value, out: &mut Vec<(String, String, String)>) {
        match v {
            serde_json::Value::String(s) => out.push((path, key.to_owned(), s.clone())),
            serde_json::Value::Array(a) => {
                a.iter().enumerate().for_each(|(i, x)| walk(format!("{path}[{i}]"), key, x, out))
            }
            serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| walk(format!("{path}.{k}"), k, x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(j) = json {
        walk("json".into(), "", j, &mut out);
    }
    out
}

/// (field, key, value) of every `key=value` in the query of a URL template.
fn query_fields(url: &str) -> Vec<(String, String, String)> {
    let Some((_, query)) = url.split_once('?') else { return Vec::new() };
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| ("url".to_owned(), k.to_owned(), v.to_owned()))
        .collect()
}
