//! The SMS centre: messages per destination number (bounded), delivered to any modem whose SIM
//! has that number. The payment emulations send their confirmation SMS through it; tests inject
//! OTPs with `POST /admin/sms`.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, FixedOffset, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::mpsc;

/// Messages kept per destination number; older ones are dropped.
pub const MAX_PER_NUMBER: usize = 100;
/// Destination numbers kept; a new one past this evicts the one with the oldest message.
pub const MAX_NUMBERS: usize = 1000;
/// Longest text accepted (a concatenated message of 10 parts, about).
pub const MAX_TEXT_CHARS: usize = 1530;

/// One short message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    /// The originator: an international number (`+254…`) or an alphanumeric sender (`MPESA`).
    pub from: String,
    /// The destination MSISDN, international with `+`.
    pub to: String,
    pub text: String,
    /// The service centre time stamp (East Africa Time, as the operators stamp it).
    pub scts: DateTime<FixedOffset>,
}

/// What `GET /admin/sms` shows: numbers masked, the text as sent.
#[derive(Debug, Clone, Serialize)]
pub struct SmsView {
    pub to: String,
    pub from: String,
    pub text: String,
    pub scts: String,
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct SmsError {
    pub field: &'static str,
    pub reason: String,
}

#[derive(Default)]
struct Inner {
    store: HashMap<String, Vec<Sms>>,
    modems: HashMap<String, mpsc::Sender<Sms>>,
    seq: u64,
}

/// The SMS centre. Cloning shares it.
#[derive(Clone, Default)]
pub struct SmsCentre {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for SmsCentre {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsCentre").field("numbers", &self.inner.lock().store.len()).finish()
    }
}

/// A destination number normalised to `+<digits>`: `+2547…`, `2547…` and `07…` (Kenya's national
/// form is not guessed: it must be international).
pub fn normalise_msisdn(number: &str) -> Option<String> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    ((8..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit())).then(|| format!("+{digits}"))
}

/// A sender: an international number, or 1 to 11 alphanumeric characters (TS 23.040 §9.1.2.5
/// allows 11 GSM characters in an alphanumeric address).
fn valid_sender(from: &str) -> bool {
    normalise_msisdn(from).is_some()
        || ((1..=11).contains(&from.len()) && from.chars().all(|c| c.is_ascii_alphanumeric() || c == ' '))
}

impl SmsCentre {
    /// Stores a message for `to` and hands it to the modem with that number, if one is attached.
    pub fn send(&self, to: &str, from: &str, text: &str) -> Result<(), SmsError> {
        let to = normalise_msisdn(to).ok_or_else(|| SmsError {
            field: "to",
            reason: "must be an international number, e.g. +254712345678".to_owned(),
        })?;
        if !valid_sender(from) {
            return Err(SmsError {
                field: "from",
                reason: "must be an international number or 1-11 letters and digits (e.g. MPESA)".to_owned(),
            });
        }
        if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
            return Err(SmsError { field: "text", reason: format!("must have 1 to {MAX_TEXT_CHARS} characters") });
        }
        let from = normalise_msisdn(from).unwrap_or_else(|| from.to_owned());
        let eat = FixedOffset::east_opt(3 * 3600).expect("UTC+3");
        let sms = Sms { from, to: to.clone(), text: text.to_owned(), scts: Utc::now().with_timezone(&eat) };
        let mut inner = self.inner.lock();
        inner.seq += 1;
        if !inner.store.contains_key(&to) && inner.store.len() >= MAX_NUMBERS {
            let oldest = inner.store.iter().min_by_key(|(_, v)| v.last().map(|s| s.scts)).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                inner.store.remove(&k);
            }
        }
        let list = inner.store.entry(to.clone()).or_default();
        if list.len() >= MAX_PER_NUMBER {
            list.remove(0);
        }
        list.push(sms.clone());
        if let Some(modem) = inner.modems.get(&to)
            && modem.try_send(sms).is_err()
        {
            tracing::warn!(to = %crate::mask_phone(&to), "modem busy or gone: message stored at the centre only");
        }
        Ok(())
    }

    /// Messages for every number, oldest first per number, numbers masked.
    pub fn list(&self) -> Vec<SmsView> {
        let inner = self.inner.lock();
        let mut all: Vec<&Sms> = inner.store.values().flatten().collect();
        all.sort_by_key(|s| s.scts);
        all.into_iter()
            .map(|s| SmsView {
                to: crate::mask_phone(&s.to),
                from: if s.from.starts_with('+') { crate::mask_phone(&s.from) } else { s.from.clone() },
                text: s.text.clone(),
                scts: s.scts.to_rfc3339(),
            })
            .collect()
    }

    /// Messages for one number (unmasked: for tests and the modem).
    pub fn messages_for(&self, to: &str) -> Vec<Sms> {
        let Some(to) = normalise_msisdn(to) else { return Vec::new() };
        self.inner.lock().store.get(&to).cloned().unwrap_or_default()
    }

    /// Attaches a modem: messages to `msisdn` from now on arrive on the receiver.
    pub(crate) fn attach(&self, msisdn: &str) -> mpsc::Receiver<Sms> {
        let (tx, rx) = mpsc::channel(64);
        if let Some(n) = normalise_msisdn(msisdn) {
            self.inner.lock().modems.insert(n, tx);
        }
        rx
    }
}
