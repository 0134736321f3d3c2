//! Helpers shared by the aggregator's integration tests.
#![allow(dead_code)]

use std::path::Path;

use aggregator::client::{ClientError, HttpClient, Response};
use bytes::Bytes;
use http_body_util::Full;
use report::Report;
pub use testkit::{
    TempDir,
    reports::{interval as report, key, series},
};

pub const NBO: &str = "nbo-secret-0123456789";
pub const KLA: &str = "kla-secret-0123456789";
pub const DAR: &str = "dar-secret-0123456789";

/// A fresh directory, removed when the returned guard is dropped (also when the test fails).
pub fn temp_dir(tag: &str) -> TempDir {
    testkit::temp_dir(&format!("agg-it-{tag}"))
}

/// The three probers on loopback, tokens by `env:` reference ([`env`]), data in `data/`.
pub fn config() -> testkit::config::AggregatorConfig {
    testkit::config::AggregatorConfig::new("127.0.0.1:0")
        .prober("nbo-1", "nairobi", "env:NBO")
        .prober("kla-1", "kampala", "env:KLA")
        .prober("dar-1", "dar", "env:DAR")
}

/// A config for three probers on loopback, data in `dir`, with `extra` YAML sections added.
pub fn config_yaml(extra: &str) -> String {
    config().merge_yaml(extra).to_yaml()
}

pub fn env(name: &str) -> Option<String> {
    match name {
        "NBO" => Some(NBO.into()),
        "KLA" => Some(KLA.into()),
        "DAR" => Some(DAR.into()),
        _ => None,
    }
}

pub fn load_config(dir: &Path, extra: &str) -> aggregator::Config {
    let path = dir.join("aggregator.yaml");
    std::fs::write(&path, config_yaml(extra)).unwrap();
    aggregator::Config::load_with_env(&path, &env).unwrap()
}

/// The aggregator's API for tests: status, JSON (or null) and raw body, over
/// [`aggregator::client::HttpClient`].
pub struct Http {
    client: HttpClient,
    pub base: String,
}

impl Http {
    pub fn new(base: impl Into<String>) -> Http {
        Http { client: HttpClient::default(), base: base.into() }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Response, ClientError> {
        let mut req = http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        self.client.send(req.body(Full::new(Bytes::from(body))).unwrap()).await
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, serde_json::Value, Bytes) {
        let resp = self.send(method, path, token, body).await.unwrap();
        let json = resp.json().unwrap_or(serde_json::Value::Null);
        (resp.status.as_u16(), json, resp.body)
    }

    /// As `post_report`, but a connection failure is `None` (a killed server).
    pub async fn try_post_report(&self, token: &str, r: &Report) -> Option<(u16, serde_json::Value)> {
        let resp = self.send("POST", "/api/v1/reports", Some(token), report::encode(r)).await.ok()?;
        Some((resp.status.as_u16(), resp.json().unwrap_or(serde_json::Value::Null)))
    }

    pub async fn post_report(&self, token: Option<&str>, r: &Report) -> (u16, serde_json::Value) {
        let (s, j, _) = self.request("POST", "/api/v1/reports", token, report::encode(r)).await;
        (s, j)
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let (s, j, _) = self.request("GET", path, None, Vec::new()).await;
        (s, j)
    }
}

/// A server on `clock` with `extra` config, a client for it, and its directory (removed when the
/// guard drops, passed or not).
pub async fn start_on(
    tag: &str,
    extra: &str,
    clock: &aggregator::clock::ManualClock,
) -> (aggregator::Server, Http, TempDir) {
    let dir = temp_dir(tag);
    let config = load_config(&dir, extra);
    let server = aggregator::Server::start(&config, std::sync::Arc::new(clock.clone())).await.unwrap();
    let http = Http::new(server.base_url());
    (server, http, dir)
}
