//! A shaping TCP proxy, like toxiproxy for any client (a browser, curl, another load tool).
//!
//! Every accepted connection is forwarded to the upstream through its own emulated link: bytes
//! from upstream to the client travel the "down" direction. The proxy stands for one device, so
//! connections share its radio. Connecting upstream pays the emulated DNS and handshake costs, so
//! a client sees them before its first byte.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinSet,
    time::{Instant, sleep, sleep_until},
};

use crate::{Connector, Direction, Profile};

/// What to proxy, and how.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// `host:port` of the upstream (a name, an IPv4 or a bracketed IPv6 address).
    pub upstream: String,
    pub profile: Profile,
    /// Seed of the links' randomness; connection `n` uses a seed derived from it and `n`.
    pub seed: u64,
    /// How long open connections may finish after shutdown begins.
    pub grace: Duration,
}

/// Live counters, readable while the proxy runs.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub accepted: AtomicU64,
    pub active: AtomicU64,
    pub failed: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
}

/// A bound proxy, ready to [`run`](Proxy::run).
pub struct Proxy {
    listener: TcpListener,
    upstream: (String, u16),
    connector: Arc<Connector>,
    grace: Duration,
    stats: Arc<ProxyStats>,
}

/// How the proxy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxySummary {
    pub connections: u64,
    pub failed: u64,
    /// Connections still open when the grace period ran out.
    pub aborted: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// Splits `host:port` (IPv6 in brackets).
pub fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) =
        s.rsplit_once(':').ok_or_else(|| format!("`{s}` is not host:port (for example 127.0.0.1:8080)"))?;
    let port = port.parse::<u16>().map_err(|_| format!("`{s}`: `{port}` is not a port number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("`{s}` has no host (for example 127.0.0.1:{port})"));
    }
    Ok((host.to_owned(), port))
}

impl Proxy {
    /// Binds the listening socket. Must be called inside a tokio runtime.
    pub async fn bind(listen: SocketAddr, config: ProxyConfig) -> io::Result<Proxy> {
        let upstream = split_host_port(&config.upstream).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(listen).await?;
        Ok(Proxy {
            listener,
            upstream,
            connector: Arc::new(Connector::new(config.profile, config.seed)),
            grace: config.grace,
            stats: Arc::default(),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn stats(&self) -> Arc<ProxyStats> {
        self.stats.clone()
    }

    /// Serves until `shutdown` completes, then lets open connections finish for the grace period
    /// and aborts the rest.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> ProxySummary {
        let Proxy { listener, upstream, connector, grace, stats } = self;
        let upstream = Arc::new(upstream);
        let mut tasks = JoinSet::new();
        let mut next_id = 0u64;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((client, peer)) => {
                        next_id += 1;
                        stats.accepted.fetch_add(1, Relaxed);
                        stats.active.fetch_add(1, Relaxed);
                        let (connector, upstream, stats) = (connector.clone(), upstream.clone(), stats.clone());
                        tasks.spawn(async move {
                            serve(next_id, client, peer, &connector, &upstream, &stats).await;
                            stats.active.fetch_sub(1, Relaxed);
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed; retrying in 100 ms");
                        sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        drop(listener);
        let open = tasks.len();
        if open > 0 {
            tracing::info!(open, grace_secs = grace.as_secs_f64(), "shutting down: letting open connections finish");
        }
        let deadline = Instant::now() + grace;
        let mut aborted = 0;
        while !tasks.is_empty() {
            tokio::select! {
                () = sleep_until(deadline) => {
                    aborted = tasks.len() as u64;
                    tracing::warn!(aborted, "grace period over: closing the remaining connections");
                    tasks.shutdown().await;
                }
                Some(_) = tasks.join_next() => {}
            }
        }
        ProxySummary {
            connections: stats.accepted.load(Relaxed),
            failed: stats.failed.load(Relaxed),
            aborted,
            bytes_up: stats.bytes_up.load(Relaxed),
            bytes_down: stats.bytes_down.load(Relaxed),
        }
    }
}

async fn serve(
    id: u64,
    mut client: TcpStream,
    peer: SocketAddr,
    connector: &Connector,
    upstream: &(String, u16),
    stats: &ProxyStats,
) {
    let start = Instant::now();
    let _ = client.set_nodelay(true);
    let mut conn = match connector.connect(&upstream.0, upstream.1).await {
        Ok(c) => c,
        Err(e) => {
            stats.failed.fetch_add(1, Relaxed);
            tracing::warn!(conn = id, client = %peer, phase = e.phase(), error = %e, "upstream connection failed");
            return;
        }
    };
    let result = tokio::io::copy_bidirectional(&mut client, &mut conn.stream).await;
    let s = conn.stream.stats();
    let (up, down) = (s.bytes(Direction::Up), s.bytes(Direction::Down));
    stats.bytes_up.fetch_add(up, Relaxed);
    stats.bytes_down.fetch_add(down, Relaxed);
    let retransmissions = s.retransmissions(Direction::Up) + s.retransmissions(Direction::Down);
    let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 1e2;
    match result {
        Ok(_) => tracing::info!(
            conn = id, client = %peer, upstream = %conn.peer,
            dns_ms = ms(conn.timings.dns), connect_ms = ms(conn.timings.connect),
            bytes_up = up, bytes_down = down, retransmissions,
            duration_ms = ms(start.elapsed()), "connection closed"
        ),
        Err(e) => {
            stats.failed.fetch_add(1, Relaxed);
            tracing::warn!(
                conn = id, client = %peer, upstream = %conn.peer,
                bytes_up = up, bytes_down = down, retransmissions,
                duration_ms = ms(start.elapsed()), error = %e, "connection failed"
            )
        }
    }
}
