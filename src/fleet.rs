//! The whole fleet in one process, on loopback: per region a sandbox (USSD app, Daraja emulation,
//! shop, and the MoMo and Airtel emulations), one aggregator with its embedded store, and one edge
//! prober per region running the four journeys every edge runs plus the region's own payment
//! journeys (Kampala pays with MTN MoMo and Airtel Money, Dar es Salaam with Vodacom M-Pesa). Used by `savanna-pulse demo` and the
//! whole-fleet tests.
//!
//! Each region gets its own sandbox, as a region has its own path to the operator: a fault
//! injected into one region's Daraja fails that region's payments only, and the probers of
//! different regions never fight over the sandbox's one-push-per-MSISDN lock.
//!
//! Time: with `speed` S, the aggregator and the probers share one simulated clock, `origin + real
//! elapsed × S` from one tokio instant (`aggregator::clock::ScaledClock`,
//! `prober::agent::clock::Clock::scaled`), so schedules, report intervals, send/receive times,
//! SLO windows and store maintenance all agree. Networks, journeys and their timeouts stay real;
//! at high speed most ticks find the previous run still going and are skipped (counted by each
//! prober as `prober_runs_skipped_total`). Intervals the config gives in simulated time that would
//! be too short in real time (the reporting interval, the SLO evaluation) are stretched, see
//! [`FleetOptions::reporting_interval`].
//!
//! The journeys are compiled into the binary and written, with the sandbox's public test secrets,
//! under the data directory, so the fleet needs no checkout and no set-up.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hasher},
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context as _, bail};
use prober::agent::{self, Control, clock::Clock};
use sandbox::{
    Sandbox, SandboxHandle,
    modem::{Emulator, EmulatorHandle, ModemConfig},
};
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};

/// One edge site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub id: &'static str,
    pub region: &'static str,
    /// Network profile of every journey at this edge.
    pub profile: &'static str,
    /// The region's own payment journeys, run besides [`COMMON_JOURNEYS`]: the rails its shoppers
    /// pay with.
    pub local: &'static [&'static str],
    /// The edge dials USSD through a GSM modem too (the sandbox's emulator on a pty, its network
    /// side the region's sandbox).
    pub modem: bool,
}

impl Edge {
    /// Every journey this edge runs: the common ones, then its own.
    pub fn journeys(&self) -> impl Iterator<Item = &'static str> {
        COMMON_JOURNEYS.iter().chain(self.local).copied()
    }

    /// Whether this edge runs `journey`.
    pub fn runs(&self, journey: &str) -> bool {
        self.journeys().any(|j| j == journey)
    }
}

/// Nairobi on urban 4G, Kampala on 3G (with MTN MoMo and Airtel Money, and a GSM modem it dials
/// USSD through), Dar es Salaam on slow 3G (with Vodacom M-Pesa through the OpenAPI).
pub const EDGES: [Edge; 3] = [
    Edge { id: "nbo-1", region: "nairobi", profile: "ea-4g-urban", local: &[], modem: false },
    Edge {
        id: "kla-1",
        region: "kampala",
        profile: "ea-3g",
        local: &["checkout-momo", "airtel-collect", "ussd-balance-modem"],
        modem: true,
    },
    Edge { id: "dar-1", region: "dar", profile: "ea-3g-slow", local: &["checkout-mpesa-tz"], modem: false },
];

/// The journeys every edge runs (the storyline's incident is in Dar's checkout-mpesa).
pub const COMMON_JOURNEYS: [&str; 4] = ["ussd-balance", "ussd-send-money", "mpesa-stk-push", "checkout-mpesa"];

/// The bundled journeys: (file name, text).
pub const JOURNEYS: [(&str, &str); 8] = [
    ("ussd-balance.yaml", include_str!("../scenarios/ussd-balance.yaml")),
    ("ussd-send-money.yaml", include_str!("../scenarios/ussd-send-money.yaml")),
    ("mpesa-stk-push.yaml", include_str!("../scenarios/mpesa-stk-push.yaml")),
    ("checkout-mpesa.yaml", include_str!("../scenarios/checkout-mpesa.yaml")),
    ("checkout-momo.yaml", include_str!("../scenarios/checkout-momo.yaml")),
    ("airtel-collect.yaml", include_str!("../scenarios/airtel-collect.yaml")),
    ("checkout-mpesa-tz.yaml", include_str!("../scenarios/checkout-mpesa-tz.yaml")),
    ("ussd-balance-modem.yaml", include_str!("../scenarios/ussd-balance-modem.yaml")),
];

/// The sandbox's public test values the journeys read by `file:secrets/…` (not secrets; see
/// scenarios/secrets/README.md).
const SANDBOX_SECRETS: [(&str, &str); 11] = [
    ("sandbox-daraja-consumer-key", include_str!("../scenarios/secrets/sandbox-daraja-consumer-key")),
    ("sandbox-daraja-consumer-secret", include_str!("../scenarios/secrets/sandbox-daraja-consumer-secret")),
    ("sandbox-daraja-passkey", include_str!("../scenarios/secrets/sandbox-daraja-passkey")),
    ("sandbox-ussd-pin", include_str!("../scenarios/secrets/sandbox-ussd-pin")),
    ("sandbox-momo-api-user", include_str!("../scenarios/secrets/sandbox-momo-api-user")),
    ("sandbox-momo-api-key", include_str!("../scenarios/secrets/sandbox-momo-api-key")),
    ("sandbox-momo-subscription-key", include_str!("../scenarios/secrets/sandbox-momo-subscription-key")),
    ("sandbox-airtel-client-id", include_str!("../scenarios/secrets/sandbox-airtel-client-id")),
    ("sandbox-airtel-client-secret", include_str!("../scenarios/secrets/sandbox-airtel-client-secret")),
    ("sandbox-mpesa-tz-api-key", include_str!("../scenarios/secrets/sandbox-mpesa-tz-api-key")),
    ("sandbox-mpesa-tz-public-key", include_str!("../scenarios/secrets/sandbox-mpesa-tz-public-key")),
];

/// The checkout journey's payer: not in the STK journey's MSISDN pool (…100/…200/…300), so the
/// two journeys never hold the sandbox's subscriber lock against each other; `00` succeeds.
const CHECKOUT_PHONE: &str = "254700000400";

/// How the fleet runs.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Store, outboxes, journeys and tokens live here (created if missing).
    pub data_dir: PathBuf,
    /// Simulated seconds per real second (1 = real time).
    pub speed: f64,
    /// Simulated time at the start (Unix ms); `None`: now.
    pub origin_ms: Option<i64>,
    pub edges: Vec<Edge>,
    /// Each journey's schedule, simulated time (the fleet default is 15 s).
    pub journey_interval: Duration,
    /// A run's limit, real time (below `journey_interval`).
    pub journey_timeout: Duration,
    /// Alertmanager base URL (`http://127.0.0.1:9093`), if alerts are to be sent.
    pub alertmanager_url: Option<String>,
    /// SLO evaluation period, real time; `None`: 15 s of simulated time, at least 1 s real.
    pub evaluation_interval: Option<Duration>,
    /// Delay of the sandbox's STK callbacks, real time.
    pub callback_delay: Duration,
    /// Where the aggregator listens.
    pub aggregator_listen: SocketAddr,
}

impl FleetOptions {
    /// Defaults: the three edges, journeys every 15 s with a 12 s limit, real time.
    pub fn new(data_dir: impl Into<PathBuf>) -> FleetOptions {
        FleetOptions {
            data_dir: data_dir.into(),
            speed: 1.0,
            origin_ms: None,
            edges: EDGES.to_vec(),
            journey_interval: Duration::from_secs(15),
            journey_timeout: Duration::from_secs(12),
            alertmanager_url: None,
            evaluation_interval: None,
            callback_delay: Duration::from_millis(500),
            aggregator_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// The probers' reporting interval in simulated time: the fleet default of 15 s, stretched at
    /// high speed so a report still covers a second or so of real time (each one is an fsync at
    /// the edge and a commit in the store): 30 s up to 30×, 1 min up to 60×, 5 min up to 300×,
    /// then 15 min.
    pub fn reporting_interval(&self) -> Duration {
        Duration::from_secs(match self.speed {
            s if s <= 15.0 => 15,
            s if s <= 30.0 => 30,
            s if s <= 60.0 => 60,
            s if s <= 300.0 => 300,
            _ => 900,
        })
    }

    /// The SLO evaluation period in real time.
    pub fn evaluation_interval(&self) -> Duration {
        self.evaluation_interval.unwrap_or_else(|| {
            Duration::from_secs_f64(15.0 / self.speed).clamp(Duration::from_secs(1), Duration::from_secs(15))
        })
    }
}

/// A running edge prober.
pub struct Prober {
    pub edge: Edge,
    /// Its `/metrics` (runs, skips, outbox), e.g. `http://127.0.0.1:41234/metrics`.
    pub metrics_url: String,
    control: mpsc::Sender<Control>,
    task: JoinHandle<Result<(), agent::AgentError>>,
}

/// The running fleet.
pub struct Fleet {
    /// One per edge, in the order of [`FleetOptions::edges`].
    pub sandboxes: Vec<(Edge, SandboxHandle)>,
    /// The modem emulators of the edges that have one ([`Edge::modem`]).
    pub modems: Vec<(Edge, EmulatorHandle)>,
    pub probers: Vec<Prober>,
    aggregator: aggregator::Server,
    prober_clock: Clock,
    speed: f64,
    data_dir: PathBuf,
}

impl Fleet {
    /// Starts the sandboxes, the aggregator, then the probers.
    pub async fn start(opts: FleetOptions) -> anyhow::Result<Fleet> {
        if !(opts.speed.is_finite() && opts.speed > 0.0) {
            bail!("speed {} must be a number above 0", opts.speed);
        }
        if opts.journey_timeout >= opts.journey_interval {
            bail!("the journey timeout must be below the journey interval");
        }
        let dir = &opts.data_dir;
        std::fs::create_dir_all(dir).with_context(|| format!("creating the data directory {}", dir.display()))?;
        let journeys = write_journeys(dir)?;

        // One simulated clock for everybody.
        let anchor = Instant::now();
        let origin_ms = opts.origin_ms.unwrap_or_else(wall_now_ms);
        let agg_clock = Arc::new(aggregator::clock::ScaledClock::new(origin_ms, anchor, opts.speed));
        let prober_clock = Clock::scaled(origin_ms, anchor, opts.speed);

        let mut sandboxes = Vec::new();
        let mut modems = Vec::new();
        for (i, e) in opts.edges.iter().enumerate() {
            let cfg = sandbox::Config {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                seed: 2026 + i as u64,
                callback_delay: opts.callback_delay,
                ..Default::default()
            };
            let sb = Sandbox::start(cfg).await.with_context(|| format!("starting the {} sandbox", e.region))?;
            if e.modem {
                // The modem's network is the region's sandbox: its faults (service `modem`) and
                // its SMS centre, where the payment emulations send their confirmations.
                let cfg = ModemConfig {
                    faults: Some(sb.faults().clone()),
                    sms: Some(sb.sms().clone()),
                    ..Default::default()
                };
                let m = Emulator::start_pty(cfg).await.with_context(|| format!("starting the {} modem", e.region))?;
                modems.push((*e, m));
            }
            sandboxes.push((*e, sb));
        }

        let tokens: HashMap<String, String> = opts.edges.iter().map(|e| (token_env(e), random_token(e.id))).collect();
        let agg_yaml = aggregator_yaml(&opts);
        let agg_path = dir.join("aggregator.yaml");
        std::fs::write(&agg_path, &agg_yaml).with_context(|| format!("writing {}", agg_path.display()))?;
        let agg_cfg = aggregator::Config::parse(&agg_yaml, &agg_path, &|name| tokens.get(name).cloned())
            .context("the fleet's aggregator config")?;
        let aggregator =
            aggregator::Server::start(&agg_cfg, agg_clock.clone()).await.context("starting the aggregator")?;
        let agg_url = aggregator.base_url();

        let mut probers = Vec::new();
        for (e, sb) in &sandboxes {
            let edge_dir = dir.join(e.id);
            std::fs::create_dir_all(&edge_dir).with_context(|| format!("creating {}", edge_dir.display()))?;
            let token_file = edge_dir.join("token");
            write_private(&token_file, &tokens[&token_env(e)])?;
            let agent_opts = agent::Options {
                clock: prober_clock,
                drain_limit: opts.journey_timeout + Duration::from_secs(3),
                flush_limit: Duration::from_secs(5),
            };
            // The /metrics port is picked free, then bound by the agent: another socket (an
            // outgoing connection of a running prober) may take it in between. Then the agent
            // stops at once with `Listen`, and it is started again on another port.
            let mut attempt = 0;
            let prober = loop {
                attempt += 1;
                let listen = free_loopback_port().context("finding a port for a prober's /metrics")?;
                let modem_port = modems.iter().find(|(m, _)| m.id == e.id).map(|(_, m)| m.port());
                let yaml = edge_yaml(
                    &opts,
                    e,
                    &journeys,
                    Targets { sandbox: sb.base_url(), modem: modem_port },
                    &agg_url,
                    listen,
                );
                let path = edge_dir.join("edge.yaml");
                std::fs::write(&path, &yaml).with_context(|| format!("writing {}", path.display()))?;
                let cfg = agent::config::parse(&yaml, &path.display().to_string(), &edge_dir, &path)
                    .with_context(|| format!("the {} edge config", e.region))?;
                let (control, rx) = mpsc::channel(4);
                let task = tokio::spawn(agent::run(cfg, agent_opts, rx));
                match agent_ready(listen, &task).await {
                    Ok(()) => {
                        break Prober { edge: *e, metrics_url: format!("http://{listen}/metrics"), control, task };
                    }
                    Err(()) => match task.await {
                        Ok(Err(agent::AgentError::Listen { .. })) if attempt < 5 => continue,
                        Ok(Err(err)) => bail!("the {} prober stopped at start: {err}", e.region),
                        Ok(Ok(())) => bail!("the {} prober stopped at start", e.region),
                        Err(err) => bail!("the {} prober's task failed at start: {err}", e.region),
                    },
                }
            };
            probers.push(prober);
        }
        Ok(Fleet { sandboxes, modems, probers, aggregator, prober_clock, speed: opts.speed, data_dir: opts.data_dir })
    }

    /// The aggregator's base URL (JSON API under `/api/v1/`, `/status`, `/metrics`).
    pub fn aggregator_url(&self) -> String {
        self.aggregator.base_url()
    }

    /// The sandbox of `region`.
    pub fn sandbox(&self, region: &str) -> Option<&SandboxHandle> {
        self.sandboxes.iter().find(|(e, _)| e.region == region).map(|(_, s)| s)
    }

    /// The modem emulator of `region`, if its edge has one.
    pub fn modem(&self, region: &str) -> Option<&EmulatorHandle> {
        self.modems.iter().find(|(e, _)| e.region == region).map(|(_, m)| m)
    }

    /// Simulated now (Unix ms), as the aggregator and the probers read it.
    pub fn now_ms(&self) -> i64 {
        self.prober_clock.wall_ms()
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stops cleanly: the probers finish their runs and flush their outboxes into the
    /// aggregator, then the aggregator closes its store, then the sandboxes stop. Returns the
    /// first error met; every part is stopped either way.
    pub async fn stop(self) -> anyhow::Result<()> {
        let mut first: Option<anyhow::Error> = None;
        for p in &self.probers {
            let _ = p.control.send(Control::Stop).await;
        }
        for p in self.probers {
            match p.task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first.get_or_insert(anyhow::anyhow!("prober {}: {e}", p.edge.id));
                }
                Err(e) => {
                    first.get_or_insert(anyhow::anyhow!("prober {} task: {e}", p.edge.id));
                }
            }
        }
        if let Err(e) = self.aggregator.shutdown().await {
            first.get_or_insert(anyhow::anyhow!("closing the aggregator's store: {e}"));
        }
        for (_, m) in self.modems {
            m.shutdown().await;
        }
        for (_, sb) in self.sandboxes {
            sb.shutdown().await;
        }
        first.map_or(Ok(()), Err)
    }
}

fn wall_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn token_env(e: &Edge) -> String {
    format!("FLEET_TOKEN_{}", e.id.to_ascii_uppercase().replace(['-', '.', ':'], "_"))
}

/// A fresh token per start (the std hasher's random keys; nothing to guess on loopback, but no
/// fixed secret in the binary either).
fn random_token(id: &str) -> String {
    let mut out = String::from("fleet-");
    for i in 0..2u8 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write(id.as_bytes());
        h.write_u8(i);
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
        out += &format!("{:016x}", h.finish());
    }
    out
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path).with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Writes the bundled journeys and the sandbox's test secrets under `dir/journeys`; returns that folder.
fn write_journeys(dir: &Path) -> anyhow::Result<PathBuf> {
    let jdir = dir.join("journeys");
    let sdir = jdir.join("secrets");
    std::fs::create_dir_all(&sdir).with_context(|| format!("creating {}", sdir.display()))?;
    for (name, text) in JOURNEYS {
        let p = jdir.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    for (name, text) in SANDBOX_SECRETS {
        write_private(&sdir.join(name), text)?;
    }
    Ok(jdir)
}

/// A free loopback port for a prober's `/metrics` (the agent does not hand back the port it got).
/// Waits until the agent answers on its /metrics address (`Ok`), or its task ended (`Err`).
async fn agent_ready<T>(listen: SocketAddr, task: &tokio::task::JoinHandle<T>) -> Result<(), ()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if task.is_finished() {
            return Err(());
        }
        if tokio::net::TcpStream::connect(listen).await.is_ok() || Instant::now() >= deadline {
            // Past the deadline the agent is slow, not dead: the caller goes on with it.
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn free_loopback_port() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

/// The aggregator's config, as a file an operator would write (tokens by `env:` reference).
fn aggregator_yaml(opts: &FleetOptions) -> String {
    // A report's network delay looks S times longer in simulated time; only a real clock error
    // of 2 s should count as skew.
    let skew = Duration::from_secs_f64(2.0 * opts.speed.max(1.0));
    let mut y = format!(
        "# Written by the fleet (savanna-pulse demo); simulated time at {speed}× real time.\n\
         listen: {listen}\n\
         data_dir: store\n\
         shutdown_grace: 3s\n\
         skew_threshold: {skew}\n\
         slo:\n  evaluation_interval: {eval}\n",
        speed = opts.speed,
        listen = opts.aggregator_listen,
        skew = millis(skew),
        eval = millis(opts.evaluation_interval()),
    );
    if let Some(url) = &opts.alertmanager_url {
        y += &format!("alertmanager:\n  url: \"{url}\"\n  resend_interval: 1m\n");
    }
    y += "probers:\n";
    for e in &opts.edges {
        y += &format!("  - {{id: {}, region: {}, token: \"env:{}\"}}\n", e.id, e.region, token_env(e));
    }
    y
}

/// A journey's variables pointing it at a region's sandbox, as YAML flow text.
/// What an edge's journeys reach: its region's sandbox, and its modem's AT port if it has one.
#[derive(Debug, Clone, Copy)]
struct Targets<'a> {
    sandbox: &'a str,
    modem: Option<&'a str>,
}

fn variables(journey: &str, t: Targets<'_>) -> String {
    let sandbox = t.sandbox;
    match journey {
        "ussd-balance-modem" => format!("{{modem_port: \"{}\"}}", t.modem.unwrap_or("/dev/ttyUSB2")),
        "ussd-balance" | "ussd-send-money" => {
            format!("{{ussd_url: \"{sandbox}/ussd/at\", events_url: \"{sandbox}/ussd/at/events\"}}")
        }
        "checkout-mpesa" => format!("{{shop: \"{sandbox}/shop/api\", phone: \"{CHECKOUT_PHONE}\"}}"),
        "checkout-momo" => format!("{{shop: \"{sandbox}/shop/api\", momo: \"{sandbox}\"}}"),
        "airtel-collect" => format!("{{airtel: \"{sandbox}\"}}"),
        "checkout-mpesa-tz" => format!("{{shop: \"{sandbox}/shop/api\", vodacom: \"{sandbox}\"}}"),
        // mpesa-stk-push, and any journey that needs only the Daraja base URL.
        _ => format!("{{daraja: \"{sandbox}\"}}"),
    }
}

/// One edge's config: its journeys against its region's sandbox.
fn edge_yaml(
    opts: &FleetOptions,
    e: &Edge,
    journeys: &Path,
    targets: Targets<'_>,
    aggregator: &str,
    listen: SocketAddr,
) -> String {
    let j = journeys.display();
    let (every, limit) = (millis(opts.journey_interval), millis(opts.journey_timeout));
    let mut list = String::new();
    for name in e.journeys() {
        let vars = variables(name, targets);
        list += &format!(
            "  - file: \"{j}/{name}.yaml\"\n    interval: {every}\n    timeout: {limit}\n    variables: {vars}\n"
        );
    }
    format!(
        "\
# Written by the fleet (savanna-pulse demo).
prober: {{id: {id}, region: {region}}}
aggregator: {{url: \"{aggregator}\", token: \"file:token\"}}
reporting_interval: {report}
concurrency: {n}
profile: {profile}
listen: {listen}
journeys:
{list}outbox:
  dir: outbox
",
        id = e.id,
        region = e.region,
        profile = e.profile,
        report = millis(opts.reporting_interval()),
        n = e.journeys().count(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_parse_and_scale_with_speed() {
        let tmp = testkit::temp_dir("fleet-unit");
        let dir = tmp.to_path_buf();
        let journeys = write_journeys(&dir).unwrap();
        let mut opts = FleetOptions::new(&dir);
        opts.speed = 40.0;
        assert_eq!(opts.reporting_interval(), Duration::from_secs(60));
        assert_eq!(opts.evaluation_interval(), Duration::from_secs(1));
        let tokens: HashMap<String, String> = EDGES.iter().map(|e| (token_env(e), random_token(e.id))).collect();
        let y = aggregator_yaml(&opts);
        let cfg = aggregator::Config::parse(&y, &dir.join("aggregator.yaml"), &|n| tokens.get(n).cloned()).unwrap();
        assert_eq!(cfg.skew_threshold, Duration::from_secs(80));
        assert_eq!(cfg.probers.len(), 3);
        for e in EDGES {
            let edge_dir = dir.join(e.id);
            std::fs::create_dir_all(&edge_dir).unwrap();
            write_private(&edge_dir.join("token"), &tokens[&token_env(&e)]).unwrap();
            let y = edge_yaml(
                &opts,
                &e,
                &journeys,
                Targets { sandbox: "http://127.0.0.1:1", modem: e.modem.then_some("/dev/pts/99") },
                "http://127.0.0.1:2",
                "127.0.0.1:3".parse().unwrap(),
            );
            let path = edge_dir.join("edge.yaml");
            let c = agent::config::parse(&y, "edge.yaml", &edge_dir, &path).unwrap_or_else(|err| panic!("{err}\n{y}"));
            assert_eq!(c.journeys.len(), e.journeys().count());
            assert!(c.journeys.iter().all(|j| j.profile.name == e.profile && j.interval == Duration::from_secs(15)));
            assert_eq!(c.reporting_interval, Duration::from_secs(60));
        }
        // Every bundled journey runs somewhere, and Kampala pays the way Kampala pays.
        for (file, _) in JOURNEYS {
            let name = file.trim_end_matches(".yaml");
            assert!(EDGES.iter().any(|e| e.runs(name)), "{name} runs at no edge");
        }
        assert!(EDGES[1].runs("checkout-momo") && !EDGES[0].runs("checkout-momo"));
        opts.speed = 360.0;
        assert_eq!(opts.reporting_interval(), Duration::from_secs(900));
        opts.speed = 1.0;
        assert_eq!(opts.reporting_interval(), Duration::from_secs(15));
        assert_eq!(opts.evaluation_interval(), Duration::from_secs(15));
    }

    #[test]
    fn tokens_differ_per_edge_and_start() {
        assert_ne!(random_token("a"), random_token("a"));
        assert!(random_token("a").len() >= 32);
    }
}
