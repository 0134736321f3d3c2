//! Group commit: every accepted report goes through one writer task, which commits whatever is
//! queued (up to [`MAX_BATCH`] reports) in one transaction with one fsync, then answers each
//! request with its own outcome.
//!
//! While a batch is being committed the next requests queue up, so the batch size follows the
//! load by itself: one report per transaction when reports trickle in (no added wait), hundreds
//! when thousands of probers report at once. The guarantees of one transaction per report stay:
//! a request is answered only after the transaction holding its report committed; a `(prober,
//! seq)` already stored, or stored earlier in the same batch, is a duplicate; and a batch that
//! cannot commit changes nothing and fails every request in it (each prober keeps its report and
//! retries). The exception is a batch refused because a run count would overflow: that is one
//! report's fault, not the store's, so its reports are committed again one per transaction and
//! only the one that overflows is refused.

use std::sync::Arc;

use report::Report;
use tokio::sync::{mpsc, oneshot};

use crate::{
    metrics::Metrics,
    store::{Ingested, Receipt, Store, StoreError},
};

/// Most reports committed in one transaction. Bounds the transaction's size and the time a
/// request waits behind the reports ahead of it.
pub const MAX_BATCH: usize = 256;
/// Reports waiting for the writer; beyond this, requests wait to be queued (backpressure).
pub const QUEUE_DEPTH: usize = 4 * MAX_BATCH;

/// Why a report was not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// The batch holding the report could not commit; nothing of it was applied.
    #[error("{0}")]
    Store(String),
    /// The writer task is gone (panicked, or the server is shutting down).
    #[error("the store writer stopped")]
    Stopped,
    /// The report would make a stored run count overflow; nothing of it was applied.
    #[error("{0}")]
    Overflow(String),
}

impl From<StoreError> for CommitError {
    fn from(e: StoreError) -> CommitError {
        match e {
            StoreError::Overflow(m) => CommitError::Overflow(m),
            e => CommitError::Store(e.to_string()),
        }
    }
}

struct Job {
    report: Arc<Report>,
    receipt: Receipt,
    queued: tokio::time::Instant,
    reply: oneshot::Sender<Result<Ingested, CommitError>>,
}

/// The handle requests use to reach the writer task. The task ends when every handle is dropped.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task on the current runtime.
    pub fn spawn(store: Arc<Store>, metrics: Arc<Metrics>, max_batch: usize) -> Writer {
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH.max(max_batch));
        tokio::spawn(run(store, metrics, rx, max_batch.max(1)));
        Writer { queue }
    }

    /// Queues the report and waits until the batch holding it has committed (or failed).
    pub async fn commit(&self, report: Arc<Report>, receipt: Receipt) -> Result<Ingested, CommitError> {
        let (reply, answer) = oneshot::channel();
        let job = Job { report, receipt, queued: tokio::time::Instant::now(), reply };
        self.queue.send(job).await.map_err(|_| CommitError::Stopped)?;
        answer.await.unwrap_or(Err(CommitError::Stopped))
    }
}

async fn run(store: Arc<Store>, metrics: Arc<Metrics>, mut rx: mpsc::Receiver<Job>, max_batch: usize) {
    let mut jobs = Vec::with_capacity(max_batch);
    // Waits for one report, then takes every report already queued (up to `max_batch`).
    while rx.recv_many(&mut jobs, max_batch).await > 0 {
        let batch = std::mem::take(&mut jobs);
        metrics.batch_reports.observe(batch.len() as f64);
        let s = store.clone();
        let done = tokio::task::spawn_blocking(move || {
            let items: Vec<(&Report, Receipt)> = batch.iter().map(|j| (&*j.report, j.receipt)).collect();
            let results = match s.ingest_batch(&items).map_err(CommitError::from) {
                Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
                // One report's counts overflow: the others must not pay for it.
                Err(CommitError::Overflow(_)) if items.len() > 1 => {
                    items.iter().map(|item| s.ingest(item.0, item.1).map_err(CommitError::from)).collect()
                }
                Err(e) => vec![Err(e); items.len()],
            };
            (batch, results)
        })
        .await;
        // A panicked batch drops its jobs: their requests see `Stopped` and answer 503.
        let Ok((batch, results)) = done else { continue };
        for (job, result) in batch.into_iter().zip(results) {
            if result.is_ok() {
                metrics.commit_seconds.observe(job.queued.elapsed().as_secs_f64());
            }
            let _ = job.reply.send(result); // the request may have gone away
        }
    }
}

#[cfg(test)]
mod tests {
    use testkit::reports::{ReportBuilder, key, series};

    use super::*;
    use crate::store::{Selection, StoreOptions};

    const T0: i64 = 1_700_000_000_000;

    fn report(prober: &str, seq: u64, values_us: &[u64]) -> Arc<Report> {
        Arc::new(
            ReportBuilder::new(prober, "nairobi")
                .seq(seq)
                .ending_at(T0 + 15_000)
                .with(series(key("checkout", "", "ok", "nairobi"), values_us))
                .build(),
        )
    }

    fn receipt() -> Receipt {
        Receipt { received_ms: T0 + 15_000, offset_ms: 0, correction_ms: 0 }
    }

    /// A store in a fresh directory (removed when the guard drops).
    fn open(tag: &str, busy: std::time::Duration) -> (Arc<Store>, testkit::TempDir) {
        let dir = crate::store::tests::temp_dir(tag);
        (Arc::new(Store::open(&dir, StoreOptions { busy_timeout: busy, ..StoreOptions::default() }).unwrap()), dir)
    }

    /// Queues every report before the writer task can run (one poll pass over all the requests on
    /// a current-thread runtime), so they land in one batch; answers in order.
    async fn commit_together(writer: &Writer, reports: &[Arc<Report>]) -> Vec<Result<Ingested, CommitError>> {
        let mut futs: Vec<_> = reports.iter().map(|r| Box::pin(writer.commit(r.clone(), receipt()))).collect();
        let mut out: Vec<Option<Result<Ingested, CommitError>>> = vec![None; futs.len()];
        std::future::poll_fn(|cx| {
            for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
                if o.is_none()
                    && let std::task::Poll::Ready(v) = f.as_mut().poll(cx)
                {
                    *o = Some(v);
                }
            }
            if out.iter().all(Option::is_some) { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
        })
        .await;
        out.into_iter().map(|o| o.expect("every request was answered")).collect()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn duplicates_within_one_batch_count_once() {
        let (store, _dir) = open("batch-dup", std::time::Duration::from_secs(5));
        let metrics = Arc::new(Metrics::new());
        let writer = Writer::spawn(store.clone(), metrics.clone(), MAX_BATCH);
        let a = report("nbo-1", 1, &[10, 20]);
        let b = report("nbo-1", 2, &[30]);
        let out = commit_together(&writer, &[a.clone(), a.clone(), b, a]).await;
        assert_eq!(
            out,
            vec![Ok(Ingested::Stored), Ok(Ingested::Duplicate), Ok(Ingested::Stored), Ok(Ingested::Duplicate)]
        );
        // One batch of four, and the data counted once per (prober, seq).
        assert!(metrics.encode().contains("aggregator_store_batch_reports_count 1"), "{}", metrics.encode());
        assert_eq!(store.counts(&Selection::all(), 0, i64::MAX).unwrap().total, 3);
        assert_eq!(store.probers().unwrap()[0].stored_total, 2);
        // A later replay is a duplicate too.
        let again = writer.commit(report("nbo-1", 2, &[30]), receipt()).await;
        assert_eq!(again, Ok(Ingested::Duplicate));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_that_cannot_commit_acknowledges_nothing() {
        let (store, _dir) = open("batch-fail", std::time::Duration::from_millis(50));
        let metrics = Arc::new(Metrics::new());
        let writer = Writer::spawn(store.clone(), metrics.clone(), MAX_BATCH);
        let reports: Vec<_> = (1..=5).map(|seq| report("nbo-1", seq, &[seq * 100])).collect();
        // Another process holds the write lock: the batch cannot commit.
        let other = rusqlite::Connection::open(store.path()).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let out = commit_together(&writer, &reports).await;
        assert_eq!(out.len(), 5);
        assert!(out.iter().all(|r| matches!(r, Err(CommitError::Store(_)))), "{out:?}");
        assert!(metrics.encode().contains("aggregator_store_batch_reports_count 1"), "{}", metrics.encode());
        other.execute_batch("ROLLBACK").unwrap();
        for seq in 1..=5 {
            assert!(!store.seen("nbo-1", seq).unwrap());
        }
        assert_eq!(store.series_count(), 0);
        // Retried, every report is stored (none is taken for a duplicate).
        let out = commit_together(&writer, &reports).await;
        assert!(out.iter().all(|r| *r == Ok(Ingested::Stored)), "{out:?}");
        assert_eq!(store.counts(&Selection::all(), 0, i64::MAX).unwrap().total, 5);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn only_the_report_that_overflows_a_count_is_refused() {
        let (store, _dir) = open("batch-overflow", std::time::Duration::from_secs(5));
        let metrics = Arc::new(Metrics::new());
        let writer = Writer::spawn(store.clone(), metrics.clone(), MAX_BATCH);
        // Built by hand: the decoder and ingest's bounds would never let this through.
        let mut huge = (*report("nbo-1", 2, &[])).clone();
        huge.series[0].count = 1 << 63;
        let out =
            commit_together(&writer, &[report("nbo-1", 1, &[10]), Arc::new(huge), report("nbo-1", 3, &[20])]).await;
        assert_eq!(out[0], Ok(Ingested::Stored));
        assert!(matches!(&out[1], Err(CommitError::Overflow(m)) if m.contains("2^63")), "{:?}", out[1]);
        assert_eq!(out[2], Ok(Ingested::Stored));
        assert!(!store.seen("nbo-1", 2).unwrap());
        assert_eq!(store.counts(&Selection::all(), 0, i64::MAX).unwrap().total, 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn batches_are_bounded() {
        let (store, _dir) = open("batch-max", std::time::Duration::from_secs(5));
        let metrics = Arc::new(Metrics::new());
        let writer = Writer::spawn(store.clone(), metrics.clone(), 2);
        let reports: Vec<_> = (1..=5).map(|seq| report("nbo-1", seq, &[7])).collect();
        let out = commit_together(&writer, &reports).await;
        assert!(out.iter().all(|r| *r == Ok(Ingested::Stored)), "{out:?}");
        // 2 + 2 + 1.
        assert!(metrics.encode().contains("aggregator_store_batch_reports_count 3"), "{}", metrics.encode());
        assert_eq!(store.counts(&Selection::all(), 0, i64::MAX).unwrap().total, 5);
    }
}
