//! `prober load --url`: one request per iteration, for raw throughput.
//!
//! Lean on purpose: each worker owns one connection (kept alive unless `--new-connection`) and
//! drives hyper's HTTP/1.1 connection future *in its own task*, beside the request, so a request
//! costs no cross-task wake-ups; the request is built from parts prepared once (the URI and body
//! are reference-counted), the body is read and counted, never collected, and latency goes
//! straight into the worker's histogram shard. HTTP/2 (`--http2`, prior knowledge on http, ALPN
//! on https) runs its connection in a spawned task, as hyper requires.

use std::{net::SocketAddr, pin::pin, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use netem::{Connector, Profile};
use parking_lot::Mutex;
use rustls::pki_types::ServerName;
use scenarios::Outcome;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    time::{Instant, timeout},
};

use super::{runner::Iteration, stats::Stats};

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}
type BoxIo = Box<dyn Io>;

/// What every request of a URL run sends, prepared once.
pub struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Resolved once when the link is not shaped (a shaped link pays DNS per connection).
    pub addr: Option<SocketAddr>,
    pub method: Method,
    /// Origin-form for HTTP/1.1, absolute for HTTP/2.
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub http2: bool,
    pub new_connection: bool,
    /// `None` when the profile does not shape (loopback): plain sockets.
    pub profile: Option<Profile>,
    pub seed: u64,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub timeout: Duration,
}

enum Conn {
    H1 {
        tx: http1::SendRequest<Full<Bytes>>,
        driver: std::pin::Pin<Box<http1::Connection<TokioIo<BoxIo>, Full<Bytes>>>>,
    },
    H2 {
        tx: http2::SendRequest<Full<Bytes>>,
    },
}

/// One worker: one connection at a time.
pub struct RawWorker {
    target: Arc<Target>,
    index: u64,
    conn: Option<Conn>,
    connector: Option<Connector>,
}

impl RawWorker {
    pub fn new(target: Arc<Target>, index: usize) -> RawWorker {
        RawWorker { target, index: index as u64, conn: None, connector: None }
    }

    async fn connect(&mut self) -> Result<Conn, Outcome> {
        let t = &*self.target;
        let io: BoxIo = match (&t.profile, t.addr) {
            (None, Some(addr)) => {
                let s = TcpStream::connect(addr).await.map_err(|_| Outcome::NetworkError)?;
                let _ = s.set_nodelay(true);
                Box::new(s)
            }
            (None, None) => {
                let s = TcpStream::connect((t.host.as_str(), t.port)).await.map_err(|_| Outcome::NetworkError)?;
                let _ = s.set_nodelay(true);
                Box::new(s)
            }
            (Some(p), _) => {
                // Each worker is one device: its connections share a radio.
                let connector =
                    self.connector.get_or_insert_with(|| Connector::new(p.clone(), t.seed.wrapping_add(self.index)));
                Box::new(connector.connect(&t.host, t.port).await.map_err(|_| Outcome::NetworkError)?.stream)
            }
        };
        let io: BoxIo = match &t.tls {
            Some(cfg) => {
                let name = ServerName::try_from(t.host.clone()).map_err(|_| Outcome::TlsError)?;
                let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                    .connect(name, io)
                    .await
                    .map_err(|_| Outcome::TlsError)?;
                // A server that ignores ALPN would answer the HTTP/2 preface as HTTP/1.1.
                if t.http2 && tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                    return Err(Outcome::TlsError);
                }
                Box::new(tls)
            }
            None => io,
        };
        if t.http2 {
            let (tx, conn) = http2::Builder::new(TokioExecutor::new())
                .handshake(TokioIo::new(io))
                .await
                .map_err(|_| Outcome::NetworkError)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Conn::H2 { tx })
        } else {
            let (tx, driver) =
                http1::Builder::new().handshake(TokioIo::new(io)).await.map_err(|_| Outcome::NetworkError)?;
            Ok(Conn::H1 { tx, driver: Box::pin(driver) })
        }
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let t = &*self.target;
        let mut req = Request::new(Full::new(t.body.clone()));
        *req.method_mut() = t.method.clone();
        *req.uri_mut() = t.uri.clone();
        if !t.headers.is_empty() {
            *req.headers_mut() = t.headers.clone();
        }
        req
    }

    /// One exchange on the current connection (opened if needed). Keeps the connection when it
    /// may be reused.
    async fn exchange(&mut self) -> Result<StatusCode, Outcome> {
        if self.conn.is_none() {
            self.conn = Some(self.connect().await?);
        }
        let req = self.request();
        let conn = self.conn.as_mut().expect("connected above");
        let (result, reusable) = match conn {
            Conn::H1 { tx, driver } => {
                let exchange = async {
                    tx.ready().await.map_err(|_| Outcome::NetworkError)?;
                    read_response(tx.send_request(req).await).await
                };
                let mut exchange = pin!(exchange);
                tokio::select! {
                    biased;
                    r = &mut exchange => (r, true),
                    // The connection ended (closed by the server): the response may still be
                    // complete in hyper's buffers.
                    _ = driver.as_mut() => (exchange.await, false),
                }
            }
            Conn::H2 { tx } => {
                let r = async {
                    tx.ready().await.map_err(|_| Outcome::NetworkError)?;
                    read_response(tx.send_request(req).await).await
                }
                .await;
                (r, true)
            }
        };
        if result.is_err() || !reusable || self.target.new_connection {
            self.conn = None;
        }
        result
    }
}

/// The response's status, after reading its whole body (HTTP/1.1 and HTTP/2 alike).
async fn read_response(
    resp: Result<http::Response<hyper::body::Incoming>, hyper::Error>,
) -> Result<StatusCode, Outcome> {
    let resp = resp.map_err(|_| Outcome::NetworkError)?;
    let status = resp.status();
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        frame.map_err(|_| Outcome::NetworkError)?;
    }
    Ok(status)
}

/// The outcome class of an HTTP status: 5xx the server failed, 4xx the request was refused.
pub fn classify(status: StatusCode) -> Outcome {
    if status.is_server_error() {
        Outcome::GatewayError
    } else if status.is_client_error() {
        Outcome::AssertionFailed
    } else {
        Outcome::Ok
    }
}

impl Iteration for RawWorker {
    async fn run(&mut self, intended: Instant, stats: &Mutex<Stats>) -> bool {
        let sent = Instant::now();
        let outcome = match timeout(self.target.timeout, self.exchange()).await {
            Ok(Ok(status)) => classify(status),
            Ok(Err(o)) => o,
            Err(_) => {
                self.conn = None;
                Outcome::Timeout
            }
        };
        let end = Instant::now();
        stats.lock().series[0].record(outcome, end - intended, end - sent);
        outcome.is_good()
    }
}
