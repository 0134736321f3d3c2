//! Debian's `prometheus` package: `promtool` for the checks, and a Prometheus server on a free
//! loopback port with its config and TSDB in a temporary directory.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
};

use serde::Serialize;

use crate::{TempDir, gate, http, temp_dir};

/// What a promtool run said.
#[derive(Debug)]
pub struct Said {
    pub ok: bool,
    /// stdout then stderr.
    pub text: String,
}

impl From<Output> for Said {
    fn from(o: Output) -> Said {
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        Said { ok: o.status.success(), text }
    }
}

/// `promtool`, found ([`Promtool::find`]) before the test goes on.
pub struct Promtool(());

impl Promtool {
    /// `None` when promtool is missing: the test is skipped, or fails under `CI=true`.
    pub fn find() -> Option<Promtool> {
        gate::require_tool("promtool").then_some(Promtool(()))
    }

    /// `promtool ARGS…` in `dir` (the current directory when `None`).
    pub fn run(&self, args: &[&str], dir: Option<&Path>) -> Said {
        let mut cmd = Command::new("promtool");
        cmd.args(args);
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        cmd.output().expect("running promtool").into()
    }

    /// `promtool check rules FILE`.
    pub fn check_rules(&self, file: &Path) -> Said {
        self.run(&["check", "rules", &file.display().to_string()], None)
    }

    /// `promtool check config FILE`.
    pub fn check_config(&self, file: &Path) -> Said {
        self.run(&["check", "config", &file.display().to_string()], None)
    }

    /// `promtool test rules FILE`, run in `dir` (rule files are named relative to it).
    pub fn test_rules(&self, dir: &Path, file: &str) -> Said {
        self.run(&["test", "rules", file], Some(dir))
    }

    /// `promtool check metrics` of an exposition text on stdin.
    pub fn check_metrics(&self, text: &str) -> Said {
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running promtool");
        child.stdin.take().expect("promtool's stdin").write_all(text.as_bytes()).expect("writing to promtool");
        child.wait_with_output().expect("promtool's output").into()
    }
}

/// A Prometheus server's configuration: global intervals, rule files, one job per target list.
#[derive(Debug, Clone, Serialize)]
pub struct PrometheusConfig {
    global: Global,
    rule_files: Vec<PathBuf>,
    scrape_configs: Vec<ScrapeConfig>,
    /// Command-line flags beyond the listener, storage and log level.
    #[serde(skip)]
    flags: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Global {
    scrape_interval: String,
    evaluation_interval: String,
}

#[derive(Debug, Clone, Serialize)]
struct ScrapeConfig {
    job_name: String,
    static_configs: Vec<StaticConfig>,
}

#[derive(Debug, Clone, Serialize)]
struct StaticConfig {
    targets: Vec<String>,
}

impl PrometheusConfig {
    /// Scraping and evaluating every `interval`, no rules, no jobs.
    pub fn every(interval: std::time::Duration) -> PrometheusConfig {
        let i = conf::duration::format(interval);
        PrometheusConfig {
            global: Global { scrape_interval: i.clone(), evaluation_interval: i },
            rule_files: Vec::new(),
            scrape_configs: Vec::new(),
            flags: Vec::new(),
        }
    }

    /// Accept Prometheus remote write at `/api/v1/write` (`--web.enable-remote-write-receiver`).
    pub fn remote_write_receiver(mut self) -> Self {
        self.flags.push("--web.enable-remote-write-receiver".into());
        self
    }

    pub fn rule_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.rule_files.push(path.into());
        self
    }

    /// A job scraping `targets` (`HOST:PORT`).
    pub fn job(mut self, name: &str, targets: &[&str]) -> Self {
        let targets = targets.iter().map(|t| (*t).to_owned()).collect();
        self.scrape_configs
            .push(ScrapeConfig { job_name: name.into(), static_configs: vec![StaticConfig { targets }] });
        self
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("a Prometheus config is plain YAML")
    }
}

/// A running Prometheus (killed on drop; its directory removed).
pub struct Prometheus {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config` and waits until it is ready (60 s at most). `None` when
    /// it is not installed: the test is skipped, or fails under `CI=true`.
    pub async fn start(config: &PrometheusConfig) -> Option<Prometheus> {
        if !gate::require_tool("prometheus") {
            return None;
        }
        let dir = temp_dir("prometheus");
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config.to_yaml()).expect("writing prometheus.yml");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("the Prometheus log file");
        let port = http::free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .args(&config.flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting prometheus");
        let p = Prometheus { child, url: format!("http://127.0.0.1:{port}"), dir };
        http::wait_ready(&format!("{}/-/ready", p.url), "Prometheus", 60, || p.log()).await;
        Some(p)
    }

    /// What it wrote on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_is_prometheus_yaml() {
        let c = PrometheusConfig::every(std::time::Duration::from_secs(1))
            .rule_file("/r/slo-rules.yml")
            .job("aggregator", &["127.0.0.1:7800"]);
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&c.to_yaml()).unwrap();
        assert_eq!(v["global"]["scrape_interval"].as_str(), Some("1s"));
        assert_eq!(v["rule_files"][0].as_str(), Some("/r/slo-rules.yml"));
        assert_eq!(v["scrape_configs"][0]["job_name"].as_str(), Some("aggregator"));
        assert_eq!(v["scrape_configs"][0]["static_configs"][0]["targets"][0].as_str(), Some("127.0.0.1:7800"));
    }
}
