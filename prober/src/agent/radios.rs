//! The edge's radios: each modem's signal, registration, operator and SIM, read once per report
//! interval from a [`RadioSource`], put into the next report's `heartbeat.radios` and exported on
//! `/metrics` (`prober_radio_*`). A read that does not finish within [`READ_LIMIT`] yields each
//! modem with `error: "no_answer"`: a hung modem never holds up a report.
//!
//! The real source is [`ModemRadios`]: the modems an edge dials through, each read by a function
//! supplied at construction (the AT engine's radio-health query). An edge without modems has no
//! source and sends no radios.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use parking_lot::Mutex;
use report::{MAX_RADIOS, RadioHealth};

use super::metrics::{Metrics, RadioLabels};

/// Longest a whole read of the radios may take.
pub const READ_LIMIT: Duration = Duration::from_secs(5);

/// A boxed future, as the trait returns it (object-safe without a macro crate).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the agent reads its modems from.
pub trait RadioSource: Send + Sync {
    /// The modems' names (labels), as the readings will name them: what a reading that does not
    /// finish in time reports as `no_answer`.
    fn modems(&self) -> Vec<String>;
    /// One reading of every modem.
    fn read(&self) -> BoxFuture<'_, Vec<RadioHealth>>;
}

/// One modem the edge dials through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModemRef {
    /// Its label in reports and metrics (e.g. `ttyUSB2`, or a `/dev/serial/by-id` name shortened
    /// to a label): never a phone number or an IMSI.
    pub name: String,
    /// The AT port, e.g. `/dev/serial/by-id/usb-Quectel_EG25-if02-port0`.
    pub port: String,
    pub baud: u32,
}

/// Reads one modem (the engine's `radio_health`).
pub type ReadModem = Arc<dyn Fn(ModemRef) -> BoxFuture<'static, RadioHealth> + Send + Sync>;

/// The real source: the modems, each read by `read` one after another (a modem serves one AT
/// session at a time; the engine serialises with the journeys that dial through it).
pub struct ModemRadios {
    modems: Vec<ModemRef>,
    read: ReadModem,
}

impl ModemRadios {
    /// At most [`MAX_RADIOS`] modems are read (the report's limit).
    pub fn new(mut modems: Vec<ModemRef>, read: ReadModem) -> ModemRadios {
        modems.truncate(MAX_RADIOS);
        ModemRadios { modems, read }
    }
}

impl RadioSource for ModemRadios {
    fn modems(&self) -> Vec<String> {
        self.modems.iter().map(|m| m.name.clone()).collect()
    }

    fn read(&self) -> BoxFuture<'_, Vec<RadioHealth>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(self.modems.len());
            for m in &self.modems {
                let mut h = (self.read)(m.clone()).await;
                h.modem = m.name.clone();
                out.push(h);
            }
            out
        })
    }
}

/// What a modem reads as when it did not answer in time.
pub fn no_answer(modem: &str, now_ms: i64) -> RadioHealth {
    RadioHealth {
        modem: modem.to_owned(),
        registration: "unknown".into(),
        sim: "unknown".into(),
        read_at_ms: now_ms,
        error: "no_answer".into(),
        ..RadioHealth::default()
    }
}

/// One bounded reading: the source's, or every modem `no_answer` after [`READ_LIMIT`]. At most
/// [`MAX_RADIOS`], each modem once.
pub async fn read_bounded(src: &dyn RadioSource, now_ms: impl Fn() -> i64) -> Vec<RadioHealth> {
    let mut rs = match tokio::time::timeout(READ_LIMIT, src.read()).await {
        Ok(rs) => rs,
        Err(_) => {
            tracing::warn!("the modems did not answer within {READ_LIMIT:?}; reporting them as no_answer");
            let now = now_ms();
            src.modems().iter().map(|m| no_answer(m, now)).collect()
        }
    };
    let mut seen = std::collections::HashSet::new();
    rs.retain(|r| seen.insert(r.modem.clone()));
    rs.truncate(MAX_RADIOS);
    rs
}

/// The latest readings, shared by the poller and the report that closes next.
#[derive(Default)]
pub struct Latest(Mutex<Vec<RadioHealth>>);

impl Latest {
    pub fn get(&self) -> Vec<RadioHealth> {
        self.0.lock().clone()
    }

    /// Keeps `rs` and sets the gauges from them (a modem no longer read leaves no series).
    pub fn set(&self, rs: Vec<RadioHealth>, m: &Metrics) {
        for f in [&m.radio_signal, &m.radio_registered, &m.radio_sim_ready, &m.radio_up] {
            f.clear();
        }
        for r in &rs {
            let l = RadioLabels { modem: r.modem.clone(), operator: r.operator.clone(), access: r.access.clone() };
            if let Some(dbm) = r.signal_dbm {
                m.radio_signal.get_or_create(&l).set(i64::from(dbm));
            }
            let registered = matches!(r.registration.as_str(), "home" | "roaming");
            m.radio_registered.get_or_create(&l).set(i64::from(registered));
            m.radio_sim_ready.get_or_create(&l).set(i64::from(r.sim == "ready"));
            m.radio_up.get_or_create(&l).set(i64::from(r.is_up()));
        }
        *self.0.lock() = rs;
    }
}

/// The radios of the modems `journeys` dial through (their `ussd` steps `via: modem`), each
/// read with the AT engine's radio-health query; `None` for an edge without modems.
pub fn of_journeys(journeys: &[super::config::JourneyConfig]) -> Option<Arc<dyn RadioSource>> {
    let mut specs: Vec<scenarios::modem::ModemSpec> = Vec::new();
    for j in journeys {
        for s in scenarios::modem::modems_of(&j.journey) {
            if !specs.iter().any(|k| k.port == s.port) {
                specs.push(s);
            }
        }
    }
    if specs.is_empty() {
        return None;
    }
    let modems = specs.iter().map(|s| ModemRef { name: s.label(), port: s.port.clone(), baud: s.baud }).collect();
    let specs = Arc::new(specs);
    let read: ReadModem = Arc::new(move |m: ModemRef| {
        let specs = specs.clone();
        Box::pin(async move {
            match specs.iter().find(|s| s.port == m.port) {
                Some(spec) => scenarios::modem::pool::radio_health(spec).await,
                None => no_answer(&m.name, chrono::Utc::now().timestamp_millis()),
            }
        })
    });
    Some(Arc::new(ModemRadios::new(modems, read)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(modem: &str) -> RadioHealth {
        RadioHealth {
            modem: modem.into(),
            signal_dbm: Some(-69),
            registration: "home".into(),
            operator: "Safaricom".into(),
            access: "eutran".into(),
            sim: "ready".into(),
            read_at_ms: 5,
            error: String::new(),
        }
    }

    struct Hung;
    impl RadioSource for Hung {
        fn modems(&self) -> Vec<String> {
            vec!["ttyUSB2".into()]
        }
        fn read(&self) -> BoxFuture<'_, Vec<RadioHealth>> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_modem_reads_as_no_answer_within_the_limit() {
        let rs = read_bounded(&Hung, || 42).await;
        assert_eq!(rs, vec![no_answer("ttyUSB2", 42)]);
        assert!(!rs[0].is_up());
    }

    #[tokio::test]
    async fn modem_radios_read_each_modem_by_its_name_and_bounded() {
        let modems: Vec<ModemRef> = (0..20)
            .map(|i| ModemRef { name: format!("m{i}"), port: format!("/dev/ttyUSB{i}"), baud: 115_200 })
            .collect();
        let read: ReadModem = Arc::new(|m: ModemRef| Box::pin(async move { up(&format!("engine-{}", m.port)) }));
        let src = ModemRadios::new(modems, read);
        let rs = read_bounded(&src, || 0).await;
        assert_eq!(rs.len(), MAX_RADIOS);
        assert_eq!((rs[0].modem.as_str(), rs[0].signal_dbm), ("m0", Some(-69)));
    }

    #[test]
    fn the_gauges_follow_the_latest_readings() {
        let m = Metrics::new();
        let latest = Latest::default();
        let down = RadioHealth { modem: "ttyUSB3".into(), sim: "pin_required".into(), ..up("x") };
        latest.set(vec![up("ttyUSB2"), down], &m);
        let text = m.encode();
        for want in [
            r#"prober_radio_signal_dbm{modem="ttyUSB2",operator="Safaricom",access="eutran"} -69"#,
            r#"prober_radio_registered{modem="ttyUSB3",operator="Safaricom",access="eutran"} 1"#,
            r#"prober_radio_sim_ready{modem="ttyUSB3",operator="Safaricom",access="eutran"} 0"#,
            r#"prober_radio_up{modem="ttyUSB2",operator="Safaricom",access="eutran"} 1"#,
            r#"prober_radio_up{modem="ttyUSB3",operator="Safaricom",access="eutran"} 0"#,
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        latest.set(vec![], &m);
        assert!(!m.encode().contains("prober_radio_up{"), "no modems, no series");
        assert!(latest.get().is_empty());
    }
}
