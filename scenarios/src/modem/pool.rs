//! One session per modem at a time, process-wide: a registry keyed by the port string. A journey
//! waits at most its `queue_wait` for the modem; a modem whose port broke is reopened on next use.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock},
    time::Duration,
};

use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{Modem, ModemError, ModemSpec};

type Slot = Arc<Mutex<Option<Modem>>>;

static POOL: LazyLock<parking_lot::Mutex<HashMap<String, Slot>>> = LazyLock::new(Default::default);

/// How long a step waits for a busy modem unless it says otherwise.
pub const QUEUE_WAIT: Duration = Duration::from_secs(30);

/// The modem, held for one journey's step; dropping it lets the next one in.
#[derive(Debug)]
pub struct Lease {
    guard: OwnedMutexGuard<Option<Modem>>,
}

impl Lease {
    pub fn modem(&mut self) -> &mut Modem {
        // `acquire` leaves a modem in the slot before it hands out a lease.
        self.guard.as_mut().expect("a lease holds an open modem")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.guard.as_ref().is_some_and(|m| m.broken) {
            *self.guard = None;
        }
    }
}

/// The last reading of each modem, for when a journey holds it.
static LAST_HEALTH: LazyLock<parking_lot::Mutex<HashMap<String, report::RadioHealth>>> =
    LazyLock::new(Default::default);

/// How long a health reading waits for a modem a journey holds.
const HEALTH_WAIT: Duration = Duration::from_secs(2);

/// The modem's radio, for the edge agent's heartbeat. It takes the modem briefly: when a journey
/// holds it, the last reading is returned as it was (its `read_at_ms` says when), or, with none,
/// a reading whose error is `busy`.
pub async fn radio_health(spec: &ModemSpec) -> report::RadioHealth {
    let label = spec.label();
    let lease = acquire(spec, HEALTH_WAIT).await;
    let h = match lease {
        Ok(mut l) => l.modem().radio_health(&label).await,
        Err(ModemError::Busy { .. }) => {
            if let Some(h) = LAST_HEALTH.lock().get(&spec.port) {
                return h.clone();
            }
            unread(label, "busy")
        }
        Err(ModemError::Port { .. }) => unread(label, "port_error"),
        Err(ModemError::Timeout { .. }) => unread(label, "no_answer"),
        Err(e) => unread(label, &e.to_string()),
    };
    LAST_HEALTH.lock().insert(spec.port.clone(), h.clone());
    h
}

fn unread(modem: String, error: &str) -> report::RadioHealth {
    report::RadioHealth {
        modem,
        registration: "unknown".into(),
        sim: "unknown".into(),
        read_at_ms: chrono::Utc::now().timestamp_millis(),
        error: error.to_owned(),
        ..report::RadioHealth::default()
    }
}

fn slot(port: &str) -> Slot {
    POOL.lock().entry(port.to_owned()).or_default().clone()
}

/// Waits at most `wait` for the modem, opening (and initialising) it when it is not open.
pub async fn acquire(spec: &ModemSpec, wait: Duration) -> Result<Lease, ModemError> {
    let slot = slot(&spec.port);
    let Ok(mut guard) = tokio::time::timeout(wait, slot.lock_owned()).await else {
        return Err(ModemError::Busy { port: spec.port.clone(), waited: wait });
    };
    if guard.as_ref().is_none_or(|m| m.broken) {
        *guard = None;
        *guard = Some(Modem::open(spec).await?);
    }
    Ok(Lease { guard })
}
