//! `aggregator.yaml`: where to listen, where to keep data, and which probers may report.
//!
//! Tokens are given by reference only (`env:NAME` or `file:PATH`) and resolved at start; a token
//! never appears in the file, in logs or in error messages. Plain HTTP is allowed only on a
//! loopback address. The optional `otlp:` section (OTLP/HTTP metric push) takes its header values
//! (API keys) the same way. See `aggregator/examples/aggregator.yaml`.

use std::{
    collections::{BTreeMap, HashSet},
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use conf::{Dur, SecretRef, Size, Source};
use serde::Deserialize;

/// A config file that could not be read or is not valid: `file:line:column: field: message`.
pub type ConfigError = conf::Error;

/// The aggregator's resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (for messages).
    pub file: PathBuf,
    pub listen: SocketAddr,
    /// `None` only when `listen` is a loopback address.
    pub tls: Option<TlsFiles>,
    pub data_dir: PathBuf,
    pub probers: Vec<ProberBinding>,
    /// A prober whose clock is off by more than this is flagged, and its intervals corrected.
    pub skew_threshold: Duration,
    /// What one report may claim: clock correction, time horizon, runs per series.
    pub ingest: IngestLimits,
    /// How long rollups (and the idempotency record) are kept.
    pub retention: Duration,
    /// Per-minute rollups older than this are merged into hourly ones.
    pub compact_after: Duration,
    /// Above this the oldest rollups are dropped first.
    pub max_disk_bytes: u64,
    /// Largest report body accepted.
    pub max_body_bytes: usize,
    /// A prober silent for more than this many of its intervals is `down` (after 2 it is `late`).
    pub down_after_intervals: u32,
    /// How long a write waits for a locked database before the report is refused with 503.
    pub busy_timeout: Duration,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_grace: Duration,
    pub relay: RelayConfig,
    pub slo: SloConfig,
    /// This member's name in an HA pair (`replica:`): a `replica` label on every `/metrics` and
    /// remote-written series, and an annotation on every alert. `None`: a single aggregator.
    pub replica: Option<String>,
    /// Where alerts go; none: alerts are only exported (`synthetic_slo_alert_firing`) and logged.
    pub alertmanager: Option<AlertmanagerConfig>,
    /// Prometheus remote-write receivers (`remote_write:`); empty: none.
    pub remote_write: Vec<RemoteWriteConfig>,
    /// Where SLO gauges and journey metrics are pushed over OTLP/HTTP; none: `/metrics` only.
    pub otlp: Option<OtlpConfig>,
    /// What the listener tolerates from clients (`connections:`); defaults in [`httpserve::DEFAULT`].
    pub connections: httpserve::Limits,
}

/// Bounds on what one report may claim, beyond the report format's own (docs/security.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestLimits {
    /// The largest clock offset applied to a prober's intervals. A prober whose clock is further
    /// off (or jumps) is flagged `clock_jump` and its reports are taken uncorrected.
    pub max_clock_correction: Duration,
    /// A report whose interval (corrected for the prober's clock) ends more than this after it
    /// was received is refused.
    pub future_horizon: Duration,
    /// A report whose interval ends more than this before it was received is refused: covers the
    /// probers' outbox age (`outbox.max_age`, 1d by default) and stays inside `retention`.
    pub past_horizon: Duration,
    /// Most runs one series of a scheduled report may count per second of its interval (the
    /// prober runs a journey at most every 100 ms).
    pub max_runs_per_second: u64,
    /// The same for load-run reports (`prober load --report-to`).
    pub max_load_runs_per_second: u64,
    /// Reports one prober may send per minute, on average; past it (and its burst) a report is
    /// answered 429 with `Retry-After`.
    pub max_reports_per_minute: u32,
    /// Reports one prober may send at once above that rate (an outbox catching up).
    pub report_burst: u32,
}

impl IngestLimits {
    /// The defaults for a store keeping `retention` and a `skew_threshold`: the future horizon is
    /// 5 min, or twice the threshold when that is more (offsets below the threshold are not
    /// corrected; the fleet demo raises it with its speed-up).
    pub fn defaults(retention: Duration, skew_threshold: Duration) -> IngestLimits {
        IngestLimits {
            max_clock_correction: DEFAULT_MAX_CLOCK_CORRECTION,
            future_horizon: DEFAULT_FUTURE_HORIZON.max(skew_threshold.saturating_mul(2)),
            past_horizon: default_past_horizon(retention),
            max_runs_per_second: DEFAULT_MAX_RUNS_PER_SECOND,
            max_load_runs_per_second: DEFAULT_MAX_LOAD_RUNS_PER_SECOND,
            max_reports_per_minute: DEFAULT_MAX_REPORTS_PER_MINUTE,
            report_burst: DEFAULT_REPORT_BURST,
        }
    }
}

impl Default for IngestLimits {
    fn default() -> IngestLimits {
        IngestLimits::defaults(DEFAULT_RETENTION, DEFAULT_SKEW_THRESHOLD)
    }
}

/// `retention` less a day (half of it when shorter than two days): whatever is accepted stays
/// queryable for at least that long before retention removes it.
pub fn default_past_horizon(retention: Duration) -> Duration {
    retention - Duration::from_secs(86_400).min(retention / 2)
}

/// OTLP/HTTP (protobuf) metric export.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// The full URL pushes go to (`…/v1/metrics`).
    pub url: http::Uri,
    /// How often the metrics are pushed.
    pub interval: Duration,
    /// Longest a push may take (connect, TLS, request, reply) before it is counted as failed.
    pub timeout: Duration,
    /// Extra request headers (API keys). Values are secrets: resolved from `env:`/`file:`
    /// references, never logged.
    pub headers: Vec<(http::HeaderName, Token)>,
}

/// The SLO engine's settings.
#[derive(Debug, Clone)]
pub struct SloConfig {
    /// The SLOs, validated; the bundled marketplace SLOs when no file is given.
    pub slos: Vec<crate::slo::Slo>,
    /// How often burn rates and alerts are evaluated.
    pub evaluation_interval: Duration,
    /// The aggregator's address as people reach it, for links in alerts (`generatorURL`).
    pub public_url: Option<String>,
}

/// Alertmanager API v2: one Alertmanager, or every member of a cluster.
#[derive(Debug, Clone)]
pub struct AlertmanagerConfig {
    /// Base URLs, e.g. `http://127.0.0.1:9093`: every alert is posted to each of them.
    pub urls: Vec<String>,
    /// Firing alerts are re-sent this often (Alertmanager forgets an alert whose `endsAt` passes).
    pub resend_interval: Duration,
}

/// One Prometheus remote-write (1.0) receiver.
#[derive(Debug, Clone)]
pub struct RemoteWriteConfig {
    /// Label-safe and unique: the `remote` label of the `aggregator_remote_write_*` metrics.
    pub name: String,
    /// The push URL as given (`…/api/v1/push`, `…/api/v1/write`).
    pub url: http::Uri,
    /// How often the current series are written.
    pub interval: Duration,
    /// Longest one request may take.
    pub timeout: Duration,
    /// Extra request headers (a tenant id); values are secrets, never logged.
    pub headers: Vec<(http::HeaderName, Token)>,
    pub auth: Option<RemoteAuth>,
    /// Added to every series that does not already have the label.
    pub external_labels: Vec<(String, String)>,
    /// The label the replica's name goes under (when `replica:` is set).
    pub replica_label: String,
    /// Batches held while the receiver is down; when full the oldest is dropped (and counted).
    pub queue_capacity: usize,
}

/// How a remote-write receiver authenticates us.
#[derive(Debug, Clone)]
pub enum RemoteAuth {
    Basic { username: String, password: Token },
    Bearer(Token),
}

/// PEM files for the TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// One prober allowed to report, and the identity its token is bound to.
#[derive(Debug, Clone)]
pub struct ProberBinding {
    pub id: String,
    pub region: String,
    pub token: Token,
    pub kind: ProberKind,
}

/// What a configured identity reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProberKind {
    /// A site running scheduled journeys (`prober run`): its reports feed the SLOs, and its silence
    /// means the site is late or down.
    #[default]
    Edge,
    /// On-demand load runs only (`prober load --report-to`): every report must name its run, and
    /// between runs the identity is idle, not down.
    Load,
}

impl ProberKind {
    pub fn name(self) -> &'static str {
        match self {
            ProberKind::Edge => "edge",
            ProberKind::Load => "load",
        }
    }
}

/// The Daraja callback relay's bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    pub ttl: Duration,
    pub max_kept: usize,
}

/// A bearer token or another credential: `Debug` and `Display` show `***`, comparison takes
/// constant time.
pub type Token = conf::Secret;

/// Shortest token accepted: anything shorter can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

pub const DEFAULT_SKEW_THRESHOLD: Duration = Duration::from_secs(2);
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(35 * 86_400);
pub const DEFAULT_COMPACT_AFTER: Duration = Duration::from_secs(2 * 86_400);
pub const DEFAULT_MAX_DISK_BYTES: u64 = 1 << 30;
pub const DEFAULT_DOWN_AFTER_INTERVALS: u32 = 8;
pub const DEFAULT_MAX_CLOCK_CORRECTION: Duration = Duration::from_secs(3_600);
pub const DEFAULT_FUTURE_HORIZON: Duration = Duration::from_secs(300);
pub const DEFAULT_MAX_RUNS_PER_SECOND: u64 = 10;
pub const DEFAULT_MAX_LOAD_RUNS_PER_SECOND: u64 = 1_000_000;
/// 20 reports a second: a day's outbox (5,760 reports at a 15 s cadence) drains in about 5 min.
pub const DEFAULT_MAX_REPORTS_PER_MINUTE: u32 = 1_200;
/// An hour of reports at a 15 s cadence (240) passes at once.
pub const DEFAULT_REPORT_BURST: u32 = 300;

// === the file as written ===

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigDoc {
    /// `IP:PORT` to listen on. Plain HTTP only on loopback (127.0.0.0/8, ::1).
    listen: String,
    /// Certificate chain and key (PEM). Required unless `listen` is loopback.
    tls: Option<TlsDoc>,
    /// Where the store lives (created if missing); relative to the config file.
    data_dir: PathBuf,
    /// The probers allowed to report.
    probers: Vec<ProberDoc>,
    /// e.g. `2s` (default).
    skew_threshold: Option<Dur>,
    /// e.g. `35d` (default); keep it above the longest SLO period.
    retention: Option<Dur>,
    /// e.g. `2d` (default): older per-minute rollups become hourly.
    compact_after: Option<Dur>,
    /// e.g. `1GiB` (default).
    max_disk_bytes: Option<Size>,
    /// Default: the report format's limit (4 MiB).
    max_body_bytes: Option<Size>,
    /// Default 8.
    down_after_intervals: Option<u32>,
    /// Default `5s`.
    busy_timeout: Option<Dur>,
    /// Default `10s`.
    shutdown_grace: Option<Dur>,
    relay: Option<RelayDoc>,
    ingest: Option<IngestDoc>,
    slo: Option<SloDoc>,
    /// This member's name in an HA pair: label-safe (`[a-z0-9_-]`), or `env:NAME` (read at start;
    /// Kubernetes sets `POD_NAME` from the pod's name).
    replica: Option<String>,
    alertmanager: Option<AlertmanagerDoc>,
    otlp: Option<OtlpDoc>,
    /// Prometheus remote-write receivers.
    #[serde(default)]
    remote_write: Vec<RemoteWriteDoc>,
    /// Bounds on slow, idle and hostile clients; every key optional (see httpserve's README).
    connections: Option<httpserve::LimitsFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OtlpDoc {
    /// The collector's OTLP/HTTP base URL, e.g. `http://127.0.0.1:4318`; `/v1/metrics` is appended
    /// unless the path already ends with it.
    endpoint: String,
    /// Default `30s`; 1s to 1h.
    interval: Option<Dur<1_000, 3_600_000>>,
    /// Default `10s`; at least 100ms, at most `interval`.
    timeout: Option<Dur<100>>,
    /// Header name → `env:NAME` or `file:PATH` (the value itself never goes in this file).
    #[serde(default)]
    headers: BTreeMap<String, SecretRef>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct IngestDoc {
    /// e.g. `1h` (default): larger clock offsets are flagged, never applied.
    max_clock_correction: Option<Dur>,
    /// e.g. `5m` (default; twice `skew_threshold` when that is more): how far past the receive
    /// time a corrected interval may end.
    future_horizon: Option<Dur>,
    /// Default: `retention` less a day (34d): how far before the receive time an interval may end.
    past_horizon: Option<Dur>,
    /// Default 10: runs per second of interval one series of a scheduled report may count.
    max_runs_per_second: Option<u64>,
    /// Default 1000000: the same for load runs.
    max_load_runs_per_second: Option<u64>,
    /// Default 1200: reports per minute one prober may send (past it: 429 with Retry-After).
    max_reports_per_minute: Option<u32>,
    /// Default 300: reports one prober may send at once above that rate.
    report_burst: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SloDoc {
    /// SLO file (see aggregator/slos/marketplace.yaml); default: the bundled SLOs.
    file: Option<PathBuf>,
    /// Default `15s`; 1s to 5m.
    evaluation_interval: Option<Dur<1_000, 300_000>>,
    /// e.g. `https://pulse.example.net`, for links in alerts.
    public_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertmanagerDoc {
    /// One Alertmanager, e.g. `http://127.0.0.1:9093` (or use `urls`).
    url: Option<String>,
    /// Every member of an Alertmanager cluster; each gets every alert.
    urls: Option<Vec<String>>,
    /// Default `1m`.
    resend_interval: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteWriteDoc {
    /// Label-safe, unique; default `remote-N` (N from 0, its place in the list).
    name: Option<String>,
    /// The receiver's push URL, e.g. `https://mimir.example.net/api/v1/push`.
    url: String,
    /// Default `15s`; 1s to 1h.
    interval: Option<Dur<1_000, 3_600_000>>,
    /// Default `10s`; at least 100ms.
    timeout: Option<Dur<100, 600_000>>,
    /// Header name → `env:NAME` or `file:PATH`.
    #[serde(default)]
    headers: BTreeMap<String, SecretRef>,
    basic_auth: Option<BasicAuthDoc>,
    bearer_token: Option<SecretRef>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    /// Default `replica`; `__replica__` for the Mimir/Cortex HA tracker.
    replica_label: Option<String>,
    /// Default 64.
    queue_capacity: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BasicAuthDoc {
    username: String,
    /// `env:NAME` or `file:PATH`.
    password: SecretRef,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsDoc {
    cert_file: PathBuf,
    key_file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProberDoc {
    /// The prober id its reports carry.
    id: String,
    /// The region its reports carry.
    region: String,
    /// `env:NAME` or `file:PATH`: never the token itself.
    token: SecretRef,
    /// `edge` (default: a site running scheduled journeys) or `load` (only `prober load
    /// --report-to` runs).
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RelayDoc {
    /// How long a callback is kept (default `15m`).
    ttl: Option<Dur>,
    /// Most callbacks kept (default 10000), oldest dropped first.
    max_kept: Option<usize>,
}

/// Resolving the file: where it is, its folder, and the environment secrets come from.
struct Cx<'a> {
    src: &'a Source,
    base: PathBuf,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Cx<'_> {
    fn err(&self, path: &str, message: impl Into<String>) -> ConfigError {
        self.src.error(path, message)
    }
}

impl Config {
    /// Reads and checks a config file, resolving `env:` tokens from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// As [`Config::load`], with `env` standing in for the environment.
    pub fn load_with_env(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::from_source(&Source::read(path)?, path, env)
    }

    /// Parses `src` as if read from `path` (relative paths resolve against its folder).
    pub fn parse(src: &str, path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::from_source(&Source::new(path.display().to_string(), src), path, env)
    }

    fn from_source(src: &Source, path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let cx = Cx { src, base: path.parent().map(Path::to_path_buf).unwrap_or_default(), env };
        let doc: ConfigDoc = src.parse()?;
        let listen: SocketAddr = doc
            .listen
            .parse()
            .map_err(|_| cx.err("listen", format!("`{}` is not IP:PORT (for example 0.0.0.0:8443)", doc.listen)))?;
        let tls =
            doc.tls.map(|t| TlsFiles { cert_file: cx.base.join(t.cert_file), key_file: cx.base.join(t.key_file) });
        if tls.is_none() && !listen.ip().is_loopback() {
            return Err(cx.err(
                "listen",
                format!(
                    "{listen} is not a loopback address, so `tls: {{cert_file, key_file}}` is required \
                     (plain HTTP is allowed only on 127.0.0.1 or ::1)"
                ),
            ));
        }
        let probers = probers(&cx, doc.probers)?;
        let dur = |v: Option<Dur>, default: Duration| v.map_or(default, Dur::get);
        let skew_threshold = dur(doc.skew_threshold, DEFAULT_SKEW_THRESHOLD);
        let retention = dur(doc.retention, DEFAULT_RETENTION);
        let compact_after = dur(doc.compact_after, DEFAULT_COMPACT_AFTER);
        if compact_after >= retention {
            return Err(cx.err("compact_after", "must be shorter than `retention`"));
        }
        if retention < Duration::from_secs(86_400) {
            return Err(cx.err("retention", "keep at least 1d (SLO windows need 28d or 30d)"));
        }
        let max_disk_bytes = doc.max_disk_bytes.map_or(DEFAULT_MAX_DISK_BYTES, Size::bytes);
        if max_disk_bytes < 1 << 20 {
            return Err(cx.err("max_disk_bytes", "at least 1MiB"));
        }
        let max_body_bytes = doc.max_body_bytes.map_or(report::MAX_REPORT_BYTES as u64, Size::bytes);
        if max_body_bytes == 0 || max_body_bytes > report::MAX_REPORT_BYTES as u64 {
            return Err(
                cx.err("max_body_bytes", format!("1 to {} (the report format's own limit)", report::MAX_REPORT_BYTES))
            );
        }
        let down_after_intervals = doc.down_after_intervals.unwrap_or(DEFAULT_DOWN_AFTER_INTERVALS);
        if down_after_intervals < 3 {
            return Err(cx.err("down_after_intervals", "at least 3 (after 2 a prober is `late`)"));
        }
        let relay = doc.relay.map_or(RelayConfig { ttl: Duration::from_secs(900), max_kept: 10_000 }, |r| {
            RelayConfig { ttl: dur(r.ttl, Duration::from_secs(900)), max_kept: r.max_kept.unwrap_or(10_000).max(1) }
        });
        let alertmanager = doc.alertmanager.map(|a| alertmanager_config(&cx, a)).transpose()?;
        let replica = doc.replica.as_deref().map(|r| replica_name(&cx, r)).transpose()?;
        let remote_write = remote_write_configs(&cx, doc.remote_write)?;
        Ok(Config {
            file: path.to_path_buf(),
            slo: slo_config(&cx, doc.slo.unwrap_or_default())?,
            replica,
            alertmanager,
            remote_write,
            otlp: doc.otlp.map(|o| otlp_config(&cx, o)).transpose()?,
            connections: connections_config(&cx, doc.connections.unwrap_or_default())?,
            ingest: ingest_limits(&cx, doc.ingest.unwrap_or_default(), retention, skew_threshold)?,
            listen,
            tls,
            data_dir: cx.base.join(doc.data_dir),
            probers,
            skew_threshold,
            retention,
            compact_after,
            max_disk_bytes,
            max_body_bytes: max_body_bytes as usize,
            down_after_intervals,
            busy_timeout: dur(doc.busy_timeout, Duration::from_secs(5)),
            shutdown_grace: dur(doc.shutdown_grace, Duration::from_secs(10)),
            relay,
        })
    }
}

/// Checks `probers:`: identities by the report rules, unique ids, a token of its own for each.
fn probers(cx: &Cx<'_>, docs: Vec<ProberDoc>) -> Result<Vec<ProberBinding>, ConfigError> {
    if docs.is_empty() {
        return Err(cx.err("probers", "list at least one prober (id, region, token)"));
    }
    let mut probers: Vec<ProberBinding> = Vec::with_capacity(docs.len());
    let mut ids = HashSet::new();
    for (i, p) in docs.into_iter().enumerate() {
        let at = |key: &str| format!("probers[{i}].{key}");
        for (key, v) in [("id", &p.id), ("region", &p.region)] {
            report::check_label(v).map_err(|m| cx.err(&at(key), m))?;
        }
        if !ids.insert(p.id.clone()) {
            return Err(cx.err(&at("id"), format!("prober `{}` is listed twice", p.id)));
        }
        let token = resolve_token(cx, &p.token).map_err(|m| cx.err(&at("token"), format!("prober `{}`: {m}", p.id)))?;
        if probers.iter().any(|q| q.token == token) {
            return Err(cx.err(
                &at("token"),
                format!("prober `{}`: the same token is given to another prober; each prober needs its own", p.id),
            ));
        }
        let kind = match p.kind.as_deref() {
            None | Some("edge") => ProberKind::Edge,
            Some("load") => ProberKind::Load,
            Some(other) => {
                return Err(cx.err(
                    &at("kind"),
                    format!(
                        "prober `{}`: `{}` is not a kind; use `edge` (a site running scheduled journeys, the \
                         default) or `load` (only `prober load --report-to` runs)",
                        p.id,
                        other.escape_default()
                    ),
                ));
            }
        };
        probers.push(ProberBinding { id: p.id, region: p.region, token, kind });
    }
    Ok(probers)
}

/// A prober token: resolved by reference, long enough not to be guessed, one word. Messages
/// never contain it.
fn resolve_token(cx: &Cx<'_>, r: &SecretRef) -> Result<Token, String> {
    let token = r.resolve_with(&cx.base, cx.env)?;
    if token.expose().len() < MIN_TOKEN_LEN {
        return Err(format!("the token is shorter than {MIN_TOKEN_LEN} characters"));
    }
    if token.expose().chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the token contains whitespace or control characters".into());
    }
    Ok(token)
}

fn slo_config(cx: &Cx<'_>, d: SloDoc) -> Result<SloConfig, ConfigError> {
    let slos = match &d.file {
        None => crate::slo::spec::bundled(),
        // The SLO file's own error (its file:line:column) is the message.
        Some(f) => crate::slo::spec::load_file(&cx.base.join(f)).map_err(|e| cx.err("slo.file", e.to_string()))?,
    };
    let evaluation_interval = d.evaluation_interval.map_or(Duration::from_secs(15), Dur::get);
    Ok(SloConfig { slos, evaluation_interval, public_url: d.public_url })
}

fn alertmanager_config(cx: &Cx<'_>, a: AlertmanagerDoc) -> Result<AlertmanagerConfig, ConfigError> {
    let (field, given) = match (a.url, a.urls) {
        (Some(_), Some(_)) => {
            return Err(cx.err("alertmanager.urls", "give `url` (one Alertmanager) or `urls` (a cluster), not both"));
        }
        (None, None) => return Err(cx.err("alertmanager", "give `url` (one Alertmanager) or `urls` (a cluster)")),
        (Some(u), None) => ("alertmanager.url", vec![u]),
        (None, Some(us)) => ("alertmanager.urls", us),
    };
    if given.is_empty() {
        return Err(cx.err(field, "list at least one Alertmanager URL"));
    }
    if given.len() > MAX_ALERTMANAGERS {
        return Err(cx.err(field, format!("at most {MAX_ALERTMANAGERS} Alertmanagers")));
    }
    let mut urls: Vec<String> = Vec::with_capacity(given.len());
    for (i, u) in given.iter().enumerate() {
        let at = if field == "alertmanager.url" { field.to_owned() } else { format!("{field}[{i}]") };
        let shown = u.escape_default().to_string();
        let uri: http::Uri = u.parse().map_err(|_| cx.err(&at, format!("`{shown}` is not an http(s) URL")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none_or(str::is_empty) {
            return Err(cx.err(&at, format!("`{shown}` is not an http(s) URL")));
        }
        let url = u.trim_end_matches('/').to_owned();
        if urls.contains(&url) {
            return Err(cx.err(&at, format!("`{shown}` is listed twice")));
        }
        urls.push(url);
    }
    let resend_interval = a.resend_interval.map_or(Duration::from_secs(60), Dur::get);
    Ok(AlertmanagerConfig { urls, resend_interval })
}

/// Most Alertmanagers one aggregator posts to.
pub const MAX_ALERTMANAGERS: usize = 8;
/// Most remote-write receivers.
pub const MAX_REMOTE_WRITES: usize = 8;
pub const DEFAULT_REMOTE_WRITE_INTERVAL: Duration = Duration::from_secs(15);
pub const DEFAULT_REMOTE_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_REMOTE_WRITE_QUEUE: usize = 64;
/// The default label a replica's name goes under in remote-written series.
pub const DEFAULT_REPLICA_LABEL: &str = "replica";

/// A name that goes into a label value and a metric label: 1 to 63 of `[a-z0-9_-]`.
pub fn check_label_safe(v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > 63 {
        return Err("must be 1 to 63 characters".into());
    }
    if !v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
        return Err(format!("`{}` may use only lower-case letters, digits, `-` and `_`", v.escape_default()));
    }
    Ok(())
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn check_label_name(v: &str) -> Result<(), String> {
    let mut b = v.bytes();
    let first_ok = b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_');
    if !first_ok || !b.all(|c| c.is_ascii_alphanumeric() || c == b'_') {
        return Err(format!("`{}` is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)", v.escape_default()));
    }
    Ok(())
}

/// `replica:`: a label-safe name, or `env:NAME` read now (a pod's name from the downward API).
fn replica_name(cx: &Cx<'_>, given: &str) -> Result<String, ConfigError> {
    let name = match given.strip_prefix("env:") {
        Some(var) => (cx.env)(var).ok_or_else(|| {
            cx.err(
                "replica",
                format!(
                    "`{}` is not set (Kubernetes sets POD_NAME from the pod's name through the downward API)",
                    var.escape_default()
                ),
            )
        })?,
        None => given.to_owned(),
    };
    check_label_safe(&name).map_err(|m| cx.err("replica", m))?;
    Ok(name)
}

/// Resolves secret headers of a push section (`otlp`, `remote_write[i]`): header names checked,
/// values by reference, printable.
fn secret_headers(
    cx: &Cx<'_>,
    section: &str,
    given: &BTreeMap<String, SecretRef>,
) -> Result<Vec<(http::HeaderName, Token)>, ConfigError> {
    let mut headers = Vec::with_capacity(given.len());
    for (name, spec) in given {
        let at = format!("{section}.headers.{name}");
        let header = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| cx.err(&at, format!("`{}` is not an HTTP header name", name.escape_default())))?;
        if matches!(
            header.as_str(),
            "content-type" | "content-length" | "content-encoding" | "host" | "transfer-encoding"
        ) {
            return Err(cx.err(&at, format!("`{header}` is set by the exporter; remove it")));
        }
        let value = spec.resolve_with(&cx.base, cx.env).map_err(|m| cx.err(&at, m))?;
        if http::HeaderValue::from_str(value.expose()).is_err() {
            return Err(
                cx.err(&at, format!("the value from `{spec}` is not a valid HTTP header value (printable ASCII only)"))
            );
        }
        headers.push((header, value));
    }
    Ok(headers)
}

/// Whether the URL's host is a loopback address (secrets may go there over plain http).
fn is_loopback(url: &http::Uri) -> bool {
    url.host().is_some_and(|h| {
        h == "localhost" || h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    })
}

/// Checks the `remote_write:` list.
fn remote_write_configs(cx: &Cx<'_>, docs: Vec<RemoteWriteDoc>) -> Result<Vec<RemoteWriteConfig>, ConfigError> {
    if docs.len() > MAX_REMOTE_WRITES {
        return Err(cx.err("remote_write", format!("at most {MAX_REMOTE_WRITES} receivers")));
    }
    let mut out: Vec<RemoteWriteConfig> = Vec::with_capacity(docs.len());
    for (i, d) in docs.into_iter().enumerate() {
        let section = format!("remote_write[{i}]");
        let at = |key: &str| format!("{section}.{key}");
        let name = d.name.unwrap_or_else(|| format!("remote-{i}"));
        check_label_safe(&name).map_err(|m| cx.err(&at("name"), m))?;
        if out.iter().any(|o| o.name == name) {
            return Err(cx.err(&at("name"), format!("`{name}` is used by another receiver; names are unique")));
        }
        let url = push_url(&d.url).map_err(|m| cx.err(&at("url"), m))?;
        if out.iter().any(|o| o.url == url) {
            return Err(cx.err(&at("url"), "another receiver has the same URL"));
        }
        let interval = d.interval.map_or(DEFAULT_REMOTE_WRITE_INTERVAL, Dur::get);
        let timeout = d.timeout.map_or(DEFAULT_REMOTE_WRITE_TIMEOUT, Dur::get);
        let headers = secret_headers(cx, &section, &d.headers)?;
        if headers.iter().any(|(h, _)| h == http::header::AUTHORIZATION)
            && (d.basic_auth.is_some() || d.bearer_token.is_some())
        {
            return Err(
                cx.err(&at("headers"), "`authorization` comes from `basic_auth` or `bearer_token` here; remove it")
            );
        }
        let auth = match (d.basic_auth, d.bearer_token) {
            (Some(_), Some(_)) => {
                return Err(cx.err(&at("bearer_token"), "give `basic_auth` or `bearer_token`, not both"));
            }
            (Some(b), None) => {
                if b.username.is_empty() || b.username.contains(':') || b.username.chars().any(char::is_control) {
                    return Err(
                        cx.err(&at("basic_auth.username"), "must be non-empty, without `:` or control characters")
                    );
                }
                let password =
                    b.password.resolve_with(&cx.base, cx.env).map_err(|m| cx.err(&at("basic_auth.password"), m))?;
                Some(RemoteAuth::Basic { username: b.username, password })
            }
            (None, Some(t)) => {
                let token = t.resolve_with(&cx.base, cx.env).map_err(|m| cx.err(&at("bearer_token"), m))?;
                if http::HeaderValue::from_str(&format!("Bearer {}", token.expose())).is_err() {
                    return Err(cx.err(&at("bearer_token"), format!("the value from `{t}` is not printable ASCII")));
                }
                Some(RemoteAuth::Bearer(token))
            }
            (None, None) => None,
        };
        if (!headers.is_empty() || auth.is_some()) && url.scheme_str() == Some("http") && !is_loopback(&url) {
            return Err(cx.err(
                &at("url"),
                "credentials and headers are sent only over https, or plain http to a loopback address",
            ));
        }
        let mut external_labels = Vec::with_capacity(d.external_labels.len());
        for (k, v) in d.external_labels {
            let key_at = at(&format!("external_labels.{k}"));
            check_label_name(&k).map_err(|m| cx.err(&key_at, m))?;
            if k.starts_with("__") {
                return Err(
                    cx.err(&key_at, "names starting with `__` are reserved (the replica goes under `replica_label`)")
                );
            }
            if v.is_empty() {
                return Err(cx.err(&key_at, "an empty value is the same as no label; remove it"));
            }
            external_labels.push((k, v));
        }
        let replica_label = d.replica_label.unwrap_or_else(|| DEFAULT_REPLICA_LABEL.to_owned());
        check_label_name(&replica_label).map_err(|m| cx.err(&at("replica_label"), m))?;
        if replica_label == "__name__" || external_labels.iter().any(|(k, _)| *k == replica_label) {
            return Err(cx.err(&at("replica_label"), format!("`{replica_label}` is already used; pick another label")));
        }
        let queue_capacity = d.queue_capacity.unwrap_or(DEFAULT_REMOTE_WRITE_QUEUE);
        if !(1..=10_000).contains(&queue_capacity) {
            return Err(cx.err(&at("queue_capacity"), "1 to 10000 batches"));
        }
        out.push(RemoteWriteConfig {
            name,
            url,
            interval,
            timeout,
            headers,
            auth,
            external_labels,
            replica_label,
            queue_capacity,
        });
    }
    Ok(out)
}

pub const DEFAULT_OTLP_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_OTLP_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks the `otlp:` section.
fn otlp_config(cx: &Cx<'_>, o: OtlpDoc) -> Result<OtlpConfig, ConfigError> {
    let url = otlp_url(&o.endpoint).map_err(|m| cx.err("otlp.endpoint", m))?;
    let interval = o.interval.map_or(DEFAULT_OTLP_INTERVAL, Dur::get);
    let timeout = o.timeout.map_or(DEFAULT_OTLP_TIMEOUT.min(interval), Dur::get);
    if timeout > interval {
        return Err(
            cx.err("otlp.timeout", format!("between 100ms and the interval ({})", conf::duration::format(interval)))
        );
    }
    let headers = secret_headers(cx, "otlp", &o.headers)?;
    if !headers.is_empty() && url.scheme_str() == Some("http") && !is_loopback(&url) {
        return Err(
            cx.err("otlp.endpoint", "headers (API keys) are sent only over https, or plain http to a loopback address")
        );
    }
    Ok(OtlpConfig { url, interval, timeout, headers })
}

/// Checks the `ingest:` section (all optional).
fn ingest_limits(
    cx: &Cx<'_>,
    d: IngestDoc,
    retention: Duration,
    skew_threshold: Duration,
) -> Result<IngestLimits, ConfigError> {
    let defaults = IngestLimits::defaults(retention, skew_threshold);
    let dur = |v: Option<Dur>, default: Duration| v.map_or(default, Dur::get);
    let future_horizon = dur(d.future_horizon, defaults.future_horizon);
    if future_horizon < skew_threshold.max(Duration::from_secs(1)) {
        return Err(cx.err(
            "ingest.future_horizon",
            format!(
                "at least `skew_threshold` ({}) and 1s: offsets below the threshold are not corrected, so \
                 intervals may end that far ahead",
                conf::duration::format(skew_threshold)
            ),
        ));
    }
    let past_horizon = dur(d.past_horizon, defaults.past_horizon);
    if past_horizon < Duration::from_secs(3_600) || past_horizon >= retention {
        return Err(cx.err(
            "ingest.past_horizon",
            format!(
                "between 1h and `retention` ({}d): older data would be deleted by the next maintenance pass right \
                 after it was acknowledged; keep it above the probers' `outbox.max_age` (1d by default)",
                retention.as_secs() / 86_400
            ),
        ));
    }
    let rate = |key: &str, v: Option<u64>, default: u64| match v {
        Some(0) => Err(cx.err(&format!("ingest.{key}"), "at least 1")),
        v => Ok(v.unwrap_or(default)),
    };
    Ok(IngestLimits {
        max_clock_correction: dur(d.max_clock_correction, defaults.max_clock_correction),
        future_horizon,
        past_horizon,
        max_runs_per_second: rate("max_runs_per_second", d.max_runs_per_second, defaults.max_runs_per_second)?,
        max_load_runs_per_second: rate(
            "max_load_runs_per_second",
            d.max_load_runs_per_second,
            defaults.max_load_runs_per_second,
        )?,
        max_reports_per_minute: rate(
            "max_reports_per_minute",
            d.max_reports_per_minute.map(u64::from),
            defaults.max_reports_per_minute.into(),
        )? as u32,
        report_burst: rate("report_burst", d.report_burst.map(u64::from), defaults.report_burst.into())? as u32,
    })
}

/// The `connections:` section over httpserve's defaults.
fn connections_config(cx: &Cx<'_>, c: httpserve::LimitsFile) -> Result<httpserve::Limits, ConfigError> {
    c.resolve().map_err(|e| match e {
        httpserve::Error::InvalidLimit { field, reason } => cx.err(&format!("connections.{field}"), reason),
        other => cx.err("connections", other.to_string()),
    })
}

/// A push URL: http(s), a host, no credentials, no query. Messages never quote a credential.
fn push_url(endpoint: &str) -> Result<http::Uri, String> {
    // What may be shown: never what stands before an `@` (a credential).
    let shown = match endpoint.rsplit_once('@') {
        Some((_, rest)) => format!("***@{}", rest.escape_default()),
        None => endpoint.escape_default().to_string(),
    };
    let uri: http::Uri =
        endpoint.trim().parse().map_err(|_| format!("`{shown}` is not a URL like http://127.0.0.1:4318"))?;
    let scheme = uri.scheme_str().unwrap_or("");
    if !matches!(scheme, "http" | "https") || uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{shown}` is not an http(s) URL like http://127.0.0.1:4318"));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        // Not echoed: the text before `@` is a credential.
        return Err("credentials in the URL are not accepted; give them in `headers` by reference".into());
    }
    if uri.query().is_some() {
        return Err("drop the query string (headers carry keys, not the URL)".into());
    }
    Ok(uri)
}

/// The push URL for an OTLP/HTTP base URL: `/v1/metrics` appended unless already there.
fn otlp_url(endpoint: &str) -> Result<http::Uri, String> {
    let uri = push_url(endpoint)?;
    let path = uri.path().trim_end_matches('/');
    let path = if path.ends_with("/v1/metrics") { path.to_owned() } else { format!("{path}/v1/metrics") };
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    let scheme = uri.scheme_str().unwrap_or("http");
    format!("{scheme}://{authority}{path}").parse().map_err(|_| "not a usable URL".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn env(name: &str) -> Option<String> {
        match name {
            "NBO_TOKEN" => Some("nbo-secret-0123456789".into()),
            "KLA_TOKEN" => Some("kla-secret-0123456789".into()),
            "DAR_TOKEN" => Some("dar-secret-0123456789".into()),
            "SHORT" => Some("short".into()),
            _ => None,
        }
    }

    fn parse(src: &str) -> Result<Config, ConfigError> {
        Config::parse(src, Path::new("/etc/agg/aggregator.yaml"), &env)
    }

    fn message(src: &str) -> String {
        parse(src).unwrap_err().to_string()
    }

    const MIN: &str = "listen: 127.0.0.1:8080\ndata_dir: data\nprobers:\n  - id: nbo-1\n    region: nairobi\n    token: env:NBO_TOKEN\n";

    #[test]
    fn example_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/aggregator.yaml");
        let c = Config::load_with_env(&path, &env).unwrap();
        assert_eq!(c.probers.len(), 3);
        assert_eq!(c.probers[1].id, "kla-1");
        assert_eq!(c.probers[1].region, "kampala");
        assert!(c.probers[1].token.matches("kla-secret-0123456789"));
        assert!(c.tls.is_none());
        assert!(c.listen.ip().is_loopback());
        assert_eq!(c.skew_threshold, Duration::from_secs(2));
        assert_eq!(c.retention, Duration::from_secs(35 * 86_400));
        assert_eq!(c.max_disk_bytes, 1 << 30);
        assert_eq!(c.max_body_bytes, report::MAX_REPORT_BYTES);
        assert_eq!(c.connections, httpserve::Limits::default(), "the example spells out the defaults");
        assert_eq!(c.ingest, IngestLimits::default(), "the example shows the defaults");
    }

    #[test]
    fn defaults_and_relative_paths() {
        let c = parse(MIN).unwrap();
        assert_eq!(c.data_dir, Path::new("/etc/agg/data"));
        assert_eq!(c.compact_after, DEFAULT_COMPACT_AFTER);
        assert_eq!(c.down_after_intervals, 8);
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let m = message(&format!("{MIN}retension: 30d\n"));
        assert!(m.starts_with("/etc/agg/aggregator.yaml:7:"), "{m}");
        assert!(m.contains("retension"), "{m}");
    }

    #[test]
    fn plain_http_off_loopback_is_refused() {
        let m = message(&MIN.replace("127.0.0.1:8080", "0.0.0.0:8080"));
        assert!(m.contains(":1:") && m.contains("tls"), "{m}");
        let with_tls = MIN.replace("127.0.0.1:8080", "0.0.0.0:8443") + "tls:\n  cert_file: c.pem\n  key_file: k.pem\n";
        let c = parse(&with_tls).unwrap();
        assert_eq!(c.tls.unwrap().cert_file, Path::new("/etc/agg/c.pem"));
    }

    #[test]
    fn inline_token_is_refused_without_echoing_it() {
        let m = message(&MIN.replace("env:NBO_TOKEN", "hunter2hunter2hunter2"));
        assert!(m.contains(":6:") && m.contains("by reference"), "{m}");
        assert!(!m.contains("hunter2"), "{m}");
    }

    #[test]
    fn token_problems_name_the_prober_not_the_token() {
        let m = message(&MIN.replace("NBO_TOKEN", "MISSING"));
        assert!(m.contains("nbo-1") && m.contains("MISSING"), "{m}");
        let m = message(&MIN.replace("NBO_TOKEN", "SHORT"));
        assert!(m.contains("shorter") && !m.contains("short\""), "{m}");
        let dup = format!("{MIN}  - id: nbo-2\n    region: nairobi\n    token: env:NBO_TOKEN\n");
        let m = message(&dup);
        assert!(m.contains(":9:") && m.contains("another prober") && !m.contains("nbo-secret"), "{m}");
    }

    #[test]
    fn bad_values_are_located() {
        let m = message(&format!("{MIN}skew_threshold: soon\n"));
        assert!(m.contains(":7:") && m.contains("skew_threshold"), "{m}");
        let m = message(&format!("{MIN}max_body_bytes: 5GiB\n"));
        assert!(m.contains(":7:") && m.contains("max_body_bytes"), "{m}");
        let m = message(&MIN.replace("nbo-1", "nbo 1"));
        assert!(m.contains(":4:") && m.contains("probers[0].id"), "{m}");
        let m = message(&MIN.replace("127.0.0.1:8080", "localhost"));
        assert!(m.contains(":1:") && m.contains("IP:PORT"), "{m}");
    }

    #[test]
    fn a_load_identity_is_declared_by_kind() {
        let load = format!("{MIN}  - id: load\n    region: load\n    token: env:KLA_TOKEN\n    kind: load\n");
        let c = parse(&load).unwrap();
        assert_eq!((c.probers[0].kind, c.probers[1].kind), (ProberKind::Edge, ProberKind::Load));
        let m = message(&load.replace("kind: load", "kind: loader"));
        assert!(m.contains(":10:11: probers[1].kind: prober `load`") && m.contains("`edge`"), "{m}");
    }

    #[test]
    fn durations_and_sizes_take_the_one_grammar() {
        // Fractions and compound durations, which this file once refused (`1.5s` was an error).
        let c = parse(&format!("{MIN}busy_timeout: 1.5s\nshutdown_grace: 1m30s\nmax_disk_bytes: 1.5GiB\n")).unwrap();
        assert_eq!(c.busy_timeout, Duration::from_millis(1_500));
        assert_eq!(c.shutdown_grace, Duration::from_secs(90));
        assert_eq!(c.max_disk_bytes, 3 << 29);
        let m = message(&format!("{MIN}busy_timeout: 5 parsecs\n"));
        assert!(m.starts_with("/etc/agg/aggregator.yaml:7:15: busy_timeout: `5 parsecs`: unknown unit"), "{m}");
    }

    #[test]
    fn flow_style_errors_have_the_fields_own_position() {
        let src = "listen: 127.0.0.1:8080\ndata_dir: data\nprobers:\n  - {id: nbo-1, region: nairobi, token: env:NBO_TOKEN}\n  - {id: kla-1, region: kampala west, token: env:KLA_TOKEN}\n";
        let m = message(src);
        assert!(m.starts_with("/etc/agg/aggregator.yaml:5:25: probers[1].region:"), "{m}");
        let m = message(&src.replace("env:KLA_TOKEN", "hunter2-inline").replace("kampala west", "kampala"));
        assert!(
            m.starts_with("/etc/agg/aggregator.yaml:5:") && m.contains("probers[1].token") && !m.contains("hunter2"),
            "{m}"
        );
        let m = message(&src.replace("env:KLA_TOKEN", "env:NBO_TOKEN").replace("kampala west", "kampala"));
        assert!(m.starts_with("/etc/agg/aggregator.yaml:5:") && m.contains("another prober"), "{m}");
    }

    #[test]
    fn ingest_section() {
        let c = parse(MIN).unwrap();
        assert_eq!(c.ingest, IngestLimits::default());
        assert_eq!(c.ingest.past_horizon, Duration::from_secs(34 * 86_400));
        assert_eq!(default_past_horizon(Duration::from_secs(86_400)), Duration::from_secs(43_200));
        let c = parse(&format!(
            "{MIN}ingest:\n  max_clock_correction: 10m\n  future_horizon: 1m\n  past_horizon: 2d\n  \
             max_runs_per_second: 2\n  max_load_runs_per_second: 500\n  max_reports_per_minute: 60\n  \
             report_burst: 5\n"
        ))
        .unwrap();
        assert_eq!(
            c.ingest,
            IngestLimits {
                max_clock_correction: Duration::from_secs(600),
                future_horizon: Duration::from_secs(60),
                past_horizon: Duration::from_secs(2 * 86_400),
                max_runs_per_second: 2,
                max_load_runs_per_second: 500,
                max_reports_per_minute: 60,
                report_burst: 5,
            }
        );
        let m = message(&format!("{MIN}retention: 10d\ningest:\n  past_horizon: 10d\n"));
        assert!(m.contains(":9:") && m.contains("ingest.past_horizon") && m.contains("(10d)"), "{m}");
        let m = message(&format!("{MIN}ingest:\n  future_horizon: 1s\n"));
        assert!(m.contains(":8:") && m.contains("skew_threshold"), "{m}");
        // The default follows a raised threshold (the fleet demo at 480x uses 960s).
        let c = parse(&format!("{MIN}skew_threshold: 960s\n")).unwrap();
        assert_eq!(c.ingest.future_horizon, Duration::from_secs(1_920));
        let m = message(&format!("{MIN}ingest:\n  max_runs_per_second: 0\n"));
        assert!(m.contains(":8:") && m.contains("at least 1"), "{m}");
        let m = message(&format!("{MIN}ingest:\n  report_burst: 0\n"));
        assert!(m.contains(":8:") && m.contains("ingest.report_burst") && m.contains("at least 1"), "{m}");
        let m = message(&format!("{MIN}ingest:\n  horizon: 1h\n"));
        assert!(m.contains(":8:") && m.contains("horizon"), "{m}");
    }

    #[test]
    fn otlp_section() {
        assert!(parse(MIN).unwrap().otlp.is_none());
        let c = parse(&format!("{MIN}otlp:\n  endpoint: http://127.0.0.1:4318\n")).unwrap();
        let o = c.otlp.unwrap();
        assert_eq!(o.url.to_string(), "http://127.0.0.1:4318/v1/metrics");
        assert_eq!((o.interval, o.timeout), (DEFAULT_OTLP_INTERVAL, DEFAULT_OTLP_TIMEOUT));
        let src = format!(
            "{MIN}otlp:\n  endpoint: https://otlp.example.net/otlp/v1/metrics/\n  interval: 15s\n  timeout: 2s\n  \
             headers:\n    Authorization: env:KLA_TOKEN\n    x-scope: file:/nonexistent/scope\n"
        );
        let m = message(&src);
        assert!(m.contains(":13:") && m.contains("otlp.headers.x-scope") && m.contains("cannot read"), "{m}");
        let o = parse(&src.replace("    x-scope: file:/nonexistent/scope\n", "")).unwrap().otlp.unwrap();
        assert_eq!(o.url.to_string(), "https://otlp.example.net/otlp/v1/metrics");
        assert_eq!((o.interval, o.timeout), (Duration::from_secs(15), Duration::from_secs(2)));
        assert_eq!(o.headers[0].0.as_str(), "authorization");
        assert!(o.headers[0].1.matches("kla-secret-0123456789"));
        assert!(!format!("{o:?}").contains("kla-secret"), "{o:?}");
    }

    #[test]
    fn otlp_errors_are_located_and_keep_secrets() {
        let m = message(&format!("{MIN}otlp:\n  endpoint: ftp://x\n"));
        assert!(m.contains(":8:") && m.contains("otlp.endpoint"), "{m}");
        // An unknown key is refused (serde names it).
        let m = message(&format!("{MIN}otlp:\n  endpoint: http://127.0.0.1:4318\n  intervall: 5s\n"));
        assert!(m.contains(":9:") && m.contains("intervall"), "{m}");
        let base = format!("{MIN}slo:\n  evaluation_interval: 5s\notlp:\n  endpoint: http://127.0.0.1:4318\n");
        let m = message(&format!("{base}  interval: 5s\n  timeout: 6s\n"));
        assert!(m.contains(":12:") && m.contains("otlp.timeout"), "{m}");
        let m = message(&format!("{base}  interval: never\n"));
        assert!(m.contains(":11:") && m.contains("otlp.interval"), "{m}");
        let m = message(&format!("{base}  headers:\n    api-key: hunter2hunter2\n"));
        assert!(m.contains(":12:") && m.contains("by reference") && !m.contains("hunter2"), "{m}");
        let m = message(&format!("{base}  headers:\n    api-key: env:NOPE\n"));
        assert!(m.contains("NOPE") && m.contains("not set"), "{m}");
        let m = message(&format!("{base}  headers:\n    bad header: env:KLA_TOKEN\n"));
        assert!(m.contains("header name"), "{m}");
        let m = message(&format!("{MIN}otlp:\n  endpoint: https://user:pa55word@otlp.example.net\n"));
        assert!(m.contains(":8:") && m.contains("headers") && !m.contains("pa55word"), "{m}");
        // Keys only over https, or to loopback.
        let remote = format!("{MIN}otlp:\n  endpoint: http://collector.example.net:4318\n");
        assert!(parse(&remote).is_ok());
        let m = message(&format!("{remote}  headers:\n    api-key: env:KLA_TOKEN\n"));
        assert!(m.contains(":8:") && m.contains("https") && !m.contains("kla-secret"), "{m}");
    }

    #[test]
    fn connections_section() {
        assert_eq!(parse(MIN).unwrap().connections, httpserve::Limits::default());
        let src = format!(
            "{MIN}connections:\n  header_read_timeout: 300ms\n  max_connections_per_peer: 8\n  body_min_rate: 2KiB\n  \
             h2_keep_alive_interval: off\n  h2_linger_bytes: 1MiB\n"
        );
        let c = parse(&src).unwrap().connections;
        assert_eq!(c.header_read_timeout, Duration::from_millis(300));
        assert_eq!((c.max_connections_per_peer, c.body_min_rate), (8, 2048));
        assert_eq!((c.h2_keep_alive_interval, c.h2_linger_bytes), (None, 1 << 20));
        assert_eq!(c.idle_timeout, httpserve::DEFAULT.idle_timeout);
        let m = message(&format!("{MIN}connections:\n  max_connections: 10\n  max_connections_per_peer: 20\n"));
        assert!(m.contains(":9:") && m.contains("connections.max_connections_per_peer"), "{m}");
        let m = message(&format!("{MIN}connections:\n  idle_timeout: soon\n"));
        assert!(m.contains(":8:") && m.contains("connections.idle_timeout"), "{m}");
        let m = message(&format!("{MIN}connections:\n  idle_timeout: 0s\n"));
        assert!(m.contains(":8:") && m.contains("above zero"), "{m}");
        let m = message(&format!("{MIN}connections:\n  idle_timout: 5s\n"));
        assert!(m.contains(":8:") && m.contains("idle_timout"), "{m}");
    }

    #[test]
    fn replica_is_label_safe_or_read_from_the_environment() {
        assert!(parse(MIN).unwrap().replica.is_none());
        assert_eq!(parse(&format!("{MIN}replica: aggregator-0\n")).unwrap().replica.as_deref(), Some("aggregator-0"));
        let env = |n: &str| match n {
            "POD_NAME" => Some("aggregator-1".to_owned()),
            "BAD_POD" => Some("Aggregator 1".to_owned()),
            other => super::tests::env(other),
        };
        let p = |src: &str| Config::parse(src, Path::new("/etc/agg/aggregator.yaml"), &env);
        assert_eq!(p(&format!("{MIN}replica: env:POD_NAME\n")).unwrap().replica.as_deref(), Some("aggregator-1"));
        let m = p(&format!("{MIN}replica: env:BAD_POD\n")).unwrap_err().to_string();
        assert!(
            m.starts_with("/etc/agg/aggregator.yaml:7:") && m.contains("replica:") && m.contains("lower-case"),
            "{m}"
        );
        let m = p(&format!("{MIN}replica: env:NO_SUCH\n")).unwrap_err().to_string();
        assert!(m.contains(":7:") && m.contains("NO_SUCH") && m.contains("not set"), "{m}");
        let m = message(&format!("{MIN}replica: agg.0\n"));
        assert!(m.contains(":7:10: replica:"), "{m}");
    }

    #[test]
    fn alertmanager_takes_one_url_or_a_cluster() {
        let c = parse(&format!("{MIN}alertmanager:\n  url: http://127.0.0.1:9093/\n")).unwrap();
        assert_eq!(c.alertmanager.unwrap().urls, ["http://127.0.0.1:9093"]);
        let c = parse(&format!(
            "{MIN}alertmanager:\n  urls: [http://am-0:9093, http://am-1:9093, http://am-2:9093]\n  resend_interval: 30s\n"
        ))
        .unwrap();
        let a = c.alertmanager.unwrap();
        assert_eq!(a.urls.len(), 3);
        assert_eq!(a.resend_interval, Duration::from_secs(30));
        let m = message(&format!("{MIN}alertmanager:\n  url: http://a:9093\n  urls: [http://b:9093]\n"));
        assert!(m.contains("alertmanager.urls") && m.contains("not both"), "{m}");
        let m = message(&format!("{MIN}alertmanager:\n  urls: []\n"));
        assert!(m.contains(":8:") && m.contains("at least one"), "{m}");
        let m = message(&format!("{MIN}alertmanager:\n  urls: [http://a:9093, ftp://b]\n"));
        assert!(m.contains("alertmanager.urls[1]") && m.contains("ftp://b"), "{m}");
        let m = message(&format!("{MIN}alertmanager:\n  urls: [http://a:9093, http://a:9093/]\n"));
        assert!(m.contains("alertmanager.urls[1]") && m.contains("twice"), "{m}");
    }

    const RW: &str = "remote_write:
  - name: mimir
    url: https://mimir.example.invalid/api/v1/push
    interval: 30s
    timeout: 5s
    headers: {X-Scope-OrgID: env:KLA_TOKEN}
    basic_auth: {username: savanna, password: env:DAR_TOKEN}
    external_labels: {cluster: ea-prod}
    replica_label: __replica__
    queue_capacity: 16
  - url: http://127.0.0.1:8428/api/v1/write
";

    #[test]
    fn remote_write_section() {
        assert!(parse(MIN).unwrap().remote_write.is_empty());
        let c = parse(&format!("{MIN}replica: aggregator-0\n{RW}")).unwrap();
        let [m, v] = c.remote_write.as_slice() else { panic!("two receivers") };
        assert_eq!((m.name.as_str(), v.name.as_str()), ("mimir", "remote-1"));
        assert_eq!(m.url.to_string(), "https://mimir.example.invalid/api/v1/push");
        assert_eq!((m.interval, m.timeout, m.queue_capacity), (Duration::from_secs(30), Duration::from_secs(5), 16));
        assert_eq!((v.interval, v.timeout, v.queue_capacity), (Duration::from_secs(15), Duration::from_secs(10), 64));
        assert_eq!((m.replica_label.as_str(), v.replica_label.as_str()), ("__replica__", "replica"));
        assert_eq!(m.external_labels, [("cluster".to_owned(), "ea-prod".to_owned())]);
        assert_eq!(m.headers[0].0.as_str(), "x-scope-orgid");
        assert!(
            matches!(&m.auth, Some(RemoteAuth::Basic { username, password }) if username == "savanna" && password.matches("dar-secret-0123456789"))
        );
        assert!(!format!("{m:?}").contains("secret-0123456789"), "{m:?}");
    }

    #[test]
    fn remote_write_errors_are_located_and_keep_secrets() {
        let one = format!("{MIN}remote_write:\n  - url: https://m.example.invalid/api/v1/push\n");
        let m = message(&format!(
            "{one}    bearer_token: env:KLA_TOKEN\n    basic_auth: {{username: u, password: env:DAR_TOKEN}}\n"
        ));
        assert!(m.contains("remote_write[0].bearer_token") && m.contains("not both") && !m.contains("secret"), "{m}");
        let m = message(&format!("{one}    bearer_token: hunter2hunter2\n"));
        assert!(m.contains(":9:") && m.contains("by reference") && !m.contains("hunter2"), "{m}");
        let m = message(&format!("{one}    name: Mimir\n"));
        assert!(m.contains("remote_write[0].name") && m.contains("lower-case"), "{m}");
        let m = message(&format!("{one}  - name: remote-0\n    url: https://n.example.invalid/push\n"));
        assert!(m.contains("remote_write[1].name") && m.contains("unique"), "{m}");
        let m = message(&format!("{one}  - url: https://m.example.invalid/api/v1/push\n"));
        assert!(m.contains("remote_write[1].url") && m.contains("same URL"), "{m}");
        let m = message(&format!("{one}    external_labels: {{__x: y}}\n"));
        assert!(m.contains("remote_write[0].external_labels.__x") && m.contains("reserved"), "{m}");
        let m = message(&format!("{one}    external_labels: {{bad-name: y}}\n"));
        assert!(m.contains("external_labels.bad-name") && m.contains("label name"), "{m}");
        let m = message(&format!("{one}    external_labels: {{cluster: a}}\n    replica_label: cluster\n"));
        assert!(m.contains("remote_write[0].replica_label") && m.contains("already used"), "{m}");
        let m = message(&format!("{one}    queue_capacity: 0\n"));
        assert!(m.contains(":9:") && m.contains("queue_capacity"), "{m}");
        let m = message(&format!(
            "{MIN}remote_write:\n  - url: http://m.example.invalid/push\n    bearer_token: env:KLA_TOKEN\n"
        ));
        assert!(m.contains("remote_write[0].url") && m.contains("https") && !m.contains("secret"), "{m}");
        let m = message(&format!("{MIN}remote_write:\n  - url: https://user:pa55@m.example.invalid/push\n"));
        assert!(m.contains("remote_write[0].url") && !m.contains("pa55"), "{m}");
        let m = message(&format!("{one}    intervall: 5s\n"));
        assert!(m.contains(":9:") && m.contains("intervall"), "{m}");
    }

    #[test]
    fn token_debug_is_redacted() {
        let t = Token::new("very-secret-token-123");
        assert_eq!(format!("{t:?}"), "***");
        assert!(t.matches("very-secret-token-123"));
        assert!(!t.matches("very-secret-token-124"));
        assert!(!t.matches("very-secret-token-12"));
    }
}
