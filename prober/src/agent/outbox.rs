//! The durable outbox: every report is on disk once, before it is sent to any destination, and
//! leaves only when every destination is past it: acknowledged it, refused it (kept aside), or
//! had it dropped by a bound (counted for that destination).
//!
//! Layout of `dir`:
//! - `00000000000000000042.report`: report seq 42, as stored (JSON; `sent_at_ms` and the
//!   heartbeat's backlog are restamped by each destination's sender at each attempt);
//! - `seq`: the highest sequence number ever handed out, written (and fsync'd) before the report
//!   that uses it, so a seq is never reused, even after the outbox emptied and the prober restarted;
//! - `cursors/<destination>`: one file per destination, `done N` (every report with seq <= N is
//!   finished for that destination) and `dropped M` (reports the bounds dropped before it had
//!   them, since the cursor was created). A destination sends in seq order, so one number is its
//!   whole acknowledgement state;
//! - `rejected/`: reports a destination refused, with a `.reason` file each naming the
//!   destination(s), for a person to look at (bounded; the oldest go first);
//! - `acked/`: with `keep_acked`, reports every destination is past (an audit trail for tests;
//!   unbounded);
//! - `journal-*.log`: the agent's run journals (see `journal`), which the outbox never touches.
//!
//! A report file is deleted once every destination's cursor has reached it. The bounds
//! (`max_bytes` over the files on disk, `max_age` by file time) drop the oldest reports, the
//! newest always stays, and a drop moves only the cursors still below it (the lagging
//! destinations), counting one drop for each of them.
//!
//! **Destinations come and go with the config.** A cursor whose destination is no longer
//! configured is deleted at open; a new destination's cursor starts at the high-water mark (it
//! gets the reports stored from now on, not the backlog others left on disk). An outbox written by
//! the single-destination version (no `cursors/`) opens with every stored report pending for every
//! configured destination, and its old `dropped` count carried over to each. A report stored
//! below a cursor (a journal rebuilt at start-up) moves that cursor back below it: reports are
//! sent at least once, never skipped.
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
const CURSORS: &str = "cursors";

/// One waiting report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub bytes: u64,
    pub written: SystemTime,
}

/// A report to send: its seq and its stored bytes.
pub type Next = (u64, Vec<u8>);

/// Backlog size: of the files on disk ([`Outbox::stats`]) or of one destination
/// ([`Outbox::stats_for`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub reports: u64,
    pub bytes: u64,
    /// When the oldest waiting report was written (none when nothing waits).
    pub oldest: Option<SystemTime>,
}

/// One destination's durable state (its `cursors/<name>` file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Every report with seq <= `done` is finished for this destination.
    pub done: u64,
    /// Reports the bounds dropped before this destination had them.
    pub dropped: u64,
}

#[derive(Debug)]
struct State {
    last_seq: u64,
    rejected_total: u64,
    /// One per destination, in the order of [`Outbox::destinations`].
    cursors: Vec<Cursor>,
}

/// A directory of reports waiting for acknowledgement by one or more destinations.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    rejected: PathBuf,
    acked: Option<PathBuf>,
    cursors_dir: PathBuf,
    names: Vec<String>,
    max_bytes: u64,
    max_age: Duration,
    max_rejected: usize,
    state: Mutex<State>,
    /// Held by every writer (store, ack, reject, drop): see the module doc.
    io: Mutex<()>,
}

impl Outbox {
    /// Opens (creating) the outbox for `destinations` (label-safe names, unique, at least one),
    /// removes half-written temp files, recovers the sequence (above every seq in the `seq` file,
    /// the outbox and `rejected/`), and settles the cursors (see the module doc).
    pub fn open(cfg: &OutboxConfig, destinations: &[String]) -> io::Result<Outbox> {
        assert!(!destinations.is_empty(), "an outbox needs a destination");
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
        let cursors_dir = dir.join(CURSORS);
        let mut ob = Outbox {
            dir,
            rejected,
            acked: cfg.keep_acked.then_some(acked),
            cursors_dir,
            names: destinations.to_vec(),
            max_bytes: cfg.max_bytes,
            max_age: cfg.max_age,
            max_rejected: cfg.max_rejected,
            state: Mutex::new(State { last_seq, rejected_total: 0, cursors: Vec::new() }),
            io: Mutex::new(()),
        };
        // Proves the directory is writable before the agent says it is ready.
        write_atomic(&ob.dir, "seq", last_seq.to_string().as_bytes())?;
        let cursors = ob.open_cursors(last_seq)?;
        ob.state.get_mut().cursors = cursors;
        ob.collect()?;
        Ok(ob)
    }

    /// Reads, creates, migrates and prunes the cursor files (see the module doc).
    fn open_cursors(&self, last_seq: u64) -> io::Result<Vec<Cursor>> {
        if !self.cursors_dir.exists() {
            // The single-destination layout (or a new outbox): everything on disk is pending for
            // every destination. Written as a whole directory, renamed into place, so a crash
            // midway leaves the old layout and the migration runs again.
            let first = self.pending()?.first().map_or(last_seq, |e| e.seq - 1);
            let dropped = read_u64(&self.dir.join("dropped"))?;
            let tmp = self.dir.join(format!("{TMP_PREFIX}{CURSORS}"));
            let _ = fs::remove_dir_all(&tmp);
            fs::create_dir_all(&tmp).map_err(|e| with_path(e, &tmp))?;
            for name in &self.names {
                write_atomic(&tmp, name, &encode_cursor(Cursor { done: first, dropped }))?;
            }
            fs::rename(&tmp, &self.cursors_dir)?;
            sync_dir(&self.dir)?;
        }
        let _ = fs::remove_dir_all(self.dir.join(format!("{TMP_PREFIX}{CURSORS}")));
        let mut cursors = Vec::with_capacity(self.names.len());
        for name in &self.names {
            let path = self.cursors_dir.join(name);
            let c = match fs::read_to_string(&path) {
                Ok(text) => decode_cursor(&text).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("{}: not a cursor: {text:?}", path.display()))
                })?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let c = Cursor { done: last_seq, dropped: 0 };
                    write_atomic(&self.cursors_dir, name, &encode_cursor(c))?;
                    tracing::info!("outbox: new destination `{name}` starts after report seq {last_seq}");
                    c
                }
                Err(e) => return Err(with_path(e, &path)),
            };
            cursors.push(c);
        }
        for e in fs::read_dir(&self.cursors_dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(TMP_PREFIX) || !self.names.contains(&name) {
                if !name.starts_with(TMP_PREFIX) {
                    tracing::info!("outbox: destination `{name}` is no longer configured; its cursor is deleted");
                }
                fs::remove_file(e.path())?;
            }
        }
        sync_dir(&self.cursors_dir)?;
        Ok(cursors)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The destinations' names; a destination is its index in this list.
    pub fn destinations(&self) -> &[String] {
        &self.names
    }

    /// The seq the next report will get.
    pub fn next_seq(&self) -> u64 {
        self.state.lock().last_seq + 1
    }

    /// Destination `dest`'s cursor.
    pub fn cursor(&self, dest: usize) -> Cursor {
        self.state.lock().cursors[dest]
    }

    /// Reports dropped by the bounds before destination `dest` had them (kept across restarts).
    pub fn dropped_total(&self, dest: usize) -> u64 {
        self.cursor(dest).dropped
    }

    /// The most any destination lost to the bounds (the stored report's heartbeat; each sender
    /// stamps its own destination's count).
    pub fn dropped_most(&self) -> u64 {
        self.state.lock().cursors.iter().map(|c| c.dropped).max().unwrap_or(0)
    }

    /// Reports moved to `rejected/` by this process (one per refusal by a destination).
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
    /// was ever written (see `journal::recover`), and a cursor already past it moves back below it.
    pub fn store_at(&self, seq: u64, bytes: Vec<u8>, after: impl FnOnce(u64) -> io::Result<()>) -> io::Result<()> {
        let _io = self.io.lock();
        let mut st = self.state.lock();
        if seq > st.last_seq {
            write_atomic(&self.dir, "seq", seq.to_string().as_bytes())?;
            st.last_seq = seq;
        }
        for (i, c) in st.cursors.iter_mut().enumerate() {
            if c.done >= seq {
                c.done = seq - 1;
                write_atomic(&self.cursors_dir, &self.names[i], &encode_cursor(*c))?;
            }
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

    /// The report files on disk (waiting for at least one destination), lowest seq first.
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

    /// The reports destination `dest` has not finished, lowest seq first.
    pub fn pending_for(&self, dest: usize) -> io::Result<Vec<Entry>> {
        let done = self.cursor(dest).done;
        Ok(self.pending()?.into_iter().filter(|e| e.seq > done).collect())
    }

    /// The files on disk (one copy of each report, whoever waits for it).
    pub fn stats(&self) -> io::Result<Stats> {
        Ok(stats_of(&self.pending()?))
    }

    /// Destination `dest`'s backlog.
    pub fn stats_for(&self, dest: usize) -> io::Result<Stats> {
        Ok(stats_of(&self.pending_for(dest)?))
    }

    /// The lowest report destination `dest` has not finished, and its bytes.
    pub fn next_for(&self, dest: usize) -> io::Result<Option<Next>> {
        Ok(self.next_and_stats(dest)?.0)
    }

    /// [`Outbox::next_for`] and [`Outbox::stats_for`] from one listing of the directory (the
    /// sender asks both before every attempt; a day's backlog is thousands of files).
    pub fn next_and_stats(&self, dest: usize) -> io::Result<(Option<Next>, Stats)> {
        let pending = self.pending_for(dest)?;
        let stats = stats_of(&pending);
        for e in pending {
            match fs::read(self.dir.join(file_name(e.seq))) {
                Ok(b) => return Ok((Some((e.seq, b)), stats)),
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue, // dropped meanwhile
                Err(err) => return Err(err),
            }
        }
        Ok((None, stats))
    }

    /// Destination `dest` has report `seq` (and, sending in order, everything below it): move
    /// its cursor, and forget the reports every destination is past.
    pub fn ack(&self, dest: usize, seq: u64) -> io::Result<()> {
        let _io = self.io.lock();
        self.advance(dest, seq)?;
        self.collect()
    }

    /// Destination `dest` refused report `seq`: keep a copy in `rejected/` with the reason (naming
    /// the destination), move its cursor past it, keep `max_rejected`. The other destinations
    /// still get the report.
    pub fn reject(&self, dest: usize, seq: u64, reason: &str) -> io::Result<()> {
        let _io = self.io.lock();
        let name = file_name(seq);
        let reason_file = format!("{seq:020}.reason");
        let mut why = fs::read_to_string(self.rejected.join(&reason_file)).unwrap_or_default();
        why.push_str(&format!("{}: {reason}\n", self.names[dest]));
        write_atomic(&self.rejected, &reason_file, why.as_bytes())?;
        let last = self.state.lock().cursors.iter().enumerate().all(|(i, c)| i == dest || c.done >= seq);
        let kept = if last {
            // Nobody else waits for it: move it aside, as a single destination always did.
            fs::rename(self.dir.join(&name), self.rejected.join(&name)).map(|()| true)
        } else {
            fs::read(self.dir.join(&name)).and_then(|b| write_atomic(&self.rejected, &name, &b)).map(|()| false)
        };
        match kept {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
            Ok(moved) => {
                sync_dir(&self.rejected)?;
                if moved {
                    sync_dir(&self.dir)?;
                }
            }
        }
        self.state.lock().rejected_total += 1;
        self.advance(dest, seq)?;
        self.collect()?;
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

    /// Drops the oldest reports while the files are over `max_bytes` or older than `max_age` at
    /// `now`, lowest seq first, stopping at the first within both; the newest report always stays.
    /// Each drop moves only the cursors below it. Returns the drops per destination.
    pub fn enforce_limits(&self, now: SystemTime) -> io::Result<Vec<u64>> {
        let _io = self.io.lock();
        let pending = self.pending()?;
        let mut total: u64 = pending.iter().map(|e| e.bytes).sum();
        let mut drops = vec![0u64; self.names.len()];
        let mut upto = None;
        for e in pending.iter().take(pending.len().saturating_sub(1)) {
            let too_old = now.duration_since(e.written).is_ok_and(|age| age > self.max_age);
            if !(too_old || total > self.max_bytes) {
                break;
            }
            total -= e.bytes;
            upto = Some(e.seq);
            for (i, c) in self.state.lock().cursors.iter().enumerate() {
                if c.done < e.seq {
                    drops[i] += 1;
                }
            }
        }
        let Some(upto) = upto else { return Ok(drops) };
        // Cursors first, then the files: a crash between leaves files that the next open collects.
        for (i, n) in drops.iter().enumerate() {
            if *n > 0 {
                let mut st = self.state.lock();
                let c = &mut st.cursors[i];
                c.done = c.done.max(upto);
                c.dropped += n;
                let c = *c;
                drop(st);
                write_atomic(&self.cursors_dir, &self.names[i], &encode_cursor(c))?;
            }
        }
        self.collect()?;
        Ok(drops)
    }

    /// Moves `dest`'s cursor up to `seq` (durably); never down.
    fn advance(&self, dest: usize, seq: u64) -> io::Result<()> {
        let mut st = self.state.lock();
        let c = &mut st.cursors[dest];
        if c.done >= seq {
            return Ok(());
        }
        c.done = seq;
        let c = *c;
        drop(st);
        write_atomic(&self.cursors_dir, &self.names[dest], &encode_cursor(c))
    }

    /// Deletes (or, with `keep_acked`, archives) the reports every destination is past.
    fn collect(&self) -> io::Result<()> {
        let floor = self.state.lock().cursors.iter().map(|c| c.done).min().unwrap_or(0);
        let mut gone = false;
        for e in self.pending()?.iter().take_while(|e| e.seq <= floor) {
            let name = file_name(e.seq);
            let r = match &self.acked {
                None => fs::remove_file(self.dir.join(&name)),
                Some(acked) => fs::rename(self.dir.join(&name), acked.join(&name)),
            };
            match r {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => gone = true,
            }
        }
        if gone {
            if let Some(acked) = &self.acked {
                sync_dir(acked)?;
            }
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

fn stats_of(entries: &[Entry]) -> Stats {
    Stats {
        reports: entries.len() as u64,
        bytes: entries.iter().map(|e| e.bytes).sum(),
        oldest: entries.iter().map(|e| e.written).min(),
    }
}

fn encode_cursor(c: Cursor) -> Vec<u8> {
    format!("done {}\ndropped {}\n", c.done, c.dropped).into_bytes()
}

fn decode_cursor(text: &str) -> Option<Cursor> {
    let mut c = Cursor::default();
    let (mut done, mut dropped) = (false, false);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (k, v) = line.trim().split_once(' ')?;
        let v: u64 = v.trim().parse().ok()?;
        match k {
            "done" => (c.done, done) = (v, true),
            "dropped" => (c.dropped, dropped) = (v, true),
            _ => return None,
        }
    }
    (done && dropped).then_some(c)
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

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    /// One destination, `a`.
    fn open1(dir: &Path, max_bytes: u64) -> Outbox {
        Outbox::open(&cfg(dir, max_bytes), &names(&["a"])).unwrap()
    }

    /// Two destinations, `a` (0) and `b` (1).
    fn open2(dir: &Path, max_bytes: u64) -> Outbox {
        Outbox::open(&cfg(dir, max_bytes), &names(&["a", "b"])).unwrap()
    }

    fn seqs(v: &[Entry]) -> Vec<u64> {
        v.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn stores_in_order_and_replays_lowest_first() {
        let d = tmpdir("order");
        let ob = open1(&d, 1 << 20);
        for i in 1..=3u64 {
            assert_eq!(ob.store(|seq| format!("report {seq}").into_bytes()).unwrap(), i);
        }
        assert_eq!(ob.next_for(0).unwrap(), Some((1, b"report 1".to_vec())));
        ob.ack(0, 1).unwrap();
        assert_eq!(ob.next_for(0).unwrap().unwrap().0, 2);
        let st = ob.stats().unwrap();
        assert_eq!((st.reports, st.bytes), (2, 16));
        ob.ack(0, 1).unwrap(); // a second ack of the same seq is harmless
        assert_eq!(ob.cursor(0).done, 1);
    }

    #[test]
    fn seq_survives_restart_even_when_the_outbox_emptied() {
        let d = tmpdir("restart");
        {
            let ob = open1(&d, 1 << 20);
            ob.store(|_| b"a".to_vec()).unwrap();
            ob.store(|_| b"b".to_vec()).unwrap();
            ob.ack(0, 1).unwrap();
            ob.ack(0, 2).unwrap();
        }
        let ob = open1(&d, 1 << 20);
        assert_eq!(ob.next_seq(), 3, "acked seqs are never reused");
        assert_eq!(ob.store(|_| b"c".to_vec()).unwrap(), 3);
        // Files above the high-water mark (the seq file lost or old) still push it up.
        fs::write(d.join(file_name(10)), b"x").unwrap();
        fs::write(d.join(".tmp-00000000000000000011.report"), b"half").unwrap();
        let ob = open1(&d, 1 << 20);
        assert_eq!(ob.next_seq(), 11);
        assert!(!d.join(".tmp-00000000000000000011.report").exists(), "half-written temp files are removed");
        assert_eq!(seqs(&ob.pending().unwrap()), vec![3, 10]);
    }

    #[test]
    fn bounds_drop_the_oldest_and_count_the_drops_across_restarts() {
        let d = tmpdir("bounds");
        let ob = open1(&d, 250);
        for _ in 0..5 {
            ob.store(|_| vec![b'x'; 100]).unwrap();
            ob.enforce_limits(SystemTime::now()).unwrap();
        }
        assert_eq!(seqs(&ob.pending().unwrap()), vec![4, 5], "the newest fit in 250 bytes");
        assert_eq!(ob.dropped_total(0), 3);
        // Age: everything but the newest is dropped an hour and a bit later.
        ob.store(|_| vec![b'y'; 10]).unwrap();
        let later = SystemTime::now() + Duration::from_secs(3601);
        assert_eq!(ob.enforce_limits(later).unwrap(), vec![2]);
        assert_eq!(seqs(&ob.pending().unwrap()), vec![6]);
        drop(ob);
        let ob = open1(&d, 250);
        assert_eq!(ob.dropped_total(0), 5, "the drop count is durable");
    }

    #[test]
    fn rejected_reports_move_aside_with_their_reason_and_stay_bounded() {
        let d = tmpdir("rejected");
        let ob = open1(&d, 1 << 20);
        for _ in 0..4 {
            ob.store(|_| b"r".to_vec()).unwrap();
        }
        for seq in 1..=3 {
            ob.reject(0, seq, &format!("400: bad {seq}")).unwrap();
        }
        assert_eq!(seqs(&ob.pending().unwrap()), vec![4]);
        assert!(!d.join("rejected").join(file_name(1)).exists(), "bounded to 2: the oldest went");
        assert!(d.join("rejected").join(file_name(3)).exists());
        assert_eq!(fs::read_to_string(d.join("rejected/00000000000000000003.reason")).unwrap(), "a: 400: bad 3\n");
        assert_eq!(ob.rejected_total(), 3);
        // Rejected seqs count for the high-water mark even if the `seq` file is lost.
        ob.reject(0, 4, "413: too large").unwrap();
        drop(ob);
        fs::remove_file(d.join("seq")).unwrap();
        let ob = open1(&d, 1 << 20);
        assert_eq!(ob.next_seq(), 5);
    }

    #[test]
    fn each_destination_has_its_own_cursor_and_a_report_goes_when_all_are_past_it() {
        let d = tmpdir("cursors");
        let ob = open2(&d, 1 << 20);
        for _ in 0..3 {
            ob.store(|seq| format!("r{seq}").into_bytes()).unwrap();
        }
        ob.ack(0, 1).unwrap();
        ob.ack(0, 2).unwrap();
        assert_eq!(seqs(&ob.pending().unwrap()), vec![1, 2, 3], "b has none of them yet");
        assert_eq!(seqs(&ob.pending_for(0).unwrap()), vec![3]);
        assert_eq!(seqs(&ob.pending_for(1).unwrap()), vec![1, 2, 3]);
        assert_eq!(ob.next_for(1).unwrap().unwrap().0, 1, "b starts at its own head");
        ob.ack(1, 1).unwrap();
        assert_eq!(seqs(&ob.pending().unwrap()), vec![2, 3], "report 1 left once both had it");
        let st = ob.stats_for(1).unwrap();
        assert_eq!((st.reports, st.bytes), (2, 4));
        assert!(st.oldest.is_some());
        assert_eq!(fs::read_to_string(d.join("cursors/a")).unwrap(), "done 2\ndropped 0\n");
        assert_eq!(fs::read_to_string(d.join("cursors/b")).unwrap(), "done 1\ndropped 0\n");
        // Restart: the cursors are durable, nothing is pending twice, nothing is forgotten.
        drop(ob);
        let ob = open2(&d, 1 << 20);
        assert_eq!((ob.cursor(0).done, ob.cursor(1).done), (2, 1));
        assert_eq!(seqs(&ob.pending_for(0).unwrap()), vec![3]);
        assert_eq!(seqs(&ob.pending_for(1).unwrap()), vec![2, 3]);
        ob.ack(1, 3).unwrap();
        ob.ack(0, 3).unwrap();
        assert!(ob.pending().unwrap().is_empty());
        assert_eq!(ob.stats_for(0).unwrap(), Stats::default());
    }

    #[test]
    fn the_bounds_drop_only_for_the_lagging_destination_and_count_it_there() {
        let d = tmpdir("lagging");
        let ob = open2(&d, 250);
        for _ in 0..5 {
            let seq = ob.store(|_| vec![b'x'; 100]).unwrap();
            ob.ack(0, seq).unwrap(); // a keeps up; b is down
            ob.enforce_limits(SystemTime::now()).unwrap();
        }
        assert_eq!(seqs(&ob.pending().unwrap()), vec![4, 5], "the disk holds what fits in 250 bytes");
        assert_eq!(seqs(&ob.pending_for(1).unwrap()), vec![4, 5]);
        assert!(ob.pending_for(0).unwrap().is_empty());
        assert_eq!((ob.dropped_total(0), ob.dropped_total(1)), (0, 3), "only b lost reports");
        assert_eq!(ob.dropped_most(), 3);
        // By age: a is current, so only b's cursor moves.
        let later = SystemTime::now() + Duration::from_secs(3601);
        ob.store(|_| vec![b'y'; 10]).unwrap();
        assert_eq!(ob.enforce_limits(later).unwrap(), vec![0, 2]);
        assert_eq!(seqs(&ob.pending_for(1).unwrap()), vec![6]);
        assert_eq!(seqs(&ob.pending_for(0).unwrap()), vec![6]);
        drop(ob);
        let ob = open2(&d, 250);
        assert_eq!((ob.dropped_total(0), ob.dropped_total(1)), (0, 5), "per destination, durable");
    }

    #[test]
    fn a_refusal_by_one_destination_leaves_the_report_to_the_others() {
        let d = tmpdir("reject-one");
        let ob = open2(&d, 1 << 20);
        ob.store(|_| b"r1".to_vec()).unwrap();
        ob.store(|_| b"r2".to_vec()).unwrap();
        ob.reject(1, 1, "HTTP 400: bad").unwrap();
        assert_eq!(fs::read_to_string(d.join("rejected/00000000000000000001.reason")).unwrap(), "b: HTTP 400: bad\n");
        assert_eq!(fs::read(d.join("rejected").join(file_name(1))).unwrap(), b"r1", "a copy is kept aside");
        assert_eq!(ob.next_for(0).unwrap(), Some((1, b"r1".to_vec())), "a still gets it");
        assert_eq!(ob.next_for(1).unwrap().unwrap().0, 2, "b goes on with the next");
        ob.reject(0, 1, "HTTP 413: too large").unwrap();
        assert_eq!(
            fs::read_to_string(d.join("rejected/00000000000000000001.reason")).unwrap(),
            "b: HTTP 400: bad\na: HTTP 413: too large\n"
        );
        assert_eq!(seqs(&ob.pending().unwrap()), vec![2], "refused by both: gone from the outbox");
    }

    #[test]
    fn an_outbox_of_the_single_destination_version_opens_with_everything_pending_for_all() {
        let d = tmpdir("legacy");
        // The old layout: reports, `seq`, `dropped`, no `cursors/`.
        fs::create_dir_all(d.join("rejected")).unwrap();
        for seq in [4u64, 5, 7] {
            fs::write(d.join(file_name(seq)), format!("r{seq}")).unwrap();
        }
        fs::write(d.join("seq"), "8").unwrap();
        fs::write(d.join("dropped"), "2").unwrap();
        // A migration that crashed midway left a half-made cursors directory aside.
        fs::create_dir_all(d.join(".tmp-cursors")).unwrap();
        fs::write(d.join(".tmp-cursors/a"), "done 8\ndropped 0\n").unwrap();
        let ob = open2(&d, 1 << 20);
        for dest in 0..2 {
            assert_eq!(seqs(&ob.pending_for(dest).unwrap()), vec![4, 5, 7], "destination {dest}");
            assert_eq!(ob.cursor(dest), Cursor { done: 3, dropped: 2 });
        }
        assert_eq!(ob.next_seq(), 9);
        assert!(!d.join(".tmp-cursors").exists());
        // Reopening keeps the cursors (no second migration).
        ob.ack(0, 5).unwrap();
        drop(ob);
        let ob = open2(&d, 1 << 20);
        assert_eq!(ob.cursor(0).done, 5);
        assert_eq!(ob.cursor(1).done, 3);
    }

    #[test]
    fn a_new_destination_starts_now_and_a_removed_one_lets_its_backlog_go() {
        let d = tmpdir("reconfig");
        let ob = open1(&d, 1 << 20);
        ob.store(|_| b"r1".to_vec()).unwrap();
        ob.store(|_| b"r2".to_vec()).unwrap();
        drop(ob);
        // b added: it starts after the high-water mark; a keeps its backlog.
        let ob = open2(&d, 1 << 20);
        assert_eq!(ob.cursor(1).done, 2);
        assert!(ob.pending_for(1).unwrap().is_empty());
        assert_eq!(seqs(&ob.pending_for(0).unwrap()), vec![1, 2]);
        ob.store(|_| b"r3".to_vec()).unwrap();
        assert_eq!(seqs(&ob.pending_for(1).unwrap()), vec![3]);
        drop(ob);
        // a removed: its cursor goes, and so does what only a waited for.
        let ob = Outbox::open(&cfg(&d, 1 << 20), &names(&["b"])).unwrap();
        assert!(!d.join("cursors/a").exists());
        assert_eq!(seqs(&ob.pending().unwrap()), vec![3]);
    }

    #[test]
    fn a_report_stored_below_a_cursor_moves_the_cursor_back() {
        let d = tmpdir("below");
        let ob = open2(&d, 1 << 20);
        ob.store(|_| b"r1".to_vec()).unwrap();
        ob.store(|_| b"r2".to_vec()).unwrap();
        ob.ack(0, 2).unwrap();
        // Seq 2 rebuilt from a journal (say): a must get it again rather than skip it.
        ob.store_at(2, b"r2'".to_vec(), |_| Ok(())).unwrap();
        assert_eq!(ob.cursor(0).done, 1);
        assert_eq!(ob.next_for(0).unwrap(), Some((2, b"r2'".to_vec())));
    }
}
