//! Ingest: who is reporting, is the report well-formed and theirs, how far off is their clock, and
//! is it durably stored. A reply of `stored` or `duplicate` is sent only after the store's commit.
//! Reports are committed in groups by one writer task (`writer.rs`): one transaction and one fsync
//! per batch of concurrent reports, each request still answered with its own outcome.
//!
//! Order of checks (each refusal changes nothing and is counted by reason): bearer token (401),
//! body size (413), decoding (400), identity bound to the token, and a `kind: load` identity
//! sending anything but a load run (403), then the store (503 when it
//! cannot commit: the prober keeps the report in its outbox and retries).

mod http;
pub mod skew;
pub mod writer;

use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use parking_lot::Mutex;
use report::{DecodeError, Report};
use serde::Serialize;

pub use self::http::post_report;
use self::{skew::OffsetEstimator, writer::Writer};
use crate::{
    clock::SharedClock,
    config::{ProberBinding, ProberKind},
    metrics::Metrics,
    store::{Ingested, Receipt, Store},
};

/// Why a report was refused (the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Unauthenticated,
    Forbidden,
    TooLarge,
    Malformed,
    Invalid,
    Version,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::Unauthenticated => "unauthenticated",
            Reason::Forbidden => "forbidden",
            Reason::TooLarge => "too_large",
            Reason::Malformed => "malformed",
            Reason::Invalid => "invalid",
            Reason::Version => "version",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Reason::Unauthenticated => 401,
            Reason::Forbidden => 403,
            Reason::TooLarge => 413,
            Reason::Malformed | Reason::Invalid | Reason::Version => 400,
        }
    }
}

/// The JSON reply to a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reply {
    #[serde(skip)]
    pub http_status: u16,
    /// `stored`, `duplicate`, `rejected` or `unavailable`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Reply {
    fn rejected(reason: Reason, message: impl Into<String>) -> Reply {
        Reply { http_status: reason.status(), status: "rejected", reason: Some(message.into()) }
    }
}

/// What the aggregator knows live about one configured prober.
#[derive(Debug, Clone, Default)]
pub struct ProberLive {
    pub estimator: OffsetEstimator,
    pub last_received_ms: Option<i64>,
    pub last_interval_start_ms: Option<i64>,
    pub last_interval_end_ms: Option<i64>,
    /// The last report's interval length (its reporting cadence).
    pub interval_ms: Option<i64>,
    pub offset_ms: Option<i64>,
    pub skewed: bool,
    pub outbox_backlog: u64,
    pub outbox_dropped_total: u64,
    pub version: String,
    /// Stored since the store was created (persisted).
    pub stored_total: u64,
    /// Since this process started.
    pub duplicates: u64,
    pub rejected: u64,
}

fn token_digest(token: &str) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// The ingest pipeline, shared by every connection.
pub struct Ingestor {
    probers: Vec<ProberBinding>,
    /// SHA-256 of each prober's token → its index in `probers`.
    by_token: HashMap<[u8; 32], usize>,
    store: Arc<Store>,
    writer: Writer,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    skew_threshold_ms: i64,
    max_body_bytes: usize,
    live: Mutex<HashMap<String, ProberLive>>,
    /// Told about every freshly stored report (never duplicates).
    slo: std::sync::OnceLock<Arc<crate::slo::service::SloService>>,
}

impl Ingestor {
    /// Feeds stored reports to the SLO engine from now on.
    pub fn attach_slo(&self, slo: Arc<crate::slo::service::SloService>) {
        let _ = self.slo.set(slo);
    }

    /// Seeds the live status from the store's record of each prober.
    pub fn new(
        probers: Vec<ProberBinding>,
        store: Arc<Store>,
        clock: SharedClock,
        metrics: Arc<Metrics>,
        skew_threshold_ms: i64,
        max_body_bytes: usize,
    ) -> Result<Ingestor, crate::store::StoreError> {
        let mut live: HashMap<String, ProberLive> =
            probers.iter().map(|p| (p.id.clone(), ProberLive::default())).collect();
        for r in store.probers()? {
            if let Some(l) = live.get_mut(&r.prober) {
                l.last_received_ms = Some(r.last_received_ms);
                l.last_interval_start_ms = Some(r.last_interval_start_ms);
                l.last_interval_end_ms = Some(r.last_interval_end_ms);
                l.interval_ms = Some(r.last_interval_end_ms - r.last_interval_start_ms);
                l.offset_ms = Some(r.offset_ms);
                l.skewed = r.skewed;
                l.outbox_backlog = r.outbox_backlog;
                l.outbox_dropped_total = r.outbox_dropped_total;
                l.version = r.version;
                l.stored_total = r.stored_total;
            }
        }
        let writer = Writer::spawn(store.clone(), metrics.clone(), self::writer::MAX_BATCH);
        let by_token = probers.iter().enumerate().map(|(i, p)| (token_digest(p.token.expose()), i)).collect();
        Ok(Ingestor {
            probers,
            by_token,
            writer,
            store,
            clock,
            metrics,
            skew_threshold_ms,
            max_body_bytes,
            live: Mutex::new(live),
            slo: std::sync::OnceLock::new(),
        })
    }

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    pub fn probers(&self) -> &[ProberBinding] {
        &self.probers
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// A copy of one prober's live state.
    pub fn live(&self, prober: &str) -> Option<ProberLive> {
        self.live.lock().get(prober).cloned()
    }

    /// The prober whose token is presented in `Authorization: Bearer <token>` (see
    /// [`Ingestor::prober_with_token`]).
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<&ProberBinding, Reply> {
        let presented = authorization.and_then(|h| h.strip_prefix("Bearer ")).map(str::trim);
        let Some(presented) = presented.filter(|t| !t.is_empty()) else {
            return Err(self.refuse(None, Reason::Unauthenticated, "missing `Authorization: Bearer <token>`"));
        };
        self.prober_with_token(presented).ok_or_else(|| self.refuse(None, Reason::Unauthenticated, "unknown token"))
    }

    /// The prober a bearer token belongs to, counting nothing. Looked up by the token's SHA-256,
    /// so the cost does not grow with the fleet, and timing can tell at most how much of a
    /// presented token's digest matches a stored one — which says nothing about any token's
    /// characters. The binding's own token is then compared in constant time.
    pub fn prober_with_token(&self, presented: &str) -> Option<&ProberBinding> {
        let p = &self.probers[*self.by_token.get(&token_digest(presented))?];
        p.token.matches(presented).then_some(p)
    }

    /// Counts a refusal (against the prober, when known) and builds its reply.
    pub fn refuse(&self, prober: Option<&ProberBinding>, reason: Reason, message: impl Into<String>) -> Reply {
        self.metrics.report("rejected", reason.label());
        if let Some(p) = prober
            && let Some(l) = self.live.lock().get_mut(&p.id)
        {
            l.rejected += 1;
        }
        Reply::rejected(reason, message)
    }

    /// Decodes, checks identity, estimates the clock, and stores. `received_ms` is when the
    /// request arrived.
    pub async fn accept(&self, who: &ProberBinding, body: Bytes, received_ms: i64) -> Reply {
        let report = match report::decode(&body) {
            Ok(r) => r,
            Err(e) => {
                let reason = match e {
                    DecodeError::TooLarge(_) => Reason::TooLarge,
                    DecodeError::Malformed(_) => Reason::Malformed,
                    DecodeError::Version(_) => Reason::Version,
                    DecodeError::Invalid { .. } => Reason::Invalid,
                };
                return self.refuse(Some(who), reason, e.to_string());
            }
        };
        if report.prober != who.id || report.region != who.region {
            return self.refuse(
                Some(who),
                Reason::Forbidden,
                format!(
                    "this token may report only as prober `{}` in region `{}`, not `{}` in `{}`",
                    who.id, who.region, report.prober, report.region
                ),
            );
        }
        if who.kind == ProberKind::Load && report.run.is_none() {
            return self.refuse(
                Some(who),
                Reason::Forbidden,
                format!(
                    "prober `{}` is configured `kind: load`: it may report only load runs (`prober load --report-to`), \
                     whose reports name their run",
                    who.id
                ),
            );
        }
        if i64::try_from(report.seq).is_err() {
            return self.refuse(Some(who), Reason::Invalid, "seq: above 2^63");
        }
        let offset_ms = {
            let mut live = self.live.lock();
            let l = live.entry(who.id.clone()).or_default();
            l.estimator.add(report.sent_at_ms, received_ms)
        };
        let correction_ms = skew::correction(offset_ms, self.skew_threshold_ms);
        let receipt = Receipt { received_ms, offset_ms, correction_ms };
        let report = Arc::new(report);
        let outcome = match self.writer.commit(report.clone(), receipt).await {
            Ok(o) => o,
            Err(e) => {
                self.metrics.store_errors.inc();
                self.metrics.report("unavailable", "");
                tracing::error!(prober = %who.id, seq = report.seq, error = %e, "a report could not be stored");
                return Reply {
                    http_status: 503,
                    status: "unavailable",
                    reason: Some("the store could not commit the report; keep it and retry".into()),
                };
            }
        };
        self.note(who, &report, receipt, outcome);
        self.metrics.series.set(self.store.series_count() as i64);
        match outcome {
            Ingested::Stored => {
                if let Some(slo) = self.slo.get() {
                    slo.observe(&report, receipt.correction_ms);
                }
                self.metrics.report("stored", "");
                Reply { http_status: 200, status: "stored", reason: None }
            }
            Ingested::Duplicate => {
                self.metrics.report("duplicate", "");
                Reply {
                    http_status: 200,
                    status: "duplicate",
                    reason: Some(format!("report {} of {} was stored before", report.seq, report.prober)),
                }
            }
        }
    }

    fn note(&self, who: &ProberBinding, r: &Report, receipt: Receipt, outcome: Ingested) {
        let mut live = self.live.lock();
        let l = live.entry(who.id.clone()).or_default();
        l.last_received_ms = Some(receipt.received_ms);
        l.offset_ms = Some(receipt.offset_ms);
        l.skewed = receipt.skewed();
        l.outbox_backlog = r.heartbeat.outbox_backlog;
        l.outbox_dropped_total = r.heartbeat.outbox_dropped_total;
        l.version = r.heartbeat.version.clone();
        l.interval_ms = Some(r.interval_end_ms - r.interval_start_ms);
        let end = r.interval_end_ms - receipt.correction_ms;
        if l.last_interval_end_ms.is_none_or(|e| e < end) {
            l.last_interval_end_ms = Some(end);
            l.last_interval_start_ms = Some(r.interval_start_ms - receipt.correction_ms);
        }
        match outcome {
            Ingested::Stored => l.stored_total += 1,
            Ingested::Duplicate => l.duplicates += 1,
        }
    }
}
