//! Typed config files for tests: the edge (prober) config and the aggregator config, built field
//! by field and written as YAML through serde, so a test never pastes YAML together with
//! `format!`. They describe the file as a person writes it (the loaders in `prober::agent::config`
//! and `aggregator::config` read and check it); only the fields tests use are here, and
//! [`AggregatorConfig::merge_yaml`] adds any other section as YAML.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Serialize, Serializer};
use serde_yaml_ng::{Mapping, Value};

/// A duration written in the config grammar (`600ms`, `2s`, `1m30s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&conf::duration::format(self.0))
    }
}

/// Milliseconds, for the builders' duration arguments.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn write(path: &Path, yaml: String) -> PathBuf {
    std::fs::write(path, yaml).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path.to_path_buf()
}

fn is_false(b: &bool) -> bool {
    !*b
}

// ================================================================ the edge config

/// An edge agent's config (`prober run --config`).
#[derive(Debug, Clone, Serialize)]
pub struct EdgeConfig {
    prober: EdgeIdentity,
    /// The single-destination form; `None` once [`EdgeConfig::aggregators`] gave a list.
    #[serde(skip_serializing_if = "Option::is_none")]
    aggregator: Option<EdgeAggregator>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    aggregators: Vec<EdgeAggregator>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reporting_interval: Option<Span>,
    #[serde(skip_serializing_if = "Option::is_none")]
    concurrency: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    journeys: Vec<EdgeJourney>,
    outbox: Outbox,
}

#[derive(Debug, Clone, Serialize)]
struct EdgeIdentity {
    id: String,
    region: String,
}

#[derive(Debug, Clone, Serialize)]
struct EdgeAggregator {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    url: String,
    token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_file: Option<PathBuf>,
}

/// One scheduled journey of an edge.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeJourney {
    file: PathBuf,
    interval: Span,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<Span>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    variables: BTreeMap<String, String>,
}

/// The outbox section.
#[derive(Debug, Clone, Serialize)]
pub struct Outbox {
    dir: PathBuf,
    #[serde(skip_serializing_if = "is_false")]
    keep_acked: bool,
}

impl EdgeConfig {
    /// Prober `id` in `region`, reporting to `url` with the token reference `token`
    /// (`env:NAME` or `file:PATH`), its outbox in `outbox`, no journeys yet.
    pub fn new(id: &str, region: &str, url: &str, token: &str) -> EdgeConfig {
        EdgeConfig {
            prober: EdgeIdentity { id: id.into(), region: region.into() },
            aggregator: Some(EdgeAggregator { name: None, url: url.into(), token: token.into(), ca_file: None }),
            aggregators: Vec::new(),
            reporting_interval: None,
            concurrency: None,
            profile: None,
            listen: None,
            seed: None,
            journeys: Vec::new(),
            outbox: Outbox { dir: "outbox".into(), keep_acked: false },
        }
    }

    /// The aggregators' certificate authority (PEM), for TLS to a private certificate.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        for a in self.aggregator.iter_mut().chain(self.aggregators.iter_mut()) {
            a.ca_file = Some(path.clone());
        }
        self
    }

    /// Reports to every `(name, url)` of `list` (the `aggregators:` form), each with the token
    /// reference `token`, instead of the single aggregator given to [`EdgeConfig::new`].
    pub fn aggregators(mut self, list: &[(&str, &str)], token: &str) -> Self {
        self.aggregator = None;
        self.aggregators = list
            .iter()
            .map(|(name, url)| EdgeAggregator {
                name: Some((*name).into()),
                url: (*url).into(),
                token: token.into(),
                ca_file: None,
            })
            .collect();
        self
    }

    pub fn reporting_interval(mut self, d: Duration) -> Self {
        self.reporting_interval = Some(Span(d));
        self
    }

    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n);
        self
    }

    /// The network profile of every journey that names none.
    pub fn profile(mut self, name: &str) -> Self {
        self.profile = Some(name.into());
        self
    }

    /// The address of `/metrics` and the health endpoints.
    pub fn listen(mut self, addr: &str) -> Self {
        self.listen = Some(addr.into());
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    pub fn journey(mut self, j: EdgeJourney) -> Self {
        self.journeys.push(j);
        self
    }

    pub fn outbox_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.outbox.dir = dir.into();
        self
    }

    /// Archive acknowledged reports in `acked/`.
    pub fn keep_acked(mut self) -> Self {
        self.outbox.keep_acked = true;
        self
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("an edge config is plain YAML")
    }

    /// Writes the file to `path`; returns `path`.
    pub fn write(&self, path: &Path) -> PathBuf {
        write(path, self.to_yaml())
    }
}

impl EdgeJourney {
    /// The journey in `file`, run every `interval`.
    pub fn new(file: impl Into<PathBuf>, interval: Duration) -> EdgeJourney {
        EdgeJourney {
            file: file.into(),
            interval: Span(interval),
            timeout: None,
            profile: None,
            variables: BTreeMap::new(),
        }
    }

    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(Span(d));
        self
    }

    pub fn profile(mut self, name: &str) -> Self {
        self.profile = Some(name.into());
        self
    }

    /// Overrides the journey's variable `name`.
    pub fn var(mut self, name: &str, value: impl Into<String>) -> Self {
        self.variables.insert(name.into(), value.into());
        self
    }
}

// ================================================================ the aggregator config

/// The aggregator's config (`aggregator serve --config`).
#[derive(Debug, Clone, Serialize)]
pub struct AggregatorConfig {
    listen: String,
    data_dir: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<Tls>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shutdown_grace: Option<Span>,
    #[serde(skip_serializing_if = "Option::is_none")]
    slo: Option<Slo>,
    /// An HA pair member's name (`replica:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    replica: Option<String>,
    probers: Vec<ProberEntry>,
    /// Further top-level sections, as YAML.
    #[serde(skip)]
    extra: Mapping,
}

#[derive(Debug, Clone, Serialize)]
struct Tls {
    cert_file: PathBuf,
    key_file: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
struct Slo {
    evaluation_interval: Span,
}

#[derive(Debug, Clone, Serialize)]
struct ProberEntry {
    id: String,
    region: String,
    token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
}

impl AggregatorConfig {
    /// Listening on `listen`, the store in `data` beside the file, no probers yet.
    pub fn new(listen: &str) -> AggregatorConfig {
        AggregatorConfig {
            listen: listen.into(),
            data_dir: "data".into(),
            tls: None,
            shutdown_grace: None,
            slo: None,
            replica: None,
            probers: Vec::new(),
            extra: Mapping::new(),
        }
    }

    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = dir.into();
        self
    }

    /// An edge prober allowed to report, its token by reference (`env:NAME`, `file:PATH`).
    pub fn prober(mut self, id: &str, region: &str, token: &str) -> Self {
        self.probers.push(ProberEntry { id: id.into(), region: region.into(), token: token.into(), kind: None });
        self
    }

    /// A prober that only sends load runs (`prober load --report-to`).
    pub fn load_prober(mut self, id: &str, region: &str, token: &str) -> Self {
        self.probers.push(ProberEntry {
            id: id.into(),
            region: region.into(),
            token: token.into(),
            kind: Some("load".into()),
        });
        self
    }

    pub fn tls(mut self, cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        self.tls = Some(Tls { cert_file: cert_file.into(), key_file: key_file.into() });
        self
    }

    pub fn shutdown_grace(mut self, d: Duration) -> Self {
        self.shutdown_grace = Some(Span(d));
        self
    }

    /// This member's name in an HA pair (label-safe, or `env:NAME`).
    pub fn replica(mut self, name: &str) -> Self {
        self.replica = Some(name.into());
        self
    }

    pub fn evaluation_interval(mut self, d: Duration) -> Self {
        self.slo = Some(Slo { evaluation_interval: Span(d) });
        self
    }

    /// Adds (or replaces) the top-level sections of `yaml`, a mapping such as
    /// `"ingest:\n  max_runs_per_second: 5\n"`. Empty text adds nothing.
    pub fn merge_yaml(mut self, yaml: &str) -> Self {
        match serde_yaml_ng::from_str::<Value>(yaml).unwrap_or_else(|e| panic!("extra aggregator YAML: {e}\n{yaml}")) {
            Value::Null => {}
            Value::Mapping(m) => self.extra.extend(m),
            other => panic!("extra aggregator YAML is not a mapping: {other:?}"),
        }
        self
    }

    pub fn to_yaml(&self) -> String {
        let Value::Mapping(mut doc) = serde_yaml_ng::to_value(self).expect("an aggregator config is plain YAML") else {
            unreachable!("a struct is a mapping")
        };
        for (k, v) in &self.extra {
            doc.insert(k.clone(), v.clone());
        }
        serde_yaml_ng::to_string(&doc).expect("an aggregator config is plain YAML")
    }

    /// Writes the file to `path`; returns `path`.
    pub fn write(&self, path: &Path) -> PathBuf {
        write(path, self.to_yaml())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edge_config_renders_the_file_form() {
        let c = EdgeConfig::new("e2e-1", "nairobi", "http://127.0.0.1:9", "file:token")
            .reporting_interval(ms(1_000))
            .concurrency(3)
            .profile("loopback")
            .listen("127.0.0.1:0")
            .seed(11)
            .journey(EdgeJourney::new("/s/ussd-balance.yaml", ms(600)).timeout(ms(1_500)).var("ussd_url", "http://x"))
            .keep_acked();
        let v: Value = serde_yaml_ng::from_str(&c.to_yaml()).unwrap();
        assert_eq!(v["prober"]["id"].as_str(), Some("e2e-1"));
        assert_eq!(v["aggregator"]["token"].as_str(), Some("file:token"));
        assert!(v["aggregator"].get("ca_file").is_none());
        assert_eq!(v["reporting_interval"].as_str(), Some("1s"));
        assert_eq!(v["journeys"][0]["interval"].as_str(), Some("600ms"));
        assert_eq!(v["journeys"][0]["timeout"].as_str(), Some("1.5s"));
        assert_eq!(v["journeys"][0]["variables"]["ussd_url"].as_str(), Some("http://x"));
        assert_eq!(v["outbox"]["keep_acked"].as_bool(), Some(true));
        assert_eq!(v["seed"].as_u64(), Some(11));
        assert!(v.get("aggregators").is_none());
        let two = c.aggregators(&[("a", "http://127.0.0.1:1"), ("b", "http://127.0.0.1:2")], "env:T");
        let v: Value = serde_yaml_ng::from_str(&two.to_yaml()).unwrap();
        assert!(v.get("aggregator").is_none());
        assert_eq!(v["aggregators"][1]["name"].as_str(), Some("b"));
        assert_eq!(v["aggregators"][1]["token"].as_str(), Some("env:T"));
    }

    #[test]
    fn an_aggregator_config_merges_extra_sections() {
        let c = AggregatorConfig::new("127.0.0.1:0")
            .prober("nbo-1", "nairobi", "env:NBO")
            .load_prober("load-1", "nairobi", "env:LOAD")
            .evaluation_interval(ms(2_000))
            .merge_yaml("ingest:\n  max_runs_per_second: 5\nslo:\n  evaluation_interval: 1s\n")
            .merge_yaml("");
        let v: Value = serde_yaml_ng::from_str(&c.to_yaml()).unwrap();
        assert_eq!(v["data_dir"].as_str(), Some("data"));
        assert_eq!(v["probers"][1]["kind"].as_str(), Some("load"));
        assert!(v["probers"][0].get("kind").is_none());
        assert_eq!(v["ingest"]["max_runs_per_second"].as_u64(), Some(5));
        assert_eq!(v["slo"]["evaluation_interval"].as_str(), Some("1s"), "the merged section wins");
    }
}
