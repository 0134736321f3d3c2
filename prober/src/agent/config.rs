//! The edge agent's configuration file (`prober run --config edge.yaml`).
//!
//! Loading checks everything before the agent starts: identities are valid report labels, every
//! destination's URL parses (`aggregators:`, a list of up to [`MAX_DESTINATIONS`], or the older
//! single `aggregator:`), its token is a reference (`env:NAME` or `file:PATH`) that resolves, every
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

use conf::{Secret, SecretRef, Source};

use super::fnv::fnv1a;
use netem::Profile;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use scenarios::journey::{Journey, LoadError};
use serde::Deserialize;

/// Default reporting interval (docs/report-format.md §1).
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
/// Most aggregators one edge reports to (an HA pair is two).
pub const MAX_DESTINATIONS: usize = 8;
/// Longest destination name (it is a metric label and a file name in the outbox).
pub const MAX_DESTINATION_NAME: usize = 64;

/// A config that cannot be used. Displays as `file:line:column: field: message`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file itself: unreadable, or wrong at a field.
    #[error(transparent)]
    File(#[from] conf::Error),
    /// A journey file listed in the config is bad: its own `file:line` first.
    #[error("{source} (listed as {field} at {file}:{line})")]
    Journey {
        file: String,
        line: usize,
        field: String,
        #[source]
        source: LoadError,
    },
}

impl ConfigError {
    /// The line the error points at in the config file.
    pub fn line(&self) -> usize {
        match self {
            ConfigError::File(e) => e.line(),
            ConfigError::Journey { line, .. } => *line,
        }
    }
}

/// Durations in the edge config: up to a year.
type Span = conf::Dur<0, 31_536_000_000>;

/// A validated edge configuration.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// The file it came from.
    pub source: PathBuf,
    pub prober: Identity,
    /// Where every report goes: one or more aggregators, names unique, in the file's order.
    pub destinations: Vec<Destination>,
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

/// One aggregator every report goes to (`aggregators[i]`, or the single `aggregator:`).
#[derive(Clone)]
pub struct Destination {
    /// Label-safe (`[a-z0-9_-]`), unique: the `destination` label and the outbox cursor's name.
    pub name: String,
    /// Base URL, e.g. `https://aggregator.example:7800` (reports go to `{url}/api/v1/reports`).
    pub url: http::Uri,
    /// Bearer token (never printed: `Debug` shows `***`).
    pub token: Secret,
    /// CA certificates to trust besides the Mozilla roots (from `ca_file`).
    pub extra_roots: Vec<CertificateDer<'static>>,
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("token", &self.token)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl PartialEq for Destination {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.url == o.url && self.token == o.token && self.ca_file == o.ca_file
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
    /// The single-destination form (still valid); not together with `aggregators`.
    aggregator: Option<AggregatorFile>,
    /// One or more destinations.
    aggregators: Option<Vec<AggregatorFile>>,
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
    connections: Option<httpserve::LimitsFile>,
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
    /// Label-safe; default: `host:port` of the URL made label-safe.
    name: Option<String>,
    url: String,
    /// `env:NAME` or `file:PATH`, never the token itself.
    token: SecretRef,
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
    max_bytes: Option<conf::Size>,
    max_age: Option<Span>,
    max_rejected: Option<usize>,
    /// Archive acknowledged reports in `acked/` (default false; the archive is not bounded).
    #[serde(default)]
    keep_acked: bool,
}

// === loading ===

/// Reads and validates an edge config.
pub fn load(path: &Path) -> Result<EdgeConfig, ConfigError> {
    let src = Source::read(path)?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse_source(&src, &base, path)
}

/// Parses `src` (named `file` in errors); relative paths are anchored at `base`.
pub fn parse(src: &str, file: &str, base: &Path, source: &Path) -> Result<EdgeConfig, ConfigError> {
    parse_source(&Source::new(file, src), base, source)
}

fn parse_source(src: &Source, base: &Path, source: &Path) -> Result<EdgeConfig, ConfigError> {
    let doc: EdgeFile = src.parse()?;
    let cx = Cx { src, base };
    check_identity(&cx, &doc.prober)?;
    let destinations = destinations(&cx, doc.aggregator.as_ref(), doc.aggregators.as_deref())?;

    // intervals
    let reporting_interval = doc.reporting_interval.map_or(DEFAULT_REPORTING_INTERVAL, Span::get);
    if reporting_interval < MIN_INTERVAL || reporting_interval.as_millis() as i64 > report::MAX_INTERVAL_MS {
        return Err(cx.err("reporting_interval", "must be between 100ms and 1h (15s is usual)".into()));
    }
    if !reporting_interval.subsec_nanos().is_multiple_of(1_000_000) {
        return Err(cx.err("reporting_interval", "must be a whole number of milliseconds".into()));
    }

    // profiles
    let edge_profile = match &doc.profile {
        Some(name) => Some(netem::profile::resolve(name, &[]).map_err(|e| cx.err("profile", e.to_string()))?),
        None => None,
    };

    // journeys
    if doc.journeys.is_empty() {
        return Err(cx.err("journeys", "list at least one journey (file, interval)".into()));
    }
    let mut journeys = Vec::with_capacity(doc.journeys.len());
    let mut seen = BTreeSet::new();
    for (i, j) in doc.journeys.iter().enumerate() {
        let jc = journey_config(&cx, i, j, edge_profile.as_ref())?;
        if !seen.insert((jc.name.clone(), jc.profile.name.clone())) {
            return Err(cx.err(
                &format!("journeys[{i}].file"),
                format!("journey `{}` on profile `{}` is listed twice", jc.name, jc.profile.name),
            ));
        }
        journeys.push(jc);
    }

    let concurrency = doc.concurrency.unwrap_or(journeys.len());
    if concurrency == 0 || concurrency > 1024 {
        return Err(cx.err("concurrency", "must be between 1 and 1024".into()));
    }
    let outbox = outbox_config(&cx, &doc.outbox, reporting_interval)?;

    let listen_src = doc.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen: SocketAddr = listen_src
        .parse()
        .map_err(|_| cx.err("listen", format!("`{listen_src}` is not an address such as 127.0.0.1:9464")))?;

    let connections = doc.connections.unwrap_or_default().resolve().map_err(|e| match e {
        httpserve::Error::InvalidLimit { field, reason } => cx.err(&format!("connections.{field}"), reason),
        other => cx.err("connections", other.to_string()),
    })?;

    let seed = doc.seed.unwrap_or_else(|| fnv1a(doc.prober.id.as_bytes()));
    Ok(EdgeConfig {
        source: source.to_path_buf(),
        prober: Identity { id: doc.prober.id, region: doc.prober.region, labels: doc.prober.labels },
        destinations,
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

/// The file being read, for errors at a field, and the folder relative paths are anchored at.
struct Cx<'a> {
    src: &'a Source,
    base: &'a Path,
}

impl Cx<'_> {
    fn err(&self, path: &str, message: String) -> ConfigError {
        ConfigError::File(self.src.error(path, message))
    }
}

/// `prober:`: the id, region and labels are report labels.
fn check_identity(cx: &Cx<'_>, p: &ProberFile) -> Result<(), ConfigError> {
    for (key, v) in [("id", &p.id), ("region", &p.region)] {
        report::check_label(v).map_err(|m| cx.err(&format!("prober.{key}"), m))?;
    }
    for (k, v) in &p.labels {
        report::check_label(k).map_err(|m| cx.err(&format!("prober.labels.{k}"), format!("label name: {m}")))?;
        if v.len() > report::MAX_LABEL {
            return Err(cx.err(&format!("prober.labels.{k}"), "value longer than 128 bytes".into()));
        }
    }
    Ok(())
}

/// `aggregators:` (or the single `aggregator:`): at least one, at most [`MAX_DESTINATIONS`],
/// names and URLs unique.
fn destinations(
    cx: &Cx<'_>,
    single: Option<&AggregatorFile>,
    list: Option<&[AggregatorFile]>,
) -> Result<Vec<Destination>, ConfigError> {
    let list: Vec<(String, &AggregatorFile)> = match (single, list) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::File(cx.src.key_error(
                "aggregators",
                "give either `aggregator:` (one destination) or `aggregators:` (a list), not both",
            )));
        }
        (None, None) => {
            return Err(cx.err("", "missing field `aggregators` (or the single `aggregator:`)".into()));
        }
        (Some(a), None) => vec![("aggregator".to_owned(), a)],
        (None, Some([])) => {
            return Err(cx.err("aggregators", "list at least one aggregator (name, url, token)".into()));
        }
        (None, Some(l)) if l.len() > MAX_DESTINATIONS => {
            return Err(cx.err("aggregators", format!("at most {MAX_DESTINATIONS} aggregators, not {}", l.len())));
        }
        (None, Some(l)) => l.iter().enumerate().map(|(i, a)| (format!("aggregators[{i}]"), a)).collect(),
    };
    let mut out: Vec<Destination> = Vec::with_capacity(list.len());
    for (at, a) in list {
        let d = destination(cx, &at, a)?;
        if let Some(other) = out.iter().find(|o| o.name == d.name) {
            let (field, why) = match a.name {
                Some(_) => ("name", String::new()),
                None => ("url", " (set `name:` to tell them apart)".to_owned()),
            };
            return Err(
                cx.err(&format!("{at}.{field}"), format!("destination name `{}` is used twice{why}", other.name))
            );
        }
        if out.iter().any(|o| o.url == d.url) {
            return Err(cx.err(&format!("{at}.url"), format!("`{}` is listed twice", d.url)));
        }
        out.push(d);
    }
    Ok(out)
}

/// `host:port` of `url` (the scheme's port when none is written), label-safe: lower case, every
/// character outside `[a-z0-9_-]` becomes `_`.
pub fn default_destination_name(url: &http::Uri) -> String {
    let port = url.port_u16().unwrap_or(if url.scheme_str() == Some("https") { 443 } else { 80 });
    let host = url.host().unwrap_or("").trim_matches(['[', ']']);
    format!("{host}:{port}")
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect()
}

/// Whether `name` is a destination name: `[a-z0-9_-]`, 1 to [`MAX_DESTINATION_NAME`] bytes.
fn check_destination_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_DESTINATION_NAME {
        return Err(format!("must be 1 to {MAX_DESTINATION_NAME} characters"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')) {
        return Err(format!("`{name}` holds `{c}`: use only a-z, 0-9, - and _ (it becomes a metric label)"));
    }
    Ok(())
}

/// One destination at `at` (`aggregator` or `aggregators[i]`): a base URL without credentials or
/// query, the token, the private CA, the name.
fn destination(cx: &Cx<'_>, at: &str, a: &AggregatorFile) -> Result<Destination, ConfigError> {
    let at = |k: &str| format!("{at}.{k}");
    let url: http::Uri = a
        .url
        .trim_end_matches('/')
        .parse()
        .map_err(|e| cx.err(&at("url"), format!("`{}` is not a URL: {e}", a.url)))?;
    match url.scheme_str() {
        Some("http" | "https") if url.host().is_some() => {}
        _ => {
            return Err(cx.err(
                &at("url"),
                format!("`{url}` must be an http:// or https:// URL with a host, e.g. https://aggregator:7800"),
            ));
        }
    }
    if url.authority().is_some_and(|a| a.as_str().contains('@')) {
        // Never echo it: the user part may hold a password.
        return Err(cx.err(&at("url"), "credentials do not belong in the URL: use `token:`".into()));
    }
    if url.query().is_some() {
        return Err(cx.err(&at("url"), "give the base URL without a query".into()));
    }
    let token = a.token.resolve(cx.base).map_err(|m| cx.err(&at("token"), m))?;
    if token.expose().chars().any(|c| c.is_control() || c == ' ') {
        return Err(cx.err(&at("token"), "the token contains spaces or control characters".into()));
    }
    let ca_file = a.ca_file.as_ref().map(|p| cx.base.join(p));
    let mut extra_roots = Vec::new();
    if let Some(p) = &ca_file {
        let certs = CertificateDer::pem_file_iter(p)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| cx.err(&at("ca_file"), format!("cannot read PEM certificates from `{}`: {e}", p.display())))?;
        if certs.is_empty() {
            return Err(cx.err(&at("ca_file"), format!("`{}` holds no PEM certificate", p.display())));
        }
        extra_roots = certs;
    }
    let name = match &a.name {
        Some(n) => {
            check_destination_name(n).map_err(|m| cx.err(&at("name"), m))?;
            n.clone()
        }
        None => default_destination_name(&url),
    };
    Ok(Destination { name, url, token, extra_roots, ca_file })
}

/// `journeys[i]`: the journey file with its variables, cadence, limit, profile and offset.
fn journey_config(
    cx: &Cx<'_>,
    i: usize,
    j: &JourneyFile,
    edge_profile: Option<&Profile>,
) -> Result<JourneyConfig, ConfigError> {
    let at = |k: &str| format!("journeys[{i}].{k}");
    let path = cx.base.join(&j.file);
    let mut journey = scenarios::load_file(&path).map_err(|source| ConfigError::Journey {
        file: cx.src.file().to_owned(),
        line: cx.src.line_of(&at("file")),
        field: at("file"),
        source,
    })?;
    check_names(&journey).map_err(|m| cx.err(&at("file"), m))?;
    for (k, v) in &j.variables {
        if !journey.variables.contains_key(k) {
            let known: Vec<&str> = journey.variables.keys().map(String::as_str).collect();
            return Err(cx.err(
                &format!("journeys[{i}].variables.{k}"),
                format!("journey `{}` has no variable `{k}` (it has: {})", journey.name, known.join(", ")),
            ));
        }
        journey.variables.insert(k.clone(), v.clone());
    }
    let interval = j.interval.get();
    if interval < MIN_INTERVAL {
        return Err(cx.err(&at("interval"), "must be at least 100ms".into()));
    }
    let timeout = run_limit(cx, i, j, &journey, interval)?;
    journey.timeout = journey.timeout.min(timeout);
    let profile = match (&j.profile, edge_profile) {
        (Some(name), _) => netem::profile::resolve(name, &[]).map_err(|e| cx.err(&at("profile"), e.to_string()))?,
        (None, Some(p)) => p.clone(),
        (None, None) => {
            let name = journey.profile.as_deref().unwrap_or("loopback");
            netem::profile::resolve(name, &[]).map_err(|e| cx.err(&at("file"), format!("journey profile: {e}")))?
        }
    };
    report::check_label(&profile.name).map_err(|m| cx.err(&at("profile"), format!("profile name: {m}")))?;
    let offset = match j.offset {
        Some(o) if o.get() >= interval => {
            return Err(cx.err(&at("offset"), format!("must be below the interval {}", human(interval))));
        }
        o => o.map(Span::get),
    };
    Ok(JourneyConfig {
        name: journey.name.clone(),
        file: path,
        journey: Arc::new(journey),
        interval,
        timeout,
        profile,
        offset,
    })
}

/// A run's limit: `timeout:` or the journey's own, below the interval so runs never overlap.
fn run_limit(
    cx: &Cx<'_>,
    i: usize,
    j: &JourneyFile,
    journey: &Journey,
    interval: Duration,
) -> Result<Duration, ConfigError> {
    let at = |k: &str| format!("journeys[{i}].{k}");
    match j.timeout {
        Some(t) if t.get() >= interval => Err(cx.err(
            &at("timeout"),
            format!(
                "{} is not below the interval {}: a run must end before the next one starts",
                human(t.get()),
                human(interval)
            ),
        )),
        Some(t) if t.get().is_zero() => Err(cx.err(&at("timeout"), "must be above zero".into())),
        Some(t) => Ok(t.get()),
        None if journey.timeout >= interval => Err(cx.err(
            &at("interval"),
            format!(
                "the journey's own limit {} is not below the interval {}: set `timeout:` below the interval",
                human(journey.timeout),
                human(interval)
            ),
        )),
        None => Ok(journey.timeout),
    }
}

/// `outbox:`: where reports wait for the aggregator, and how much of them.
fn outbox_config(cx: &Cx<'_>, o: &OutboxFile, reporting_interval: Duration) -> Result<OutboxConfig, ConfigError> {
    let max_bytes = o.max_bytes.map_or(DEFAULT_OUTBOX_MAX_BYTES, conf::Size::bytes);
    if max_bytes < 64 * 1024 {
        return Err(cx.err("outbox.max_bytes", "must be at least 64KiB".into()));
    }
    let max_age = o.max_age.map_or(DEFAULT_OUTBOX_MAX_AGE, Span::get);
    if max_age < reporting_interval {
        return Err(cx.err("outbox.max_age", "must be at least one reporting interval".into()));
    }
    Ok(OutboxConfig {
        dir: cx.base.join(&o.dir),
        max_bytes,
        max_age,
        max_rejected: o.max_rejected.unwrap_or(DEFAULT_MAX_REJECTED),
        keep_acked: o.keep_acked,
    })
}

/// Journey and step names must be acceptable series names in a report.
fn check_names(j: &Journey) -> Result<(), String> {
    report::check_name(&j.name).map_err(|m| format!("journey name `{}` cannot be reported: {m}", j.name))?;
    for s in &j.steps {
        report::check_name(&s.name).map_err(|m| format!("step name `{}` cannot be reported: {m}", s.name))?;
    }
    Ok(())
}

fn human(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 { format!("{ms:.0}ms") } else { format!("{}s", ms / 1000.0) }
}
