//! The request body handlers read (hyper's, under the minimum-rate guard) and the response body
//! that keeps its request counted as in flight until it is sent.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http::Version;
use http_body_util::{BodyExt, combinators::UnsyncBoxBody};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep, sleep_until};

use crate::{BoxError, Error, Limits, conn::InFlight};

/// A request body: hyper's, cut with [`Error::BodyTooSlow`] once it falls below
/// [`Limits::body_min_rate`] after [`Limits::body_rate_grace`].
///
/// The guard runs only while the handler reads: a body nobody polls costs nothing. Its deadline
/// is a timer, so a client that stops sending altogether is cut as surely as one that trickles.
pub struct Body {
    /// `None` once handed to the linger task (on drop).
    inner: Option<Incoming>,
    /// HTTP/2: linger after an early response (see [`Limits::h2_linger_time`]).
    linger: bool,
    limits: Arc<Limits>,
    /// When the request head arrived.
    started: Instant,
    received: u64,
    timer: Option<Pin<Box<Sleep>>>,
    /// Shared with the request's service call, which then answers 408.
    tripped: Arc<AtomicBool>,
}

impl Body {
    pub(crate) fn new(inner: Incoming, version: Version, limits: Arc<Limits>, tripped: Arc<AtomicBool>) -> Body {
        let linger = version == Version::HTTP_2;
        Body { inner: Some(inner), linger, limits, started: Instant::now(), received: 0, timer: None, tripped }
    }

    fn incoming(&mut self) -> &mut Incoming {
        self.inner.as_mut().expect("taken only on drop")
    }

    fn trip(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.tripped.store(true, Ordering::Release);
        let err = Error::BodyTooSlow { min_rate: self.limits.body_min_rate, grace: self.limits.body_rate_grace };
        Poll::Ready(Some(Err(Box::new(err))))
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.tripped.load(Ordering::Acquire) {
            return this.trip();
        }
        match Pin::new(this.incoming()).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.started + this.limits.body_deadline(this.received);
                if Instant::now() >= deadline {
                    return this.trip();
                }
                let timer = this.timer.get_or_insert_with(|| Box::pin(sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                ready!(timer.as_mut().poll(cx));
                this.trip()
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(Incoming::size_hint).unwrap_or_default()
    }
}

impl Drop for Body {
    /// An HTTP/2 body dropped unread (its handler answered early): read and discard the rest for a
    /// bounded time, so the client gets to finish its upload and read the answer.
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else { return };
        if !self.linger || inner.is_end_stream() || self.tripped.load(Ordering::Acquire) {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(linger(inner, self.limits.h2_linger_time, self.limits.h2_linger_bytes));
        }
    }
}

/// Discards `body` until it ends, `time` passes or more than `bytes` arrive; dropping it then
/// resets the stream.
async fn linger(mut body: Incoming, time: std::time::Duration, bytes: u64) {
    let mut left = bytes;
    let _ = tokio::time::timeout(time, async {
        while let Some(Ok(frame)) = body.frame().await {
            let n = frame.data_ref().map_or(0, |d| d.len() as u64);
            if n > left {
                return;
            }
            left -= n;
        }
    })
    .await;
}

/// A response body; its request counts as in flight (the connection is not idle) until it is
/// sent or dropped.
pub struct ResponseBody {
    inner: UnsyncBoxBody<Bytes, BoxError>,
    _in_flight: InFlight,
}

impl ResponseBody {
    pub(crate) fn new(inner: UnsyncBoxBody<Bytes, BoxError>, in_flight: InFlight) -> ResponseBody {
        ResponseBody { inner, _in_flight: in_flight }
    }
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
