//! Importing dialoguss scenario files (nndi-oss/dialoguss, docs/protocols/ussd.md §6): each session
//! becomes one `ussd` step on the Africa's Talking dialect; `userInput` and `text` are both
//! accepted for the input; expectations compare exactly after the `CON`/`END` prefix.

use std::collections::BTreeMap;

use conf::Source;
use serde::Deserialize;

use crate::{
    journey::{Journey, LoadError, Matcher, Secrets, Step},
    steps::{
        Kind,
        ussd::{USSD_SESSION_TIMEOUT, UssdStep, UssdTurn},
    },
    ussd::DialectName,
};

#[derive(Deserialize)]
struct File {
    url: String,
    dial: Scalar,
    #[serde(rename = "phoneNumber")]
    phone_number: Option<Scalar>,
    sessions: Vec<DSession>,
}

#[derive(Deserialize)]
struct DSession {
    id: Option<Scalar>,
    #[serde(rename = "phoneNumber")]
    phone_number: Option<Scalar>,
    description: Option<String>,
    steps: Vec<DStep>,
}

#[derive(Deserialize)]
struct DStep {
    #[serde(rename = "userInput", alias = "text")]
    user_input: Option<Scalar>,
    expect: Option<String>,
}

/// A YAML scalar that may be written as a number (phone numbers, inputs like `1`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Int(u64),
    Str(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Str(s) => s.clone(),
        }
    }
}

/// Converts a dialoguss file into a journey.
pub fn import(src: &Source) -> Result<Journey, LoadError> {
    let f: File = src.parse()?;
    if f.sessions.is_empty() {
        return Err(src.error("sessions", "dialoguss: `sessions` is empty"));
    }
    let mut steps = Vec::new();
    for (i, s) in f.sessions.into_iter().enumerate() {
        let phone = s.phone_number.as_ref().or(f.phone_number.as_ref()).map(Scalar::text).ok_or_else(|| {
            src.error(format!("sessions[{i}]"), "dialoguss: this session has no phoneNumber (and the file has none)")
        })?;
        let phone = if phone.starts_with('+') { phone } else { format!("+{phone}") };
        let mut dialogue = Vec::new();
        for (j, st) in s.steps.into_iter().enumerate() {
            let input = st.user_input.map(|x| x.text());
            if j == 0 && input.is_some() {
                // dialoguss allows input on the first step; the dial comes first regardless.
                dialogue.push(UssdTurn { input: None, expect: None, end: None, max_latency: None });
            }
            if j > 0 && input.is_none() {
                return Err(src.error(format!("sessions[{i}].steps[{j}]"), "dialoguss: missing userInput"));
            }
            dialogue.push(UssdTurn { input, expect: st.expect.map(Matcher::Exact), end: None, max_latency: None });
        }
        let name = s.description.clone().unwrap_or_else(|| match &s.id {
            Some(id) => format!("session-{}", id.text()),
            None => format!("session-{}", i + 1),
        });
        let ussd = UssdStep {
            url: f.url.clone(),
            via: crate::steps::ussd::Via::Gateway,
            modem: None,
            dialect: DialectName::Africastalking,
            service_code: f.dial.text(),
            dial: None,
            phone,
            network_code: Some("99999".into()),
            events_url: None,
            hop_timeout: None,
            session_timeout: None,
            dialogue,
        };
        steps.push(Step {
            name,
            timeout: USSD_SESSION_TIMEOUT,
            kind: Kind::Ussd(Box::new(ussd)),
            extract: BTreeMap::new(),
            line: 0,
        });
    }
    let stem =
        std::path::Path::new(src.file()).file_stem().map_or("dialoguss".into(), |s| s.to_string_lossy().into_owned());
    Ok(Journey {
        name: format!("dialoguss-{stem}"),
        description: format!("imported from dialoguss file {}", src.file()),
        labels: BTreeMap::from([("imported_from".to_owned(), "dialoguss".to_owned())]),
        profile: None,
        timeout: steps.iter().map(|s| s.timeout).sum(),
        timeout_given: false,
        variables: BTreeMap::new(),
        secrets: Secrets::default(),
        msisdn_pool: Vec::new(),
        politeness: Default::default(),
        steps,
        source: src.file().to_owned(),
    })
}
