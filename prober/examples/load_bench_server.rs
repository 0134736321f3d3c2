//! The target of `benches/load-bench.sh`: a bare hyper HTTP/1.1 server on one thread (pin it with
//! `taskset -c 0`), answering every request with `200 ok`. Exits after `--max-secs` (default 900)
//! so a forgotten server cannot outlive the benchmark.
//!
//!   load_bench_server --listen 127.0.0.1:0 [--max-secs 900]   # prints `listening ADDR`

use std::{convert::Infallible, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: &str| {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_owned())
    };
    let listen = arg("--listen", "127.0.0.1:0");
    let max_secs: u64 = arg("--max-secs", "900").parse().unwrap_or(900);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen).await?;
        println!("listening {}", listener.local_addr()?);
        let serve = async {
            loop {
                let (tcp, _) = listener.accept().await?;
                let _ = tcp.set_nodelay(true);
                tokio::spawn(async move {
                    let svc = service_fn(|_req: Request<Incoming>| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
                });
            }
            #[allow(unreachable_code)]
            Ok::<(), std::io::Error>(())
        };
        tokio::select! {
            r = serve => r,
            _ = tokio::time::sleep(Duration::from_secs(max_secs)) => Ok(()),
        }
    })
}
