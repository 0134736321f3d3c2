//! The one HTTP client for JSON APIs, on hyper-util's legacy `Client` with rustls (ring, the webpki
//! roots or roots of your own) for `https`:
//!
//! - [`HttpClient`]: any request, one deadline over the whole exchange (connect, send, the reply
//!   body), a reply body limit that is an error (never a silent cut), errors that keep their
//!   sources and name the method and URL path (never header values: tokens ride there).
//! - [`AggregatorClient`]: the aggregator's API as typed methods returning [`crate::api`] types.
//! - [`metric_sums`]: the few numbers a reader wants out of a `/metrics` text.
//!
//! The Alertmanager push ([`crate::alerts`]) and the OTLP push ([`crate::otlp`]) send through an
//! [`HttpClient`] too.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::api::{AlertsReply, ProbersReply, QueryParams, QueryReply, ReportReply, RunReply, SloFilter, SlosReply};

/// The default deadline of one exchange.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// The default largest reply body (the aggregator's SLO listing is well below it).
pub const DEFAULT_MAX_BODY: usize = 16 << 20;
/// How much of a refused reply's body an error quotes.
const EXCERPT_CHARS: usize = 200;

/// Why an exchange failed. `Display` names the method and URL path; the cause is the source.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("`{url}` is not a usable http:// or https:// URL")]
    Url {
        url: String,
        #[source]
        source: http::Error,
    },
    #[error("header `{name}`: not a valid header value")]
    Header { name: String },
    #[error("{what}: the request body could not be encoded as JSON")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: the exchange failed")]
    Exchange {
        what: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("{what}: no complete answer within {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("{what}: the reply body could not be read")]
    Body {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{what}: the reply body is above the limit of {limit} bytes")]
    TooLarge { what: String, limit: usize },
    #[error("{what}: HTTP {status}: {excerpt}")]
    Status { what: String, status: u16, excerpt: String },
    #[error("{what}: the reply is not the expected JSON")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: the reply is not UTF-8 text")]
    Text {
        what: String,
        #[source]
        source: std::str::Utf8Error,
    },
}

impl ClientError {
    /// The HTTP status of a refused request.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server could not be reached (no connection was made).
    pub fn is_connect(&self) -> bool {
        matches!(self, ClientError::Exchange { source, .. } if source.is_connect())
    }
}

/// `error: cause: its cause`: an error and its sources on one line (for logs).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out += ": ";
        out += &s.to_string();
        next = s.source();
    }
    out
}

/// A reply read whole.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `GET http://host/path`, for errors.
    what: String,
}

impl Response {
    /// `self` when the status is 2xx, else [`ClientError::Status`] with an excerpt of the body.
    pub fn success(self) -> Result<Response, ClientError> {
        if self.status.is_success() {
            return Ok(self);
        }
        let text = String::from_utf8_lossy(&self.body);
        let excerpt: String = text.chars().take(EXCERPT_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect();
        Err(ClientError::Status { what: self.what, status: self.status.as_u16(), excerpt })
    }

    /// The body as JSON of type `T` (whatever the status).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body).map_err(|source| ClientError::Json { what: self.what.clone(), source })
    }

    /// The body as text (whatever the status).
    pub fn text(&self) -> Result<&str, ClientError> {
        std::str::from_utf8(&self.body).map_err(|source| ClientError::Text { what: self.what.clone(), source })
    }
}

/// How an [`HttpClient`] is built.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Deadline of one exchange, the reply body included.
    pub timeout: Duration,
    /// Largest reply body; a longer one is [`ClientError::TooLarge`].
    pub max_body: usize,
    /// Trust these roots for https (default: the webpki roots).
    pub roots: Option<rustls::RootCertStore>,
    /// Keep idle connections for reuse (off: one connection per request, for pushes far apart).
    pub keep_alive: bool,
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            timeout: DEFAULT_TIMEOUT,
            max_body: DEFAULT_MAX_BODY,
            roots: None,
            keep_alive: true,
            user_agent: concat!("savanna-pulse/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// An HTTP/1.1 client for http and https URLs. Cheap to clone (connections are shared).
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
    max_body: usize,
    user_agent: http::HeaderValue,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("timeout", &self.timeout).field("max_body", &self.max_body).finish()
    }
}

impl Default for HttpClient {
    fn default() -> HttpClient {
        HttpClient::new(ClientOptions::default())
    }
}

impl HttpClient {
    pub fn new(opts: ClientOptions) -> HttpClient {
        let roots =
            opts.roots.unwrap_or_else(|| rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() });
        // No ALPN: HTTP/1.1 is what a TLS server speaks to a client that offers none (and
        // hyper-rustls wants the list empty for an HTTP/1.1-only connector).
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(opts.timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_timer(TokioTimer::new()).pool_idle_timeout(Duration::from_secs(30));
        if !opts.keep_alive {
            builder.pool_max_idle_per_host(0);
        }
        HttpClient {
            inner: builder.build(connector),
            timeout: opts.timeout,
            max_body: opts.max_body,
            user_agent: http::HeaderValue::from_str(&opts.user_agent)
                .unwrap_or_else(|_| http::HeaderValue::from_static("savanna-pulse")),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `req` and reads the reply whole, whatever its status, within the deadline.
    pub async fn send(&self, mut req: Request<Full<Bytes>>) -> Result<Response, ClientError> {
        let what = describe(req.method(), req.uri());
        req.headers_mut().entry(header::USER_AGENT).or_insert_with(|| self.user_agent.clone());
        let exchange = async {
            let resp =
                self.inner.request(req).await.map_err(|source| ClientError::Exchange { what: what.clone(), source })?;
            let (parts, body) = resp.into_parts();
            let body = match Limited::new(body, self.max_body).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                    return Err(ClientError::TooLarge { what: what.clone(), limit: self.max_body });
                }
                Err(source) => return Err(ClientError::Body { what: what.clone(), source }),
            };
            Ok(Response { status: parts.status, headers: parts.headers, body, what: what.clone() })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout { what, after: self.timeout }),
        }
    }

    /// A request with a body (empty: none) and a content type.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Response, ClientError> {
        let mut b = Request::builder().method(method).uri(url);
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        let req = b.body(Full::new(body)).map_err(|source| ClientError::Url { url: url.to_owned(), source })?;
        self.send(req).await
    }

    /// `GET url`, whatever the status.
    pub async fn get(&self, url: &str) -> Result<Response, ClientError> {
        self.request(Method::GET, url, None, Bytes::new()).await
    }

    /// `GET url`, expecting 2xx and JSON of type `T`.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, ClientError> {
        self.get(url).await?.success()?.json()
    }

    /// `GET url`, expecting 2xx and UTF-8 text.
    pub async fn get_text(&self, url: &str) -> Result<String, ClientError> {
        self.get(url).await?.success()?.text().map(str::to_owned)
    }

    /// `method url` with `body` as JSON, whatever the status.
    pub async fn send_json<B: Serialize + ?Sized>(
        &self,
        method: Method,
        url: &str,
        body: &B,
    ) -> Result<Response, ClientError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|source| ClientError::Encode { what: describe_str(&method, url), source })?;
        self.request(method, url, Some("application/json"), Bytes::from(bytes)).await
    }
}

/// `GET http://host:port/path` (no query: it may be long, and the path says enough).
fn describe(method: &Method, uri: &http::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let authority = uri.authority().map_or("", |a| a.as_str());
    format!("{method} {scheme}://{authority}{}", uri.path())
}

fn describe_str(method: &Method, url: &str) -> String {
    url.parse::<http::Uri>().map_or_else(|_| format!("{method} {url}"), |u| describe(method, &u))
}

/// The aggregator's JSON API, typed. `base` is `http(s)://host:port`.
#[derive(Debug, Clone)]
pub struct AggregatorClient {
    http: HttpClient,
    base: String,
}

impl AggregatorClient {
    pub fn new(base: impl Into<String>) -> AggregatorClient {
        AggregatorClient::with_client(HttpClient::default(), base)
    }

    pub fn with_client(http: HttpClient, base: impl Into<String>) -> AggregatorClient {
        AggregatorClient { http, base: base.into().trim_end_matches('/').to_owned() }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The underlying client (for routes without a typed method).
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// `base + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn with_query(&self, path: &str, query: &str) -> String {
        if query.is_empty() { self.url(path) } else { format!("{}?{query}", self.url(path)) }
    }

    /// `GET /api/v1/probers`.
    pub async fn probers(&self) -> Result<ProbersReply, ClientError> {
        self.http.get_json(&self.url("/api/v1/probers")).await
    }

    /// `GET /api/v1/query`.
    pub async fn query(&self, q: &QueryParams) -> Result<QueryReply, ClientError> {
        self.http.get_json(&self.with_query("/api/v1/query", &q.encode())).await
    }

    /// `GET /api/v1/runs/{run_id}` (`from_ms`/`to_ms` do not apply).
    pub async fn run(&self, run_id: &str, q: &QueryParams) -> Result<RunReply, ClientError> {
        let path = format!("/api/v1/runs/{}", url_segment(run_id));
        self.http.get_json(&self.with_query(&path, &q.encode())).await
    }

    /// `GET /api/v1/slos`, filtered.
    pub async fn slos(&self, filter: &SloFilter) -> Result<SlosReply, ClientError> {
        let query = serde_urlencoded::to_string(filter).unwrap_or_default();
        self.http.get_json(&self.with_query("/api/v1/slos", &query)).await
    }

    /// `GET /api/v1/alerts`.
    pub async fn alerts(&self) -> Result<AlertsReply, ClientError> {
        self.http.get_json(&self.url("/api/v1/alerts")).await
    }

    /// `GET /metrics` (Prometheus text format 0.0.4).
    pub async fn metrics_text(&self) -> Result<String, ClientError> {
        self.http.get_text(&self.url("/metrics")).await
    }

    /// `POST /api/v1/reports`: the reply whatever its status (a refusal is a [`ReportReply`] too,
    /// its `http_status` set); an answer that is not a report reply is an error.
    pub async fn post_report(&self, token: &str, report: &report::Report) -> Result<ReportReply, ClientError> {
        let url = self.url("/api/v1/reports");
        let mut auth = http::HeaderValue::from_str(&format!("Bearer {token}"))
            .unwrap_or_else(|_| http::HeaderValue::from_static("Bearer -"));
        auth.set_sensitive(true);
        let req = Request::post(&url)
            .header(header::AUTHORIZATION, auth)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(report::encode(report))))
            .map_err(|source| ClientError::Url { url: url.clone(), source })?;
        let resp = self.http.send(req).await?;
        match resp.json::<ReportReply>() {
            Ok(mut r) => {
                r.http_status = resp.status.as_u16();
                Ok(r)
            }
            Err(e) => Err(resp.success().err().unwrap_or(e)),
        }
    }
}

/// `s` percent-encoded for a URL path segment or query value: every byte but RFC 3986's
/// unreserved characters (`A–Z a–z 0–9 - _ . ~`) becomes `%XX`.
pub fn url_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The sum of `metric`'s samples per value of `label`, from a Prometheus (or OpenMetrics) text
/// exposition. Samples without the label are summed under "".
pub fn metric_sums(text: &str, metric: &str, label: &str) -> std::io::Result<BTreeMap<String, f64>> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))?;
    let mut out = BTreeMap::new();
    for s in scrape.samples.iter().filter(|s| s.metric == metric) {
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => continue,
        };
        *out.entry(s.labels.get(label).unwrap_or("").to_owned()).or_insert(0.0) += v;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums_add_up_per_label() {
        let text = "# HELP prober_runs_skipped Runs not started.\n# TYPE prober_runs_skipped counter\n\
            # UNIT prober_runs_skipped runs\n\
            prober_runs_skipped_total{journey=\"checkout-mpesa\",profile=\"ea-3g\",reason=\"overlap\"} 7\n\
            prober_runs_skipped_total{journey=\"checkout-mpesa\",profile=\"ea-3g\",reason=\"late\"} 2\n\
            prober_runs_skipped_total{journey=\"ussd-balance\",profile=\"ea-3g\",reason=\"overlap\"} 1\n\
            other_total 5\n# EOF\n";
        let m = metric_sums(text, "prober_runs_skipped_total", "journey").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m["checkout-mpesa"], 9.0);
        assert_eq!(m["ussd-balance"], 1.0);
    }

    /// A loopback server: `/big` answers 2 KiB, `/refused` a 500 with a body, `/slow` never.
    async fn server() -> String {
        use axum::{Router, routing::get};
        let app = Router::new()
            .route("/big", get(|| async { "x".repeat(2048) }))
            .route("/refused", get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom\nat line 3") }))
            .route("/json", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
            .route("/slow", get(std::future::pending::<&'static str>));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn client(timeout: Duration, max_body: usize) -> HttpClient {
        HttpClient::new(ClientOptions { timeout, max_body, ..ClientOptions::default() })
    }

    #[tokio::test]
    async fn a_body_above_the_limit_is_an_error_never_a_cut() {
        let base = server().await;
        let c = client(Duration::from_secs(20), 1024);
        let err = c.get(&format!("{base}/big")).await.unwrap_err();
        assert!(matches!(err, ClientError::TooLarge { limit: 1024, .. }), "{err}");
        assert_eq!(err.to_string(), format!("GET {base}/big: the reply body is above the limit of 1024 bytes"));
        let whole = client(Duration::from_secs(20), 4096).get_text(&format!("{base}/big")).await.unwrap();
        assert_eq!(whole.len(), 2048);
    }

    #[tokio::test]
    async fn a_refusal_names_its_status_and_quotes_the_body() {
        let base = server().await;
        let c = HttpClient::default();
        let err = c.get_json::<serde_json::Value>(&format!("{base}/refused?token=x")).await.unwrap_err();
        assert_eq!(err.status(), Some(500));
        assert_eq!(err.to_string(), format!("GET {base}/refused: HTTP 500: boom at line 3"));
        let v: crate::api::Health = c.get_json(&format!("{base}/json")).await.unwrap();
        assert_eq!(v.status, "ok");
        let err = c.get_json::<crate::api::ProbersReply>(&format!("{base}/json")).await.unwrap_err();
        assert!(matches!(err, ClientError::Json { .. }), "{err}");
        assert!(std::error::Error::source(&err).is_some(), "the serde error is the source");
    }

    #[tokio::test]
    async fn no_answer_is_a_timeout_and_no_server_a_connect_error() {
        let base = server().await;
        let err = client(Duration::from_millis(200), 1024).get(&format!("{base}/slow")).await.unwrap_err();
        assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let err = HttpClient::default().get(&format!("http://{closed}/")).await.unwrap_err();
        assert!(err.is_connect(), "{}", error_chain(&err));
        assert!(error_chain(&err).starts_with(&format!("GET http://{closed}/: the exchange failed: ")));
    }

    #[test]
    fn descriptions_leave_out_the_query() {
        let d = describe_str(&Method::GET, "http://127.0.0.1:9/api/v1/query?journey=a");
        assert_eq!(d, "GET http://127.0.0.1:9/api/v1/query");
        assert_eq!(url_segment("run 1/ü"), "run%201%2F%C3%BC");
    }
}
