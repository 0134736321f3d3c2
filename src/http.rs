//! A tiny HTTP/1.1 client for loopback JSON APIs (the aggregator's, the sandbox's admin, a local
//! Alertmanager): one request per connection, bounded in time, plain or chunked bodies.

use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

/// The largest reply read (the aggregator's SLO listing is well below it).
const MAX_REPLY: usize = 16 << 20;

/// `GET base+path`: the status and the body.
pub async fn get(base: &str, path: &str) -> anyhow::Result<(u16, String)> {
    request("GET", base, path, None).await
}

/// `GET base+path`, expecting 200 and JSON.
pub async fn get_json(base: &str, path: &str) -> anyhow::Result<serde_json::Value> {
    let (status, body) = get(base, path).await?;
    if status != 200 {
        bail!("GET {path}: HTTP {status}: {}", body.chars().take(200).collect::<String>());
    }
    serde_json::from_str(&body).with_context(|| format!("GET {path}: the reply is not JSON"))
}

/// One request with an optional JSON body; `base` is `http://host:port`.
pub async fn request(method: &str, base: &str, path: &str, json: Option<&str>) -> anyhow::Result<(u16, String)> {
    let addr = base.strip_prefix("http://").with_context(|| format!("`{base}` is not an http:// URL"))?;
    let addr = addr.trim_end_matches('/');
    let mut s = timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .with_context(|| format!("connecting to {addr}: timed out"))?
        .with_context(|| format!("connecting to {addr}"))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(body) = json {
        req += &format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    } else {
        req += "\r\n";
    }
    let mut raw = Vec::new();
    timeout(Duration::from_secs(20), async {
        s.write_all(req.as_bytes()).await?;
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 || raw.len() + n > MAX_REPLY {
                return Ok::<_, std::io::Error>(());
            }
            raw.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .with_context(|| format!("{method} {path}: no complete answer in 20 s"))?
    .with_context(|| format!("{method} {path}"))?;
    parse_response(&raw).with_context(|| format!("{method} {path}: not an HTTP/1.1 answer"))
}

/// (status, body) of a raw HTTP/1.1 response (plain or chunked body).
pub fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Some((status, body.to_owned()));
    }
    let mut out = String::new();
    let mut rest = body;
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let n = usize::from_str_radix(size.trim(), 16).ok()?;
        if n == 0 {
            return Some((status, out));
        }
        out.push_str(after.get(..n)?);
        rest = after.get(n + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_chunked_bodies() {
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"), Some((200, "{}".into())));
        let chunked = b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Some((404, "abcde".into())));
        assert_eq!(parse_response(b"garbage"), None);
    }
}
