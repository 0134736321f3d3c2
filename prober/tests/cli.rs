//! The `prober` binary as a user runs it: tables, errors and exit codes, and the proxy from start
//! to SIGTERM.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    time::{Instant, timeout},
};

const PROBER: &str = env!("CARGO_BIN_EXE_prober");

fn prober(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(PROBER).args(args).env("PROBER_LOG", "info").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn example_profiles() -> String {
    format!("{}/../netem/examples/profiles.yaml", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn profiles_lists_every_bundled_profile_as_a_table() {
    let (code, out, err) = prober(&["profiles"]);
    assert_eq!(code, 0, "{err}");
    for name in ["ea-4g-urban", "ea-4g-degraded", "ea-3g", "ea-3g-slow", "ea-edge", "ea-2g-gprs", "loopback"] {
        assert!(out.contains(name), "{name} missing from\n{out}");
    }
    let row = out.lines().find(|l| l.contains("ea-3g ")).unwrap();
    for cell in ["1600", "768", "300", "50", "0.5 %"] {
        assert!(row.contains(cell), "ea-3g row lacks {cell}: {row}");
    }
}

#[test]
fn profiles_from_a_file_are_listed_too() {
    let (code, out, err) = prober(&["profiles", "--profile-file", &example_profiles()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kampala-evening") && out.contains("rural-tz-edge") && out.contains("vsat"), "{out}");
}

#[test]
fn bad_input_is_a_clear_error_with_exit_code_2() {
    let (code, _, err) =
        prober(&["proxy", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9", "--profile", "ea-9g"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown network profile `ea-9g`"), "{err}");

    let (code, _, err) =
        prober(&["proxy", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9", "-p", "ea-3g", "--loss-pct", "150"]);
    assert_eq!(code, 2);
    assert!(err.contains("--loss-pct") && err.contains("between 0 and 100"), "{err}");

    let (code, _, err) = prober(&["proxy", "--listen", "127.0.0.1:0", "--upstream", "nowhere", "-p", "ea-3g"]);
    assert_eq!(code, 2);
    assert!(err.contains("--upstream") && err.contains("host:port"), "{err}");

    let dir = testkit::temp_dir("prober-cli");
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "name: x\ndown_kbps: 100\nloss_pct: 101\n").unwrap();
    let (code, _, err) = prober(&["profiles", "--profile-file", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.yaml:3:11: loss_pct: must be a percentage between 0 and 100, got 101"), "{err}");
}

#[test]
fn help_teaches_the_proxy() {
    let (code, out, _) = prober(&["proxy", "--help"]);
    assert_eq!(code, 0);
    for s in ["--listen", "--upstream", "--profile", "--down-kbps", "--rtt-ms", "--loss-pct", "--seed", "curl"] {
        assert!(out.contains(s), "--help lacks {s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_shapes_logs_and_stops_on_sigterm() {
    // Upstream: answers `n\n` with n bytes.
    let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = up.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((s, _)) = up.accept().await {
            tokio::spawn(async move {
                let (rd, mut wr) = s.into_split();
                let mut lines = BufReader::new(rd).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    let _ = wr.write_all(&vec![b'x'; l.trim().parse().unwrap()]).await;
                }
            });
        }
    });

    let mut child = tokio::process::Command::new(PROBER)
        .args(["proxy", "--listen", "127.0.0.1:0", "--upstream", &up_addr, "--profile", "custom"])
        .args(["--rtt-ms", "200", "--down-kbps", "800", "--seed", "7"])
        .env("PROBER_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let ready = timeout(Duration::from_secs(20), async {
        while let Some(line) = log.next_line().await.unwrap() {
            seen.push(line.clone());
            if line.contains("proxy ready") {
                return line;
            }
        }
        panic!("the proxy exited before it was ready: {seen:#?}");
    })
    .await
    .expect("the proxy did not become ready in 20 s");
    assert!(ready.contains("seed=7"), "{ready}");
    let listen = ready.split("listen=").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();

    let start = Instant::now();
    let mut s = TcpStream::connect(&listen).await.unwrap();
    s.write_all(b"40000\n").await.unwrap();
    let mut body = vec![0u8; 40_000];
    s.read_exact(&mut body).await.unwrap();
    // Connect upstream + request/response: 2 RTT; 40 kB at 800 kbit/s: ~0.41 s.
    assert!(start.elapsed() >= Duration::from_millis(800), "{:?}", start.elapsed());
    drop(s);

    // The connection's log line, with bytes and durations.
    let closed = timeout(Duration::from_secs(10), async {
        while let Some(line) = log.next_line().await.unwrap() {
            if line.contains("connection closed") {
                return line;
            }
        }
        panic!("no connection log line");
    })
    .await
    .unwrap();
    for field in ["bytes_down=40000", "bytes_up=6", "connect_ms=", "duration_ms="] {
        assert!(closed.contains(field), "{field} missing: {closed}");
    }

    // SIGTERM (what systemd and Kubernetes send; Ctrl-C takes the same path): a clean exit with a
    // summary.
    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = timeout(Duration::from_secs(10), child.wait()).await.expect("no exit 10 s after SIGTERM").unwrap();
    assert!(status.success(), "{status:?}");
    let mut rest = Vec::new();
    while let Some(line) = log.next_line().await.unwrap() {
        rest.push(line);
    }
    assert!(rest.iter().any(|l| l.contains("proxy stopped") && l.contains("connections=1")), "{rest:#?}");
}
