//! The store's tables. One writer connection; readers see committed data only (WAL).
//!
//! - `reports_seen (prober, seq)`: every report stored, for idempotency, kept while it is younger
//!   than the retention; when rows are pruned, `seq_floor` keeps the highest pruned seq per
//!   prober and any seq at or below it is a duplicate. A prober's outbox drops reports by age
//!   long before the retention (35 d), so every seq still in an outbox is recognised.
//! - `series`: one row per (journey, step, outcome, region, profile, rail, reason); `rail` and
//!   `reason` are empty except on payment steps' series.
//! - `rollup_minute`, `rollup_hour`: count and merged histogram (HdrHistogram V2 + DEFLATE) per
//!   series per bucket; a bucket is the minute (or hour) that holds the interval's end.
//! - `runs`, `run_minute`: load runs, kept apart from SLO data.
//! - `probers`: the last report of each prober (status survives a restart).
//!
//! Versions (`meta.schema`): 1, the first; 2 adds `series.rail` and `series.reason` (and both to
//! the series' uniqueness); 3 adds `probers.radios` (the last heartbeat's modems, JSON, `[]` for
//! probers without modems). [`MIGRATE_1_TO_2`] upgrades a version-1 file in place, keeping every
//! series id (the rollups refer to them) with empty rail and reason. An aggregator refuses a file
//! whose version is newer than its own, so a store once opened by this version cannot be opened by
//! an older aggregator.

pub(crate) const SCHEMA_VERSION: i64 = 3;

/// Version 1 → 2, in one transaction. SQLite cannot change a table's UNIQUE constraint, so the
/// series table is rebuilt under the same ids.
pub(crate) const MIGRATE_1_TO_2: &str = "
CREATE TABLE series_v2 (
    id INTEGER PRIMARY KEY,
    journey TEXT NOT NULL,
    step TEXT NOT NULL,
    outcome TEXT NOT NULL,
    region TEXT NOT NULL,
    profile TEXT NOT NULL,
    rail TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    UNIQUE (journey, step, outcome, region, profile, rail, reason)
);
INSERT INTO series_v2 (id, journey, step, outcome, region, profile)
    SELECT id, journey, step, outcome, region, profile FROM series;
DROP TABLE series;
ALTER TABLE series_v2 RENAME TO series;
UPDATE meta SET value = 2 WHERE key = 'schema';
";

/// Version 2 → 3, in one transaction.
pub(crate) const MIGRATE_2_TO_3: &str = "
ALTER TABLE probers ADD COLUMN radios TEXT NOT NULL DEFAULT '[]';
UPDATE meta SET value = 3 WHERE key = 'schema';
";

pub(crate) const CREATE: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reports_seen (
    prober TEXT NOT NULL,
    seq INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    raw_start_ms INTEGER NOT NULL,
    raw_end_ms INTEGER NOT NULL,
    offset_ms INTEGER NOT NULL,
    correction_ms INTEGER NOT NULL,
    run TEXT,
    PRIMARY KEY (prober, seq)
);
CREATE INDEX IF NOT EXISTS reports_seen_received ON reports_seen (received_ms);
CREATE TABLE IF NOT EXISTS seq_floor (prober TEXT PRIMARY KEY, floor INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    journey TEXT NOT NULL,
    step TEXT NOT NULL,
    outcome TEXT NOT NULL,
    region TEXT NOT NULL,
    profile TEXT NOT NULL,
    rail TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    UNIQUE (journey, step, outcome, region, profile, rail, reason)
);
CREATE TABLE IF NOT EXISTS rollup_minute (
    series_id INTEGER NOT NULL,
    minute_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    hist BLOB NOT NULL,
    PRIMARY KEY (series_id, minute_ms)
);
CREATE INDEX IF NOT EXISTS rollup_minute_time ON rollup_minute (minute_ms);
CREATE TABLE IF NOT EXISTS rollup_hour (
    series_id INTEGER NOT NULL,
    hour_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    hist BLOB NOT NULL,
    PRIMARY KEY (series_id, hour_ms)
);
CREATE INDEX IF NOT EXISTS rollup_hour_time ON rollup_hour (hour_ms);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    first_start_ms INTEGER NOT NULL,
    last_end_ms INTEGER NOT NULL,
    reports INTEGER NOT NULL,
    last_received_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS run_minute (
    run_id TEXT NOT NULL,
    series_id INTEGER NOT NULL,
    minute_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    hist BLOB NOT NULL,
    PRIMARY KEY (run_id, series_id, minute_ms)
);
CREATE INDEX IF NOT EXISTS run_minute_time ON run_minute (minute_ms);
CREATE TABLE IF NOT EXISTS probers (
    prober TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    last_received_ms INTEGER NOT NULL,
    last_interval_start_ms INTEGER NOT NULL,
    last_interval_end_ms INTEGER NOT NULL,
    offset_ms INTEGER NOT NULL,
    skewed INTEGER NOT NULL,
    outbox_backlog INTEGER NOT NULL,
    outbox_dropped_total INTEGER NOT NULL,
    version TEXT NOT NULL,
    stored_total INTEGER NOT NULL,
    radios TEXT NOT NULL DEFAULT '[]'
);
";
