//! Alertmanager (Debian's `prometheus-alertmanager`) on a free loopback port, with its storage
//! in a temporary directory; stopped and cleaned up when dropped. [`Alertmanager::start`] runs one
//! with clustering off; [`Alertmanager::start_cluster`] runs a gossiping cluster of several on
//! loopback, as a production HA setup does. [`Webhook`] is the receiver end: a loopback HTTP
//! server that keeps every notification Alertmanager sends it.

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::Arc,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::Value;

use crate::{TempDir, gate, http, temp_dir};

/// The routing example the project ships (deploy/edge/alertmanager/alertmanager.yml).
pub fn example_config() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/edge/alertmanager/alertmanager.yml")
}

/// A running Alertmanager (killed on drop).
pub struct Alertmanager {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    dir: TempDir,
}

impl Alertmanager {
    /// Starts Alertmanager with `config` and waits until it is ready (30 s at most). `None` when
    /// it is not installed: the test is skipped, or fails under `CI=true` ([`gate`]).
    pub async fn start(config: &Path) -> Option<Alertmanager> {
        if !gate::require_tool("prometheus-alertmanager") {
            return None;
        }
        let am = Self::spawn(config, &["--cluster.listen-address=".to_owned()]);
        http::wait_ready(&format!("{}/-/ready", am.url), "Alertmanager", 30, || am.log()).await;
        Some(am)
    }

    /// Starts a cluster of `n` Alertmanagers with `config`, gossiping on loopback ports (each
    /// lists every other as `--cluster.peer`), and waits until every member is ready and sees
    /// all the others (60 s at most). A member waits `peer_timeout` per position in the cluster
    /// before notifying, and notifies only what no earlier member has: one notification per
    /// group from the whole cluster.
    pub async fn start_cluster(
        config: &Path,
        n: usize,
        peer_timeout: std::time::Duration,
    ) -> Option<Vec<Alertmanager>> {
        if !gate::require_tool("prometheus-alertmanager") {
            return None;
        }
        let ports: Vec<u16> = (0..n).map(|_| http::free_port()).collect();
        let members: Vec<Alertmanager> = ports
            .iter()
            .map(|own| {
                let mut args = vec![
                    format!("--cluster.listen-address=127.0.0.1:{own}"),
                    format!("--cluster.advertise-address=127.0.0.1:{own}"),
                    format!("--cluster.peer-timeout={}ms", peer_timeout.as_millis()),
                    "--cluster.gossip-interval=100ms".to_owned(),
                    "--cluster.pushpull-interval=2s".to_owned(),
                ];
                args.extend(ports.iter().filter(|p| *p != own).map(|p| format!("--cluster.peer=127.0.0.1:{p}")));
                Self::spawn(config, &args)
            })
            .collect();
        for am in &members {
            http::wait_ready(&format!("{}/-/ready", am.url), "Alertmanager (cluster member)", 60, || am.log()).await;
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        for am in &members {
            loop {
                if am.cluster_peers().await == n {
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "the Alertmanager cluster did not form:\n{}", am.log());
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        Some(members)
    }

    fn spawn(config: &Path, cluster: &[String]) -> Alertmanager {
        let dir = temp_dir("alertmanager");
        let log = std::fs::File::create(dir.join("alertmanager.log")).expect("the Alertmanager log file");
        let port = http::free_port();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(cluster)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting prometheus-alertmanager");
        Alertmanager { child, url: format!("http://127.0.0.1:{port}"), dir }
    }

    /// How many members (itself included) it sees in its cluster (`GET /api/v2/status`).
    pub async fn cluster_peers(&self) -> usize {
        match http::get(&format!("{}/api/v2/status", self.url)).await {
            Some((200, body)) => serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["cluster"]["peers"].as_array().map(Vec::len))
                .unwrap_or(0),
            _ => 0,
        }
    }

    /// Starts Alertmanager with the project's routing example.
    pub async fn start_example() -> Option<Alertmanager> {
        Self::start(&example_config()).await
    }

    /// The alerts it holds (`GET /api/v2/alerts`); empty when it does not answer.
    pub async fn alerts(&self) -> Vec<Value> {
        match http::get(&format!("{}/api/v2/alerts", self.url)).await {
            Some((200, body)) => match serde_json::from_slice(&body) {
                Ok(Value::Array(a)) => a,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    /// What it wrote on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("alertmanager.log")).unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A webhook receiver on a loopback port: every notification posted to it (Alertmanager's
/// webhook payload: `status`, `groupKey`, `alerts`, ...), in arrival order.
pub struct Webhook {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    seen: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Webhook {
    /// Binds a free loopback port and serves until dropped (every request answered 200).
    pub async fn start() -> Webhook {
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("binding the webhook");
        let url = format!("http://{}", listener.local_addr().expect("the webhook's address"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let keep = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let keep = keep.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let keep = keep.clone();
                        async move {
                            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let v = serde_json::from_slice(&body)
                                .unwrap_or(Value::String(String::from_utf8_lossy(&body).into()));
                            keep.lock().push(v);
                            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Webhook { url, seen, task }
    }

    /// Every notification received so far.
    pub fn notifications(&self) -> Vec<Value> {
        self.seen.lock().clone()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}
