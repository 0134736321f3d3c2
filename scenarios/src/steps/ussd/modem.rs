//! Playing a `ussd:` step `via: modem`: the same dialogue, dialled from a SIM.
//!
//! Hop 1 dials the service code (`AT+CUSD=1,"*384*7#",15`), each later input answers the open
//! session the same way; the network's `+CUSD: <m>` says whether it continues (1), ended (0) or
//! failed (2 to 5). The screen checks are the gateway's ([`super::run::check_screen`]). A
//! dialogue that ends with the session open cancels it (`AT+CUSD=2`). Every AT exchange is
//! traced like an HTTP hop, masked (docs/protocols/modem.md).

use tokio::time::Instant;

use super::{ModemConfig, USSD_HOP_TIMEOUT, USSD_SESSION_TIMEOUT, UssdStep, run::check_screen};
use crate::{
    modem::{
        CusdEvent, Modem, ModemError, ModemSpec,
        pool::{self, QUEUE_WAIT},
    },
    outcome::{Failure, Outcome},
    steps::{Ctx, Done, Final, Recorder, human},
    trace::Excerpt,
    ussd::Screen,
};

pub(super) async fn run(u: &UssdStep, ctx: &mut Ctx<'_>, rec: &mut Recorder) -> Result<Done, Failure> {
    let spec = spec(u, ctx)?;
    let phone = ctx.render("ussd.phone", &u.phone)?;
    ctx.hide_number(&phone);
    let code = ctx.render("ussd.service_code", &u.service_code)?;
    let code = match &u.dial {
        Some(d) => super::run::dial_of(ctx, &code, d)?,
        None => code,
    };
    ctx.polite.msisdn(&phone, rec).await;
    let wait = u.modem.as_ref().and_then(|m| m.queue_wait).map_or(QUEUE_WAIT, |d| d.get());
    let mut lease = pool::acquire(&spec, wait).await.map_err(|e| failure(ctx, "modem", &e))?;
    let m = lease.modem();
    m.take_log();

    let started = Instant::now();
    let hop_timeout = u.hop_timeout.map_or(USSD_HOP_TIMEOUT, |x| x.get());
    let session_deadline = started + u.session_timeout.map_or(USSD_SESSION_TIMEOUT, |x| x.get());
    let last_turn = u.dialogue.len() - 1;
    let mut last_text = String::new();
    for (i, turn) in u.dialogue.iter().enumerate() {
        let hop = i + 1;
        let now = Instant::now();
        if now >= session_deadline {
            m.cancel().await;
            record(ctx, rec, m);
            let limit = human(session_deadline - started);
            return Err(Failure::new(Outcome::Timeout, format!("hop {hop}: the session passed its limit of {limit}")));
        }
        let limit = hop_timeout.min(session_deadline - now);
        let hop_started = Instant::now();
        let answer = match &turn.input {
            None => m.dial(&code, limit).await,
            Some(t) => {
                let input = ctx.render(&format!("ussd.dialogue[{i}].input"), t)?;
                hide_encoded(ctx, m, &input);
                m.reply(&input, limit).await
            }
        };
        let took = hop_started.elapsed();
        let ev = match answer {
            Ok(ev) => ev,
            Err(e) => {
                if !m.broken {
                    m.cancel().await;
                }
                record(ctx, rec, m);
                return Err(failure(ctx, &format!("hop {hop}"), &e));
            }
        };
        record(ctx, rec, m);
        let screen = screen(ctx, hop, ev)?;
        last_text.clone_from(&screen.text);
        if let Err(f) = check_screen(ctx, None, turn, &screen, took, hop, last_turn - i) {
            if !screen.end {
                m.cancel().await;
                record(ctx, rec, m);
            }
            return Err(f);
        }
        if screen.end {
            return Ok(Done::ok(Final { text: screen.text, ..Final::default() }));
        }
    }
    // The dialogue is over and the network still waits for input: the user walks away.
    m.cancel().await;
    record(ctx, rec, m);
    Ok(Done::ok(Final { text: last_text, ..Final::default() }))
}

/// The step's modem, its templates rendered; the PIN is masked from now on.
fn spec(u: &UssdStep, ctx: &Ctx<'_>) -> Result<ModemSpec, Failure> {
    let Some(m) = &u.modem else {
        return Err(Failure::new(Outcome::AssertionFailed, "ussd.modem: `via: modem` needs a `modem:` block"));
    };
    modem_spec(m, "ussd.modem", ctx)
}

/// A `modem:` block (of a `ussd` or `sms` step at `field`), its templates rendered; the PIN is
/// masked from now on.
pub(crate) fn modem_spec(m: &ModemConfig, field: &str, ctx: &Ctx<'_>) -> Result<ModemSpec, Failure> {
    let pin = match &m.pin {
        Some(p) => {
            let pin = ctx.render(&format!("{field}.pin"), p)?;
            ctx.masker.lock().add_secret(&pin);
            Some(pin)
        }
        None => None,
    };
    Ok(ModemSpec { port: ctx.render(&format!("{field}.port"), &m.port)?, baud: m.baud, pin, charset: m.charset })
}

/// A secret input is masked as typed; through a hex charset it goes out in another shape, which
/// must be masked too.
fn hide_encoded(ctx: &Ctx<'_>, m: &Modem, input: &str) {
    if ctx.mask(input) != input {
        let encoded = m.charset().encode_ussd(input);
        if encoded != input {
            ctx.masker.lock().add_secret(&encoded);
        }
    }
}

/// The network's `+CUSD` as a screen (TS 27.007 §7.15 `<m>`); 2 to 5 fail the step.
fn screen(ctx: &Ctx<'_>, hop: usize, ev: CusdEvent) -> Result<Screen, Failure> {
    let said = if ev.text.is_empty() { String::new() } else { format!("; it said {:?}", ctx.mask(&ev.text)) };
    let (outcome, what) = match ev.m {
        0 => return Ok(Screen { text: ev.text, end: true, client_state: None }),
        1 => return Ok(Screen { text: ev.text, end: false, client_state: None }),
        2 => (Outcome::GatewayError, "the network released the session (+CUSD: 2)"),
        3 => (Outcome::GatewayError, "another client answered the session (+CUSD: 3)"),
        4 => (Outcome::GatewayError, "operation not supported: the network refused the code as an invalid MMI (+CUSD: 4)"),
        _ => (Outcome::Timeout, "the network timed the session out (+CUSD: 5)"),
    };
    Err(Failure::new(outcome, format!("hop {hop}: {what}{said}")))
}

pub(crate) fn failure(ctx: &Ctx<'_>, at: &str, e: &ModemError) -> Failure {
    Failure::new(e.outcome(), format!("{at}: {}", ctx.mask(&e.to_string())))
}

/// The modem's exchanges since the last call, as trace excerpts (masked whole, then cut).
pub(crate) fn record(ctx: &Ctx<'_>, rec: &mut Recorder, m: &mut Modem) {
    let masker = ctx.masker.lock();
    for x in m.take_log() {
        let verb = x.command.split(['=', '?']).next().unwrap_or("AT");
        rec.excerpts.push(Excerpt {
            label: masker.mask(&format!("modem {verb}")),
            status: None,
            request: masker.excerpt(&x.command),
            response: masker.excerpt(&x.response),
            duration: x.took,
        });
    }
}
