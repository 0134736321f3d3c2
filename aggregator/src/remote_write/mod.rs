//! Prometheus remote write 1.0: every `remote_write[i].interval`, the series `/metrics` serves are
//! written to each receiver (Mimir, Cortex, Thanos Receive, VictoriaMetrics, Prometheus with
//! `--web.enable-remote-write-receiver`), stamped with the time they were read on the
//! aggregator's clock (in ms, as a scrape would stamp them). docs/remote-write.md.
//!
//! - [`series`]: the pure part: the exposition as sorted series, the replica and external labels
//!   added, in protobuf + snappy (block format) batches.
//! - [`proto`]: the 1.0 messages.
//! - [`RemoteWriter`]: one receiver: a bounded queue of batches (when full the oldest is dropped
//!   and counted, `reason="queue_full"`), one sender task sending them in order, retrying 5xx,
//!   429 (after its `Retry-After`) and no answer with exponential backoff and jitter, and
//!   dropping what any other 4xx refuses (`reason="rejected_4xx"`: sending it again cannot
//!   help). Reading the series runs on a blocking thread; ingest and alerting never wait for it.
//!
//! Requests go through the one HTTP client ([`crate::client::HttpClient`]) with the documented
//! headers: `Content-Encoding: snappy`, `Content-Type: application/x-protobuf`,
//! `X-Prometheus-Remote-Write-Version: 0.1.0`, and a `User-Agent`.

pub mod proto;
pub mod series;

use std::{collections::VecDeque, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderValue, Request, header};
use http_body_util::Full;
use parking_lot::Mutex;
use tokio::{sync::watch, time::Instant};

use crate::{
    client::{ClientError, ClientOptions, HttpClient},
    clock::SharedClock,
    config::{RemoteAuth, RemoteWriteConfig},
    metrics::{Metrics, RemoteCodeLabels, RemoteDropLabels, RemoteLabels},
};
pub use series::LabelRules;

/// The first retry waits about this long; each further one twice as long, up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The longest `Retry-After` honoured (a longer one waits this long, then tries again).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Where the series come from: the `/metrics` exposition (OpenMetrics text), or none if it could
/// not be rendered.
pub type Source = Arc<dyn Fn() -> Option<String> + Send + Sync>;

struct Batch {
    body: Bytes,
    samples: u64,
    queued: Instant,
}

/// One remote-write receiver.
pub struct RemoteWriter {
    config: RemoteWriteConfig,
    rules: LabelRules,
    client: HttpClient,
    metrics: Arc<Metrics>,
    labels: RemoteLabels,
    queue: Mutex<VecDeque<Batch>>,
    /// 1 while a batch is being sent (it counts in the queue gauge).
    in_flight: Mutex<usize>,
    wake: tokio::sync::Notify,
    /// Jitter's generator (splitmix64), seeded from the receiver's name and the start time.
    jitter: Mutex<u64>,
}

/// What one attempt came to.
enum Attempt {
    Sent,
    /// Worth another try, after at least this long (429's `Retry-After`).
    Retry(Option<Duration>),
    /// Refused for good.
    Rejected,
}

impl RemoteWriter {
    /// A writer for `config`; `replica` is the HA pair member's name, when set.
    pub fn new(config: RemoteWriteConfig, replica: Option<&str>, metrics: Arc<Metrics>) -> Arc<RemoteWriter> {
        let rules = LabelRules {
            replica: replica.map(|r| (config.replica_label.clone(), r.to_owned())),
            external: config.external_labels.clone(),
        };
        let client = HttpClient::new(ClientOptions {
            timeout: config.timeout,
            max_body: 64 * 1024,
            user_agent: concat!("savanna-pulse-aggregator/", env!("CARGO_PKG_VERSION")).to_owned(),
            ..ClientOptions::default()
        });
        let labels = RemoteLabels { remote: config.name.clone() };
        let seed = config.name.bytes().fold(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
            |h, b| h.rotate_left(5) ^ u64::from(b),
        );
        // Every family of this receiver exists from the start (a rate() over it needs a zero).
        let _ = metrics.remote_write_samples.get_or_create(&labels);
        let _ = metrics.remote_write_retries.get_or_create(&labels);
        let _ = metrics.remote_write_queue_batches.get_or_create(&labels);
        for reason in ["queue_full", "rejected_4xx"] {
            let _ = metrics
                .remote_write_samples_dropped
                .get_or_create(&RemoteDropLabels { remote: config.name.clone(), reason: reason.into() });
        }
        Arc::new(RemoteWriter {
            config,
            rules,
            client,
            metrics,
            labels,
            queue: Mutex::default(),
            in_flight: Mutex::new(0),
            wake: tokio::sync::Notify::new(),
            jitter: Mutex::new(seed),
        })
    }

    pub fn config(&self) -> &RemoteWriteConfig {
        &self.config
    }

    /// Batches waiting or being sent.
    pub fn queued(&self) -> usize {
        self.queue.lock().len() + *self.in_flight.lock()
    }

    /// Queues the series of `exposition` stamped `at_ms`; when the queue is full the oldest
    /// waiting batches are dropped and counted. Returns the samples queued.
    pub fn enqueue(&self, exposition: &str, at_ms: i64) -> u64 {
        let series = match series::series(exposition, &self.rules, at_ms) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(remote = %self.config.name, error = %e, "the exposition could not be read; nothing written");
                return 0;
            }
        };
        let mut queued = 0;
        let mut q = self.queue.lock();
        for (body, samples) in series::batches(series) {
            q.push_back(Batch { body: Bytes::from(body), samples, queued: Instant::now() });
            queued += samples;
        }
        while q.len() + *self.in_flight.lock() > self.config.queue_capacity && !q.is_empty() {
            let old = q.pop_front().expect("not empty");
            self.dropped("queue_full", old.samples);
        }
        self.metrics
            .remote_write_queue_batches
            .get_or_create(&self.labels)
            .set((q.len() + *self.in_flight.lock()) as i64);
        drop(q);
        self.wake.notify_one();
        queued
    }

    /// A number in [0, 1).
    fn unit_random(&self) -> f64 {
        let mut s = self.jitter.lock();
        *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as f64 / (u64::MAX as f64 + 1.0)
    }

    fn dropped(&self, reason: &str, samples: u64) {
        self.metrics
            .remote_write_samples_dropped
            .get_or_create(&RemoteDropLabels { remote: self.config.name.clone(), reason: reason.into() })
            .inc_by(samples);
    }

    /// Reads `source` every interval (absolute deadlines) and queues it, while a sender task
    /// delivers the queue; both stop on `stop`.
    pub async fn run(self: Arc<Self>, source: Source, clock: SharedClock, mut stop: watch::Receiver<bool>) {
        let sender = tokio::spawn(self.clone().send_loop(stop.clone()));
        let every = self.config.interval;
        let mut next = Instant::now() + every;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                _ = stop.changed() => break,
            }
            let src = source.clone();
            let at_ms = clock.now_ms();
            if let Ok(Some(text)) = tokio::task::spawn_blocking(move || src()).await {
                let me = self.clone();
                // Parsing and compressing thousands of series: off the runtime's workers too.
                let _ = tokio::task::spawn_blocking(move || me.enqueue(&text, at_ms)).await;
            }
            let now = Instant::now();
            next += every;
            if next <= now {
                next = now + every;
            }
        }
        let _ = sender.await;
    }

    /// Sends the queue in order until `stop`.
    pub async fn send_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let next = {
                let mut q = self.queue.lock();
                let b = q.pop_front();
                if b.is_some() {
                    *self.in_flight.lock() = 1;
                }
                b
            };
            let Some(batch) = next else {
                tokio::select! {
                    () = self.wake.notified() => continue,
                    _ = stop.changed() => return,
                }
            };
            let stopped = self.deliver(&batch, &mut stop).await;
            *self.in_flight.lock() = 0;
            self.metrics.remote_write_queue_batches.get_or_create(&self.labels).set(self.queued() as i64);
            if stopped {
                return;
            }
        }
    }

    /// Sends one batch, retrying while that can help and the batch is younger than the queue's
    /// span (`queue_capacity` intervals: older, the queue would have dropped it). True if `stop`
    /// came first.
    async fn deliver(&self, batch: &Batch, stop: &mut watch::Receiver<bool>) -> bool {
        let lifetime = self.config.interval.saturating_mul(self.config.queue_capacity as u32);
        let mut backoff = MIN_BACKOFF;
        loop {
            match self.attempt(batch).await {
                Attempt::Sent => {
                    self.metrics.remote_write_samples.get_or_create(&self.labels).inc_by(batch.samples);
                    let now_s = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64());
                    self.metrics.remote_write_last_success.get_or_create(&self.labels).set(now_s);
                    return false;
                }
                Attempt::Rejected => {
                    self.dropped("rejected_4xx", batch.samples);
                    return false;
                }
                Attempt::Retry(after) => {
                    if batch.queued.elapsed() >= lifetime {
                        self.dropped("queue_full", batch.samples);
                        return false;
                    }
                    self.metrics.remote_write_retries.get_or_create(&self.labels).inc();
                    // Full jitter over the upper half, so a pair of replicas does not retry in step.
                    let jittered = backoff.mul_f64(0.5 + 0.5 * self.unit_random());
                    let wait = after.map_or(jittered, |a| a.min(MAX_RETRY_AFTER).max(jittered));
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => return true,
                    }
                }
            }
        }
    }

    async fn attempt(&self, batch: &Batch) -> Attempt {
        let req = match self.request(batch) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(remote = %self.config.name, error = %e, "the remote-write request could not be built");
                return Attempt::Rejected;
            }
        };
        let code = |c: &str| RemoteCodeLabels { remote: self.config.name.clone(), code: c.to_owned() };
        let name = &self.config.name;
        match self.client.send(req).await {
            Ok(resp) => {
                let status = resp.status;
                self.metrics.remote_write_requests.get_or_create(&code(status.as_str())).inc();
                if status.is_success() {
                    Attempt::Sent
                } else if status.as_u16() == 429 || status.is_server_error() {
                    tracing::warn!(remote = %name, %status, "the receiver did not take the batch; retrying");
                    Attempt::Retry(retry_after(&resp.headers))
                } else {
                    let excerpt: String = String::from_utf8_lossy(&resp.body).chars().take(200).collect();
                    tracing::error!(remote = %name, %status, reply = %excerpt.escape_debug(), "the receiver refused the batch; dropped (not retried)");
                    Attempt::Rejected
                }
            }
            Err(e) => {
                let c = if matches!(e, ClientError::Timeout { .. }) { "timeout" } else { "connect" };
                self.metrics.remote_write_requests.get_or_create(&code(c)).inc();
                tracing::warn!(remote = %name, error = %crate::client::error_chain(&e), "remote write failed; retrying");
                Attempt::Retry(None)
            }
        }
    }

    fn request(&self, batch: &Batch) -> Result<Request<Full<Bytes>>, http::Error> {
        let mut b = Request::post(self.config.url.clone())
            .header(header::CONTENT_ENCODING, "snappy")
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0");
        for (name, value) in &self.config.headers {
            b = b.header(name, secret_value(value.expose())?);
        }
        match &self.config.auth {
            Some(RemoteAuth::Basic { username, password }) => {
                use base64::Engine as _;
                let pair =
                    base64::engine::general_purpose::STANDARD.encode(format!("{username}:{}", password.expose()));
                b = b.header(header::AUTHORIZATION, secret_value(&format!("Basic {pair}"))?);
            }
            Some(RemoteAuth::Bearer(t)) => {
                b = b.header(header::AUTHORIZATION, secret_value(&format!("Bearer {}", t.expose()))?);
            }
            None => {}
        }
        b.body(Full::new(batch.body.clone()))
    }
}

/// A header value marked sensitive (never shown by `Debug`).
fn secret_value(v: &str) -> Result<HeaderValue, http::Error> {
    let mut h = HeaderValue::from_str(v).map_err(http::Error::from)?;
    h.set_sensitive(true);
    Ok(h)
}

/// `Retry-After` in seconds (an HTTP date is not honoured: the backoff applies).
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let s = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds() {
        let mut h = http::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), None);
    }
}
