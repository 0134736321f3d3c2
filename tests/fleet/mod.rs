//! Helpers for the whole-fleet tests: the built binaries, processes with captured logs, the
//! config files, the probers' durable record (their acknowledged-report archives) and the
//! aggregator's answers.
#![allow(dead_code)]

pub mod netns;
pub mod slo;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, OnceLock},
    time::Duration,
};

use parking_lot::Mutex;
pub use testkit::TempDir;
use testkit::config::{AggregatorConfig, EdgeConfig, EdgeJourney, ms};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    process::{Child, Command},
    time::{Instant, sleep_until},
};

/// The three edges: prober id, region, network profile, token env var, token.
pub const EDGES: [Edge; 3] = [
    Edge {
        id: "nbo-1",
        region: "nairobi",
        profile: "ea-4g-urban",
        token_env: "NBO_TOKEN",
        token: "fleet-nbo-7c1d2e3f4a5b",
    },
    Edge { id: "kla-1", region: "kampala", profile: "ea-3g", token_env: "KLA_TOKEN", token: "fleet-kla-9e8d7c6b5a41" },
    Edge { id: "dar-1", region: "dar", profile: "ea-3g-slow", token_env: "DAR_TOKEN", token: "fleet-dar-0f1e2d3c4b5a" },
];

/// Reporting interval of the probers in these tests.
pub const REPORTING_INTERVAL_MS: u64 = 2_000;

#[derive(Debug, Clone, Copy)]
pub struct Edge {
    pub id: &'static str,
    pub region: &'static str,
    pub profile: &'static str,
    pub token_env: &'static str,
    pub token: &'static str,
}

/// The binaries of the other crates, built by this test with the same profile and target dir.
pub struct Bins {
    pub sandbox: PathBuf,
    pub aggregator: PathBuf,
    pub prober: PathBuf,
}

/// Builds `sandbox`, `aggregator` and `prober` (a no-op when they are up to date) and returns
/// their paths in this test binary's target directory.
pub fn bins() -> &'static Bins {
    static BINS: OnceLock<Bins> = OnceLock::new();
    BINS.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").to_path_buf();
        let target_dir = profile_dir.parent().expect("target/<profile>").to_path_buf();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "sandbox", "-p", "aggregator", "-p", "prober", "--bins"])
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build for the fleet binaries");
        assert!(status.success(), "cargo build -p sandbox -p aggregator -p prober --bins failed: {status}");
        let bin = |n: &str| {
            let p = profile_dir.join(n);
            assert!(p.exists(), "{} was not built", p.display());
            p
        };
        Bins { sandbox: bin("sandbox"), aggregator: bin("aggregator"), prober: bin("prober") }
    })
}

/// A fresh directory for one test, removed when the guard drops (passed or failed).
pub fn tmpdir(name: &str) -> TempDir {
    testkit::temp_dir(&format!("fleet-{name}"))
}

/// Polls `f` every 100 ms until it holds; panics with `what` after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        let next = Instant::now() + Duration::from_millis(100);
        if f().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        sleep_until(next).await;
    }
}

/// Lets the fleet run for `d` (not an assertion: the checks wait for conditions).
pub async fn run_for(d: Duration) {
    sleep_until(Instant::now() + d).await;
}

/// A child process whose stdout and stderr are kept in memory (killed when dropped).
pub struct Proc {
    pub name: String,
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Proc {
    /// Runs `prefix… bin args…` (the prefix is e.g. `ip netns exec NS`).
    pub fn spawn(name: &str, prefix: &[&str], bin: &Path, args: &[&str], envs: &[(&str, &str)]) -> Proc {
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(args)
            .envs(envs.iter().copied())
            .env("PROBER_LOG", "info")
            .env("RUST_LOG", "info,hyper=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {name} ({}): {e}", bin.display()));
        let log = Arc::new(Mutex::new(String::new()));
        drain(child.stdout.take().unwrap(), log.clone());
        drain(child.stderr.take().unwrap(), log.clone());
        Proc { name: name.to_owned(), child, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().clone()
    }

    /// The rest of the first log line that starts with `prefix` (waits at most `limit`).
    pub async fn line_after(&self, prefix: &str, limit: Duration) -> String {
        let mut found = None;
        wait_until(&format!("{}: a line starting {prefix:?}", self.name), limit, async || {
            found = self.log().lines().find_map(|l| l.strip_prefix(prefix).map(str::to_owned));
            found.is_some()
        })
        .await;
        found.unwrap()
    }

    /// SIGKILL: no flush, no goodbye.
    pub async fn kill9(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// SIGTERM, then the exit code (waits at most `limit`).
    pub async fn term(&mut self, limit: Duration) -> i32 {
        let pid = self.child.id().expect("still running").to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().await.unwrap().success();
        assert!(ok, "kill -TERM {pid}");
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not stop within {limit:?}:\n{}", self.name, self.log()))
            .unwrap();
        run_for(Duration::from_millis(100)).await; // let the log readers drain
        status.code().unwrap_or(-1)
    }
}

fn drain(r: impl AsyncRead + Unpin + Send + 'static, log: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            let mut s = log.lock();
            s.push_str(&l);
            s.push('\n');
        }
    });
}

/// Starts the sandbox binary on 127.0.0.1 (of the namespace `prefix` enters) with a short STK
/// callback delay; returns it and its base URL.
pub async fn start_sandbox(name: &str, prefix: &[&str]) -> (Proc, String) {
    let p = Proc::spawn(
        name,
        prefix,
        &bins().sandbox,
        &["--listen", "127.0.0.1:0", "--callback-delay-ms", "100", "--log", "warn"],
        &[],
    );
    let url = p.line_after("Savanna Pulse sandbox on ", Duration::from_secs(20)).await;
    (p, url.trim().to_owned())
}

/// The aggregator's config: the three prober tokens by `env:` reference, SLOs every 2 s.
pub fn aggregator_config(listen: &str, tls: Option<(&Path, &Path)>) -> AggregatorConfig {
    let mut c = AggregatorConfig::new(listen).shutdown_grace(ms(2_000)).evaluation_interval(ms(2_000));
    for e in EDGES {
        c = c.prober(e.id, e.region, &format!("env:{}", e.token_env));
    }
    if let Some((cert, key)) = tls {
        c = c.tls(cert, key);
    }
    c
}

/// Writes [`aggregator_config`] into `dir/aggregator.yaml`.
pub fn write_aggregator_config(dir: &Path, listen: &str, tls: Option<(&Path, &Path)>) -> PathBuf {
    aggregator_config(listen, tls).write(&dir.join("aggregator.yaml"))
}

/// The aggregator's environment: the three tokens.
pub fn aggregator_env() -> Vec<(&'static str, &'static str)> {
    EDGES.iter().map(|e| (e.token_env, e.token)).collect()
}

/// Starts the aggregator; returns it and its base URL (from its first stdout line).
pub async fn start_aggregator(prefix: &[&str], config: &Path) -> (Proc, String) {
    let p = Proc::spawn(
        "aggregator",
        prefix,
        &bins().aggregator,
        &["serve", "--config", config.to_str().unwrap()],
        &aggregator_env(),
    );
    let url = p.line_after("aggregator listening on ", Duration::from_secs(30)).await;
    (p, url.trim().to_owned())
}

/// One edge's config (outbox `outbox/`, acknowledged reports archived): the four bundled
/// journeys against `sandbox`, reporting every 2 s to `aggregator`.
pub fn prober_config(edge: &Edge, sandbox: &str, aggregator: &str, ca: Option<&Path>) -> EdgeConfig {
    let s = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let ussd = |j: EdgeJourney| {
        j.var("ussd_url", format!("{sandbox}/ussd/at")).var("events_url", format!("{sandbox}/ussd/at/events"))
    };
    let mut c = EdgeConfig::new(edge.id, edge.region, aggregator, "env:PROBER_TOKEN")
        .reporting_interval(ms(REPORTING_INTERVAL_MS))
        .concurrency(4)
        .profile(edge.profile)
        .listen("127.0.0.1:0")
        .journey(ussd(EdgeJourney::new(s.join("ussd-balance.yaml"), ms(3_000)).timeout(ms(2_500))))
        .journey(ussd(EdgeJourney::new(s.join("ussd-send-money.yaml"), ms(4_000)).timeout(ms(3_500))))
        .journey(EdgeJourney::new(s.join("mpesa-stk-push.yaml"), ms(3_000)).timeout(ms(2_500)).var("daraja", sandbox))
        .journey(
            EdgeJourney::new(s.join("checkout-mpesa.yaml"), ms(4_000))
                .timeout(ms(3_500))
                .var("shop", format!("{sandbox}/shop/api")),
        )
        .keep_acked();
    if let Some(ca) = ca {
        c = c.ca_file(ca);
    }
    c
}

/// Writes [`prober_config`] into `dir/edge.yaml` (creating `dir`).
pub fn write_prober_config(dir: &Path, edge: &Edge, sandbox: &str, aggregator: &str, ca: Option<&Path>) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    prober_config(edge, sandbox, aggregator, ca).write(&dir.join("edge.yaml"))
}

pub fn start_prober(prefix: &[&str], edge: &Edge, config: &Path) -> Proc {
    Proc::spawn(
        edge.id,
        prefix,
        &bins().prober,
        &["run", "--config", config.to_str().unwrap()],
        &[("PROBER_TOKEN", edge.token)],
    )
}

/// (journey, outcome) → journey-level runs.
pub type Runs = BTreeMap<(String, String), u64>;

/// Report files (`*.report`) directly in `dir`, by seq.
pub fn report_files(dir: &Path) -> BTreeMap<u64, PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| {
                let p = e.ok()?.path();
                let seq = p.file_name()?.to_str()?.strip_suffix(".report")?.parse().ok()?;
                Some((seq, p))
            })
            .collect()
        })
        .unwrap_or_default()
}

/// The prober's durable record: every report it ever wrote, from its outbox (waiting,
/// `acked/`, `rejected/`), each seq once. Returns the journey-level runs and the seqs.
pub fn written_runs(outbox: &Path) -> (Runs, Vec<u64>) {
    let mut runs = Runs::new();
    let mut seqs = Vec::new();
    for d in [outbox.to_path_buf(), outbox.join("acked"), outbox.join("rejected")] {
        for (seq, p) in report_files(&d) {
            assert!(!seqs.contains(&seq), "seq {seq} is in the outbox twice");
            seqs.push(seq);
            let r = report::decode(&std::fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_eq!(r.seq, seq, "{}", p.display());
            for s in r.series.iter().filter(|s| s.key.step.is_empty()) {
                *runs.entry((s.key.journey.clone(), s.key.outcome.clone())).or_default() += s.count;
            }
        }
    }
    seqs.sort_unstable();
    (runs, seqs)
}

/// Runs per journey in journal `seq` (the durable records of an open interval).
pub fn journal_runs(outbox: &Path, seq: u64) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for r in prober::agent::journal::read(outbox, seq).map(|c| c.runs).unwrap_or_default() {
        *m.entry(r.journey).or_insert(0) += 1;
    }
    m
}

/// Journal seqs with at least one run, and their runs per journey.
pub fn open_journals(outbox: &Path) -> BTreeMap<u64, BTreeMap<String, u64>> {
    prober::agent::journal::list(outbox)
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s, journal_runs(outbox, s)))
        .filter(|(_, m)| !m.is_empty())
        .collect()
}

/// Journey-level runs in one report of the archive, per journey.
pub fn report_runs_by_journey(outbox: &Path, seq: u64) -> Option<BTreeMap<String, u64>> {
    let name = format!("{seq:020}.report");
    let p = [outbox.to_path_buf(), outbox.join("acked")].into_iter().map(|d| d.join(&name)).find(|p| p.exists())?;
    let r = report::decode(&std::fs::read(p).ok()?).ok()?;
    let mut m = BTreeMap::new();
    for s in r.series.iter().filter(|s| s.key.step.is_empty()) {
        *m.entry(s.key.journey.clone()).or_insert(0) += s.count;
    }
    Some(m)
}

/// region → (journey, outcome) → count, from a `GET /api/v1/query?group_by=journey,outcome,region` reply.
pub fn query_runs(reply: &serde_json::Value) -> BTreeMap<String, Runs> {
    let mut out: BTreeMap<String, Runs> = BTreeMap::new();
    for g in reply["groups"].as_array().expect("groups") {
        let l = &g["labels"];
        let s = |k: &str| l[k].as_str().unwrap_or_else(|| panic!("label {k} in {g}")).to_owned();
        *out.entry(s("region")).or_default().entry((s("journey"), s("outcome"))).or_default() +=
            g["count"].as_u64().expect("count");
    }
    out
}

/// The query path for journey-level counts over `[from_ms, to_ms)`.
pub fn query_path(from_ms: i64, to_ms: i64) -> String {
    format!("/api/v1/query?from={from_ms}&to={to_ms}&group_by=journey,outcome,region")
}

/// prober id → state, from `GET /api/v1/probers`.
pub fn states(reply: &serde_json::Value) -> BTreeMap<String, String> {
    let list = reply.as_array().or_else(|| reply["probers"].as_array()).expect("a list of probers");
    list.iter().map(|p| (p["id"].as_str().unwrap().to_owned(), p["state"].as_str().unwrap().to_owned())).collect()
}

/// GET on loopback: (status, JSON body). `None` when the server is not answering.
pub async fn http_get(base: &str, path: &str) -> Option<(u16, serde_json::Value)> {
    let reply = aggregator::client::HttpClient::default().get(&format!("{base}{path}")).await.ok()?;
    Some((reply.status.as_u16(), reply.json().ok()?))
}
