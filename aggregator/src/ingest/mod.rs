//! Ingest: who is reporting, is the report well-formed and theirs, how far off is their clock, does
//! it fall inside the time horizon, and is it durably stored. A reply of `stored` or `duplicate` is
//! sent only after the store's commit. Reports are committed in groups by one writer task
//! (`writer.rs`): one transaction and one fsync per batch of concurrent reports, each request still
//! answered with its own outcome.
//!
//! Order of checks (each refusal is counted by reason and changes nothing else):
//! 1. bearer token, scheme case-insensitive (401);
//! 2. body size (413);
//! 3. decoding (400: format, unknown fields, closed outcome vocabulary, label syntax);
//! 4. identity bound to the token, and a `kind: load` identity sending anything but a load run (403);
//! 5. runs per series against `ingest.max_runs_per_second` × the interval (400 `too_many_runs`);
//! 6. the clock offset to apply (`skew.rs`) and the horizon around the receive time (400
//!    `horizon`; a replay of a stored seq is answered `duplicate` instead);
//! 7. the store (503 when it cannot commit: the prober keeps the report and retries).
//!
//! Only a stored report changes a prober's status (last report, heartbeat, cadence, clock). A
//! duplicate changes nothing but the `duplicates` count. A report refused for its horizon alone
//! is still a fresh reading of the prober's clock: it feeds the offset estimator and may flag
//! `clock_jump` (otherwise a prober whose clock stepped past the horizon could never be flagged or
//! followed); nothing else.

mod http;
pub mod rate;
pub mod skew;
pub mod writer;

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use parking_lot::Mutex;
use report::{DecodeError, Report};

pub use self::http::{bearer_token, post_report};
use self::{
    skew::{ClockJump, ClockRules, OffsetEstimator, Plan},
    writer::{CommitError, Writer},
};
use crate::{
    api::ReportStatus,
    clock::{SharedClock, rfc3339},
    config::{Config, IngestLimits, ProberBinding, ProberKind},
    metrics::Metrics,
    store::{Ingested, Receipt, Store},
};

/// Reporting cadence assumed for a prober that has not announced one (`heartbeat.interval_ms`).
pub const DEFAULT_INTERVAL_MS: i64 = 15_000;

/// Why a report was refused (the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Unauthenticated,
    Forbidden,
    TooLarge,
    Malformed,
    Invalid,
    Version,
    /// A series counts more runs than its interval can hold, or a sum would overflow.
    TooManyRuns,
    /// The interval ends outside the horizon around the receive time.
    Horizon,
    /// The body arrived slower than the listener's minimum rate (`connections.body_min_rate`).
    TooSlow,
    /// The client stopped sending before the body was complete (connection closed or reset).
    Incomplete,
    /// The prober sent more reports than `ingest.max_reports_per_minute` and its burst allow.
    RateLimited,
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
            Reason::TooManyRuns => "too_many_runs",
            Reason::Horizon => "horizon",
            Reason::TooSlow => "too_slow",
            Reason::Incomplete => "incomplete",
            Reason::RateLimited => "rate_limited",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Reason::Unauthenticated => 401,
            Reason::Forbidden => 403,
            Reason::TooLarge => 413,
            Reason::TooSlow => 408,
            Reason::RateLimited => 429,
            Reason::Malformed
            | Reason::Incomplete
            | Reason::Invalid
            | Reason::Version
            | Reason::TooManyRuns
            | Reason::Horizon => 400,
        }
    }
}

/// Which side of the horizon a refused interval fell on (the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Past,
    Future,
}

impl Side {
    pub fn label(self) -> &'static str {
        match self {
            Side::Past => "past",
            Side::Future => "future",
        }
    }
}

/// The JSON reply to a report.
pub use crate::api::ReportReply as Reply;

impl Reply {
    fn rejected(reason: Reason, message: impl Into<String>) -> Reply {
        Reply {
            http_status: reason.status(),
            status: ReportStatus::Rejected,
            reason: Some(message.into()),
            retry_after_s: None,
        }
    }
}

/// What ingest enforces (from the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOptions {
    /// Largest report body accepted.
    pub max_body_bytes: usize,
    /// Clock offsets up to this are not corrected.
    pub skew_threshold: Duration,
    pub limits: IngestLimits,
    /// The store's retention (named in refusals).
    pub retention: Duration,
}

impl IngestOptions {
    pub fn from_config(c: &Config) -> IngestOptions {
        IngestOptions {
            max_body_bytes: c.max_body_bytes,
            skew_threshold: c.skew_threshold,
            limits: c.ingest.clone(),
            retention: c.retention,
        }
    }
}

impl Default for IngestOptions {
    fn default() -> IngestOptions {
        IngestOptions {
            max_body_bytes: report::MAX_REPORT_BYTES,
            skew_threshold: crate::config::DEFAULT_SKEW_THRESHOLD,
            limits: IngestLimits::default(),
            retention: crate::config::DEFAULT_RETENTION,
        }
    }
}

/// What the aggregator knows live about one configured prober.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProberLive {
    pub estimator: OffsetEstimator,
    pub last_received_ms: Option<i64>,
    pub last_interval_start_ms: Option<i64>,
    pub last_interval_end_ms: Option<i64>,
    /// The reporting cadence: announced by the heartbeat, else the longest report seen (at least
    /// [`DEFAULT_INTERVAL_MS`]: a report's own length can be a partial interval).
    pub interval_ms: Option<i64>,
    /// The adopted clock offset (prober − aggregator).
    pub offset_ms: Option<i64>,
    /// The adopted offset exceeds `skew_threshold`: consistent reports are corrected by it.
    pub skewed: bool,
    /// The last fresh report's clock did not fit the adopted offset: it was not corrected.
    pub clock_jump: Option<ClockJump>,
    pub outbox_backlog: u64,
    pub outbox_dropped_total: u64,
    pub version: String,
    /// Stored since the store was created (persisted).
    pub stored_total: u64,
    /// Since this process started.
    pub duplicates: u64,
    pub rejected: u64,
    /// The modems of the newest stored report, each with its not-up streak.
    pub radios: Vec<crate::radio::RadioLive>,
}

fn token_digest(token: &str) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref().try_into().expect("SHA-256 is 32 bytes")
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A span for people: `850 ms`, `4.2 s`, `5 min 3 s`, `2 h 10 min`, `365 d 0 h`.
fn span(ms: i64) -> String {
    let a = ms.unsigned_abs();
    let (s, m, h, d) = (a / 1_000, a / 60_000, a / 3_600_000, a / 86_400_000);
    match a {
        0..1_000 => format!("{a} ms"),
        1_000..60_000 => format!("{:.1} s", a as f64 / 1e3),
        60_000..3_600_000 => format!("{m} min {} s", s % 60),
        3_600_000..86_400_000 => format!("{h} h {} min", m % 60),
        _ => format!("{d} d {} h", h % 24),
    }
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
    opts: IngestOptions,
    rules: ClockRules,
    live: Mutex<HashMap<String, ProberLive>>,
    /// Each prober's report rate (`ingest.max_reports_per_minute`, `ingest.report_burst`).
    rate: rate::ReportRate,
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
        opts: IngestOptions,
    ) -> Result<Ingestor, crate::store::StoreError> {
        let rules = ClockRules::new(ms(opts.skew_threshold), ms(opts.limits.max_clock_correction));
        let mut live: HashMap<String, ProberLive> =
            probers.iter().map(|p| (p.id.clone(), ProberLive::default())).collect();
        for r in store.probers()? {
            if let Some(l) = live.get_mut(&r.prober) {
                l.estimator = OffsetEstimator::seeded(r.offset_ms, &rules);
                l.last_received_ms = Some(r.last_received_ms);
                l.last_interval_start_ms = Some(r.last_interval_start_ms);
                l.last_interval_end_ms = Some(r.last_interval_end_ms);
                l.interval_ms = Some((r.last_interval_end_ms - r.last_interval_start_ms).max(DEFAULT_INTERVAL_MS));
                l.offset_ms = Some(l.estimator.offset_ms());
                l.skewed = skew::correction(l.estimator.offset_ms(), rules.threshold_ms) != 0;
                l.outbox_backlog = r.outbox_backlog;
                l.outbox_dropped_total = r.outbox_dropped_total;
                l.version = r.version;
                l.stored_total = r.stored_total;
                // A restart forgets the streaks: a modem stored down counts one heartbeat again.
                l.radios = crate::radio::advance(&[], &r.radios, r.last_received_ms);
            }
        }
        let writer = Writer::spawn(store.clone(), metrics.clone(), self::writer::MAX_BATCH);
        let by_token = probers.iter().enumerate().map(|(i, p)| (token_digest(p.token.expose()), i)).collect();
        let rate = rate::ReportRate::new(
            probers.iter().map(|p| p.id.as_str()),
            opts.limits.max_reports_per_minute,
            opts.limits.report_burst,
        );
        Ok(Ingestor {
            rate,
            probers,
            by_token,
            writer,
            store,
            clock,
            metrics,
            opts,
            rules,
            live: Mutex::new(live),
            slo: std::sync::OnceLock::new(),
        })
    }

    pub fn max_body_bytes(&self) -> usize {
        self.opts.max_body_bytes
    }

    pub fn options(&self) -> &IngestOptions {
        &self.opts
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

    /// Every modem of the edge probers (load identities have none), in configuration order.
    pub fn site_modems(&self) -> Vec<crate::alerts::SiteModem> {
        let live = self.live.lock();
        self.probers
            .iter()
            .filter(|p| p.kind == crate::config::ProberKind::Edge)
            .filter_map(|p| live.get(&p.id).map(|l| (p, l)))
            .flat_map(|(p, l)| {
                l.radios.iter().map(|r| crate::alerts::SiteModem {
                    region: p.region.clone(),
                    prober: p.id.clone(),
                    radio: r.clone(),
                })
            })
            .collect()
    }

    /// The prober whose token is presented in `Authorization: Bearer <token>` (see
    /// [`bearer_token`] and [`Ingestor::prober_with_token`]).
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<&ProberBinding, Reply> {
        let Some(presented) = authorization.and_then(bearer_token) else {
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

    /// Counts a report against its prober's rate; past it, the 429 to answer (nothing is read or
    /// changed, only counted).
    pub fn throttle(&self, who: &ProberBinding) -> Result<(), Reply> {
        let wait = match self.rate.check(&who.id) {
            Ok(()) => return Ok(()),
            Err(wait) => wait,
        };
        let after = rate::retry_after_secs(wait);
        self.metrics.report("rejected", Reason::RateLimited.label());
        let l = &self.opts.limits;
        let message = format!(
            "more than {} reports a minute (burst {}) from {}; keep the report and retry in {after}s",
            l.max_reports_per_minute, l.report_burst, who.id
        );
        Err(Reply { retry_after_s: Some(after), ..Reply::rejected(Reason::RateLimited, message) })
    }

    /// Decodes, checks identity, bounds, clock and horizon, and stores. `received_ms` is when the
    /// request arrived.
    pub async fn accept(&self, who: &ProberBinding, body: Bytes, received_ms: i64) -> Reply {
        let report = match self.admit(who, &body) {
            Ok(r) => Arc::new(r),
            Err(reply) => return reply,
        };
        let plan = match self.live.lock().get(&who.id) {
            Some(l) => l.estimator.plan(&self.rules, report.sent_at_ms, received_ms),
            None => OffsetEstimator::default().plan(&self.rules, report.sent_at_ms, received_ms),
        };
        if let Err((side, message)) = self.within_horizon(&report, &plan, received_ms) {
            return self.outside_horizon(who, &report, &plan, received_ms, side, message).await;
        }
        let receipt = Receipt { received_ms, offset_ms: plan.offset_ms, correction_ms: plan.correction_ms };
        let outcome = match self.writer.commit(report.clone(), receipt).await {
            Ok(o) => o,
            Err(CommitError::Overflow(m)) => return self.refuse(Some(who), Reason::TooManyRuns, m),
            Err(e) => {
                self.metrics.store_errors.inc();
                self.metrics.report("unavailable", "");
                tracing::error!(prober = %who.id, seq = report.seq, error = %e, "a report could not be stored");
                return Reply {
                    http_status: 503,
                    status: ReportStatus::Unavailable,
                    reason: Some("the store could not commit the report; keep it and retry".into()),
                    retry_after_s: None,
                };
            }
        };
        self.metrics.series.set(self.store.series_count() as i64);
        match outcome {
            Ingested::Stored => {
                self.note_stored(who, &report, receipt, &plan);
                if let Some(slo) = self.slo.get() {
                    slo.observe(&report, receipt.correction_ms);
                }
                self.metrics.report("stored", "");
                Reply { http_status: 200, status: ReportStatus::Stored, reason: None, retry_after_s: None }
            }
            Ingested::Duplicate => self.duplicate(who, &report),
        }
    }

    /// Steps 3 to 5: decoding, identity, runs per series.
    fn admit(&self, who: &ProberBinding, body: &[u8]) -> Result<Report, Reply> {
        let report = report::decode(body).map_err(|e| {
            let reason = match e {
                DecodeError::TooLarge(_) => Reason::TooLarge,
                DecodeError::Malformed(_) => Reason::Malformed,
                DecodeError::Version(_) => Reason::Version,
                DecodeError::Invalid { .. } => Reason::Invalid,
            };
            self.refuse(Some(who), reason, e.to_string())
        })?;
        if report.prober != who.id || report.region != who.region {
            return Err(self.refuse(
                Some(who),
                Reason::Forbidden,
                format!(
                    "this token may report only as prober `{}` in region `{}`, not `{}` in `{}`",
                    who.id, who.region, report.prober, report.region
                ),
            ));
        }
        if who.kind == ProberKind::Load && report.run.is_none() {
            return Err(self.refuse(
                Some(who),
                Reason::Forbidden,
                format!(
                    "prober `{}` is configured `kind: load`: it may report only load runs (`prober load --report-to`), \
                     whose reports name their run",
                    who.id
                ),
            ));
        }
        if i64::try_from(report.seq).is_err() {
            return Err(self.refuse(Some(who), Reason::Invalid, "seq: above 2^63"));
        }
        self.check_runs(&report).map_err(|m| self.refuse(Some(who), Reason::TooManyRuns, m))?;
        Ok(report)
    }

    /// Most runs one series of `r` may count: the configured rate over the interval plus a second
    /// (a run that started in the previous interval may end in this one).
    pub fn max_runs(&self, r: &Report) -> u64 {
        let rate = if r.run.is_some() {
            self.opts.limits.max_load_runs_per_second
        } else {
            self.opts.limits.max_runs_per_second
        };
        let len_ms = u64::try_from(r.interval_end_ms.saturating_sub(r.interval_start_ms)).unwrap_or(0);
        rate.saturating_mul(len_ms.saturating_add(1_000)).div_ceil(1_000)
    }

    fn check_runs(&self, r: &Report) -> Result<(), String> {
        let bound = self.max_runs(r);
        let Some((i, s)) = r.series.iter().enumerate().find(|(_, s)| s.count > bound) else { return Ok(()) };
        let key = if r.run.is_some() { "max_load_runs_per_second" } else { "max_runs_per_second" };
        Err(format!(
            "series[{i}].count: {} runs of `{}` in an interval of {} is above the bound of {bound} \
             (`ingest.{key}` per second of interval, plus one second)",
            s.count,
            s.key.journey,
            span(r.interval_end_ms - r.interval_start_ms),
        ))
    }

    /// Step 6: the interval end, corrected by the plan, must lie within the horizon around the
    /// receive time.
    fn within_horizon(&self, r: &Report, plan: &Plan, received_ms: i64) -> Result<(), (Side, String)> {
        let end = r.interval_end_ms.saturating_sub(plan.correction_ms);
        let (future, past) = (ms(self.opts.limits.future_horizon), ms(self.opts.limits.past_horizon));
        let side = if end > received_ms.saturating_add(future) {
            Side::Future
        } else if end < received_ms.saturating_sub(past) {
            Side::Past
        } else {
            return Ok(());
        };
        let clock = match plan.jump {
            Some(j) if j.beyond_max => format!(
                "its clock is {} off (more than `ingest.max_clock_correction`, {}), so nothing was corrected",
                span(j.observed_ms),
                span(self.rules.max_correction_ms)
            ),
            Some(j) => format!(
                "its clock reads {} ms off ours now, which does not agree with its estimated offset of {} ms, so \
                 nothing was corrected",
                j.observed_ms, plan.offset_ms
            ),
            None => format!(
                "the prober's estimated clock offset is {} ms ({} ms corrected)",
                plan.offset_ms, plan.correction_ms
            ),
        };
        let rule = match side {
            Side::Future => format!("at most {} ahead (`ingest.future_horizon`)", span(future)),
            Side::Past => format!(
                "at most {} back (`ingest.past_horizon`: the store keeps {}, and probers' outboxes drop reports older \
                 than their `outbox.max_age`, 1d by default)",
                span(past),
                span(ms(self.opts.retention))
            ),
        };
        Err((
            side,
            format!(
                "interval_end_ms: the interval ends at {} by the aggregator's clock, {} {} the report arrived; {clock}. \
                 An interval may end {rule}: check the prober's clock (NTP)",
                rfc3339(end),
                span(end.saturating_sub(received_ms)),
                if side == Side::Future { "after" } else { "before" },
            ),
        ))
    }

    /// A report outside the horizon: a replay of a stored seq is a duplicate (what the prober
    /// needs to hear); a fresh one is refused, and only its clock reading is kept.
    async fn outside_horizon(
        &self,
        who: &ProberBinding,
        r: &Report,
        plan: &Plan,
        received_ms: i64,
        side: Side,
        message: String,
    ) -> Reply {
        let (store, prober, seq) = (self.store.clone(), r.prober.clone(), r.seq);
        let seen = tokio::task::spawn_blocking(move || store.seen(&prober, seq)).await;
        if matches!(seen, Ok(Ok(true))) {
            return self.duplicate(who, r);
        }
        {
            let mut live = self.live.lock();
            let l = live.entry(who.id.clone()).or_default();
            l.estimator.observe(&self.rules, r.sent_at_ms, received_ms);
            l.offset_ms = Some(l.estimator.offset_ms());
            l.skewed = skew::correction(l.estimator.offset_ms(), self.rules.threshold_ms) != 0;
            l.clock_jump = plan.jump;
        }
        self.metrics.outside_horizon(&who.id, &who.region, side.label());
        tracing::warn!(prober = %who.id, seq = r.seq, side = side.label(), "refused a report outside the horizon");
        self.refuse(Some(who), Reason::Horizon, message)
    }

    fn duplicate(&self, who: &ProberBinding, r: &Report) -> Reply {
        if let Some(l) = self.live.lock().get_mut(&who.id) {
            l.duplicates += 1;
        }
        self.metrics.report("duplicate", "");
        Reply {
            http_status: 200,
            status: ReportStatus::Duplicate,
            reason: Some(format!("report {} of {} was stored before", r.seq, r.prober)),
            retry_after_s: None,
        }
    }

    /// A stored report: its heartbeat, cadence and clock reading become the prober's status.
    fn note_stored(&self, who: &ProberBinding, r: &Report, receipt: Receipt, plan: &Plan) {
        let mut live = self.live.lock();
        let l = live.entry(who.id.clone()).or_default();
        l.estimator.observe(&self.rules, r.sent_at_ms, receipt.received_ms);
        l.offset_ms = Some(l.estimator.offset_ms());
        l.skewed = skew::correction(l.estimator.offset_ms(), self.rules.threshold_ms) != 0;
        l.clock_jump = plan.jump;
        l.last_received_ms = Some(receipt.received_ms);
        l.outbox_backlog = r.heartbeat.outbox_backlog;
        l.outbox_dropped_total = r.heartbeat.outbox_dropped_total;
        l.version = r.heartbeat.version.clone();
        l.interval_ms = Some(match r.heartbeat.interval_ms {
            Some(every) => every as i64,
            None => (r.interval_end_ms - r.interval_start_ms).max(l.interval_ms.unwrap_or(DEFAULT_INTERVAL_MS)),
        });
        let end = r.interval_end_ms - receipt.correction_ms;
        // Only the newest heartbeat speaks for the radios: a replayed backlog is history.
        if l.last_interval_end_ms.is_none_or(|e| e <= end) {
            l.radios = crate::radio::advance(&l.radios, &r.heartbeat.radios, receipt.received_ms);
        }
        if l.last_interval_end_ms.is_none_or(|e| e < end) {
            l.last_interval_end_ms = Some(end);
            l.last_interval_start_ms = Some(r.interval_start_ms - receipt.correction_ms);
        }
        l.stored_total += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_like_people_write_them() {
        assert_eq!(span(850), "850 ms");
        assert_eq!(span(-4_200), "4.2 s");
        assert_eq!(span(303_000), "5 min 3 s");
        assert_eq!(span(7_800_000), "2 h 10 min");
        assert_eq!(span(365 * 86_400_000), "365 d 0 h");
        assert!(span(i64::MIN).ends_with(" h"));
    }
}
