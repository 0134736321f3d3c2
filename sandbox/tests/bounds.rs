//! The sandbox's listener under slow, idle and hostile clients: each bound closes them and the
//! well-behaved client is still served. Limits are a few hundred milliseconds; assertions only
//! bound from above (closed within 10 s). Raw sockets here, not the fleet's helpers: the sandbox
//! depends on no crate of ours.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sandbox::{Config, Fault, HttpLimits, Service};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::{sleep, timeout},
};

const SOON: Duration = Duration::from_secs(10);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(http: HttpLimits) -> Config {
    Config { http, ..fast_config() }
}

/// Reads until the server closes; what it said, or `None` if it kept the connection for 10 s.
async fn until_closed(sock: &mut TcpStream) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    timeout(SOON, async {
        while let Ok(n @ 1..) = sock.read(&mut buf).await {
            out.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn slow_heads_and_one_byte_connections_are_closed() {
    let sb = start_with(config(HttpLimits { header_read_timeout: ms(300), ..Default::default() })).await;
    let mut held = Vec::new();
    for first in [&b"G"[..], b"P", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a"] {
        let mut c = TcpStream::connect(sb.local_addr()).await.unwrap();
        c.write_all(first).await.unwrap();
        held.push(c);
    }
    let ok = Http::default().get(&format!("{}/healthz", sb.base_url())).await;
    assert_eq!(ok.status, 200, "a well-behaved client is served meanwhile");
    for c in &mut held {
        assert!(until_closed(c).await.is_some(), "an incomplete request head was kept");
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn slow_and_oversized_bodies_are_refused() {
    let sb = start_with(config(HttpLimits { body_timeout: ms(300), ..Default::default() })).await;
    let mut c = TcpStream::connect(sb.local_addr()).await.unwrap();
    c.write_all(b"POST /ussd/at HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\ntext=").await.unwrap();
    let reply = until_closed(&mut c).await.expect("the slow body's connection was closed");
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    let mut c = TcpStream::connect(sb.local_addr()).await.unwrap();
    c.write_all(b"POST /ussd/at HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n").await.unwrap();
    let reply = until_closed(&mut c).await.expect("closed after the 413");
    assert!(reply.starts_with("HTTP/1.1 413"), "refused on its declared length: {reply}");
    sb.shutdown().await;
}

#[tokio::test]
async fn idle_http2_connections_are_closed_but_slow_answers_are_not() {
    let sb = start_with(config(HttpLimits { idle_timeout: ms(500), ..Default::default() })).await;
    // The USSD service answers after three idle timeouts.
    sb.faults().set(Service::Ussd, Fault { latency_ms: 1500, ..Default::default() }).unwrap();
    let tcp = TcpStream::connect(sb.local_addr()).await.unwrap();
    let (mut h2, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::post(format!("{}/ussd/at", sb.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(b"sessionId=s1&phoneNumber=%2B254711223344&text=")))
        .unwrap();
    let resp = h2.send_request(req).await.expect("the slow answer was not cut");
    assert_eq!(resp.status(), 200);
    timeout(SOON, conn).await.expect("the idle connection got a GOAWAY").unwrap().unwrap();
    sb.shutdown().await;
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_at_once() {
    let sb = start_with(config(HttpLimits { max_connections: 2, ..Default::default() })).await;
    let _a = TcpStream::connect(sb.local_addr()).await.unwrap();
    let _b = TcpStream::connect(sb.local_addr()).await.unwrap();
    sleep(ms(100)).await;
    let mut third = TcpStream::connect(sb.local_addr()).await.unwrap();
    assert!(until_closed(&mut third).await.is_some(), "a third connection was kept");
    drop((_a, _b));
    sb.shutdown().await;
}

#[tokio::test]
async fn http2_settings_advertise_the_stream_and_header_limits() {
    let sb = start().await;
    let mut c = TcpStream::connect(sb.local_addr()).await.unwrap();
    c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").await.unwrap();
    let mut head = [0u8; 9];
    timeout(SOON, c.read_exact(&mut head)).await.unwrap().unwrap();
    assert_eq!(head[3], 4, "the server's SETTINGS come first");
    let mut payload = vec![0u8; u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize];
    c.read_exact(&mut payload).await.unwrap();
    let settings: Vec<(u16, u32)> = payload
        .chunks(6)
        .map(|s| (u16::from_be_bytes([s[0], s[1]]), u32::from_be_bytes([s[2], s[3], s[4], s[5]])))
        .collect();
    assert!(settings.contains(&(0x3, 100)) && settings.contains(&(0x6, 16 * 1024)), "{settings:?}");
    drop(c);
    sb.shutdown().await;
}
