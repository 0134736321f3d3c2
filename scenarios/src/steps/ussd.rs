//! `ussd`: play the gateway against a USSD application's callback URL.
//!
//! Each turn is one hop: the dialect builds the request the gateway would send, the app answers
//! with a screen. The step enforces what the networks enforce: the per-hop deadline (15 s), the
//! session limit (180 s) and the 182-character GSM-7 screen (80 in UCS-2). A session the app does
//! not end is released the way the dialect does it (Africa's Talking: an `Incomplete` event).

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use rand::RngExt;
use tokio::time::{Instant, timeout};

use super::{Ctx, Done, Final, Recorder, exchange, http::human};
use crate::{
    http::RequestSpec,
    journey::{USSD_HOP_TIMEOUT, USSD_SESSION_TIMEOUT, UssdStep, UssdTurn},
    outcome::{Failure, Outcome},
    ussd::{Dialect, HopRequest, Release, Screen, Session, dialect, dialects::EndEvent, screen_capacity},
};

pub async fn run(u: &UssdStep, ctx: &mut Ctx<'_>, rec: &mut Recorder) -> Result<Done, Failure> {
    let d = dialect(u.dialect);
    let url = parse_url(ctx, "ussd.url", &u.url)?;
    let events_url = match &u.events_url {
        Some(e) => Some(parse_url(ctx, "ussd.events_url", e)?),
        None => None,
    };
    let mut session = new_session(u, ctx)?;
    let hop_timeout = u.hop_timeout.map_or(USSD_HOP_TIMEOUT, |x| x.get());
    let started = Instant::now();
    let session_deadline = started + u.session_timeout.map_or(USSD_SESSION_TIMEOUT, |x| x.get());
    let mut last_text = String::new();
    let last_turn = u.dialogue.len() - 1;

    for (i, turn) in u.dialogue.iter().enumerate() {
        let hop = i + 1;
        let input = match &turn.input {
            Some(t) => {
                let v = ctx.render(&format!("ussd.dialogue[{i}].input"), t)?;
                session.inputs.push(v.clone());
                Some(v)
            }
            None => None,
        };
        let req = d.request(&session, input.as_deref());
        let now = Instant::now();
        if now >= session_deadline {
            let f = Failure::new(
                Outcome::Timeout,
                format!("hop {hop}: the session passed its limit of {}", human(session_deadline - started)),
            );
            return Err(timed_out(ctx, rec, d, &session, events_url.as_ref(), &url, started, &last_text, f).await);
        }
        let limit = hop_timeout.min(session_deadline - now);
        let hop_started = Instant::now();
        let sent = timeout(limit, exchange(ctx, rec, ctx.gateway, format!("hop {hop}"), &post(&url, &req))).await;
        let resp = match sent {
            Ok(r) => r,
            Err(_) => {
                let f = Failure::new(
                    Outcome::Timeout,
                    format!("hop {hop}: the app did not answer within {} (the gateway's deadline)", human(limit)),
                );
                return Err(timed_out(ctx, rec, d, &session, events_url.as_ref(), &url, started, &last_text, f).await);
            }
        };
        let resp = match resp {
            Ok(r) => r,
            Err(f) => {
                send_event(ctx, rec, events_url.as_ref(), &session, "Failed", started, &last_text, Some(&f.message))
                    .await;
                return Err(Failure::new(f.outcome, format!("hop {hop}: {}", f.message)));
            }
        };
        let took = hop_started.elapsed();
        let screen = match d.parse(resp.status.as_u16(), &resp.text()) {
            Ok(s) => s,
            Err(e) => {
                let start = ctx.start(&resp.text(), 40);
                let f =
                    Failure::new(Outcome::GatewayError, format!("hop {hop}: {}; the reply: {start:?}", ctx.mask(&e)));
                send_event(ctx, rec, events_url.as_ref(), &session, "Failed", started, &last_text, Some(&f.message))
                    .await;
                return Err(f);
            }
        };
        last_text = screen.text.clone();
        session.client_state = screen.client_state.clone();
        check_screen(ctx, turn, &screen, took, hop, last_turn - i)?;
        if screen.end {
            send_event(ctx, rec, events_url.as_ref(), &session, "Success", started, &last_text, None).await;
            return Ok(Done::ok(Final { text: screen.text, ..Final::default() }));
        }
    }
    // The dialogue is over and the app still waits for input: the user walks away.
    release(ctx, rec, d, &session, events_url.as_ref(), &url, Release::UserAbandoned, started, &last_text, None).await;
    Ok(Done::ok(Final { text: last_text, ..Final::default() }))
}

/// The gateway's session for this step; its phone number is masked from now on.
fn new_session(u: &UssdStep, ctx: &mut Ctx<'_>) -> Result<Session, Failure> {
    let phone = ctx.render("ussd.phone", &u.phone)?;
    ctx.hide_number(&phone);
    Ok(Session {
        id: format!("ATUid_{}", hex(ctx.rng.random::<u64>())),
        service_code: ctx.render("ussd.service_code", &u.service_code)?,
        phone,
        network_code: u.network_code.clone(),
        inputs: Vec::new(),
        client_state: None,
    })
}

/// Checks one screen against the network's limit and the turn's expectations; `turns_left` is
/// how many turns of the dialogue follow this one.
fn check_screen(
    ctx: &Ctx<'_>,
    turn: &UssdTurn,
    screen: &Screen,
    took: Duration,
    hop: usize,
    turns_left: usize,
) -> Result<(), Failure> {
    let fail = |msg: String| Err(Failure::new(Outcome::AssertionFailed, format!("hop {hop}: {msg}")));
    let (used, capacity, coding) = screen_capacity(&screen.text);
    if used > capacity {
        return fail(format!(
            "the screen is {used} {coding} characters, above the limit of {capacity}; phones would cut it"
        ));
    }
    if let Some(max) = turn.max_latency
        && took > max.get()
    {
        return fail(format!("the app took {}, above max_latency {}", human(took), human(max.get())));
    }
    if let Some(m) = &turn.expect
        && !m.matches(&screen.text)
    {
        return fail(format!("expected a screen {m}, got {:?}", ctx.mask(&screen.text)));
    }
    if let Some(end) = turn.end
        && end != screen.end
    {
        let what = if end { "end the session (END)" } else { "continue (CON)" };
        return fail(format!("expected the app to {what}; it answered {:?}", ctx.mask(&screen.text)));
    }
    if screen.end && turns_left > 0 {
        return fail(format!("the app ended the session, but the dialogue has {turns_left} more turn(s)"));
    }
    Ok(())
}

fn parse_url(ctx: &Ctx<'_>, field: &str, text: &str) -> Result<url::Url, Failure> {
    let t = ctx.render(field, text)?;
    url::Url::parse(&t)
        .map_err(|e| Failure::new(Outcome::AssertionFailed, format!("{field}: `{}` is not a URL: {e}", ctx.mask(&t))))
}

fn post(url: &url::Url, req: &HopRequest) -> RequestSpec {
    RequestSpec {
        method: Method::POST,
        url: url.clone(),
        headers: Vec::new(),
        body: Some((req.content_type.to_owned(), Bytes::from(req.body.clone()))),
    }
}

/// A deadline passed: the gateway releases the session (reporting why), and the step fails with `f`.
#[allow(clippy::too_many_arguments)]
async fn timed_out(
    ctx: &Ctx<'_>,
    rec: &mut Recorder,
    d: &dyn Dialect,
    session: &Session,
    events_url: Option<&url::Url>,
    url: &url::Url,
    started: Instant,
    last_text: &str,
    f: Failure,
) -> Failure {
    release(ctx, rec, d, session, events_url, url, Release::Timeout, started, last_text, Some(&f.message)).await;
    f
}

/// Ends a session the app did not end: in-band for dialects that have it, an event otherwise.
#[allow(clippy::too_many_arguments)]
async fn release(
    ctx: &Ctx<'_>,
    rec: &mut Recorder,
    d: &dyn Dialect,
    session: &Session,
    events_url: Option<&url::Url>,
    url: &url::Url,
    why: Release,
    started: Instant,
    last_text: &str,
    error: Option<&str>,
) {
    if let Some(req) = d.release(session, why) {
        // Best effort, bounded: the app's answer to a release does not change the outcome.
        let _ = timeout(USSD_HOP_TIMEOUT, exchange(ctx, rec, ctx.gateway, "release".into(), &post(url, &req))).await;
    }
    let status = match (why, error) {
        (Release::UserAbandoned, None) => "Incomplete",
        _ => "Failed",
    };
    send_event(ctx, rec, events_url, session, status, started, last_text, error).await;
}

/// Africa's Talking's end-of-session notification, when the journey gives an events URL.
#[allow(clippy::too_many_arguments)]
async fn send_event(
    ctx: &Ctx<'_>,
    rec: &mut Recorder,
    events_url: Option<&url::Url>,
    session: &Session,
    status: &'static str,
    started: Instant,
    last_text: &str,
    error: Option<&str>,
) {
    let Some(url) = events_url else { return };
    let ev = EndEvent {
        session,
        status,
        duration_ms: started.elapsed().as_millis(),
        hops: session.inputs.len() + 1,
        last_app_response: last_text,
        error_message: error,
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string(),
    };
    let req = HopRequest { content_type: "application/x-www-form-urlencoded", body: ev.form() };
    let _ =
        timeout(USSD_HOP_TIMEOUT, exchange(ctx, rec, ctx.gateway, format!("end event ({status})"), &post(url, &req)))
            .await;
}

fn hex(v: u64) -> String {
    format!("{v:016x}")
}
