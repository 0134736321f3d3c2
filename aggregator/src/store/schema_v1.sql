-- The store's schema version 1, frozen: the migration tests build a version-1 file from it.
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
    UNIQUE (journey, step, outcome, region, profile)
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
    stored_total INTEGER NOT NULL
);
