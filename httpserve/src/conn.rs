//! One connection, from accept to close: the connection caps, the TLS handshake deadline, and a
//! supervisor that closes the connection when its first request head is late or when it has been
//! idle too long, and drains it at shutdown.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use http::Version;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use parking_lot::Mutex;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    sync::{Notify, OwnedSemaphorePermit, Semaphore, watch},
    time::{Instant, sleep_until, timeout},
};
use tokio_rustls::TlsAcceptor;

use crate::{
    Limits,
    metrics::{Closed, Refused, ServeMetrics},
    service::{Guarded, Handler, ReplyBody},
};

// === caps ===

/// The total and per-peer connection counts.
pub(crate) struct Caps {
    total: Arc<Semaphore>,
    per_peer: Mutex<HashMap<IpAddr, usize>>,
    max_per_peer: usize,
}

/// A connection's place under the caps, given back on drop.
pub(crate) struct Admission {
    _permit: OwnedSemaphorePermit,
    caps: Arc<Caps>,
    key: IpAddr,
}

impl Caps {
    pub fn new(limits: &Limits) -> Arc<Caps> {
        Arc::new(Caps {
            total: Arc::new(Semaphore::new(limits.max_connections)),
            per_peer: Mutex::default(),
            max_per_peer: limits.max_connections_per_peer,
        })
    }

    /// A place for a connection from `ip`, or why there is none. Costs a map lookup.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refused> {
        let permit = self.total.clone().try_acquire_owned().map_err(|_| Refused::MaxConnections)?;
        let key = peer_key(ip);
        let mut peers = self.per_peer.lock();
        let n = peers.entry(key).or_insert(0);
        if *n >= self.max_per_peer {
            return Err(Refused::MaxConnectionsPerPeer);
        }
        *n += 1;
        Ok(Admission { _permit: permit, caps: self.clone(), key })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut peers = self.caps.per_peer.lock();
        if let Some(n) = peers.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                peers.remove(&self.key);
            }
        }
    }
}

/// Whom a connection counts against: an IPv4 address, or an IPv6 client's /64 (one host usually
/// holds a whole /64).
pub(crate) fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

// === activity ===

/// What the supervisor knows of a connection's requests.
pub(crate) struct ConnState {
    activity: Mutex<Activity>,
    changed: Notify,
}

struct Activity {
    in_flight: usize,
    requests: u64,
    idle_since: Instant,
    http2: bool,
}

/// One request in flight; ends when dropped (with its response body).
pub(crate) struct InFlight(Arc<ConnState>);

impl ConnState {
    fn new() -> Arc<ConnState> {
        Arc::new(ConnState {
            activity: Mutex::new(Activity { in_flight: 0, requests: 0, idle_since: Instant::now(), http2: false }),
            changed: Notify::new(),
        })
    }

    pub fn begin(self: &Arc<Self>, version: Version) -> InFlight {
        {
            let mut a = self.activity.lock();
            a.in_flight += 1;
            a.requests += 1;
            a.http2 = version == Version::HTTP_2;
        }
        self.changed.notify_one();
        InFlight(self.clone())
    }

    /// When the connection is due to be closed, if it stays as it is: its first request head is
    /// late (`true`), or it has been idle too long (`false`).
    fn deadline(&self, accepted: Instant, limits: &Limits) -> Option<(Instant, bool)> {
        let a = self.activity.lock();
        if a.requests == 0 {
            Some((accepted + limits.header_read_timeout, true))
        } else if a.in_flight == 0 {
            Some((a.idle_since + limits.idle_timeout, false))
        } else {
            None
        }
    }

    fn http2(&self) -> bool {
        self.activity.lock().http2
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        {
            let mut a = self.0.activity.lock();
            a.in_flight -= 1;
            if a.in_flight == 0 {
                a.idle_since = Instant::now();
            }
        }
        self.0.changed.notify_one();
    }
}

// === the connection ===

/// What every connection of a listener shares.
pub(crate) struct Shared<S> {
    pub service: S,
    pub limits: Arc<Limits>,
    pub metrics: Arc<ServeMetrics>,
    pub name: Arc<str>,
    pub tls: Option<TlsAcceptor>,
    pub builder: auto::Builder<TokioExecutor>,
    pub stop: watch::Receiver<bool>,
}

/// hyper's server settings for `limits`.
pub(crate) fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(limits.h2_max_header_list_size)
        .keep_alive_interval(limits.h2_keep_alive_interval)
        .keep_alive_timeout(limits.h2_keep_alive_timeout)
        .max_pending_accept_reset_streams(limits.h2_max_pending_accept_reset_streams)
        .max_local_error_reset_streams(limits.h2_max_local_error_reset_streams);
    b
}

/// Serves one accepted connection until it ends or a bound closes it.
pub(crate) async fn run<S, B>(shared: Arc<Shared<S>>, sock: TcpStream, peer: SocketAddr, admission: Admission)
where
    S: Handler<B>,
    B: ReplyBody,
{
    let _admission = admission;
    let open = shared.metrics.open_gauge(&shared.name);
    open.inc();
    let _ = sock.set_nodelay(true);
    match &shared.tls {
        None => serve_io(&shared, sock, peer).await,
        Some(acceptor) => match timeout(shared.limits.tls_handshake_timeout, acceptor.accept(sock)).await {
            Ok(Ok(tls)) => serve_io(&shared, tls, peer).await,
            Ok(Err(e)) => tracing::debug!(listener = %shared.name, %peer, error = %e, "TLS handshake failed"),
            Err(_) => {
                shared.metrics.close(&shared.name, Closed::TlsHandshakeTimeout);
                tracing::debug!(listener = %shared.name, %peer, "TLS handshake timed out");
            }
        },
    }
    open.dec();
}

async fn serve_io<S, B, I>(shared: &Shared<S>, io: I, peer: SocketAddr)
where
    S: Handler<B>,
    B: ReplyBody,
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = ConnState::new();
    let svc = Guarded {
        inner: shared.service.clone(),
        conn: state.clone(),
        limits: shared.limits.clone(),
        metrics: shared.metrics.clone(),
        name: shared.name.clone(),
    };
    let conn = shared.builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let accepted = Instant::now();
    let mut stop = shared.stop.clone();
    // Set once a bound (not the client, not shutdown) ends the connection; `Instant`: when to
    // stop waiting for its graceful close.
    let mut cut: Option<(Closed, Instant)> = None;
    let mut draining = *stop.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    let result = loop {
        let due = match cut {
            Some((_, give_up)) => Some((give_up, false)),
            None if draining => None,
            None => state.deadline(accepted, &shared.limits),
        };
        let changed = state.changed.notified();
        tokio::select! {
            r = conn.as_mut() => break r,
            () = at(due.map(|d| d.0)) => match (cut, due) {
                (Some(_), _) => break Ok(()),
                (None, Some((_, true))) => {
                    // No complete request head yet: nothing to finish, close at once.
                    cut = Some((Closed::HeaderTimeout, Instant::now()));
                    break Ok(());
                }
                (None, _) => {
                    conn.as_mut().graceful_shutdown();
                    cut = Some((Closed::IdleTimeout, Instant::now() + shared.limits.header_read_timeout));
                }
            },
            Ok(()) = stop.changed(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            () = changed => {}
        }
    };
    let name = &shared.name;
    match (cut, result) {
        (Some((why, _)), _) => {
            shared.metrics.close(name, why);
            tracing::debug!(listener = %name, %peer, reason = why.label(), "connection closed by a bound");
        }
        (None, Err(e)) => match classify(&*e, state.http2()) {
            Some(why) => {
                shared.metrics.close(name, why);
                tracing::debug!(listener = %name, %peer, reason = why.label(), "connection closed by a bound");
            }
            None => tracing::debug!(listener = %name, %peer, error = %e, "connection ended with an error"),
        },
        (None, Ok(())) => {}
    }
}

/// Resolves at `deadline`; never without one.
async fn at(deadline: Option<Instant>) {
    match deadline {
        Some(d) => sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The bound behind a connection error, if a bound it was.
fn classify(e: &(dyn std::error::Error + 'static), http2: bool) -> Option<Closed> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout) {
            return Some(if http2 { Closed::KeepAliveTimeout } else { Closed::HeaderTimeout });
        }
        if err.downcast_ref::<h2::Error>().is_some_and(|h| h.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM)) {
            return Some(Closed::H2Flood);
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_addresses_and_ipv6_slash_64s() {
        let k = |s: &str| peer_key(s.parse().unwrap()).to_string();
        assert_eq!(k("203.0.113.7"), "203.0.113.7");
        assert_eq!(k("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(k("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(k("2001:db8:1:2::1"), k("2001:db8:1:2:ffff::9"));
    }

    #[test]
    fn caps_refuse_past_each_bound_and_give_places_back() {
        let limits = Limits { max_connections: 3, max_connections_per_peer: 2, ..Limits::default() };
        let caps = Caps::new(&limits);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = caps.admit(a).unwrap();
        let _a2 = caps.admit(a).unwrap();
        assert_eq!(caps.admit(a).err(), Some(Refused::MaxConnectionsPerPeer));
        let _b1 = caps.admit(b).unwrap();
        assert_eq!(caps.admit(b).err(), Some(Refused::MaxConnections));
        drop(a1);
        let _a3 = caps.admit(a).unwrap();
        assert_eq!(caps.per_peer.lock().len(), 2);
    }
}
