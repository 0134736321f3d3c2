//! The whole pipeline with real processes: the sandbox, one aggregator and three probers
//! (Nairobi, Kampala, Dar). Whatever happens mid-run — the aggregator killed with -9 and
//! restarted, a prober killed with -9 and restarted, an edge's link cut for several reporting
//! intervals — the aggregator's journey-level counts equal the runs the probers reported: every
//! report each prober ever wrote (its outbox's `acked/` archive, `outbox.keep_acked: true`),
//! nothing lost, nothing counted twice; and every SLO's events, bad events and burn rates equal a
//! recomputation from those same records ([`fleet::slo`]).
//!
//! The network variant is the fleet across hosts: network namespaces for three edges and one
//! central host, each report link shaped to its edge's rates with the kernel's `tbf`; Kampala's
//! link is cut for several intervals (Kampala shows as late or down, its SLOs gain no invented
//! failures and no alert starts for it), then the aggregator is killed with -9 and restarted.
//!
//! The HA variant (issue 16) is two aggregators, an HA pair (`replica: agg-a` and `agg-b`, each
//! its own store), fed by the same three probers (each reports to both) and posting to a real
//! Alertmanager cluster of three on loopback, which notifies a webhook: during a 100 % STK
//! failure, replica a is killed with -9 and kept down for a dozen reporting intervals, then
//! restarted. The M-Pesa page reaches the receiver once per alert from the whole cluster (the two
//! replicas post identical label sets), never resolves while the failure lasts, and once a has
//! caught up from the probers' outboxes both replicas fire the same alerts, count every run the
//! probers wrote exactly once, and hold burn rates equal to the recomputation from the probers'
//! records (so equal to each other).
//!
//! The binaries of the other crates are built first (`cargo build -p sandbox -p aggregator -p
//! prober --bins`, same profile and target dir: a no-op when they are up to date). The network
//! variant needs root and iproute2; without them it says why and passes, except under `CI=true`
//! where it fails.

mod fleet;

use std::{collections::BTreeMap, path::Path, time::Duration};

use fleet::{netns::Fleet, *};
use testkit::alertmanager::{Alertmanager, Webhook};

/// The two tests start many processes on a 2-core machine: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const INTERVAL: Duration = Duration::from_millis(REPORTING_INTERVAL_MS);

/// Logs how far the test is (run with --nocapture to see where the time goes).
fn phase(what: &str) {
    static START: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    let t0 = *START.get_or_init(tokio::time::Instant::now);
    eprintln!("fleet: {:>6.1}s {what}", t0.elapsed().as_secs_f64());
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn build() {
    tokio::task::spawn_blocking(|| {
        bins();
    })
    .await
    .unwrap();
}

/// How the test reaches the aggregator's API (plain on loopback, or HTTPS from inside the
/// central namespace).
enum Api {
    Loopback(String),
    Netns { ns: String, base: String, ca: std::path::PathBuf },
}

impl Api {
    async fn get(&self, path: &str) -> Option<(u16, serde_json::Value)> {
        match self {
            Api::Loopback(base) => http_get(base, path).await,
            Api::Netns { ns, base, ca } => https_get_in(ns, &format!("{base}{path}"), ca).await,
        }
    }

    async fn get_ok(&self, path: &str) -> serde_json::Value {
        match self.get(path).await {
            Some((200, v)) => v,
            other => panic!("GET {path}: {other:?}"),
        }
    }

    /// prober id → state; empty while the aggregator does not answer.
    async fn states(&self) -> BTreeMap<String, String> {
        match self.get("/api/v1/probers").await {
            Some((200, v)) => states(&v),
            _ => BTreeMap::new(),
        }
    }

    /// Whether every prober has at least `n` reports stored.
    async fn stored_at_least(&self, n: u64) -> bool {
        let Some((200, v)) = self.get("/api/v1/probers").await else { return false };
        let list = v.as_array().or_else(|| v["probers"].as_array()).cloned().unwrap_or_default();
        list.len() == EDGES.len() && list.iter().all(|p| p["reports"]["stored_total"].as_u64().unwrap_or(0) >= n)
    }
}

/// (events, bad) per SLO scope of `region`, over the period.
async fn region_slo_counts(api: &Api, region: &str) -> BTreeMap<(String, String), (u64, u64)> {
    let v = api.get_ok(&format!("/api/v1/slos?region={region}")).await;
    let mut out = BTreeMap::new();
    for slo in v["slos"].as_array().unwrap() {
        for st in slo["scopes"].as_array().cloned().unwrap_or_default() {
            let key =
                (st["scope"]["slo"].as_str().unwrap().to_owned(), st["scope"]["journey"].as_str().unwrap().to_owned());
            out.insert(key, (st["period"]["events"].as_u64().unwrap(), st["period"]["bad"].as_u64().unwrap()));
        }
    }
    out
}

/// Alerts firing for `region`: (alertname, journey).
async fn region_alerts(api: &Api, region: &str) -> std::collections::BTreeSet<(String, String)> {
    let v = api.get_ok("/api/v1/alerts").await;
    let list = v.as_array().or_else(|| v["firing"].as_array()).cloned().unwrap_or_default();
    list.iter()
        .filter(|a| a["region"] == region)
        .map(|a| {
            (
                a["alertname"].as_str().unwrap_or_default().to_owned(),
                a["journey"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// After the probers stopped: once the aggregator has evaluated again, every SLO scope's events,
/// bad events and burn rates equal a recomputation from the probers' own records.
async fn check_burn_rates(api: &Api, outboxes: &[std::path::PathBuf]) {
    let stopped = now_ms();
    let mut slos = serde_json::Value::Null;
    wait_until("an SLO evaluation after the last report", Duration::from_secs(30), async || {
        slos = api.get_ok("/api/v1/slos").await;
        slos["evaluated_at_ms"].as_i64().unwrap_or(0) > stopped
    })
    .await;
    let series: Vec<report::Series> = outboxes.iter().flat_map(|o| fleet::slo::recorded_series(o)).collect();
    let expected = fleet::slo::recompute(&slos, &series);
    let (diffs, compared) = fleet::slo::compare(&slos, &expected);
    assert!(diffs.is_empty(), "burn rates vs the probers' records:\n{}", diffs.join("\n"));
    let bad: u64 = expected.iter().filter(|(k, _)| k.2 == "all").map(|(_, v)| v.1).sum();
    assert!(expected.len() >= 4 * EDGES.len(), "SLO scopes recomputed: {}", expected.len());
    eprintln!("fleet: {compared} SLO windows equal the recomputation ({} scopes, {bad} bad events)", expected.len());
}

fn all_up(s: &BTreeMap<String, String>) -> bool {
    EDGES.iter().all(|e| s.get(e.id).map(String::as_str) == Some("up"))
}

/// Stops every prober with SIGTERM (they flush), then checks their outboxes are empty and the
/// aggregator's counts per region, journey and outcome equal what each prober wrote.
async fn stop_and_check(api: &Api, probers: &mut [Proc], outboxes: &[std::path::PathBuf], from_ms: i64) {
    stop_probers(probers, outboxes).await;
    check_counts(api, outboxes, from_ms).await;
}

/// Stops every prober with SIGTERM and checks each flushed everything: an empty outbox, nothing
/// rejected or dropped, no journal left behind.
async fn stop_probers(probers: &mut [Proc], outboxes: &[std::path::PathBuf]) {
    phase("stopping the probers");
    for p in probers.iter_mut() {
        let code = p.term(Duration::from_secs(45)).await;
        assert_eq!(code, 0, "{} exit code:\n{}", p.name, p.log());
        assert!(p.log().contains("stopped: every report delivered"), "{} did not flush:\n{}", p.name, p.log());
    }
    wait_until("every outbox empty", Duration::from_secs(10), async || {
        outboxes.iter().all(|o| report_files(o).is_empty())
    })
    .await;
    for (o, p) in outboxes.iter().zip(probers.iter()) {
        assert!(report_files(&o.join("rejected")).is_empty(), "{}: the aggregator rejected reports", p.name);
        let dropped = std::fs::read_to_string(o.join("dropped")).unwrap_or_default();
        assert!(matches!(dropped.trim(), "" | "0"), "{}: the outbox dropped {dropped} report(s)", p.name);
        assert!(prober::agent::journal::list(o).unwrap().is_empty(), "{}: a journal was left behind", p.name);
    }
    phase("stopped");
}

/// The aggregator's counts per region, journey and outcome equal what each prober wrote.
async fn check_counts(api: &Api, outboxes: &[std::path::PathBuf], from_ms: i64) {
    let reply = api.get_ok(&query_path(from_ms, now_ms() + 3_600_000)).await;
    let counted = query_runs(&reply);
    let mut total = 0;
    for (e, o) in EDGES.iter().zip(outboxes) {
        let (written, seqs) = written_runs(o);
        let runs: u64 = written.values().sum();
        total += runs;
        assert!(runs > 0 && seqs.len() >= 5, "{}: {runs} runs in {} reports", e.id, seqs.len());
        let journeys: Vec<&str> = written.keys().map(|(j, _)| j.as_str()).collect();
        for j in ["ussd-balance", "ussd-send-money", "mpesa-stk-push", "checkout-mpesa"] {
            assert!(journeys.contains(&j), "{}: no run of {j}: {written:?}", e.id);
        }
        let got = counted.get(e.region).cloned().unwrap_or_default();
        assert_eq!(got, written, "{} ({}): aggregator counts (left) vs the prober's reports (right)", e.region, e.id);
    }
    assert_eq!(counted.len(), EDGES.len(), "regions in the aggregator: {:?}", counted.keys());
    eprintln!("fleet: {total} runs, counted exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_is_counted_once_through_aggregator_and_prober_kill_9() {
    let _serial = SERIAL.lock().await;
    build().await;
    phase("built");
    let from_ms = now_ms() - 120_000;
    let dir = tmpdir("loopback");

    let (_sandbox, sb) = start_sandbox("sandbox", &[]).await;
    let (mut agg, url) = start_aggregator(&[], &write_aggregator_config(&dir, "127.0.0.1:0", None)).await;
    // The restart uses the same data dir and port.
    let agg_config = write_aggregator_config(&dir, url.strip_prefix("http://").unwrap(), None);
    let api = Api::Loopback(url.clone());
    let outboxes: Vec<_> = EDGES.iter().map(|e| dir.join(e.id).join("outbox")).collect();
    let configs: Vec<_> = EDGES.iter().map(|e| write_prober_config(&dir.join(e.id), e, &sb, &url, None)).collect();
    let mut probers: Vec<Proc> = EDGES.iter().zip(&configs).map(|(e, c)| start_prober(&[], e, c)).collect();

    wait_until("two reports stored per prober", Duration::from_secs(40), async || api.stored_at_least(2).await).await;
    phase("warmed up");

    // The aggregator dies mid-run; the probers keep measuring into their outboxes.
    agg.kill9().await;
    run_for(2 * INTERVAL).await;
    let (agg2, url2) = start_aggregator(&[], &agg_config).await;
    assert_eq!(url2, url, "restarted on the same port");
    let _agg = agg2;

    // Kampala dies with runs journaled in its open interval.
    let kla = dir.join("kla-1").join("outbox");
    wait_until("a journaled run in Kampala's open interval", Duration::from_secs(20), async || {
        !open_journals(&kla).is_empty()
    })
    .await;
    probers[1].kill9().await;
    // Intervals whose runs only a journal holds (usually the open one; none if a boundary won).
    let orphans: BTreeMap<u64, _> =
        open_journals(&kla).into_iter().filter(|(seq, _)| report_runs_by_journey(&kla, *seq).is_none()).collect();
    probers[1] = start_prober(&[], &EDGES[1], &configs[1]);
    phase("aggregator and Kampala restarted");

    wait_until("all three probers up again", Duration::from_secs(60), async || all_up(&api.states().await)).await;

    stop_and_check(&api, &mut probers, &outboxes, from_ms).await;
    check_burn_rates(&api, &outboxes).await;
    for (seq, journaled) in orphans {
        assert_eq!(
            report_runs_by_journey(&kla, seq),
            Some(journaled),
            "kla-1: report {seq} rebuilt from the journal holds exactly its runs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_is_counted_once_across_an_edge_link_cut() {
    if let Some(why) = netns::unavailable() {
        return testkit::skip(format!("the network test cannot run: {why}"));
    }
    let _serial = SERIAL.lock().await;
    build().await;
    phase("built");
    let from_ms = now_ms() - 120_000;
    let dir = tmpdir("netns");
    // Dropped last: processes (killed on drop) go before their namespaces.
    let net = Fleet::create(EDGES.len());

    // TLS off loopback: a certificate for the central host's addresses, trusted by the probers.
    let mut names = vec!["127.0.0.1".to_owned()];
    names.extend((0..EDGES.len()).map(|i| net.central_addr(i)));
    let ck = rcgen::generate_simple_self_signed(names).unwrap();
    let (crt, key) = (dir.join("aggregator.crt"), dir.join("aggregator.key"));
    std::fs::write(&crt, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();

    // Central: the aggregator. Edges: a sandbox each on the edge's own loopback (the journeys'
    // targets and STK callbacks stay on the edge), and a prober. Only reports cross the links.
    let agg_config = write_aggregator_config(&dir, "0.0.0.0:7800", Some((&crt, &key)));
    let (mut agg, _) = start_aggregator(&Fleet::exec(&net.central), &agg_config).await;
    let api = Api::Netns { ns: net.central.clone(), base: "https://127.0.0.1:7800".into(), ca: crt.clone() };
    let mut sandboxes = Vec::new();
    let mut probers = Vec::new();
    let mut outboxes = Vec::new();
    for (i, e) in EDGES.iter().enumerate() {
        let ns = &net.edges[i];
        let (sandbox, sb) = start_sandbox(&format!("sandbox-{}", e.id), &Fleet::exec(ns)).await;
        sandboxes.push(sandbox);
        let url = format!("https://{}:7800", net.central_addr(i));
        let config = write_prober_config(&dir.join(e.id), e, &sb, &url, Some(&crt));
        probers.push(start_prober(&Fleet::exec(ns), e, &config));
        outboxes.push(dir.join(e.id).join("outbox"));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while !api.stored_at_least(2).await {
        if tokio::time::Instant::now() > deadline {
            let logs: Vec<String> =
                probers.iter().chain([&agg]).map(|p| format!("== {}\n{}", p.name, p.log())).collect();
            panic!("no reports after 40 s: {:?}\n{}", api.get("/api/v1/probers").await, logs.join("\n"));
        }
        run_for(Duration::from_millis(300)).await;
    }
    phase("warmed up");
    // The report links get the edges' real rates (kernel tbf), uplink and downlink.
    for (i, e) in EDGES.iter().enumerate() {
        let p = netem::profile::bundled(e.profile).unwrap();
        let kbit = |r: netem::profile::Rate| r.bits_per_sec().map_or(100_000, |b| (b / 1000.0) as u64);
        net.shape(i, kbit(p.up), kbit(p.down));
    }

    // Cut Kampala's link. The aggregator must see it go late (or down) while the others stay up.
    let cut = 1;
    net.set_link(cut, false);
    let cut_at = tokio::time::Instant::now();
    let mut during = BTreeMap::new();
    wait_until("Kampala late or down while the others are up", Duration::from_secs(30), async || {
        during = api.states().await;
        let kla = during.get(EDGES[cut].id).map(String::as_str);
        matches!(kla, Some("late" | "down"))
            && EDGES.iter().enumerate().all(|(i, e)| i == cut || during.get(e.id).map(String::as_str) == Some("up"))
    })
    .await;
    phase(&format!("during the cut: {during:?}"));
    // Kampala's last report before the cut is evaluated within two evaluation intervals (2 s).
    run_for(Duration::from_secs(5)).await;
    let kla_counts = region_slo_counts(&api, EDGES[cut].region).await;
    let kla_alerts = region_alerts(&api, EDGES[cut].region).await;
    // Several reporting intervals pile up at the edge.
    wait_until("four reports waiting in Kampala's outbox", Duration::from_secs(30), async || {
        report_files(&outboxes[cut]).len() >= 4
    })
    .await;
    assert!(cut_at.elapsed() >= 3 * INTERVAL, "the cut lasted several intervals");
    // The site is down, not the service: no failure is invented for Kampala's missing runs.
    assert_eq!(region_slo_counts(&api, EDGES[cut].region).await, kla_counts, "Kampala's SLO events during the cut");
    let later = region_alerts(&api, EDGES[cut].region).await;
    assert!(later.is_subset(&kla_alerts), "alerts started for cut-off Kampala: {later:?} (before: {kla_alerts:?})");
    let state = api.states().await.get(EDGES[cut].id).cloned();
    assert!(matches!(state.as_deref(), Some("late" | "down")), "Kampala's site state at the end of the cut: {state:?}");
    net.set_link(cut, true);
    phase("link restored");

    wait_until("Kampala caught up and all three up", Duration::from_secs(60), async || all_up(&api.states().await))
        .await;

    // The central host's aggregator dies and comes back; the edges keep their reports meanwhile.
    agg.kill9().await;
    run_for(2 * INTERVAL).await;
    let (agg2, _) = start_aggregator(&Fleet::exec(&net.central), &agg_config).await;
    let _agg = agg2;
    phase("aggregator restarted");
    wait_until("all three up after the restart", Duration::from_secs(60), async || all_up(&api.states().await)).await;

    stop_and_check(&api, &mut probers, &outboxes, from_ms).await;
    check_burn_rates(&api, &outboxes).await;
    drop(sandboxes);
}

/// The Alertmanager routing of the HA test: every alert its own group (`group_by: ['...']`), so
/// any second notification of a group while the failure lasts is a duplicate page or a flap.
const HA_ROUTES: &str = "route:
  receiver: hook
  group_by: ['...']
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 4h
receivers:
  - name: hook
    webhook_configs: [{url: 'HOOK/page', send_resolved: true}]
";

/// The names of the HA pair's members (`replica:`) and their edge destinations.
const REPLICAS: [&str; 2] = ["agg-a", "agg-b"];

/// Stored reports per prober (`reports.stored_total`), by prober id; empty while it does not answer.
async fn stored(api: &Api) -> BTreeMap<String, u64> {
    let Some((200, v)) = api.get("/api/v1/probers").await else { return BTreeMap::new() };
    let list = v.as_array().or_else(|| v["probers"].as_array()).cloned().unwrap_or_default();
    list.iter()
        .map(|p| (p["id"].as_str().unwrap_or_default().to_owned(), p["reports"]["stored_total"].as_u64().unwrap_or(0)))
        .collect()
}

/// Firing alerts by (alertname, region, journey), from `/api/v1/alerts`.
async fn firing(api: &Api) -> std::collections::BTreeSet<(String, String, String)> {
    let Some((200, v)) = api.get("/api/v1/alerts").await else { return Default::default() };
    let list = v.as_array().or_else(|| v["firing"].as_array()).cloned().unwrap_or_default();
    let s = |a: &serde_json::Value, k: &str| a[k].as_str().unwrap_or_default().to_owned();
    list.iter().map(|a| (s(a, "alertname"), s(a, "region"), s(a, "journey"))).collect()
}

/// Payment pages active in `am`, by `alertname/region/journey`.
async fn active_pages(am: &Alertmanager) -> std::collections::BTreeSet<String> {
    am.alerts()
        .await
        .iter()
        .filter(|a| a["status"]["state"] == "active" && a["labels"]["severity"] == "page")
        .map(|a| {
            let l = &a["labels"];
            format!(
                "{}/{}/{}",
                l["alertname"].as_str().unwrap_or("?"),
                l["region"].as_str().unwrap_or("?"),
                l["journey"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ha_pair_pages_once_through_a_replica_kill_9_and_both_count_every_run() {
    let _serial = SERIAL.lock().await;
    let dir = tmpdir("ha");
    let hook = Webhook::start().await;
    let routes = dir.join("alertmanager.yml");
    std::fs::write(&routes, HA_ROUTES.replace("HOOK", &hook.url)).unwrap();
    let Some(cluster) = Alertmanager::start_cluster(&routes, 3, Duration::from_secs(2)).await else { return };
    build().await;
    phase("built; Alertmanager cluster of 3 up");
    let from_ms = now_ms() - 120_000;
    let (_sandbox, sb) = start_sandbox("sandbox", &[]).await;

    // The pair: the same probers and SLOs, its own store, a replica name, every Alertmanager.
    let am_urls: Vec<String> = cluster.iter().map(|a| a.url.clone()).collect();
    let pair_config = |replica: &str, listen: &str| {
        let d = dir.join(replica);
        std::fs::create_dir_all(&d).unwrap();
        aggregator_config(listen, None)
            .merge_yaml(&format!(
                "replica: {replica}\nalertmanager:\n  urls: [{}]\n  resend_interval: 2s\n",
                am_urls.join(", ")
            ))
            .write(&d.join("aggregator.yaml"))
    };
    let mut aggs = Vec::new();
    let mut apis = Vec::new();
    let mut restart_configs = Vec::new();
    for r in REPLICAS {
        let (p, url) = start_aggregator(&[], &pair_config(r, "127.0.0.1:0")).await;
        restart_configs.push(pair_config(r, url.strip_prefix("http://").unwrap()));
        aggs.push(p);
        apis.push(Api::Loopback(url));
    }
    let urls: Vec<String> = apis
        .iter()
        .map(|a| match a {
            Api::Loopback(u) => u.clone(),
            Api::Netns { .. } => unreachable!(),
        })
        .collect();
    let outboxes: Vec<_> = EDGES.iter().map(|e| dir.join(e.id).join("outbox")).collect();
    let mut probers: Vec<Proc> = EDGES
        .iter()
        .map(|e| {
            let d = dir.join(e.id);
            std::fs::create_dir_all(&d).unwrap();
            let c = prober_config(e, &sb, &urls[0], None)
                .aggregators(&[(REPLICAS[0], urls[0].as_str()), (REPLICAS[1], urls[1].as_str())], "env:PROBER_TOKEN");
            start_prober(&[], e, &c.write(&d.join("edge.yaml")))
        })
        .collect();
    for api in &apis {
        wait_until("two reports stored per prober in each replica", Duration::from_secs(40), async || {
            api.stored_at_least(2).await
        })
        .await;
    }
    phase("warmed up");

    // Every region's Daraja fails every STK push until the end of the test.
    let fault = aggregator::client::HttpClient::default()
        .request(
            http::Method::PUT,
            &format!("{sb}/admin/faults/daraja"),
            Some("application/json"),
            r#"{"error_rate": 1.0}"#.into(),
        )
        .await
        .expect("the sandbox's fault API");
    assert!(fault.status.is_success(), "PUT /admin/faults/daraja: {}", fault.status);
    let injected = tokio::time::Instant::now();
    let mut pages = Default::default();
    wait_until("the M-Pesa page active in Alertmanager for every region", Duration::from_secs(240), async || {
        pages = active_pages(&cluster[0]).await;
        EDGES.iter().all(|e| pages.iter().any(|p| p.starts_with(&format!("SLOMpesaPaymentSuccessPage/{}/", e.region))))
    })
    .await;
    phase(&format!("paging {:.0} s after the injection: {pages:?}", injected.elapsed().as_secs_f64()));
    wait_until("both replicas firing the same alerts", Duration::from_secs(30), async || {
        let a = firing(&apis[0]).await;
        !a.is_empty() && a == firing(&apis[1]).await
    })
    .await;

    // Replica a dies for a dozen reporting intervals; b alone keeps the pages up.
    aggs[0].kill9().await;
    let killed = tokio::time::Instant::now();
    while killed.elapsed() < 12 * INTERVAL {
        let now = active_pages(&cluster[0]).await;
        assert!(pages.is_subset(&now), "a page stopped while replica a was down: {pages:?} → {now:?}");
        run_for(INTERVAL).await;
    }
    let (a2, url2) = start_aggregator(&[], &restart_configs[0]).await;
    assert_eq!(url2, urls[0], "restarted on the same port");
    aggs[0] = a2;
    phase("replica a restarted after 12 intervals down");

    // It catches up from the probers' outboxes by itself, to the report.
    wait_until("replica a caught up with b", Duration::from_secs(90), async || {
        let a = stored(&apis[0]).await;
        a.len() == EDGES.len() && a == stored(&apis[1]).await
    })
    .await;
    phase("replica a caught up");
    wait_until("both replicas firing the same alerts again", Duration::from_secs(30), async || {
        let a = firing(&apis[0]).await;
        !a.is_empty() && a == firing(&apis[1]).await
    })
    .await;
    let now = active_pages(&cluster[0]).await;
    assert!(pages.is_subset(&now), "a page stopped after replica a came back: {pages:?} → {now:?}");

    // One page per alert from the whole cluster, never resolved while the failure lasts.
    let notes = hook.notifications();
    let mut per_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in &notes {
        for a in n["alerts"].as_array().cloned().unwrap_or_default() {
            assert!(a["labels"].get("replica").is_none(), "an alert carries the replica as a label: {a}");
        }
        per_group
            .entry(n["groupKey"].as_str().unwrap_or("?").to_owned())
            .or_default()
            .push(n["status"].as_str().unwrap_or("?").to_owned());
    }
    let page_groups: Vec<_> = per_group.iter().filter(|(k, _)| k.contains("severity=\"page\"")).collect();
    assert!(!page_groups.is_empty(), "no page notification reached the receiver: {notes:?}");
    for (group, statuses) in &page_groups {
        assert_eq!(statuses.as_slice(), ["firing"], "notifications of {group}: {statuses:?}");
    }
    phase(&format!("{} pages, each notified once", page_groups.len()));

    // Both replicas post to every member of the cluster (a, since its restart).
    for (r, url) in REPLICAS.iter().zip(&urls) {
        let text = aggregator::client::HttpClient::default().get_text(&format!("{url}/metrics")).await.unwrap();
        let posts =
            aggregator::client::metric_sums(&text, "aggregator_alertmanager_posts_total", "alertmanager").unwrap();
        assert!(
            posts.len() == cluster.len() && posts.values().all(|n| *n > 0.0),
            "{r}: posts per Alertmanager: {posts:?}"
        );
    }

    // Both replicas hold every run exactly once, and the same burn rates, to the event.
    stop_probers(&mut probers, &outboxes).await;
    for api in &apis {
        check_counts(api, &outboxes, from_ms).await;
        check_burn_rates(api, &outboxes).await;
    }
}

/// `ip netns exec <ns> <this test binary> --exact fleet_https_get_helper`: an HTTPS GET from
/// inside a namespace, trusting `ca`.
async fn https_get_in(ns: &str, url: &str, ca: &Path) -> Option<(u16, serde_json::Value)> {
    let exe = std::env::current_exe().unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(exe)
            .args(["--exact", "fleet_https_get_helper", "--ignored", "--nocapture", "--test-threads=1"])
            .env("FLEET_GET_URL", url)
            .env("FLEET_GET_CA", ca)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The harness prints `test … ... ` first, on the same line.
    let line = stdout.lines().find_map(|l| l.split_once("FLEET-HTTP ").map(|(_, r)| r))?;
    let (status, body) = line.split_once(' ')?;
    Some((status.parse().ok()?, serde_json::from_str(body).ok()?))
}

#[tokio::test]
#[ignore = "helper of the network test: run by it inside the central namespace"]
async fn fleet_https_get_helper() {
    use aggregator::client::{ClientOptions, HttpClient};
    use rustls::pki_types::{CertificateDer, pem::PemObject};

    let url = std::env::var("FLEET_GET_URL").expect("FLEET_GET_URL");
    let ca = std::env::var("FLEET_GET_CA").expect("FLEET_GET_CA");
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let client = HttpClient::new(ClientOptions { roots: Some(roots), ..ClientOptions::default() });
    let reply = client.get(&url).await.expect("an HTTP response");
    let body: serde_json::Value = reply.json().expect("a JSON body");
    println!("FLEET-HTTP {} {body}", reply.status.as_u16());
}
