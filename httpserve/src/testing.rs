//! Hostile and stalled clients for tests of any listener: raw sockets that trickle or hold,
//! hand-built HTTP/2 frames, a request body that never ends. Loopback only; deadlines are
//! generous ([`SOON`]) so a slow machine cannot fail a test.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, combinators::BoxBody};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::{Instant, sleep, timeout},
};

use crate::BoxError;

/// A generous bound for "closed soon": limits under test are a few hundred milliseconds.
pub const SOON: Duration = Duration::from_secs(10);

/// Reads (and discards) until the peer closes; `Some(elapsed)` if it did within `within`.
pub async fn closed_within(sock: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    timeout(within, async {
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
    .map(|()| start.elapsed())
}

/// Sends `head` one byte per `every`; `Some(elapsed)` if the server closed the connection before
/// the last byte (within [`SOON`]), `None` if it took the whole head.
pub async fn trickle(addr: SocketAddr, head: &[u8], every: Duration) -> Option<Duration> {
    let sock = TcpStream::connect(addr).await.ok()?;
    let (mut r, mut w) = sock.into_split();
    let head = head.to_vec();
    let writer = tokio::spawn(async move {
        for b in head {
            if w.write_all(&[b]).await.is_err() {
                return;
            }
            sleep(every).await;
        }
        std::future::pending::<()>().await;
    });
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    let closed = timeout(SOON, async {
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    let finished = writer.is_finished();
    writer.abort();
    (closed.is_ok() && !finished).then(|| start.elapsed())
}

/// Sends `head`, then `chunk` every `every` until the server closes; what the server answered
/// (empty if it said nothing within [`SOON`]).
pub async fn slow_body(addr: SocketAddr, head: &[u8], chunk: &'static [u8], every: Duration) -> String {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(head).await.unwrap();
    let (mut r, mut w) = sock.into_split();
    let writer = tokio::spawn(async move {
        while w.write_all(chunk).await.is_ok() {
            sleep(every).await;
        }
    });
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = timeout(SOON, async {
        while let Ok(n @ 1..) = r.read(&mut buf).await {
            out.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    writer.abort();
    String::from_utf8_lossy(&out).into_owned()
}

/// A request body that sends `first` and then nothing, forever.
pub fn stalled(first: &'static str) -> BoxBody<Bytes, BoxError> {
    struct Stalled(Option<Bytes>);
    impl hyper::body::Body for Stalled {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
            match self.0.take() {
                Some(b) => std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(b)))),
                None => std::task::Poll::Pending,
            }
        }
    }
    Stalled(Some(Bytes::from_static(first.as_bytes()))).boxed()
}

// === raw HTTP/2 (RFC 9113 frames, RFC 7541 literal header fields) ===

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const END_STREAM: u8 = 1;
pub const END_HEADERS: u8 = 4;

pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend([kind, flags]);
    f.extend(stream.to_be_bytes());
    f.extend(payload);
    f
}

/// The client preface and an empty SETTINGS frame.
pub fn preface() -> Vec<u8> {
    let mut v = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    v.extend(frame(SETTINGS, 0, 0, &[]));
    v
}

fn hpack_int(out: &mut Vec<u8>, n: usize) {
    if n < 127 {
        out.push(n as u8);
        return;
    }
    out.push(127);
    let mut rest = n - 127;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// A header block of literal fields (without indexing, no Huffman).
pub fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0);
        hpack_int(&mut out, name.len());
        out.extend(name.as_bytes());
        hpack_int(&mut out, value.len());
        out.extend(value.as_bytes());
    }
    out
}

/// A request's HEADERS frame, with `extra` fields after the pseudo-headers.
pub fn request_with(stream: u32, method: &str, path: &str, extra: &[(&str, &str)], end_stream: bool) -> Vec<u8> {
    let mut fields = vec![(":method", method), (":scheme", "http"), (":path", path), (":authority", "localhost")];
    fields.extend_from_slice(extra);
    frame(HEADERS, END_HEADERS | if end_stream { END_STREAM } else { 0 }, stream, &header_block(&fields))
}

/// A request's HEADERS frame.
pub fn request(stream: u32, method: &str, path: &str, end_stream: bool) -> Vec<u8> {
    request_with(stream, method, path, &[], end_stream)
}

/// One received frame.
#[derive(Debug)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY.
    pub fn code(&self) -> u32 {
        let at = if self.kind == GOAWAY { 4 } else { 0 };
        u32::from_be_bytes(self.payload[at..at + 4].try_into().expect("4 bytes"))
    }

    /// SETTINGS parameters (identifier, value).
    pub fn settings(&self) -> Vec<(u16, u32)> {
        self.payload
            .chunks(6)
            .map(|c| (u16::from_be_bytes([c[0], c[1]]), u32::from_be_bytes([c[2], c[3], c[4], c[5]])))
            .collect()
    }
}

/// The next frame, `None` at EOF, an error if none came within [`SOON`].
pub async fn read_frame(sock: &mut TcpStream) -> std::io::Result<Option<Frame>> {
    let mut head = [0u8; 9];
    match timeout(SOON, sock.read_exact(&mut head)).await {
        Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no frame")),
        Ok(Err(e)) if matches!(e.kind(), std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset) => {
            return Ok(None);
        }
        Ok(r) => r?,
    };
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    sock.read_exact(&mut payload).await?;
    let stream = u32::from_be_bytes(head[5..9].try_into().expect("4 bytes")) & 0x7fff_ffff;
    Ok(Some(Frame { kind: head[3], flags: head[4], stream, payload }))
}

/// Frames until one matches; `None` at EOF.
pub async fn until(sock: &mut TcpStream, want: impl Fn(&Frame) -> bool) -> Option<Frame> {
    while let Some(f) = read_frame(sock).await.expect("a frame within SOON") {
        if want(&f) {
            return Some(f);
        }
    }
    None
}

/// Connects and sends the preface.
pub async fn h2_raw(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(&preface()).await.expect("preface");
    s
}

/// Waits (at most [`SOON`]) until `cond` holds: a server counts a close after its client saw it.
pub async fn eventually(cond: impl Fn() -> bool) {
    let deadline = Instant::now() + SOON;
    while !cond() {
        assert!(Instant::now() < deadline, "the condition did not come true within {SOON:?}");
        sleep(Duration::from_millis(20)).await;
    }
}
