//! Credentials written into a journey in plain text.
//!
//! Secrets belong under `secrets:`, by reference (`env:NAME`, `file:PATH`). A journey may still
//! carry one literally — `authorization: "Bearer eyJ…"` as a header, a token in a variable, an API
//! key in a URL or a form. Such a journey loads (it may be a quick local test), but [`warn`] logs
//! one warning per field that names the file, the line and the field, never the value; and at run
//! time the player adds every such value to the run's masker ([`secret_parts`],
//! [`is_credential_header_value`], [`is_credential_variable`]), so it is masked in every output
//! anyway.
//!
//! What looks like a credential: a header named like one (Authorization, X-API-Key,
//! Ocp-Apim-Subscription-Key, Cookie, … and any name with a credential word), a variable or field
//! named with a credential word (token, secret, password, passkey, api key, auth, pin, …), or a
//! value shaped like one whatever its name (a JWT, 32+ hex digits, 24+ base64 characters mixing
//! cases and digits).

use std::fmt;

use conf::Source;

use super::Journey;
use crate::mask::CREDENTIAL_HEADERS;

/// Words that make a name a credential's (after splitting `api_key`, `apiKey`, `X-Api-Key`).
const WORDS: &[&str] = &[
    "token",
    "tokens",
    "secret",
    "password",
    "passwd",
    "pwd",
    "passkey",
    "passphrase",
    "apikey",
    "credential",
    "credentials",
    "auth",
    "authorization",
    "bearer",
    "cookie",
    "pin",
    "otp",
    "sessionid",
];

/// Pairs of words that do (`api key`, `access key`, …).
const PAIRS: &[(&str, &str)] = &[
    ("api", "key"),
    ("access", "key"),
    ("private", "key"),
    ("secret", "key"),
    ("subscription", "key"),
    ("session", "id"),
];

/// Authorization schemes a header value may start with (RFC 9110 §11.6.2).
const SCHEMES: &[&str] = &["bearer", "basic", "token", "digest", "apikey", "key"];

/// A field of a journey that holds a credential in plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub file: String,
    /// 1-based; 0 when unknown.
    pub line: usize,
    /// The field, as `steps[0].http.headers.authorization`.
    pub field: String,
    /// Why it looks like a credential (never the value).
    pub why: &'static str,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        write!(
            f,
            ": {}: {} written in plain text; give it under `secrets:` by reference (env:NAME or \
             file:PATH) and write {{{{ secrets.NAME }}}} here (it is masked in every output meanwhile)",
            self.field, self.why
        )
    }
}

/// Logs a warning for every credential `journey` (loaded from `src`) holds in plain text.
pub fn warn(src: &Source, journey: &Journey) {
    for w in check(src, journey) {
        tracing::warn!("{w}");
    }
}

/// Every field of `journey` (loaded from `src`) that holds a credential in plain text.
pub fn check(src: &Source, journey: &Journey) -> Vec<Warning> {
    let mut found: Vec<(String, &'static str)> = Vec::new();
    for (k, v) in &journey.variables {
        if let Some(why) = variable_reason(k, v) {
            found.push((format!("variables.{k}"), why));
        }
    }
    for (i, step) in journey.steps.iter().enumerate() {
        for (path, why) in step.kind.plain_credentials(&journey.variables) {
            // `variables.NAME`: a journey variable the step sends as a credential, named once.
            if path.starts_with("variables.") {
                if !found.iter().any(|(p, _)| *p == path) {
                    found.push((path, why));
                }
            } else {
                found.push((format!("steps[{i}].{}.{path}", step.kind.name()), why));
            }
        }
    }
    found
        .into_iter()
        .map(|(field, why)| Warning { file: src.file().to_owned(), line: src.line_of(&field), field, why })
        .collect()
}

/// Why a header value is a plain-text credential, if it is.
pub(crate) fn header_reason(name: &str, value: &str) -> Option<&'static str> {
    let lit = literal(value);
    let token = strip_scheme(&lit);
    if is_credential_header(name) && token.chars().count() >= 4 {
        Some("a credential header is")
    } else if looks_like_credential(token) {
        Some("a token-shaped value is")
    } else {
        None
    }
}

/// Why a variable's (or field's) value is a plain-text credential, if it is.
pub(crate) fn variable_reason(name: &str, value: &str) -> Option<&'static str> {
    let lit = literal(value);
    if is_credential_name(name) && !lit.is_empty() && !lit.contains("://") {
        Some("a value named like a credential is")
    } else if looks_like_credential(strip_scheme(&lit)) {
        Some("a token-shaped value is")
    } else {
        None
    }
}

/// Whether a variable's value should be masked: named like a credential or shaped like one.
pub fn is_credential_variable(name: &str, value: &str) -> bool {
    (is_credential_name(name) && !value.contains("://")) || looks_like_credential(strip_scheme(value))
}

/// Whether a header's (rendered) value is to be masked: its name is a credential header's, or
/// the value is shaped like a credential.
pub fn is_credential_header_value(name: &str, value: &str) -> bool {
    is_credential_header(name) || looks_like_credential(strip_scheme(value))
}

/// Whether header `name` carries credentials.
pub fn is_credential_header(name: &str) -> bool {
    CREDENTIAL_HEADERS.contains(&name.to_ascii_lowercase().as_str()) || is_credential_name(name)
}

/// Whether `name` (`api_key`, `apiKey`, `X-Auth-Token`, `session_token`) names a credential.
pub fn is_credential_name(name: &str) -> bool {
    let words = words(name);
    words.iter().any(|w| WORDS.contains(&w.as_str()))
        || words.windows(2).any(|p| PAIRS.contains(&(p[0].as_str(), p[1].as_str())))
}

/// Whether `value` is shaped like a credential: a JWT, 32+ hex digits, or 24+ characters of
/// base64 (or base64url) that mix upper case, lower case and digits.
pub fn looks_like_credential(value: &str) -> bool {
    let v = value.trim();
    let b64 = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || "+/=_-".contains(c));
    let segments: Vec<&str> = v.split('.').collect();
    let jwt = segments.len() == 3 && v.starts_with("eyJ") && v.len() >= 20 && segments.iter().all(|s| b64(s));
    let hex = v.len() >= 32 && v.chars().all(|c| c.is_ascii_hexdigit());
    let mixed = v.chars().any(|c| c.is_ascii_uppercase())
        && v.chars().any(|c| c.is_ascii_lowercase())
        && v.chars().any(|c| c.is_ascii_digit());
    jwt || hex || (v.len() >= 24 && b64(v) && mixed)
}

/// What to add to a masker for a credential value: the value, the token after its scheme
/// (`Bearer <token>`), and each value of a cookie list (`a=<v>; b=<v>`).
pub fn secret_parts(value: &str) -> Vec<&str> {
    let v = value.trim();
    let mut parts = vec![v, strip_scheme(v)];
    if v.contains('=') && (v.contains(';') || !v.contains(' ')) {
        parts.extend(v.split(';').filter_map(|kv| kv.split_once('=').map(|(_, x)| x.trim())));
    }
    parts.retain(|p| p.len() >= 3);
    parts.dedup();
    parts
}

/// `Bearer abc` → `abc`, `Bearer` alone → ``; anything else unchanged.
fn strip_scheme(v: &str) -> &str {
    let v = v.trim();
    let is_scheme = |s: &str| SCHEMES.contains(&s.to_ascii_lowercase().as_str());
    match v.split_once(' ') {
        Some((scheme, rest)) if is_scheme(scheme) => rest.trim(),
        None if is_scheme(v) => "",
        _ => v,
    }
}

/// The text of `value` outside its `{{ … }}` templates, trimmed.
pub(crate) fn literal(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        match rest[i..].find("}}") {
            Some(j) => rest = &rest[i + j + 2..],
            None => return out.trim().to_owned(),
        }
    }
    out.push_str(rest);
    out.trim().to_owned()
}

/// `apiKey` → [api, key]; `X-Auth-Token` → [x, auth, token].
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if (!c.is_ascii_alphanumeric() || (c.is_ascii_uppercase() && prev_lower)) && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        if c.is_ascii_alphanumeric() {
            cur.push(c.to_ascii_lowercase());
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests;
