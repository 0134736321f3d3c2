//! `prober run` end to end: the real binary, the real sandbox, a fake aggregator. Graceful stop
//! flushes the last interval and the counts add up; kill -9 and a restart reuse no seq and
//! deliver what the outbox kept.

mod agent_support;

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    time::Duration,
};

use agent_support::{FakeAggregator, TOKEN, tmpdir, wait_until};
use parking_lot::Mutex;
use testkit::config::{EdgeConfig, EdgeJourney, ms};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

const PROBER: &str = env!("CARGO_BIN_EXE_prober");

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

async fn sandbox() -> sandbox::SandboxHandle {
    sandbox::Sandbox::start(sandbox::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        callback_delay: Duration::from_millis(50),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// The edge config without journeys; writes the token file and the probe journey (a GET of the
/// fake aggregator's `/probe` counter, so the test knows how many runs reached a server) into `dir`.
fn base_config(dir: &Path, agg: &str) -> EdgeConfig {
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(
        dir.join("probe.yaml"),
        "name: probe\nvariables:\n  target: http://127.0.0.1:1\nsteps:\n  - name: hit\n    http:\n      url: \"{{ target }}/probe\"\n      assert: {status: 200}\n",
    )
    .unwrap();
    EdgeConfig::new("e2e-1", "nairobi", agg, "file:token")
        .reporting_interval(ms(1_000))
        .concurrency(3)
        .profile("loopback")
        .listen("127.0.0.1:0")
        .seed(11)
}

/// The probe journey, every 400 ms, with `timeout`.
fn probe(agg: &str, timeout: Duration) -> EdgeJourney {
    EdgeJourney::new("probe.yaml", ms(400)).timeout(timeout).var("target", agg)
}

/// An edge config with three journeys: USSD balance and STK push on the sandbox, and the probe.
fn edge_config(dir: &Path, sandbox: &str, agg: &str) -> EdgeConfig {
    with_sandbox_journeys(base_config(dir, agg), sandbox).journey(probe(agg, ms(300)))
}

fn with_sandbox_journeys(c: EdgeConfig, sandbox: &str) -> EdgeConfig {
    let s = scenarios_dir();
    c.journey(
        EdgeJourney::new(s.join("ussd-balance.yaml"), ms(600))
            .timeout(ms(500))
            .var("ussd_url", format!("{sandbox}/ussd/at"))
            .var("events_url", format!("{sandbox}/ussd/at/events")),
    )
    .journey(EdgeJourney::new(s.join("mpesa-stk-push.yaml"), ms(900)).timeout(ms(800)).var("daraja", sandbox))
}

/// [`edge_config`], written to `dir/edge.yaml`.
fn write_config(dir: &Path, sandbox: &str, agg: &str) -> PathBuf {
    edge_config(dir, sandbox, agg).write(&dir.join("edge.yaml"))
}

struct Prober {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Prober {
    fn start(config: &Path) -> Prober {
        let mut child = Command::new(PROBER)
            .args(["run", "--config", config.to_str().unwrap()])
            .env("PROBER_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(l)) = lines.next_line().await {
                let mut s = sink.lock();
                s.push_str(&l);
                s.push('\n');
            }
        });
        Prober { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().clone()
    }

    async fn metrics_addr(&self) -> String {
        let mut addr = None;
        wait_until("the agent to log its address", Duration::from_secs(20), || {
            addr = self
                .log()
                .split("/metrics on http://")
                .nth(1)
                .and_then(|r| r.split_whitespace().next().map(str::to_owned));
            addr.is_some()
        })
        .await;
        addr.unwrap()
    }

    async fn sigterm_and_wait(mut self) -> (i32, String) {
        let pid = self.child.id().unwrap();
        let st = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.unwrap();
        assert!(st.success());
        let status = tokio::time::timeout(Duration::from_secs(45), self.child.wait()).await.expect("exits").unwrap();
        // Let the log reader drain.
        tokio::time::sleep(Duration::from_millis(100)).await;
        (status.code().unwrap_or(-1), self.log())
    }
}

/// `GET http://{addr}{path}`: the status and the body.
async fn http_get(addr: &str, path: &str) -> (u16, String) {
    let reply = aggregator::client::HttpClient::default().get(&format!("http://{addr}{path}")).await.unwrap();
    (reply.status.as_u16(), reply.text().unwrap().to_owned())
}

fn outbox_seqs(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir.join("outbox"))
        .map(|rd| rd.filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".report")?.parse().ok()).collect())
        .unwrap_or_default();
    v.sort_unstable();
    v
}

fn journey_runs(r: &report::Report, journey: &str) -> u64 {
    r.series.iter().filter(|s| s.key.journey == journey && s.key.step.is_empty()).map(|s| s.count).sum()
}

/// Runs started (the heartbeats' count) and runs finished (journey-level counts of the config's
/// three journeys), over `reports`.
fn started_and_finished(reports: &[report::Report]) -> (u64, u64) {
    let started = reports.iter().map(|r| r.heartbeat.runs_started).sum();
    let finished = reports
        .iter()
        .map(|r| journey_runs(r, "probe") + journey_runs(r, "ussd-balance") + journey_runs(r, "mpesa-stk-push"))
        .sum();
    (started, finished)
}

fn assert_clean(log: &str) {
    for secret in [TOKEN, "254700000100", "Bearer "] {
        assert!(!log.contains(secret), "the log leaks {secret:?}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_the_last_interval_and_every_run_is_counted_once() {
    let sb = sandbox().await;
    let agg = FakeAggregator::start().await;
    let dir = tmpdir("e2e-term");
    let config = write_config(&dir, sb.base_url(), &agg.url());
    let p = Prober::start(&config);
    let addr = p.metrics_addr().await;

    wait_until("three reports", Duration::from_secs(30), || agg.stored_seqs().len() >= 3).await;
    let (code, body) = http_get(&addr, "/healthz").await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = http_get(&addr, "/readyz").await;
    assert_eq!(code, 200, "{body}");
    let (code, metrics) = http_get(&addr, "/metrics").await;
    assert_eq!(code, 200);
    for want in [r#"prober_runs_total{journey="probe",profile="loopback",outcome="ok"}"#, "prober_reports_acked_total"]
    {
        assert!(metrics.contains(want), "missing {want}:\n{metrics}");
    }

    let (code, log) = p.sigterm_and_wait().await;
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("every report delivered"), "{log}");
    assert!(outbox_seqs(&dir).is_empty(), "the final report was flushed and acknowledged");
    assert_clean(&log);

    let reports = agg.reports();
    let seqs: Vec<u64> = reports.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=reports.len() as u64).collect::<Vec<_>>(), "seqs from 1, no gaps");
    for w in reports.windows(2) {
        assert_eq!(w[0].interval_end_ms, w[1].interval_start_ms, "intervals tile time");
    }
    for r in &reports[1..reports.len() - 1] {
        assert_eq!(r.interval_end_ms % 1000, 0, "boundaries are aligned to the reporting interval");
        assert_eq!(r.interval_end_ms - r.interval_start_ms, 1000);
    }
    assert!(agg.state.conflicts.lock().is_empty());

    // Every run started was reported once: started (heartbeats) == finished (journey-level counts).
    let (started, finished) = started_and_finished(&reports);
    assert_eq!(started, finished, "runs started vs runs reported");
    assert!(finished >= 10, "a few seconds of three journeys: {finished}");
    // And the probe's own server saw as many requests as successful probe runs reported.
    let probe_ok: u64 = reports
        .iter()
        .flat_map(|r| &r.series)
        .filter(|s| s.key.journey == "probe" && s.key.step.is_empty() && s.key.outcome == "ok")
        .map(|s| s.count)
        .sum();
    let probe_all: u64 = reports.iter().map(|r| journey_runs(r, "probe")).sum();
    let hits = agg.state.probe_hits.load(std::sync::atomic::Ordering::SeqCst);
    assert!(probe_ok <= hits && hits <= probe_all, "ok {probe_ok} ≤ hits {hits} ≤ runs {probe_all}");
    // Step series mirror the journey series for one-step journeys.
    let balance_step: u64 = reports
        .iter()
        .flat_map(|r| &r.series)
        .filter(|s| s.key.journey == "ussd-balance" && s.key.step == "balance")
        .map(|s| s.count)
        .sum();
    assert_eq!(balance_step, reports.iter().map(|r| journey_runs(r, "ussd-balance")).sum::<u64>());
    let ussd_ok =
        reports.iter().flat_map(|r| &r.series).any(|s| s.key.journey == "ussd-balance" && s.key.outcome == "ok");
    assert!(ussd_ok, "the USSD journey ran green against the sandbox");
    assert!(reports.iter().all(|r| r.heartbeat.journeys == 3 && r.prober == "e2e-1"));
    // Every report announces the configured cadence, the first (partial) interval's included.
    assert!(reports.iter().all(|r| r.heartbeat.interval_ms == Some(1_000)), "{:?}", reports[0].heartbeat);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_restart_reuses_no_seq_and_delivers_the_outbox() {
    let sb = sandbox().await;
    let agg = FakeAggregator::start().await;
    agg.set_down(true);
    let dir = tmpdir("e2e-kill");
    let config = write_config(&dir, sb.base_url(), &agg.url());

    let mut first = Prober::start(&config);
    wait_until("reports piling up in the outbox", Duration::from_secs(30), || outbox_seqs(&dir).len() >= 3).await;
    first.child.start_kill().unwrap(); // SIGKILL: no flush, no goodbye
    first.child.wait().await.unwrap();
    let kept = outbox_seqs(&dir);
    assert!(agg.stored_seqs().is_empty(), "the aggregator was down");
    let restart_ms = chrono::Utc::now().timestamp_millis();

    agg.set_down(false);
    let second = Prober::start(&config);
    let last_kept = *kept.last().unwrap();
    wait_until("the kept reports and two new ones", Duration::from_secs(40), || {
        let stored = agg.stored_seqs();
        kept.iter().all(|s| stored.contains(s)) && stored.iter().filter(|s| **s > last_kept).count() >= 2
    })
    .await;
    let (code, log) = second.sigterm_and_wait().await;
    assert_eq!(code, 0, "{log}");
    assert_clean(&log);

    assert!(agg.state.conflicts.lock().is_empty(), "no seq was reused for another interval");
    let reports = agg.reports();
    for r in &reports {
        if r.interval_start_ms >= restart_ms {
            assert!(r.seq > last_kept, "seq {} from after the restart collides with the outbox's {kept:?}", r.seq);
        }
    }
    let order = agg.state.store_order.lock().clone();
    let replayed: Vec<u64> = order.iter().copied().filter(|s| kept.contains(s)).collect();
    assert_eq!(replayed, kept, "the outbox was replayed oldest first");
    assert!(outbox_seqs(&dir).is_empty(), "everything acknowledged");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_journeys_and_a_bad_reload_keeps_the_running_ones() {
    let sb = sandbox().await;
    let agg = FakeAggregator::start().await;
    let dir = tmpdir("e2e-hup");
    let config = dir.join("edge.yaml");
    let original = edge_config(&dir, sb.base_url(), &agg.url()).to_yaml();
    // Start with the probe journey only.
    base_config(&dir, &agg.url()).journey(probe(&agg.url(), ms(300))).write(&config);
    let p = Prober::start(&config);
    wait_until("a report with probe runs", Duration::from_secs(30), || {
        agg.reports().iter().any(|r| journey_runs(r, "probe") > 0)
    })
    .await;
    assert!(agg.reports().iter().all(|r| journey_runs(r, "ussd-balance") == 0));

    let hup = |pid: u32| async move {
        assert!(Command::new("kill").args(["-HUP", &pid.to_string()]).status().await.unwrap().success());
    };
    std::fs::write(&config, &original).unwrap();
    hup(p.child.id().unwrap()).await;
    wait_until("USSD runs after the reload", Duration::from_secs(30), || {
        agg.reports().iter().any(|r| journey_runs(r, "ussd-balance") > 0)
    })
    .await;

    // A broken file is refused; the running journeys go on.
    // The probe's timeout above its interval: refused.
    with_sandbox_journeys(base_config(&dir, &agg.url()), sb.base_url())
        .journey(probe(&agg.url(), Duration::from_secs(3)))
        .write(&config);
    hup(p.child.id().unwrap()).await;
    wait_until("the refusal in the log", Duration::from_secs(10), || p.log().contains("reload refused")).await;
    let seen = agg.stored_seqs().len();
    wait_until("two more reports", Duration::from_secs(30), || agg.stored_seqs().len() >= seen + 2).await;
    let last = agg.reports().pop().unwrap();
    assert_eq!(last.heartbeat.journeys, 3, "the three journeys still run");
    let (code, log) = p.sigterm_and_wait().await;
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("journeys[2].timeout"), "the refusal names the field:\n{log}");
    let reports = agg.reports();
    let (started, finished) = started_and_finished(&reports);
    assert_eq!(started, finished, "reloads lose no run");
    sb.shutdown().await;
}

/// Journey-level runs per journey in a journal's durable records.
fn journal_runs(outbox: &Path, seq: u64) -> std::collections::BTreeMap<String, u64> {
    let mut m = std::collections::BTreeMap::new();
    for r in prober::agent::journal::read(outbox, seq).unwrap().runs {
        *m.entry(r.journey).or_insert(0) += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_finished_run_the_journal_becomes_the_report() {
    let sb = sandbox().await;
    let agg = FakeAggregator::start().await;
    let dir = tmpdir("e2e-journal");
    // A long interval, so the kill lands inside one with runs in it; keep acknowledged reports.
    let config = edge_config(&dir, sb.base_url(), &agg.url())
        .reporting_interval(Duration::from_secs(30))
        .keep_acked()
        .write(&dir.join("edge.yaml"));
    let outbox = dir.join("outbox");
    let open_runs = || {
        let seqs = prober::agent::journal::list(&outbox).unwrap_or_default();
        seqs.last().map_or(0, |s| journal_runs(&outbox, *s).values().sum::<u64>())
    };

    let mut first = Prober::start(&config);
    wait_until("three journaled runs in the open interval", Duration::from_secs(30), || open_runs() >= 3).await;
    first.child.start_kill().unwrap(); // SIGKILL: the interval is 30 s long and far from closed
    first.child.wait().await.unwrap();
    let left = prober::agent::journal::list(&outbox).unwrap();
    let seq = *left.last().unwrap();
    let journaled = journal_runs(&outbox, seq);
    assert!(journaled.values().sum::<u64>() >= 3, "{journaled:?}");
    assert!(!outbox.join(format!("{seq:020}.report")).exists(), "its report was never written");

    let second = Prober::start(&config);
    wait_until("the rebuilt report", Duration::from_secs(30), || agg.stored_seqs().contains(&seq)).await;
    let (code, log) = second.sigterm_and_wait().await;
    assert_eq!(code, 0, "{log}");
    assert!(log.contains(&format!("report seq {seq}: ")) && log.contains("recovered from the journal"), "{log}");

    let reports = agg.reports();
    let rebuilt = reports.iter().find(|r| r.seq == seq).unwrap();
    let mut counted = std::collections::BTreeMap::new();
    for s in rebuilt.series.iter().filter(|s| s.key.step.is_empty()) {
        *counted.entry(s.key.journey.clone()).or_insert(0) += s.count;
    }
    assert_eq!(counted, journaled, "every journaled run is in report {seq}, once");
    assert!(agg.state.conflicts.lock().is_empty(), "no seq was reused for another interval");
    let seqs: Vec<u64> = reports.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=reports.len() as u64).collect::<Vec<_>>(), "no gap, no reuse: {seqs:?}");
    // The probe server saw every probe run; only the one in flight at the kill may be unreported.
    let probe_all: u64 = reports.iter().map(|r| journey_runs(r, "probe")).sum();
    let hits = agg.state.probe_hits.load(std::sync::atomic::Ordering::SeqCst);
    assert!(hits <= probe_all + 1, "probe hits {hits} vs reported runs {probe_all}: finished runs were lost");
    // The archive holds exactly what the aggregator acknowledged; no journal is left behind.
    let mut archived: Vec<u64> = std::fs::read_dir(outbox.join("acked"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".report")?.parse().ok())
        .collect();
    archived.sort_unstable();
    assert_eq!(archived, seqs);
    assert!(prober::agent::journal::list(&outbox).unwrap().is_empty());
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intervals_the_outbox_could_not_store_are_reported_once_it_can_again() {
    let sb = sandbox().await;
    let agg = FakeAggregator::start().await;
    let dir = tmpdir("e2e-outbox-fault");
    let config = write_config(&dir, sb.base_url(), &agg.url());
    let p = Prober::start(&config);
    let addr = p.metrics_addr().await;
    wait_until("a first report", Duration::from_secs(30), || !agg.stored_seqs().is_empty()).await;

    // The outbox's seq mark cannot be replaced while a non-empty directory sits at its path (even
    // for root), so every report write fails, as on a full or read-only disk.
    let mark = dir.join("outbox/seq");
    let before = std::fs::read_to_string(&mark).unwrap();
    std::fs::remove_file(&mark).unwrap();
    std::fs::create_dir_all(mark.join("blocked")).unwrap();
    let metric = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("prober_outbox_write_errors_total"))
            .and_then(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut failed = 0;
    for _ in 0..300 {
        failed = metric(&http_get(&addr, "/metrics").await.1);
        if failed >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(failed >= 2, "two intervals failed to store");
    let (code, _) = http_get(&addr, "/readyz").await;
    assert_eq!(code, 503, "not ready while reports cannot be stored");

    // The disk recovers: the failed intervals' journals become reports at the next boundary.
    std::fs::remove_dir_all(&mark).unwrap(); // the blocking directory, not the test's
    std::fs::write(&mark, before).unwrap();
    let (code, log) = {
        let stored_then = agg.stored_seqs().len();
        wait_until("the late reports and a new one", Duration::from_secs(30), || {
            agg.stored_seqs().len() > stored_then + failed as usize
        })
        .await;
        p.sigterm_and_wait().await
    };
    assert_eq!(code, 0, "{log}");
    let late: usize = log
        .split(" earlier report(s) that could not be stored are now in the outbox")
        .next()
        .and_then(|head| head.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no late store in the log:\n{log}"));
    assert!(late >= 2, "{log}");
    assert!(agg.state.conflicts.lock().is_empty(), "no seq reused");

    let reports = agg.reports();
    let mut seqs: Vec<u64> = reports.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=reports.len() as u64).collect::<Vec<_>>(), "every interval reported once, no gaps");
    let (started, finished) = started_and_finished(&reports);
    assert_eq!(started, finished, "runs started vs runs reported");
    assert!(outbox_seqs(&dir).is_empty(), "everything acknowledged");
    sb.shutdown().await;
}
