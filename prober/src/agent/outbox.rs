//! The durable outbox: every report is on disk before it is sent, and leaves only when the
//! aggregator acknowledged it (or it was rejected, or a bound dropped it — both counted).
//!
//! Layout of `dir`:
//! - `00000000000000000042.report`: report seq 42, as sent (JSON; `sent_at_ms` is restamped at
//!   each send attempt);
//! - `seq`: the highest sequence number ever handed out, written (and fsync'd) before the report
//!   that uses it, so a seq is never reused, even after the outbox emptied and the prober restarted;
//! - `dropped`: reports dropped by the bounds since the outbox was created;
//! - `rejected/`: reports the aggregator refused, with a `.reason` file each, for a person to look
//!   at (bounded; the oldest go first);
//! - `acked/`: with `keep_acked`, acknowledged reports (an audit trail for tests; unbounded);
//! - `journal-*.log`: the agent's run journals (see `journal`), which the outbox never touches.
//!
//! Writers are serialised: a report leaves the outbox (ack, reject, drop) only after the store
//! that wrote it, including its `after` hook, has returned. The agent's hook deletes the interval's
//! journal, so a journal whose report is not in the outbox is one whose report was never written.
//!
//! Every write is a temp file, fsync, rename, fsync of the directory: a crash leaves the old file
//! or the new one, never half of one. Methods block (file I/O); call them from `spawn_blocking`.

use std::{
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use parking_lot::Mutex;

use super::config::OutboxConfig;

const SUFFIX: &str = ".report";
const TMP_PREFIX: &str = ".tmp-";

/// One waiting report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub bytes: u64,
    pub written: SystemTime,
}

/// Backlog size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub reports: u64,
    pub bytes: u64,
}

#[derive(Debug)]
struct State {
    last_seq: u64,
    dropped_total: u64,
    rejected_total: u64,
}

/// A directory of reports waiting for acknowledgement.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    rejected: PathBuf,
    acked: Option<PathBuf>,
    max_bytes: u64,
    max_age: Duration,
    max_rejected: usize,
    state: Mutex<State>,
    /// Held by every writer (store, ack, reject, drop): see the module doc.
    io: Mutex<()>,
}

impl Outbox {
    /// Opens (creating) the outbox, removes half-written temp files, and recovers the sequence:
    /// the next seq is above every seq in the `seq` file, the outbox and `rejected/`.
    pub fn open(cfg: &OutboxConfig) -> io::Result<Outbox> {
        let dir = cfg.dir.clone();
        let rejected = dir.join("rejected");
        fs::create_dir_all(&rejected).map_err(|e| with_path(e, &rejected))?;
        let acked = dir.join("acked");
        if cfg.keep_acked {
            fs::create_dir_all(&acked).map_err(|e| with_path(e, &acked))?;
        }
        let mut last_seq = read_u64(&dir.join("seq"))?;
        for d in [&dir, &rejected].into_iter().chain(cfg.keep_acked.then_some(&acked)) {
            for e in fs::read_dir(d).map_err(|e| with_path(e, d))? {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(TMP_PREFIX) {
                    let _ = fs::remove_file(e.path());
                } else if let Some(seq) = parse_name(&name) {
                    last_seq = last_seq.max(seq);
                }
            }
        }
        let dropped_total = read_u64(&dir.join("dropped"))?;
        let ob = Outbox {
            dir,
            rejected,
            acked: cfg.keep_acked.then_some(acked),
            max_bytes: cfg.max_bytes,
            max_age: cfg.max_age,
            max_rejected: cfg.max_rejected,
            state: Mutex::new(State { last_seq, dropped_total, rejected_total: 0 }),
            io: Mutex::new(()),
        };
        // Proves the directory is writable before the agent says it is ready.
        write_atomic(&ob.dir, "seq", last_seq.to_string().as_bytes())?;
        Ok(ob)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The seq the next report will get.
    pub fn next_seq(&self) -> u64 {
        self.state.lock().last_seq + 1
    }

    /// Reports dropped by the bounds, ever (kept across restarts).
    pub fn dropped_total(&self) -> u64 {
        self.state.lock().dropped_total
    }

    /// Reports moved to `rejected/` by this process.
    pub fn rejected_total(&self) -> u64 {
        self.state.lock().rejected_total
    }

    /// Allocates the next seq, builds the report with it and stores it durably. The seq is on
    /// disk before the report, so even a crash between the two never reuses it.
    pub fn store(&self, build: impl FnOnce(u64) -> Vec<u8>) -> io::Result<u64> {
        let seq = self.next_seq();
        self.store_at(seq, build(seq), |_| Ok(()))?;
        Ok(seq)
    }

    /// Stores `bytes` as report `seq` (raising the high-water mark to it first), then runs
    /// `after` while no other writer can touch the outbox: report `seq` cannot be acknowledged,
    /// rejected or dropped before `after` returned. The agent passes seqs it reserved for an
    /// interval (its journal's); a seq at or below the mark is only reused when no report with it
    /// was ever written (see `journal::recover`).
    pub fn store_at(&self, seq: u64, bytes: Vec<u8>, after: impl FnOnce(u64) -> io::Result<()>) -> io::Result<()> {
        let _io = self.io.lock();
        let mut st = self.state.lock();
        if seq > st.last_seq {
            write_atomic(&self.dir, "seq", seq.to_string().as_bytes())?;
            st.last_seq = seq;
        }
        drop(st);
        write_atomic(&self.dir, &file_name(seq), &bytes)?;
        after(seq)
    }

    /// Whether report `seq` is here: waiting, rejected, or (with `keep_acked`) acknowledged.
    pub fn contains(&self, seq: u64) -> bool {
        let name = file_name(seq);
        [Some(&self.dir), Some(&self.rejected), self.acked.as_ref()]
            .into_iter()
            .flatten()
            .any(|d| d.join(&name).exists())
    }

    /// Waiting reports, lowest seq first.
    pub fn pending(&self) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir)? {
            let e = e?;
            let Some(seq) = parse_name(&e.file_name().to_string_lossy()) else { continue };
            let Ok(meta) = e.metadata() else { continue }; // removed meanwhile
            out.push(Entry { seq, bytes: meta.len(), written: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH) });
        }
        out.sort_by_key(|e| e.seq);
        Ok(out)
    }

    pub fn stats(&self) -> io::Result<Stats> {
        let p = self.pending()?;
        Ok(Stats { reports: p.len() as u64, bytes: p.iter().map(|e| e.bytes).sum() })
    }

    /// The lowest waiting report and its bytes.
    pub fn oldest(&self) -> io::Result<Option<(u64, Vec<u8>)>> {
        for e in self.pending()? {
            match fs::read(self.dir.join(file_name(e.seq))) {
                Ok(b) => return Ok(Some((e.seq, b))),
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue, // dropped meanwhile
                Err(err) => return Err(err),
            }
        }
        Ok(None)
    }

    /// The aggregator has it: forget it.
    pub fn ack(&self, seq: u64) -> io::Result<()> {
        let _io = self.io.lock();
        let name = file_name(seq);
        let gone = match &self.acked {
            None => fs::remove_file(self.dir.join(&name)),
            Some(acked) => fs::rename(self.dir.join(&name), acked.join(&name)).and_then(|()| sync_dir(acked)),
        };
        match gone {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => sync_dir(&self.dir),
        }
    }

    /// The aggregator refused it: move it to `rejected/` with the reason, keep `max_rejected`.
    pub fn reject(&self, seq: u64, reason: &str) -> io::Result<()> {
        let _io = self.io.lock();
        let name = file_name(seq);
        write_atomic(&self.rejected, &format!("{seq:020}.reason"), reason.as_bytes())?;
        match fs::rename(self.dir.join(&name), self.rejected.join(&name)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
            Ok(()) => {
                sync_dir(&self.rejected)?;
                sync_dir(&self.dir)?;
            }
        }
        self.state.lock().rejected_total += 1;
        let mut kept: Vec<u64> = fs::read_dir(&self.rejected)?
            .filter_map(|e| e.ok().and_then(|e| parse_name(&e.file_name().to_string_lossy())))
            .collect();
        kept.sort_unstable();
        let excess = kept.len().saturating_sub(self.max_rejected);
        for old in &kept[..excess] {
            let _ = fs::remove_file(self.rejected.join(file_name(*old)));
            let _ = fs::remove_file(self.rejected.join(format!("{old:020}.reason")));
        }
        Ok(())
    }

    /// Drops the oldest reports while the outbox is over `max_bytes`, and every report older
    /// than `max_age` at `now`. The newest report always stays. Returns how many were dropped.
    pub fn enforce_limits(&self, now: SystemTime) -> io::Result<u64> {
        let _io = self.io.lock();
        let pending = self.pending()?;
        let mut total: u64 = pending.iter().map(|e| e.bytes).sum();
        let mut dropped = 0;
        let last = pending.len().saturating_sub(1);
        for (i, e) in pending.iter().enumerate() {
            let too_old = now.duration_since(e.written).is_ok_and(|age| age > self.max_age);
            if i == last || !(too_old || total > self.max_bytes) {
                continue;
            }
            match fs::remove_file(self.dir.join(file_name(e.seq))) {
                Ok(()) => {
                    dropped += 1;
                    total -= e.bytes;
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => total -= e.bytes,
                Err(err) => return Err(err),
            }
        }
        if dropped > 0 {
            sync_dir(&self.dir)?;
            let mut st = self.state.lock();
            st.dropped_total += dropped;
            write_atomic(&self.dir, "dropped", st.dropped_total.to_string().as_bytes())?;
        }
        Ok(dropped)
    }
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}{SUFFIX}")
}

fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

fn read_u64(path: &Path) -> io::Result<u64> {
    match fs::read_to_string(path) {
        Ok(s) => s.trim().parse().map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{}: not a number: {:?}", path.display(), s.trim()))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(with_path(e, path)),
    }
}

/// Temp file, fsync, rename over `name`, fsync the directory.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{TMP_PREFIX}{name}"));
    let mut f = File::create(&tmp).map_err(|e| with_path(e, &tmp))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn with_path(e: io::Error, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory, removed when the guard drops.
    fn tmpdir(name: &str) -> testkit::TempDir {
        testkit::temp_dir(&format!("prober-outbox-{name}"))
    }

    fn cfg(dir: &Path, max_bytes: u64) -> OutboxConfig {
        OutboxConfig {
            dir: dir.to_path_buf(),
            max_bytes,
            max_age: Duration::from_secs(3600),
            max_rejected: 2,
            keep_acked: false,
        }
    }

    #[test]
    fn stores_in_order_and_replays_lowest_first() {
        let d = tmpdir("order");
        let ob = Outbox::open(&cfg(&d, 1 << 20)).unwrap();
        for i in 1..=3u64 {
            assert_eq!(ob.store(|seq| format!("report {seq}").into_bytes()).unwrap(), i);
        }
        assert_eq!(ob.oldest().unwrap(), Some((1, b"report 1".to_vec())));
        ob.ack(1).unwrap();
        assert_eq!(ob.oldest().unwrap().unwrap().0, 2);
        assert_eq!(ob.stats().unwrap(), Stats { reports: 2, bytes: 16 });
        ob.ack(1).unwrap(); // a second ack of the same seq is harmless
    }

    #[test]
    fn seq_survives_restart_even_when_the_outbox_emptied() {
        let d = tmpdir("restart");
        {
            let ob = Outbox::open(&cfg(&d, 1 << 20)).unwrap();
            ob.store(|_| b"a".to_vec()).unwrap();
            ob.store(|_| b"b".to_vec()).unwrap();
            ob.ack(1).unwrap();
            ob.ack(2).unwrap();
        }
        let ob = Outbox::open(&cfg(&d, 1 << 20)).unwrap();
        assert_eq!(ob.next_seq(), 3, "acked seqs are never reused");
        assert_eq!(ob.store(|_| b"c".to_vec()).unwrap(), 3);
        // Files above the high-water mark (the seq file lost or old) still push it up.
        fs::write(d.join(file_name(10)), b"x").unwrap();
        fs::write(d.join(".tmp-00000000000000000011.report"), b"half").unwrap();
        let ob = Outbox::open(&cfg(&d, 1 << 20)).unwrap();
        assert_eq!(ob.next_seq(), 11);
        assert!(!d.join(".tmp-00000000000000000011.report").exists(), "half-written temp files are removed");
        assert_eq!(ob.pending().unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 10]);
    }

    #[test]
    fn bounds_drop_the_oldest_and_count_the_drops_across_restarts() {
        let d = tmpdir("bounds");
        let ob = Outbox::open(&cfg(&d, 250)).unwrap();
        for _ in 0..5 {
            ob.store(|_| vec![b'x'; 100]).unwrap();
            ob.enforce_limits(SystemTime::now()).unwrap();
        }
        let left: Vec<u64> = ob.pending().unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(left, vec![4, 5], "the newest fit in 250 bytes");
        assert_eq!(ob.dropped_total(), 3);
        // Age: everything but the newest is dropped an hour and a bit later.
        ob.store(|_| vec![b'y'; 10]).unwrap();
        let later = SystemTime::now() + Duration::from_secs(3601);
        assert_eq!(ob.enforce_limits(later).unwrap(), 2);
        assert_eq!(ob.pending().unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![6]);
        drop(ob);
        let ob = Outbox::open(&cfg(&d, 250)).unwrap();
        assert_eq!(ob.dropped_total(), 5, "the drop count is durable");
    }

    #[test]
    fn rejected_reports_move_aside_with_their_reason_and_stay_bounded() {
        let d = tmpdir("rejected");
        let ob = Outbox::open(&cfg(&d, 1 << 20)).unwrap();
        for _ in 0..4 {
            ob.store(|_| b"r".to_vec()).unwrap();
        }
        for seq in 1..=3 {
            ob.reject(seq, &format!("400: bad {seq}")).unwrap();
        }
        assert_eq!(ob.pending().unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4]);
        assert!(!d.join("rejected").join(file_name(1)).exists(), "bounded to 2: the oldest went");
        assert!(d.join("rejected").join(file_name(3)).exists());
        assert_eq!(fs::read_to_string(d.join("rejected/00000000000000000003.reason")).unwrap(), "400: bad 3");
        assert_eq!(ob.rejected_total(), 3);
        // Rejected seqs count for the high-water mark even if the `seq` file is lost.
        ob.reject(4, "413: too large").unwrap();
        drop(ob);
        fs::remove_file(d.join("seq")).unwrap();
        let ob = Outbox::open(&cfg(&d, 1 << 20)).unwrap();
        assert_eq!(ob.next_seq(), 5);
    }
}
