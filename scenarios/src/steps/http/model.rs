//! The `http:` step as a journey file writes it.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::journey::{Dur, JsonCheck, Matcher};

/// An HTTP request, its assertions, and optional polling until the assertions hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpStep {
    /// GET, POST, PUT, PATCH, DELETE, HEAD. Default GET.
    #[serde(default = "default_method")]
    pub method: String,
    /// URL template, e.g. `{{ shop }}/api/orders/{{ order_id }}`.
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body; every string inside may hold templates.
    pub json: Option<serde_json::Value>,
    /// Form body (`application/x-www-form-urlencoded`).
    pub form: Option<BTreeMap<String, String>>,
    /// Raw body.
    pub body: Option<String>,
    /// What the response must look like.
    #[serde(default, rename = "assert")]
    pub assertions: HttpAssert,
    /// Repeat the request until the assertions hold (or the step times out).
    pub poll: Option<Poll>,
}

fn default_method() -> String {
    "GET".to_owned()
}

/// Assertions on an HTTP response. With none given, the status must be 2xx.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAssert {
    /// Allowed status codes (one or a list).
    pub status: Option<StatusSet>,
    /// Header name → matcher.
    #[serde(default)]
    pub headers: BTreeMap<String, Matcher>,
    /// Matcher on the body text.
    pub body: Option<Matcher>,
    /// Checks on JSON paths of the body.
    #[serde(default)]
    pub json: Vec<JsonCheck>,
}

/// One status or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StatusSet {
    One(u16),
    Many(Vec<u16>),
}

impl StatusSet {
    pub fn contains(&self, s: u16) -> bool {
        match self {
            StatusSet::One(x) => *x == s,
            StatusSet::Many(v) => v.contains(&s),
        }
    }
}

impl std::fmt::Display for StatusSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusSet::One(x) => write!(f, "{x}"),
            StatusSet::Many(v) => write!(f, "{}", v.iter().map(u16::to_string).collect::<Vec<_>>().join(" or ")),
        }
    }
}

/// Polling: repeat until the assertions pass, waiting `interval`, growing by `backoff` up to
/// `max_interval`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Poll {
    pub interval: Dur,
    #[serde(default = "one")]
    pub backoff: f64,
    pub max_interval: Option<Dur>,
}

fn one() -> f64 {
    1.0
}
