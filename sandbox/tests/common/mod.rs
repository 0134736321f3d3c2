//! Helpers shared by the integration tests: a sandbox with fast timings, a small HTTP client, a
//! callback receiver, and Daraja request builders. (Each test binary uses a different subset.)
#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use axum::{Router, body::Bytes, extract::State, routing::post};
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use parking_lot::Mutex;
use sandbox::{Config, Sandbox, SandboxHandle, config::SANDBOX_PASSKEY, daraja::stk_password};
use serde_json::{Value, json};
use tokio::{net::TcpListener, time::Instant};

pub const KEY: &str = "savanna-sandbox-key";
pub const SECRET: &str = "savanna-sandbox-secret";
pub const SHORTCODE: &str = "174379";

/// Callback delay used by tests (the default is 3 s).
pub const DELAY: Duration = Duration::from_millis(100);
/// Query expiry used by tests (outcome 04).
pub const EXPIRY: Duration = Duration::from_millis(900);

/// A config on a free loopback port with fast Daraja timings.
pub fn fast_config() -> Config {
    Config { listen: "127.0.0.1:0".parse().unwrap(), callback_delay: DELAY, query_expiry: EXPIRY, ..Default::default() }
}

pub async fn start() -> SandboxHandle {
    Sandbox::start(fast_config()).await.expect("sandbox starts")
}

pub async fn start_with(config: Config) -> SandboxHandle {
    Sandbox::start(config).await.expect("sandbox starts")
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} (HTTP {})", self.text(), self.status))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Clone)]
pub struct Http(Client<HttpConnector, Full<Bytes>>);

impl Default for Http {
    fn default() -> Self {
        Self(Client::builder(TokioExecutor::new()).build_http())
    }
}

impl Http {
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let payload = match body {
            Some((ct, bytes)) => {
                req = req.header(header::CONTENT_TYPE, ct);
                Bytes::from(bytes)
            }
            None => Bytes::new(),
        };
        let resp = tokio::time::timeout(Duration::from_secs(30), self.0.request(req.body(Full::new(payload)).unwrap()))
            .await
            .expect("answer within 30 s")
            .expect("request succeeds");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Resp { status, headers, body }
    }

    pub async fn get(&self, url: &str) -> Resp {
        self.send(Method::GET, url, &[], None).await
    }

    pub async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> Resp {
        self.send(Method::GET, url, headers, None).await
    }

    pub async fn post_json(&self, url: &str, body: &Value) -> Resp {
        self.send(Method::POST, url, &[], Some(("application/json", body.to_string().into_bytes()))).await
    }

    pub async fn post_json_with(&self, url: &str, headers: &[(&str, &str)], body: &Value) -> Resp {
        self.send(Method::POST, url, headers, Some(("application/json", body.to_string().into_bytes()))).await
    }

    pub async fn put_json(&self, url: &str, body: &Value) -> Resp {
        self.send(Method::PUT, url, &[], Some(("application/json", body.to_string().into_bytes()))).await
    }

    pub async fn delete(&self, url: &str) -> Resp {
        self.send(Method::DELETE, url, &[], None).await
    }

    pub async fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> Resp {
        let body = serde_urlencoded::to_string(fields).unwrap();
        self.send(Method::POST, url, &[], Some(("application/x-www-form-urlencoded", body.into_bytes()))).await
    }
}

/// Callback bodies with their arrival times.
type Received = Arc<Mutex<Vec<(Instant, Value)>>>;

/// A merchant's callback endpoint: records every JSON body POSTed or PUT to it, with its arrival
/// time.
#[derive(Clone)]
pub struct CallbackSink {
    pub url: String,
    received: Received,
}

async fn receive(State(r): State<Received>, body: Bytes) -> axum::Json<Value> {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::String("<not JSON>".into()));
    r.lock().push((Instant::now(), v));
    axum::Json(json!({"ResultCode": 0, "ResultDesc": "Accepted"}))
}

impl CallbackSink {
    pub async fn start() -> Self {
        let received: Received = Arc::default();
        let app = Router::new()
            // Daraja and Airtel POST their callbacks; MoMo PUTs them.
            .route("/cb", post(receive).put(receive))
            .with_state(received.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/cb", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, received }
    }

    /// Callbacks received so far for one CheckoutRequestID.
    pub fn for_checkout(&self, checkout: &str) -> Vec<(Instant, Value)> {
        self.received
            .lock()
            .iter()
            .filter(|(_, v)| v["Body"]["stkCallback"]["CheckoutRequestID"] == checkout)
            .cloned()
            .collect()
    }

    /// Waits until `n` callbacks for `checkout` arrived (panics after `within`).
    pub async fn wait_for(&self, checkout: &str, n: usize, within: Duration) -> Vec<(Instant, Value)> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.for_checkout(checkout);
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "{} of {n} callbacks for {checkout} within {within:?}", got.len());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every body received so far, in order.
    pub fn bodies(&self) -> Vec<Value> {
        self.received.lock().iter().map(|(_, v)| v.clone()).collect()
    }

    pub fn total(&self) -> usize {
        self.received.lock().len()
    }
}

pub fn basic(key: &str, secret: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}")))
}

/// A fresh access token from the sandbox.
pub async fn token(http: &Http, base: &str) -> String {
    let r = http
        .get_with(
            &format!("{base}/oauth/v1/generate?grant_type=client_credentials"),
            &[("authorization", &basic(KEY, SECRET))],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["access_token"].as_str().unwrap().to_owned()
}

pub const TIMESTAMP: &str = "20240101120000";

/// A valid STK push body (Password built from the sandbox passkey).
pub fn push_body(phone: &str, amount: u64, callback_url: &str) -> Value {
    json!({
        "BusinessShortCode": SHORTCODE,
        "Password": stk_password(SHORTCODE, SANDBOX_PASSKEY, TIMESTAMP),
        "Timestamp": TIMESTAMP,
        "TransactionType": "CustomerPayBillOnline",
        "Amount": amount.to_string(),
        "PartyA": phone,
        "PartyB": SHORTCODE,
        "PhoneNumber": phone,
        "CallBackURL": callback_url,
        "AccountReference": "Test",
        "TransactionDesc": "Test"
    })
}

pub async fn push(http: &Http, base: &str, token: &str, body: &Value) -> Resp {
    let bearer = format!("Bearer {token}");
    http.post_json_with(&format!("{base}/mpesa/stkpush/v1/processrequest"), &[("authorization", &bearer)], body).await
}

pub async fn query(http: &Http, base: &str, token: &str, checkout: &str) -> Resp {
    let bearer = format!("Bearer {token}");
    let body = json!({
        "BusinessShortCode": SHORTCODE,
        "Password": stk_password(SHORTCODE, SANDBOX_PASSKEY, TIMESTAMP),
        "Timestamp": TIMESTAMP,
        "CheckoutRequestID": checkout,
    });
    http.post_json_with(&format!("{base}/mpesa/stkpushquery/v1/query"), &[("authorization", &bearer)], &body).await
}

/// Polls STK query until the transaction is done; returns the final answer.
pub async fn query_until_done(http: &Http, base: &str, token: &str, checkout: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let r = query(http, base, token, checkout).await;
        if r.status == StatusCode::OK {
            return r.json();
        }
        assert_eq!(r.json()["errorMessage"], "The transaction is being processed", "{}", r.text());
        assert!(Instant::now() < deadline, "{checkout} still pending after {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
