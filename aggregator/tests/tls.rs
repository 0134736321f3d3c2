//! Reports over HTTP/2 + TLS (rustls, ALPN h2), as probers send them across the internet.

mod common;

use std::sync::Arc;

use aggregator::{Server, clock::SystemClock};
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, ServerName},
};

#[tokio::test]
async fn a_prober_reports_over_http2_and_tls() {
    let dir = temp_dir("tls");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("agg.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("agg.key"), ck.signing_key.serialize_pem()).unwrap();
    let config = load_config(&dir, "tls:\n  cert_file: agg.crt\n  key_file: agg.key\n");
    let server = Server::start(&config, Arc::new(SystemClock)).await.unwrap();
    assert!(server.base_url().starts_with("https://"));

    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ck.cert.der().to_vec())).unwrap();
    let mut client = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "the server chose HTTP/2");

    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let end = aggregator::clock::Clock::now_ms(&SystemClock) / 60_000 * 60_000;
    let r = report("dar-1", "dar", 1, end, vec![series(key("ussd-balance", "", "ok", "dar"), &[800_000])]);
    for expected in ["stored", "duplicate"] {
        let req = http::Request::builder()
            .method("POST")
            .uri("https://localhost/api/v1/reports")
            .header("authorization", format!("Bearer {DAR}"))
            .body(Full::new(Bytes::from(report::encode(&r))))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value =
            serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(body["status"], expected);
    }
    assert_eq!(server.store().counts(&aggregator::Selection::all(), 0, i64::MAX).unwrap().total, 1);
    server.shutdown().await.unwrap();
}

#[test]
fn plain_http_off_loopback_is_refused_at_config_time() {
    let dir = temp_dir("plain");
    let path = dir.join("aggregator.yaml");
    std::fs::write(&path, config_yaml("").replace("127.0.0.1:0", "0.0.0.0:8443")).unwrap();
    let e = aggregator::Config::load_with_env(&path, &env).unwrap_err().to_string();
    assert!(e.contains("aggregator.yaml:1:") && e.contains("tls"), "{e}");
}
