//! The connector on real loopback sockets. Only lower bounds on time (the emulated delays are
//! floors; a busy machine can only add to them) and generous upper bounds.

use std::time::Duration;

use netem::{ConnectError, Connector, Profile, RadioPromotion};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

fn delayed(rtt_ms: u64) -> Profile {
    let mut p = Profile::unshaped("delayed");
    p.one_way_delay = Duration::from_millis(rtt_ms) / 2;
    p.dns_rtt = true;
    p
}

async fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut b = [0u8; 64];
                while let Ok(n @ 1..) = s.read(&mut b).await {
                    if s.write_all(&b[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn connect_pays_one_rtt_and_dns_another_for_names() {
    let port = echo_server().await;
    let c = Connector::new(delayed(200), 1);
    let ip = c.connect("127.0.0.1", port).await.unwrap();
    assert_eq!(ip.timings.dns, Duration::ZERO, "an IP literal needs no lookup");
    assert!(ip.timings.connect >= Duration::from_millis(200), "{:?}", ip.timings);
    assert!(ip.timings.connect < Duration::from_secs(5), "{:?}", ip.timings);

    let mut named = c.connect("localhost", port).await.unwrap();
    assert!(named.timings.dns >= Duration::from_millis(200), "{:?}", named.timings);
    assert!(named.timings.connect >= Duration::from_millis(200), "{:?}", named.timings);
    named.stream.write_all(b"hi").await.unwrap();
    let mut b = [0u8; 2];
    named.stream.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"hi");
}

#[tokio::test]
async fn the_radio_is_promoted_once_for_the_device() {
    let port = echo_server().await;
    let mut p = delayed(40);
    p.radio = Some(RadioPromotion { promotion: Duration::from_millis(800), tail: Duration::from_secs(30) });
    let c = Connector::new(p, 1);
    let first = c.connect("127.0.0.1", port).await.unwrap();
    assert!(first.timings.connect >= Duration::from_millis(840), "cold radio: {:?}", first.timings);
    let second = c.connect("127.0.0.1", port).await.unwrap();
    assert!(second.timings.connect < Duration::from_millis(800), "warm radio: {:?}", second.timings);
    assert_eq!(c.radio().promotions(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    // Bind then drop to find a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let c = Connector::new(delayed(10), 1);
    let e = c.connect("127.0.0.1", port).await.err().expect("nobody listens there");
    assert!(matches!(e, ConnectError::Connect { .. }), "{e}");
    assert_eq!(e.phase(), "connect");
}
