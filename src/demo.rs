//! `savanna-pulse demo`.
//!
//! Today the demo is a tour of the emulated links: a small server on loopback, and one simulated
//! phone per bundled profile that resolves, connects, pings and fetches a page-sized payload
//! through its link. The whole-fleet demo (sandbox, aggregator, three edge probers, a status page)
//! replaces it as those parts land.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
    time::Instant,
};

/// Run the demo: today, a tour of the bundled network profiles on loopback (about 15 s).
///
/// Each profile gets a simulated phone that looks up `localhost`, connects, pings three times and
/// downloads --kib KiB, all through its emulated link. No set-up, no network beyond loopback.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Payload to download per profile, KiB.
    #[arg(long, default_value_t = 32)]
    kib: usize,
    /// Seed for jitter and loss (same seed, same numbers).
    #[arg(long, default_value_t = 2026)]
    seed: u64,
}

struct Row {
    dns: Duration,
    connect: Duration,
    ping: Duration,
    fetch: Duration,
    retransmissions: u64,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await.context("binding a loopback port")?;
    let port = listener.local_addr()?.port();
    tokio::spawn(serve(listener));
    println!("Savanna Pulse demo: a phone on every bundled link, talking to a server on 127.0.0.1:{port}.");
    println!("(The full fleet demo with sandbox, aggregator and probers comes as those parts land.)\n");

    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, b) in netem::profile::BUNDLED.iter().enumerate() {
        let profile = b.profile();
        let seed = args.seed.wrapping_add(i as u64);
        let bytes = args.kib * 1024;
        tasks.push(tokio::spawn(async move { (profile.name.clone(), phone(profile, seed, port, bytes).await) }));
    }
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    table.set_header([
        "profile",
        "DNS",
        "connect",
        "ping (median of 3)",
        &format!("fetch {} KiB", args.kib),
        "goodput",
        "retransmits",
    ]);
    for t in tasks {
        let (name, row) = t.await?;
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        match row {
            Ok(r) => {
                let kbps = (args.kib * 1024 * 8) as f64 / r.fetch.as_secs_f64() / 1000.0;
                table.add_row(vec![
                    Cell::new(name),
                    right(ms(r.dns)),
                    right(ms(r.connect)),
                    right(ms(r.ping)),
                    right(ms(r.fetch)),
                    right(format!("{kbps:.0} kbit/s")),
                    right(r.retransmissions.to_string()),
                ]);
            }
            Err(e) => {
                table.add_row(vec![Cell::new(name), Cell::new(format!("failed: {e:#}"))]);
            }
        }
    }
    println!("{table}");
    println!(
        "\nmeasured in {:.1} s; `prober profiles` shows what each link is configured to be.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

async fn phone(profile: netem::Profile, seed: u64, port: u16, bytes: usize) -> anyhow::Result<Row> {
    let connector = netem::Connector::new(profile, seed);
    let mut conn = connector.connect("localhost", port).await?;
    let s = &mut conn.stream;
    let mut pings = Vec::new();
    let mut buf = [0u8; 5];
    for _ in 0..3 {
        let t = Instant::now();
        s.write_all(b"PING\n").await?;
        s.read_exact(&mut buf).await?;
        pings.push(t.elapsed());
    }
    pings.sort();
    let t = Instant::now();
    s.write_all(format!("GET {bytes}\n").as_bytes()).await?;
    let mut body = vec![0u8; bytes];
    s.read_exact(&mut body).await?;
    let fetch = t.elapsed();
    let stats = s.stats();
    let retransmissions = stats.retransmissions(netem::Direction::Up) + stats.retransmissions(netem::Direction::Down);
    Ok(Row { dns: conn.timings.dns, connect: conn.timings.connect, ping: pings[1], fetch, retransmissions })
}

/// A tiny line protocol: `PING` → `PONG`, `GET n` → n bytes.
async fn serve(listener: TcpListener) {
    while let Ok((sock, _)) = listener.accept().await {
        tokio::spawn(async move {
            let (rd, mut wr) = sock.into_split();
            let mut lines = BufReader::new(rd).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let reply = match line.split_once(' ') {
                    None if line == "PING" => b"PONG\n".to_vec(),
                    Some(("GET", n)) => vec![b'x'; n.parse().unwrap_or(0)],
                    _ => break,
                };
                if wr.write_all(&reply).await.is_err() {
                    break;
                }
            }
        });
    }
}
