//! Helpers shared by the aggregator's integration tests.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use aggregator::client::{ClientError, HttpClient, Response};
use bytes::Bytes;
use http_body_util::Full;
use report::{Heartbeat, Report, Series, SeriesKey};

pub const NBO: &str = "nbo-secret-0123456789";
pub const KLA: &str = "kla-secret-0123456789";
pub const DAR: &str = "dar-secret-0123456789";

pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d =
        std::env::temp_dir().join(format!("agg-it-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A config for three probers on loopback, data in `dir`, with `extra` YAML appended.
pub fn config_yaml(extra: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\ndata_dir: data\nprobers:\n  - id: nbo-1\n    region: nairobi\n    token: env:NBO\n  \
         - id: kla-1\n    region: kampala\n    token: env:KLA\n  - id: dar-1\n    region: dar\n    token: env:DAR\n{extra}"
    )
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

pub fn key(journey: &str, step: &str, outcome: &str, region: &str) -> SeriesKey {
    SeriesKey {
        journey: journey.into(),
        step: step.into(),
        outcome: outcome.into(),
        region: region.into(),
        profile: "ea-3g".into(),
    }
}

pub fn series(k: SeriesKey, values_us: &[u64]) -> Series {
    let mut h = report::SparseHistogram::new();
    for v in values_us {
        h.record_n(*v, 1);
    }
    Series { key: k, count: values_us.len() as u64, histogram: h }
}

/// A 15 s report ending at `end_ms`, sent at `end_ms`.
pub fn report(prober: &str, region: &str, seq: u64, end_ms: i64, series: Vec<Series>) -> Report {
    Report {
        prober: prober.into(),
        region: region.into(),
        seq,
        interval_start_ms: end_ms - 15_000,
        interval_end_ms: end_ms,
        sent_at_ms: end_ms,
        run: None,
        heartbeat: Heartbeat {
            outbox_backlog: 2,
            outbox_dropped_total: 1,
            version: "test".into(),
            ..Heartbeat::default()
        },
        series,
    }
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
