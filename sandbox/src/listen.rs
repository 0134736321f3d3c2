//! The accept-and-serve loop, HTTP/1.1 and HTTP/2, with the bounds of [`HttpLimits`]: a cap on
//! connections, a deadline for a connection's first request head and (hyper's) for every
//! HTTP/1.1 head, an idle close for HTTP/2, HTTP/2 stream, header and keep-alive limits, and
//! hyper's defaults against reset floods. The sandbox depends on no crate of ours, so this is a
//! short copy of what the fleet's listeners do (request bodies are bounded by
//! [`read_body`]).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::{Body, to_bytes},
    extract::{Request, State},
    http::{HeaderValue, StatusCode, Version, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use hyper::service::Service as _;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use parking_lot::Mutex;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Notify, OwnedSemaphorePermit, Semaphore, watch},
    task::JoinSet,
    time::{Instant, sleep_until},
};

use crate::config::HttpLimits;

/// Serves `app` until `stop` resolves, then drains connections for at most `grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    stop: impl Future<Output = ()>,
    grace: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(limits.h2_max_header_list_size)
        .keep_alive_interval(limits.h2_keep_alive_interval)
        .keep_alive_timeout(limits.h2_keep_alive_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (drain, draining) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            r = listener.accept() => {
                let Ok((sock, peer)) = r else {
                    tokio::time::sleep(Duration::from_millis(50)).await; // out of descriptors: do not spin
                    continue;
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "connection refused: max_connections");
                    continue;
                };
                let (app, builder, limits) = (app.clone(), builder.clone(), limits.clone());
                conns.spawn(connection(sock, app, builder, limits, draining.clone(), slot));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            () = &mut stop => break,
        }
    }
    drop(listener);
    let _ = drain.send(true);
    if tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!("sandbox: connections still open after the grace period; closing them");
    }
}

/// Requests of one connection: how many, how many in flight, when the last one ended.
#[derive(Default)]
struct Activity {
    requests: AtomicU64,
    in_flight: AtomicUsize,
    idle_since: Mutex<Option<Instant>>,
    changed: Notify,
}

async fn connection(
    sock: TcpStream,
    app: Router,
    builder: auto::Builder<TokioExecutor>,
    limits: HttpLimits,
    mut draining: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let _ = sock.set_nodelay(true);
    let activity = Arc::new(Activity::default());
    let (svc, a) = (TowerToHyperService::new(app), activity.clone());
    let svc = hyper::service::service_fn(move |req| {
        a.requests.fetch_add(1, Ordering::AcqRel);
        a.in_flight.fetch_add(1, Ordering::AcqRel);
        let (fut, a) = (svc.call(req), a.clone());
        async move {
            let resp = fut.await; // the bodies are small and buffered: written right after this
            if a.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
                *a.idle_since.lock() = Some(Instant::now());
            }
            a.changed.notify_one();
            resp
        }
    });
    let conn = builder.serve_connection(TokioIo::new(sock), svc);
    tokio::pin!(conn);
    let accepted = Instant::now();
    let mut give_up: Option<Instant> = None; // closing: when to stop waiting for the peer
    loop {
        let due = give_up.or_else(|| match (activity.requests.load(Ordering::Acquire), *activity.idle_since.lock()) {
            (0, _) => Some(accepted + limits.header_read_timeout),
            (_, Some(t)) if activity.in_flight.load(Ordering::Acquire) == 0 => Some(t + limits.idle_timeout),
            _ => None,
        });
        let changed = activity.changed.notified();
        tokio::select! {
            _ = conn.as_mut() => return,
            () = async { match due { Some(d) => sleep_until(d).await, None => std::future::pending().await } } => {
                if give_up.is_some() || activity.requests.load(Ordering::Acquire) == 0 {
                    return; // no request head in time, or a peer that never finishes closing
                }
                conn.as_mut().graceful_shutdown();
                give_up = Some(Instant::now() + limits.header_read_timeout);
            }
            Ok(()) = draining.changed(), if give_up.is_none() => {
                conn.as_mut().graceful_shutdown();
                give_up = Some(Instant::now() + limits.header_read_timeout);
            }
            () = changed => {}
        }
    }
}

/// Reads the whole request body (at most `max` bytes) within the deadline before the handlers
/// run: `413` above `max` (on its Content-Length, before reading), `408` when too slow.
pub(crate) async fn read_body(State((deadline, max)): State<(Duration, usize)>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let refuse = |status: StatusCode, why: &str| {
        let mut r = (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], why.to_owned()).into_response();
        if parts.version < Version::HTTP_2 {
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    };
    if declared.is_some_and(|n| n > max as u64) {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    let bytes = match tokio::time::timeout(deadline, to_bytes(body, max)).await {
        Err(_) => return refuse(StatusCode::REQUEST_TIMEOUT, "request body too slow"),
        Ok(Err(e)) if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) => {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        }
        Ok(Err(_)) => return refuse(StatusCode::BAD_REQUEST, "request body could not be read"),
        Ok(Ok(b)) => b,
    };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}
