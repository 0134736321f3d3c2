//! A test server behind httpserve, well-behaved clients, and a raw HTTP/2 frame writer and
//! reader for the hostile ones.
#![allow(dead_code)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::Path, http::StatusCode, routing::get, routing::post};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
pub use httpserve::testing::*;
use httpserve::{Limits, Listener, ServeMetrics, TowerToHyperService};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{net::TcpStream, sync::oneshot, task::JoinHandle, time::timeout};

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
        // Refuses without reading the body, as a handler does on a declared length above its limit.
        .route("/early", post(|| async { (StatusCode::PAYLOAD_TOO_LARGE, "too large") }))
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
