//! `--report-to URL`: streams the run's histograms to the aggregator as reports labelled with
//! the run id (`run: Some(id)`), which keeps them apart from SLO data. Its series never carry a
//! payment `rail` or `reason` (see docs/report-format.md §2). One report per interval
//! (15 s by default) and one at the end; sent by the agent's client (`POST /api/v1/reports`,
//! Bearer token), each retried a few times.
//!
//! Every shard of a distributed run reports as the same identity (`--prober-id`, bound to the
//! token and `--region` in the aggregator's config), and the aggregator counts a (prober, seq)
//! once. So a report's sequence number must be unique across the shards of a run and across
//! runs: it is the send time in Unix milliseconds (strictly increasing per shard) times one
//! million, plus the shard index ([`sequence`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::{sync::mpsc, task::JoinHandle};

use super::{ReportTo, plan::Shard, stats::Stats};
use crate::agent::sender::{Client, Verdict};

pub struct Reporter {
    cfg: ReportTo,
    /// The millisecond of the last report's sequence number.
    last_ms: u64,
    since_ms: i64,
    tx: mpsc::UnboundedSender<report::Report>,
    task: JoinHandle<()>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The sequence number of a report sent at `ms` (Unix) by `shard`: distinct shards never share
/// one, and a shard's numbers increase with time (the caller keeps `ms` strictly increasing).
/// Fits in the aggregator's i64 until the year 2250.
pub fn sequence(ms: u64, shard: Shard) -> u64 {
    ms * Shard::MAX_COUNT + shard.index
}

/// Profile names may hold `+` (overrides); report labels may not.
fn label(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.:".contains(c) { c } else { '_' }).take(128).collect()
}

impl Reporter {
    pub fn start(cfg: ReportTo) -> Reporter {
        let (tx, mut rx) = mpsc::unbounded_channel::<report::Report>();
        let mut client = Client::new(&cfg.url, cfg.token.clone(), &cfg.extra_roots);
        let task = tokio::spawn(async move {
            while let Some(mut r) = rx.recv().await {
                for attempt in 0..3 {
                    r.sent_at_ms = now_ms();
                    match client.send(report::encode(&r)).await {
                        Verdict::Stored | Verdict::Duplicate => break,
                        Verdict::Rejected { status, reason } => {
                            tracing::error!(status, %reason, seq = r.seq, "the aggregator refused a load report");
                            break;
                        }
                        Verdict::Retry { detail, .. } => {
                            tracing::warn!(%detail, attempt, seq = r.seq, "sending a load report failed; retrying");
                            tokio::time::sleep_until(
                                tokio::time::Instant::now() + Duration::from_millis(500 << attempt),
                            )
                            .await;
                        }
                    }
                }
            }
        });
        Reporter { cfg, last_ms: 0, since_ms: now_ms(), tx, task }
    }

    pub fn every(&self) -> Duration {
        self.cfg.every
    }

    /// Sends what `unreported` holds (and empties it).
    pub fn send(&mut self, names: &[String], unreported: &mut Stats) {
        let end = now_ms().max(self.since_ms + 1);
        let mut series = Vec::new();
        for (i, s) in unreported.series.iter_mut().enumerate() {
            for (class, pair) in s.by_class.iter_mut().enumerate() {
                let Some(pair) = pair else { continue };
                if pair.corrected.is_empty() {
                    continue;
                }
                let key = report::SeriesKey {
                    journey: names[0]
                        .chars()
                        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
                        .take(128)
                        .collect(),
                    step: if i == 0 { String::new() } else { names[i].clone() },
                    outcome: scenarios::Outcome::ALL[class].as_str().to_owned(),
                    region: label(&self.cfg.region),
                    profile: label(&self.cfg.profile),
                    // A load run's statistics are kept per step and outcome only (recording must
                    // not allocate), so its payment steps report no rail or provider code; they
                    // stay apart from SLO data anyway, and their step name says which one it was.
                    rail: String::new(),
                    reason: String::new(),
                };
                series.push(report::Series { key, count: pair.corrected.len(), histogram: (&pair.corrected).into() });
                pair.corrected.reset();
                pair.uncorrected.reset();
            }
        }
        if series.is_empty() {
            return;
        }
        self.last_ms = (end.max(0) as u64).max(self.last_ms + 1);
        let r = report::Report {
            prober: self.cfg.prober.clone(),
            region: self.cfg.region.clone(),
            seq: sequence(self.last_ms, self.cfg.shard),
            interval_start_ms: self.since_ms,
            interval_end_ms: end,
            sent_at_ms: end,
            run: Some(label(&self.cfg.run_id)),
            heartbeat: report::Heartbeat {
                version: env!("CARGO_PKG_VERSION").into(),
                // The aggregator shows the identity idle once two of these pass without a report.
                interval_ms: Some(self.cfg.every.as_millis().min(report::MAX_INTERVAL_MS as u128) as u64),
                ..Default::default()
            },
            series,
        };
        self.since_ms = end;
        let _ = self.tx.send(r);
    }

    /// Waits (bounded by the client's timeouts and three attempts) until every report was sent.
    pub async fn close(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_never_share_a_sequence_number_and_each_one_increases() {
        let (a, b) = (Shard { index: 0, count: 2 }, Shard { index: 1, count: 2 });
        let t = 1_795_000_000_000;
        assert_ne!(sequence(t, a), sequence(t, b));
        assert!(sequence(t + 1, a) > sequence(t, b));
        let last = Shard { index: Shard::MAX_COUNT - 1, count: Shard::MAX_COUNT };
        assert!(sequence(t, last) < sequence(t + 1, a));
        // The aggregator keeps seq as i64: good for a couple of centuries.
        assert!(i64::try_from(sequence(8_000_000_000_000, last)).is_ok());
    }
}
