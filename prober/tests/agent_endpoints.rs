//! The agent's `/metrics` listener under slow and hostile clients: they are cut and counted,
//! and the scraper is still served.

use std::{
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use httpserve::{Closed, testing::*};
use prober::agent::{endpoints, metrics::Metrics};
use tokio::{io::AsyncReadExt, io::AsyncWriteExt, net::TcpStream};

async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn slow_heads_and_one_byte_connections_are_cut_and_counted() {
    let metrics = Arc::new(Metrics::new());
    let limits = httpserve::Limits { header_read_timeout: Duration::from_millis(300), ..Default::default() };
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = httpserve::Listener::new(tcp, endpoints::LISTENER, limits, metrics.listeners.clone()).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(endpoints::serve(listener, metrics.clone(), Arc::new(AtomicBool::new(true))));

    let head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n";
    assert!(trickle(addr, head, Duration::from_millis(100)).await.is_some(), "a 10 bytes/s head was kept");
    let mut held = TcpStream::connect(addr).await.unwrap();
    held.write_all(b"G").await.unwrap();
    assert!(closed_within(&mut held, SOON).await.is_some(), "a one-byte connection was kept");

    eventually(|| metrics.listeners.closed("metrics", Closed::HeaderTimeout) == 2).await;
    let text = scrape(addr).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains(r#"prober_connections_closed_total{listener="metrics",reason="header_timeout"} 2"#),
        "{text}"
    );
    server.abort();
}
