//! What a load run measures, in memory bounded by histograms (never by the number of requests).
//!
//! A run has series: index 0 is the iteration (the whole journey, or the one request of a URL
//! run), 1.. are the journey's steps. Each series keeps, per outcome class, two HDR histograms in
//! the fleet configuration ([`report::new_histogram`], µs): latency from the *intended* start
//! (corrected for coordinated omission) and from the actual send (uncorrected). Histograms are
//! created on first use and reused: recording never allocates.
//!
//! Workers record into a few shards of [`Shards`] (one per runtime thread); the collector drains the shards
//! once per interval into the interval histograms (for `--log` and reports) and the run's totals.

use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use scenarios::Outcome;

/// The outcome classes, in [`Outcome::ALL`] order.
pub const CLASSES: usize = Outcome::ALL.len();

pub fn class_index(o: Outcome) -> usize {
    Outcome::ALL.iter().position(|&x| x == o).expect("every outcome is in ALL")
}

/// Latency of one series and one outcome class.
#[derive(Clone)]
pub struct Pair {
    pub corrected: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
}

impl Pair {
    fn new() -> Pair {
        Pair { corrected: report::new_histogram(), uncorrected: report::new_histogram() }
    }
}

/// One series: per outcome class, its histograms (absent until the class occurs).
#[derive(Clone, Default)]
pub struct SeriesStats {
    pub by_class: [Option<Box<Pair>>; CLASSES],
}

impl SeriesStats {
    #[inline]
    pub fn record(&mut self, outcome: Outcome, corrected: Duration, uncorrected: Duration) {
        let pair = self.by_class[class_index(outcome)].get_or_insert_with(|| Box::new(Pair::new()));
        report::record(&mut pair.corrected, corrected);
        report::record(&mut pair.uncorrected, uncorrected);
    }

    /// Iterations of each class.
    pub fn counts(&self) -> [u64; CLASSES] {
        std::array::from_fn(|i| self.by_class[i].as_ref().map_or(0, |p| p.corrected.len()))
    }

    pub fn count(&self) -> u64 {
        self.counts().iter().sum()
    }

    /// Failures (everything but `ok` and `expected`).
    pub fn errors(&self) -> u64 {
        Outcome::ALL.iter().zip(self.counts()).filter(|(o, _)| !o.is_good()).map(|(_, c)| c).sum()
    }

    /// All classes merged (corrected, uncorrected).
    pub fn merged(&self) -> Pair {
        let mut out = Pair::new();
        for p in self.by_class.iter().flatten() {
            out.corrected.add(&p.corrected).expect("same configuration");
            out.uncorrected.add(&p.uncorrected).expect("same configuration");
        }
        out
    }

    /// Adds `other` into self, and empties `other` (keeping its allocations).
    pub fn drain_from(&mut self, other: &mut SeriesStats) {
        for (mine, theirs) in self.by_class.iter_mut().zip(other.by_class.iter_mut()) {
            if let Some(t) = theirs
                && !t.corrected.is_empty()
            {
                let m = mine.get_or_insert_with(|| Box::new(Pair::new()));
                m.corrected.add(&t.corrected).expect("same configuration");
                m.uncorrected.add(&t.uncorrected).expect("same configuration");
                t.corrected.reset();
                t.uncorrected.reset();
            }
        }
    }

    pub fn add(&mut self, other: &SeriesStats) {
        for (mine, theirs) in self.by_class.iter_mut().zip(other.by_class.iter()) {
            if let Some(t) = theirs
                && !t.corrected.is_empty()
            {
                let m = mine.get_or_insert_with(|| Box::new(Pair::new()));
                m.corrected.add(&t.corrected).expect("same configuration");
                m.uncorrected.add(&t.uncorrected).expect("same configuration");
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_class.iter().flatten().all(|p| p.corrected.is_empty())
    }
}

/// Every series of a run (or of an interval).
#[derive(Clone)]
pub struct Stats {
    pub series: Vec<SeriesStats>,
    /// Open model: actual start − intended start of every started arrival (µs).
    pub lateness: Histogram<u64>,
}

impl Stats {
    pub fn new(series: usize) -> Stats {
        Stats { series: vec![SeriesStats::default(); series], lateness: report::new_histogram() }
    }

    pub fn drain_from(&mut self, other: &mut Stats) {
        for (m, t) in self.series.iter_mut().zip(other.series.iter_mut()) {
            m.drain_from(t);
        }
        if !other.lateness.is_empty() {
            self.lateness.add(&other.lateness).expect("same configuration");
            other.lateness.reset();
        }
    }

    pub fn add(&mut self, other: &Stats) {
        for (m, t) in self.series.iter_mut().zip(other.series.iter()) {
            m.add(t);
        }
        self.lateness.add(&other.lateness).expect("same configuration");
    }
}

/// Where workers record: one lock per runtime thread, held for a few nanoseconds per record.
pub struct Shards {
    shards: Vec<Mutex<Stats>>,
}

impl Shards {
    pub fn new(count: usize, series: usize) -> Shards {
        Shards { shards: (0..count.max(1)).map(|_| Mutex::new(Stats::new(series))).collect() }
    }

    pub fn get(&self, worker: usize) -> &Mutex<Stats> {
        &self.shards[worker % self.shards.len()]
    }

    /// Moves everything recorded so far into `into`.
    pub fn drain_into(&self, into: &mut Stats) {
        for s in &self.shards {
            into.drain_from(&mut s.lock());
        }
    }
}

/// min/mean/percentiles of one histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Latency {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }

    /// A percentile by name (`p95`, `p99.9`, `min`, `max`, `mean`, `avg`), in ms.
    pub fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
        if h.is_empty() { 0.0 } else { ms(h.value_at_quantile(q)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_and_draining_keep_every_count() {
        let shards = Shards::new(2, 2);
        for i in 0..1000u64 {
            let o = if i % 10 == 0 { Outcome::GatewayError } else { Outcome::Ok };
            shards.get(i as usize).lock().series[0].record(
                o,
                Duration::from_micros(100 + i),
                Duration::from_micros(90),
            );
        }
        let mut total = Stats::new(2);
        shards.drain_into(&mut total);
        assert_eq!(total.series[0].count(), 1000);
        assert_eq!(total.series[0].errors(), 100);
        assert!(total.series[1].is_empty());
        // Drained: a second drain adds nothing.
        shards.drain_into(&mut total);
        assert_eq!(total.series[0].count(), 1000);
        let m = total.series[0].merged();
        assert_eq!(m.uncorrected.max(), 90);
        assert!(m.corrected.max() >= 1099);
    }
}
