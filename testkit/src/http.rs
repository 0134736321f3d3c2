//! The launchers' one HTTP need: a GET on loopback (readiness, Alertmanager's alerts).

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

/// (status, body) of `GET url`; `None` when nothing answers.
pub(crate) async fn get(url: &str) -> Option<(u16, Bytes)> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let resp = client.get(url.parse().ok()?).await.ok()?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, body))
}

/// Polls `GET url` every 100 ms until it answers 200; panics with `what` after `secs` seconds.
pub(crate) async fn wait_ready(url: &str, what: &str, secs: u64, log: impl Fn() -> String) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let next = tokio::time::Instant::now() + std::time::Duration::from_millis(100);
        if matches!(get(url).await, Some((200, _))) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what} did not become ready in {secs} s:\n{}", log());
        tokio::time::sleep_until(next).await;
    }
}

/// A free TCP port on 127.0.0.1 (for a program that cannot report the port it bound).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}
