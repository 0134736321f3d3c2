//! The outbox → sender → aggregator path against a fake aggregator that fails on cue: nothing is
//! deleted before an acknowledgement, replay is in seq order, rejects go aside, duplicates count
//! as delivered, and HTTPS negotiates HTTP/2 with a private CA.

mod agent_support;

use std::{sync::Arc, time::Duration};

use agent_support::{FakeAggregator, TOKEN, sample_report, tmpdir, wait_until};
use prober::agent::{
    clock::Clock,
    config::OutboxConfig,
    metrics::Metrics,
    outbox::Outbox,
    sender::{Client, Sender, Verdict},
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject};
use scenarios::journey::Secret;
use tokio::sync::{Notify, watch};

/// An outbox in a fresh directory (removed when the guard drops), for one destination `agg`.
fn outbox(name: &str) -> (std::path::PathBuf, Arc<Outbox>, testkit::TempDir) {
    outbox_for(name, &["agg"])
}

/// An outbox in a fresh directory for `destinations`.
fn outbox_for(name: &str, destinations: &[&str]) -> (std::path::PathBuf, Arc<Outbox>, testkit::TempDir) {
    let tmp = tmpdir(name);
    let dir = tmp.join("outbox");
    let cfg = OutboxConfig {
        dir: dir.clone(),
        max_bytes: 1 << 20,
        max_age: Duration::from_secs(3600),
        max_rejected: 10,
        keep_acked: false,
    };
    let names: Vec<String> = destinations.iter().map(|d| (*d).to_owned()).collect();
    (dir, Arc::new(Outbox::open(&cfg, &names).unwrap()), tmp)
}

fn fill(ob: &Outbox, n: usize) {
    for _ in 0..n {
        ob.store(|seq| report::encode(&sample_report(seq))).unwrap();
    }
}

struct Running {
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
}

fn start_sender(ob: Arc<Outbox>, url: &str, token: &str, roots: &[CertificateDer<'static>]) -> Running {
    let metrics = Arc::new(Metrics::new());
    metrics.add_destinations(ob.destinations());
    let (stop, stop_rx) = watch::channel(false);
    let s = Sender {
        outbox: ob,
        dest: 0,
        client: Client::new(&url.parse().unwrap(), Secret::new(token), roots),
        metrics: metrics.clone(),
        clock: Clock::system(),
        wake: Arc::new(Notify::new()),
        flush: Arc::new(Notify::new()),
        seed: 7,
    };
    tokio::spawn(s.run(stop_rx));
    Running { metrics, stop }
}

/// Waits until the exposition holds every line of `want` (the sender counts an acknowledgement just
/// after the outbox forgets the report, so a drained outbox may be a moment ahead of the metrics).
async fn wait_for_metrics(metrics: &Metrics, want: &[&str]) -> String {
    wait_until("the metrics", Duration::from_secs(10), || {
        let m = metrics.encode();
        want.iter().all(|w| m.contains(w))
    })
    .await;
    metrics.encode()
}

fn pending(ob: &Outbox) -> Vec<u64> {
    ob.pending().unwrap().iter().map(|e| e.seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_loses_nothing_and_replays_in_seq_order() {
    let agg = FakeAggregator::start().await;
    agg.set_down(true);
    let (_dir, ob, _tmp) = outbox("outage");
    fill(&ob, 5);
    let run = start_sender(ob.clone(), &agg.url(), TOKEN, &[]);

    wait_until("two failed attempts", Duration::from_secs(20), || agg.attempts().len() >= 2).await;
    assert_eq!(pending(&ob), vec![1, 2, 3, 4, 5], "nothing leaves the outbox without an acknowledgement");
    let during = agg.attempts();
    assert!(during.iter().all(|a| a.seq == 1 && a.status == 503), "head of line retried, not skipped: {during:?}");
    assert!(during[1].sent_at_ms >= during[0].sent_at_ms, "sent_at is stamped per attempt");

    agg.set_down(false);
    wait_until("the outbox to drain", Duration::from_secs(30), || pending(&ob).is_empty()).await;
    assert_eq!(*agg.state.store_order.lock(), vec![1, 2, 3, 4, 5], "stored oldest first");
    assert!(agg.state.conflicts.lock().is_empty());
    let m = wait_for_metrics(&run.metrics, &[r#"prober_reports_acked_total{destination="agg"} 5"#]).await;
    assert!(m.contains(r#"prober_report_send_failures_total{destination="agg",reason="server_error"}"#), "{m}");
    assert!(m.contains(r#"prober_report_errors_total{destination="agg",class="server_error"}"#), "{m}");
    let _ = run.stop.send(true);
}

/// `429 Too Many Requests` with `Retry-After`: the report stays in the outbox, the sender waits at
/// least that long before trying again (never sooner, whatever its backoff says), and nothing is
/// lost or reordered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_honoured_for_its_retry_after_and_loses_nothing() {
    let agg = FakeAggregator::start().await;
    agg.throttle(2, 1);
    let (_dir, ob, _tmp) = outbox("throttled");
    fill(&ob, 3);
    let run = start_sender(ob.clone(), &agg.url(), TOKEN, &[]);
    wait_until("the outbox to drain", Duration::from_secs(30), || pending(&ob).is_empty()).await;
    let attempts = agg.attempts();
    let statuses: Vec<(u64, u16)> = attempts.iter().map(|a| (a.seq, a.status)).collect();
    assert_eq!(statuses, vec![(1, 429), (1, 429), (1, 200), (2, 200), (3, 200)], "{attempts:?}");
    for pair in attempts[..3].windows(2) {
        let waited = pair[1].at - pair[0].at;
        assert!(waited >= Duration::from_secs(1), "retried {waited:?} after a 429 with Retry-After: 1");
    }
    assert_eq!(*agg.state.store_order.lock(), vec![1, 2, 3]);
    let text = run.metrics.encode();
    assert!(text.contains(r#"reason="throttled"} 2"#), "{text}");
    let _ = run.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_report_goes_aside_and_a_duplicate_counts_as_delivered() {
    let agg = FakeAggregator::start().await;
    agg.reject(2);
    // Seq 3 reached the aggregator before (say the ack was lost): it answers `duplicate`.
    agg.state.stored.lock().insert(("test-1".into(), 3), sample_report(3));
    let (dir, ob, _tmp) = outbox("reject");
    fill(&ob, 4);
    let run = start_sender(ob.clone(), &agg.url(), TOKEN, &[]);
    wait_until("the outbox to drain", Duration::from_secs(20), || pending(&ob).is_empty()).await;

    assert_eq!(agg.stored_seqs(), vec![1, 3, 4]);
    assert!(dir.join("rejected/00000000000000000002.report").exists(), "the rejected report is kept");
    let reason = std::fs::read_to_string(dir.join("rejected/00000000000000000002.reason")).unwrap();
    assert!(reason.contains("400") && reason.contains("test says no"), "{reason}");
    let tries_of_2 = agg.attempts().iter().filter(|a| a.seq == 2).count();
    assert_eq!(tries_of_2, 1, "a rejected report is not retried");
    wait_for_metrics(
        &run.metrics,
        &[
            r#"prober_reports_rejected_total{destination="agg"} 1"#,
            r#"prober_reports_duplicate_total{destination="agg"} 1"#,
            r#"prober_reports_acked_total{destination="agg"} 3"#,
            r#"prober_report_errors_total{destination="agg",class="rejected"} 1"#,
        ],
    )
    .await;
    let _ = run.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_keeps_reports_in_the_outbox_and_never_writes_the_token() {
    let agg = FakeAggregator::start().await;
    let (dir, ob, _tmp) = outbox("token");
    fill(&ob, 1);
    let wrong = "wrong-token-3b9d";
    let run = start_sender(ob.clone(), &agg.url(), wrong, &[]);
    // Retried like an outage: a token is fixed on one side or the other, and nothing is thrown away.
    wait_until("two refused attempts", Duration::from_secs(20), || agg.attempts().len() >= 2).await;
    assert_eq!(pending(&ob).len(), 1, "the report stays in the outbox");
    assert!(!dir.join("rejected/00000000000000000001.reason").exists());
    assert!(agg.stored_seqs().is_empty());
    let m = run.metrics.encode();
    assert!(m.contains("reason=\"unauthorized\""), "{m}");
    assert!(!m.contains(wrong));
    let _ = run.stop.send(true);
}

fn tls_server(name: &str) -> (Arc<rustls::ServerConfig>, String) {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (Arc::new(cfg), ck.cert.pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_speaks_http2_and_trusts_only_the_configured_private_ca() {
    let (server, ca_pem) = tls_server("localhost");
    let agg = FakeAggregator::start_with(Some(server)).await;
    let roots: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(ca_pem.as_bytes()).collect::<Result<_, _>>().unwrap();

    // Without the CA the handshake fails, and that is a retry, not a reject.
    let mut bare = Client::new(&agg.url().parse().unwrap(), Secret::new(TOKEN), &[]);
    let v = bare.send(report::encode(&sample_report(1))).await;
    assert!(matches!(v, Verdict::Retry { reason: "tls", .. }), "{v:?}");

    let mut client = Client::new(&agg.url().parse().unwrap(), Secret::new(TOKEN), &roots);
    assert_eq!(client.send(report::encode(&sample_report(1))).await, Verdict::Stored);
    assert_eq!(client.send(report::encode(&sample_report(1))).await, Verdict::Duplicate);
    assert_eq!(client.send(report::encode(&sample_report(2))).await, Verdict::Stored);
    let attempts = agg.attempts();
    assert_eq!(attempts.len(), 3);
    assert!(attempts.iter().all(|a| a.version == http::Version::HTTP_2), "{attempts:?}");
}

/// The aggregator closes idle connections (GOAWAY on HTTP/2, a close on HTTP/1.1); the sender
/// opens a new one for its next report without a failed attempt, over HTTPS and over plain HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_keep_flowing_over_connections_the_aggregator_closes_when_idle() {
    let limits = httpserve::Limits {
        idle_timeout: Duration::from_millis(300),
        header_read_timeout: Duration::from_millis(300),
        ..httpserve::Limits::default()
    };
    let (server, ca_pem) = tls_server("localhost");
    let roots: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(ca_pem.as_bytes()).collect::<Result<_, _>>().unwrap();
    for tls in [Some(server), None] {
        let metrics = Arc::new(httpserve::ServeMetrics::new());
        let agg = FakeAggregator::start_bounded(tls, limits.clone(), metrics.clone()).await;
        let mut client = Client::new(&agg.url().parse().unwrap(), Secret::new(TOKEN), &roots);
        for seq in 1..=3 {
            assert_eq!(client.send(report::encode(&sample_report(seq))).await, Verdict::Stored, "{}", agg.url());
            let closed = metrics.closed("api", httpserve::Closed::IdleTimeout)
                + metrics.closed("api", httpserve::Closed::HeaderTimeout);
            wait_until("the idle connection to be closed", Duration::from_secs(10), || {
                metrics.closed("api", httpserve::Closed::IdleTimeout)
                    + metrics.closed("api", httpserve::Closed::HeaderTimeout)
                    > closed
            })
            .await;
        }
        assert_eq!(agg.attempts().len(), 3, "one attempt per report, no retry: {:?}", agg.attempts());
    }
}

/// What the prober's sender needs from the listener's defaults: its connection outlives the
/// reporting interval, and the server never cuts an attempt the sender itself still waits for.
#[test]
fn the_default_bounds_never_cut_the_prober_sender() {
    let d = httpserve::DEFAULT;
    let interval = prober::agent::config::DEFAULT_REPORTING_INTERVAL;
    assert!(d.idle_timeout >= 4 * interval, "idle {:?} vs reporting every {interval:?}", d.idle_timeout);
    assert!(d.body_rate_grace >= prober::agent::sender::ATTEMPT_TIMEOUT, "the sender gives up first");
    assert!(d.header_read_timeout >= prober::agent::sender::ATTEMPT_TIMEOUT, "the sender gives up first");
    assert!(d.tls_handshake_timeout >= prober::agent::sender::ATTEMPT_TIMEOUT);
    assert!(d.h2_max_concurrent_streams >= 1 && d.max_connections_per_peer >= 2);
}

/// Two destinations on one outbox: a refusal by one is kept aside under its name and moves only
/// its cursor; the other stores every report, and a report leaves only when both are past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_by_one_destination_does_not_touch_the_other() {
    let (a, b) = (FakeAggregator::start().await, FakeAggregator::start().await);
    b.reject(2);
    let (dir, ob, _tmp) = outbox_for("two", &["a", "b"]);
    fill(&ob, 3);
    let metrics = Arc::new(Metrics::new());
    metrics.add_destinations(ob.destinations());
    let (stop, stop_rx) = watch::channel(false);
    for (dest, agg) in [&a, &b].into_iter().enumerate() {
        let s = Sender {
            outbox: ob.clone(),
            dest,
            client: Client::new(&agg.url().parse().unwrap(), Secret::new(TOKEN), &[]),
            metrics: metrics.clone(),
            clock: Clock::system(),
            wake: Arc::new(Notify::new()),
            flush: Arc::new(Notify::new()),
            seed: 7,
        };
        tokio::spawn(s.run(stop_rx.clone()));
    }
    wait_until("the outbox to drain", Duration::from_secs(20), || pending(&ob).is_empty()).await;
    assert_eq!(a.stored_seqs(), vec![1, 2, 3]);
    assert_eq!(b.stored_seqs(), vec![1, 3]);
    let reason = std::fs::read_to_string(dir.join("rejected/00000000000000000002.reason")).unwrap();
    assert!(reason.starts_with("b: HTTP 400") && !reason.contains("a: "), "{reason}");
    wait_for_metrics(
        &metrics,
        &[
            r#"prober_reports_rejected_total{destination="b"} 1"#,
            r#"prober_reports_rejected_total{destination="a"} 0"#,
            r#"prober_reports_acked_total{destination="a"} 3"#,
            r#"prober_reports_acked_total{destination="b"} 2"#,
        ],
    )
    .await;
    let _ = stop.send(true);
}
