//! `savanna-pulse demo` end to end: the built binary runs the whole fleet with its storyline at
//! 40× simulated time for a bounded real time. While it runs, this test reads the aggregator's
//! JSON API (its URL is the demo's first lines) and sees Dar's checkout page alert fire after the
//! injected STK failure and resolve after the recovery; the demo's own output tells the same
//! story, Kampala's MTN MoMo and Airtel Money journeys and Dar's Vodacom M-Pesa journey succeed
//! there (and run nowhere else), and
//! the process exits 0 by itself when `--duration` is reached.
//!
//! Timing, in simulated minutes: incident at 5, recovery at 15, the page resolves once the failed
//! runs leave the 30-minute window (about 47). At 40× that is about 70 s of real time; the run
//! lasts 120 s (80 simulated minutes), so a slow machine has margin. No assertion depends on how
//! fast this machine is beyond that: the clock is real time scaled, only the journeys slow down.

use std::{process::Stdio, sync::Arc, time::Duration};

use parking_lot::Mutex;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
    time::{Instant, sleep},
};

const SPEED: &str = "40";
const DURATION_S: u64 = 120;

/// The page this storyline must fire and resolve.
const PAGE: &str = "page checkout-availability checkout-mpesa dar";

fn firing_pages(v: &aggregator::api::AlertsReply) -> Vec<String> {
    v.firing.iter().map(aggregator::api::FiringAlert::key).collect()
}

/// Once each region's own rails have taken payments there (Kampala: MTN MoMo and Airtel Money;
/// Dar es Salaam: Vodacom M-Pesa), read from the aggregator by rail: (region, rail, ok runs). A
/// rail of one region never shows in another; M-Pesa Kenya runs everywhere (the STK journey).
async fn regional_rails(api: &aggregator::client::AggregatorClient) -> Option<Vec<(String, String, u64)>> {
    use aggregator::api::{Dim, QueryParams};
    let q = QueryParams {
        rails: ["momo", "airtel", "mpesa-tz", "mpesa-ke"].map(String::from).to_vec(),
        step: Some("*".into()),
        group_by: vec![Dim::Region, Dim::Rail],
        ..Default::default()
    };
    let reply = api.query(&q).await.ok()?;
    let seen: Vec<(String, String, u64)> = reply
        .groups
        .iter()
        .map(|g| {
            (g.label(Dim::Region).to_owned(), g.label(Dim::Rail).to_owned(), g.outcomes.get("ok").copied().unwrap_or(0))
        })
        .collect();
    let home = |rail: &str| match rail {
        "momo" | "airtel" => Some("kampala"),
        "mpesa-tz" => Some("dar"),
        _ => None,
    };
    assert!(
        seen.iter().all(|(region, rail, _)| home(rail).is_none_or(|h| h == region)),
        "a rail ran outside its region: {seen:?}"
    );
    let ok = |region: &str, rail: &str| seen.iter().any(|(g, r, n)| g == region && r == rail && *n > 0);
    (ok("kampala", "momo") && ok("kampala", "airtel") && ok("dar", "mpesa-tz") && ok("nairobi", "mpesa-ke"))
        .then_some(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storyline_pages_and_resolves_and_the_demo_exits_cleanly() {
    let tmp = testkit::temp_dir("demo-test");
    let dir = tmp.join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_savanna-pulse"))
        .args(["demo", "--speed", SPEED, "--duration", &format!("{DURATION_S}s"), "--data-dir"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("running the demo binary");
    let out = Arc::new(Mutex::new(String::new()));
    let err = Arc::new(Mutex::new(String::new()));
    for (r, buf) in [
        (Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>, out.clone()),
        (Box::new(child.stderr.take().unwrap()), err.clone()),
    ] {
        tokio::spawn(async move {
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                eprintln!("demo: {l}");
                let mut b = buf.lock();
                b.push_str(&l);
                b.push('\n');
            }
        });
    }

    // The aggregator's URL, from the demo's header.
    let started = Instant::now();
    let agg = loop {
        if let Some(u) = out.lock().lines().find_map(|l| l.trim().strip_prefix("status page").map(str::trim)) {
            break u.trim_end_matches("/status").to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no status page URL in 60 s:\n{}{}",
            out.lock(),
            err.lock()
        );
        sleep(Duration::from_millis(100)).await;
    };

    // Watch the alerts through the JSON API until the demo stops answering (it exits).
    let (mut fired_at, mut resolved_at) = (None, None);
    let mut rails_seen = None;
    let mut misses = 0;
    let limit = Duration::from_secs(DURATION_S + 90);
    let api = aggregator::client::AggregatorClient::new(agg);
    while started.elapsed() < limit && misses < 5 {
        match api.alerts().await {
            Ok(v) => {
                misses = 0;
                if rails_seen.is_none() {
                    rails_seen = regional_rails(&api).await;
                }
                let pages = firing_pages(&v);
                let t = v.evaluated_at_ms;
                if fired_at.is_none() && pages.iter().any(|p| p == PAGE) {
                    fired_at = Some(t);
                } else if fired_at.is_some() && resolved_at.is_none() && !pages.iter().any(|p| p == PAGE) {
                    resolved_at = Some(t);
                }
            }
            Err(_) => misses += 1,
        }
        sleep(Duration::from_millis(500)).await;
    }

    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .unwrap_or_else(|_| panic!("the demo did not exit by itself:\n{}", out.lock()))
        .unwrap();
    sleep(Duration::from_millis(200)).await; // let the readers drain
    let out = out.lock().clone();
    let err = err.lock().clone();
    assert!(status.success(), "demo exit status {status}\nstdout:\n{out}\nstderr:\n{err}");

    let rails = rails_seen.unwrap_or_else(|| panic!("the regional rails' journeys never all succeeded\n{out}"));
    eprintln!("regional rails: {rails:?}");
    let fired = fired_at.unwrap_or_else(|| panic!("the API never showed `{PAGE}` firing\n{out}"));
    let resolved = resolved_at.unwrap_or_else(|| panic!("the API showed `{PAGE}` firing but never resolved\n{out}"));
    eprintln!("API: {PAGE} fired, resolved {:.1} simulated minutes later", (resolved - fired) as f64 / 60_000.0);

    // The demo's own account, in order.
    let pos = |needle: &str| out.find(needle).unwrap_or_else(|| panic!("no `{needle}` in the demo's output:\n{out}"));
    let incident = pos("STORY 2/4 incident in dar");
    let firing = pos(&format!("ALERT FIRING   {PAGE}"));
    let recovered = pos("STORY 3/4 recovered");
    let resolved_line = pos(&format!("ALERT RESOLVED {PAGE}"));
    let calm = pos("STORY 4/4 resolved");
    assert!(incident < firing && firing < recovered, "the page fired during the incident:\n{out}");
    assert!(recovered < resolved_line && resolved_line <= calm, "the page resolved after the recovery:\n{out}");
    assert!(out.contains("demo stopped cleanly") && out.contains("--duration reached"), "{out}");
    // Kept data: the store and the simulated clock for a later run.
    assert!(dir.join("store").is_dir() && dir.join("demo-clock").is_file(), "{} was not kept", dir.display());
}

#[tokio::test]
async fn an_unusable_speed_is_refused_with_its_range() {
    let out = Command::new(env!("CARGO_BIN_EXE_savanna-pulse"))
        .args(["demo", "--speed", "1000"])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running the demo binary");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--speed") && err.contains("1 (real time) to 60"), "{err}");
}
