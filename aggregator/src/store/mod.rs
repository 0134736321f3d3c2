//! The durable store: SQLite in WAL mode with `synchronous=FULL`, one writer. `Store::ingest_batch`
//! stores a batch of reports in one transaction (group commit: one fsync for the batch) and returns
//! only after it is committed and fsync'd, so an acknowledgement means the report survives
//! `kill -9` and power loss; a batch, and so each report in it, is applied whole or not at all.
//!
//! Queries merge the stored histograms exactly (one fleet-wide configuration, see the `report`
//! crate). A bucket counts toward `[from, to)` when its start lies in the range; buckets are a
//! minute wide for recent data and an hour wide after compaction (`compact_after`).

mod hist;
mod schema;
mod selection;

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    time::Duration,
};

use hdrhistogram::Histogram;
use parking_lot::{Mutex, RwLock};
use report::{Report, SeriesKey, SparseHistogram};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params};

pub use selection::{Dim, Selection};

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;

/// Why the store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store: unexpected value: {0}")]
    Value(#[from] rusqlite::types::FromSqlError),
    #[error("store: cannot create {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("store: a stored histogram cannot be read: {0}")]
    Corrupt(String),
    #[error("store: schema version {found} is newer than this aggregator's ({SCHEMA_VERSION})", SCHEMA_VERSION = schema::SCHEMA_VERSION)]
    Schema { found: i64 },
    /// A run count would not fit (a bucket or a query total above 2^63 − 1): nothing was applied.
    #[error("store: {0}")]
    Overflow(String),
}

/// `a + b`, or the overflow error naming `what`.
fn checked_sum(a: u64, b: u64, what: &str) -> Result<u64, StoreError> {
    a.checked_add(b)
        .filter(|n| i64::try_from(*n).is_ok())
        .ok_or_else(|| StoreError::Overflow(format!("{what}: the run count would exceed 2^63 - 1")))
}

/// Bounds the store keeps itself within.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub retention: Duration,
    pub compact_after: Duration,
    pub max_disk_bytes: u64,
    /// How long a write waits for a lock held by someone else before failing.
    pub busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            retention: crate::config::DEFAULT_RETENTION,
            compact_after: crate::config::DEFAULT_COMPACT_AFTER,
            max_disk_bytes: crate::config::DEFAULT_MAX_DISK_BYTES,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// How the aggregator received an accepted report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// Aggregator wall time when the request arrived.
    pub received_ms: i64,
    /// Estimated prober clock offset (prober − aggregator), ms.
    pub offset_ms: i64,
    /// Subtracted from the interval's bounds before bucketing: the offset when skewed, else 0.
    pub correction_ms: i64,
}

impl Receipt {
    pub fn skewed(&self) -> bool {
        self.correction_ms != 0
    }
}

/// What `ingest` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    Stored,
    /// This (prober, seq) was stored before: nothing changed.
    Duplicate,
}

/// Runs in total and per outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub total: u64,
    pub by_outcome: BTreeMap<String, u64>,
}

impl Counts {
    /// Adds `n` runs of `outcome`, checked.
    fn add(&mut self, outcome: &str, n: u64) -> Result<(), StoreError> {
        self.total = checked_sum(self.total, n, "a query total")?;
        let o = self.by_outcome.entry(outcome.to_owned()).or_default();
        *o = checked_sum(*o, n, "a query total")?;
        Ok(())
    }
}

/// One stored bucket of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub start_ms: i64,
    /// [`MINUTE_MS`] or [`HOUR_MS`].
    pub width_ms: i64,
    pub key: SeriesKey,
    pub count: u64,
    pub histogram: SparseHistogram,
}

/// One group of a grouped query.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The group-by labels and their values, in the order asked.
    pub key: Vec<(Dim, String)>,
    pub counts: Counts,
    pub histogram: Histogram<u64>,
}

/// A load run's bounds (its data is queried with [`Store::run_groups`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub first_start_ms: i64,
    pub last_end_ms: i64,
    pub reports: u64,
    pub last_received_ms: i64,
}

/// A prober's last stored report (status survives restarts through this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProberRecord {
    pub prober: String,
    pub region: String,
    pub last_received_ms: i64,
    /// Corrected bounds.
    pub last_interval_start_ms: i64,
    pub last_interval_end_ms: i64,
    pub offset_ms: i64,
    pub skewed: bool,
    pub outbox_backlog: u64,
    pub outbox_dropped_total: u64,
    pub version: String,
    pub stored_total: u64,
    /// The modems of the newest stored report's heartbeat (a replayed older report leaves them).
    pub radios: Vec<report::RadioHealth>,
}

/// What a maintenance pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// Minute rows merged into hourly rows.
    pub compacted: u64,
    /// Rollup rows deleted for being older than the retention.
    pub expired: u64,
    /// Rollup rows dropped (oldest first) to stay under `max_disk_bytes`.
    pub dropped_for_disk: u64,
    /// Idempotency rows pruned (their seqs stay recognised through the floor).
    pub seen_pruned: u64,
}

#[derive(Default)]
struct SeriesIndex {
    by_key: HashMap<SeriesKey, i64>,
    by_id: BTreeMap<i64, SeriesKey>,
}

/// The aggregator's durable store. Cheap calls; every method blocks (call from `spawn_blocking`).
pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    series: RwLock<SeriesIndex>,
    opts: StoreOptions,
}

/// Bucket start of the minute holding the interval end `end_ms` (an interval ending exactly on a
/// minute boundary belongs to the minute before it).
pub fn minute_of_end(end_ms: i64) -> i64 {
    (end_ms - 1).div_euclid(MINUTE_MS) * MINUTE_MS
}

fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Opens (creating if needed) the store in `dir` (file `aggregator.sqlite`).
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: dir.display().to_string(), source })?;
        let path = dir.join("aggregator.sqlite");
        let mut writer = Connection::open(&path)?;
        writer.busy_timeout(opts.busy_timeout)?;
        // auto_vacuum must be chosen before the first table exists; it lets the disk bound shrink
        // the file after dropping rows.
        writer.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")?;
        let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Sqlite(rusqlite::Error::InvalidParameterName(format!(
                "journal_mode WAL refused (got {mode})"
            ))));
        }
        // FULL: the WAL is fsync'd at every commit, so a committed report survives power loss.
        writer.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF;")?;
        // The version first: `CREATE` must not touch a newer file, and on a version-1 file its
        // `IF NOT EXISTS` leaves the old series table for the migration to rebuild.
        writer.execute_batch("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);")?;
        let version: Option<i64> =
            writer.query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0)).optional()?;
        match version {
            Some(v) if v > schema::SCHEMA_VERSION => return Err(StoreError::Schema { found: v }),
            None => {
                writer.execute_batch(schema::CREATE)?;
                writer.execute("INSERT INTO meta (key, value) VALUES ('schema', ?1)", [schema::SCHEMA_VERSION])?;
            }
            Some(v) => {
                writer.execute_batch(schema::CREATE)?;
                if v < schema::SCHEMA_VERSION {
                    let tx = writer.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    if v < 2 {
                        tx.execute_batch(schema::MIGRATE_1_TO_2)?;
                    }
                    tx.execute_batch(schema::MIGRATE_2_TO_3)?;
                    tx.commit()?;
                    tracing::info!(from = v, to = schema::SCHEMA_VERSION, "store schema upgraded");
                }
            }
        }
        let reader = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        )?;
        reader.busy_timeout(opts.busy_timeout)?;
        let mut index = SeriesIndex::default();
        {
            let mut st =
                writer.prepare("SELECT id, journey, step, outcome, region, profile, rail, reason FROM series")?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    SeriesKey {
                        journey: r.get(1)?,
                        step: r.get(2)?,
                        outcome: r.get(3)?,
                        region: r.get(4)?,
                        profile: r.get(5)?,
                        rail: r.get(6)?,
                        reason: r.get(7)?,
                    },
                ))
            })?;
            for row in rows {
                let (id, key) = row?;
                index.by_key.insert(key.clone(), id);
                index.by_id.insert(id, key);
            }
        }
        Ok(Store { path, writer: Mutex::new(writer), reader: Mutex::new(reader), series: RwLock::new(index), opts })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// Stores a decoded report in one transaction, or recognises it as a duplicate. Returns after
    /// the commit is durable. On error nothing was applied.
    pub fn ingest(&self, report: &Report, receipt: Receipt) -> Result<Ingested, StoreError> {
        let mut out = self.ingest_batch(&[(report, receipt)])?;
        Ok(out.pop().expect("one outcome per report"))
    }

    /// Stores a batch of decoded reports in **one** transaction (one fsync): group commit. Returns
    /// one outcome per report, in order, after the commit is durable. A `(prober, seq)` stored
    /// before, or earlier in the same batch, is a [`Ingested::Duplicate`] and changes nothing. On
    /// error the whole batch is rolled back: nothing of any report in it was applied.
    ///
    /// Histograms of the batch that land in the same bucket are merged in memory first, so each
    /// touched bucket is read, decoded, re-encoded (DEFLATE) and written once per batch rather
    /// than once per report and series. Histograms stay sparse throughout (only their non-empty
    /// buckets): a merge costs what the runs recorded, not the fleet layout's 23,552 counters.
    pub fn ingest_batch(&self, batch: &[(&Report, Receipt)]) -> Result<Vec<Ingested>, StoreError> {
        let mut conn = self.writer.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut new_series = Vec::new();
        let mut pending: BTreeMap<BucketId<'_>, (u64, Vec<&SparseHistogram>)> = BTreeMap::new();
        for (report, receipt) in batch {
            let (report, receipt) = (*report, *receipt);
            let seq = i64::try_from(report.seq).map_err(|_| StoreError::Corrupt("seq above 2^63".into()))?;
            let floor: Option<i64> = tx
                .prepare_cached("SELECT floor FROM seq_floor WHERE prober = ?1")?
                .query_row([&report.prober], |r| r.get(0))
                .optional()?;
            // Sees rows inserted earlier in this transaction: a replay within the batch is a
            // duplicate too.
            let seen = tx
                .prepare_cached("SELECT 1 FROM reports_seen WHERE prober = ?1 AND seq = ?2")?
                .exists(params![report.prober, seq])?;
            if seen || floor.is_some_and(|f| seq <= f) {
                outcomes.push(Ingested::Duplicate);
                continue;
            }
            let start = report.interval_start_ms - receipt.correction_ms;
            let end = report.interval_end_ms - receipt.correction_ms;
            tx.prepare_cached(
                "INSERT INTO reports_seen (prober, seq, received_ms, raw_start_ms, raw_end_ms, offset_ms, correction_ms, run)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                report.prober,
                seq,
                receipt.received_ms,
                report.interval_start_ms,
                report.interval_end_ms,
                receipt.offset_ms,
                receipt.correction_ms,
                report.run
            ])?;
            let minute = minute_of_end(end);
            for s in &report.series {
                let id = self.series_id(&tx, &s.key, &mut new_series)?;
                let e = pending.entry((report.run.as_deref(), id, minute)).or_default();
                e.0 = checked_sum(e.0, s.count, "a minute bucket")?;
                e.1.push(&s.histogram);
            }
            if let Some(run) = &report.run {
                tx.prepare_cached(
                    "INSERT INTO runs (run_id, first_start_ms, last_end_ms, reports, last_received_ms) VALUES (?1, ?2, ?3, 1, ?4)
                     ON CONFLICT (run_id) DO UPDATE SET first_start_ms = min(first_start_ms, excluded.first_start_ms),
                       last_end_ms = max(last_end_ms, excluded.last_end_ms), reports = reports + 1,
                       last_received_ms = excluded.last_received_ms",
                )?
                .execute(params![run, start, end, receipt.received_ms])?;
            }
            let hb = &report.heartbeat;
            tx.prepare_cached(
                "INSERT INTO probers (prober, region, last_received_ms, last_interval_start_ms, last_interval_end_ms, offset_ms,
                     skewed, outbox_backlog, outbox_dropped_total, version, stored_total, radios)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 1, ?11)
                 ON CONFLICT (prober) DO UPDATE SET region = excluded.region, last_received_ms = excluded.last_received_ms,
                     radios = CASE WHEN excluded.last_interval_end_ms >= last_interval_end_ms
                                   THEN excluded.radios ELSE radios END,
                     last_interval_start_ms = max(last_interval_start_ms, excluded.last_interval_start_ms),
                     last_interval_end_ms = max(last_interval_end_ms, excluded.last_interval_end_ms),
                     offset_ms = excluded.offset_ms, skewed = excluded.skewed, outbox_backlog = excluded.outbox_backlog,
                     outbox_dropped_total = excluded.outbox_dropped_total, version = excluded.version,
                     stored_total = stored_total + 1",
            )?
            .execute(params![
                report.prober,
                report.region,
                receipt.received_ms,
                start,
                end,
                receipt.offset_ms,
                receipt.skewed(),
                clamp_i64(hb.outbox_backlog),
                clamp_i64(hb.outbox_dropped_total),
                hb.version,
                serde_json::to_string(&hb.radios).expect("radios serialize")
            ])?;
            outcomes.push(Ingested::Stored);
        }
        for ((run, id, minute), (count, hists)) in &pending {
            match run {
                None => merge_into(&tx, &MINUTES, None, (*id, *minute), *count, hists)?,
                Some(run) => merge_into(&tx, &RUN_MINUTES, Some(run), (*id, *minute), *count, hists)?,
            }
        }
        tx.commit()?;
        if !new_series.is_empty() {
            // Only now: ids from a rolled-back transaction must never be cached.
            let mut index = self.series.write();
            for (key, id) in new_series {
                index.by_key.insert(key.clone(), id);
                index.by_id.insert(id, key);
            }
        }
        Ok(outcomes)
    }

    fn series_id(
        &self,
        tx: &Transaction<'_>,
        key: &SeriesKey,
        new: &mut Vec<(SeriesKey, i64)>,
    ) -> Result<i64, StoreError> {
        if let Some(id) = self.series.read().by_key.get(key) {
            return Ok(*id);
        }
        if let Some((_, id)) = new.iter().find(|(k, _)| k == key) {
            return Ok(*id);
        }
        let args = params![key.journey, key.step, key.outcome, key.region, key.profile, key.rail, key.reason];
        let existing: Option<i64> = tx
            .prepare_cached(
                "SELECT id FROM series WHERE journey = ?1 AND step = ?2 AND outcome = ?3 AND region = ?4 AND profile = ?5
                   AND rail = ?6 AND reason = ?7",
            )?
            .query_row(args, |r| r.get(0))
            .optional()?;
        let id = match existing {
            Some(id) => id,
            None => {
                tx.prepare_cached(
                    "INSERT INTO series (journey, step, outcome, region, profile, rail, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(args)?;
                tx.last_insert_rowid()
            }
        };
        new.push((key.clone(), id));
        Ok(id)
    }

    /// Series known to the store.
    pub fn series_count(&self) -> usize {
        self.series.read().by_id.len()
    }

    fn selected(&self, sel: &Selection) -> Vec<(i64, SeriesKey)> {
        self.series.read().by_id.iter().filter(|(_, k)| sel.matches(k)).map(|(id, k)| (*id, k.clone())).collect()
    }

    /// Visits every stored SLO bucket (not load runs) of the selected series that starts in
    /// `[from_ms, to_ms)`; `hist` is the encoded histogram when `with_hist`.
    fn visit(
        &self,
        sel: &Selection,
        from_ms: i64,
        to_ms: i64,
        with_hist: bool,
        mut f: impl FnMut(&SeriesKey, i64, i64, u64, Option<&[u8]>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let series = self.selected(sel);
        let conn = self.reader.lock();
        let tables = [(HOUR_MS, "rollup_hour", "hour_ms"), (MINUTE_MS, "rollup_minute", "minute_ms")];
        for (width, table, col) in tables {
            let hist_col = if with_hist { "hist" } else { "NULL" };
            let sql = format!(
                "SELECT {col}, count, {hist_col} FROM {table} WHERE series_id = ?1 AND {col} >= ?2 AND {col} < ?3 ORDER BY {col}"
            );
            let mut st = conn.prepare_cached(&sql)?;
            for (id, key) in &series {
                let mut rows = st.query(params![id, from_ms, to_ms])?;
                while let Some(r) = rows.next()? {
                    let start: i64 = r.get(0)?;
                    let count = stored_count(r.get(1)?)?;
                    let blob = r.get_ref(2)?.as_blob_or_null()?;
                    f(key, start, width, count, blob)?;
                }
            }
        }
        Ok(())
    }

    /// Runs in `[from_ms, to_ms)` over the selection: total and per outcome.
    pub fn counts(&self, sel: &Selection, from_ms: i64, to_ms: i64) -> Result<Counts, StoreError> {
        let mut c = Counts::default();
        self.visit(sel, from_ms, to_ms, false, |key, _, _, n, _| c.add(&key.outcome, n))?;
        Ok(c)
    }

    /// Every duration in `[from_ms, to_ms)` over the selection, merged exactly (µs).
    pub fn histogram(&self, sel: &Selection, from_ms: i64, to_ms: i64) -> Result<Histogram<u64>, StoreError> {
        let mut h = report::new_histogram();
        self.visit(sel, from_ms, to_ms, true, |_, _, _, _, blob| hist::merge_blob(&mut h, blob))?;
        Ok(h)
    }

    /// The stored buckets themselves, ordered by (width, series, start): minute buckets for recent
    /// data, hour buckets for compacted data.
    pub fn minutes(&self, sel: &Selection, from_ms: i64, to_ms: i64) -> Result<Vec<Bucket>, StoreError> {
        let mut out = Vec::new();
        self.visit(sel, from_ms, to_ms, true, |key, start_ms, width_ms, count, blob| {
            let histogram = blob.map(hist::decode).transpose()?.unwrap_or_default();
            out.push(Bucket { start_ms, width_ms, key: key.clone(), count, histogram });
            Ok(())
        })?;
        Ok(out)
    }

    /// Counts and merged histograms per group of `group_by` labels (one group when empty).
    pub fn groups(
        &self,
        sel: &Selection,
        from_ms: i64,
        to_ms: i64,
        group_by: &[Dim],
    ) -> Result<Vec<Group>, StoreError> {
        let mut groups: BTreeMap<Vec<String>, (Counts, Histogram<u64>)> = BTreeMap::new();
        self.visit(sel, from_ms, to_ms, true, |key, _, _, n, blob| add_to_groups(&mut groups, group_by, key, n, blob))?;
        Ok(finish_groups(groups, group_by))
    }

    /// A load run's bounds, if it exists.
    pub fn run(&self, run_id: &str) -> Result<Option<RunInfo>, StoreError> {
        let conn = self.reader.lock();
        Ok(conn
            .prepare_cached(
                "SELECT first_start_ms, last_end_ms, reports, last_received_ms FROM runs WHERE run_id = ?1",
            )?
            .query_row([run_id], |r| {
                Ok(RunInfo {
                    run_id: run_id.to_owned(),
                    first_start_ms: r.get(0)?,
                    last_end_ms: r.get(1)?,
                    reports: r.get::<_, i64>(2)? as u64,
                    last_received_ms: r.get(3)?,
                })
            })
            .optional()?)
    }

    /// A load run's data over the selection, grouped like [`Store::groups`].
    pub fn run_groups(&self, run_id: &str, sel: &Selection, group_by: &[Dim]) -> Result<Vec<Group>, StoreError> {
        let series = self.selected(sel);
        let conn = self.reader.lock();
        let mut st = conn.prepare_cached("SELECT count, hist FROM run_minute WHERE run_id = ?1 AND series_id = ?2")?;
        let mut groups = BTreeMap::new();
        for (id, key) in &series {
            let mut rows = st.query(params![run_id, id])?;
            while let Some(r) = rows.next()? {
                let n = stored_count(r.get(0)?)?;
                add_to_groups(&mut groups, group_by, key, n, r.get_ref(1)?.as_blob_or_null()?)?;
            }
        }
        Ok(finish_groups(groups, group_by))
    }

    /// The last stored report of each prober.
    pub fn probers(&self) -> Result<Vec<ProberRecord>, StoreError> {
        let conn = self.reader.lock();
        let mut st = conn.prepare_cached(
            "SELECT prober, region, last_received_ms, last_interval_start_ms, last_interval_end_ms, offset_ms, skewed,
                    outbox_backlog, outbox_dropped_total, version, stored_total, radios FROM probers ORDER BY prober",
        )?;
        let rows = st.query_map([], |r| {
            Ok(ProberRecord {
                prober: r.get(0)?,
                region: r.get(1)?,
                last_received_ms: r.get(2)?,
                last_interval_start_ms: r.get(3)?,
                last_interval_end_ms: r.get(4)?,
                offset_ms: r.get(5)?,
                skewed: r.get(6)?,
                outbox_backlog: r.get::<_, i64>(7)? as u64,
                outbox_dropped_total: r.get::<_, i64>(8)? as u64,
                version: r.get(9)?,
                stored_total: r.get::<_, i64>(10)? as u64,
                // Written by this store from decoded reports: unreadable only if edited by hand,
                // and then the radios are forgotten until the prober's next report.
                radios: serde_json::from_str(&r.get::<_, String>(11)?).unwrap_or_default(),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether (prober, seq) is recorded as stored.
    pub fn seen(&self, prober: &str, seq: u64) -> Result<bool, StoreError> {
        let conn = self.reader.lock();
        let seq = seq as i64;
        let floor: Option<i64> =
            conn.query_row("SELECT floor FROM seq_floor WHERE prober = ?1", [prober], |r| r.get(0)).optional()?;
        if floor.is_some_and(|f| seq <= f) {
            return Ok(true);
        }
        Ok(conn
            .prepare_cached("SELECT 1 FROM reports_seen WHERE prober = ?1 AND seq = ?2")?
            .exists(params![prober, seq])?)
    }

    /// Bytes the store occupies on disk (database and WAL).
    pub fn disk_bytes(&self) -> u64 {
        let size = |p: PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        size(self.path.clone()) + size(PathBuf::from(wal))
    }

    /// Bytes in pages that hold data (what the disk bound is checked against).
    fn used_bytes(conn: &Connection) -> Result<u64, StoreError> {
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok(((pages - free).max(0) * size) as u64)
    }

    /// Whether a write transaction can be started (readiness).
    pub fn check_writable(&self) -> Result<(), StoreError> {
        let mut conn = self.writer.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.rollback()?;
        Ok(())
    }

    /// Compaction, retention and the disk bound, as of `now_ms`. Run it every minute or so.
    pub fn maintain(&self, now_ms: i64) -> Result<Maintenance, StoreError> {
        let mut m = Maintenance::default();
        let mut conn = self.writer.lock();
        // 1. Minutes older than `compact_after` become hours (whole hours only).
        let cutoff = hour_of(now_ms - ms(self.opts.compact_after));
        loop {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let rows: Vec<(i64, i64, i64, Vec<u8>)> = {
                let mut st = tx.prepare_cached(
                    "SELECT series_id, minute_ms, count, hist FROM rollup_minute WHERE minute_ms < ?1
                     ORDER BY series_id, minute_ms LIMIT 5000",
                )?;
                st.query_map([cutoff], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect::<Result<_, _>>()?
            };
            if rows.is_empty() {
                break;
            }
            let mut hours: BTreeMap<(i64, i64), (u64, Vec<SparseHistogram>)> = BTreeMap::new();
            for (series_id, minute_ms, count, blob) in &rows {
                let e = hours.entry((*series_id, hour_of(*minute_ms))).or_default();
                e.0 = checked_sum(e.0, stored_count(*count)?, "an hour bucket")?;
                e.1.push(hist::decode(blob)?);
            }
            for ((series_id, hour_ms), (count, hs)) in &hours {
                merge_into(&tx, &HOURS, None, (*series_id, *hour_ms), *count, &hs.iter().collect::<Vec<_>>())?;
            }
            {
                let mut del = tx.prepare_cached("DELETE FROM rollup_minute WHERE series_id = ?1 AND minute_ms = ?2")?;
                for (series_id, minute_ms, _, _) in &rows {
                    del.execute(params![series_id, minute_ms])?;
                }
            }
            tx.commit()?;
            m.compacted += rows.len() as u64;
        }

        // 2. Retention: buckets that ended before the cutoff, and idempotency rows received before it.
        let keep_from = now_ms - ms(self.opts.retention);
        {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            m.expired += tx
                .execute("DELETE FROM rollup_minute WHERE minute_ms + ?2 <= ?1", params![keep_from, MINUTE_MS])?
                as u64;
            m.expired +=
                tx.execute("DELETE FROM rollup_hour WHERE hour_ms + ?2 <= ?1", params![keep_from, HOUR_MS])? as u64;
            m.expired +=
                tx.execute("DELETE FROM run_minute WHERE minute_ms + ?2 <= ?1", params![keep_from, MINUTE_MS])? as u64;
            tx.execute("DELETE FROM runs WHERE last_end_ms <= ?1", [keep_from])?;
            tx.execute(
                "INSERT INTO seq_floor (prober, floor)
                 SELECT prober, max(seq) FROM reports_seen WHERE received_ms < ?1 GROUP BY prober
                 ON CONFLICT (prober) DO UPDATE SET floor = max(floor, excluded.floor)",
                [keep_from],
            )?;
            m.seen_pruned += tx.execute("DELETE FROM reports_seen WHERE received_ms < ?1", [keep_from])? as u64;
            tx.commit()?;
        }

        // 3. Disk bound: drop the oldest hour of rollups at a time until under the bound.
        while Store::used_bytes(&conn)? > self.opts.max_disk_bytes {
            let oldest: Option<i64> = conn.query_row(
                "SELECT min(t) FROM (SELECT min(hour_ms) AS t FROM rollup_hour UNION ALL
                    SELECT min(minute_ms) FROM rollup_minute UNION ALL SELECT min(minute_ms) FROM run_minute)",
                [],
                |r| r.get(0),
            )?;
            let Some(oldest) = oldest else { break };
            let end = hour_of(oldest) + HOUR_MS;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut n = tx.execute("DELETE FROM rollup_hour WHERE hour_ms < ?1", [end])? as u64;
            n += tx.execute("DELETE FROM rollup_minute WHERE minute_ms < ?1", [end])? as u64;
            n += tx.execute("DELETE FROM run_minute WHERE minute_ms < ?1", [end])? as u64;
            tx.commit()?;
            m.dropped_for_disk += n;
        }
        if m.expired + m.dropped_for_disk + m.compacted > 0 {
            conn.execute_batch("PRAGMA incremental_vacuum;")?;
        }
        // Keep the WAL short; PASSIVE never waits for readers.
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(m)
    }

    /// Checkpoints the WAL into the database and closes both connections.
    pub fn close(self) -> Result<(), StoreError> {
        let writer = self.writer.into_inner();
        writer.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        drop(self.reader);
        writer.close().map_err(|(_, e)| StoreError::Sqlite(e))
    }
}

/// A bucket a batch writes to: (load run, series id, minute start).
type BucketId<'a> = (Option<&'a str>, i64, i64);

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored count (never negative: every write is a checked sum of counts).
fn stored_count(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("a bucket holds a negative run count ({n})")))
}

/// A rollup table's statements: `select` takes `(series_id, bucket_ms[, run_id])`, `upsert`
/// `(series_id, bucket_ms, count, hist[, run_id])`.
struct Rollup {
    select: &'static str,
    upsert: &'static str,
}

const MINUTES: Rollup = Rollup {
    select: "SELECT count, hist FROM rollup_minute WHERE series_id = ?1 AND minute_ms = ?2",
    upsert: "INSERT INTO rollup_minute (series_id, minute_ms, count, hist) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (series_id, minute_ms) DO UPDATE SET count = excluded.count, hist = excluded.hist",
};
const RUN_MINUTES: Rollup = Rollup {
    select: "SELECT count, hist FROM run_minute WHERE series_id = ?1 AND minute_ms = ?2 AND run_id = ?3",
    upsert: "INSERT INTO run_minute (series_id, minute_ms, count, hist, run_id) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (run_id, series_id, minute_ms) DO UPDATE SET count = excluded.count, hist = excluded.hist",
};
const HOURS: Rollup = Rollup {
    select: "SELECT count, hist FROM rollup_hour WHERE series_id = ?1 AND hour_ms = ?2",
    upsert: "INSERT INTO rollup_hour (series_id, hour_ms, count, hist) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (series_id, hour_ms) DO UPDATE SET count = excluded.count, hist = excluded.hist",
};

/// Reads the bucket's row (if any) of `table` (and `run`), adds `count` (checked) and merges the
/// histograms `hs` into it, and writes it back.
fn merge_into(
    tx: &Transaction<'_>,
    table: &Rollup,
    run: Option<&str>,
    (series_id, bucket_ms): (i64, i64),
    count: u64,
    hs: &[&SparseHistogram],
) -> Result<(), StoreError> {
    let existing: Option<(i64, Vec<u8>)> = {
        let mut st = tx.prepare_cached(table.select)?;
        match run {
            None => st.query_row(params![series_id, bucket_ms], |r| Ok((r.get(0)?, r.get(1)?))),
            Some(run) => st.query_row(params![series_id, bucket_ms, run], |r| Ok((r.get(0)?, r.get(1)?))),
        }
        .optional()?
    };
    let (total, blob) = match (existing, hs) {
        (None, []) => return Ok(()),
        // The common case of a new bucket with one histogram: no copy, no merge.
        (None, [only]) => (count, hist::encode(only)),
        (None, hs) => (count, hist::encode(&SparseHistogram::sum(hs.iter().copied()))),
        (Some((old, blob)), hs) => {
            let stored = hist::decode(&blob)?;
            (
                checked_sum(stored_count(old)?, count, "a stored bucket")?,
                hist::encode(&SparseHistogram::sum(std::iter::once(&stored).chain(hs.iter().copied()))),
            )
        }
    };
    // `checked_sum` keeps every total within i64.
    let total =
        i64::try_from(total).map_err(|_| StoreError::Overflow("a bucket's run count exceeds 2^63 - 1".into()))?;
    let mut st = tx.prepare_cached(table.upsert)?;
    match run {
        None => st.execute(params![series_id, bucket_ms, total, blob])?,
        Some(run) => st.execute(params![series_id, bucket_ms, total, blob, run])?,
    };
    Ok(())
}

fn add_to_groups(
    groups: &mut BTreeMap<Vec<String>, (Counts, Histogram<u64>)>,
    group_by: &[Dim],
    key: &SeriesKey,
    n: u64,
    blob: Option<&[u8]>,
) -> Result<(), StoreError> {
    let g = groups
        .entry(group_by.iter().map(|d| d.of(key).to_owned()).collect())
        .or_insert_with(|| (Counts::default(), report::new_histogram()));
    g.0.add(&key.outcome, n)?;
    hist::merge_blob(&mut g.1, blob)
}

fn finish_groups(groups: BTreeMap<Vec<String>, (Counts, Histogram<u64>)>, group_by: &[Dim]) -> Vec<Group> {
    groups
        .into_iter()
        .map(|(values, (counts, histogram))| Group {
            key: group_by.iter().copied().zip(values).collect(),
            counts,
            histogram,
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;
