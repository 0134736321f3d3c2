//! `prober load --report-to` against a real aggregator (the library's `Server`, over TLS with a
//! test CA the prober trusts through `--ca-file`): two shards of one distributed run report
//! under one run id; the aggregator's run API merges them into exactly the sum of both shards'
//! counts, and none of it reaches SLO data (the SLO windows, the query API, the journey metrics),
//! while an edge prober's report of the same journey does.
//!
//! The prober binary is built first (`cargo build -p prober --bin prober`, a no-op when it is up
//! to date) with this test's profile and target directory.

use std::{
    convert::Infallible,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Output,
    sync::{Arc, OnceLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aggregator::{Server, clock::SystemClock};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::{
    net::{TcpListener, TcpStream},
    time::{Instant, sleep_until},
};

const EDGE_TOKEN: &str = "nbo-token-0123456789abcdef";
const LOAD_TOKEN: &str = "load-token-0123456789abcdef";
const RUN_ID: &str = "presale-2026-11-22";

/// `target/<profile>/prober`, built by cargo for this test's profile and target directory.
fn prober_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").to_path_buf();
        let target_dir = profile_dir.parent().expect("target/<profile>").to_path_buf();
        let mut cmd = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "--quiet", "-p", "prober", "--bin", "prober"])
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build -p prober");
        assert!(status.success(), "cargo build -p prober --bin prober failed: {status}");
        let bin = profile_dir.join("prober");
        assert!(bin.exists(), "{} was not built", bin.display());
        bin
    })
}

fn tmpdir(name: &str) -> testkit::TempDir {
    testkit::temp_dir(&format!("load-report-to-{name}"))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The load target: answers 200 to everything, over plain HTTP/1.1.
async fn target() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let svc = service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}"))))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
            });
        }
    });
    addr
}

/// An HTTPS/1.1 client for the aggregator's API that trusts only the test CA.
struct Api {
    addr: SocketAddr,
    tls: tokio_rustls::TlsConnector,
}

impl Api {
    async fn request(&self, method: &str, path: &str, token: Option<&str>, body: Vec<u8>) -> (u16, String) {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let tls = self.tls.connect(ServerName::try_from("127.0.0.1").unwrap(), tcp).await.unwrap();
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
        tokio::spawn(conn);
        let mut req = Request::builder().method(method).uri(path).header("host", self.addr.to_string());
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = tx.send_request(req.body(Full::new(Bytes::from(body))).unwrap()).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.request("GET", path, None, Vec::new()).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

async fn load_shard(shard: &str, base: &str, journey: &Path, ca: &Path, json: &Path) -> Output {
    let args: Vec<String> = [
        journey.to_str().unwrap(),
        "--rate",
        "40",
        "--duration",
        "2s",
        "--shard",
        shard,
        "--report-to",
        base,
        "--token",
        "env:LOAD_TOKEN",
        "--prober-id",
        "load-1",
        "--region",
        "load",
        "--run-id",
        RUN_ID,
        "--report-every",
        "1s",
        "--ca-file",
        ca.to_str().unwrap(),
        "-q",
        "--json",
        json.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let bin = prober_bin().to_path_buf();
    tokio::process::Command::new(bin)
        .arg("load")
        .args(&args)
        .env("LOAD_TOKEN", LOAD_TOKEN)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The count of the group whose labels match, 0 when absent.
fn group_count(groups: &serde_json::Value, step: &str) -> u64 {
    groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["labels"]["step"] == step)
        .map(|g| g["count"].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_merge_in_the_aggregator_and_stay_out_of_slo_data() {
    let bin = tokio::task::spawn_blocking(prober_bin);
    let dir = tmpdir("shards");

    // The aggregator: TLS from a test CA, one edge prober and one identity for load runs.
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(dir.join("agg.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("agg.key"), ck.signing_key.serialize_pem()).unwrap();
    let yaml = testkit::config::AggregatorConfig::new("127.0.0.1:0")
        .tls("agg.crt", "agg.key")
        .prober("nbo-1", "nairobi", "env:NBO")
        .load_prober("load-1", "load", "env:LOAD")
        .evaluation_interval(Duration::from_secs(1))
        .to_yaml();
    let env = |name: &str| match name {
        "NBO" => Some(EDGE_TOKEN.to_owned()),
        "LOAD" => Some(LOAD_TOKEN.to_owned()),
        _ => None,
    };
    let config = aggregator::config::Config::parse(&yaml, &dir.join("aggregator.yaml"), &env).unwrap();
    let server = Server::start(&config, Arc::new(SystemClock)).await.unwrap();
    let base = server.base_url();
    assert!(base.starts_with("https://"), "{base}");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ck.cert.der().to_vec())).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let api = Api { addr: server.local_addr(), tls: tokio_rustls::TlsConnector::from(Arc::new(client)) };

    // An edge prober's ordinary report of the same journey: 3 runs, all ok. This is SLO data.
    let mut h = report::SparseHistogram::new();
    for v in [400_000, 500_000, 600_000] {
        h.record_n(v, 1);
    }
    let end = now_ms();
    let edge = report::Report {
        prober: "nbo-1".into(),
        region: "nairobi".into(),
        seq: 1,
        interval_start_ms: end - 15_000,
        interval_end_ms: end,
        sent_at_ms: end,
        run: None,
        heartbeat: report::Heartbeat { version: "test".into(), ..Default::default() },
        series: vec![report::Series {
            key: report::SeriesKey {
                journey: "checkout-mpesa".into(),
                step: String::new(),
                outcome: "ok".into(),
                region: "nairobi".into(),
                profile: "loopback".into(),
                ..Default::default()
            },
            count: 3,
            histogram: h,
        }],
    };
    let (status, body) = api.request("POST", "/api/v1/reports", Some(EDGE_TOKEN), report::encode(&edge)).await;
    assert_eq!(status, 200, "{body}");
    // The load identity may not send scheduled (SLO) data.
    let as_load = report::Report { prober: "load-1".into(), region: "load".into(), series: vec![], ..edge.clone() };
    let (status, body) = api.request("POST", "/api/v1/reports", Some(LOAD_TOKEN), report::encode(&as_load)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("kind: load") && body.contains("load runs"), "{body}");

    // The load run: a journey named like the one the bundled SLOs select.
    let target = target().await;
    let journey = dir.join("checkout.yaml");
    std::fs::write(
        &journey,
        format!(
            "name: checkout-mpesa\ndescription: the checkout request alone, for a load run\nvariables:\n  \
             shop: http://{target}\nsteps:\n  - name: checkout\n    http:\n      url: \"{{{{ shop }}}}/checkout\"\n      \
             assert:\n        status: 200\n"
        ),
    )
    .unwrap();
    let ca = dir.join("agg.crt");
    bin.await.unwrap();
    let (s0, s1) = (dir.join("s0.json"), dir.join("s1.json"));
    let (o0, o1) =
        tokio::join!(load_shard("0/2", &base, &journey, &ca, &s0), load_shard("1/2", &base, &journey, &ca, &s1));
    assert_eq!(o0.status.code(), Some(0), "{}", text(&o0));
    assert_eq!(o1.status.code(), Some(0), "{}", text(&o1));
    for o in [&o0, &o1] {
        assert!(!text(o).contains("refused") && !text(o).contains("failed"), "{}", text(o));
        assert!(!text(o).contains(LOAD_TOKEN), "the token leaked: {}", text(o));
    }
    let finished_ms = now_ms();
    let summaries: Vec<serde_json::Value> =
        [&s0, &s1].iter().map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()).collect();
    // Each shard's own counts: the journey level (series 0) and the step (series 1).
    let count = |i: usize| -> u64 { summaries.iter().map(|s| s["series"][i]["count"].as_u64().unwrap()).sum() };
    let (journeys, steps) = (count(0), count(1));
    for s in &summaries {
        assert!(s["series"][0]["count"].as_u64().unwrap() > 0, "{s}");
        assert_eq!(s["series"][0]["errors"], 0, "{s}");
    }
    let scheduled: u64 = summaries.iter().map(|s| s["arrivals"]["scheduled"].as_u64().unwrap()).sum();
    assert_eq!(scheduled, 80, "40/s for 2 s, split over two shards");
    assert_eq!(journeys, 80, "every arrival ran: {summaries:?}");

    // The run, merged by the aggregator: exactly the sum of both shards.
    let run = api.json(&format!("/api/v1/runs/{RUN_ID}")).await;
    assert_eq!(group_count(&run, ""), journeys, "{run}");
    assert_eq!(group_count(&run, "checkout"), steps, "{run}");
    assert!(run["run"]["reports"].as_u64().unwrap() >= 2, "one report per shard at least: {run}");
    let outcomes: Vec<&str> =
        run["groups"].as_array().unwrap().iter().map(|g| g["labels"]["outcome"].as_str().unwrap()).collect();
    assert!(outcomes.iter().all(|o| *o == "ok"), "{run}");
    let (status, _) = api.request("GET", "/api/v1/runs/no-such-run", None, Vec::new()).await;
    assert_eq!(status, 404);

    // Kept apart from SLO data: the query API sees only the edge prober's 3 runs.
    let q = api.json(&format!("/api/v1/query?journey=checkout-mpesa&step=*&from={}", end - 3_600_000)).await;
    let total: u64 = q["groups"].as_array().unwrap().iter().map(|g| g["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 3, "{q}");

    // The SLO windows, once evaluated after the load run: 3 events (the edge's), not 3 + the run's.
    let deadline = Instant::now() + Duration::from_secs(30);
    let slos = loop {
        let s = api.json("/api/v1/slos?slo=checkout-availability&region=all").await;
        if s["evaluated_at_ms"].as_i64().is_some_and(|t| t > finished_ms) {
            break s;
        }
        assert!(Instant::now() < deadline, "the SLO engine did not evaluate within 30 s: {s}");
        sleep_until(Instant::now() + Duration::from_millis(200)).await;
    };
    let scope = &slos["slos"][0]["scopes"][0];
    let w5m = scope["windows"].as_array().unwrap().iter().find(|w| w["window"] == "5m").unwrap();
    assert_eq!(w5m["events"], 3, "{scope}");

    // The journey metrics: the edge's counter, and nothing labelled with the load region.
    let (status, metrics) = api.request("GET", "/metrics", None, Vec::new()).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            "synthetic_journey_runs_total{journey=\"checkout-mpesa\",step=\"\",region=\"nairobi\",outcome=\"ok\"} 3"
        ),
        "{metrics}"
    );
    let leaked: Vec<&str> =
        metrics.lines().filter(|l| l.starts_with("synthetic_journey") && l.contains("region=\"load\"")).collect();
    assert!(leaked.is_empty(), "load-run data in the journey metrics: {leaked:?}");

    // The status lists the load identity as such: not a site, so never late or down.
    let probers = api.json("/api/v1/probers").await;
    let load = probers["probers"].as_array().unwrap().iter().find(|p| p["id"] == "load-1").unwrap();
    assert_eq!(load["kind"], "load", "{probers}");
    assert!(load["state"] == "up" || load["state"] == "idle", "{probers}");
    assert!(!metrics.contains("prober=\"load-1\""), "a load identity has no per-site gauges");

    server.shutdown().await.unwrap();
}
