//! # httpserve: a hardened HTTP/1.1 + HTTP/2 listener
//!
//! One accept-and-serve loop for every listener of the fleet that faces clients we do not
//! control (the aggregator's API and relay, the prober's `/metrics` and Daraja callback
//! listeners). Each bound in [`Limits`] has a production default and a counter in
//! [`ServeMetrics`]:
//!
//! - at accept: [`Limits::max_connections`] and [`Limits::max_connections_per_peer`]; a
//!   connection past a cap is closed at once (no TLS, no parsing);
//! - [`Limits::tls_handshake_timeout`];
//! - [`Limits::header_read_timeout`]: the first complete request head of a connection (covering
//!   protocol detection and the HTTP/2 preface), and on HTTP/1.1 every later one (hyper's own
//!   timer);
//! - [`Limits::body_min_rate`] after [`Limits::body_rate_grace`]: a request body that falls behind
//!   is answered `408` and its connection (HTTP/1.1) or stream (HTTP/2) closed;
//! - [`Limits::idle_timeout`]: no request in flight for that long and the connection is closed
//!   gracefully (`GOAWAY` on HTTP/2);
//! - HTTP/2: `SETTINGS_MAX_CONCURRENT_STREAMS`, `SETTINGS_MAX_HEADER_LIST_SIZE` (`431` above it),
//!   keep-alive PINGs, and h2's caps on reset streams (`GOAWAY ENHANCE_YOUR_CALM` on a flood).
//!
//! Shutdown stops accepting, lets in-flight requests finish within a grace, then drops what is
//! left. Dropping the [`Listener::serve`] future (aborting its task) closes every connection.
//!
//! ```no_run
//! # async fn f(router: axum::Router) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let metrics = Arc::new(httpserve::ServeMetrics::new());
//! let server = httpserve::Listener::new(listener, "api", httpserve::Limits::default(), metrics)?;
//! server.serve(httpserve::TowerToHyperService::new(router), std::future::pending(), std::time::Duration::from_secs(10)).await;
//! # Ok(()) }
//! ```

mod body;
mod conn;
mod limits;
mod metrics;
mod service;
pub mod testing;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

pub use hyper_util::service::TowerToHyperService;
use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tokio_rustls::TlsAcceptor;

pub use self::{
    body::{Body, ResponseBody},
    limits::{DEFAULT, DurOrOff, Limits, LimitsFile},
    metrics::{Closed, Refused, ServeMetrics},
    service::{Handler, ReplyBody},
};

/// The error type of bodies and services.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A limit that would disable its bound; `field` is spelt as in the config files.
    #[error("{field}: {reason}")]
    InvalidLimit { field: &'static str, reason: String },
    /// The request body fell below [`Limits::body_min_rate`]; the request is answered `408`.
    #[error("the request body arrived slower than {min_rate} bytes/s after the first {grace:?}")]
    BodyTooSlow { min_rate: u64, grace: Duration },
}

impl Error {
    /// Whether `e`, or an error it wraps (axum and `http_body_util::Limited` box a body's error),
    /// is [`Error::BodyTooSlow`]: the client trickled, the request is answered `408`.
    pub fn is_body_too_slow(e: &(dyn std::error::Error + 'static)) -> bool {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if matches!(err.downcast_ref::<Error>(), Some(Error::BodyTooSlow { .. })) {
                return true;
            }
            cur = err.source();
        }
        false
    }
}

/// A bound TCP listener with its limits, ready to serve.
pub struct Listener {
    listener: TcpListener,
    name: Arc<str>,
    limits: Limits,
    metrics: Arc<ServeMetrics>,
    tls: Option<TlsAcceptor>,
}

impl Listener {
    /// `name` labels this listener's metrics and logs (`api`, `metrics`, `payment_callback`).
    pub fn new(
        listener: TcpListener,
        name: &str,
        limits: Limits,
        metrics: Arc<ServeMetrics>,
    ) -> Result<Listener, Error> {
        limits.validate()?;
        Ok(Listener { listener, name: name.into(), limits, metrics, tls: None })
    }

    /// Serves TLS (the acceptor's ALPN decides between `h2` and `http/1.1`).
    pub fn with_tls(mut self, acceptor: TlsAcceptor) -> Listener {
        self.tls = Some(acceptor);
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts and serves until `shutdown` resolves, then lets in-flight requests finish for at
    /// most `grace` and drops the connections still open.
    pub async fn serve<S, B>(self, service: S, shutdown: impl Future<Output = ()>, grace: Duration)
    where
        S: Handler<B>,
        B: ReplyBody,
    {
        let Listener { listener, name, limits, metrics, tls } = self;
        let (stop_tx, stop) = watch::channel(false);
        let caps = conn::Caps::new(&limits);
        let builder = conn::builder(&limits);
        let shared = Arc::new(conn::Shared { service, limits: Arc::new(limits), metrics, name, tls, builder, stop });
        let mut conns = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                r = listener.accept() => match r {
                    Ok((sock, peer)) => match caps.admit(peer.ip()) {
                        Ok(admission) => {
                            conns.spawn(conn::run(shared.clone(), sock, peer, admission));
                        }
                        Err(why) => {
                            shared.metrics.refuse(&shared.name, why);
                            tracing::debug!(listener = %shared.name, %peer, reason = why.label(), "connection refused");
                        }
                    },
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(listener = %shared.name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        tracing::info!(listener = %shared.name, connections = conns.len(), "no longer accepting; finishing in-flight requests");
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(listener = %shared.name, "in-flight requests did not finish within the shutdown grace; closing them");
            conns.shutdown().await;
        }
    }
}
