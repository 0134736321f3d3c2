//! One test per bound, each with a hostile client on a real loopback socket and a well-behaved
//! client that must still be served. Limits are a few hundred milliseconds; assertions only say
//! "closed within 10 s", so a slow machine cannot fail them.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use httpserve::{Closed, Limits, Refused};
use tokio::{
    io::AsyncWriteExt,
    net::TcpStream,
    time::{Instant, sleep},
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test]
async fn slow_request_headers_are_cut_and_others_are_still_served() {
    let s = serve(Limits { header_read_timeout: ms(300), ..Limits::default() }).await;
    let head = b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let slow = tokio::spawn(trickle(s.addr, head, ms(100)));
    assert_eq!(get_ok(s.addr).await, Ok(200), "a well-behaved client is served meanwhile");
    assert!(slow.await.unwrap().is_some(), "a head sent at 10 bytes/s was accepted");
    assert!(s.metrics.closed("test", Closed::HeaderTimeout) >= 1);
    s.shutdown().await;
}

#[tokio::test]
async fn connections_holding_one_byte_are_closed() {
    let limits = Limits { header_read_timeout: ms(300), max_connections_per_peer: 200, ..Limits::default() };
    let s = serve(limits).await;
    let mut held = Vec::new();
    // Before the protocol is known ("G" could start HTTP/1.1 or the HTTP/2 preface "P…").
    for first in [b"G", b"P"].iter().cycle().take(100) {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(*first).await.unwrap();
        held.push(c);
    }
    for c in &mut held {
        assert!(closed_within(c, SOON).await.is_some(), "a one-byte connection was kept");
    }
    eventually(|| s.metrics.closed("test", Closed::HeaderTimeout) == 100).await;
    assert_eq!(get_ok(s.addr).await, Ok(200));
    s.shutdown().await;
}

#[tokio::test]
async fn a_trickled_body_is_answered_408_and_its_connection_closed() {
    let limits = Limits { body_min_rate: 1000, body_rate_grace: ms(300), ..Limits::default() };
    let s = serve(limits).await;
    let head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n";
    let reply = slow_body(s.addr, head, b"0123456789", ms(100)).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.to_ascii_lowercase().contains("connection: close"), "{reply}");
    assert_eq!(s.metrics.slow_bodies("test"), 1);

    // A body at full speed is read whole.
    let (mut h2, _conn) = h2_client(s.addr).await;
    let req = http::Request::post(format!("http://{}/echo", s.addr)).body(full(vec![7u8; 300_000])).unwrap();
    let resp = h2.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), Bytes::from("300000"));
    s.shutdown().await;
}

#[tokio::test]
async fn a_stalled_http2_body_is_answered_408_on_its_stream() {
    let limits = Limits { body_min_rate: 1000, body_rate_grace: ms(300), ..Limits::default() };
    let s = serve(limits).await;
    let (mut h2, _conn) = h2_client(s.addr).await;
    let req = http::Request::post(format!("http://{}/echo", s.addr)).body(stalled("only this")).unwrap();
    let resp = tokio::time::timeout(SOON, h2.send_request(req)).await.expect("an answer").unwrap();
    assert_eq!(resp.status(), 408);
    assert_eq!(s.metrics.slow_bodies("test"), 1);
    // The connection itself stays usable.
    h2.ready().await.unwrap();
    let req = http::Request::get(format!("http://{}/ok", s.addr)).body(full(Bytes::new())).unwrap();
    assert_eq!(h2.send_request(req).await.unwrap().status(), 200);
    s.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed_but_long_requests_are_not() {
    let limits = Limits { idle_timeout: ms(500), ..Limits::default() };
    let s = serve(limits).await;
    let (mut h2, conn) = h2_client(s.addr).await;
    // A request that takes three idle timeouts is not cut.
    let req = http::Request::get(format!("http://{}/sleep/1500", s.addr)).body(full(Bytes::new())).unwrap();
    let resp = h2.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), Bytes::from("slept"));
    // Then, with nothing in flight, the server says GOAWAY and the connection ends.
    tokio::time::timeout(SOON, conn).await.expect("the idle HTTP/2 connection was closed").unwrap();
    eventually(|| s.metrics.closed("test", Closed::IdleTimeout) == 1).await;
    s.shutdown().await;
}

#[tokio::test]
async fn an_idle_http1_keep_alive_connection_is_closed() {
    let s = serve(Limits { header_read_timeout: ms(300), ..Limits::default() }).await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let took = closed_within(&mut c, SOON).await;
    assert!(took.is_some(), "the kept-alive connection stayed open");
    s.shutdown().await;
}

#[tokio::test]
async fn connections_past_the_per_peer_cap_are_closed_at_once() {
    let s = serve(Limits { max_connections_per_peer: 3, ..Limits::default() }).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        held.push(c);
    }
    sleep(ms(100)).await;
    let mut fourth = TcpStream::connect(s.addr).await.unwrap();
    assert!(closed_within(&mut fourth, SOON).await.is_some(), "the fourth connection was served");
    assert_eq!(s.metrics.refused("test", Refused::MaxConnectionsPerPeer), 1);
    drop(held.pop());
    // Its place is given back once the server sees the close.
    let deadline = Instant::now() + SOON;
    while get_ok(s.addr).await != Ok(200) {
        assert!(Instant::now() < deadline, "no place was given back");
        sleep(ms(50)).await;
    }
    s.shutdown().await;
}

#[tokio::test]
async fn connections_past_the_total_cap_are_closed_at_once() {
    let s = serve(Limits { max_connections: 2, max_connections_per_peer: 2, ..Limits::default() }).await;
    let _a = TcpStream::connect(s.addr).await.unwrap();
    let _b = TcpStream::connect(s.addr).await.unwrap();
    sleep(ms(100)).await;
    let mut third = TcpStream::connect(s.addr).await.unwrap();
    assert!(closed_within(&mut third, SOON).await.is_some());
    assert_eq!(s.metrics.refused("test", Refused::MaxConnections), 1);
    assert_eq!(s.metrics.open("test"), 2);
    s.shutdown().await;
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_dropped() {
    let (acceptor, client) = tls_pair();
    let limits = Limits { tls_handshake_timeout: ms(300), ..Limits::default() };
    let s = serve_with(limits, Some(acceptor), Duration::from_secs(5)).await;
    let mut stalled = TcpStream::connect(s.addr).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap(); // the start of a ClientHello record
    assert!(closed_within(&mut stalled, SOON).await.is_some(), "the stalled handshake was kept");
    assert_eq!(s.metrics.closed("test", Closed::TlsHandshakeTimeout), 1);
    // A real client completes its handshake and speaks HTTP/2.
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(client).connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    s.shutdown().await;
}

#[tokio::test]
async fn http2_settings_advertise_the_default_stream_and_header_limits() {
    let s = serve(Limits::default()).await;
    let mut c = h2_raw(s.addr).await;
    let settings = until(&mut c, |f| f.kind == SETTINGS && f.flags & 1 == 0).await.unwrap().settings();
    assert!(settings.contains(&(0x3, 100)), "SETTINGS_MAX_CONCURRENT_STREAMS: {settings:?}");
    assert!(settings.contains(&(0x6, 16 * 1024)), "SETTINGS_MAX_HEADER_LIST_SIZE: {settings:?}");
    drop(c);
    s.shutdown().await;
}

#[tokio::test]
async fn streams_above_the_concurrency_limit_are_refused() {
    let s = serve(Limits { h2_max_concurrent_streams: 2, ..Limits::default() }).await;
    let mut c = h2_raw(s.addr).await;
    // Three uploads that never finish: the third is one too many.
    for id in [1, 3, 5] {
        c.write_all(&request(id, "POST", "/echo", false)).await.unwrap();
    }
    let rst = until(&mut c, |f| f.kind == RST_STREAM).await.expect("a RST_STREAM");
    assert_eq!((rst.stream, rst.code()), (5, 0x7), "REFUSED_STREAM on the third stream: {rst:?}");
    drop(c);
    s.shutdown().await;
}

#[tokio::test]
async fn an_oversized_http2_header_list_is_answered_431() {
    let s = serve(Limits { h2_max_header_list_size: 4096, ..Limits::default() }).await;
    let (mut h2, _conn) = h2_client(s.addr).await;
    let get = |v: &str| {
        http::Request::get(format!("http://{}/ok", s.addr)).header("x-big", v).body(full(Bytes::new())).unwrap()
    };
    assert_eq!(h2.send_request(get(&"a".repeat(8000))).await.unwrap().status(), 431);
    h2.ready().await.unwrap();
    assert_eq!(h2.send_request(get("small")).await.unwrap().status(), 200);
    s.shutdown().await;
}

#[tokio::test]
async fn a_reset_flood_gets_goaway_enhance_your_calm() {
    let s = serve(Limits::default()).await;
    let mut c = h2_raw(s.addr).await;
    let mut burst = Vec::new();
    for i in 0..200u32 {
        let id = 2 * i + 1;
        burst.extend(request(id, "GET", "/sleep/1000", true));
        burst.extend(frame(RST_STREAM, 0, id, &0x8u32.to_be_bytes())); // CANCEL
    }
    let _ = c.write_all(&burst).await;
    let goaway = until(&mut c, |f| f.kind == GOAWAY).await.expect("a GOAWAY");
    assert_eq!(goaway.code(), 0xb, "ENHANCE_YOUR_CALM: {goaway:?}");
    assert!(closed_within(&mut c, SOON).await.is_some());
    eventually(|| s.metrics.closed("test", Closed::H2Flood) == 1).await;
    assert_eq!(get_ok(s.addr).await, Ok(200));
    s.shutdown().await;
}

#[tokio::test]
async fn a_ping_flood_ends_with_the_idle_timeout() {
    let limits = Limits { idle_timeout: ms(500), header_read_timeout: ms(500), ..Limits::default() };
    let s = serve(limits).await;
    let mut c = h2_raw(s.addr).await;
    // One request first, so the connection is past its first-request deadline.
    c.write_all(&request(1, "GET", "/ok", true)).await.unwrap();
    until(&mut c, |f| f.kind == HEADERS).await.unwrap();
    let (mut r, mut w) = c.into_split();
    let flood = tokio::spawn(async move {
        let pings: Vec<u8> = (0..1000u64).flat_map(|i| frame(PING, 0, 0, &i.to_be_bytes())).collect();
        while w.write_all(&pings).await.is_ok() {}
    });
    let start = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(SOON, async {
        use tokio::io::AsyncReadExt;
        while let Ok(1..) = r.read(&mut buf).await {}
    })
    .await;
    assert!(closed.is_ok(), "a connection sending only PINGs was kept for {:?}", start.elapsed());
    flood.abort();
    assert_eq!(get_ok(s.addr).await, Ok(200));
    s.shutdown().await;
}

#[tokio::test]
async fn an_early_http2_answer_lets_the_upload_finish_before_the_stream_ends() {
    let s = serve(Limits::default()).await;
    let mut c = h2_raw(s.addr).await;
    c.write_all(&request(1, "POST", "/early", false)).await.unwrap();
    c.write_all(&frame(DATA, 0, 1, &[b' '; 16 * 1024])).await.unwrap();
    let mut seen = Vec::new();
    // The answer comes while the upload is still going.
    loop {
        let f = read_frame(&mut c).await.unwrap().expect("an answer");
        seen.push((f.kind, f.flags, f.stream));
        if f.kind == DATA && f.stream == 1 && f.flags & END_STREAM != 0 {
            break;
        }
    }
    // The rest of the body (inside the initial 65,535-byte window), then a PING to mark the end.
    let mut rest = Vec::new();
    for _ in 0..2 {
        rest.extend(frame(DATA, 0, 1, &[b' '; 16 * 1024]));
    }
    rest.extend(frame(DATA, END_STREAM, 1, b"end"));
    rest.extend(frame(PING, 0, 0, b"marker!!"));
    c.write_all(&rest).await.unwrap();
    loop {
        let f = read_frame(&mut c).await.unwrap().expect("the connection stays open");
        if f.kind == PING && f.flags & 1 == 1 && f.payload == b"marker!!" {
            break;
        }
        seen.push((f.kind, f.flags, f.stream));
    }
    assert!(seen.contains(&(HEADERS, END_HEADERS, 1)), "{seen:?}");
    assert!(!seen.iter().any(|&(k, _, id)| k == RST_STREAM && id == 1), "the stream was reset mid-upload: {seen:?}");
    drop(c);
    s.shutdown().await;
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_within_the_grace() {
    let s = serve_with(Limits::default(), None, ms(3000)).await;
    let (mut h2, _conn) = h2_client(s.addr).await;
    let req = http::Request::get(format!("http://{}/sleep/300", s.addr)).body(full(Bytes::new())).unwrap();
    let pending = tokio::spawn(async move { h2.send_request(req).await.map(|r| r.status()) });
    sleep(ms(100)).await;
    s.shutdown().await;
    assert_eq!(pending.await.unwrap().unwrap(), 200, "the in-flight request was finished");
}

#[tokio::test]
async fn dropping_the_server_closes_its_connections() {
    let s = serve(Limits::default()).await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    sleep(ms(100)).await;
    s.task.abort();
    assert!(closed_within(&mut c, SOON).await.is_some(), "the connection outlived its server");
}
