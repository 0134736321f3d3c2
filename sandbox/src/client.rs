//! The sandbox's own HTTP client: Daraja's callbacks, and the shop's calls to Daraja. Plain HTTP
//! only (the sandbox talks to loopback listeners in tests and demos).

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

/// Largest response body read (callback receivers and Daraja answer with small JSON).
const MAX_RESPONSE_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    #[error("`{0}` is not an http:// URL (the sandbox delivers over plain HTTP only)")]
    Scheme(String),
    #[error("cannot build the request: {0}")]
    Build(String),
    #[error("request failed: {0}")]
    Request(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// The URL without its query and credentials, for logs (a callback URL may carry a secret, and
/// its path a phone number: those are masked).
pub(crate) fn loggable(url: &url::Url) -> String {
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let path = crate::mask::mask_phones(url.path());
    format!("{}://{}{port}{path}", url.scheme(), url.host_str().unwrap_or(""))
}

#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub status: StatusCode,
    pub body: Bytes,
}

#[derive(Clone)]
pub(crate) struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl HttpClient {
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        Self {
            inner: Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector),
        }
    }

    /// Sends one request; `body` is (content type, bytes).
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<(&str, Bytes)>,
        headers: &[(header::HeaderName, String)],
        timeout: Duration,
    ) -> Result<HttpResponse, ClientError> {
        if !url.starts_with("http://") {
            return Err(ClientError::Scheme(url.split(['?', '#']).next().unwrap_or_default().to_owned()));
        }
        let mut builder = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let payload = match body {
            Some((content_type, bytes)) => {
                builder = builder.header(header::CONTENT_TYPE, content_type);
                bytes
            }
            None => Bytes::new(),
        };
        let request = builder.body(Full::new(payload)).map_err(|e| ClientError::Build(e.to_string()))?;
        let exchange = async {
            let response = self.inner.request(request).await.map_err(|e| ClientError::Request(e.to_string()))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| ClientError::Request(e.to_string()))?
                .to_bytes();
            Ok(HttpResponse { status, body })
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| ClientError::Timeout(timeout))?
    }
}

#[cfg(test)]
mod tests {
    use super::loggable;

    #[test]
    fn logged_urls_drop_query_and_credentials() {
        let u = url::Url::parse("http://user:pw@127.0.0.1:9/cb?token=abc").unwrap();
        assert_eq!(loggable(&u), "http://127.0.0.1:9/cb");
        let u = url::Url::parse("https://example.com/cb#frag").unwrap();
        assert_eq!(loggable(&u), "https://example.com/cb");
    }
}
