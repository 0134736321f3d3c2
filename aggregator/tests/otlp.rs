//! OTLP export of a running aggregator, received by a real OTLP/HTTP endpoint on loopback (a
//! small hyper server) that decodes `ExportMetricsServiceRequest` with `opentelemetry-proto`:
//! names, attributes and values must match what the JSON API and `/metrics` show for the same
//! fed traffic. A collector that is down or never answers is counted, and changes nothing else.

mod common;

use std::{collections::BTreeMap, convert::Infallible, sync::Arc, time::Duration};

use aggregator::{
    Server,
    clock::{ManualClock, SharedClock},
};
use bytes::Bytes;
use common::{Http, KLA, NBO, key, report, series, temp_dir};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::{
    collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse},
    common::v1::{KeyValue, any_value},
    metrics::v1::{AggregationTemporality, Metric, metric::Data, number_data_point::Value},
};
use prost::Message;
use tokio::{net::TcpListener, sync::mpsc};

const OTLP_KEY: &str = "otlp-api-key-do-not-log-0123";

/// What the receiver saw of one push.
struct Received {
    path: String,
    content_type: String,
    api_key: String,
    request: ExportMetricsServiceRequest,
}

/// An OTLP/HTTP metrics endpoint on 127.0.0.1: decodes every POST and answers 200 with an empty
/// `ExportMetricsServiceResponse`, as a collector does.
async fn receiver() -> (String, mpsc::Receiver<Received>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel(64);
    let task = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else { return };
            let tx = tx.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let header =
                            |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                        let (path, content_type, api_key) =
                            (req.uri().path().to_owned(), header("content-type"), header("api-key"));
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let request =
                            ExportMetricsServiceRequest::decode(body.as_ref()).expect("a valid OTLP protobuf body");
                        let _ = tx.send(Received { path, content_type, api_key, request }).await;
                        let reply = ExportMetricsServiceResponse::default().encode_to_vec();
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/x-protobuf")
                                .body(Full::new(Bytes::from(reply)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(sock), svc).await;
            });
        }
    });
    (base, rx, task)
}

fn env(name: &str) -> Option<String> {
    if name == "OTLP_KEY" { Some(OTLP_KEY.into()) } else { common::env(name) }
}

fn config(dir: &std::path::Path, otlp: &str) -> aggregator::Config {
    let path = dir.join("aggregator.yaml");
    std::fs::write(&path, common::config_yaml(&format!("slo:\n  evaluation_interval: 1s\n{otlp}"))).unwrap();
    aggregator::Config::load_with_env(&path, &env).unwrap()
}

fn attrs(kv: &[KeyValue]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|a| {
            let v = match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                other => panic!("attribute {} is not a string: {other:?}", a.key),
            };
            (a.key.clone(), v)
        })
        .collect()
}

/// Equal up to the last digit serde_json's float parser may get wrong (it is not bit-exact
/// without its `float_roundtrip` feature).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn metric<'a>(req: &'a ExportMetricsServiceRequest, name: &str) -> Option<&'a Metric> {
    req.resource_metrics[0].scope_metrics[0].metrics.iter().find(|m| m.name == name)
}

/// Gauge points of `name`, by attributes.
fn gauge(req: &ExportMetricsServiceRequest, name: &str) -> BTreeMap<BTreeMap<String, String>, (f64, u64)> {
    let Some(Data::Gauge(g)) = metric(req, name).and_then(|m| m.data.as_ref()) else { return BTreeMap::new() };
    g.data_points
        .iter()
        .map(|p| {
            let Some(Value::AsDouble(v)) = p.value else { panic!("{name}: not a double") };
            (attrs(&p.attributes), (v, p.time_unix_nano))
        })
        .collect()
}

/// The runs counter of one series, if exported.
fn runs(req: &ExportMetricsServiceRequest, l: &BTreeMap<String, String>) -> Option<i64> {
    let Some(Data::Sum(s)) = metric(req, "synthetic_journey_runs").and_then(|m| m.data.as_ref()) else { return None };
    s.data_points.iter().find(|p| attrs(&p.attributes) == *l).map(|p| match p.value {
        Some(Value::AsInt(v)) => v,
        other => panic!("runs: {other:?}"),
    })
}

/// A sample of the `/metrics` text: `name{labels} value`, labels in any order.
fn prom_value(text: &str, name: &str, l: &BTreeMap<String, String>) -> Option<f64> {
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
        if n != name {
            return None;
        }
        let got: BTreeMap<String, String> = rest
            .trim_end_matches('}')
            .split("\",")
            .filter(|kv| !kv.is_empty())
            .filter_map(|kv| kv.split_once("=\"").map(|(k, v)| (k.to_owned(), v.trim_end_matches('"').to_owned())))
            .collect();
        (got == *l).then(|| value.parse().unwrap())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_what_the_api_and_metrics_show() {
    let (base, mut rx, receiver_task) = receiver().await;
    let dir = temp_dir("otlp");
    let config = config(
        &dir,
        &format!("otlp:\n  endpoint: {base}\n  interval: 1s\n  timeout: 1s\n  headers:\n    api-key: env:OTLP_KEY\n"),
    );
    let now = chrono::Utc::now().timestamp_millis();
    let clock = ManualClock::new(now);
    let shared: SharedClock = Arc::new(clock.clone());
    let server = Server::start(&config, shared).await.unwrap();
    let http = Http::new(server.base_url());

    // Ten minutes of 15 s reports: Kampala's checkout fails outright; Nairobi's runs take 1.2 s,
    // and its checkout step 2.5 s (over the 2 s latency objective) one run in four.
    for (seq, m) in (0..40).rev().enumerate() {
        let end = now - m * 15_000;
        let seq = seq as u64 + 1;
        let bad = vec![series(key("checkout-mpesa", "", "gateway_error", "kampala"), &[30_000_000; 4])];
        let good = vec![
            series(key("checkout-mpesa", "", "ok", "nairobi"), &[1_200_000; 4]),
            series(key("checkout-mpesa", "checkout", "ok", "nairobi"), &[400_000, 900_000, 1_500_000, 2_500_000]),
        ];
        assert_eq!(http.post_report(Some(KLA), &report("kla-1", "kampala", seq, end, bad)).await.0, 200);
        assert_eq!(http.post_report(Some(NBO), &report("nbo-1", "nairobi", seq, end, good)).await.0, 200);
    }
    let kla_failed =
        labels(&[("journey", "checkout-mpesa"), ("step", ""), ("region", "kampala"), ("outcome", "gateway_error")]);

    // Pushes come every second; wait (bounded) for one that has all the traffic and a firing page.
    let mut got = None;
    for _ in 0..60 {
        let r = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("a push within 5 s").unwrap();
        let page = labels(&[
            ("slo", "checkout-availability"),
            ("journey", "checkout-mpesa"),
            ("region", "kampala"),
            ("severity", "page"),
        ]);
        // Evaluations run on their own second: wait for one that has counted every report.
        let all_30d = labels(&[
            ("slo", "checkout-availability"),
            ("journey", "checkout-mpesa"),
            ("region", "all"),
            ("window", "30d"),
        ]);
        if runs(&r.request, &kla_failed) == Some(160)
            && gauge(&r.request, "synthetic_slo_window_events").get(&all_30d).map(|v| v.0) == Some(320.0)
            && gauge(&r.request, "synthetic_slo_alert_firing").get(&page).map(|v| v.0) == Some(1.0)
        {
            got = Some(r);
            break;
        }
    }
    let got = got.expect("a push with all 40 reports and the Kampala page firing");
    assert_eq!(got.path, "/v1/metrics");
    assert_eq!(got.content_type, "application/x-protobuf");
    assert_eq!(got.api_key, OTLP_KEY, "the header is resolved from env:OTLP_KEY");
    let req = &got.request;
    let rm = &req.resource_metrics[0];
    assert_eq!(attrs(&rm.resource.as_ref().unwrap().attributes)["service.name"], "savanna-pulse-aggregator");

    // The JSON API's evaluation (the clock is frozen, so every evaluation is the same one).
    let (_, api) = http.get("/api/v1/slos").await;
    let at_ns = api["evaluated_at_ms"].as_i64().unwrap() as u64 * 1_000_000;
    let burn = gauge(req, "synthetic_slo_burn_rate");
    let ratio = gauge(req, "synthetic_slo_error_ratio");
    let events = gauge(req, "synthetic_slo_window_events");
    let remaining = gauge(req, "synthetic_slo_error_budget_remaining_ratio");
    let objective = gauge(req, "synthetic_slo_objective_ratio");
    let mut compared = 0;
    for slo in api["slos"].as_array().unwrap() {
        for scope in slo["scopes"].as_array().unwrap() {
            let s = &scope["scope"];
            let base = [
                ("slo", s["slo"].as_str().unwrap()),
                ("journey", s["journey"].as_str().unwrap()),
                ("region", s["region"].as_str().unwrap()),
            ];
            assert_eq!(objective[&labels(&base)].0, scope["objective"].as_f64().unwrap());
            match scope["error_budget_remaining"].as_f64() {
                Some(r) => {
                    let (v, t) = remaining[&labels(&base)];
                    assert!(close(v, r) && t == at_ns, "{scope}: {v} at {t}");
                }
                None => assert!(!remaining.contains_key(&labels(&base))),
            }
            let windows = scope["windows"].as_array().unwrap().iter().chain(std::iter::once(&scope["period"]));
            for w in windows {
                let mut l = base.to_vec();
                l.push(("window", w["window"].as_str().unwrap()));
                let l = labels(&l);
                assert_eq!(events[&l].0, w["events"].as_f64().unwrap(), "{l:?}");
                match w["burn_rate"].as_f64() {
                    Some(b) => {
                        let (v, t) = burn[&l];
                        assert!(close(v, b) && t == at_ns, "{l:?}: {v} at {t}, the API says {b} at {at_ns}");
                        assert!(close(ratio[&l].0, w["error_ratio"].as_f64().unwrap()), "{l:?}");
                        compared += 1;
                    }
                    None => assert!(!burn.contains_key(&l) && !ratio.contains_key(&l), "undefined is absent: {l:?}"),
                }
            }
        }
    }
    assert!(compared >= 3 * 8, "burn rates of the Kampala, Nairobi and all-regions scopes: {compared}");
    let kla_5m = labels(&[
        ("slo", "checkout-availability"),
        ("journey", "checkout-mpesa"),
        ("region", "kampala"),
        ("window", "5m"),
    ]);
    assert!((burn[&kla_5m].0 - 1000.0).abs() < 1e-6, "every run failed at a 0.1 % budget");

    // /metrics shows the same counters and buckets.
    let (_, _, text) = http.request("GET", "/metrics", None, vec![]).await;
    let text = String::from_utf8(text.to_vec()).unwrap();
    assert_eq!(prom_value(&text, "synthetic_journey_runs_total", &kla_failed), Some(160.0));
    let Some(Data::Histogram(h)) = metric(req, "synthetic_journey_duration_seconds").and_then(|m| m.data.as_ref())
    else {
        panic!("no duration histogram")
    };
    assert_eq!(h.aggregation_temporality, AggregationTemporality::Cumulative as i32);
    let step = labels(&[("journey", "checkout-mpesa"), ("step", "checkout"), ("region", "nairobi")]);
    let p = h.data_points.iter().find(|p| attrs(&p.attributes) == step).expect("the checkout step's histogram");
    assert_eq!(p.count, 160);
    assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1);
    let mut cumulative = 0;
    for (bound, n) in p.explicit_bounds.iter().zip(&p.bucket_counts) {
        cumulative += n;
        let mut l = step.clone();
        l.insert("le".into(), format!("{bound:?}"));
        assert_eq!(
            prom_value(&text, "synthetic_journey_duration_seconds_bucket", &l),
            Some(cumulative as f64),
            "le {bound}"
        );
    }
    let at = |b: f64| p.explicit_bounds.iter().position(|x| *x == b).unwrap();
    let upto = |b: f64| p.bucket_counts[..=at(b)].iter().sum::<u64>();
    assert_eq!((upto(1.0), upto(2.0), p.count), (80, 120, 160), "0.4 s and 0.9 s ≤ 1 s, 1.5 s ≤ 2 s, 2.5 s above");
    let sum = prom_value(&text, "synthetic_journey_duration_seconds_sum", &step).unwrap();
    assert!((p.sum.unwrap() - sum).abs() < 1e-9 * sum.max(1.0), "{:?} vs {sum}", p.sum);

    assert!(
        prom_value(&text, "aggregator_otlp_exports_total", &labels(&[("result", "ok"), ("reason", "")])).unwrap()
            >= 1.0
    );
    assert!(!text.contains(OTLP_KEY), "the API key never reaches /metrics");

    // Shutdown makes one last push.
    while rx.try_recv().is_ok() {}
    server.shutdown().await.unwrap();
    let last = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("a final push on shutdown");
    assert!(last.is_some());
    receiver_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_or_silent_collector_is_counted_not_fatal() {
    // Silent: accepts connections, reads nothing, answers nothing.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    // Dead: a port that was just freed.
    let dead_addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();

    for (addr, reason) in [(silent_addr, "timeout"), (dead_addr, "connect")] {
        let dir = temp_dir("otlp-down");
        let config = config(&dir, &format!("otlp:\n  endpoint: http://{addr}\n  interval: 1s\n  timeout: 200ms\n"));
        let now = chrono::Utc::now().timestamp_millis();
        let clock: SharedClock = Arc::new(ManualClock::new(now));
        let server = Server::start(&config, clock).await.unwrap();
        let http = Http::new(server.base_url());
        let want = labels(&[("result", "error"), ("reason", reason)]);
        let mut failures = 0.0;
        for seq in 1..=100u64 {
            // Ingest goes on while pushes fail.
            let r = report(
                "nbo-1",
                "nairobi",
                seq,
                now,
                vec![series(key("checkout-mpesa", "", "ok", "nairobi"), &[900_000])],
            );
            assert_eq!(http.post_report(Some(NBO), &r).await.0, 200, "{reason}: ingest is not blocked");
            let (_, _, text) = http.request("GET", "/metrics", None, vec![]).await;
            let text = String::from_utf8(text.to_vec()).unwrap();
            failures = prom_value(&text, "aggregator_otlp_exports_total", &want).unwrap_or(0.0);
            if failures >= 2.0 {
                assert_eq!(
                    prom_value(
                        &text,
                        "synthetic_journey_runs_total",
                        &labels(&[
                            ("journey", "checkout-mpesa"),
                            ("step", ""),
                            ("region", "nairobi"),
                            ("outcome", "ok")
                        ])
                    ),
                    Some(seq as f64)
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(failures >= 2.0, "{reason}: two failed pushes counted ({failures})");
        assert_eq!(http.get("/healthz").await.0, 200);
        // Shutdown is bounded by the push timeout, not stuck on the collector.
        tokio::time::timeout(Duration::from_secs(20), server.shutdown()).await.expect("shutdown in time").unwrap();
    }
    hold.abort();
}

/// `https` endpoints: the push goes over rustls, verified against the client's roots; a
/// collector whose certificate is not trusted is a `connect` failure, and nothing is sent to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_collector_is_verified() {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let server_cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, mut rx) = mpsc::channel::<(String, usize)>(8);
    let task = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else { return };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(sock).await else { return };
                let svc = service_fn(move |req: Request<Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let auth = req.headers().get("authorization").map(|v| v.to_str().unwrap().to_owned());
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let n = ExportMetricsServiceRequest::decode(body.as_ref()).unwrap().resource_metrics.len();
                        let _ = tx.send((auth.unwrap_or_default(), n)).await;
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await;
            });
        }
    });

    let dir = temp_dir("otlp-tls");
    let yaml = format!(
        "otlp:\n  endpoint: https://localhost:{port}\n  timeout: 5s\n  headers:\n    authorization: env:OTLP_KEY\n"
    );
    let otlp = config(&dir, &yaml).otlp.unwrap();
    let body = ExportMetricsServiceRequest::default().encode_to_vec();
    let request = || {
        let mut r = ExportMetricsServiceRequest::default();
        r.resource_metrics.push(Default::default());
        r.encode_to_vec()
    };

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let trusting = aggregator::otlp::Client::with_roots(otlp.clone(), roots);
    trusting.push(vec![request(), body.clone()]).await.expect("the push over TLS succeeds");
    let first = rx.recv().await.unwrap();
    assert_eq!(first, (OTLP_KEY.to_owned(), 1));
    assert_eq!(rx.recv().await.unwrap().1, 0, "both requests of the push arrive, in order");

    // The public roots do not know this self-signed certificate.
    let public = aggregator::otlp::Client::new(otlp);
    let err = public.push(vec![request()]).await.unwrap_err();
    assert_eq!(err.reason(), "connect", "{err}");
    assert!(!err.to_string().contains(OTLP_KEY));
    assert!(rx.try_recv().is_err(), "nothing reached the untrusted collector");
    task.abort();
}
