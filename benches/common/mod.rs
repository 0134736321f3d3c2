//! Pieces the ingest load generators share (`ingest.rs`, `fleet_ingest.rs`): a seeded random
//! stream, the wall clock, a process's CPU time, and an HTTP/2-over-TLS client connection that
//! trusts the bench's self-signed aggregator certificate.

use std::{path::Path, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// splitmix64: a seeded, portable stream of u64s.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Log-normal around `median` with shape `sigma` (Box–Muller).
    pub fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        let z = (-2.0 * self.unit().ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos();
        median * (sigma * z).exp()
    }
}

/// Unix milliseconds now.
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// utime + stime of a process, seconds (from /proc/PID/stat; `pid` may be `self`).
pub fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

/// A rustls client config trusting the PEM certificates in `ca`, offering only `h2`.
pub fn h2_tls_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))? {
        roots.add(c.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// One HTTP/2 connection over TLS to `addr`, for the name `localhost`; its driver runs on a
/// spawned task.
pub async fn connect_h2(addr: &str, tls: Arc<rustls::ClientConfig>) -> Result<http2::SendRequest<Full<Bytes>>, String> {
    use rustls::pki_types::ServerName;
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("{addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let tls = tokio_rustls::TlsConnector::from(tls)
        .connect(ServerName::try_from("localhost").map_err(|e| e.to_string())?, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("the server did not choose HTTP/2".into());
    }
    let (s, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(s)
}
