//! The shaping proxy end to end on loopback: real sockets, real time. Time assertions are lower
//! bounds (shaping can only make things slower) and generous upper bounds.

use std::time::Duration;

use netem::{
    Profile, Rate,
    proxy::{Proxy, ProxyConfig, ProxySummary},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::JoinHandle,
    time::Instant,
};

/// Upstream: for each line `n`, answers n bytes.
async fn upstream() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (rd, mut wr) = s.into_split();
                let mut lines = BufReader::new(rd).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let n: usize = line.trim().parse().unwrap();
                    if wr.write_all(&vec![b'x'; n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

struct Running {
    addr: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<ProxySummary>,
}

async fn start(upstream: String, profile: Profile, grace: Duration) -> Running {
    let cfg = ProxyConfig { upstream, profile, seed: 1, grace };
    let proxy = Proxy::bind("127.0.0.1:0".parse().unwrap(), cfg).await.unwrap();
    let addr = proxy.local_addr().unwrap().to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(proxy.run(async move {
        let _ = stopped.await;
    }));
    Running { addr, stop, task }
}

fn link(down_kbps: f64, rtt_ms: u64) -> Profile {
    let mut p = Profile::unshaped("test");
    p.down = Rate::Kbps(down_kbps);
    p.one_way_delay = Duration::from_millis(rtt_ms) / 2;
    p
}

/// Fetches `n` bytes through the proxy; returns (time to first byte, time from first to last byte).
async fn fetch(addr: &str, n: usize) -> (Duration, Duration) {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{n}\n").as_bytes()).await.unwrap();
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf[..1]).await.unwrap();
    let first = Instant::now();
    s.read_exact(&mut buf[1..]).await.unwrap();
    (first - start, first.elapsed())
}

/// Payload time at `kbps` with 40 header bytes per 1460-byte segment.
fn wire_time(n: usize, kbps: f64) -> Duration {
    let bits = (n + n.div_ceil(1460) * 40) * 8;
    Duration::from_secs_f64(bits as f64 / (kbps * 1000.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_through_the_proxy_is_shaped() {
    let run = start(upstream().await, link(400.0, 200), Duration::from_secs(1)).await;
    let (ttfb, transfer) = fetch(&run.addr, 60_000).await;
    // Connect upstream (1 RTT), request up and first segment down (1 RTT + one segment).
    assert!(ttfb >= Duration::from_millis(400), "time to first byte {ttfb:?}");
    // The rest of the body: all but one segment's worth of serialisation.
    let floor = wire_time(60_000 - 1460, 400.0);
    assert!(transfer >= floor.mul_f64(0.99), "{transfer:?} is faster than the link allows ({floor:?})");
    assert!(transfer < floor * 4, "{transfer:?} is far slower than the link ({floor:?})");
    run.stop.send(()).unwrap();
    let summary = run.task.await.unwrap();
    assert_eq!((summary.connections, summary.failed, summary.aborted), (1, 0, 0));
    assert_eq!(summary.bytes_down, 60_000);
    assert_eq!(summary.bytes_up, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_gets_its_own_link() {
    let run = start(upstream().await, link(200.0, 20), Duration::from_secs(1)).await;
    let n = 25_000; // ~1.04 s each at 200 kbit/s
    let start_all = Instant::now();
    let clients: Vec<_> = (0..8).map(|_| tokio::spawn(fetch_owned(run.addr.clone(), n))).collect();
    for c in clients {
        let (_, transfer) = c.await.unwrap();
        assert!(transfer >= wire_time(n - 1460, 200.0).mul_f64(0.99), "{transfer:?}");
    }
    let all = start_all.elapsed();
    // One shared link would need 8 × 1.04 s; eight links in parallel take ~1.1 s.
    assert!(all < Duration::from_secs(5), "8 parallel downloads took {all:?}: links are not independent");
    run.stop.send(()).unwrap();
    assert_eq!(run.task.await.unwrap().connections, 8);
}

async fn fetch_owned(addr: String, n: usize) -> (Duration, Duration) {
    fetch(&addr, n).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_open_connections_then_aborts_them() {
    let run = start(upstream().await, link(1000.0, 10), Duration::from_millis(300)).await;
    // An idle client that never finishes.
    let mut idle = TcpStream::connect(&run.addr).await.unwrap();
    idle.write_all(b"10\n").await.unwrap();
    let mut b = [0u8; 10];
    idle.read_exact(&mut b).await.unwrap();
    let stopping = Instant::now();
    run.stop.send(()).unwrap();
    let summary = run.task.await.unwrap();
    assert!(stopping.elapsed() >= Duration::from_millis(300), "the grace period was not honoured");
    assert_eq!(summary.aborted, 1);
    // The proxy closed it: the client sees EOF.
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut b)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0);
    // And no longer accepts.
    assert!(TcpStream::connect(&run.addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_closes_the_client_and_is_counted() {
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().to_string();
    let run = start(dead, link(1000.0, 10), Duration::from_millis(100)).await;
    let mut s = TcpStream::connect(&run.addr).await.unwrap();
    let mut b = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "the client is closed when upstream is unreachable");
    run.stop.send(()).unwrap();
    let summary = run.task.await.unwrap();
    assert_eq!((summary.connections, summary.failed), (1, 1));
}
