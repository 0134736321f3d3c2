//! The per-connection wrapper around the caller's service: counts requests in flight (for the
//! idle and first-request deadlines), puts the body guard on each request, and answers 408 for a
//! request whose body the guard cut.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, atomic::AtomicBool, atomic::Ordering},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, service::Service};

use crate::{
    BoxError, Limits,
    body::{Body, ResponseBody},
    conn::ConnState,
    metrics::ServeMetrics,
};

pub(crate) struct Guarded<S> {
    pub inner: S,
    pub conn: Arc<ConnState>,
    pub limits: Arc<Limits>,
    pub metrics: Arc<ServeMetrics>,
    pub name: Arc<str>,
}

/// What a listener serves: a service from requests with a bounded [`Body`] to responses of `B`
/// (the bounds written once; every such service is one).
pub trait Handler<B>:
    Service<Request<Body>, Response = Response<B>, Future: Send + 'static, Error: Into<BoxError>>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T, B> Handler<B> for T where
    T: Service<Request<Body>, Response = Response<B>, Future: Send + 'static, Error: Into<BoxError>>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// A response body a listener can send.
pub trait ReplyBody: hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static {}

impl<T> ReplyBody for T where T: hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static {}

impl<S, B> Service<Request<Incoming>> for Guarded<S>
where
    S: Service<Request<Body>, Response = Response<B>, Future: Send + 'static, Error: Into<BoxError>>,
    B: ReplyBody,
{
    type Response = Response<ResponseBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, BoxError>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let version = req.version();
        let in_flight = self.conn.begin(version);
        let tripped = Arc::new(AtomicBool::new(false));
        let fut = self.inner.call(req.map(|b| Body::new(b, version, self.limits.clone(), tripped.clone())));
        let (limits, metrics, name) = (self.limits.clone(), self.metrics.clone(), self.name.clone());
        Box::pin(async move {
            let resp = fut.await.map_err(Into::into)?;
            let resp = if tripped.load(Ordering::Acquire) {
                metrics.body_too_slow(&name);
                tracing::debug!(listener = %name, "request body below the minimum rate; answered 408");
                too_slow(version, &limits)
            } else {
                resp.map(|b| b.map_err(Into::into).boxed_unsync())
            };
            Ok(resp.map(|b| ResponseBody::new(b, in_flight)))
        })
    }
}

/// `408`, and on HTTP/1.1 `Connection: close` (the rest of the body is never read).
fn too_slow(
    version: Version,
    limits: &Limits,
) -> Response<http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>> {
    let text = format!(
        "{{\"status\":\"error\",\"reason\":\"the request body arrived slower than {} bytes/s after {} ms\"}}",
        limits.body_min_rate,
        limits.body_rate_grace.as_millis()
    );
    let mut resp = Response::new(Full::new(Bytes::from(text)).map_err(|e| match e {}).boxed_unsync());
    *resp.status_mut() = StatusCode::REQUEST_TIMEOUT;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if version < Version::HTTP_2 {
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}
