//! Waiting for a message.
//!
//! The modem is set to the step's mode (`AT+CMGF`) and asked to announce new messages
//! (`AT+CNMI=2,1`: `+CMTI: "SM",<index>`; a modem that refuses still works, by listing). Every
//! unread message is listed (`AT+CMGL`), so one that arrived after the journey started and before
//! this step is found too; between listings the step listens for `+CMTI` for up to 5 s. The first
//! message whose sender and text match is deleted from the SIM (`AT+CMGD`) and becomes the step's
//! result. Concatenated messages are joined before they are matched.

use std::time::Duration;

use tokio::time::Instant;

use super::{SMS_WITHIN, SmsMode, SmsStep};
use crate::{
    modem::{
        Modem, ModemError,
        codec::{self, Charset},
        engine::COMMAND_TIMEOUT,
        pdu,
        pool::{self, QUEUE_WAIT},
    },
    outcome::{Failure, Outcome},
    steps::{
        Ctx, Done, Final, Recorder, human,
        ussd::modem::{failure, modem_spec, record},
    },
};

/// A message part as listed: its storage index and what it decoded to.
type Stored = (u32, pdu::Deliver);

/// Longest the step listens for `+CMTI` before it lists the unread messages again.
const RELIST: Duration = Duration::from_secs(5);

/// One message as read from the SIM: where it is stored (each part of a concatenated one) and
/// what it says.
#[derive(Debug, Clone)]
struct Message {
    indexes: Vec<u32>,
    sender: String,
    text: String,
}

pub(super) async fn run(s: &SmsStep, ctx: &mut Ctx<'_>, rec: &mut Recorder) -> Result<Done, Failure> {
    let spec = modem_spec(&s.modem, "sms.modem", ctx)?;
    let wait = s.modem.queue_wait.map_or(QUEUE_WAIT, |d| d.get());
    let mut lease = pool::acquire(&spec, wait).await.map_err(|e| failure(ctx, "modem", &e))?;
    let m = lease.modem();
    m.take_log();
    let within = s.within.map_or(SMS_WITHIN, |d| d.get());
    let result = wait_for(s, m, Instant::now() + within).await;
    record(ctx, rec, m);
    match result {
        Ok(Ok(msg)) => {
            let text = msg.text;
            Ok(Done::ok(Final { text, ..Final::default() }))
        }
        Ok(Err(seen)) => {
            let what = match (&s.from, &s.text) {
                (Some(f), Some(t)) => format!("from a sender {f} with a text {t}"),
                (Some(f), None) => format!("from a sender {f}"),
                (None, Some(t)) => format!("with a text {t}"),
                (None, None) => "at all".to_owned(),
            };
            let others = if seen.is_empty() {
                "no other message arrived".to_owned()
            } else {
                format!("{} other message(s) arrived, from {}", seen.len(), ctx.mask(&seen.join(", ")))
            };
            Err(Failure::new(Outcome::Timeout, format!("no SMS {what} within {}; {others}", human(within))))
        }
        Err(e) => Err(failure(ctx, "sms", &e)),
    }
}

/// The matching message, or the senders of the unread messages that did not match.
async fn wait_for(s: &SmsStep, m: &mut Modem, deadline: Instant) -> Result<Result<Message, Vec<String>>, ModemError> {
    m.command(if s.mode == SmsMode::Text { "AT+CMGF=1" } else { "AT+CMGF=0" }, COMMAND_TIMEOUT).await?;
    // Without `+CMTI` the step still finds messages by listing them.
    let _ = m.command("AT+CNMI=2,1,0,0,0", COMMAND_TIMEOUT).await;
    let mut seen = Vec::new();
    loop {
        for msg in unread(m, s.mode).await? {
            let matches = s.from.as_ref().is_none_or(|f| f.matches(&msg.sender))
                && s.text.as_ref().is_none_or(|t| t.matches(&msg.text));
            if matches {
                for i in &msg.indexes {
                    m.command(&format!("AT+CMGD={i}"), COMMAND_TIMEOUT).await?;
                }
                return Ok(Ok(msg));
            }
            seen.push(msg.sender);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(Err(seen));
        }
        m.listen((now + RELIST).min(deadline)).await?;
        m.take_cmti();
    }
}

/// The unread messages, listed in the modem's mode (TS 27.005 §3.4.2 `+CMGL`), concatenated
/// parts joined.
async fn unread(m: &mut Modem, mode: SmsMode) -> Result<Vec<Message>, ModemError> {
    let charset = m.charset();
    match mode {
        SmsMode::Text => {
            let lines = m.command("AT+CMGL=\"REC UNREAD\"", COMMAND_TIMEOUT).await?;
            Ok(text_listing(&lines, charset))
        }
        SmsMode::Pdu => {
            let lines = m.command("AT+CMGL=0", COMMAND_TIMEOUT).await?;
            Ok(pdu_listing(&lines))
        }
    }
}

/// Text mode: `+CMGL: <index>,<stat>,<oa>,[<alpha>],[<scts>]` and then the text, on one or more
/// lines, until the next header (TS 27.005 §3.4.2). Under `AT+CSCS="UCS2"` sender and text are
/// UCS2 as hex.
fn text_listing(lines: &[String], charset: Charset) -> Vec<Message> {
    let decode = |t: &str| match charset {
        Charset::Ucs2 => codec::from_hex(t).map_or_else(|| t.to_owned(), |b| codec::ucs2_decode(&b)),
        _ => t.to_owned(),
    };
    let mut out: Vec<Message> = Vec::new();
    for l in lines {
        if let Some(rest) = l.strip_prefix("+CMGL:") {
            let fields = quoted_fields(rest);
            let index = fields.first().and_then(|i| i.parse().ok());
            if let Some(index) = index {
                let sender = decode(fields.get(2).map_or("", String::as_str));
                out.push(Message { indexes: vec![index], sender, text: String::new() });
            }
        } else if let Some(last) = out.last_mut() {
            if !last.text.is_empty() {
                last.text.push('\n');
            }
            last.text.push_str(&decode(l));
        }
    }
    out
}

/// PDU mode: `+CMGL: <index>,<stat>,[<alpha>],<length>` and the SMS-DELIVER PDU in hex on the
/// next line (TS 27.005 §3.4.2, TS 23.040 §9.2.2.1); concatenated parts reassembled.
fn pdu_listing(lines: &[String]) -> Vec<Message> {
    let mut parts: Vec<Stored> = Vec::new();
    let mut index = None;
    for l in lines {
        if let Some(rest) = l.strip_prefix("+CMGL:") {
            index = quoted_fields(rest).first().and_then(|i| i.parse().ok());
        } else if let Some(i) = index.take() {
            match pdu::decode_deliver(l.trim()) {
                Ok(d) => parts.push((i, d)),
                Err(e) => tracing::debug!(index = i, "an SMS the step cannot read: {e}"),
            }
        }
    }
    let (single, multi): (Vec<_>, Vec<_>) = parts.into_iter().partition(|(_, d)| d.part.is_none());
    let mut out: Vec<Message> =
        single.into_iter().map(|(i, d)| Message { indexes: vec![i], sender: d.sender, text: d.text }).collect();
    // One concatenated message per (sender, reference), with every part's storage index, to
    // delete them all once the joined message matches; an incomplete one waits for its parts.
    let mut groups: std::collections::BTreeMap<(String, u16), Vec<Stored>> = std::collections::BTreeMap::new();
    for (i, d) in multi {
        let key = (d.sender.clone(), d.part.as_ref().map_or(0, |p| p.reference));
        groups.entry(key).or_default().push((i, d));
    }
    for g in groups.into_values() {
        let indexes = g.iter().map(|(i, _)| *i).collect();
        if let Some(d) = pdu::reassemble(g.into_iter().map(|(_, d)| d).collect()).pop() {
            out.push(Message { indexes, sender: d.sender, text: d.text });
        }
    }
    out
}

/// The comma-separated fields of an AT response, quotes removed (commas inside quotes kept).
fn quoted_fields(rest: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in rest.trim().chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().expect("never empty").push(c),
        }
    }
    out.into_iter().map(|f| f.trim().to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_mode_listings_are_read_per_ts_27005() {
        let lines: Vec<String> = [
            "+CMGL: 1,\"REC UNREAD\",\"MPESA\",,\"26/12/04,01:00:00+12\"",
            "QK12AB34CD Confirmed. Ksh500.00 paid to SAVANNA, PULSE SHOP.",
            "New M-PESA balance is Ksh1,250.00.",
            "+CMGL: 2,\"REC UNREAD\",\"+256772000999\",,\"26/12/04,01:00:05+12\"",
            "Your code is 482913",
        ]
        .map(String::from)
        .to_vec();
        let m = text_listing(&lines, Charset::Gsm);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].indexes.as_slice(), m[0].sender.as_str()), (&[1][..], "MPESA"));
        assert!(m[0].text.starts_with("QK12AB34CD Confirmed.") && m[0].text.ends_with("Ksh1,250.00."), "{}", m[0].text);
        assert_eq!((m[1].sender.as_str(), m[1].text.as_str()), ("+256772000999", "Your code is 482913"));
        let ucs2 = ["+CMGL: 3,\"REC UNREAD\",\"004D00500045005300410020\",,\"x\"", "0048006900200031"].map(String::from);
        let m = text_listing(&ucs2, Charset::Ucs2);
        assert_eq!((m[0].sender.as_str(), m[0].text.as_str()), ("MPESA ", "Hi 1"));
    }

    #[test]
    fn fields_keep_commas_inside_quotes() {
        assert_eq!(quoted_fields(" 4,\"REC UNREAD\",\"A,B\",,\"t\""), ["4", "REC UNREAD", "A,B", "", "t"]);
    }
}
