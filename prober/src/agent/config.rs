//! The edge agent's configuration file (`prober run --config edge.yaml`).
//!
//! Loading checks everything before the agent starts: identities are valid report labels, the
//! aggregator URL parses, the token is a reference (`env:NAME` or `file:PATH`) that resolves, every
//! journey file loads (its own errors keep its own `file:line`), profiles exist, and each journey's
//! timeout is below its interval. Errors name the config file, the line and the field.
//! Relative paths (journey files, outbox dir, CA file, token file) are relative to the config file.
//! See `prober/examples/edge.yaml` for a commented example.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use netem::Profile;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use scenarios::journey::{Dur, Journey, LoadError, Secret, SecretRef};
use serde::{Deserialize, Deserializer, de};

/// Default reporting interval (DESIGN.md §4).
pub const DEFAULT_REPORTING_INTERVAL: Duration = Duration::from_secs(15);
/// Default address of `/metrics`, `/healthz` and `/readyz`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
/// Default outbox bounds: 64 MiB and one day.
pub const DEFAULT_OUTBOX_MAX_BYTES: u64 = 64 * 1024 * 1024;
pub const DEFAULT_OUTBOX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Rejected reports kept for inspection (the oldest go first).
pub const DEFAULT_MAX_REJECTED: usize = 100;
/// The shortest interval anything may be scheduled on (tests use short ones; production 15 s+).
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// A config that cannot be used. Displays as `file:line: field: message`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the config file: {source}")]
    Read { file: String, source: std::io::Error },
    /// `line` is 1-based; 0 when no single line is to blame.
    #[error("{file}:{line}: {field}: {message}")]
    Invalid { file: String, line: usize, field: String, message: String },
    /// A journey file listed in the config is bad: its own `file:line` first.
    #[error("{source} (listed as {field} at {file}:{line})")]
    Journey { file: String, line: usize, field: String, source: LoadError },
}

impl ConfigError {
    /// The line the error points at in the config file.
    pub fn line(&self) -> usize {
        match self {
            ConfigError::Read { .. } => 0,
            ConfigError::Invalid { line, .. } | ConfigError::Journey { line, .. } => *line,
        }
    }
}

/// A validated edge configuration.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// The file it came from.
    pub source: PathBuf,
    pub prober: Identity,
    pub aggregator: AggregatorConfig,
    pub reporting_interval: Duration,
    pub concurrency: usize,
    /// Edge-wide network profile name, if set.
    pub profile: Option<String>,
    pub journeys: Vec<JourneyConfig>,
    pub outbox: OutboxConfig,
    pub listen: SocketAddr,
    pub seed: u64,
    /// Bounds on clients of the `/metrics` and Daraja callback listeners (`connections:`);
    /// defaults in [`httpserve::DEFAULT`].
    pub connections: httpserve::Limits,
}

/// Who this prober is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub region: String,
    pub labels: BTreeMap<String, String>,
}

/// Where reports go.
#[derive(Clone)]
pub struct AggregatorConfig {
    /// Base URL, e.g. `https://aggregator.example:7800` (reports go to `{url}/api/v1/reports`).
    pub url: http::Uri,
    /// Bearer token (never printed: `Debug` shows `***`).
    pub token: Secret,
    /// CA certificates to trust besides the Mozilla roots (from `ca_file`).
    pub extra_roots: Vec<CertificateDer<'static>>,
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for AggregatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregatorConfig")
            .field("url", &self.url)
            .field("token", &self.token)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl PartialEq for AggregatorConfig {
    fn eq(&self, o: &Self) -> bool {
        self.url == o.url && self.token == o.token && self.ca_file == o.ca_file
    }
}

/// One scheduled journey.
#[derive(Debug, Clone)]
pub struct JourneyConfig {
    /// The journey's name (from its file).
    pub name: String,
    pub file: PathBuf,
    /// Loaded, with `variables:` overrides applied and its limit cut to `timeout`.
    pub journey: Arc<Journey>,
    pub interval: Duration,
    pub timeout: Duration,
    pub profile: Profile,
    /// Start offset within the interval; `None` spreads journeys evenly (see `schedule`).
    pub offset: Option<Duration>,
}

/// The durable outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub max_age: Duration,
    pub max_rejected: usize,
    /// Keep acknowledged reports in `acked/` instead of deleting them (unbounded: for tests and
    /// audits, not for production edges).
    pub keep_acked: bool,
}

// === file form ===

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EdgeFile {
    prober: ProberFile,
    aggregator: AggregatorFile,
    /// How often a report is closed and sent (default 15s).
    reporting_interval: Option<Span>,
    /// Most journeys running at once (default: the number of journeys).
    concurrency: Option<usize>,
    /// Network profile for every journey that does not name its own.
    profile: Option<String>,
    journeys: Vec<JourneyFile>,
    outbox: OutboxFile,
    /// Address of `/metrics`, `/healthz`, `/readyz` (default 127.0.0.1:9464).
    listen: Option<String>,
    /// Seed for offsets, jitter and per-run seeds (default: derived from the prober id).
    seed: Option<u64>,
    /// Bounds on slow, idle and hostile clients of the agent's listeners.
    connections: Option<ConnectionsFile>,
}

/// The `connections:` section: every key optional, defaults as in httpserve's README.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionsFile {
    /// Default 10s: a connection's first request head, and every HTTP/1.1 head.
    header_read_timeout: Option<Span>,
    /// Default 90s.
    idle_timeout: Option<Span>,
    /// Default 10s.
    tls_handshake_timeout: Option<Span>,
    /// Bytes per second a request body keeps up after `body_rate_grace` (default 1KiB).
    body_min_rate: Option<Bytes>,
    /// Default 10s.
    body_rate_grace: Option<Span>,
    /// Default 4096.
    max_connections: Option<usize>,
    /// Default 64.
    max_connections_per_peer: Option<usize>,
    /// Default 100.
    h2_max_concurrent_streams: Option<u32>,
    /// Default 16KiB.
    h2_max_header_list_size: Option<Bytes>,
    /// Default 30s; `off` sends no PINGs.
    h2_keep_alive_interval: Option<SpanOrOff>,
    /// Default 20s.
    h2_keep_alive_timeout: Option<Span>,
    /// Default 20.
    h2_max_pending_accept_reset_streams: Option<usize>,
    /// Default 1024.
    h2_max_local_error_reset_streams: Option<usize>,
    /// Default 10s.
    h2_linger_time: Option<Span>,
    /// Default 64MiB.
    h2_linger_bytes: Option<Bytes>,
}

/// A duration, or `off`.
#[derive(Debug, Clone, Copy)]
struct SpanOrOff(Option<Duration>);

impl<'de> Deserialize<'de> for SpanOrOff {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SpanOrOff, D::Error> {
        let v = serde_yaml_ng::Value::deserialize(d)?;
        if v.as_str().is_some_and(|s| s.trim() == "off") {
            return Ok(SpanOrOff(None));
        }
        Span::deserialize(v).map(|s| SpanOrOff(Some(s.0))).map_err(de::Error::custom)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProberFile {
    id: String,
    region: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregatorFile {
    url: String,
    /// `env:NAME` or `file:PATH`, never the token itself.
    token: String,
    ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JourneyFile {
    file: PathBuf,
    interval: Span,
    timeout: Option<Span>,
    profile: Option<String>,
    offset: Option<Span>,
    /// Overrides of the journey's variables (names must exist in the journey).
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboxFile {
    dir: PathBuf,
    max_bytes: Option<Bytes>,
    max_age: Option<Span>,
    max_rejected: Option<usize>,
    /// Archive acknowledged reports in `acked/` (default false; the archive is not bounded).
    #[serde(default)]
    keep_acked: bool,
}

/// A duration: `250ms`, `15s`, `2m`, `1h`, `7d`, or a bare number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span(Duration);

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let v = serde_yaml_ng::Value::deserialize(d)?;
        let s = match &v {
            serde_yaml_ng::Value::String(s) => s.clone(),
            serde_yaml_ng::Value::Number(n) => n.to_string(),
            _ => return Err(de::Error::custom("expected a duration such as 250ms, 15s, 2m or 7d")),
        };
        parse_span(&s).map(Span).map_err(de::Error::custom)
    }
}

fn parse_span(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Some(days) = t.strip_suffix('d') {
        return match days.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && (0.0..=365.0).contains(&v) => Ok(Duration::from_secs_f64(v * 86_400.0)),
            _ => Err(format!("`{t}` is not a number of days between 0 and 365")),
        };
    }
    Dur::parse(t).map(|d| d.0)
}

/// A size: a number of bytes, or `512KiB`, `64MiB`, `1GiB` (also kB/MB/GB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bytes(u64);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let v = serde_yaml_ng::Value::deserialize(d)?;
        let s = match &v {
            serde_yaml_ng::Value::String(s) => s.clone(),
            serde_yaml_ng::Value::Number(n) => n.to_string(),
            _ => return Err(de::Error::custom("expected a size such as 65536, 512KiB or 64MiB")),
        };
        parse_bytes(&s).map(Bytes).map_err(de::Error::custom)
    }
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{t}` is not a size (write e.g. 65536, 512KiB, 64MiB)"))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        other => return Err(format!("`{t}`: unknown unit `{other}` (use B, KiB, MiB, GiB, kB, MB or GB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("`{t}` is too large"))
}

// === loading ===

/// Reads and validates an edge config.
pub fn load(path: &Path) -> Result<EdgeConfig, ConfigError> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: file.clone(), source })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse(&src, &file, &base, path)
}

/// Parses `src` (named `file` in errors); relative paths are anchored at `base`.
pub fn parse(src: &str, file: &str, base: &Path, source: &Path) -> Result<EdgeConfig, ConfigError> {
    let doc: EdgeFile = serde_yaml_ng::from_str(src).map_err(|e| yaml_error(file, &e))?;
    let invalid = |path: &[Seg<'_>], message: String| ConfigError::Invalid {
        file: file.to_owned(),
        line: locate(src, path),
        field: field_name(path),
        message,
    };
    use Seg::{Idx, Key};

    // prober
    for (key, v) in [("id", &doc.prober.id), ("region", &doc.prober.region)] {
        label(v).map_err(|m| invalid(&[Key("prober"), Key(key)], m))?;
    }
    for (k, v) in &doc.prober.labels {
        label(k).map_err(|m| invalid(&[Key("prober"), Key("labels"), Key(k)], format!("label name: {m}")))?;
        if v.len() > report::MAX_LABEL {
            return Err(invalid(&[Key("prober"), Key("labels"), Key(k)], "value longer than 128 bytes".into()));
        }
    }

    // aggregator
    let agg_at = |k: &'static str| [Key("aggregator"), Key(k)];
    let url: http::Uri = doc
        .aggregator
        .url
        .trim_end_matches('/')
        .parse()
        .map_err(|e| invalid(&agg_at("url"), format!("`{}` is not a URL: {e}", doc.aggregator.url)))?;
    match url.scheme_str() {
        Some("http" | "https") if url.host().is_some() => {}
        _ => {
            return Err(invalid(
                &agg_at("url"),
                format!("`{url}` must be an http:// or https:// URL with a host, e.g. https://aggregator:7800"),
            ));
        }
    }
    if url.authority().is_some_and(|a| a.as_str().contains('@')) {
        // Never echo it: the user part may hold a password.
        return Err(invalid(&agg_at("url"), "credentials do not belong in the URL: use `token:`".into()));
    }
    if url.query().is_some() {
        return Err(invalid(&agg_at("url"), "give the base URL without a query".into()));
    }
    let token_ref = SecretRef::parse(&doc.aggregator.token).map_err(|m| invalid(&agg_at("token"), m))?;
    let token = token_ref.resolve(base).map_err(|m| invalid(&agg_at("token"), m))?;
    if token.expose().is_empty() {
        return Err(invalid(&agg_at("token"), "the token is empty".into()));
    }
    if token.expose().chars().any(|c| c.is_control() || c == ' ') {
        return Err(invalid(&agg_at("token"), "the token contains spaces or control characters".into()));
    }
    let ca_file = doc.aggregator.ca_file.as_ref().map(|p| base.join(p));
    let mut extra_roots = Vec::new();
    if let Some(p) = &ca_file {
        let certs = CertificateDer::pem_file_iter(p).and_then(|it| it.collect::<Result<Vec<_>, _>>()).map_err(|e| {
            invalid(&agg_at("ca_file"), format!("cannot read PEM certificates from `{}`: {e}", p.display()))
        })?;
        if certs.is_empty() {
            return Err(invalid(&agg_at("ca_file"), format!("`{}` holds no PEM certificate", p.display())));
        }
        extra_roots = certs;
    }

    // intervals
    let reporting_interval = doc.reporting_interval.map_or(DEFAULT_REPORTING_INTERVAL, |s| s.0);
    if reporting_interval < MIN_INTERVAL || reporting_interval.as_millis() as i64 > report::MAX_INTERVAL_MS {
        return Err(invalid(&[Key("reporting_interval")], "must be between 100ms and 1h (15s is usual)".into()));
    }
    if !reporting_interval.subsec_nanos().is_multiple_of(1_000_000) {
        return Err(invalid(&[Key("reporting_interval")], "must be a whole number of milliseconds".into()));
    }

    // profiles
    let edge_profile = match &doc.profile {
        Some(name) => Some(netem::profile::resolve(name, &[]).map_err(|e| invalid(&[Key("profile")], e.to_string()))?),
        None => None,
    };

    // journeys
    if doc.journeys.is_empty() {
        return Err(invalid(&[Key("journeys")], "list at least one journey (file, interval)".into()));
    }
    let mut journeys = Vec::with_capacity(doc.journeys.len());
    let mut seen = BTreeSet::new();
    for (i, j) in doc.journeys.iter().enumerate() {
        let at = |k: &'static str| [Key("journeys"), Idx(i), Key(k)];
        let path = base.join(&j.file);
        let mut journey = scenarios::load_file(&path).map_err(|source| ConfigError::Journey {
            file: file.to_owned(),
            line: locate(src, &at("file")),
            field: field_name(&at("file")),
            source,
        })?;
        check_names(&journey).map_err(|m| invalid(&at("file"), m))?;
        for (k, v) in &j.variables {
            if !journey.variables.contains_key(k) {
                let known: Vec<&str> = journey.variables.keys().map(String::as_str).collect();
                return Err(invalid(
                    &[Key("journeys"), Idx(i), Key("variables"), Key(k)],
                    format!("journey `{}` has no variable `{k}` (it has: {})", journey.name, known.join(", ")),
                ));
            }
            journey.variables.insert(k.clone(), v.clone());
        }
        let interval = j.interval.0;
        if interval < MIN_INTERVAL {
            return Err(invalid(&at("interval"), "must be at least 100ms".into()));
        }
        let timeout = match j.timeout {
            Some(t) if t.0 >= interval => {
                return Err(invalid(
                    &at("timeout"),
                    format!(
                        "{} is not below the interval {}: a run must end before the next one starts",
                        human(t.0),
                        human(interval)
                    ),
                ));
            }
            Some(t) if t.0.is_zero() => return Err(invalid(&at("timeout"), "must be above zero".into())),
            Some(t) => t.0,
            None if journey.timeout >= interval => {
                return Err(invalid(
                    &at("interval"),
                    format!(
                        "the journey's own limit {} is not below the interval {}: set `timeout:` below the interval",
                        human(journey.timeout),
                        human(interval)
                    ),
                ));
            }
            None => journey.timeout,
        };
        journey.timeout = journey.timeout.min(timeout);
        let profile = match (&j.profile, &edge_profile) {
            (Some(name), _) => {
                netem::profile::resolve(name, &[]).map_err(|e| invalid(&at("profile"), e.to_string()))?
            }
            (None, Some(p)) => p.clone(),
            (None, None) => {
                let name = journey.profile.as_deref().unwrap_or("loopback");
                netem::profile::resolve(name, &[]).map_err(|e| invalid(&at("file"), format!("journey profile: {e}")))?
            }
        };
        label(&profile.name).map_err(|m| invalid(&at("profile"), format!("profile name: {m}")))?;
        let offset = match j.offset {
            Some(o) if o.0 >= interval => {
                return Err(invalid(&at("offset"), format!("must be below the interval {}", human(interval))));
            }
            o => o.map(|o| o.0),
        };
        if !seen.insert((journey.name.clone(), profile.name.clone())) {
            return Err(invalid(
                &at("file"),
                format!("journey `{}` on profile `{}` is listed twice", journey.name, profile.name),
            ));
        }
        journeys.push(JourneyConfig {
            name: journey.name.clone(),
            file: path,
            journey: Arc::new(journey),
            interval,
            timeout,
            profile,
            offset,
        });
    }

    let concurrency = doc.concurrency.unwrap_or(journeys.len());
    if concurrency == 0 || concurrency > 1024 {
        return Err(invalid(&[Key("concurrency")], "must be between 1 and 1024".into()));
    }

    // outbox
    let max_bytes = doc.outbox.max_bytes.map_or(DEFAULT_OUTBOX_MAX_BYTES, |b| b.0);
    if max_bytes < 64 * 1024 {
        return Err(invalid(&[Key("outbox"), Key("max_bytes")], "must be at least 64KiB".into()));
    }
    let max_age = doc.outbox.max_age.map_or(DEFAULT_OUTBOX_MAX_AGE, |s| s.0);
    if max_age < reporting_interval {
        return Err(invalid(&[Key("outbox"), Key("max_age")], "must be at least one reporting interval".into()));
    }
    let max_rejected = doc.outbox.max_rejected.unwrap_or(DEFAULT_MAX_REJECTED);
    let outbox = OutboxConfig {
        dir: base.join(&doc.outbox.dir),
        max_bytes,
        max_age,
        max_rejected,
        keep_acked: doc.outbox.keep_acked,
    };

    let listen_src = doc.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen: SocketAddr = listen_src
        .parse()
        .map_err(|_| invalid(&[Key("listen")], format!("`{listen_src}` is not an address such as 127.0.0.1:9464")))?;

    let connections =
        connections(doc.connections).map_err(|(field, message)| invalid(&[Key("connections"), Key(field)], message))?;

    let seed = doc.seed.unwrap_or_else(|| fnv1a(doc.prober.id.as_bytes()));
    Ok(EdgeConfig {
        source: source.to_path_buf(),
        prober: Identity { id: doc.prober.id, region: doc.prober.region, labels: doc.prober.labels },
        aggregator: AggregatorConfig { url, token, extra_roots, ca_file },
        reporting_interval,
        concurrency,
        profile: doc.profile,
        journeys,
        outbox,
        listen,
        seed,
        connections,
    })
}

/// The `connections:` section over httpserve's defaults; an error names the field.
fn connections(c: Option<ConnectionsFile>) -> Result<httpserve::Limits, (&'static str, String)> {
    let d = httpserve::DEFAULT;
    let Some(c) = c else { return Ok(d) };
    let span = |v: Option<Span>, default: Duration| v.map_or(default, |s| s.0);
    let limits = httpserve::Limits {
        header_read_timeout: span(c.header_read_timeout, d.header_read_timeout),
        idle_timeout: span(c.idle_timeout, d.idle_timeout),
        tls_handshake_timeout: span(c.tls_handshake_timeout, d.tls_handshake_timeout),
        body_min_rate: c.body_min_rate.map_or(d.body_min_rate, |b| b.0),
        body_rate_grace: span(c.body_rate_grace, d.body_rate_grace),
        max_connections: c.max_connections.unwrap_or(d.max_connections),
        max_connections_per_peer: c.max_connections_per_peer.unwrap_or(d.max_connections_per_peer),
        h2_max_concurrent_streams: c.h2_max_concurrent_streams.unwrap_or(d.h2_max_concurrent_streams),
        h2_max_header_list_size: c
            .h2_max_header_list_size
            .map_or(d.h2_max_header_list_size, |b| b.0.min(u64::from(u32::MAX)) as u32),
        h2_keep_alive_interval: c.h2_keep_alive_interval.map_or(d.h2_keep_alive_interval, |s| s.0),
        h2_keep_alive_timeout: span(c.h2_keep_alive_timeout, d.h2_keep_alive_timeout),
        h2_max_pending_accept_reset_streams: c
            .h2_max_pending_accept_reset_streams
            .unwrap_or(d.h2_max_pending_accept_reset_streams),
        h2_max_local_error_reset_streams: c
            .h2_max_local_error_reset_streams
            .unwrap_or(d.h2_max_local_error_reset_streams),
        h2_linger_time: span(c.h2_linger_time, d.h2_linger_time),
        h2_linger_bytes: c.h2_linger_bytes.map_or(d.h2_linger_bytes, |b| b.0),
    };
    limits.validate().map_err(|e| match e {
        httpserve::Error::InvalidLimit { field, reason } => (field, reason),
        other => ("connections", other.to_string()),
    })?;
    Ok(limits)
}

/// Report identifiers: letters, digits, `-`, `_`, `.`, `:` (what the aggregator accepts).
fn label(v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > report::MAX_LABEL {
        return Err(format!("must be 1 to {} bytes", report::MAX_LABEL));
    }
    if !v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)) {
        return Err(format!("`{}` may use only letters, digits, `-`, `_`, `.`, `:`", v.escape_default()));
    }
    Ok(())
}

/// Journey and step names must be acceptable series names in a report.
fn check_names(j: &Journey) -> Result<(), String> {
    let ok = |v: &str| {
        !v.is_empty() && v.len() <= report::MAX_LABEL && !v.chars().any(|c| c.is_control() || c == '"' || c == '\\')
    };
    if !ok(&j.name) {
        return Err(format!("journey name `{}` cannot be reported: 1–128 bytes, no quotes or backslashes", j.name));
    }
    if let Some(s) = j.steps.iter().find(|s| !ok(&s.name)) {
        return Err(format!("step name `{}` cannot be reported: 1–128 bytes, no quotes or backslashes", s.name));
    }
    Ok(())
}

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

fn human(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 { format!("{ms:.0}ms") } else { format!("{}s", ms / 1000.0) }
}

fn yaml_error(file: &str, e: &serde_yaml_ng::Error) -> ConfigError {
    let line = e.location().map_or(0, |l| l.line());
    let mut message = e.to_string();
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    // serde_yaml_ng prefixes the path (`journeys[1]: unknown field ...`); keep it as the field.
    let (field, message) = match message.split_once(": ") {
        Some((f, m)) if !f.contains(' ') => (f.to_owned(), m.to_owned()),
        _ => ("(document)".to_owned(), message),
    };
    ConfigError::Invalid { file: file.to_owned(), line, field, message }
}

// === finding lines ===

/// One step of a path into the YAML document.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Idx(usize),
}

fn field_name(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Idx(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn indent(l: &str) -> usize {
    l.len() - l.trim_start().len()
}

fn is_content(l: &str) -> bool {
    let t = l.trim_start();
    !t.is_empty() && !t.starts_with('#')
}

/// Column of `key:` on this line (after any `- ` list markers), if the line holds it.
fn key_col(l: &str, key: &str) -> Option<usize> {
    let mut col = indent(l);
    while l[col..].starts_with("- ") {
        col += 2;
        col += indent(&l[col..]);
    }
    let rest = &l[col..];
    let rest = rest
        .strip_prefix(key)
        .or_else(|| rest.strip_prefix('"').and_then(|r| r.strip_prefix(key)).and_then(|r| r.strip_prefix('"')))?;
    rest.trim_start().starts_with(':').then_some(col)
}

/// 1-based line of the value at `path` (indentation-aware), the nearest found parent when the
/// path ends early, 0 when nothing is found.
pub(crate) fn locate(src: &str, path: &[Seg<'_>]) -> usize {
    let lines: Vec<&str> = src.lines().collect();
    let (mut lo, mut hi, mut col): (usize, usize, isize) = (0, lines.len(), -1);
    let mut found = 0;
    for seg in path {
        match *seg {
            Seg::Key(k) => {
                let Some((i, c)) =
                    (lo..hi).find_map(|i| key_col(lines[i], k).filter(|c| *c as isize > col).map(|c| (i, c)))
                else {
                    return found;
                };
                found = i + 1;
                let end = (i + 1..hi)
                    .find(|&j| {
                        let l = lines[j];
                        is_content(l) && (indent(l) < c || (indent(l) == c && !l.trim_start().starts_with('-')))
                    })
                    .unwrap_or(hi);
                (lo, hi, col) = (i + 1, end, c as isize);
            }
            Seg::Idx(n) => {
                let items: Vec<usize> = {
                    let first = (lo..hi).find(|&i| {
                        let l = lines[i];
                        is_content(l) && l.trim_start().starts_with('-') && indent(l) as isize >= col
                    });
                    match first {
                        None => return found,
                        Some(f) => {
                            let d = indent(lines[f]);
                            (f..hi)
                                .filter(|&i| indent(lines[i]) == d && lines[i].trim_start().starts_with('-'))
                                .collect()
                        }
                    }
                };
                let Some(&start) = items.get(n) else { return found };
                found = start + 1;
                let end = items.get(n + 1).copied().unwrap_or(hi);
                (lo, hi, col) = (start, end, indent(lines[start]) as isize);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
prober:
  id: nbo-1
  region: nairobi
aggregator:
  url: http://127.0.0.1:7800
  token: env:X
journeys:
  - file: a.yaml
    interval: 10s
  - file: b.yaml
    interval: 10s
    timeout: 20s
outbox:
  dir: /tmp/x
";

    #[test]
    fn locate_walks_keys_and_items() {
        use Seg::*;
        assert_eq!(locate(DOC, &[Key("prober"), Key("region")]), 3);
        assert_eq!(locate(DOC, &[Key("aggregator"), Key("token")]), 6);
        assert_eq!(locate(DOC, &[Key("journeys"), Idx(0), Key("file")]), 8);
        assert_eq!(locate(DOC, &[Key("journeys"), Idx(1), Key("interval")]), 11);
        assert_eq!(locate(DOC, &[Key("journeys"), Idx(1), Key("timeout")]), 12);
        // Missing key: the nearest parent.
        assert_eq!(locate(DOC, &[Key("journeys"), Idx(0), Key("timeout")]), 8);
        assert_eq!(locate(DOC, &[Key("outbox"), Key("dir")]), 14);
        assert_eq!(locate(DOC, &[Key("nothing")]), 0);
    }

    #[test]
    fn spans_and_sizes_parse() {
        assert_eq!(parse_span("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_span("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse_span("15").unwrap(), Duration::from_secs(15));
        assert!(parse_span("2 fortnights").is_err());
        assert_eq!(parse_bytes("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1000").unwrap(), 1000);
        assert!(parse_bytes("5 parsecs").is_err());
    }

    #[test]
    fn labels_follow_the_report_rules() {
        assert!(label("nbo-1").is_ok());
        assert!(label("nairobi west").is_err());
        assert!(label("").is_err());
    }
}
