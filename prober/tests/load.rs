//! `prober load`, the real binary: exit codes of thresholds, coordinated omission seen by the
//! corrected percentiles (a target that stalls for a second now and then, as in wrk2's README),
//! the interval log read by a third-party HdrHistogram library (Python's `hdrhistogram`), and a
//! journey run against the sandbox with a per-step summary.

use std::{
    convert::Infallible,
    net::SocketAddr,
    path::Path,
    process::{Command, Output},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const PROBER: &str = env!("CARGO_BIN_EXE_prober");

/// A small HTTP/1.1 server: every `stall_every`-th request (if any) sleeps `stall` first; a path
/// containing `fail` answers 503. Runs until the test's runtime ends.
async fn server(stall_every: Option<u64>, stall: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let count = count.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let n = count.fetch_add(1, Relaxed) + 1;
                    async move {
                        if stall_every.is_some_and(|k| n.is_multiple_of(k)) {
                            tokio::time::sleep(stall).await;
                        }
                        let status = if req.uri().path().contains("fail") { 503 } else { 200 };
                        Ok::<_, Infallible>(
                            Response::builder().status(status).body(Full::new(Bytes::from_static(b"ok\n"))).unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
            });
        }
    });
    addr
}

fn tmp(name: &str) -> testkit::TempDir {
    testkit::temp_dir(&format!("prober-load-{name}"))
}

/// Runs the binary off the runtime's threads (the server lives on them).
async fn prober(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(PROBER).arg("load").args(&args).output().unwrap()).await.unwrap()
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn text(o: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_decide_the_exit_code() {
    let addr = server(None, Duration::ZERO).await;
    let url = format!("http://{addr}/");
    let base = ["--url", &url, "--rate", "200", "--iterations", "100", "-q"];

    let ok = prober(args(&[&base[..], &["--threshold", "p99<10s", "--threshold", "errors<1%"]].concat())).await;
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(text(&ok).contains("✓ p99<10s"), "{}", text(&ok));

    let slow = prober(args(&[&base[..], &["--threshold", "p50<1us"]].concat())).await;
    assert_eq!(slow.status.code(), Some(1), "{}", text(&slow));
    assert!(text(&slow).contains("✗ p50<1us"), "{}", text(&slow));

    // Every request fails with a 503: the error threshold fails, the class is named.
    let fail = format!("http://{addr}/fail");
    let dir = tmp("thresholds");
    let out = dir.join("s.json");
    let failing = prober(args(&[
        "--url",
        &fail,
        "--rate",
        "200",
        "--iterations",
        "50",
        "-q",
        "--threshold",
        "errors<1%",
        "--json",
        out.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(failing.status.code(), Some(1), "{}", text(&failing));
    let s = json(&out);
    assert_eq!(s["series"][0]["outcomes"]["gateway_error"], 50, "{s}");
    assert_eq!(s["thresholds"][0]["passed"], false);

    // Bad input exits 2 and says what is wrong.
    for bad in [&["--threshold", "p95<fast"][..], &["--threshold", "nosuchstep:p95<1s"], &["--rate", "-3"]] {
        let o = prober(args(&[&["--url", &url, "--iterations", "10", "-q"][..], bad].concat())).await;
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", text(&o));
    }
}

/// wrk2's demonstration: with one connection, a 1 s stall every 200 requests at 100/s delays the
/// ~100 arrivals due during the stall. Measured from the actual send (uncorrected), only the
/// stalled requests are slow (0.5 %: p99 stays small); measured from the intended start
/// (corrected), about a quarter of all requests waited, so p99 is most of a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrected_percentiles_see_a_stall_that_uncorrected_ones_hide() {
    let addr = server(Some(200), Duration::from_secs(1)).await;
    let url = format!("http://{addr}/");
    let dir = tmp("stall");
    let out = dir.join("s.json");
    let o = prober(args(&[
        "--url",
        &url,
        "--rate",
        "100",
        "--duration",
        "4s",
        "-c",
        "1",
        "-q",
        "--json",
        out.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = json(&out);
    let r = &s["series"][0];
    let corrected = r["latency_ms"]["p99"].as_f64().unwrap();
    let uncorrected = r["uncorrected_latency_ms"]["p99"].as_f64().unwrap();
    assert!(corrected > 500.0, "corrected p99 {corrected} ms should show the stall: {s}");
    assert!(uncorrected < 200.0, "uncorrected p99 {uncorrected} ms should hide it: {s}");
    assert!(corrected > 5.0 * uncorrected, "{corrected} vs {uncorrected}");
    // The stalled arrivals were late, none dropped; every arrival started.
    let a = &s["arrivals"];
    assert_eq!(a["scheduled"], 400, "{s}");
    assert_eq!(a["started"], 400, "{s}");
    assert!(a["late"].as_u64().unwrap() > 50, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_log_and_hgrm_are_readable_by_python_hdrhistogram() {
    let addr = server(None, Duration::ZERO).await;
    let url = format!("http://{addr}/");
    let dir = tmp("hdr");
    let log = dir.join("run.hlog");
    let hgrm = dir.join("run.hgrm");
    let o = prober(args(&[
        "--url",
        &url,
        "--rate",
        "300",
        "--duration",
        "2500ms",
        "-q",
        "--hdr-log",
        log.to_str().unwrap(),
        "--hgrm",
        hgrm.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let h = std::fs::read_to_string(&hgrm).unwrap();
    assert!(h.contains("Value     Percentile TotalCount 1/(1-Percentile)"), "{h}");
    assert!(h.contains("Total count    =          750]"), "{h}");
    assert!(dir.join("run.uncorrected.hgrm").exists());

    let script = r#"
import sys
try:
    from hdrh.histogram import HdrHistogram
    from hdrh.log import HistogramLogReader
except ImportError:
    print("MISSING"); sys.exit(3)
ref = HdrHistogram(1, 3600 * 1000 * 1000, 3)
reader = HistogramLogReader(sys.argv[1], ref)
total = {}
while True:
    h = reader.get_next_interval_histogram()
    if h is None:
        break
    tag = h.get_tag() or "corrected"
    total[tag] = total.get(tag, 0) + h.get_total_count()
    assert h.get_value_at_percentile(50) > 0
print(total.get("corrected", 0), total.get("uncorrected", 0))
"#;
    let py = Command::new("python3").arg("-c").arg(script).arg(&log).output();
    let py = match py {
        Ok(p) => p,
        Err(e) => return skip_or_fail(&format!("python3 not runnable: {e}")),
    };
    let stdout = String::from_utf8_lossy(&py.stdout).to_string();
    if stdout.contains("MISSING") {
        return skip_or_fail("the Python package `hdrhistogram` (import hdrh) is not installed");
    }
    assert!(py.status.success(), "python: {stdout}\n{}", String::from_utf8_lossy(&py.stderr));
    assert_eq!(stdout.trim(), "750 750", "the log should hold every request, corrected and not");
}

fn skip_or_fail(why: &str) {
    testkit::skip(format!("the Python HdrHistogram check: {why}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journey_load_run_against_the_sandbox_reports_every_step() {
    let sb = sandbox::Sandbox::start(sandbox::Config { listen: "127.0.0.1:0".parse().unwrap(), ..Default::default() })
        .await
        .unwrap();
    let dir = tmp("journey");
    let journey = dir.join("shop.yaml");
    std::fs::write(
        &journey,
        r#"name: shop-browse
description: browse the shop and create a cart
variables:
  shop: http://127.0.0.1:1/shop/api
steps:
  - name: browse
    http:
      url: "{{ shop }}/products"
      assert:
        status: 200
  - name: create-cart
    http:
      method: POST
      url: "{{ shop }}/carts"
      json: {}
      assert:
        status: [200, 201]
"#,
    )
    .unwrap();
    let out = dir.join("s.json");
    let shop = format!("shop={}/shop/api", sb.base_url());
    let o = prober(args(&[
        journey.to_str().unwrap(),
        "--set",
        &shop,
        "--rate",
        "20",
        "--duration",
        "2s",
        "-q",
        "--json",
        out.to_str().unwrap(),
        "--threshold",
        "browse:p95<5s",
        "--threshold",
        "errors<1%",
    ]))
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("shop-browse") && t.contains("  browse") && t.contains("  create-cart"), "{t}");
    let s = json(&out);
    let names: Vec<&str> = s["series"].as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["shop-browse", "browse", "create-cart"]);
    for x in s["series"].as_array().unwrap() {
        assert_eq!(x["count"], 40, "{x}");
        assert_eq!(x["errors"], 0, "{x}");
    }
}
