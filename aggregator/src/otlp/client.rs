//! One OTLP/HTTP push: one HTTP/1.1 POST per protobuf body through [`crate::client::HttpClient`]
//! (rustls with the webpki roots for `https`), the reply read and classified. Pushes are tens of
//! seconds apart, so the client keeps no idle connection: a kept one would buy nothing but a
//! stale-connection failure mode.

use bytes::Bytes;
use http::Method;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;

use crate::{
    client::{ClientError, ClientOptions, HttpClient},
    config::OtlpConfig,
};

/// Largest reply body read (a partial-success message or an error status).
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Why a push failed. `Display` never shows header values.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("cannot reach the collector")]
    Connect(#[source] ClientError),
    #[error("no reply within {0:?}")]
    Timeout(std::time::Duration),
    #[error("the collector answered HTTP {status}")]
    Status { status: u16 },
    #[error("the collector rejected {points} data points: {message}")]
    Rejected { points: i64, message: String },
    #[error("HTTP exchange failed")]
    Http(#[source] ClientError),
}

impl PushError {
    /// The `reason` label of `aggregator_otlp_exports_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            PushError::Connect(_) => "connect",
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
    http: HttpClient,
}

impl Client {
    pub fn new(config: OtlpConfig) -> Client {
        Client::build(config, None)
    }

    /// A client trusting only `roots` (tests with their own CA).
    pub fn with_roots(config: OtlpConfig, roots: rustls::RootCertStore) -> Client {
        Client::build(config, Some(roots))
    }

    fn build(config: OtlpConfig, roots: Option<rustls::RootCertStore>) -> Client {
        let http = HttpClient::new(ClientOptions {
            timeout: config.timeout,
            max_body: MAX_REPLY_BYTES,
            roots,
            keep_alive: false,
            user_agent: concat!("savanna-pulse-aggregator/", env!("CARGO_PKG_VERSION")).to_owned(),
        });
        Client { config, http }
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
        let mut req = http::Request::builder()
            .method(Method::POST)
            .uri(self.config.url.clone())
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .body(http_body_util::Full::new(Bytes::from(body)))
            .map_err(|source| PushError::Http(ClientError::Url { url: self.config.url.to_string(), source }))?;
        for (name, value) in &self.config.headers {
            let mut v = http::HeaderValue::from_str(value.expose())
                .map_err(|_| PushError::Http(ClientError::Header { name: name.to_string() }))?;
            v.set_sensitive(true);
            req.headers_mut().insert(name.clone(), v);
        }
        let resp = match self.http.send(req).await {
            Ok(r) => r,
            Err(ClientError::Timeout { after, .. }) => return Err(PushError::Timeout(after)),
            Err(e) if e.is_connect() => return Err(PushError::Connect(e)),
            Err(e) => return Err(PushError::Http(e)),
        };
        if !resp.status.is_success() {
            return Err(PushError::Status { status: resp.status.as_u16() });
        }
        // An empty or undecodable 2xx body is a full success (some collectors send JSON or nothing).
        if let Ok(reply) = ExportMetricsServiceResponse::decode(resp.body.as_ref())
            && let Some(p) = reply.partial_success
            && p.rejected_data_points > 0
        {
            let message = p.error_message.chars().take(300).collect();
            return Err(PushError::Rejected { points: p.rejected_data_points, message });
        }
        Ok(())
    }
}
