//! The run journal: a finished run survives `kill -9` before its interval becomes a report.
//!
//! Each reporting interval has a journal in the outbox directory, named by the seq its report
//! will get: `journal-00000000000000000042.log` becomes report 42. When a run finishes, its
//! [`RunRecord`] is appended and fsync'd *before* it counts in memory; when the interval is closed
//! and report 42 is durably in the outbox, journal 42 is deleted (inside [`Outbox::store_at`], so
//! report 42 cannot be acknowledged and leave before its journal is gone).
//!
//! At start-up, before the first interval opens, [`recover`] looks at every journal left behind:
//! - report N is in the outbox (waiting, rejected, or archived): its runs are already in it, so
//!   journal N is deleted (the crash came between the report and the journal's deletion);
//! - otherwise report N was never written: the runs are rebuilt from journal N and closed into
//!   report N (interval = the journal's start up to the last run's finish, about the crash time).
//!   Seq N may be at or below the outbox's high-water mark (the mark is written before the
//!   report); no report with it was ever written, so none was ever sent, and reusing it is safe.
//!
//! File format: one line per entry, `<fnv1a-64 of the payload, 16 hex digits> <payload JSON>\n`.
//! The first entry is `{"start":{…}}` (the interval's start); each later one is `{"run":{…}}`. A
//! crash can tear only the last line (entries are appended and fsync'd one at a time); a line
//! without its newline or with a wrong checksum ends the journal, and what follows is ignored.

use super::fnv::fnv1a;
use std::{
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
};

use report::Heartbeat;
use serde::{Deserialize, Serialize};

use super::{
    outbox::Outbox,
    recorder::{Recorder, RunRecord},
};

const PREFIX: &str = "journal-";
const SUFFIX: &str = ".log";

/// One line of a journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Entry {
    Start { seq: u64, start_ms: i64 },
    Run(RunRecord),
}

/// The open journal of the interval being recorded.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    seq: u64,
    file: File,
    runs: u64,
}

impl Journal {
    /// Creates journal `seq` (replacing a stale one) for an interval starting at `start_ms`, and
    /// makes it durable: the file, its first entry and its directory entry.
    pub fn create(dir: &Path, seq: u64, start_ms: i64) -> io::Result<Journal> {
        let path = dir.join(file_name(seq));
        let mut file = File::create(&path).map_err(|e| with_path(e, &path))?;
        file.write_all(&line(&Entry::Start { seq, start_ms }))?;
        file.sync_all()?;
        sync_dir(dir)?;
        Ok(Journal { dir: dir.to_path_buf(), seq, file, runs: 0 })
    }

    /// The seq of the report this journal's interval becomes.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Runs appended so far.
    pub fn runs(&self) -> u64 {
        self.runs
    }

    /// Appends a finished run and fsyncs it.
    pub fn append(&mut self, r: &RunRecord) -> io::Result<()> {
        self.file.write_all(&line(&Entry::Run(r.clone())))?;
        self.file.sync_data()?;
        self.runs += 1;
        Ok(())
    }

    /// Deletes this journal (its interval went nowhere: no run, clean stop).
    pub fn discard(self) -> io::Result<()> {
        remove(&self.dir, self.seq)
    }
}

/// `journal-{seq:020}.log`.
pub fn file_name(seq: u64) -> String {
    format!("{PREFIX}{seq:020}{SUFFIX}")
}

fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

/// Deletes journal `seq` durably (gone already is fine).
pub fn remove(dir: &Path, seq: u64) -> io::Result<()> {
    match fs::remove_file(dir.join(file_name(seq))) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => sync_dir(dir),
    }
}

/// The seqs of the journals in `dir`, lowest first.
pub fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out: Vec<u64> = fs::read_dir(dir)
        .map_err(|e| with_path(e, dir))?
        .filter_map(|e| e.ok().and_then(|e| parse_name(&e.file_name().to_string_lossy())))
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// What a journal holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contents {
    /// The interval's start, from the first entry (absent if even that was torn).
    pub start_ms: Option<i64>,
    pub runs: Vec<RunRecord>,
    /// A torn or corrupt tail was ignored.
    pub torn: bool,
}

/// Reads a journal's bytes. Pure: stops at the first torn or corrupt line.
pub fn decode(bytes: &[u8]) -> Contents {
    let mut c = Contents::default();
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some(nl) = rest.iter().position(|b| *b == b'\n') else {
            c.torn = true; // the last append did not finish
            break;
        };
        let (l, tail) = (&rest[..nl], &rest[nl + 1..]);
        rest = tail;
        match parse_line(l) {
            Some(Entry::Start { start_ms, .. }) if c.start_ms.is_none() && c.runs.is_empty() => {
                c.start_ms = Some(start_ms)
            }
            Some(Entry::Run(r)) => c.runs.push(r),
            _ => {
                c.torn = true;
                break;
            }
        }
    }
    c
}

/// Reads journal `seq` from `dir`.
pub fn read(dir: &Path, seq: u64) -> io::Result<Contents> {
    let path = dir.join(file_name(seq));
    fs::read(&path).map(|b| decode(&b)).map_err(|e| with_path(e, &path))
}

/// What start-up recovery did with one journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Report `seq` was already in the outbox: the journal was deleted.
    AlreadyReported { seq: u64 },
    /// No run in it: deleted.
    Empty { seq: u64 },
    /// The runs were closed into report `seq`.
    Rebuilt { seq: u64, runs: u64, start_ms: i64, end_ms: i64, torn: bool },
}

/// Settles every journal left in the outbox directory by a previous process (see the module
/// doc), lowest seq first. `heartbeat` goes into rebuilt reports (`runs_started` is set to the
/// runs recovered: starts are not journaled). Blocks (file I/O).
pub fn recover(outbox: &Outbox, prober: &str, region: &str, heartbeat: &Heartbeat) -> io::Result<Vec<Recovery>> {
    let dir = outbox.dir().to_path_buf();
    let mut done = Vec::new();
    for seq in list(&dir)? {
        if outbox.contains(seq) {
            remove(&dir, seq)?;
            done.push(Recovery::AlreadyReported { seq });
            continue;
        }
        let c = read(&dir, seq)?;
        if c.runs.is_empty() {
            remove(&dir, seq)?;
            done.push(Recovery::Empty { seq });
            continue;
        }
        let start_ms = c.start_ms.unwrap_or_else(|| c.runs.iter().map(|r| r.finish_ms).min().unwrap_or_default());
        let last_ms = c.runs.iter().map(|r| r.finish_ms).max().unwrap_or(start_ms);
        let mut rec = Recorder::new(region, start_ms);
        for r in &c.runs {
            rec.run_started();
            rec.apply(r);
        }
        let iv = rec.close(last_ms);
        let (start_ms, end_ms, runs) = (iv.start_ms, iv.end_ms, iv.runs_finished);
        let bytes = report::encode(&iv.into_report(prober, region, seq, heartbeat.clone()));
        outbox.store_at(seq, bytes, |s| remove(&dir, s))?;
        done.push(Recovery::Rebuilt { seq, runs, start_ms, end_ms, torn: c.torn });
    }
    Ok(done)
}

fn line(e: &Entry) -> Vec<u8> {
    let payload = serde_json::to_string(e).expect("journal entries serialise");
    format!("{:016x} {payload}\n", fnv1a(payload.as_bytes())).into_bytes()
}

fn parse_line(l: &[u8]) -> Option<Entry> {
    let l = std::str::from_utf8(l).ok()?;
    let (sum, payload) = l.split_once(' ')?;
    if sum.len() != 16 || u64::from_str_radix(sum, 16).ok()? != fnv1a(payload.as_bytes()) {
        return None;
    }
    serde_json::from_str(payload).ok()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn with_path(e: io::Error, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

/// Opens a journal for appending raw bytes (tests simulating torn writes).
#[cfg(test)]
fn append_raw(dir: &Path, seq: u64, bytes: &[u8]) {
    let mut f = fs::OpenOptions::new().append(true).open(dir.join(file_name(seq))).unwrap();
    f.write_all(bytes).unwrap();
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::agent::{config::OutboxConfig, recorder::StepRecord};

    /// A fresh directory, removed when the guard drops.
    fn tmpdir(name: &str) -> testkit::TempDir {
        testkit::temp_dir(&format!("prober-journal-{name}"))
    }

    fn outbox(dir: &Path, keep_acked: bool) -> Outbox {
        Outbox::open(
            &OutboxConfig {
                dir: dir.to_path_buf(),
                max_bytes: 1 << 20,
                max_age: Duration::from_secs(3600),
                max_rejected: 10,
                keep_acked,
            },
            &["main".to_owned()],
        )
        .unwrap()
    }

    fn run(finish_ms: i64, outcome: &str) -> RunRecord {
        RunRecord {
            finish_ms,
            journey: "checkout-mpesa".into(),
            profile: "ea-3g".into(),
            outcome: outcome.into(),
            duration_us: 1_500_000,
            steps: vec![
                StepRecord {
                    step: "browse".into(),
                    outcome: "ok".into(),
                    duration_us: 300_000,
                    rail: String::new(),
                    reason: String::new(),
                },
                StepRecord {
                    step: "pay".into(),
                    outcome: outcome.into(),
                    duration_us: 1_200_000,
                    rail: "mpesa-ke".into(),
                    reason: "0".into(),
                },
            ],
        }
    }

    /// Journey-level runs per outcome over every report in the outbox (waiting or archived).
    fn reported(dir: &Path) -> Vec<(u64, String, u64)> {
        let mut out = Vec::new();
        for d in [dir.to_path_buf(), dir.join("acked")] {
            let Ok(rd) = fs::read_dir(&d) else { continue };
            for e in rd {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "report") {
                    let r = report::decode(&fs::read(&p).unwrap()).unwrap();
                    for s in r.series.iter().filter(|s| s.key.step.is_empty()) {
                        out.push((r.seq, s.key.outcome.clone(), s.count));
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// What the agent does at a boundary: close the interval, open the next journal, store the
    /// report and delete the closed journal in the outbox's `after` hook.
    fn close(ob: &Outbox, rec: &mut Recorder, j: Journal, end_ms: i64) -> Journal {
        let seq = j.seq();
        let iv = rec.close(end_ms);
        let next = Journal::create(ob.dir(), seq + 1, iv.end_ms).unwrap();
        let bytes = report::encode(&iv.into_report("kla-1", "kampala", seq, Heartbeat::default()));
        ob.store_at(seq, bytes, |s| remove(ob.dir(), s)).unwrap();
        next
    }

    fn live(j: &mut Journal, rec: &mut Recorder, r: &RunRecord) {
        j.append(r).unwrap();
        rec.apply(r);
    }

    #[test]
    fn lines_round_trip_and_a_torn_or_garbled_tail_is_ignored() {
        let mut bytes = line(&Entry::Start { seq: 3, start_ms: 1_000 });
        bytes.extend(line(&Entry::Run(run(1_100, "ok"))));
        bytes.extend(line(&Entry::Run(run(1_200, "timeout"))));
        let whole = decode(&bytes);
        assert_eq!(whole.start_ms, Some(1_000));
        assert_eq!(whole.runs, vec![run(1_100, "ok"), run(1_200, "timeout")]);
        assert!(!whole.torn);
        // Every prefix of the file decodes to the whole lines it holds, never to a half run.
        let ends: Vec<usize> = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1).collect();
        for cut in 0..bytes.len() {
            let c = decode(&bytes[..cut]);
            let whole_lines = ends.iter().filter(|e| **e <= cut).count();
            assert_eq!(c.runs.len(), whole_lines.saturating_sub(1), "cut at {cut}");
            assert_eq!(c.torn, !ends.contains(&cut) && cut > 0, "cut at {cut}");
        }
        // A flipped byte inside a whole line fails its checksum; the lines after it are ignored.
        let mut garbled = bytes.clone();
        garbled[ends[0] + 30] ^= 0x01;
        let c = decode(&garbled);
        assert!(c.torn && c.runs.is_empty() && c.start_ms == Some(1_000));
    }

    #[test]
    fn crash_after_appends_rebuilds_the_interval_into_its_report_once() {
        let d = tmpdir("appended");
        let ob = outbox(&d, false);
        let mut rec = Recorder::new("kampala", 10_000);
        let mut j = Journal::create(&d, ob.next_seq(), 10_000).unwrap();
        for (t, o) in [(10_500, "ok"), (11_000, "ok"), (11_500, "timeout")] {
            live(&mut j, &mut rec, &run(t, o));
        }
        // Interval 1 is reported; interval 2 gets two runs, then kill -9 (and a half-written third).
        let mut j = close(&ob, &mut rec, j, 12_000);
        live(&mut j, &mut rec, &run(12_400, "ok"));
        live(&mut j, &mut rec, &run(13_100, "gateway_error"));
        append_raw(&d, 2, b"0123456789abcdef {\"run\":{\"finish_ms\":13");
        drop((j, rec, ob));

        let ob = outbox(&d, false);
        let done = recover(&ob, "kla-1", "kampala", &Heartbeat::default()).unwrap();
        assert_eq!(done, vec![Recovery::Rebuilt { seq: 2, runs: 2, start_ms: 12_000, end_ms: 13_100, torn: true }]);
        assert_eq!(
            reported(&d),
            vec![(1, "ok".into(), 2), (1, "timeout".into(), 1), (2, "gateway_error".into(), 1), (2, "ok".into(), 1)]
        );
        let rebuilt = report::decode(&fs::read(d.join("00000000000000000002.report")).unwrap()).unwrap();
        let pay: u64 = rebuilt.series.iter().filter(|s| s.key.step == "pay").map(|s| s.count).sum();
        assert_eq!(pay, 2, "step series are rebuilt too");
        assert_eq!(rebuilt.heartbeat.runs_started, 2);
        assert!(list(&d).unwrap().is_empty(), "the journal went with its report");
        assert_eq!(ob.next_seq(), 3, "the next interval's report comes after the rebuilt one");
        // A second crash right after recovery changes nothing.
        drop(ob);
        let ob = outbox(&d, false);
        assert_eq!(recover(&ob, "kla-1", "kampala", &Heartbeat::default()).unwrap(), vec![]);
        assert_eq!(reported(&d).len(), 4);
    }

    #[test]
    fn crash_after_the_report_before_the_journal_delete_counts_nothing_twice() {
        let d = tmpdir("reported");
        let ob = outbox(&d, false);
        let mut rec = Recorder::new("kampala", 0);
        let mut j = Journal::create(&d, 1, 0).unwrap();
        live(&mut j, &mut rec, &run(100, "ok"));
        live(&mut j, &mut rec, &run(200, "ok"));
        // The report is written, the journal is not deleted yet: kill -9.
        let iv = rec.close(1_000);
        ob.store_at(1, report::encode(&iv.into_report("kla-1", "kampala", 1, Heartbeat::default())), |_| Ok(()))
            .unwrap();
        drop((j, ob));

        let ob = outbox(&d, false);
        assert_eq!(
            recover(&ob, "kla-1", "kampala", &Heartbeat::default()).unwrap(),
            vec![Recovery::AlreadyReported { seq: 1 }]
        );
        assert_eq!(reported(&d), vec![(1, "ok".into(), 2)]);
        assert!(list(&d).unwrap().is_empty());
        assert_eq!(ob.next_seq(), 2);
    }

    #[test]
    fn an_acknowledged_report_is_recognised_in_the_archive_and_the_seq_mark_does_not_hide_a_lost_one() {
        let d = tmpdir("acked");
        let ob = outbox(&d, true);
        let mut rec = Recorder::new("kampala", 0);
        let j = Journal::create(&d, 1, 0).unwrap();
        let mut j = {
            let mut j = j;
            live(&mut j, &mut rec, &run(100, "ok"));
            close(&ob, &mut rec, j, 1_000)
        };
        ob.ack(0, 1).unwrap();
        assert!(d.join("acked/00000000000000000001.report").exists());
        // Interval 2: a run, then the seq mark is written for report 2 but the report is not (kill -9).
        live(&mut j, &mut rec, &run(1_300, "timeout"));
        fs::write(d.join("seq"), "2").unwrap();
        // A stale journal 1 (say its delete was lost with the page cache) reappears too.
        let mut stale = Journal::create(&d, 1, 0).unwrap();
        stale.append(&run(100, "ok")).unwrap();
        drop((j, stale, ob));

        let ob = outbox(&d, true);
        assert_eq!(ob.next_seq(), 3);
        let done = recover(&ob, "kla-1", "kampala", &Heartbeat::default()).unwrap();
        assert_eq!(
            done,
            vec![
                Recovery::AlreadyReported { seq: 1 },
                Recovery::Rebuilt { seq: 2, runs: 1, start_ms: 1_000, end_ms: 1_300, torn: false }
            ]
        );
        assert_eq!(reported(&d), vec![(1, "ok".into(), 1), (2, "timeout".into(), 1)]);
    }

    #[test]
    fn empty_journals_are_removed_and_several_are_settled_in_order() {
        let d = tmpdir("several");
        let ob = outbox(&d, false);
        // A crash during a close: journal 4 (closed, report not written) and 5 (new, one run); 6 empty.
        let mut j4 = Journal::create(&d, 4, 0).unwrap();
        j4.append(&run(500, "ok")).unwrap();
        let mut j5 = Journal::create(&d, 5, 1_000).unwrap();
        j5.append(&run(1_200, "ok")).unwrap();
        j5.append(&run(1_300, "ok")).unwrap();
        Journal::create(&d, 6, 2_000).unwrap();
        fs::write(d.join("journal-x.log"), "not ours").unwrap();
        let done = recover(&ob, "kla-1", "kampala", &Heartbeat::default()).unwrap();
        assert_eq!(
            done,
            vec![
                Recovery::Rebuilt { seq: 4, runs: 1, start_ms: 0, end_ms: 500, torn: false },
                Recovery::Rebuilt { seq: 5, runs: 2, start_ms: 1_000, end_ms: 1_300, torn: false },
                Recovery::Empty { seq: 6 },
            ]
        );
        assert_eq!(ob.pending().unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(ob.next_seq(), 6);
        assert!(list(&d).unwrap().is_empty());
    }
}
