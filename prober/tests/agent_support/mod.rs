//! A small fake aggregator for the agent tests: the ingest contract the prober assumes, a switch
//! to make it fail, seqs to reject, and a log of every attempt. Also `GET /probe`, a counter that
//! journeys can hit, so a test knows how many runs really happened.
#![allow(dead_code)]

use std::{
    collections::{BTreeMap, HashSet},
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use parking_lot::Mutex;
use tokio::net::TcpListener;

pub const TOKEN: &str = "tok-e2e-5f1c9a77";

/// One POST the fake saw.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub seq: u64,
    pub status: u16,
    pub sent_at_ms: i64,
    pub version: http::Version,
    /// When the fake answered it (monotonic).
    pub at: tokio::time::Instant,
}

#[derive(Default)]
pub struct State {
    pub down: AtomicBool,
    pub reject: Mutex<HashSet<u64>>,
    /// (prober, seq) → report, in arrival order of first storage.
    pub stored: Mutex<BTreeMap<(String, u64), report::Report>>,
    pub store_order: Mutex<Vec<u64>>,
    pub attempts: Mutex<Vec<Attempt>>,
    /// A seq that came again with a different interval: a reused seq.
    pub conflicts: Mutex<Vec<u64>>,
    pub probe_hits: AtomicU64,
    /// The next this-many reports are answered 429 with `Retry-After: throttle_secs`.
    pub throttle: AtomicU64,
    pub throttle_secs: AtomicU64,
}

pub struct FakeAggregator {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    pub tls: bool,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAggregator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeAggregator {
    /// Plain HTTP (h1 and h2c) on 127.0.0.1:0.
    pub async fn start() -> FakeAggregator {
        Self::start_with(None).await
    }

    /// With `tls`, HTTPS (ALPN h2, http/1.1) with that server config.
    pub async fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> FakeAggregator {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = state.clone();
        let is_tls = tls.is_some();
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let st = st.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(st.clone(), req));
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
                        }
                        Some(a) => {
                            if let Ok(tls) = a.accept(tcp).await {
                                let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
                            }
                        }
                    }
                });
            }
        });
        FakeAggregator { addr, state, tls: is_tls, task }
    }

    /// As [`start_with`](Self::start_with), behind the hardened listener the real aggregator
    /// uses, with `limits`; its counters are `metrics`.
    pub async fn start_bounded(
        tls: Option<Arc<rustls::ServerConfig>>,
        limits: httpserve::Limits,
        metrics: Arc<httpserve::ServeMetrics>,
    ) -> FakeAggregator {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let state = Arc::new(State::default());
        let is_tls = tls.is_some();
        let mut listener = httpserve::Listener::new(tcp, "api", limits, metrics).unwrap();
        if let Some(cfg) = tls {
            listener = listener.with_tls(tokio_rustls::TlsAcceptor::from(cfg));
        }
        let st = state.clone();
        let svc = service_fn(move |req| handle(st.clone(), req));
        let task = tokio::spawn(listener.serve(svc, std::future::pending(), Duration::ZERO));
        FakeAggregator { addr, state, tls: is_tls, task }
    }

    pub fn url(&self) -> String {
        if self.tls { format!("https://localhost:{}", self.addr.port()) } else { format!("http://{}", self.addr) }
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Answers the next `times` reports `429 Too Many Requests` with `Retry-After: secs`.
    pub fn throttle(&self, times: u64, secs: u64) {
        self.state.throttle_secs.store(secs, Ordering::SeqCst);
        self.state.throttle.store(times, Ordering::SeqCst);
    }

    pub fn reject(&self, seq: u64) {
        self.state.reject.lock().insert(seq);
    }

    pub fn stored_seqs(&self) -> Vec<u64> {
        self.state.stored.lock().keys().map(|(_, s)| *s).collect()
    }

    pub fn reports(&self) -> Vec<report::Report> {
        self.state.stored.lock().values().cloned().collect()
    }

    pub fn attempts(&self) -> Vec<Attempt> {
        self.state.attempts.lock().clone()
    }
}

fn reply(status: u16, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

async fn handle<B>(st: Arc<State>, req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    if req.uri().path() == "/probe" {
        st.probe_hits.fetch_add(1, Ordering::SeqCst);
        return Ok(reply(200, r#"{"ok":true}"#));
    }
    if req.uri().path() != "/api/v1/reports" || req.method() != http::Method::POST {
        return Ok(reply(404, r#"{"status":"rejected","reason":"no such endpoint"}"#));
    }
    let version = req.version();
    let authorized =
        req.headers().get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"));
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let decoded = report::decode(&body);
    let seq = decoded.as_ref().map(|r| r.seq).unwrap_or(0);
    let sent_at_ms = decoded.as_ref().map(|r| r.sent_at_ms).unwrap_or(0);
    let throttled =
        authorized && st.throttle.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if throttled {
        let secs = st.throttle_secs.load(Ordering::SeqCst);
        st.attempts.lock().push(Attempt { seq, status: 429, sent_at_ms, version, at: tokio::time::Instant::now() });
        let mut r = reply(429, r#"{"status":"rejected","reason":"more than 1 report a minute"}"#);
        r.headers_mut().insert("retry-after", secs.into());
        return Ok(r);
    }
    let (status, text) = if !authorized {
        (401, r#"{"status":"rejected","reason":"unknown token"}"#.to_owned())
    } else if st.down.load(Ordering::SeqCst) {
        (503, r#"{"status":"unavailable","reason":"store is down"}"#.to_owned())
    } else {
        match decoded {
            Err(e) => (400, serde_json::json!({"status": "rejected", "reason": e.to_string()}).to_string()),
            Ok(r) if st.reject.lock().contains(&r.seq) => {
                (400, r#"{"status":"rejected","reason":"series[0].journey: test says no"}"#.to_owned())
            }
            Ok(r) => {
                let mut stored = st.stored.lock();
                let key = (r.prober.clone(), r.seq);
                match stored.get(&key) {
                    Some(old) => {
                        if old.interval_start_ms != r.interval_start_ms || old.series != r.series {
                            st.conflicts.lock().push(r.seq);
                        }
                        (200, r#"{"status":"duplicate"}"#.to_owned())
                    }
                    None => {
                        st.store_order.lock().push(r.seq);
                        stored.insert(key, r);
                        (200, r#"{"status":"stored"}"#.to_owned())
                    }
                }
            }
        }
    };
    st.attempts.lock().push(Attempt { seq, status, sent_at_ms, version, at: tokio::time::Instant::now() });
    Ok(reply(status, &text))
}

/// A fresh directory under the system temp dir, removed when the guard drops.
pub fn tmpdir(name: &str) -> testkit::TempDir {
    testkit::temp_dir(&format!("prober-agent-{name}"))
}

/// Waits (polling, real time) until `f` holds; panics with `what` after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        if f() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
    }
}

/// A valid report with one series.
pub fn sample_report(seq: u64) -> report::Report {
    let end = 1_700_000_015_000 + seq as i64 * 15_000;
    testkit::reports::ReportBuilder::new("test-1", "nairobi")
        .seq(seq)
        .ending_at(end)
        .heartbeat(report::Heartbeat { journeys: 1, ..Default::default() })
        .with(testkit::reports::series(
            testkit::reports::key("ussd-balance", "", "ok", "nairobi"),
            &[100_000 + seq * 1_000],
        ))
        .build()
}
