//! The prober's Daraja callback listener is reachable from outside: slow and oversized requests
//! are refused and counted, HTTP/2 is spoken, and a real callback still gets through.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use httpserve::{Closed, ServeMetrics, testing::*};
use hyper_util::rt::{TokioExecutor, TokioIo};
use scenarios::rails::callback::{CallbackServer, LISTENER};
use tokio::net::TcpStream;

const CALLBACK: &str = r#"{"Body":{"stkCallback":{"MerchantRequestID":"m-1","CheckoutRequestID":"ws_CO_7","ResultCode":0,"ResultDesc":"ok"}}}"#;

async fn start() -> (CallbackServer, Arc<ServeMetrics>) {
    let metrics = Arc::new(ServeMetrics::new());
    let limits = httpserve::Limits {
        header_read_timeout: Duration::from_millis(300),
        body_min_rate: 1000,
        body_rate_grace: Duration::from_millis(300),
        ..Default::default()
    };
    (CallbackServer::start("127.0.0.1:0", limits, metrics.clone()).await.unwrap(), metrics)
}

#[tokio::test]
async fn slow_and_oversized_callbacks_are_refused_and_a_real_one_arrives_over_http2() {
    let (server, metrics) = start().await;
    let addr = server.local_addr();
    let head = b"POST /stk/callback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n";
    assert!(trickle(addr, head, Duration::from_millis(100)).await.is_some(), "a 10 bytes/s head was kept");
    let head = b"POST /stk/callback HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n";
    let reply = slow_body(addr, head, b"{\"Body\":", Duration::from_millis(100)).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    let head = b"POST /stk/callback HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n";
    let reply = slow_body(addr, head, b"{", Duration::from_millis(100)).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "refused on its declared length: {reply}");
    assert_eq!(metrics.slow_bodies(LISTENER), 1);
    eventually(|| metrics.closed(LISTENER, Closed::HeaderTimeout) == 1).await;

    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut h2, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(format!("{}/stk/callback", server.base_url()))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(CALLBACK.as_bytes())))
        .unwrap();
    let resp = h2.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).contains("Accepted"));
    let got = tokio::time::timeout(SOON, server.wait("mpesa-ke", "ws_CO_7")).await.expect("the callback was kept");
    assert_eq!(got.code, "0");
}
