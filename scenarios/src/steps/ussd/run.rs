//! Playing a `ussd:` step.
//!
//! Each turn is one hop: the dialect builds the request the gateway would send, the app answers
//! with a screen. The step enforces what the networks enforce: the per-hop deadline (15 s), the
//! session limit (180 s) and the 182-character GSM-7 screen (80 in UCS-2). A session the app does
//! not end is released the way the dialect does it (Africa's Talking: an `Incomplete` event).

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use rand::RngExt;
use tokio::time::Instant;

use super::{USSD_HOP_TIMEOUT, USSD_SESSION_TIMEOUT, UssdStep, UssdTurn, Via};
use crate::{
    http::RequestSpec,
    outcome::{Failure, Outcome},
    steps::{Ctx, Done, Final, Recorder, exchange_within, human},
    ussd::{Dialect, HopRequest, Release, Screen, Session, dialect, dialects::EndEvent, direct_inputs, screen_capacity},
};

/// One session as the gateway plays it: where it sends hops and events, and what it has seen.
struct Gateway {
    dialect: &'static dyn Dialect,
    url: url::Url,
    events_url: Option<url::Url>,
    session: Session,
    started: Instant,
    /// The app's last screen, for the end-of-session event.
    last_text: String,
}

pub(super) async fn run(u: &UssdStep, ctx: &mut Ctx<'_>, rec: &mut Recorder) -> Result<Done, Failure> {
    if u.via == Via::Modem {
        return super::modem::run(u, ctx, rec).await;
    }
    let url = parse_url(ctx, "ussd.url", &u.url)?;
    let events_url = match &u.events_url {
        Some(e) => Some(parse_url(ctx, "ussd.events_url", e)?),
        None => None,
    };
    let session = new_session(u, ctx)?;
    // A session reaches the subscriber's phone: it waits for the number's politeness cap.
    ctx.polite.msisdn(&session.phone, rec).await;
    let mut gw =
        Gateway { dialect: dialect(u.dialect), url, events_url, session, started: Instant::now(), last_text: String::new() };
    let hop_timeout = u.hop_timeout.map_or(USSD_HOP_TIMEOUT, |x| x.get());
    let session_deadline = gw.started + u.session_timeout.map_or(USSD_SESSION_TIMEOUT, |x| x.get());
    let last_turn = u.dialogue.len() - 1;

    for (i, turn) in u.dialogue.iter().enumerate() {
        let hop = i + 1;
        let input = match &turn.input {
            Some(t) => {
                let v = ctx.render(&format!("ussd.dialogue[{i}].input"), t)?;
                gw.session.inputs.push(v.clone());
                Some(v)
            }
            None => None,
        };
        let req = gw.dialect.request(&gw.session, input.as_deref());
        let now = Instant::now();
        if now >= session_deadline {
            let limit = human(session_deadline - gw.started);
            let f = Failure::new(Outcome::Timeout, format!("hop {hop}: the session passed its limit of {limit}"));
            return Err(gw.timed_out(ctx, rec, f).await);
        }
        let limit = hop_timeout.min(session_deadline - now);
        let hop_started = Instant::now();
        let screen = gw.hop(ctx, rec, hop, limit, &req).await?;
        let took = hop_started.elapsed();
        gw.last_text = screen.text.clone();
        gw.session.client_state = screen.client_state.clone();
        let cap = gw.dialect.screen_limit().map(|c| (gw.dialect.name(), c));
        check_screen(ctx, cap, turn, &screen, took, hop, last_turn - i)?;
        if screen.end {
            gw.send_event(ctx, rec, "Success", None).await;
            return Ok(Done::ok(Final { text: screen.text, ..Final::default() }));
        }
    }
    // The dialogue is over and the app still waits for input: the user walks away.
    gw.release(ctx, rec, Release::UserAbandoned, None).await;
    Ok(Done::ok(Final { text: gw.last_text, ..Final::default() }))
}

/// The gateway's session for this step; its phone number is masked from now on.
fn new_session(u: &UssdStep, ctx: &mut Ctx<'_>) -> Result<Session, Failure> {
    let phone = ctx.render("ussd.phone", &u.phone)?;
    ctx.hide_number(&phone);
    let d = dialect(u.dialect);
    let code = ctx.render("ussd.service_code", &u.service_code)?;
    Ok(Session {
        id: d.session_id(ctx.rng.random::<u128>()),
        service_code: code.clone(),
        dial: match &u.dial {
            Some(d) => dial_of(ctx, &code, d)?,
            None => code,
        },
        phone,
        network_code: u.network_code.clone().unwrap_or_else(|| d.default_network().to_owned()),
        inputs: Vec::new(),
        client_state: None,
    })
}

impl Gateway {
    /// Sends hop `hop` and reads the app's screen. Every way it can fail ends the session the way
    /// the gateway would (a release on a deadline, a `Failed` event otherwise).
    async fn hop(
        &mut self,
        ctx: &Ctx<'_>,
        rec: &mut Recorder,
        hop: usize,
        limit: Duration,
        req: &HopRequest,
    ) -> Result<Screen, Failure> {
        let sent = exchange_within(ctx, rec, ctx.gateway, format!("hop {hop}"), &post(&self.url, req), limit).await;
        let resp = match sent {
            Ok(Some(r)) => r,
            Ok(None) => {
                let f = Failure::new(
                    Outcome::Timeout,
                    format!("hop {hop}: the app did not answer within {} (the gateway's deadline)", human(limit)),
                );
                return Err(self.timed_out(ctx, rec, f).await);
            }
            Err(f) => {
                self.send_event(ctx, rec, "Failed", Some(&f.message)).await;
                return Err(Failure::new(f.outcome, format!("hop {hop}: {}", f.message)));
            }
        };
        match self.dialect.parse(resp.status.as_u16(), &resp.text()) {
            Ok(s) => Ok(s),
            Err(e) => {
                let start = ctx.start(&resp.text(), 40);
                let f =
                    Failure::new(Outcome::GatewayError, format!("hop {hop}: {}; the reply: {start:?}", ctx.mask(&e)));
                self.send_event(ctx, rec, "Failed", Some(&f.message)).await;
                Err(f)
            }
        }
    }

    /// A deadline passed: the gateway releases the session (reporting why), and the step fails
    /// with `f`.
    async fn timed_out(&self, ctx: &Ctx<'_>, rec: &mut Recorder, f: Failure) -> Failure {
        self.release(ctx, rec, Release::Timeout, Some(&f.message)).await;
        f
    }

    /// Ends a session the app did not end: in-band for dialects that have it, an event otherwise.
    async fn release(&self, ctx: &Ctx<'_>, rec: &mut Recorder, why: Release, error: Option<&str>) {
        if let Some(req) = self.dialect.release(&self.session, why) {
            // Best effort, bounded: the app's answer to a release does not change the outcome.
            let spec = post(&self.url, &req);
            let _ = exchange_within(ctx, rec, ctx.gateway, "release".into(), &spec, USSD_HOP_TIMEOUT).await;
        }
        let status = match (why, error) {
            (Release::UserAbandoned, None) => "Incomplete",
            _ => "Failed",
        };
        self.send_event(ctx, rec, status, error).await;
    }

    /// Africa's Talking's end-of-session notification, when the journey gives an events URL.
    async fn send_event(&self, ctx: &Ctx<'_>, rec: &mut Recorder, status: &'static str, error: Option<&str>) {
        let Some(url) = &self.events_url else { return };
        let ev = EndEvent {
            session: &self.session,
            status,
            duration_ms: self.started.elapsed().as_millis(),
            hops: self.session.inputs.len() + 1,
            last_app_response: &self.last_text,
            error_message: error,
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string(),
        };
        let req = HopRequest { content_type: "application/x-www-form-urlencoded", body: ev.form() };
        let spec = post(url, &req);
        let label = format!("end event ({status})");
        let _ = exchange_within(ctx, rec, ctx.gateway, label, &spec, USSD_HOP_TIMEOUT).await;
    }
}

/// Checks one screen against the network's limit, the gateway's own (`gateway_cap`, e.g. Nalo's
/// 120), and the turn's expectations; `turns_left` is how many turns of the dialogue follow this one.
pub(super) fn check_screen(
    ctx: &Ctx<'_>,
    gateway_cap: Option<(&str, usize)>,
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
    if let Some((gateway, cap)) = gateway_cap
        && screen.text.chars().count() > cap
    {
        return fail(format!(
            "the screen is {} characters, above {gateway}'s limit of {cap}; the gateway would refuse it",
            screen.text.chars().count()
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

/// The rendered `dial:`, checked to be a dial of `code` (it may come from a variable).
pub(super) fn dial_of(ctx: &Ctx<'_>, code: &str, dial: &str) -> Result<String, Failure> {
    let d = ctx.render("ussd.dial", dial)?;
    if direct_inputs(code, &d).is_none() {
        return Err(Failure::new(
            Outcome::AssertionFailed,
            format!("ussd.dial: `{}` is not a dial of the service code `{code}` (e.g. `{}1#`)", ctx.mask(&d), code.trim_end_matches('#').to_owned() + "*"),
        ));
    }
    Ok(d)
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

