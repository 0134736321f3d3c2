//! An edge agent reporting to two real aggregators (an HA pair, in process): while one is
//! unreachable for many reporting intervals the other receives every report on time; when it is
//! back it catches up by itself, in seq order, and both end up with every run exactly once.

mod agent_support;

use std::{
    net::SocketAddr,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use agent_support::{TOKEN, tmpdir, wait_until};
use aggregator::{
    api::QueryParams,
    client::{AggregatorClient, metric_sums},
};
use parking_lot::Mutex;
use prober::agent::{Control, Options};
use testkit::config::{AggregatorConfig, EdgeConfig, EdgeJourney, ms};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

const PROBER_ID: &str = "ha-1";

/// A TCP relay in front of an aggregator that can be cut off (new connections are closed at
/// once, open ones are dropped), and that notes the `"seq":N` of every report it forwards, in
/// the order the bytes went through.
struct Switch {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    seqs: Arc<Mutex<Vec<u64>>>,
    task: JoinHandle<()>,
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.task.abort();
        for c in self.conns.lock().drain(..) {
            c.abort();
        }
    }
}

impl Switch {
    async fn start(upstream: SocketAddr) -> Switch {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let seqs: Arc<Mutex<Vec<u64>>> = Arc::default();
        let (u, c, s) = (Arc::clone(&up), Arc::clone(&conns), Arc::clone(&seqs));
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                if !u.load(Ordering::SeqCst) {
                    drop(client); // refused: the sender sees a closed connection
                    continue;
                }
                c.lock().push(tokio::spawn(relay(client, upstream, Arc::clone(&s))));
            }
        });
        Switch { addr, up, conns, seqs, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for c in self.conns.lock().drain(..) {
                c.abort();
            }
        }
    }

    /// The seqs forwarded, a retry of the same report counted once.
    fn seqs_in_order(&self) -> Vec<u64> {
        let mut v = self.seqs.lock().clone();
        v.dedup();
        v
    }
}

async fn relay(mut client: TcpStream, upstream: SocketAddr, seqs: Arc<Mutex<Vec<u64>>>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let to_server = async {
        let (mut buf, mut carry) = (vec![0u8; 16 * 1024], Vec::new());
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            carry.extend_from_slice(&buf[..n]);
            scan_seqs(&mut carry, &mut seqs.lock());
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
    };
    let to_client = async {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
    };
    tokio::join!(to_server, to_client);
}

/// Finds the complete `"seq":N` in `buf`, appends each N to `out`, and keeps only the tail that
/// may hold the start of the next one.
fn scan_seqs(buf: &mut Vec<u8>, out: &mut Vec<u64>) {
    const KEY: &[u8] = b"\"seq\":";
    let mut consumed = 0;
    let mut i = 0;
    while let Some(p) = buf[i..].windows(KEY.len()).position(|w| w == KEY) {
        let start = i + p + KEY.len();
        let end = start + buf[start..].iter().take_while(|b| b.is_ascii_digit()).count();
        if end == buf.len() {
            break; // the digits may go on in the next read
        }
        if let Ok(seq) = std::str::from_utf8(&buf[start..end]).unwrap_or("").parse() {
            out.push(seq);
        }
        (i, consumed) = (end, end);
    }
    let keep_from = consumed.max(buf.len().saturating_sub(32));
    buf.drain(..keep_from);
}

async fn aggregator(dir: &Path, tag: &str) -> aggregator::Server {
    let d = dir.join(tag);
    std::fs::create_dir_all(&d).unwrap();
    // The catch-up burst is above the default runs-per-second cap: a test of delivery, not of it.
    let path = AggregatorConfig::new("127.0.0.1:0")
        .prober(PROBER_ID, "nairobi", "env:HA")
        .merge_yaml("ingest:\n  max_runs_per_second: 1000\n")
        .write(&d.join("agg.yaml"));
    let env = |name: &str| (name == "HA").then(|| TOKEN.to_owned());
    let config = aggregator::Config::load_with_env(&path, &env).unwrap();
    aggregator::Server::start(&config, Arc::new(aggregator::clock::SystemClock)).await.unwrap()
}

/// `done N` of a destination's cursor file.
fn cursor(outbox: &Path, dest: &str) -> u64 {
    std::fs::read_to_string(outbox.join("cursors").join(dest))
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("done ")?.trim().parse().ok()))
        .unwrap_or(0)
}

/// The highest seq the outbox handed out.
fn mark(outbox: &Path) -> u64 {
    std::fs::read_to_string(outbox.join("seq")).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
}

/// Every archived report (`keep_acked`): every destination is past it.
fn archived(outbox: &Path) -> Vec<report::Report> {
    let mut v: Vec<report::Report> = std::fs::read_dir(outbox.join("acked"))
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "report").then(|| report::decode(&std::fs::read(&p).unwrap()).unwrap())
        })
        .collect();
    v.sort_by_key(|r| r.seq);
    v
}

/// Journey-level runs of `tick` an aggregator holds, and its stored/duplicate counts for the prober.
async fn held(agg: &aggregator::Server) -> (u64, u64, u64) {
    let api = AggregatorClient::new(agg.base_url());
    let q = QueryParams { journeys: vec!["tick".into()], ..Default::default() };
    let runs = api.query(&q).await.unwrap().groups.iter().map(|g| g.count).sum();
    let p = api.probers().await.unwrap().probers.into_iter().find(|p| p.id == PROBER_ID).unwrap();
    (runs, p.reports.stored_total, p.reports.duplicates)
}

/// A free loopback port for the agent's `/metrics` (bound and released; the agent binds it next).
async fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap()
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let r = aggregator::client::HttpClient::default().get(&format!("http://{addr}{path}")).await.unwrap();
    (r.status.as_u16(), r.text().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_down_for_many_intervals_catches_up_in_order_without_slowing_the_other() {
    let dir = tmpdir("ha");
    let (agg_a, agg_b) = (aggregator(&dir, "a").await, aggregator(&dir, "b").await);
    let (sw_a, sw_b) = (Switch::start(agg_a.local_addr()).await, Switch::start(agg_b.local_addr()).await);
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(dir.join("tick.yaml"), "name: tick\nsteps:\n  - name: pause\n    wait: {fixed: 5ms}\n").unwrap();
    let listen = free_port().await;
    let path = EdgeConfig::new(PROBER_ID, "nairobi", "http://unused:1", "file:token")
        .aggregators(&[("a", &sw_a.url()), ("b", &sw_b.url())], "file:token")
        .reporting_interval(ms(250))
        .profile("loopback")
        .listen(&listen.to_string())
        .journey(EdgeJourney::new("tick.yaml", ms(100)).timeout(ms(80)))
        .keep_acked()
        .write(&dir.join("edge.yaml"));
    let outbox = dir.join("outbox");
    let cfg = prober::agent::config::load(&path).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let opts = Options { flush_limit: Duration::from_secs(20), ..Options::default() };
    let agent = tokio::spawn(prober::agent::run(cfg, opts, rx));

    wait_until("both destinations acknowledging", Duration::from_secs(30), || {
        cursor(&outbox, "a") >= 2 && cursor(&outbox, "b") >= 2
    })
    .await;

    // b is cut off for at least 12 reporting intervals (counted in reports, not in time).
    sw_b.set_up(false);
    let cut_at = mark(&outbox);
    wait_until("12 reports while b is down", Duration::from_secs(60), || mark(&outbox) >= cut_at + 12).await;
    // a is current meanwhile: it has everything but, at most, the report being sent.
    wait_until("a to be current while b is down", Duration::from_secs(10), || {
        cursor(&outbox, "a") + 1 >= mark(&outbox)
    })
    .await;
    let lag_b = mark(&outbox) - cursor(&outbox, "b");
    assert!(lag_b >= 10, "b is {lag_b} reports behind");
    let (code, ready) = get(listen, "/readyz").await;
    assert_eq!(code, 200, "a down destination does not make the prober unready:\n{ready}");
    eprintln!("/readyz while b is down:\n{ready}");
    assert!(ready.contains("destination a backlog=") && ready.contains("destination b backlog="), "{ready}");
    assert!(ready.contains("last_error=network") || ready.contains("last_error=connect"), "{ready}");
    let (_, metrics) = get(listen, "/metrics").await;
    let backlog = metric_sums(&metrics, "prober_outbox_backlog_reports", "destination").unwrap();
    assert!(backlog["b"] >= 5.0 && backlog["a"] <= 2.0, "{backlog:?}");
    let age = metric_sums(&metrics, "prober_outbox_oldest_unacked_age_seconds", "destination").unwrap();
    assert!(age["b"] > age["a"], "{age:?}");
    assert!(metrics.contains(r#"prober_report_errors_total{destination="b",class="#), "{metrics}");

    // b is back: it catches up by itself, and a goes on.
    sw_b.set_up(true);
    let (back_at, since) = (mark(&outbox), tokio::time::Instant::now());
    wait_until("b to catch up", Duration::from_secs(90), || cursor(&outbox, "b") >= back_at).await;
    eprintln!("b was {lag_b} reports behind; caught up {:?} after it was back", since.elapsed());
    tx.send(Control::Stop).await.unwrap();
    agent.await.unwrap().unwrap();

    let reports = archived(&outbox);
    let n = reports.len() as u64;
    assert_eq!(reports.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>(), "every report left");
    assert!(
        std::fs::read_dir(&outbox).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".report"))
    );
    let runs: u64 = reports
        .iter()
        .flat_map(|r| &r.series)
        .filter(|s| s.key.journey == "tick" && s.key.step.is_empty())
        .map(|s| s.count)
        .sum();
    assert!(runs >= 20, "{runs} runs");
    eprintln!("{n} reports, {runs} runs, each aggregator holds all of them");
    for (name, agg, sw) in [("a", &agg_a, &sw_a), ("b", &agg_b, &sw_b)] {
        let (held_runs, stored, duplicates) = held(agg).await;
        assert_eq!(held_runs, runs, "aggregator {name} holds every run the prober made, once");
        assert_eq!(stored, n, "aggregator {name} stored every report once");
        assert!(duplicates <= 1, "aggregator {name}: {duplicates} duplicates (at most the one cut mid-flight)");
        assert_eq!(sw.seqs_in_order(), (1..=n).collect::<Vec<_>>(), "aggregator {name} got the reports in seq order");
    }
    agg_a.shutdown().await.unwrap();
    agg_b.shutdown().await.unwrap();
}

#[test]
fn the_relay_finds_seqs_split_across_reads() {
    let mut out = Vec::new();
    let mut buf = b"POST /x\r\n\r\n{\"v\":1,\"seq\":1".to_vec();
    scan_seqs(&mut buf, &mut out);
    assert!(out.is_empty(), "the digits may go on");
    buf.extend_from_slice(b"2,\"heartbeat\":{}}{\"se");
    scan_seqs(&mut buf, &mut out);
    buf.extend_from_slice(b"q\":13}");
    scan_seqs(&mut buf, &mut out);
    assert_eq!(out, vec![12, 13]);
}
