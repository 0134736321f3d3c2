//! Slow, idle and hostile clients against the aggregator's one listener (reports, queries,
//! `/metrics` and the Daraja callback relay): each bound cuts them, counts them, and leaves
//! well-behaved probers served. Limits are a few hundred milliseconds (the `connections:`
//! section); assertions only bound from above.

mod common;

use std::{sync::Arc, time::Duration};

use aggregator::{Server, clock::ManualClock};
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use httpserve::{Closed, Refused, testing::*};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

const T0: i64 = 1_800_000_000_000;

/// A running aggregator and its data directory, removed at shutdown.
struct Agg {
    server: Server,
    _dir: TempDir,
}

impl std::ops::Deref for Agg {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

impl Agg {
    async fn shutdown(self) {
        self.server.shutdown().await.unwrap();
    }
}

async fn start(tag: &str, connections: &str) -> (Agg, Http) {
    let dir = temp_dir(tag);
    let config = load_config(&dir, &format!("connections:\n{connections}"));
    let server = Server::start(&config, Arc::new(ManualClock::new(T0 + 15_000))).await.unwrap();
    let http = Http::new(server.base_url());
    (Agg { server, _dir: dir }, http)
}

fn ok_report(seq: u64) -> report::Report {
    report("nbo-1", "nairobi", seq, T0 + 15_000, vec![series(key("checkout", "", "ok", "nairobi"), &[1_000_000])])
}

#[tokio::test]
async fn slow_clients_are_cut_on_reports_and_on_the_relay() {
    let (server, http) =
        start("slow", "  header_read_timeout: 300ms\n  body_min_rate: 1000\n  body_rate_grace: 300ms\n").await;
    let addr = server.local_addr();
    let head = format!(
        "POST /api/v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {NBO}\r\nX-Pad: aaaaaaaaaaaaaaaa\r\n\r\n"
    );
    assert!(trickle(addr, head.as_bytes(), Duration::from_millis(100)).await.is_some(), "a 10 bytes/s head was kept");

    // A valid token, then a body at 10 bytes/s.
    let head = format!(
        "POST /api/v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {NBO}\r\nContent-Length: 100000\r\n\r\n"
    );
    let reply = slow_body(addr, head.as_bytes(), b"{\"prober\":", Duration::from_millis(100)).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    let head = "POST /stk/callback HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n";
    let reply = slow_body(addr, head.as_bytes(), b"{\"Body\":", Duration::from_millis(100)).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");

    // Nothing was stored or relayed from them; a prober that sends at once is served.
    assert_eq!(http.post_report(Some(NBO), &ok_report(1)).await.0, 200);
    assert_eq!(server.store().counts(&aggregator::Selection::all(), 0, i64::MAX).unwrap().total, 1);
    let m = &server.state().metrics.listener;
    eventually(|| m.closed("api", Closed::HeaderTimeout) >= 1).await;
    assert_eq!(m.slow_bodies("api"), 2);
    let (_, _, text) = http.request("GET", "/metrics", None, Vec::new()).await;
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains(r#"aggregator_requests_refused_total{listener="api",reason="body_too_slow"} 2"#), "{text}");
    assert!(text.contains(r#"aggregator_connections_closed_total{listener="api",reason="header_timeout"}"#), "{text}");
    // The slow report is counted as slow, not as a malformed report.
    assert!(text.contains(r#"aggregator_reports_total{result="rejected",reason="too_slow"} 1"#), "{text}");
    assert!(!text.contains(r#"reason="malformed""#), "{text}");
    assert!(text.contains(r#"aggregator_relay_callbacks_total{result="too_slow"} 1"#), "{text}");
    server.shutdown().await;
}

#[tokio::test]
async fn connections_past_the_per_peer_cap_are_refused_and_counted() {
    let (server, http) = start("cap", "  max_connections_per_peer: 2\n").await;
    let addr = server.local_addr();
    let held = [TcpStream::connect(addr).await.unwrap(), TcpStream::connect(addr).await.unwrap()];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut third, SOON).await.is_some(), "a third connection from 127.0.0.1 was served");
    let m = server.state().metrics.listener.clone();
    assert_eq!(m.refused("api", Refused::MaxConnectionsPerPeer), 1);
    drop(held);
    eventually(|| m.open("api") == 0).await;
    let (_, _, text) = http.request("GET", "/metrics", None, Vec::new()).await;
    let text = String::from_utf8_lossy(&text);
    let line = r#"aggregator_connections_refused_total{listener="api",reason="max_connections_per_peer"} 1"#;
    assert!(text.contains(line), "{text}");
    server.shutdown().await;
}

#[tokio::test]
async fn an_idle_http2_prober_connection_is_closed_after_the_idle_timeout() {
    let (server, _http) = start("idle", "  idle_timeout: 500ms\n").await;
    let tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    let (mut h2, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::post(format!("{}/api/v1/reports", server.base_url()))
        .header("authorization", format!("Bearer {NBO}"))
        .body(Full::new(Bytes::from(report::encode(&ok_report(1)))))
        .unwrap();
    assert_eq!(h2.send_request(req).await.unwrap().status(), 200);
    tokio::time::timeout(SOON, conn).await.expect("the idle connection got a GOAWAY").unwrap().unwrap();
    let m = &server.state().metrics.listener;
    eventually(|| m.closed("api", Closed::IdleTimeout) == 1).await;
    server.shutdown().await;
}

/// A body of `chunks` × 16 KiB with no declared length.
struct Chunks(usize);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        if self.0 == 0 {
            return std::task::Poll::Ready(None);
        }
        self.0 -= 1;
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from(vec![b' '; 16 * 1024])))))
    }
}

#[tokio::test]
async fn fifty_megabytes_over_http2_get_413_on_reports_and_on_the_relay() {
    let (server, _http) = start("h2-413", "  header_read_timeout: 10s\n").await;
    let tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    let (mut h2, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let fifty_mb = 50 * 1024 * 1024;
    type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;
    let bodies = || -> [(&str, Body); 4] {
        [
            ("/api/v1/reports", Full::new(Bytes::from(vec![b' '; fifty_mb])).boxed()),
            ("/api/v1/reports", Chunks(fifty_mb / (16 * 1024)).boxed()),
            ("/stk/callback", Full::new(Bytes::from(vec![b' '; fifty_mb])).boxed()),
            ("/stk/callback", Chunks(fifty_mb / (16 * 1024)).boxed()),
        ]
    };
    for (path, body) in bodies() {
        h2.ready().await.unwrap();
        let req = http::Request::post(format!("{}{path}", server.base_url()))
            .header("authorization", format!("Bearer {NBO}"))
            .body(body)
            .unwrap();
        let resp = h2.send_request(req).await.unwrap_or_else(|e| panic!("{path}: no status, {e:?}"));
        assert_eq!(resp.status(), 413, "{path}");
        let text = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(!text.is_empty(), "{path}: a reason");
    }
    // The connection survives the refusals.
    h2.ready().await.unwrap();
    let req = http::Request::post(format!("{}/api/v1/reports", server.base_url()))
        .header("authorization", format!("Bearer {NBO}"))
        .body(Full::new(Bytes::from(report::encode(&ok_report(1)))).boxed())
        .unwrap();
    assert_eq!(h2.send_request(req).await.unwrap().status(), 200);
    server.shutdown().await;
}

/// curl before 8 fails a request whose HTTP/2 stream closes while it is still uploading, even
/// after a complete answer; the listener lets the upload finish (within its linger bounds).
#[tokio::test]
async fn curl_reads_the_413_of_a_fifty_megabyte_http2_upload() {
    if !testkit::require_tool("curl") {
        return;
    }
    let version = tokio::process::Command::new("curl").arg("--version").output().await.unwrap();
    if !String::from_utf8_lossy(&version.stdout).contains("HTTP2") {
        return testkit::skip("this curl has no HTTP/2");
    }
    let (server, _http) = start("curl", "  header_read_timeout: 10s\n").await;
    let dir = temp_dir("curl-body");
    let file = dir.join("fifty.bin");
    std::fs::write(&file, vec![b' '; 50 * 1024 * 1024]).unwrap();
    for path in ["/api/v1/reports", "/stk/callback"] {
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code} %{http_version}"])
            .arg("-H")
            .arg(format!("Authorization: Bearer {NBO}"))
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .arg(format!("{}{path}", server.base_url()))
            .output()
            .await
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(said, "413 2", "{path}: {said} {}", String::from_utf8_lossy(&out.stderr));
    }
    server.shutdown().await;
}

/// A callback that declares more than the relay keeps is refused from its head: the answer comes
/// before any of the body is sent, in Daraja's reply shape.
#[tokio::test]
async fn the_relay_refuses_an_oversized_callback_from_its_declared_length() {
    let (server, http) = start("relay-cl", "").await;
    let mut c = TcpStream::connect(server.local_addr()).await.unwrap();
    let head = "POST /stk/callback HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n";
    tokio::io::AsyncWriteExt::write_all(&mut c, head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(20), tokio::io::AsyncReadExt::read(&mut c, &mut buf))
        .await
        .expect("answered without the body")
        .unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("\"ResultCode\":1"), "{reply}");
    let (_, _, text) = http.request("GET", "/metrics", None, Vec::new()).await;
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains(r#"aggregator_relay_callbacks_total{result="too_large"} 1"#), "{text}");
    server.shutdown().await;
}
