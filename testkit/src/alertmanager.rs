//! Alertmanager (Debian's `prometheus-alertmanager`) on a free loopback port, with its storage
//! in a temporary directory and clustering off; stopped and cleaned up when dropped.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
};

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
        let dir = temp_dir("alertmanager");
        let log = std::fs::File::create(dir.join("alertmanager.log")).expect("the Alertmanager log file");
        let port = http::free_port();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting prometheus-alertmanager");
        let am = Alertmanager { child, url: format!("http://127.0.0.1:{port}"), dir };
        http::wait_ready(&format!("{}/-/ready", am.url), "Alertmanager", 30, || am.log()).await;
        Some(am)
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
