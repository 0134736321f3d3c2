//! Event counts of one SLO scope by event time: exact per minute for the last three days (every
//! alert window), per hour for the rest of the period. Late events land in the minute (or hour)
//! they happened in, so windows over the past are right once the data arrives.
//!
//! A window W evaluated at `now` covers events whose time is in `(now − W, now]`, at minute
//! resolution: the minutes `⌈now⌉ − W/1m … ⌈now⌉ − 1`. The period window starts at the first whole
//! hour inside it (so it may be up to 59 minutes shorter than the period).

use super::windows::WINDOWS;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
/// Minutes kept exactly: the longest alert window (3 d) plus an hour of slack for late data.
pub const MINUTES_KEPT: usize = 3 * 24 * 60 + 60;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Which minute (or hour) this slot holds, +1 (0 = empty).
    tag: u32,
    total: u32,
    bad: u32,
}

/// Good and bad event counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    pub bad: u64,
}

/// The counts of one scope.
#[derive(Debug, Clone)]
pub struct Ledger {
    minutes: Vec<Slot>,
    hours: Vec<Slot>,
}

/// Minute index of an event: the minute `(m·60 s, (m+1)·60 s]` holds events at those times.
fn minute_of(t_ms: i64) -> i64 {
    (t_ms - 1).div_euclid(MINUTE_MS)
}

impl Ledger {
    /// A ledger for a period of `period_hours`.
    pub fn new(period_hours: usize) -> Ledger {
        Ledger { minutes: vec![Slot::default(); MINUTES_KEPT], hours: vec![Slot::default(); period_hours + 2] }
    }

    /// Memory used, in bytes.
    pub fn bytes(&self) -> usize {
        (self.minutes.len() + self.hours.len()) * std::mem::size_of::<Slot>()
    }

    /// Adds `total` events, `bad` of them bad, that happened at `t_ms`. Counts saturate at u32.
    pub fn add(&mut self, t_ms: i64, total: u64, bad: u64) {
        let m = minute_of(t_ms);
        let h = m.div_euclid(60);
        add_to(&mut self.minutes, m, total, bad);
        add_to(&mut self.hours, h, total, bad);
    }

    /// Counts for each alert window and the period, evaluated at `now_ms`, in the order of
    /// [`WINDOWS`], then the period.
    pub fn windows(&self, now_ms: i64, period_hours: u64) -> ([Counts; WINDOWS.len()], Counts) {
        // The last minute included is the one holding `now`.
        let last = minute_of(now_ms);
        let mut out = [Counts::default(); WINDOWS.len()];
        let mut acc = Counts::default();
        let mut next = 0;
        let longest = WINDOWS[WINDOWS.len() - 1].minutes() as i64;
        for back in 0..longest {
            let m = last - back;
            let s = self.minutes[m.rem_euclid(self.minutes.len() as i64) as usize];
            if s.tag == tag(m) {
                acc.total += u64::from(s.total);
                acc.bad += u64::from(s.bad);
            }
            while next < WINDOWS.len() && back + 1 == WINDOWS[next].minutes() as i64 {
                out[next] = acc;
                next += 1;
            }
        }
        // The period: whole hours from the first hour starting inside it, plus the minutes of the
        // current, unfinished hour.
        let start_ms = now_ms - period_hours as i64 * HOUR_MS;
        // Hour h holds events in (h·1h, (h+1)·1h]: it is whole inside (start, now] when h·1h ≥ start.
        let first_hour = start_ms.div_euclid(HOUR_MS) + i64::from(start_ms.rem_euclid(HOUR_MS) != 0);
        let current_hour = last.div_euclid(60);
        let mut period = Counts::default();
        for h in first_hour..current_hour {
            let s = self.hours[h.rem_euclid(self.hours.len() as i64) as usize];
            if s.tag == tag(h) {
                period.total += u64::from(s.total);
                period.bad += u64::from(s.bad);
            }
        }
        for m in current_hour * 60..=last {
            let s = self.minutes[m.rem_euclid(self.minutes.len() as i64) as usize];
            if s.tag == tag(m) {
                period.total += u64::from(s.total);
                period.bad += u64::from(s.bad);
            }
        }
        (out, period)
    }
}

fn tag(i: i64) -> u32 {
    (i + 1).clamp(1, i64::from(u32::MAX)) as u32
}

fn add_to(ring: &mut [Slot], i: i64, total: u64, bad: u64) {
    let n = ring.len() as i64;
    let s = &mut ring[i.rem_euclid(n) as usize];
    let t = tag(i);
    if s.tag != t {
        if s.tag > t {
            // Older than what the ring holds: too late to count at this resolution.
            return;
        }
        *s = Slot { tag: t, total: 0, bad: 0 };
    }
    s.total = s.total.saturating_add(total.min(u64::from(u32::MAX)) as u32);
    s.bad = s.bad.saturating_add(bad.min(u64::from(u32::MAX)) as u32);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const T0: i64 = 1_795_000_000_000 - 1_795_000_000_000 % HOUR_MS; // an hour boundary

    #[test]
    fn windows_cover_the_minutes_before_now() {
        let mut l = Ledger::new(720);
        // One event per minute for 4 days, 1 in 10 bad.
        for m in 0..(4 * 24 * 60) {
            l.add(T0 + m * MINUTE_MS + 30_000, 1, u64::from(m % 10 == 0));
        }
        let now = T0 + 4 * 24 * 60 * MINUTE_MS;
        let (w, period) = l.windows(now, 720);
        assert_eq!(w[0], Counts { total: 5, bad: 0 }, "5m holds 5 minutes");
        assert_eq!(w[2].total, 60);
        assert_eq!(w[6].total, 3 * 24 * 60);
        assert_eq!(period.total, 4 * 24 * 60, "all four days are inside 30 d");
        assert_eq!(period.bad, (4 * 24 * 60) / 10);
    }

    #[test]
    fn a_window_includes_now_and_excludes_its_start() {
        let mut l = Ledger::new(720);
        let now = T0 + 10 * MINUTE_MS;
        l.add(now, 1, 1); // exactly now: inside
        l.add(now - 5 * MINUTE_MS, 1, 0); // exactly 5 m ago: outside (t−W, t]
        l.add(now - 5 * MINUTE_MS + 1, 1, 0); // just inside
        let (w, _) = l.windows(now, 720);
        assert_eq!(w[0], Counts { total: 2, bad: 1 });
    }

    #[test]
    fn late_data_updates_past_windows_and_data_too_old_is_dropped() {
        let mut l = Ledger::new(720);
        let now = T0 + 10 * 24 * 60 * MINUTE_MS;
        l.add(now - 2 * HOUR_MS, 10, 3); // arrives late, lands 2 h back
        let (w, p) = l.windows(now, 720);
        assert_eq!((w[4], w[2]), (Counts { total: 10, bad: 3 }, Counts::default()), "in 6h, not in 1h");
        assert_eq!(p, Counts { total: 10, bad: 3 });
        // Older than the hour ring can hold: ignored, not mis-attributed.
        l.add(now - 40 * 24 * HOUR_MS, 5, 5);
        assert_eq!(l.windows(now, 720).1, Counts { total: 10, bad: 3 });
    }

    proptest! {
        /// Every window equals a direct count over the events, and windows nest.
        #[test]
        fn windows_equal_a_direct_count(back in prop::collection::vec((0i64..(5 * 24 * 60 * 60_000), 0u64..5, any::<bool>()), 0..300), now_off in 0i64..(5 * 24 * 60 * 60_000)) {
            // Events at or before now (the engine never feeds the future), in any order.
            let mut l = Ledger::new(720);
            let now = T0 + 5 * 24 * 60 * 60_000 + now_off;
            let events: Vec<(i64, u64, bool)> = back.iter().map(|(b, n, bad)| (now - T0 - b, *n, *bad)).collect();
            for (off, n, bad) in &events {
                l.add(T0 + off, *n, if *bad { *n } else { 0 });
            }
            let (w, _) = l.windows(now, 720);
            for (i, win) in WINDOWS.iter().enumerate() {
                let lo = minute_of(now) - win.minutes() as i64; // exclusive, in minutes
                let want: u64 = events.iter()
                    .filter(|(off, _, _)| { let m = minute_of(T0 + off); m > lo && m <= minute_of(now) && m > minute_of(now) - MINUTES_KEPT as i64 })
                    .map(|(_, n, _)| *n).sum();
                prop_assert_eq!(w[i].total, want, "window {}", win);
                if i > 0 { prop_assert!(w[i].total >= w[i - 1].total); }
            }
        }
    }
}
