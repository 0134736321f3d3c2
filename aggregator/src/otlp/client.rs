//! One OTLP/HTTP push: a fresh connection (TCP, then rustls for `https`), one HTTP/1.1 POST of
//! the protobuf body, the reply read and classified. Pushes are tens of seconds apart, so a kept
//! connection would buy nothing but a stale-connection failure mode.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tokio_rustls::TlsConnector;

use crate::config::OtlpConfig;

/// Largest reply body read (a partial-success message or an error status).
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Why a push failed. `Display` never shows header values.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("cannot connect to {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("no reply within {0:?}")]
    Timeout(std::time::Duration),
    #[error("the collector answered HTTP {status}")]
    Status { status: u16 },
    #[error("the collector rejected {points} data points: {message}")]
    Rejected { points: i64, message: String },
    #[error("HTTP exchange failed: {0}")]
    Http(String),
}

impl PushError {
    /// The `reason` label of `aggregator_otlp_exports_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            PushError::Connect { .. } => "connect",
            PushError::Timeout(_) => "timeout",
            PushError::Status { .. } => "status",
            PushError::Rejected { .. } => "rejected",
            PushError::Http(_) => "connect",
        }
    }
}

/// Where pushes go, and how.
pub struct Client {
    config: OtlpConfig,
    tls: Option<TlsConnector>,
}

impl Client {
    pub fn new(config: OtlpConfig) -> Client {
        let tls = (config.url.scheme_str() == Some("https")).then(|| {
            let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            Client::tls_with_roots(roots)
        });
        Client { config, tls }
    }

    /// A client trusting only `roots` (tests with their own CA).
    pub fn with_roots(config: OtlpConfig, roots: rustls::RootCertStore) -> Client {
        Client { config, tls: Some(Client::tls_with_roots(roots)) }
    }

    fn tls_with_roots(roots: rustls::RootCertStore) -> TlsConnector {
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsConnector::from(Arc::new(cfg))
    }

    pub fn config(&self) -> &OtlpConfig {
        &self.config
    }

    /// Posts encoded `ExportMetricsServiceRequest`s one after the other, all of them within the
    /// configured timeout; stops at the first failure.
    pub async fn push(&self, bodies: Vec<Vec<u8>>) -> Result<(), PushError> {
        let timeout = self.config.timeout;
        let all = async {
            for body in bodies {
                self.exchange(body).await?;
            }
            Ok(())
        };
        tokio::time::timeout(timeout, all).await.unwrap_or(Err(PushError::Timeout(timeout)))
    }

    async fn exchange(&self, body: Vec<u8>) -> Result<(), PushError> {
        let url = &self.config.url;
        let host = url.host().unwrap_or_default().trim_matches(['[', ']']).to_owned();
        let port = url.port_u16().unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        let addr = format!("{host}:{port}");
        let connect_err = |e: std::io::Error| PushError::Connect { addr: addr.clone(), message: e.to_string() };
        let tcp = TcpStream::connect((host.as_str(), port)).await.map_err(connect_err)?;
        let _ = tcp.set_nodelay(true);
        let mut req = http::Request::post(url.clone())
            .header(http::header::HOST, url.authority().map(|a| a.as_str()).unwrap_or(&host))
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .header(http::header::USER_AGENT, concat!("savanna-pulse-aggregator/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| PushError::Http(e.to_string()))?;
        for (name, value) in &self.config.headers {
            let v =
                http::HeaderValue::from_str(value.expose()).map_err(|_| PushError::Http("bad header value".into()))?;
            req.headers_mut().insert(name.clone(), v);
        }
        match &self.tls {
            None => send(tcp, req).await,
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|e| PushError::Connect { addr: addr.clone(), message: e.to_string() })?;
                let stream = tls.connect(name, tcp).await.map_err(connect_err)?;
                send(stream, req).await
            }
        }
    }
}

async fn send<S>(io: S, req: http::Request<Full<Bytes>>) -> Result<(), PushError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| PushError::Http(e.to_string()))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let resp = sender.send_request(req).await.map_err(|e| PushError::Http(e.to_string()))?;
        let status = resp.status();
        let body =
            Limited::new(resp.into_body(), MAX_REPLY_BYTES).collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        if !status.is_success() {
            return Err(PushError::Status { status: status.as_u16() });
        }
        // An empty or undecodable 2xx body is a full success (some collectors send JSON or nothing).
        if let Ok(reply) = ExportMetricsServiceResponse::decode(body.as_ref())
            && let Some(p) = reply.partial_success
            && p.rejected_data_points > 0
        {
            let mut message = p.error_message;
            message.truncate(300);
            return Err(PushError::Rejected { points: p.rejected_data_points, message });
        }
        Ok(())
    }
    .await;
    drop(sender);
    driver.abort();
    result
}
