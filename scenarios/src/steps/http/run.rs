//! Playing an `http:` step: the request, its assertions, polling.

use bytes::Bytes;
use http::Method;
use tokio::time::{Instant, sleep_until};

use super::HttpStep;
use crate::{
    http::{RequestSpec, Response},
    journey::credentials,
    mask::Masker,
    outcome::{Failure, Outcome},
    steps::{Ctx, Done, Final, Recorder, exchange, json_body},
};

pub(super) async fn run(h: &HttpStep, ctx: &mut Ctx<'_>, rec: &mut Recorder) -> Result<Done, Failure> {
    let spec = request(h, ctx)?;
    let label = format!("{} {}", spec.method, spec.url.path());
    let mut wait = h.poll.as_ref().map(|p| p.interval.get());
    let mut attempt = 1u32;
    loop {
        let resp = exchange(
            ctx,
            rec,
            ctx.http,
            if attempt == 1 { label.clone() } else { format!("{label} (poll {attempt})") },
            &spec,
        )
        .await;
        let problem = match resp {
            Ok(r) => match check(h, &r, &ctx.masker.lock()) {
                None => return Ok(Done::ok(Final::from_response(&r))),
                Some(f) => f,
            },
            Err(f) => f,
        };
        let (Some(p), Some(w)) = (&h.poll, wait) else { return Err(problem) };
        // Polling: try again until the step's deadline (which ends this future).
        rec.last_problem = Some(format!("after {attempt} attempts, the last: {}", problem.message));
        sleep_until(Instant::now() + w).await;
        let grown = w.mul_f64(p.backoff);
        wait = Some(p.max_interval.map_or(grown, |m| grown.min(m.get())));
        attempt += 1;
    }
}

fn request(h: &HttpStep, ctx: &Ctx<'_>) -> Result<RequestSpec, Failure> {
    let url_text = ctx.render("http.url", &h.url)?;
    let url = url::Url::parse(&url_text).map_err(|e| {
        Failure::new(Outcome::AssertionFailed, format!("http.url: `{}` is not a URL: {e}", ctx.mask(&url_text)))
    })?;
    let method = Method::from_bytes(h.method.to_ascii_uppercase().as_bytes()).expect("validated at load");
    let mut headers = Vec::new();
    for (k, v) in &h.headers {
        let value = ctx.render(&format!("http.headers.{k}"), v)?;
        if credentials::is_credential_header_value(k, &value) {
            let mut m = ctx.masker.lock();
            credentials::secret_parts(&value).into_iter().for_each(|p| m.add_secret(p));
        }
        headers.push((k.clone(), value));
    }
    let body = if let Some(j) = &h.json {
        let v = ctx.scope.render_json(j).map_err(|e| {
            Failure::new(Outcome::AssertionFailed, format!("http.json: variable `{}` has no value", e.0))
        })?;
        json_body(&v)
    } else if let Some(f) = &h.form {
        let mut pairs = Vec::new();
        for (k, v) in f {
            pairs.push((k.clone(), ctx.render(&format!("http.form.{k}"), v)?));
        }
        let encoded = serde_urlencoded::to_string(&pairs).expect("strings always encode");
        Some(("application/x-www-form-urlencoded".to_owned(), Bytes::from(encoded)))
    } else if let Some(b) = &h.body {
        Some(("text/plain; charset=utf-8".to_owned(), Bytes::from(ctx.render("http.body", b)?)))
    } else {
        None
    };
    Ok(RequestSpec { method, url, headers, body })
}

/// `None` when every assertion holds; otherwise the first that does not, classified. The start
/// of a body quoted in a message is masked before it is cut.
pub fn check(h: &HttpStep, r: &Response, masker: &Masker) -> Option<Failure> {
    let a = &h.assertions;
    let status = r.status.as_u16();
    let status_ok = match &a.status {
        Some(set) => set.contains(status),
        None => r.status.is_success(),
    };
    if !status_ok {
        let want = a.status.as_ref().map_or("2xx".to_owned(), |s| s.to_string());
        let outcome = if r.status.is_server_error() { Outcome::GatewayError } else { Outcome::AssertionFailed };
        let body = masker.start(&r.text(), 120);
        return Some(Failure::new(outcome, format!("HTTP {status}, expected {want}; body starts {body:?}")));
    }
    for (name, m) in &a.headers {
        let v = r.headers.get(name.as_str()).and_then(|v| v.to_str().ok());
        match v {
            Some(v) if m.matches(v) => {}
            Some(v) => {
                return Some(Failure::new(Outcome::AssertionFailed, format!("header {name} is {v:?}, expected {m}")));
            }
            None => {
                return Some(Failure::new(Outcome::AssertionFailed, format!("header {name} is missing, expected {m}")));
            }
        }
    }
    if let Some(m) = &a.body {
        let text = r.text();
        if !m.matches(&text) {
            let start = masker.start(&text, 120);
            return Some(Failure::new(Outcome::AssertionFailed, format!("body {start:?} is not {m}")));
        }
    }
    if !a.json.is_empty() {
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&r.body) else {
            return Some(Failure::new(
                Outcome::AssertionFailed,
                "the body is not JSON, but the step checks JSON paths",
            ));
        };
        for c in &a.json {
            if let Some(problem) = c.check(&doc) {
                return Some(Failure::new(Outcome::AssertionFailed, problem));
            }
        }
    }
    None
}
