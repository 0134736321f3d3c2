//! The USSD application: one menu engine ([`menu`]) behind four gateway dialects.
//!
//! | dialect | path | input | end of session |
//! |---|---|---|---|
//! | Africa's Talking | `POST /ussd/at` | form, `text` = every input so far joined with `*` | `CON`/`END` prefix |
//! | Hubtel | `POST /ussd/hubtel` | JSON, `Message` = current input only | `Type: "release"` |
//! | Nalo | `POST /ussd/nalo` | JSON, `USERDATA` = current input only | `MSGTYPE: false` |
//! | TNM TruRoute | `POST /ussd/truroute` | XML, `<msg>` = current input only | `<type>3</type>` |
//!
//! Hubtel, Nalo and TruRoute send only the current input, so the app keeps each session's inputs
//! server-side (`UssdState::sessions`), bounded in number and age. Africa's Talking's end-of-session
//! events (`POST /ussd/at/events`) are kept, PIN redacted and phone masked, for
//! `GET /ussd/at/events`.

pub mod africastalking;
pub mod hubtel;
pub mod menu;
pub mod nalo;
pub mod truroute;

use std::{collections::VecDeque, sync::Arc};

use axum::{
    Router,
    routing::{get, post},
};
use parking_lot::Mutex;
use tokio::time::Instant;

pub use menu::{MAX_SCREEN_CHARS, Menu, SERVICE_CODE, Screen, direct_dial_inputs, redact_inputs};

use crate::{config::Config, error::ApiError, rng::SharedRng, store::Bounded};

/// Longest single input accepted from a gateway (one screen's worth).
const MAX_INPUT_CHARS: usize = MAX_SCREEN_CHARS;
/// Longest Africa's Talking `text` accepted (all inputs so far).
const MAX_TEXT_CHARS: usize = 1024;

/// Which incremental dialect a stored session belongs to (session ids of different gateways
/// never collide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Dialect {
    Hubtel,
    Nalo,
    TruRoute,
}

#[derive(Debug)]
struct Session {
    inputs: Vec<String>,
    /// Hubtel's `Sequence` of the last hop and the screen sent for it: a gateway retry of the
    /// same hop gets the same screen instead of a second input.
    last_sequence: Option<i64>,
    last_screen: Option<Screen>,
}

/// The shared state of the USSD app.
pub(crate) struct UssdState {
    menu: Menu,
    rng: SharedRng,
    sessions: Mutex<Bounded<(Dialect, String), Session>>,
    events: Mutex<VecDeque<africastalking::StoredEvent>>,
    max_events: usize,
}

impl UssdState {
    pub fn new(config: &Config) -> Self {
        Self {
            menu: Menu::new(config.ussd_pin.clone()),
            rng: SharedRng::new(config.seed, 2),
            sessions: Mutex::new(Bounded::new(config.limits.max_sessions, config.limits.session_ttl)),
            events: Mutex::new(VecDeque::new()),
            max_events: config.limits.max_events.max(1),
        }
    }

    /// The screen for a full input history.
    pub fn screen<S: AsRef<str>>(&self, inputs: &[S]) -> Screen {
        self.menu.screen(inputs, &mut || self.rng.upper_alnum(10))
    }

    /// Starts (or restarts) an incremental-dialect session for what the subscriber dialled (a
    /// direct dial's inputs are played at once) and returns its first screen.
    fn start_session(&self, dialect: Dialect, id: &str, dial: &str) -> Screen {
        let inputs = menu::direct_dial_inputs(dial);
        let screen = self.screen(&inputs);
        if screen.is_end() {
            return screen;
        }
        let session = Session { inputs, last_sequence: None, last_screen: Some(screen.clone()) };
        let dropped = self.sessions.lock().insert((dialect, id.to_owned()), session, Instant::now());
        if dropped > 0 {
            tracing::debug!(dropped, "USSD session store full: dropped the oldest sessions");
        }
        screen
    }

    /// Adds one input to a session and returns the next screen; `None` when the session is
    /// unknown or expired. An `END` screen closes the session.
    fn continue_session(&self, dialect: Dialect, id: &str, input: &str, sequence: Option<i64>) -> Option<Screen> {
        let now = Instant::now();
        let key = (dialect, id.to_owned());
        let mut sessions = self.sessions.lock();
        let session = sessions.get_mut(&key, now)?;
        if let (Some(seq), Some(last), Some(screen)) = (sequence, session.last_sequence, &session.last_screen)
            && seq == last
        {
            return Some(screen.clone());
        }
        session.inputs.push(input.to_owned());
        let screen = self.screen(&session.inputs);
        if screen.is_end() {
            sessions.remove(&key);
        } else {
            session.last_sequence = sequence;
            session.last_screen = Some(screen.clone());
            sessions.touch(&key, now);
        }
        Some(screen)
    }

    /// Forgets a session the gateway ended (release, timeout).
    fn end_session(&self, dialect: Dialect, id: &str) -> bool {
        self.sessions.lock().remove(&(dialect, id.to_owned())).is_some()
    }

    /// Open incremental sessions (for tests of the bound).
    #[cfg(test)]
    fn open_sessions(&self) -> usize {
        self.sessions.lock().len()
    }
}

/// Checks one gateway input's size.
fn check_input(field: &str, input: &str) -> Result<(), ApiError> {
    if input.chars().count() > MAX_INPUT_CHARS {
        return Err(ApiError::bad_request(format!("field `{field}`: longer than {MAX_INPUT_CHARS} characters")));
    }
    Ok(())
}

/// The routes that fault injection applies to.
pub(crate) fn router(state: Arc<UssdState>) -> Router {
    Router::new()
        .route("/ussd/at", post(africastalking::hop))
        .route("/ussd/at/events", post(africastalking::event))
        .route("/ussd/hubtel", post(hubtel::hop))
        .route("/ussd/nalo", post(nalo::hop))
        .route("/ussd/truroute", post(truroute::hop))
        .with_state(state)
}

/// Inspection routes for tests, outside fault injection (so a test can read what happened during
/// an outage).
pub(crate) fn inspection_router(state: Arc<UssdState>) -> Router {
    Router::new().route("/ussd/at/events", get(africastalking::list_events)).with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(max_sessions: usize) -> UssdState {
        let mut config = Config::default();
        config.limits.max_sessions = max_sessions;
        UssdState::new(&config)
    }

    #[test]
    fn incremental_sessions_keep_history_and_close_on_end() {
        let s = state(10);
        assert!(s.start_session(Dialect::Nalo, "a", "*384*7#").text().starts_with("Savanna Pay"));
        assert_eq!(s.continue_session(Dialect::Nalo, "a", "2", None).unwrap().text(), "Enter phone number");
        assert_eq!(s.continue_session(Dialect::Nalo, "a", "0712345678", None).unwrap().text(), "Enter amount (KES)");
        assert!(s.continue_session(Dialect::Hubtel, "a", "5", None).is_none(), "dialects do not share sessions");
        let last = s.continue_session(Dialect::Nalo, "a", "5", None).unwrap();
        assert!(last.text().starts_with("Send KES 5 to 0***678?"));
        let done = s.continue_session(Dialect::Nalo, "a", "1234", None).unwrap();
        assert!(done.is_end() && done.text().starts_with("Sent KES 5 to 0***678. Ref "), "{done:?}");
        assert!(s.continue_session(Dialect::Nalo, "a", "1", None).is_none(), "an END closes the session");
    }

    #[test]
    fn a_repeated_sequence_is_a_retry_not_a_new_input() {
        let s = state(10);
        s.start_session(Dialect::Hubtel, "h", "*384*7#");
        let first = s.continue_session(Dialect::Hubtel, "h", "2", Some(2)).unwrap();
        let retry = s.continue_session(Dialect::Hubtel, "h", "2", Some(2)).unwrap();
        assert_eq!(first, retry);
        assert_eq!(
            s.continue_session(Dialect::Hubtel, "h", "0712345678", Some(3)).unwrap().text(),
            "Enter amount (KES)"
        );
    }

    #[test]
    fn session_store_is_bounded() {
        let s = state(5);
        for i in 0..50 {
            s.start_session(Dialect::Hubtel, &i.to_string(), "*384*7#");
        }
        assert_eq!(s.open_sessions(), 5);
        assert!(s.end_session(Dialect::Hubtel, "49"));
        assert!(!s.end_session(Dialect::Hubtel, "0"));
    }
}
