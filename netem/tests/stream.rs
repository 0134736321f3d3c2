//! The shaped stream end to end, on tokio's paused clock over an in-memory pipe: every number here
//! is virtual time, so the assertions are exact and do not depend on how busy the machine is.

use std::time::Duration;

use netem::{
    Direction, Profile, RadioPromotion, Rate, ShapedStream,
    profile::{GilbertElliott, Loss},
    stream::{TIMER_LEAD, send_buffer},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex},
    time::{Instant, timeout},
};

const MS: Duration = Duration::from_millis(1);

fn profile(kbps: f64, rtt_ms: u32) -> Profile {
    let mut p = Profile::unshaped("test");
    p.down = Rate::Kbps(kbps);
    p.up = Rate::Kbps(kbps);
    p.one_way_delay = MS * rtt_ms / 2;
    p
}

/// A client stream shaped by `p`, and the raw server end.
fn pair(p: &Profile, seed: u64) -> (ShapedStream<DuplexStream>, DuplexStream) {
    let (client, server) = duplex(64 * 1024);
    (ShapedStream::new(client, p, seed), server)
}

/// Wire time of `payload` bytes: MSS-sized segments plus 40 header bytes each.
fn wire_time(payload: usize, p: &Profile) -> Duration {
    let segments = payload.div_ceil(p.mss());
    let bits = (payload + segments * p.overhead_bytes as usize) * 8;
    Duration::from_secs_f64(bits as f64 / p.down.bits_per_sec().unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_download_takes_serialisation_plus_one_way_delay() {
    let p = profile(400.0, 100);
    let (mut client, mut server) = pair(&p, 1);
    let body = vec![7u8; 100_000];
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        server.write_all(&body).await.unwrap();
        server.shutdown().await.unwrap();
        server
    });
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    let took = start.elapsed();
    assert_eq!(got.len(), 100_000);
    let expect = wire_time(100_000, &p) + p.one_way_delay;
    // The timer aims half a tick early and tokio rounds up to the next millisecond.
    assert!(took + TIMER_LEAD >= expect && took <= expect + 2 * MS, "took {took:?}, model says {expect:?}");
    assert_eq!(client.stats().bytes(Direction::Down), 100_000);
    drop(writer.await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn an_upload_is_shaped_by_the_up_rate() {
    let mut p = profile(1000.0, 20);
    p.up = Rate::Kbps(100.0);
    let (mut client, mut server) = pair(&p, 1);
    let start = Instant::now();
    client.write_all(&[1u8; 20_000]).await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.unwrap();
    let took = start.elapsed();
    let bits = (20_000 + 20_000usize.div_ceil(1460) * 40) * 8;
    let expect = Duration::from_secs_f64(bits as f64 / 100_000.0) + p.one_way_delay;
    assert_eq!(got.len(), 20_000);
    assert!(took + TIMER_LEAD >= expect && took <= expect + 2 * MS, "took {took:?}, model says {expect:?}");
}

#[tokio::test(start_paused = true)]
async fn a_ping_costs_one_round_trip() {
    let p = profile(17_000.0, 300);
    let (mut client, mut server) = pair(&p, 1);
    tokio::spawn(async move {
        let mut b = [0u8; 4];
        while server.read_exact(&mut b).await.is_ok() {
            server.write_all(&b).await.unwrap();
        }
    });
    for _ in 0..5 {
        let start = Instant::now();
        client.write_all(b"ping").await.unwrap();
        let mut b = [0u8; 4];
        client.read_exact(&mut b).await.unwrap();
        let rtt = start.elapsed();
        assert!(rtt + 2 * TIMER_LEAD >= p.rtt() && rtt <= p.rtt() + 3 * MS, "rtt {rtt:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn jitter_never_reorders_bytes() {
    let mut p = profile(2_000.0, 200);
    p.jitter.amount = MS * 80;
    let (mut client, mut server) = pair(&p, 99);
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let expected = body.clone();
    tokio::spawn(async move {
        for chunk in body.chunks(700) {
            server.write_all(chunk).await.unwrap();
            tokio::time::sleep(MS).await;
        }
        server.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    assert!(got == expected, "bytes arrived out of order or were lost");
}

#[tokio::test(start_paused = true)]
async fn a_slow_link_pushes_back_on_the_writer() {
    let p = profile(50.0, 100);
    let (mut client, mut server) = pair(&p, 1);
    // The server reads everything that arrives; the writer offers 1 MB, which takes ~168 s at 50 kbit/s.
    let reader = tokio::spawn(async move {
        let mut n = 0u64;
        let mut b = vec![0u8; 8192];
        loop {
            match server.read(&mut b).await {
                Ok(0) | Err(_) => return n,
                Ok(k) => n += k as u64,
            }
        }
    });
    let big = vec![0u8; 1_000_000];
    let r = timeout(Duration::from_secs(10), client.write_all(&big)).await;
    assert!(r.is_err(), "the writer must block: the link cannot carry 1 MB in 10 s");
    let accepted = client.stats().bytes(Direction::Up);
    // After 10 s the link carried at most 10 s of bytes; the rest of what was accepted sits in
    // bounded buffers: the link's send buffer, the in-memory pipe and one read chunk.
    let carried = 50_000.0 / 8.0 * 10.0;
    let bound = carried as u64 + send_buffer(&p, Direction::Up) as u64 + 2 * 16 * 1024;
    assert!(accepted <= bound, "accepted {accepted} bytes, more than the bound {bound}");
    assert!(accepted >= carried as u64 * 9 / 10, "accepted {accepted}: the link should have kept moving");
    drop(client);
    let delivered = reader.await.unwrap();
    assert_eq!(delivered, accepted, "every byte the writer handed over is delivered, even after drop");
}

#[tokio::test(start_paused = true)]
async fn a_reader_that_stops_reading_pushes_back_on_the_server() {
    let p = profile(10_000.0, 20);
    let (client, mut server) = pair(&p, 1);
    let big = vec![0u8; 10_000_000];
    let r = timeout(Duration::from_secs(30), server.write_all(&big)).await;
    assert!(r.is_err(), "the server must block when the client never reads");
    drop(client);
}

#[tokio::test(start_paused = true)]
async fn loss_adds_retransmission_delay_and_the_seed_replays_it() {
    let mut p = profile(1_600.0, 300);
    p.loss = Loss::GilbertElliott(GilbertElliott { p_pct: 2.0, r_pct: 30.0, bad_loss_pct: 100.0, good_loss_pct: 0.0 });
    async fn download(p: &Profile, seed: u64) -> (Duration, u64) {
        let (mut client, mut server) = pair(p, seed);
        let start = Instant::now();
        tokio::spawn(async move {
            server.write_all(&vec![0u8; 300_000]).await.unwrap();
            server.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 300_000);
        (start.elapsed(), client.stats().retransmissions(Direction::Down))
    }
    let (a, lost_a) = download(&p, 5).await;
    let (b, lost_b) = download(&p, 5).await;
    assert_eq!((a, lost_a), (b, lost_b), "the same seed replays the same link");
    assert!(lost_a > 0, "a 300 kB transfer at ~6 % loss loses segments");
    let clean = wire_time(300_000, &p) + p.one_way_delay;
    assert!(a > clean + p.rtt(), "loss must cost time: {a:?} vs {clean:?} without loss");
}

#[tokio::test(start_paused = true)]
async fn a_dead_link_fails_reads_and_writes() {
    let mut p = profile(1_000.0, 10);
    p.loss = Loss::Random { pct: 100.0 };
    let (mut client, mut server) = pair(&p, 1);
    server.write_all(b"hello").await.unwrap();
    let mut b = [0u8; 5];
    let e = client.read_exact(&mut b).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
    assert!(e.to_string().contains("retransmission limit"), "{e}");
    let e = client.write_all(b"x").await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn a_half_close_travels_behind_the_data() {
    let p = profile(800.0, 100);
    let (mut client, mut server) = pair(&p, 1);
    client.write_all(b"request").await.unwrap();
    client.shutdown().await.unwrap();
    let mut req = Vec::new();
    server.read_to_end(&mut req).await.unwrap();
    assert_eq!(req, b"request");
    // The other direction still works after the client's half-close.
    server.write_all(b"response").await.unwrap();
    drop(server);
    let mut resp = Vec::new();
    client.read_to_end(&mut resp).await.unwrap();
    assert_eq!(resp, b"response");
}

#[tokio::test(start_paused = true)]
async fn the_radio_promotes_after_idle() {
    let mut p = profile(17_000.0, 40);
    p.radio = Some(RadioPromotion { promotion: Duration::from_secs(2), tail: Duration::from_secs(5) });
    let (mut client, mut server) = pair(&p, 1);
    tokio::spawn(async move {
        let mut b = [0u8; 1];
        while server.read_exact(&mut b).await.is_ok() {
            server.write_all(&b).await.unwrap();
        }
    });
    let mut ping = async || {
        let start = Instant::now();
        client.write_all(b"!").await.unwrap();
        client.read_exact(&mut [0u8; 1]).await.unwrap();
        start.elapsed()
    };
    let first = ping().await;
    assert!(first + 2 * TIMER_LEAD >= Duration::from_secs(2) + p.rtt(), "cold radio: {first:?}");
    let warm = ping().await;
    assert!(warm < p.rtt() + 5 * MS, "warm radio: {warm:?}");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cold_again = ping().await;
    assert!(cold_again + 2 * TIMER_LEAD >= Duration::from_secs(2) + p.rtt(), "idle past the tail: {cold_again:?}");
}

#[tokio::test]
async fn the_loopback_profile_is_a_plain_passthrough() {
    let p = netem::profile::bundled("loopback").unwrap();
    let (mut client, mut server) = pair(&p, 1);
    assert!(client.is_passthrough());
    client.write_all(b"abc").await.unwrap();
    let mut b = [0u8; 3];
    server.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"abc");
    assert_eq!(client.stats().bytes(Direction::Up), 3);
}
