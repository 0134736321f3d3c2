//! The HTTP listener that receives Daraja's STK callbacks for the player.
//!
//! Callbacks are kept by CheckoutRequestID until a step takes them (a callback may arrive before
//! the push's own reply has been read). Duplicates are ignored; at most [`MAX_KEPT`] unclaimed
//! callbacks are kept, oldest dropped first.
//!
//! The listener is reachable from outside (Daraja calls it), so it serves HTTP/1.1 and HTTP/2
//! through httpserve's bounds on slow, idle and hostile clients (listener `daraja_callback`).

use std::{collections::VecDeque, convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::{Request, Response, header, service::service_fn};
use parking_lot::Mutex;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use super::codes::{StkResult, parse_callback};

/// Unclaimed callbacks kept at most.
pub const MAX_KEPT: usize = 10_000;
/// Largest callback body accepted.
const MAX_BODY: usize = 64 * 1024;

/// A running callback listener.
pub struct CallbackServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

struct State {
    kept: Mutex<VecDeque<StkResult>>,
    seen: Mutex<VecDeque<String>>,
    arrivals: watch::Sender<u64>,
}

/// The name of this listener in metrics and logs.
pub const LISTENER: &str = "daraja_callback";

impl CallbackServer {
    /// Listens on `listen` with `limits`; refusals are counted in `metrics`.
    pub async fn start(
        listen: &str,
        limits: httpserve::Limits,
        metrics: Arc<httpserve::ServeMetrics>,
    ) -> std::io::Result<CallbackServer> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let listener = httpserve::Listener::new(listener, LISTENER, limits, metrics)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let (arrivals, _) = watch::channel(0u64);
        let state = Arc::new(State { kept: Mutex::default(), seen: Mutex::default(), arrivals });
        let st = state.clone();
        let svc = service_fn(move |req| handle(st.clone(), req));
        let task = tokio::spawn(listener.serve(svc, std::future::pending(), std::time::Duration::ZERO));
        Ok(CallbackServer { addr, state, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `CallBackURL` to give Daraja when nothing sits in between.
    pub fn url(&self) -> String {
        format!("http://{}/stk/callback", self.addr)
    }

    /// Waits (until the caller's deadline drops this future) for the callback of `checkout_id`.
    pub async fn wait(&self, checkout_id: &str) -> StkResult {
        let mut rx = self.state.arrivals.subscribe();
        loop {
            {
                let mut kept = self.state.kept.lock();
                if let Some(i) = kept.iter().position(|r| r.checkout_request_id == checkout_id) {
                    return kept.remove(i).expect("index is in range");
                }
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Drop for CallbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(st: Arc<State>, req: Request<httpserve::Body>) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: u16, body: &'static str| {
        Ok(Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .expect("static response"))
    };
    if req.method() != hyper::Method::POST {
        return reply(405, r#"{"ResultCode":1,"ResultDesc":"POST only"}"#);
    }
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return reply(413, r#"{"ResultCode":1,"ResultDesc":"body too large"}"#);
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b,
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return reply(413, r#"{"ResultCode":1,"ResultDesc":"body too large"}"#);
        }
        // A body below the minimum rate is answered 408 by the listener; anything else is unreadable.
        Err(_) => return reply(400, r#"{"ResultCode":1,"ResultDesc":"body could not be read"}"#),
    };
    let result = match parse_callback(&body.to_bytes()) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "an STK callback could not be read");
            return reply(400, r#"{"ResultCode":1,"ResultDesc":"not an STK callback"}"#);
        }
    };
    {
        let mut seen = st.seen.lock();
        if seen.contains(&result.checkout_request_id) {
            // Daraja may deliver a callback more than once; the first one counts.
            return reply(200, r#"{"ResultCode":0,"ResultDesc":"Duplicate ignored"}"#);
        }
        seen.push_back(result.checkout_request_id.clone());
        if seen.len() > MAX_KEPT {
            seen.pop_front();
        }
        let mut kept = st.kept.lock();
        kept.push_back(result);
        if kept.len() > MAX_KEPT {
            kept.pop_front();
        }
    }
    st.arrivals.send_modify(|n| *n += 1);
    reply(200, r#"{"ResultCode":0,"ResultDesc":"Accepted"}"#)
}
