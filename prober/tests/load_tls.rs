//! `prober load --url https://…` against a loopback TLS server (rcgen self-signed certificate,
//! trusted with `--ca-file`): HTTP/1.1 and HTTP/2 (ALPN `h2`), with keep-alive and with a new
//! connection per iteration. The server counts what it really saw: TLS handshakes, the ALPN
//! protocol of each, and requests by HTTP version; those counts must match the run's summary.
//! Also `--http2` on plain `http://` (prior knowledge, h2c).

use std::{
    convert::Infallible,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, Version, body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

const PROBER: &str = env!("CARGO_BIN_EXE_prober");

/// What the server saw.
#[derive(Default)]
struct Seen {
    handshakes: AtomicU64,
    alpn_h2: AtomicU64,
    alpn_http11: AtomicU64,
    requests_h1: AtomicU64,
    requests_h2: AtomicU64,
}

impl Seen {
    fn get(&self) -> [u64; 5] {
        [&self.handshakes, &self.alpn_h2, &self.alpn_http11, &self.requests_h1, &self.requests_h2]
            .map(|c| c.load(Relaxed))
    }
}

struct TlsServer {
    addr: SocketAddr,
    ca: PathBuf,
    seen: Arc<Seen>,
}

/// A TLS server offering `h2` and `http/1.1` by ALPN, serving both (hyper-util's auto builder).
async fn tls_server(dir: &Path) -> TlsServer {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let ca = dir.join("server.crt");
    std::fs::write(&ca, ck.cert.pem()).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(ck.cert.der().to_vec())], key)
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let (addr, seen) = counting_server(Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))).await;
    TlsServer { addr, ca, seen }
}

/// Accepts on loopback (over TLS with `tls`), counting handshakes (TCP ones without TLS), the ALPN
/// protocol chosen, and requests by version.
async fn counting_server(tls: Option<tokio_rustls::TlsAcceptor>) -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (tls, seen) = (tls.clone(), s.clone());
            tokio::spawn(async move {
                let Some(acceptor) = tls else {
                    seen.handshakes.fetch_add(1, Relaxed);
                    return serve_counting(tcp, seen).await;
                };
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                seen.handshakes.fetch_add(1, Relaxed);
                match tls.get_ref().1.alpn_protocol() {
                    Some(b"h2") => seen.alpn_h2.fetch_add(1, Relaxed),
                    Some(b"http/1.1") => seen.alpn_http11.fetch_add(1, Relaxed),
                    _ => 0,
                };
                serve_counting(tls, seen).await;
            });
        }
    });
    (addr, seen)
}

/// Serves one connection (HTTP/1.1 or HTTP/2), counting its requests by version.
async fn serve_counting<I>(io: I, seen: Arc<Seen>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: Request<Incoming>| {
        let seen = seen.clone();
        async move {
            match req.version() {
                Version::HTTP_2 => seen.requests_h2.fetch_add(1, Relaxed),
                _ => seen.requests_h1.fetch_add(1, Relaxed),
            };
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok\n"))))
        }
    });
    let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(io), svc).await;
}

/// A plain-TCP server speaking HTTP/1.1 and HTTP/2 with prior knowledge; counts connections and
/// requests by version.
async fn plain_server() -> (SocketAddr, Arc<Seen>) {
    counting_server(None).await
}

fn tmp(name: &str) -> testkit::TempDir {
    testkit::temp_dir(&format!("prober-load-tls-{name}"))
}

async fn prober(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(PROBER).arg("load").args(&args).output().unwrap()).await.unwrap()
}

fn text(o: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs 60 requests at 300/s over at most 3 connections, with `extra` flags; returns the summary.
async fn run(url: &str, dir: &Path, name: &str, extra: &[&str]) -> serde_json::Value {
    let json = dir.join(format!("{name}.json"));
    let mut args: Vec<String> = ["--url", url, "--rate", "300", "--iterations", "60", "-c", "3", "-q", "--json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(json.to_str().unwrap().to_owned());
    args.extend(extra.iter().map(|s| s.to_string()));
    let o = prober(args).await;
    assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o));
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_http1_and_http2_with_and_without_connection_reuse() {
    let dir = tmp("modes");
    let srv = tls_server(&dir).await;
    let url = format!("https://127.0.0.1:{}/", srv.addr.port());
    let ca = srv.ca.to_str().unwrap().to_owned();

    // (flags, expected HTTP/2, expected new connection per request)
    let cases: [(&str, &[&str], bool, bool); 4] = [
        ("h1-keepalive", &[], false, false),
        ("h1-new-connection", &["--new-connection"], false, true),
        ("h2-keepalive", &["--http2"], true, false),
        ("h2-new-connection", &["--http2", "--new-connection"], true, true),
    ];
    for (name, flags, h2, fresh) in cases {
        let before = srv.seen.get();
        let s = run(&url, &dir, name, &[&["--ca-file", &ca][..], flags].concat()).await;
        let after = srv.seen.get();
        let [handshakes, alpn_h2, alpn_h1, req_h1, req_h2] = std::array::from_fn(|i| after[i] - before[i]);
        let count = s["series"][0]["count"].as_u64().unwrap();
        assert_eq!(count, 60, "{name}: {s}");
        assert_eq!(s["series"][0]["errors"], 0, "{name}: {s}");
        assert_eq!(s["arrivals"]["started"], 60, "{name}: {s}");
        // Every request reached the server over TLS, in the asked protocol.
        if h2 {
            assert_eq!((req_h2, req_h1), (count, 0), "{name}: requests by version");
            assert_eq!((alpn_h2, alpn_h1), (handshakes, 0), "{name}: every handshake chose h2 by ALPN");
        } else {
            assert_eq!((req_h1, req_h2), (count, 0), "{name}: requests by version");
            assert_eq!((alpn_h1, alpn_h2), (handshakes, 0), "{name}: every handshake chose http/1.1 by ALPN");
        }
        if fresh {
            assert_eq!(handshakes, count, "{name}: one TLS handshake per request");
        } else {
            assert!((1..=3).contains(&handshakes), "{name}: {handshakes} handshakes for 3 kept-alive connections");
        }
    }
}

/// Without --ca-file the self-signed certificate is not trusted: every request is a `tls_error`,
/// and no request reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_a_tls_error() {
    let dir = tmp("untrusted");
    let srv = tls_server(&dir).await;
    let url = format!("https://127.0.0.1:{}/", srv.addr.port());
    for (name, flags) in [("h1", &[][..]), ("h2", &["--http2"][..])] {
        let s = run(&url, &dir, name, flags).await;
        assert_eq!(s["series"][0]["outcomes"]["tls_error"], 60, "{name}: {s}");
    }
    let [handshakes, .., req_h1, req_h2] = srv.seen.get();
    assert_eq!((handshakes, req_h1, req_h2), (0, 0, 0));

    // A --ca-file that holds no certificate is bad input (exit 2), named.
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let o = prober(
        ["--url", &url, "--rate", "10", "--iterations", "1", "-q", "--ca-file", empty.to_str().unwrap()]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--ca-file") && text(&o).contains("empty.pem"), "{}", text(&o));
}

/// `--http2` on `http://`: HTTP/2 with prior knowledge (h2c), kept alive or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_on_plain_http() {
    let dir = tmp("h2c");
    let (addr, seen) = plain_server().await;
    let url = format!("http://{addr}/");
    for (name, flags, fresh) in
        [("h2c-keepalive", &["--http2"][..], false), ("h2c-new-connection", &["--http2", "--new-connection"], true)]
    {
        let before = seen.get();
        let s = run(&url, &dir, name, flags).await;
        let after = seen.get();
        let [connections, _, _, req_h1, req_h2] = std::array::from_fn(|i| after[i] - before[i]);
        assert_eq!(s["series"][0]["count"], 60, "{name}: {s}");
        assert_eq!(s["series"][0]["errors"], 0, "{name}: {s}");
        assert_eq!((req_h2, req_h1), (60, 0), "{name}: requests by version");
        if fresh {
            assert_eq!(connections, 60, "{name}");
        } else {
            assert!((1..=3).contains(&connections), "{name}: {connections} connections");
        }
    }
}
