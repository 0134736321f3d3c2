//! An HTTP/1.1 client that times every phase, over `netem` links.
//!
//! Each new connection pays DNS and the TCP handshake through the [`netem::Connector`] (so they
//! cost what they cost on the emulated link), then TLS (rustls, whose round trips cross the link),
//! then the request: time to first byte of the response head, and transfer of the body. Idle
//! connections are kept per origin for the rest of the run, as a phone's browser would; a reused
//! connection reports zero for dns, connect and tls.

use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use netem::{ConnectError, Connector};
use parking_lot::Mutex;
use rustls::pki_types::ServerName;
use tokio::time::Instant;
use url::Url;

use crate::{outcome::Outcome, trace::Phases};

/// Largest response body read; more is an error (a probe must not buffer without bound).
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// What the server answered, with the time each phase took.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub phases: Phases,
    /// The request went over a kept-alive connection.
    pub reused: bool,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a request got no response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    #[error("invalid URL `{0}`")]
    InvalidUrl(String),
    #[error("{0}")]
    Connect(String),
    #[error("TLS handshake with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("{0}")]
    Io(String),
    #[error("response body larger than {MAX_BODY} bytes")]
    BodyTooLarge,
}

impl HttpError {
    /// The failure class this error belongs to.
    pub fn outcome(&self) -> Outcome {
        match self {
            HttpError::Tls { .. } => Outcome::TlsError,
            HttpError::InvalidUrl(_) => Outcome::AssertionFailed,
            HttpError::BodyTooLarge => Outcome::GatewayError,
            HttpError::Connect(_) | HttpError::Io(_) => Outcome::NetworkError,
        }
    }
}

/// A request to send.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    /// (content type, body)
    pub body: Option<(String, Bytes)>,
}

type Origin = (String, String, u16);

/// A client for one run: one device's connector, one TLS configuration, kept-alive connections.
pub struct HttpClient {
    connector: Arc<Connector>,
    tls: Arc<rustls::ClientConfig>,
    idle: Mutex<HashMap<Origin, Vec<SendRequest<Full<Bytes>>>>>,
}

/// TLS settings for journeys: the Mozilla roots plus any extra CA certificates, HTTP/1.1.
pub fn tls_config(extra_roots: &[rustls::pki_types::CertificateDer<'static>]) -> Arc<rustls::ClientConfig> {
    tls_config_with_alpn(extra_roots, &[b"http/1.1"])
}

/// The fleet's TLS client settings: the Mozilla roots (webpki-roots) plus any extra CA
/// certificates, the ring provider, and the given ALPN protocols in order of preference.
pub fn tls_config_with_alpn(
    extra_roots: &[rustls::pki_types::CertificateDer<'static>],
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for c in extra_roots {
        let _ = roots.add(c.clone());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

impl HttpClient {
    pub fn new(connector: Arc<Connector>, tls: Arc<rustls::ClientConfig>) -> HttpClient {
        HttpClient { connector, tls, idle: Mutex::new(HashMap::new()) }
    }

    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// Sends one request and reads the whole response.
    pub async fn send(&self, spec: &RequestSpec) -> Result<Response, HttpError> {
        let mut phases = Phases::default();
        self.send_recording(spec, &mut phases).await
    }

    /// [`send`](HttpClient::send), writing each phase into `phases` as it completes, so a caller
    /// whose deadline drops the future still knows how far the exchange got (DNS, connect and TLS
    /// done; the wait for the answer is the rest).
    pub async fn send_recording(&self, spec: &RequestSpec, phases: &mut Phases) -> Result<Response, HttpError> {
        let url = &spec.url;
        let scheme = url.scheme().to_owned();
        if scheme != "http" && scheme != "https" {
            return Err(HttpError::InvalidUrl(format!("{url} (only http and https)")));
        }
        let host = url.host_str().ok_or_else(|| HttpError::InvalidUrl(url.to_string()))?.to_owned();
        let port = url.port_or_known_default().ok_or_else(|| HttpError::InvalidUrl(url.to_string()))?;
        let origin = (scheme.clone(), host.clone(), port);

        let (mut sender, mut reused) = match self.take_idle(&origin).await {
            Some(s) => (s, true),
            None => (self.open(&scheme, &host, port, phases).await?, false),
        };

        let req = build_request(spec, &host, port)?;
        let mut sent = Instant::now();
        let resp = match sender.try_send_request(req).await {
            Ok(resp) => resp,
            // A kept connection the server closed while idle (its keep-alive timeout raced our
            // request): once, on a fresh connection, as browsers do — when the request never
            // left, or it is idempotent and no answer began (RFC 9110 §9.2.2).
            Err(mut e) if reused && retry_on_fresh(&e, &spec.method) => {
                tracing::debug!(error = %describe_hyper(e.error()), "kept connection was closed; retrying on a new one");
                let req = match e.take_message() {
                    Some(req) => req,
                    None => build_request(spec, &host, port)?,
                };
                sender = self.open(&scheme, &host, port, phases).await?;
                reused = false;
                sent = Instant::now();
                sender.send_request(req).await.map_err(|e| HttpError::Io(describe_hyper(&e)))?
            }
            Err(e) => return Err(HttpError::Io(describe_hyper(e.error()))),
        };
        let head = Instant::now();
        phases.ttfb = head - sent;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_BODY).collect().await.map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                HttpError::BodyTooLarge
            } else {
                HttpError::Io(format!("reading the response body: {e}"))
            }
        })?;
        phases.transfer = head.elapsed();
        let keep = !parts.headers.get(header::CONNECTION).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        if keep && !sender.is_closed() {
            self.idle.lock().entry(origin).or_default().push(sender);
        }
        Ok(Response { status: parts.status, headers: parts.headers, body: body.to_bytes(), phases: *phases, reused })
    }

    async fn take_idle(&self, origin: &Origin) -> Option<SendRequest<Full<Bytes>>> {
        loop {
            let candidate = self.idle.lock().get_mut(origin).and_then(Vec::pop)?;
            let mut s = candidate;
            if !s.is_closed() && s.ready().await.is_ok() {
                return Some(s);
            }
        }
    }

    async fn open(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
        phases: &mut Phases,
    ) -> Result<SendRequest<Full<Bytes>>, HttpError> {
        let conn = self.connector.connect(host, port).await.map_err(|e| HttpError::Connect(connect_message(&e)))?;
        phases.dns = conn.timings.dns;
        phases.connect = conn.timings.connect;
        if scheme == "https" {
            let name = ServerName::try_from(host.to_owned()).map_err(|_| HttpError::InvalidUrl(host.to_owned()))?;
            let t = Instant::now();
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, conn.stream)
                .await
                .map_err(|e| HttpError::Tls { host: host.to_owned(), reason: e.to_string() })?;
            phases.tls = t.elapsed();
            handshake(tls).await
        } else {
            handshake(conn.stream).await
        }
    }
}

async fn handshake<T>(io: T) -> Result<SendRequest<Full<Bytes>>, HttpError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| HttpError::Io(format!("HTTP handshake: {}", describe_hyper(&e))))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "HTTP connection ended with an error");
        }
    });
    Ok(sender)
}

fn build_request(spec: &RequestSpec, host: &str, port: u16) -> Result<Request<Full<Bytes>>, HttpError> {
    let url = &spec.url;
    let mut path = url.path().to_owned();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let host_header = match url.port() {
        Some(_) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let mut req = Request::builder().method(spec.method.clone()).uri(path);
    let headers = req.headers_mut().expect("a fresh builder has headers");
    headers
        .insert(header::HOST, HeaderValue::from_str(&host_header).map_err(|_| HttpError::InvalidUrl(url.to_string()))?);
    headers.insert(header::USER_AGENT, HeaderValue::from_static(concat!("savanna-pulse/", env!("CARGO_PKG_VERSION"))));
    if let Some((ct, _)) = &spec.body {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(ct).map_err(|_| HttpError::InvalidUrl(format!("content type {ct:?}")))?,
        );
    }
    for (k, v) in &spec.headers {
        let name =
            HeaderName::from_bytes(k.as_bytes()).map_err(|_| HttpError::InvalidUrl(format!("header name {k:?}")))?;
        let value = HeaderValue::from_str(v).map_err(|_| HttpError::InvalidUrl(format!("value of header {k}")))?;
        headers.insert(name, value);
    }
    let body = spec.body.as_ref().map(|(_, b)| b.clone()).unwrap_or_default();
    req.body(Full::new(body)).map_err(|e| HttpError::InvalidUrl(e.to_string()))
}

/// Whether a request that failed on a kept connection may be sent again on a new one: it never
/// left (hyper hands it back), or it is idempotent and the connection closed before any answer.
/// A POST that may have reached the server is never sent twice (a payment must not be doubled).
fn retry_on_fresh(e: &hyper::client::conn::TrySendError<Request<Full<Bytes>>>, method: &Method) -> bool {
    let idempotent =
        matches!(*method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE);
    e.message().is_some() || (idempotent && e.error().is_incomplete_message())
}

fn connect_message(e: &ConnectError) -> String {
    match e {
        ConnectError::Dns { .. } | ConnectError::NoAddress { .. } | ConnectError::DnsLost { .. } => format!("DNS: {e}"),
        _ => e.to_string(),
    }
}

fn describe_hyper(e: &hyper::Error) -> String {
    use std::error::Error;
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use netem::Profile;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
    };

    use super::*;

    /// Reads one request (head and, by Content-Length, body); `false` at end of stream.
    async fn read_request(c: &mut TcpStream) -> bool {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            if c.read(&mut byte).await.unwrap_or(0) == 0 {
                return false;
            }
            buf.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
        let mut body = vec![0u8; len];
        c.read_exact(&mut body).await.is_ok()
    }

    /// A server whose first connection answers once, then closes when the second request on it
    /// arrives, unanswered (its idle timeout raced the request); later connections answer `fresh`.
    async fn racing_server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if n == 0 {
                        read_request(&mut c).await;
                        c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst").await.unwrap();
                        read_request(&mut c).await;
                        return; // closed, unanswered
                    }
                    while read_request(&mut c).await {
                        c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh").await.unwrap();
                    }
                });
            }
        });
        (addr, accepted)
    }

    fn client() -> HttpClient {
        HttpClient::new(Arc::new(Connector::new(Profile::unshaped("test"), 1)), tls_config(&[]))
    }

    fn spec(method: Method, addr: std::net::SocketAddr) -> RequestSpec {
        let body = (method == Method::POST).then(|| ("application/json".to_owned(), Bytes::from_static(b"{}")));
        RequestSpec { method, url: Url::parse(&format!("http://{addr}/x")).unwrap(), headers: vec![], body }
    }

    #[tokio::test]
    async fn an_idempotent_request_on_a_closed_kept_connection_is_sent_once_more_on_a_new_one() {
        let (addr, accepted) = racing_server().await;
        let http = client();
        let first = http.send(&spec(Method::GET, addr)).await.unwrap();
        assert_eq!((&first.body[..], first.reused), (&b"first"[..], false));
        let second = http.send(&spec(Method::GET, addr)).await.unwrap();
        assert_eq!(&second.body[..], b"fresh");
        assert!(!second.reused, "answered on a new connection, whose set-up is timed");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_post_that_may_have_reached_the_server_is_not_sent_twice() {
        let (addr, accepted) = racing_server().await;
        let http = client();
        http.send(&spec(Method::POST, addr)).await.unwrap();
        let err = http.send(&spec(Method::POST, addr)).await.unwrap_err();
        assert!(matches!(err, HttpError::Io(_)), "{err:?}");
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "no second connection for a POST");
    }
}
