use report::{Heartbeat, Series};
use testkit::reports::{ReportBuilder, key, series};

use super::*;

/// A fresh directory for one store, removed when the guard drops.
pub(crate) fn temp_dir(tag: &str) -> testkit::TempDir {
    testkit::temp_dir(&format!("agg-store-{tag}"))
}

const T0: i64 = 1_700_000_040_000; // a minute boundary

fn report(prober: &str, seq: u64, end_ms: i64, series: Vec<Series>) -> Report {
    let region = series.first().map_or("nairobi".into(), |s| s.key.region.clone());
    ReportBuilder::new(prober, &region)
        .seq(seq)
        .ending_at(end_ms)
        .heartbeat(Heartbeat { outbox_backlog: 1, version: "t".into(), ..Heartbeat::default() })
        .series(series)
        .build()
}

fn receipt(at: i64) -> Receipt {
    Receipt { received_ms: at, offset_ms: 0, correction_ms: 0 }
}

fn open(dir: &Path) -> Store {
    Store::open(dir, StoreOptions::default()).unwrap()
}

#[test]
fn a_replayed_report_counts_once_even_after_reopening() {
    let dir = temp_dir("idem");
    let store = open(&dir);
    let r = report("nbo-1", 1, T0 + 15_000, vec![series(key("checkout", "", "ok", "nairobi"), &[1_000, 2_000])]);
    assert_eq!(store.ingest(&r, receipt(T0 + 15_100)).unwrap(), Ingested::Stored);
    assert_eq!(store.ingest(&r, receipt(T0 + 16_000)).unwrap(), Ingested::Duplicate);
    assert_eq!(store.counts(&Selection::all(), T0, T0 + HOUR_MS).unwrap().total, 2);
    store.close().unwrap();
    let store = open(&dir);
    assert_eq!(store.ingest(&r, receipt(T0 + 20_000)).unwrap(), Ingested::Duplicate);
    assert_eq!(store.counts(&Selection::all(), T0, T0 + HOUR_MS).unwrap().total, 2);
    assert_eq!(store.series_count(), 1);
    let p = store.probers().unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].stored_total, 1);
    assert_eq!(p[0].last_interval_end_ms, T0 + 15_000);
    assert!(store.seen("nbo-1", 1).unwrap());
    assert!(!store.seen("nbo-1", 2).unwrap());
}

#[test]
fn queries_merge_exactly_like_a_histogram_merged_by_hand() {
    let dir = temp_dir("merge");
    let store = open(&dir);
    let mut by_hand = report::new_histogram();
    let mut seq = 0;
    for minute in 0..5i64 {
        for (region, prober) in [("nairobi", "nbo-1"), ("kampala", "kla-1")] {
            seq += 1;
            let vals: Vec<u64> = (0..20).map(|i| 1_000 + (i * 7_919 + minute as u64 * 104_729) % 3_000_000).collect();
            let bad: Vec<u64> = vec![15_000_000 + minute as u64];
            for v in vals.iter().chain(&bad) {
                by_hand.record(*v).unwrap();
            }
            let r = report(
                prober,
                seq,
                T0 + minute * MINUTE_MS + 30_000,
                vec![
                    series(key("checkout", "", "ok", region), &vals),
                    series(key("checkout", "", "timeout", region), &bad),
                ],
            );
            store.ingest(&r, receipt(T0)).unwrap();
        }
    }
    let h = store.histogram(&Selection::journey_level(), T0, T0 + HOUR_MS).unwrap();
    assert_eq!(h, by_hand);
    for q in [0.5, 0.9, 0.95, 0.99] {
        assert_eq!(h.value_at_quantile(q), by_hand.value_at_quantile(q));
    }
    let c = store.counts(&Selection::all(), T0, T0 + HOUR_MS).unwrap();
    assert_eq!(c.total, 210);
    assert_eq!(c.by_outcome["timeout"], 10);
    let kampala = store.counts(&Selection::all().regions(["kampala"]), T0, T0 + HOUR_MS).unwrap();
    assert_eq!(kampala.total, 105);
    // Range ends are honoured at minute resolution: [T0 + 1m, T0 + 3m) holds two minutes.
    assert_eq!(store.counts(&Selection::all(), T0 + MINUTE_MS, T0 + 3 * MINUTE_MS).unwrap().total, 84);
    let groups = store.groups(&Selection::all(), T0, T0 + HOUR_MS, &[Dim::Region, Dim::Outcome]).unwrap();
    assert_eq!(groups.len(), 4);
    assert_eq!(groups[0].key, vec![(Dim::Region, "kampala".into()), (Dim::Outcome, "ok".into())]);
    assert_eq!(groups[0].counts.total, 100);
    assert_eq!(groups[0].histogram.len(), 100);
    let buckets = store.minutes(&Selection::all(), T0, T0 + HOUR_MS).unwrap();
    assert_eq!(buckets.len(), 20);
    assert!(buckets.iter().all(|b| b.width_ms == MINUTE_MS && b.start_ms % MINUTE_MS == 0));
    assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), 210);
}

#[test]
fn interval_end_on_a_minute_boundary_belongs_to_the_minute_before() {
    assert_eq!(minute_of_end(T0), T0 - MINUTE_MS);
    assert_eq!(minute_of_end(T0 + 1), T0);
    assert_eq!(minute_of_end(T0 + MINUTE_MS), T0);
}

#[test]
fn correction_moves_the_bucket() {
    let dir = temp_dir("correct");
    let store = open(&dir);
    let r = report("nbo-1", 1, T0 + 5 * MINUTE_MS + 10_000, vec![series(key("j", "", "ok", "nairobi"), &[5])]);
    // The prober's clock runs 3 minutes ahead.
    store.ingest(&r, Receipt { received_ms: T0, offset_ms: 3 * MINUTE_MS, correction_ms: 3 * MINUTE_MS }).unwrap();
    let b = store.minutes(&Selection::all(), T0, T0 + HOUR_MS).unwrap();
    assert_eq!(b[0].start_ms, T0 + 2 * MINUTE_MS);
    let p = &store.probers().unwrap()[0];
    assert!(p.skewed);
    assert_eq!(p.offset_ms, 3 * MINUTE_MS);
}

#[test]
fn load_runs_are_kept_apart() {
    let dir = temp_dir("runs");
    let store = open(&dir);
    let mut r = report("nbo-1", 1, T0 + 30_000, vec![series(key("checkout", "", "ok", "nairobi"), &[1, 2, 3])]);
    r.run = Some("run-42".into());
    store.ingest(&r, receipt(T0)).unwrap();
    let mut r2 = report("nbo-1", 2, T0 + 90_000, vec![series(key("checkout", "", "ok", "nairobi"), &[4])]);
    r2.run = Some("run-42".into());
    store.ingest(&r2, receipt(T0)).unwrap();
    assert_eq!(store.counts(&Selection::all(), 0, i64::MAX).unwrap().total, 0);
    let info = store.run("run-42").unwrap().unwrap();
    assert_eq!(info.reports, 2);
    assert_eq!(info.first_start_ms, T0 + 15_000);
    let g = store.run_groups("run-42", &Selection::all(), &[]).unwrap();
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].counts.total, 4);
    assert_eq!(g[0].histogram.max(), 4);
    assert!(store.run("run-43").unwrap().is_none());
}

#[test]
fn a_failed_commit_changes_nothing() {
    let dir = temp_dir("busy");
    let store =
        Store::open(&dir, StoreOptions { busy_timeout: Duration::from_millis(50), ..StoreOptions::default() }).unwrap();
    let r = report("nbo-1", 1, T0 + 30_000, vec![series(key("checkout", "", "ok", "nairobi"), &[7])]);
    // Someone else holds the write lock: the store cannot commit.
    let other = Connection::open(store.path()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    assert!(store.ingest(&r, receipt(T0)).is_err());
    assert!(store.check_writable().is_err());
    other.execute_batch("ROLLBACK").unwrap();
    assert!(!store.seen("nbo-1", 1).unwrap());
    assert_eq!(store.series_count(), 0);
    // The retry is stored, not taken for a duplicate.
    assert_eq!(store.ingest(&r, receipt(T0)).unwrap(), Ingested::Stored);
    assert_eq!(store.counts(&Selection::all(), 0, i64::MAX).unwrap().total, 1);
}

#[test]
fn compaction_then_retention_with_a_moving_clock() {
    let dir = temp_dir("compact");
    let store = open(&dir);
    let mut by_hand = report::new_histogram();
    for m in 0..120i64 {
        let vals = [1_000 + m as u64 * 10, 2_000_000];
        for v in vals {
            by_hand.record(v).unwrap();
        }
        let r = report(
            "nbo-1",
            m as u64 + 1,
            T0 + m * MINUTE_MS + 20_000,
            vec![series(key("j", "", "ok", "nairobi"), &vals)],
        );
        store.ingest(&r, receipt(T0 + m * MINUTE_MS + 21_000)).unwrap();
    }
    let all = Selection::all();
    // One day later nothing is compacted.
    let m = store.maintain(T0 + 86_400_000).unwrap();
    assert_eq!(m, Maintenance::default());
    // Three days later every minute is older than `compact_after` (2 d): hourly rollups.
    let m = store.maintain(T0 + 3 * 86_400_000).unwrap();
    assert_eq!(m.compacted, 120);
    let buckets = store.minutes(&all, 0, i64::MAX).unwrap();
    assert!(
        buckets.iter().all(|b| b.width_ms == HOUR_MS),
        "{:?}",
        buckets.iter().map(|b| b.width_ms).collect::<Vec<_>>()
    );
    assert!(buckets.len() <= 3);
    assert_eq!(store.counts(&all, 0, i64::MAX).unwrap().total, 240);
    assert_eq!(store.histogram(&all, 0, i64::MAX).unwrap(), by_hand);
    // Replays are still recognised after compaction.
    let again = report("nbo-1", 5, T0 + 4 * MINUTE_MS + 20_000, vec![series(key("j", "", "ok", "nairobi"), &[1])]);
    assert_eq!(store.ingest(&again, receipt(T0 + 3 * 86_400_000)).unwrap(), Ingested::Duplicate);
    // 36 days later everything is past the 35-day retention.
    let m = store.maintain(T0 + 36 * 86_400_000).unwrap();
    assert_eq!(m.expired, buckets.len() as u64);
    assert_eq!(m.seen_pruned, 120);
    assert_eq!(store.counts(&all, 0, i64::MAX).unwrap().total, 0);
    // A pruned seq is still a duplicate (at or below the floor), a new one is stored.
    assert_eq!(store.ingest(&again, receipt(T0 + 36 * 86_400_000)).unwrap(), Ingested::Duplicate);
    let new = report("nbo-1", 121, T0 + 36 * 86_400_000, vec![series(key("j", "", "ok", "nairobi"), &[1])]);
    assert_eq!(store.ingest(&new, receipt(T0 + 36 * 86_400_000)).unwrap(), Ingested::Stored);
}

#[test]
fn the_disk_bound_drops_oldest_rollups_first() {
    let dir = temp_dir("disk");
    let mut store = open(&dir);
    // Wide histograms (hundreds of distinct values, several series) so rollups dominate the file.
    for m in 0..120i64 {
        let all: Vec<Series> = (0..12)
            .map(|k| {
                let vals: Vec<u64> =
                    (0..600).map(|i| 1 + (i * 104_729 + m as u64 * 7 + k as u64 * 13) % 3_000_000_000).collect();
                series(key(&format!("j{k}"), "", "ok", "nairobi"), &vals)
            })
            .collect();
        let r = report("nbo-1", m as u64 + 1, T0 + m * MINUTE_MS + 30_000, all);
        store.ingest(&r, receipt(T0)).unwrap();
    }
    let before = store.minutes(&Selection::all(), 0, i64::MAX).unwrap();
    let used = Store::used_bytes(&store.writer.lock()).unwrap();
    // Allow about half of what is used.
    let bound = used / 2;
    store.opts.max_disk_bytes = bound;
    let m = store.maintain(T0 + 240 * MINUTE_MS).unwrap();
    assert!(m.dropped_for_disk > 0, "{m:?}");
    let after = store.minutes(&Selection::all(), 0, i64::MAX).unwrap();
    assert_eq!(after.len() as u64, before.len() as u64 - m.dropped_for_disk);
    // What is left is the newest data.
    assert_eq!(after.last().unwrap().start_ms, before.last().unwrap().start_ms);
    assert!(after.first().unwrap().start_ms > before.first().unwrap().start_ms);
    let conn = store.writer.lock();
    assert!(Store::used_bytes(&conn).unwrap() <= bound);
    drop(conn);
    // The file itself shrank (incremental vacuum), not only the pages in use.
    assert!(store.disk_bytes() > 0);
}

#[test]
fn a_batch_is_one_transaction_and_a_replay_within_it_counts_once() {
    let dir = temp_dir("batch");
    let store = open(&dir);
    let k = key("checkout", "", "ok", "nairobi");
    let a = report("nbo-1", 1, T0 + 30_000, vec![series(k.clone(), &[10, 20])]);
    let b = report("nbo-1", 2, T0 + 45_000, vec![series(k.clone(), &[30])]);
    let c = report("nbo-2", 1, T0 + 45_000, vec![series(k.clone(), &[40_000])]);
    let out =
        store.ingest_batch(&[(&a, receipt(T0)), (&b, receipt(T0)), (&a, receipt(T0)), (&c, receipt(T0))]).unwrap();
    assert_eq!(out, vec![Ingested::Stored, Ingested::Stored, Ingested::Duplicate, Ingested::Stored]);
    // One bucket, merged exactly as if the three reports had been stored one by one.
    let b = store.minutes(&Selection::all(), 0, i64::MAX).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].count, 4);
    let mut by_hand = report::new_histogram();
    for v in [10, 20, 30, 40_000] {
        by_hand.record(v).unwrap();
    }
    assert_eq!(b[0].histogram.to_histogram(), by_hand);
    // The stored record of nbo-1 counts its two reports, not the replay.
    let p = store.probers().unwrap();
    assert_eq!((p[0].prober.as_str(), p[0].stored_total), ("nbo-1", 2));
    // Replayed in a later batch: duplicates, nothing changes.
    assert_eq!(store.ingest_batch(&[(&c, receipt(T0)), (&a, receipt(T0))]).unwrap(), vec![Ingested::Duplicate; 2]);
    assert_eq!(store.counts(&Selection::all(), 0, i64::MAX).unwrap().total, 4);
}

#[test]
fn a_batch_that_fails_part_way_changes_nothing() {
    let dir = temp_dir("batch-fail");
    let store = open(&dir);
    let good = key("checkout", "", "ok", "nairobi");
    let bad = key("checkout", "pay", "ok", "nairobi");
    // Seed the `bad` series, then corrupt its bucket behind the store's back, so that merging into
    // it fails after the first report of the batch was already applied inside the transaction.
    let seed = report("nbo-9", 1, T0 + 30_000, vec![series(bad.clone(), &[5])]);
    assert_eq!(store.ingest(&seed, receipt(T0)).unwrap(), Ingested::Stored);
    let other = Connection::open(store.path()).unwrap();
    other.execute("UPDATE rollup_minute SET hist = x'00112233'", []).unwrap();
    drop(other);
    let first = report("nbo-1", 1, T0 + 30_000, vec![series(good.clone(), &[10])]);
    let second = report("nbo-2", 1, T0 + 30_000, vec![series(bad, &[20])]);
    let new_series = report("nbo-3", 1, T0 + 30_000, vec![series(key("stk", "", "ok", "nairobi"), &[30])]);
    let err = store.ingest_batch(&[(&first, receipt(T0)), (&new_series, receipt(T0)), (&second, receipt(T0))]);
    assert!(matches!(err, Err(StoreError::Corrupt(_))), "{err:?}");
    // Nothing of any report in the batch was applied.
    for p in ["nbo-1", "nbo-2", "nbo-3"] {
        assert!(!store.seen(p, 1).unwrap(), "{p}");
    }
    assert_eq!(store.counts(&Selection::all().journeys(["checkout"]).steps([""]), 0, i64::MAX).unwrap().total, 0);
    assert_eq!(store.series_count(), 1, "series created inside the failed batch are not cached");
    assert_eq!(store.probers().unwrap().len(), 1);
    // Without the poisoned report the others are stored on retry.
    let out = store.ingest_batch(&[(&first, receipt(T0)), (&new_series, receipt(T0))]).unwrap();
    assert_eq!(out, vec![Ingested::Stored; 2]);
    assert_eq!(store.series_count(), 3);
}

/// A version-1 store file as an aggregator before rails left it: one Nairobi checkout series with
/// one minute of two runs, and prober `nbo-1`'s report 1 seen.
fn schema_1_file(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let conn = Connection::open(dir.join("aggregator.sqlite")).unwrap();
    conn.execute_batch(include_str!("schema_v1.sql")).unwrap();
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema', 1)", []).unwrap();
    conn.execute(
        "INSERT INTO series (id, journey, step, outcome, region, profile) VALUES (7, 'checkout', '', 'ok', 'nairobi', 'ea-3g')",
        [],
    )
    .unwrap();
    let mut h = SparseHistogram::new();
    h.record_n(1_000, 2);
    conn.execute(
        "INSERT INTO rollup_minute (series_id, minute_ms, count, hist) VALUES (7, ?1, 2, ?2)",
        params![minute_of_end(T0 + 15_000), hist::encode(&h)],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO reports_seen (prober, seq, received_ms, raw_start_ms, raw_end_ms, offset_ms, correction_ms, run)
         VALUES ('nbo-1', 1, ?1, ?2, ?1, 0, 0, NULL)",
        params![T0 + 15_000, T0],
    )
    .unwrap();
}

#[test]
fn a_schema_1_store_is_migrated_and_keeps_its_data_with_empty_rails() {
    let dir = temp_dir("migrate");
    schema_1_file(&dir);
    let store = open(&dir);
    let version: i64 =
        store.writer.lock().query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 3);
    // The old series, its id and its data, now with empty rail and reason.
    let old = key("checkout", "", "ok", "nairobi");
    assert_eq!(store.series.read().by_key.get(&old), Some(&7));
    assert_eq!(store.counts(&Selection::all(), T0, T0 + HOUR_MS).unwrap().total, 2);
    assert!(store.seen("nbo-1", 1).unwrap(), "idempotency survives the migration");
    // New payment series land beside it, told apart by rail and reason.
    let pay = |reason: &str| testkit::reports::pay_key("checkout", "pay", "ok", "nairobi", "mpesa-ke", reason);
    let r = report("nbo-1", 2, T0 + 30_000, vec![series(pay("0"), &[900_000]), series(pay(""), &[950_000])]);
    assert_eq!(store.ingest(&r, receipt(T0 + 30_100)).unwrap(), Ingested::Stored);
    assert_eq!(store.series_count(), 3);
    store.close().unwrap();
    // Reopening a current file migrates nothing and reads the rails back.
    let store = open(&dir);
    assert_eq!(store.series_count(), 3);
    let mpesa = Selection::all().rails(["mpesa-ke"]);
    assert_eq!(store.counts(&mpesa, T0, T0 + HOUR_MS).unwrap().total, 2);
    let groups = store.groups(&mpesa, T0, T0 + HOUR_MS, &[Dim::Rail, Dim::Reason]).unwrap();
    let keys: Vec<_> = groups.iter().map(|g| (g.key[1].1.as_str(), g.counts.total)).collect();
    assert_eq!(keys, [("", 1), ("0", 1)]);
    assert_eq!(store.counts(&Selection::all().reasons(["0"]), T0, T0 + HOUR_MS).unwrap().total, 1);
}

#[test]
fn a_store_newer_than_this_aggregator_is_refused() {
    let dir = temp_dir("newer");
    open(&dir).close().unwrap();
    let conn = Connection::open(dir.join("aggregator.sqlite")).unwrap();
    conn.execute("UPDATE meta SET value = 4 WHERE key = 'schema'", []).unwrap();
    drop(conn);
    let e = Store::open(&dir, StoreOptions::default()).err().expect("refused").to_string();
    assert_eq!(e, "store: schema version 4 is newer than this aggregator's (3)");
}

fn radio(modem: &str, registration: &str) -> report::RadioHealth {
    report::RadioHealth {
        modem: modem.into(),
        signal_dbm: Some(-75),
        registration: registration.into(),
        operator: "MTN UG".into(),
        access: "utran".into(),
        sim: "ready".into(),
        read_at_ms: T0,
        error: String::new(),
    }
}

fn with_radios(seq: u64, end_ms: i64, radios: Vec<report::RadioHealth>) -> Report {
    let mut r = report("kla-1", seq, end_ms, vec![]);
    r.region = "kampala".into();
    r.heartbeat.radios = radios;
    r
}

#[test]
fn a_schema_2_store_gains_the_radios_and_keeps_the_newest_heartbeats() {
    let dir = temp_dir("migrate-radios");
    schema_1_file(&dir);
    {
        // A version-2 file with a prober row, as the aggregator before radios left it.
        let conn = Connection::open(dir.join("aggregator.sqlite")).unwrap();
        conn.execute_batch(schema::MIGRATE_1_TO_2).unwrap();
        conn.execute(
            "INSERT INTO probers VALUES ('kla-1', 'kampala', ?1, ?2, ?1, 0, 0, 0, 0, 'old', 1)",
            params![T0 + 15_000, T0],
        )
        .unwrap();
    }
    let store = open(&dir);
    let version: i64 =
        store.writer.lock().query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 3);
    let p = store.probers().unwrap();
    assert_eq!((p[0].version.as_str(), p[0].radios.len()), ("old", 0));
    let r = with_radios(5, T0 + 60_000, vec![radio("usb2", "home"), radio("usb3", "searching")]);
    assert_eq!(store.ingest(&r, receipt(T0 + 60_100)).unwrap(), Ingested::Stored);
    // A replayed older report (from the outbox) does not overwrite the newer readings.
    let old = with_radios(4, T0 + 45_000, vec![]);
    assert_eq!(store.ingest(&old, receipt(T0 + 60_200)).unwrap(), Ingested::Stored);
    store.close().unwrap();
    let store = open(&dir);
    let p = store.probers().unwrap();
    assert_eq!(p[0].radios, r.heartbeat.radios, "the radios survive a restart");
}
