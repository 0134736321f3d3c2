//! A test server behind httpserve, well-behaved clients, and a raw HTTP/2 frame writer and
//! reader for the hostile ones.
#![allow(dead_code)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::Path, http::StatusCode, routing::get, routing::post};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use httpserve::{Limits, Listener, ServeMetrics, TowerToHyperService};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::oneshot,
    task::JoinHandle,
    time::{Instant, timeout},
};

/// A generous bound for "closed soon": the limits under test are a few hundred milliseconds.
pub const SOON: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics: Arc<ServeMetrics>,
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<()>,
}

impl TestServer {
    /// Stops accepting and waits for the drain (at most `grace` + 5 s).
    pub async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        timeout(SOON, self.task).await.expect("serve returned after its grace").unwrap();
    }
}

fn router() -> Router {
    Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/echo",
            post(|body: axum::body::Body| async move {
                match axum::body::to_bytes(body, 1 << 20).await {
                    Ok(b) => (StatusCode::OK, b.len().to_string()),
                    Err(_) => (StatusCode::BAD_REQUEST, "unreadable".to_owned()),
                }
            }),
        )
        .route(
            "/sleep/{ms}",
            get(|Path(ms): Path<u64>| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                "slept"
            }),
        )
}

pub async fn serve(limits: Limits) -> TestServer {
    serve_with(limits, None, Duration::from_secs(5)).await
}

pub async fn serve_with(limits: Limits, tls: Option<tokio_rustls::TlsAcceptor>, grace: Duration) -> TestServer {
    let metrics = Arc::new(ServeMetrics::new());
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut listener = Listener::new(tcp, "test", limits, metrics.clone()).unwrap();
    if let Some(a) = tls {
        listener = listener.with_tls(a);
    }
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(listener.serve(
        TowerToHyperService::new(router()),
        async move {
            let _ = stopped.await;
        },
        grace,
    ));
    TestServer { addr, metrics, stop: Some(stop), task }
}

/// A self-signed `localhost` certificate: the server's acceptor and the client's config.
pub fn tls_pair() -> (tokio_rustls::TlsAcceptor, Arc<rustls::ClientConfig>) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec()];
    (tokio_rustls::TlsAcceptor::from(Arc::new(server)), Arc::new(client))
}

/// `GET /ok` over a fresh HTTP/1.1 connection: the status, or the error.
pub async fn get_ok(addr: SocketAddr) -> Result<u16, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::get("/ok").header("host", "x").body(Full::new(Bytes::new())).unwrap();
    let resp = timeout(SOON, send.send_request(req)).await.map_err(|_| "no answer".to_owned())?;
    resp.map(|r| r.status().as_u16()).map_err(|e| e.to_string())
}

/// An HTTP/2 (prior knowledge) client and its connection task.
pub async fn h2_client(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<http_body_util::combinators::BoxBody<Bytes, httpserve::BoxError>>,
    JoinHandle<()>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    (
        send,
        tokio::spawn(async move {
            let _ = conn.await;
        }),
    )
}

pub fn full(b: impl Into<Bytes>) -> http_body_util::combinators::BoxBody<Bytes, httpserve::BoxError> {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

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

// === raw HTTP/2 ===

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

/// A header block of literal fields (no indexing, no Huffman).
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

/// A request's HEADERS frame.
pub fn request(stream: u32, method: &str, path: &str, end_stream: bool) -> Vec<u8> {
    let block = header_block(&[(":method", method), (":scheme", "http"), (":path", path), (":authority", "localhost")]);
    frame(HEADERS, END_HEADERS | if end_stream { END_STREAM } else { 0 }, stream, &block)
}

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
        u32::from_be_bytes(self.payload[at..at + 4].try_into().unwrap())
    }

    /// SETTINGS parameters.
    pub fn settings(&self) -> Vec<(u16, u32)> {
        self.payload
            .chunks(6)
            .map(|c| (u16::from_be_bytes([c[0], c[1]]), u32::from_be_bytes([c[2], c[3], c[4], c[5]])))
            .collect()
    }
}

/// The next frame, `None` at EOF, an error on timeout.
pub async fn read_frame(sock: &mut TcpStream) -> std::io::Result<Option<Frame>> {
    let mut head = [0u8; 9];
    match timeout(SOON, sock.read_exact(&mut head)).await {
        Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no frame")),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
        Ok(r) => r?,
    };
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    sock.read_exact(&mut payload).await?;
    let stream = u32::from_be_bytes(head[5..9].try_into().unwrap()) & 0x7fff_ffff;
    Ok(Some(Frame { kind: head[3], flags: head[4], stream, payload }))
}

/// Frames until one matches, `None` at EOF.
pub async fn until(sock: &mut TcpStream, want: impl Fn(&Frame) -> bool) -> Option<Frame> {
    while let Some(f) = read_frame(sock).await.unwrap() {
        if want(&f) {
            return Some(f);
        }
    }
    None
}

/// Connects and sends the preface.
pub async fn h2_raw(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&preface()).await.unwrap();
    s
}

/// Waits (at most [`SOON`]) until `cond` holds: the server counts a close after the client saw it.
pub async fn eventually(cond: impl Fn() -> bool) {
    let deadline = Instant::now() + SOON;
    while !cond() {
        assert!(Instant::now() < deadline, "the condition did not come true");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A request body that sends `first` and then nothing, forever.
pub fn stalled(first: &'static str) -> http_body_util::combinators::BoxBody<Bytes, httpserve::BoxError> {
    struct Stalled(Option<Bytes>);
    impl hyper::body::Body for Stalled {
        type Data = Bytes;
        type Error = httpserve::BoxError;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            match self.0.take() {
                Some(b) => std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(b)))),
                None => std::task::Poll::Pending,
            }
        }
    }
    Stalled(Some(Bytes::from_static(first.as_bytes()))).boxed()
}
