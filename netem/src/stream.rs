//! [`ShapedStream`]: any tokio byte stream, seen through an emulated link.
//!
//! A shaped stream hands the wrapped stream to a driver task and gives the caller one end of an
//! in-memory pipe. The driver plays the part of the network: it takes bytes as soon as they are
//! offered (so hand-over times are honest), schedules each MSS-sized segment on the direction's
//! [`Link`], and releases it at its delivery time with `sleep_until` on an absolute deadline.
//!
//! Both directions are bounded: a direction holds at most its send buffer (twice the
//! bandwidth-delay product, at least 64 KiB) of undelivered bytes, then stops reading, so a fast
//! writer blocks exactly as it would on a real socket, and a slow reader pushes back on the far end.
//!
//! Closing follows TCP: a shutdown travels behind the bytes already sent; when the caller drops
//! the stream, bytes it already wrote are still delivered, then the wrapped stream is shut down.
//! A broken link (the retransmission limit) or an I/O error on the wrapped stream ends both
//! directions, and the caller's next read or write returns that error.

use std::{
    collections::VecDeque,
    io,
    marker::PhantomData,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf},
    sync::oneshot,
    time::{Instant, sleep_until},
};

use crate::{
    link::{Direction, Link, RadioState, derive_seed},
    profile::{Profile, Rate},
};

/// The radio of one device: shared by every connection it makes, so an idle phone pays the
/// promotion once, whichever connection speaks first. Also the epoch of the links' clocks.
#[derive(Clone)]
pub struct Radio {
    epoch: Instant,
    state: Arc<Mutex<RadioState>>,
}

impl Radio {
    pub fn new(profile: &Profile) -> Radio {
        Radio { epoch: Instant::now(), state: Arc::new(Mutex::new(RadioState::new(profile.radio))) }
    }

    /// Time on the links' clocks.
    pub(crate) fn at(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.epoch)
    }

    pub(crate) fn instant(&self, at: Duration) -> Instant {
        self.epoch + at
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut RadioState) -> R) -> R {
        f(&mut self.state.lock())
    }

    /// Promotions paid so far.
    pub fn promotions(&self) -> u64 {
        self.state.lock().promotions()
    }
}

/// Counters of one shaped connection, readable while it runs.
#[derive(Debug, Default)]
pub struct LinkStats {
    bytes: [AtomicU64; 2],
    retransmissions: [AtomicU64; 2],
}

impl LinkStats {
    fn idx(d: Direction) -> usize {
        match d {
            Direction::Up => 0,
            Direction::Down => 1,
        }
    }

    /// Bytes the caller wrote (up) or read (down).
    pub fn bytes(&self, d: Direction) -> u64 {
        self.bytes[Self::idx(d)].load(Relaxed)
    }

    /// Segments that had to be retransmitted.
    pub fn retransmissions(&self, d: Direction) -> u64 {
        self.retransmissions[Self::idx(d)].load(Relaxed)
    }

    fn add_bytes(&self, d: Direction, n: usize) {
        self.bytes[Self::idx(d)].fetch_add(n as u64, Relaxed);
    }
}

#[derive(Default)]
struct Shared {
    stats: LinkStats,
    /// Why the connection died, for the caller's next read or write.
    error: Mutex<Option<(io::ErrorKind, String)>>,
}

impl Shared {
    fn error(&self) -> Option<io::Error> {
        self.error.lock().as_ref().map(|(k, m)| io::Error::new(*k, m.clone()))
    }
}

/// A byte stream through an emulated link. Writes travel up, reads come down.
pub struct ShapedStream<S> {
    inner: Inner<S>,
    shared: Arc<Shared>,
}

enum Inner<S> {
    /// The profile shapes nothing: no task, no copy.
    Direct(S),
    Shaped {
        pipe: DuplexStream,
        /// Dropped with the stream: tells the driver nobody reads any more.
        _closed: oneshot::Sender<()>,
        _s: PhantomData<fn() -> S>,
    },
}

/// How far ahead of a delivery time the timer is set. tokio's timer wheel fires on 1 ms ticks,
/// rounding deadlines up, so a plain `sleep_until` lands 1.1 ms late at p50 (benches/RESULTS.md);
/// aiming half a tick early centres that rounding on the model's time, so each delivery lands
/// within about ±0.6 ms of it instead of a steady +1.1 ms per crossing. Rates are unaffected:
/// they come from the link clock's absolute deadlines.
pub const TIMER_LEAD: Duration = Duration::from_micros(500);

/// Room made for each read from a source.
const READ_CHUNK: usize = 16 * 1024;
/// Size of the in-memory pipe between the caller and the driver (not counted as link buffer).
const PIPE_BYTES: usize = 16 * 1024;

impl<S> ShapedStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Shapes `inner` with `profile`, with its own radio. `seed` makes the link's randomness
    /// reproducible. Must be called inside a tokio runtime.
    pub fn new(inner: S, profile: &Profile, seed: u64) -> ShapedStream<S> {
        Self::with_radio(inner, profile, seed, Radio::new(profile))
    }

    /// Shapes `inner` with `profile`, sharing `radio` with the device's other connections.
    pub fn with_radio(inner: S, profile: &Profile, seed: u64, radio: Radio) -> ShapedStream<S> {
        let shared = Arc::new(Shared::default());
        if profile.is_passthrough() {
            return ShapedStream { inner: Inner::Direct(inner), shared };
        }
        let (user, pipe) = tokio::io::duplex(PIPE_BYTES);
        let (closed_tx, closed_rx) = oneshot::channel();
        let driver = Driver {
            up: Pump::new(profile, Direction::Up, derive_seed(seed, 0, 0)),
            down: Pump::new(profile, Direction::Down, derive_seed(seed, 0, 1)),
            radio,
            shared: shared.clone(),
        };
        tokio::spawn(driver.run(inner, pipe, closed_rx));
        ShapedStream { inner: Inner::Shaped { pipe: user, _closed: closed_tx, _s: PhantomData }, shared }
    }
}

impl<S> ShapedStream<S> {
    /// Byte and retransmission counters.
    pub fn stats(&self) -> &LinkStats {
        &self.shared.stats
    }

    /// True when bytes go straight through (the profile shapes nothing).
    pub fn is_passthrough(&self) -> bool {
        matches!(self.inner, Inner::Direct(_))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ShapedStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let res = match &mut this.inner {
            Inner::Direct(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Shaped { pipe, .. } => Pin::new(pipe).poll_read(cx, buf),
        };
        if let Poll::Ready(Ok(())) = res {
            let n = buf.filled().len() - before;
            if n == 0
                && let Some(e) = this.shared.error()
            {
                return Poll::Ready(Err(e));
            }
            this.shared.stats.add_bytes(Direction::Down, n);
        }
        res
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ShapedStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let res = match &mut this.inner {
            Inner::Direct(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Shaped { pipe, .. } => {
                if let Some(e) = this.shared.error() {
                    return Poll::Ready(Err(e));
                }
                Pin::new(pipe).poll_write(cx, buf)
            }
        };
        if let Poll::Ready(Ok(n)) = res {
            this.shared.stats.add_bytes(Direction::Up, n);
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.inner {
            Inner::Direct(s) => Pin::new(s).poll_flush(cx),
            Inner::Shaped { pipe, .. } => Pin::new(pipe).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.inner {
            Inner::Direct(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Shaped { pipe, .. } => Pin::new(pipe).poll_shutdown(cx),
        }
    }
}

// === impl Driver ===

struct Driver {
    up: Pump,
    down: Pump,
    radio: Radio,
    shared: Arc<Shared>,
}

impl Driver {
    async fn run<S>(self, inner: S, pipe: DuplexStream, closed: oneshot::Receiver<()>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let Driver { up, down, radio, shared } = self;
        let (inner_rd, inner_wr) = tokio::io::split(inner);
        let (pipe_rd, pipe_wr) = tokio::io::split(pipe);
        let up = up.run(pipe_rd, inner_wr, &radio, &shared);
        let down = async {
            tokio::select! {
                r = down.run(inner_rd, pipe_wr, &radio, &shared) => r,
                // The caller dropped the stream: nobody will read what comes down.
                _ = closed => Ok(()),
            }
        };
        if let Err(e) = tokio::try_join!(up, down) {
            tracing::debug!(error = %e, "shaped connection ended with an error");
            *shared.error.lock() = Some((e.kind(), e.to_string()));
        }
    }
}

/// One direction: reads from `src`, holds each segment until its delivery time, writes to `dst`.
struct Pump {
    link: Link,
    direction: Direction,
    /// Most undelivered bytes held before reading stops (the send buffer).
    capacity: usize,
}

/// Segments on the link (or in retransmission), with their delivery times, and their bytes.
#[derive(Default)]
struct InFlight {
    segs: VecDeque<(Instant, Bytes)>,
    bytes: usize,
}

impl InFlight {
    /// The oldest segment, if it is due by `now`.
    fn pop_due(&mut self, now: Instant) -> Option<Bytes> {
        if self.segs.front().is_none_or(|(t, _)| *t > now) {
            return None;
        }
        let (_, seg) = self.segs.pop_front()?;
        self.bytes -= seg.len();
        Some(seg)
    }
}

impl Pump {
    fn new(profile: &Profile, direction: Direction, seed: u64) -> Pump {
        Pump { link: Link::new(profile, direction, seed), direction, capacity: send_buffer(profile, direction) }
    }

    async fn run<R, W>(mut self, mut src: R, mut dst: W, radio: &Radio, shared: &Shared) -> io::Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut in_flight = InFlight::default();
        // Bytes taken from the source but not yet on the link, and when the oldest arrived.
        let mut pending = BytesMut::new();
        let mut pending_since = Duration::ZERO;
        let mut out = BytesMut::new();
        let mut eof = false;
        loop {
            if eof && pending.is_empty() && in_flight.segs.is_empty() {
                return match dst.shutdown().await {
                    Err(e) if !is_gone(&e) => Err(e),
                    _ => Ok(()),
                };
            }
            if pending.capacity() - pending.len() < READ_CHUNK / 4 {
                pending.reserve(READ_CHUNK);
            }
            let due = in_flight.segs.front().map(|(t, _)| t.checked_sub(TIMER_LEAD).unwrap_or(*t));
            // A partial segment waits for the link to be free, merging with whatever comes next.
            let tail_at = (!pending.is_empty())
                .then(|| radio.instant(self.link.free_at()).checked_sub(TIMER_LEAD).unwrap_or(Instant::now()));
            let was_empty = pending.is_empty();
            tokio::select! {
                biased;
                () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    let now = Instant::now() + TIMER_LEAD;
                    out.clear();
                    while let Some(seg) = in_flight.pop_due(now) {
                        out.extend_from_slice(&seg);
                    }
                    if let Err(e) = dst.write_all(&out).await {
                        // Nobody reads down any more: the caller is gone, not the network.
                        return if self.direction == Direction::Down && is_gone(&e) { Ok(()) } else { Err(e) };
                    }
                    dst.flush().await?;
                }
                () = sleep_until(tail_at.unwrap_or_else(Instant::now)), if tail_at.is_some() => {
                    self.transmit(&mut pending, pending_since, None, &mut in_flight, radio, shared)?;
                }
                r = src.read_buf(&mut pending), if !eof && in_flight.bytes + pending.len() < self.capacity => {
                    if r? == 0 {
                        eof = true;
                        continue;
                    }
                    let now = radio.at(Instant::now());
                    if was_empty {
                        pending_since = now;
                    }
                    self.transmit(&mut pending, pending_since, Some(now), &mut in_flight, radio, shared)?;
                }
            }
        }
    }

    /// Puts every full segment of `pending` on the link, then the partial tail if the link is free
    /// at `now` (or unconditionally when `now` is `None`: the link has just become free).
    fn transmit(
        &mut self,
        pending: &mut BytesMut,
        since: Duration,
        now: Option<Duration>,
        in_flight: &mut InFlight,
        radio: &Radio,
        shared: &Shared,
    ) -> io::Result<()> {
        let mss = self.link.mss();
        loop {
            let full = pending.len() >= mss;
            let tail = !pending.is_empty() && now.is_none_or(|now| self.link.free_at() <= now);
            if !(full || tail) {
                break;
            }
            let seg = pending.split_to(pending.len().min(mss)).freeze();
            let more = !pending.is_empty();
            let s = radio
                .with(|r| self.link.send(since, seg.len(), more, r))
                .map_err(|e| io::Error::new(io::ErrorKind::TimedOut, e))?;
            if s.retransmissions > 0 {
                shared.stats.retransmissions[LinkStats::idx(self.direction)]
                    .fetch_add(u64::from(s.retransmissions), Relaxed);
            }
            in_flight.bytes += seg.len();
            in_flight.segs.push_back((radio.instant(s.deliver_at), seg));
        }
        Ok(())
    }
}

fn is_gone(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::NotConnected | io::ErrorKind::ConnectionReset)
}

/// The most undelivered bytes one direction holds: twice the bandwidth-delay product (with room
/// for jitter and a retransmission timeout), at least 64 KiB and at most 16 MiB.
pub fn send_buffer(profile: &Profile, direction: Direction) -> usize {
    const MIN: usize = 64 * 1024;
    const MAX: usize = 16 * 1024 * 1024;
    let rate = match direction {
        Direction::Up => profile.up,
        Direction::Down => profile.down,
    };
    match rate {
        Rate::Unlimited if profile.one_way_delay.is_zero() => MIN,
        Rate::Unlimited => 4 * 1024 * 1024,
        Rate::Kbps(k) => {
            let window = profile.rtt() + profile.jitter.max_deviation() * 2 + profile.rto();
            let bdp = k * 1000.0 / 8.0 * window.as_secs_f64();
            ((2.0 * bdp) as usize).clamp(MIN, MAX)
        }
    }
}
