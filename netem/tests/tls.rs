//! rustls over a shaped stream: the handshake's round trips cross the emulated link, so TLS costs
//! what it costs on 3G. Paused clock, in-memory pipe: exact virtual times.

use std::{sync::Arc, time::Duration};

use netem::{Profile, Rate, ShapedStream, stream::TIMER_LEAD};
use rustls::{
    ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, duplex},
    time::Instant,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn three_g() -> Profile {
    // ea-3g without jitter and loss, so the expected times are exact.
    let mut p = Profile::unshaped("3g-clean");
    p.down = Rate::Kbps(1600.0);
    p.up = Rate::Kbps(768.0);
    p.one_way_delay = Duration::from_millis(150);
    p
}

fn configs(versions: &[&'static SupportedProtocolVersion]) -> (ServerConfig, ClientConfig) {
    let ck = rcgen::generate_simple_self_signed(vec!["shop.example".to_owned()]).unwrap();
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (server, client)
}

/// Handshake time and request/response time of one TLS exchange over the 3G link.
async fn exchange(versions: &[&'static SupportedProtocolVersion]) -> (Duration, Duration) {
    let (server_cfg, client_cfg) = configs(versions);
    let p = three_g();
    let (client, server) = duplex(64 * 1024);
    let shaped = ShapedStream::new(client, &p, 1);
    tokio::spawn(async move {
        let mut tls = TlsAcceptor::from(Arc::new(server_cfg)).accept(server).await.unwrap();
        let mut req = [0u8; 5];
        tls.read_exact(&mut req).await.unwrap();
        assert_eq!(&req, b"hello");
        tls.write_all(b"jambo").await.unwrap();
        tls.shutdown().await.unwrap();
    });
    let start = Instant::now();
    let name = ServerName::try_from("shop.example").unwrap();
    let mut tls = TlsConnector::from(Arc::new(client_cfg)).connect(name, shaped).await.unwrap();
    let handshake = start.elapsed();
    let start = Instant::now();
    tls.write_all(b"hello").await.unwrap();
    let mut resp = [0u8; 5];
    tls.read_exact(&mut resp).await.unwrap();
    assert_eq!(&resp, b"jambo");
    (handshake, start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn tls13_handshake_costs_one_round_trip_on_3g() {
    let (handshake, request) = exchange(&[&rustls::version::TLS13]).await;
    let rtt = Duration::from_millis(300);
    // ClientHello up, ServerHello … Finished down (a certificate: ~1 kB, ~5 ms at 1.6 Mbit/s).
    let lead = 2 * TIMER_LEAD;
    assert!(handshake + lead >= rtt && handshake < rtt + Duration::from_millis(40), "handshake {handshake:?}");
    assert!(request + lead >= rtt && request < rtt + Duration::from_millis(20), "request {request:?}");
}

#[tokio::test(start_paused = true)]
async fn tls12_handshake_costs_two_round_trips_on_3g() {
    let (handshake, _) = exchange(&[&rustls::version::TLS12]).await;
    let rtt = Duration::from_millis(300);
    assert!(
        handshake + 4 * TIMER_LEAD >= 2 * rtt && handshake < 2 * rtt + Duration::from_millis(60),
        "handshake {handshake:?}"
    );
}
