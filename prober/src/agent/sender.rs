//! Sends the outbox to one aggregator (a destination), lowest seq first, and moves that
//! destination's cursor only when the aggregator acknowledged a report. The agent runs one
//! [`Sender`] per destination, each with its own connection, backoff and cursor, so a destination
//! that is down never slows the others and catches up by itself, in order, when it is back.
//!
//! The contract (`POST {aggregator.url}/api/v1/reports`, `Authorization: Bearer <token>`, body
//! = the encoded report with `sent_at_ms` stamped at each attempt; reply JSON
//! `{"status": "...", "reason": "..."}`):
//! - 200 with status `stored` or `duplicate`: acknowledged → this destination's cursor moves past
//!   it (the file goes once every destination is past it);
//! - 408, 429, 5xx, network and TLS errors, timeouts, anything unexpected: retried with
//!   exponential backoff and full jitter (capped), honouring `Retry-After`;
//! - 401 and 403 (credentials or identity): retried like an outage, and logged as an error. A
//!   token mistake is fixed on one side or the other; until then every report stays in the outbox
//!   (bounded by its size and age limits, with drops counted) instead of being thrown away;
//! - any other 4xx (400 malformed, 413 too large): rejected → a copy kept in the outbox's
//!   `rejected/` with the reason and the destination's name, counted, never retried in a loop;
//!   the other destinations still get the report.
//!
//! HTTP/2 over TLS (rustls, ALPN `h2` preferred, `http/1.1` accepted) for `https://`; HTTP/1.1
//! for `http://` (loopback demos and tests). The token never reaches logs or errors.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustls::pki_types::{CertificateDer, ServerName};
use scenarios::journey::Secret;
use tokio::{
    net::TcpStream,
    sync::{Notify, watch},
    time::{Instant, sleep_until, timeout},
};

use super::{
    blocking,
    clock::Clock,
    metrics::{DestReasonLabels, Metrics},
    outbox::Outbox,
};

/// Path of the ingest endpoint under the aggregator's base URL.
pub const REPORTS_PATH: &str = "/api/v1/reports";
/// Limit for one attempt (connect, TLS, request, reply).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// First retry delay bound, and the cap.
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// What the aggregator said about one report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Stored,
    Duplicate,
    /// Refused for good: do not send it again.
    Rejected {
        status: u16,
        reason: String,
    },
    /// Try again later. `reason` is a short metric label.
    Retry {
        reason: &'static str,
        detail: String,
        after: Option<Duration>,
    },
}

enum Conn {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// An HTTP client for one aggregator, keeping one connection open between sends.
pub struct Client {
    endpoint: Uri,
    host: String,
    port: u16,
    authority: String,
    token: Secret,
    tls: Option<Arc<rustls::ClientConfig>>,
    conn: Option<Conn>,
}

impl Client {
    pub fn new(base: &Uri, token: Secret, extra_roots: &[CertificateDer<'static>]) -> Client {
        let https = base.scheme_str() == Some("https");
        let host = base.host().unwrap_or("127.0.0.1").trim_matches(['[', ']']).to_owned();
        let port = base.port_u16().unwrap_or(if https { 443 } else { 80 });
        let prefix = base.path().trim_end_matches('/');
        let authority = base.authority().map_or_else(|| host.clone(), |a| a.to_string());
        let endpoint = format!("{}://{authority}{prefix}{REPORTS_PATH}", if https { "https" } else { "http" })
            .parse()
            .expect("built from a valid URI");
        Client { endpoint, host, port, authority, token, tls: https.then(|| tls_config(extra_roots)), conn: None }
    }

    pub fn endpoint(&self) -> &Uri {
        &self.endpoint
    }

    /// Sends one encoded report and classifies the reply. A kept connection the aggregator closed
    /// while idle can fail the request before the close is seen (the race every keep-alive client
    /// has); reports are idempotent by (prober, seq), so that one is sent once more at once, on a
    /// new connection.
    pub async fn send(&mut self, body: Vec<u8>) -> Verdict {
        let reused = self.conn.is_some();
        let body = Bytes::from(body);
        let v = self.send_once(body.clone()).await;
        if reused && matches!(v, Verdict::Retry { reason: "network", .. }) {
            tracing::debug!("the kept connection to the aggregator failed; sending again on a new one");
            return self.send_once(body).await;
        }
        v
    }

    async fn send_once(&mut self, body: Bytes) -> Verdict {
        match timeout(ATTEMPT_TIMEOUT, self.attempt(body)).await {
            Ok(v) => {
                if matches!(v, Verdict::Retry { .. }) {
                    self.conn = None;
                }
                v
            }
            Err(_) => {
                self.conn = None;
                retry("timeout", format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs()), None)
            }
        }
    }

    async fn attempt(&mut self, body: Bytes) -> Verdict {
        if let Err(v) = self.ensure_conn().await {
            return v;
        }
        let auth = format!("Bearer {}", self.token.expose());
        let builder = Request::post(match self.conn {
            Some(Conn::H2(_)) => self.endpoint.clone(),
            _ => self
                .endpoint
                .path_and_query()
                .map_or_else(|| REPORTS_PATH.parse().unwrap(), |p| p.as_str().parse().unwrap()),
        })
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, concat!("savanna-pulse-prober/", env!("CARGO_PKG_VERSION")));
        let builder = match self.conn {
            Some(Conn::H1(_)) => builder.header(header::HOST, &self.authority),
            _ => builder,
        };
        let mut auth = http::HeaderValue::from_str(&auth).expect("token checked at config load");
        auth.set_sensitive(true);
        let req = builder.header(header::AUTHORIZATION, auth).body(Full::new(body)).expect("valid request");
        let resp = match self.conn.as_mut().expect("connected") {
            Conn::H1(s) => s.send_request(req).await,
            Conn::H2(s) => s.send_request(req).await,
        };
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return retry("network", format!("request failed: {e}"), None),
        };
        let status = resp.status();
        let after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(3600)));
        let body = match Limited::new(resp.into_body(), 64 * 1024).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return retry("network", format!("reading the reply failed: {e}"), None),
        };
        classify(status, &body, after)
    }

    async fn ensure_conn(&mut self) -> Result<(), Verdict> {
        let alive = match &self.conn {
            Some(Conn::H1(s)) => !s.is_closed() && s.is_ready(),
            Some(Conn::H2(s)) => !s.is_closed() && s.is_ready(),
            None => false,
        };
        if alive {
            return Ok(());
        }
        self.conn = None;
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| retry("connect", format!("cannot connect to {}:{}: {e}", self.host, self.port), None))?;
        let _ = tcp.set_nodelay(true);
        let conn = match &self.tls {
            None => {
                let (send, conn) = http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(|e| retry("network", format!("HTTP/1.1 handshake failed: {e}"), None))?;
                tokio::spawn(conn);
                Conn::H1(send)
            }
            Some(cfg) => {
                let name = ServerName::try_from(self.host.clone())
                    .map_err(|e| retry("tls", format!("`{}` is not a TLS server name: {e}", self.host), None))?;
                let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| retry("tls", format!("TLS handshake with {} failed: {e}", self.host), None))?;
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                if h2 {
                    let (send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                        .await
                        .map_err(|e| retry("network", format!("HTTP/2 handshake failed: {e}"), None))?;
                    tokio::spawn(conn);
                    Conn::H2(send)
                } else {
                    let (send, conn) = http1::handshake(TokioIo::new(tls))
                        .await
                        .map_err(|e| retry("network", format!("HTTP/1.1 handshake failed: {e}"), None))?;
                    tokio::spawn(conn);
                    Conn::H1(send)
                }
            }
        };
        self.conn = Some(conn);
        Ok(())
    }
}

fn retry(reason: &'static str, detail: String, after: Option<Duration>) -> Verdict {
    Verdict::Retry { reason, detail, after }
}

/// What a reply means for the report (the table in the module docs).
pub fn classify(status: StatusCode, body: &[u8], after: Option<Duration>) -> Verdict {
    #[derive(serde::Deserialize)]
    struct Reply {
        status: Option<String>,
        reason: Option<String>,
    }
    let reply: Option<Reply> = serde_json::from_slice(body).ok();
    let said = reply.as_ref().and_then(|r| r.status.as_deref()).unwrap_or("");
    let reason = reply.as_ref().and_then(|r| r.reason.clone()).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        text.chars().take(300).collect::<String>().trim().to_owned()
    });
    match status.as_u16() {
        200 if said == "stored" => Verdict::Stored,
        200 if said == "duplicate" => Verdict::Duplicate,
        200 => retry("unexpected_reply", format!("HTTP 200 without stored/duplicate (status `{said}`)"), after),
        408 | 429 => retry("throttled", format!("HTTP {status}: {reason}"), after),
        401 | 403 => {
            retry("unauthorized", format!("HTTP {status}: {reason} (check the prober's token and identity)"), after)
        }
        500..=599 => retry("server_error", format!("HTTP {status}: {reason}"), after),
        400..=499 => Verdict::Rejected { status: status.as_u16(), reason },
        _ => retry("unexpected_reply", format!("HTTP {status}: {reason}"), after),
    }
}

/// The ALPN-h2 TLS client configuration: Mozilla roots plus the private CA, if any.
pub fn tls_config(extra_roots: &[CertificateDer<'static>]) -> Arc<rustls::ClientConfig> {
    scenarios::http::tls_config_with_alpn(extra_roots, &[b"h2", b"http/1.1"])
}

/// The delay before retry number `attempt` (1-based): uniform in [0, min(cap, base·2^(attempt-1))]
/// ("full jitter"), at least 50 ms.
pub fn backoff(attempt: u32, rng: &mut ChaCha8Rng) -> Duration {
    let ceiling = BACKOFF_BASE.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(BACKOFF_CAP);
    let ms = rng.random_range(0..=ceiling.as_millis() as u64);
    Duration::from_millis(ms.max(50))
}

/// Sets `sent_at_ms`, and the destination's own backlog and drop count, in a stored report.
pub fn stamp(stored: &[u8], sent_at_ms: i64, backlog: u64, dropped: u64) -> Result<Vec<u8>, String> {
    let mut v: serde_json::Value = serde_json::from_slice(stored).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object_mut().ok_or("not a JSON object")?;
    obj.insert("sent_at_ms".into(), sent_at_ms.into());
    if let Some(hb) = obj.get_mut("heartbeat").and_then(|h| h.as_object_mut()) {
        hb.insert("outbox_backlog".into(), backlog.into());
        hb.insert("outbox_dropped_total".into(), dropped.into());
    }
    Ok(serde_json::to_vec(&v).expect("a Value serializes"))
}

/// The send loop of one destination: drains what it has not finished, lowest seq first; waits on
/// `wake` when it is current.
pub struct Sender {
    pub outbox: Arc<Outbox>,
    /// The destination: its index in [`Outbox::destinations`] (and in the metrics).
    pub dest: usize,
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    /// Notified when a report is stored.
    pub wake: Arc<Notify>,
    /// Notified at shutdown: cut any backoff short and try now.
    pub flush: Arc<Notify>,
    pub seed: u64,
}

impl Sender {
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let name = self.outbox.destinations()[self.dest].clone();
        // Each destination its own jitter, so a pair of senders never retries in lockstep.
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ super::fnv::fnv1a(name.as_bytes()));
        let labels = self.metrics.dest_labels(self.dest);
        let mut attempt = 0u32;
        loop {
            if *stop.borrow() {
                return;
            }
            let (ob, dest) = (self.outbox.clone(), self.dest);
            let next = blocking(move || ob.next_and_stats(dest)).await;
            let (seq, stored, stats) = match next {
                Ok((Some((seq, bytes)), stats)) => (seq, bytes, stats),
                Ok((None, stats)) => {
                    self.metrics.backlog(self.dest, stats.reports, stats.bytes, stats.oldest);
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = self.flush.notified() => {}
                        _ = stop.changed() => return,
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!("outbox {}: cannot read: {e}", self.outbox.dir().display());
                    attempt += 1;
                    self.pause(backoff(attempt, &mut rng), &mut stop).await;
                    continue;
                }
            };
            self.metrics.backlog(self.dest, stats.reports, stats.bytes, stats.oldest);
            let dropped = self.outbox.dropped_total(self.dest);
            let body = match stamp(&stored, self.clock.wall_ms(), stats.reports, dropped) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!("outbox report seq {seq} is unreadable ({e}); a copy goes to rejected/");
                    let ob = self.outbox.clone();
                    let why = format!("unreadable in the outbox: {e}");
                    let _ = blocking(move || ob.reject(dest, seq, &why)).await;
                    self.metrics.reports_rejected.get_or_create(&labels).inc();
                    continue;
                }
            };
            self.metrics.report_sends.get_or_create(&labels).inc();
            match self.client.send(body).await {
                v @ (Verdict::Stored | Verdict::Duplicate) => {
                    let ob = self.outbox.clone();
                    if let Err(e) = blocking(move || ob.ack(dest, seq)).await {
                        tracing::error!("outbox: cannot record that {name} acknowledged seq {seq}: {e}");
                    }
                    if v == Verdict::Duplicate {
                        self.metrics.reports_duplicate.get_or_create(&labels).inc();
                    }
                    self.metrics.acked(self.dest, self.clock.wall_ms());
                    if attempt > 0 {
                        tracing::info!("aggregator {name} reachable again: report seq {seq} delivered");
                    }
                    tracing::debug!("report seq {seq} acknowledged by {name} ({v:?})");
                    attempt = 0;
                }
                Verdict::Rejected { status, reason } => {
                    tracing::warn!(
                        "aggregator {name} rejected report seq {seq} (HTTP {status}: {reason}); a copy is kept in rejected/"
                    );
                    let ob = self.outbox.clone();
                    let why = format!("HTTP {status}: {reason}");
                    self.metrics.failed(self.dest, "rejected");
                    if let Err(e) = blocking(move || ob.reject(dest, seq, &why)).await {
                        tracing::error!("outbox: cannot set aside seq {seq} refused by {name}: {e}");
                        attempt += 1;
                        self.pause(backoff(attempt, &mut rng), &mut stop).await;
                    }
                    self.metrics.reports_rejected.get_or_create(&labels).inc();
                }
                Verdict::Retry { reason, detail, after } => {
                    attempt += 1;
                    self.metrics
                        .send_failures
                        .get_or_create(&DestReasonLabels { destination: name.clone(), reason: reason.into() })
                        .inc();
                    self.metrics.failed(self.dest, reason);
                    let delay = backoff(attempt, &mut rng).max(after.unwrap_or_default());
                    tracing::warn!(
                        "sending report seq {seq} to {name} ({}) failed ({detail}); retry {attempt} in {} ms",
                        self.client.endpoint(),
                        delay.as_millis()
                    );
                    self.pause(delay, &mut stop).await;
                }
            }
        }
    }

    async fn pause(&self, d: Duration, stop: &mut watch::Receiver<bool>) {
        tokio::select! {
            () = sleep_until(Instant::now() + d) => {}
            () = self.flush.notified() => {}
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_classified_by_the_contract() {
        let ok = |s: u16, b: &str| classify(StatusCode::from_u16(s).unwrap(), b.as_bytes(), None);
        assert_eq!(ok(200, r#"{"status":"stored"}"#), Verdict::Stored);
        assert_eq!(ok(200, r#"{"status":"duplicate"}"#), Verdict::Duplicate);
        assert!(matches!(ok(200, "hello"), Verdict::Retry { reason: "unexpected_reply", .. }));
        for s in [401, 403] {
            assert!(matches!(
                ok(s, r#"{"status":"rejected","reason":"bad"}"#),
                Verdict::Retry { reason: "unauthorized", .. }
            ));
        }
        for s in [400, 413] {
            assert!(
                matches!(ok(s, r#"{"status":"rejected","reason":"bad"}"#), Verdict::Rejected { reason, .. } if reason == "bad")
            );
        }
        assert!(matches!(ok(429, ""), Verdict::Retry { reason: "throttled", .. }));
        assert!(matches!(ok(408, ""), Verdict::Retry { reason: "throttled", .. }));
        assert!(matches!(ok(503, "down"), Verdict::Retry { reason: "server_error", .. }));
        assert!(matches!(ok(302, ""), Verdict::Retry { .. }));
    }

    #[test]
    fn backoff_is_full_jitter_under_an_exponential_cap() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for attempt in 1..30 {
            let ceiling = BACKOFF_BASE.saturating_mul(1 << (attempt - 1).min(16)).min(BACKOFF_CAP);
            for _ in 0..50 {
                let d = backoff(attempt, &mut rng);
                assert!(d <= ceiling.max(Duration::from_millis(50)), "attempt {attempt}: {d:?}");
            }
        }
        let late: Vec<Duration> = (0..200).map(|_| backoff(20, &mut rng)).collect();
        assert!(late.iter().any(|d| *d < Duration::from_secs(20)) && late.iter().any(|d| *d > Duration::from_secs(40)));
    }

    #[test]
    fn stamping_sets_send_time_and_backlog_and_keeps_the_rest() {
        let r = report::Report {
            prober: "p".into(),
            region: "r".into(),
            seq: 4,
            interval_start_ms: 1_000,
            interval_end_ms: 2_000,
            sent_at_ms: 2_000,
            run: None,
            heartbeat: report::Heartbeat { outbox_backlog: 1, journeys: 3, ..Default::default() },
            series: Vec::new(),
        };
        let out = report::decode(&stamp(&report::encode(&r), 9_999, 5, 2).unwrap()).unwrap();
        assert_eq!(out.sent_at_ms, 9_999);
        assert_eq!((out.heartbeat.outbox_backlog, out.heartbeat.outbox_dropped_total), (5, 2));
        assert_eq!((out.seq, out.heartbeat.journeys), (4, 3));
        assert!(stamp(b"garbage", 1, 1, 0).is_err());
    }

    #[test]
    fn the_endpoint_keeps_a_base_path() {
        let c = Client::new(&"https://agg.example:7800/edge".parse().unwrap(), Secret::new("t"), &[]);
        assert_eq!(c.endpoint().to_string(), "https://agg.example:7800/edge/api/v1/reports");
        let c = Client::new(&"http://127.0.0.1:7800".parse().unwrap(), Secret::new("t"), &[]);
        assert_eq!(c.endpoint().to_string(), "http://127.0.0.1:7800/api/v1/reports");
    }
}
