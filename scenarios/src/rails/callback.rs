//! The HTTP listener that receives every rail's payment callbacks for the player.
//!
//! A callback arrives at `/{rail}/{rest}` (the rail's name first; what follows is whatever the rail
//! put in the URL it gave the provider, often the payment's reference), by `POST` or `PUT` (MTN
//! sends its callbacks either way). `/stk/callback` is Daraja's path from before the rails, kept so
//! URLs given to Daraja earlier still work. The rail reads the body (`rails::read_callback`); a
//! body that is not its callback gets a 400 and is dropped.
//!
//! Results are kept by (rail, payment id) until a step takes them (a callback may arrive before
//! the request's own reply has been read). Duplicates are ignored; at most [`MAX_KEPT`] unclaimed
//! callbacks are kept, oldest dropped first.
//!
//! The listener is reachable from outside (the providers call it), so it serves HTTP/1.1 and
//! HTTP/2 through httpserve's bounds on slow, idle and hostile clients (listener
//! `payment_callback`).

use std::{collections::VecDeque, convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::{Request, Response, header, service::service_fn};
use parking_lot::Mutex;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use super::{RailResult, read_callback};

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
    kept: Mutex<VecDeque<(&'static str, RailResult)>>,
    seen: Mutex<VecDeque<(&'static str, String)>>,
    arrivals: watch::Sender<u64>,
}

/// The name of this listener in metrics and logs.
pub const LISTENER: &str = "payment_callback";

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

    /// The listener's own base URL (`http://addr`), when nothing sits in between; a rail's
    /// callback URL is this, then `/{rail}/{reference}`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits (until the caller's deadline drops this future) for the callback of the payment
    /// `id` on `rail`.
    pub async fn wait(&self, rail: &str, id: &str) -> RailResult {
        let mut rx = self.state.arrivals.subscribe();
        loop {
            {
                let mut kept = self.state.kept.lock();
                if let Some(i) = kept.iter().position(|(r, res)| *r == rail && res.id == id) {
                    return kept.remove(i).expect("index is in range").1;
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
    if req.method() != hyper::Method::POST && req.method() != hyper::Method::PUT {
        return reply(405, r#"{"ResultCode":1,"ResultDesc":"POST or PUT only"}"#);
    }
    let Some((rail, rest)) = route(req.uri().path()) else {
        return reply(404, r#"{"ResultCode":1,"ResultDesc":"no payment rail at this path"}"#);
    };
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
    let result = match read_callback(rail, &rest, &body.to_bytes()).expect("route() knows the rail") {
        Ok(r) => r,
        Err(e) => {
            // The parsers' messages name fields, never values: nothing of the body is logged.
            tracing::warn!(rail, error = %e, "a payment callback could not be read");
            return reply(400, r#"{"ResultCode":1,"ResultDesc":"not a callback of this rail"}"#);
        }
    };
    {
        let mut seen = st.seen.lock();
        let key = (rail, result.id.clone());
        if seen.contains(&key) {
            // Providers may deliver a callback more than once; the first one counts.
            return reply(200, r#"{"ResultCode":0,"ResultDesc":"Duplicate ignored"}"#);
        }
        seen.push_back(key);
        if seen.len() > MAX_KEPT {
            seen.pop_front();
        }
        let mut kept = st.kept.lock();
        kept.push_back((rail, result));
        if kept.len() > MAX_KEPT {
            kept.pop_front();
        }
    }
    st.arrivals.send_modify(|n| *n += 1);
    reply(200, r#"{"ResultCode":0,"ResultDesc":"Accepted"}"#)
}

/// The rail a callback path names, and what follows its name (percent-decoded, without the
/// leading `/`); `/stk/callback` is Daraja's.
fn route(path: &str) -> Option<(&'static str, String)> {
    if path == "/stk/callback" {
        return Some(("mpesa-ke", String::new()));
    }
    let rest = path.strip_prefix('/')?;
    let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let rail = super::RailConf::NAMES.iter().find(|n| **n == name)?;
    let tail = percent_encoding::percent_decode_str(tail).decode_utf8().ok()?.into_owned();
    Some((rail, tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_rail_first() {
        assert_eq!(route("/stk/callback"), Some(("mpesa-ke", String::new())));
        assert_eq!(route("/mpesa-ke/abc"), Some(("mpesa-ke", "abc".into())));
        assert_eq!(route("/mpesa-ke"), Some(("mpesa-ke", String::new())));
        assert_eq!(route("/mpesa-ke/a%2Fb"), Some(("mpesa-ke", "a/b".into())));
        assert_eq!(route("/mpesa-ke/%ff"), None, "not UTF-8");
        assert_eq!(route("/nobody/abc"), None);
        assert_eq!(route("/"), None);
    }
}
