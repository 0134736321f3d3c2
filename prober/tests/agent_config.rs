//! The edge config: the example loads, and every mistake is named by file, line and field.

mod agent_support;

use std::{path::Path, process::Command, time::Duration};

use agent_support::tmpdir;
use prober::agent::{
    self,
    config::{self, ConfigError},
};

const PROBER: &str = env!("CARGO_BIN_EXE_prober");

fn scenarios_dir() -> String {
    format!("{}/../scenarios", env!("CARGO_MANIFEST_DIR"))
}

/// A config file in a fresh dir (removed when this is dropped), with a token file beside it.
struct Written {
    _dir: testkit::TempDir,
    path: std::path::PathBuf,
}

impl std::ops::Deref for Written {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.path
    }
}

fn write(name: &str, yaml: &str) -> Written {
    let dir = tmpdir(name);
    std::fs::write(dir.join("token"), "tok-123\n").unwrap();
    let path = dir.join("edge.yaml");
    std::fs::write(&path, yaml.replace("SCENARIOS", &scenarios_dir())).unwrap();
    Written { _dir: dir, path }
}

const GOOD: &str = "\
prober:
  id: kla-1
  region: kampala
aggregator:
  url: http://127.0.0.1:7800
  token: file:token
reporting_interval: 10s
journeys:
  - file: SCENARIOS/ussd-balance.yaml
    interval: 30s
    timeout: 20s
  - file: SCENARIOS/mpesa-stk-push.yaml
    interval: 60s
    timeout: 50s
    profile: ea-edge
outbox:
  dir: outbox
";

fn err(name: &str, yaml: &str) -> (ConfigError, String) {
    let e = config::load(&write(name, yaml)).unwrap_err();
    let text = e.to_string();
    (e, text)
}

#[test]
fn a_good_config_loads_with_defaults_and_spread_offsets() {
    let path = write("good", GOOD);
    let cfg = config::load(&path).unwrap();
    assert_eq!((cfg.prober.id.as_str(), cfg.prober.region.as_str()), ("kla-1", "kampala"));
    assert_eq!(cfg.destinations.len(), 1, "the single `aggregator:` form is one destination");
    assert_eq!(cfg.destinations[0].name, "127_0_0_1_7800", "named host:port, label-safe");
    assert_eq!(cfg.destinations[0].token.expose(), "tok-123");
    assert!(!format!("{cfg:?}").contains("tok-123"), "the token never prints");
    assert_eq!(cfg.reporting_interval, Duration::from_secs(10));
    assert_eq!(cfg.concurrency, 2, "default: one slot per journey");
    assert_eq!(cfg.listen.to_string(), "127.0.0.1:9464");
    assert_eq!(cfg.outbox.dir, path.parent().unwrap().join("outbox"), "relative to the config file");
    assert_eq!(cfg.journeys[0].profile.name, "ea-3g", "the journey's own profile when the edge sets none");
    assert_eq!(cfg.journeys[1].profile.name, "ea-edge");
    assert_eq!(cfg.journeys[1].journey.timeout, Duration::from_secs(50), "the run limit is the schedule's timeout");
    let jobs = agent::jobs(&cfg);
    assert!(jobs[0].offset < Duration::from_millis(7_500), "{:?}", jobs[0].offset);
    assert!(jobs[1].offset >= Duration::from_secs(30) && jobs[1].offset < Duration::from_secs(45));
}

#[test]
fn the_example_loads_and_check_prints_the_schedule() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/edge.yaml");
    let out = Command::new(PROBER)
        .args(["run", "--config", example.to_str().unwrap(), "--check"])
        .env("PROBER_TOKEN", "example-token-xyz")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for j in ["ussd-balance", "ussd-send-money", "mpesa-stk-push", "checkout-mpesa"] {
        assert!(stdout.contains(j), "{j} missing:\n{stdout}");
    }
    assert!(stdout.contains("offset   30000 ms"), "explicit offset kept:\n{stdout}");
    assert!(!stdout.contains("example-token-xyz"));
    // Loaded as a library too (token from a file instead of the environment); relative paths
    // stay relative to the example's folder.
    let dir = tmpdir("example");
    std::fs::write(dir.join("token"), "t").unwrap();
    let src = std::fs::read_to_string(&example)
        .unwrap()
        .replace("env:PROBER_TOKEN", &format!("file:{}", dir.join("token").display()));
    let cfg = config::parse(&src, "edge.yaml", example.parent().unwrap(), &example);
    let cfg = cfg.unwrap();
    assert_eq!(cfg.journeys.len(), 4);
    assert_eq!(cfg.concurrency, 3);
    assert_eq!(cfg.connections, httpserve::Limits::default(), "the example spells out the defaults");
}

#[test]
fn the_connections_section_bounds_the_listeners_and_names_bad_values() {
    assert_eq!(config::load(&write("conn-default", GOOD)).unwrap().connections, httpserve::Limits::default());
    let yaml = format!(
        "{GOOD}connections:\n  header_read_timeout: 300ms\n  h2_keep_alive_interval: off\n  max_connections_per_peer: 8\n  body_min_rate: 2KiB\n"
    );
    let c = config::load(&write("conn", &yaml)).unwrap().connections;
    assert_eq!(c.header_read_timeout, Duration::from_millis(300));
    assert_eq!((c.h2_keep_alive_interval, c.max_connections_per_peer, c.body_min_rate), (None, 8, 2048));
    assert_eq!(c.idle_timeout, httpserve::DEFAULT.idle_timeout);
    let (e, text) =
        err("conn-cap", &format!("{GOOD}connections:\n  max_connections: 4\n  max_connections_per_peer: 8\n"));
    assert!(text.contains("connections.max_connections_per_peer") && text.contains("max_connections"), "{text}");
    assert_eq!(e.line(), 20, "{text}");
    let (e, text) = err("conn-dur", &format!("{GOOD}connections:\n  idle_timeout: soon\n"));
    assert!(text.contains("connections") && text.contains("soon") && e.line() == 19, "{text}");
    let (e, text) = err("conn-key", &format!("{GOOD}connections:\n  idle_timout: 5s\n"));
    assert!(text.contains("idle_timout") && e.line() == 19, "{text}");
}

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let (e, text) = err("unknown", &GOOD.replace("    interval: 60s", "    intervl: 60s"));
    assert!(text.contains("edge.yaml:13:"), "{text}");
    assert!(text.contains("unknown field `intervl`"), "{text}");
    assert!(text.contains("journeys[1]"), "the field path: {text}");
    assert_eq!(e.line(), 13);
}

#[test]
fn a_timeout_not_below_the_interval_is_refused() {
    let (e, text) = err("timeout", &GOOD.replace("timeout: 50s", "timeout: 60s"));
    assert_eq!(e.line(), 14, "{text}");
    assert!(text.contains("journeys[1].timeout") && text.contains("not below the interval 60s"), "{text}");
    // No timeout and a journey limit above the interval: told to set one.
    let (e, text) = err("timeout2", &GOOD.replace("    timeout: 50s\n", ""));
    assert_eq!(e.line(), 13, "{text}");
    assert!(text.contains("journeys[1].interval") && text.contains("set `timeout:`"), "{text}");
}

#[test]
fn an_inline_token_is_refused_without_echoing_it() {
    let (e, text) = err("inline", &GOOD.replace("file:token", "s3cr3t-inline-value"));
    assert_eq!(e.line(), 6);
    assert!(text.contains("aggregator.token") && text.contains("env:NAME"), "{text}");
    assert!(!text.contains("s3cr3t-inline-value"), "{text}");
    let (_, text) = err("env", &GOOD.replace("file:token", "env:PROBER_TEST_SURELY_UNSET_9"));
    assert!(text.contains("PROBER_TEST_SURELY_UNSET_9") && text.contains("not set"), "{text}");
}

#[test]
fn identities_profiles_urls_and_variables_are_checked() {
    let (e, text) = err("region", &GOOD.replace("region: kampala", "region: kampala west"));
    assert!(e.line() == 3 && text.contains("prober.region"), "{text}");
    let (e, text) = err("profile", &GOOD.replace("profile: ea-edge", "profile: ea-9g"));
    assert!(e.line() == 15 && text.contains("journeys[1].profile") && text.contains("ea-9g"), "{text}");
    let (e, text) = err("url", &GOOD.replace("http://127.0.0.1:7800", "ftp://agg"));
    assert!(e.line() == 5 && text.contains("aggregator.url"), "{text}");
    let (e, text) = err("userinfo", &GOOD.replace("http://127.0.0.1:7800", "https://u:pw@agg:7800"));
    assert!(e.line() == 5 && !text.contains("pw@"), "{text}");
    let with_var = GOOD.replace("    timeout: 20s\n", "    timeout: 20s\n    variables: {nope: x}\n");
    let (e, text) = err("var", &with_var);
    assert!(e.line() == 12 && text.contains("journeys[0].variables.nope") && text.contains("ussd_url"), "{text}");
    let (e, text) = err("offset", &GOOD.replace("    timeout: 20s\n", "    timeout: 20s\n    offset: 30s\n"));
    assert!(e.line() == 12 && text.contains("journeys[0].offset"), "{text}");
    let (e, text) = err(
        "dup",
        &GOOD.replace("mpesa-stk-push.yaml", "ussd-balance.yaml").replace("profile: ea-edge", "profile: ea-3g"),
    );
    assert!(e.line() == 12 && text.contains("listed twice"), "{text}");
}

#[test]
fn a_bad_journey_file_is_reported_at_its_own_line() {
    let dir = tmpdir("badjourney");
    std::fs::write(dir.join("token"), "t").unwrap();
    std::fs::write(dir.join("broken.yaml"), "name: broken\nsteps:\n  - name: a\n    http: {url: \"x\", metod: GET}\n")
        .unwrap();
    let yaml = GOOD.replace("SCENARIOS/ussd-balance.yaml", "broken.yaml").replace("SCENARIOS", &scenarios_dir());
    std::fs::write(dir.join("edge.yaml"), yaml).unwrap();
    let e = config::load(&dir.join("edge.yaml")).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ConfigError::Journey { line: 9, .. }), "{text}");
    assert!(text.starts_with(&format!("{}:4:", dir.join("broken.yaml").display())), "{text}");
    assert!(text.contains("metod") && text.contains("journeys[0].file"), "{text}");
}

#[test]
fn the_cli_exits_2_on_a_bad_config() {
    let path = write("cli", &GOOD.replace("timeout: 50s", "timeout: 90s"));
    let out = Command::new(PROBER).args(["run", "--config", path.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("edge.yaml:14:14: journeys[1].timeout"), "{stderr}");
}

/// [`GOOD`] with `aggregators:` (the text given, indented as a list) instead of `aggregator:`.
fn with_list(list: &str) -> String {
    GOOD.replace("aggregator:\n  url: http://127.0.0.1:7800\n  token: file:token\n", &format!("aggregators:\n{list}"))
}

#[test]
fn a_list_of_aggregators_loads_in_order_with_names() {
    let yaml = with_list(
        "  - name: aggregator-0\n    url: https://aggregator-0.aggregator.savanna.svc:7800\n    token: file:token\n  \
         - url: https://Aggregator-1.aggregator.savanna.svc\n    token: file:token\n",
    );
    let cfg = config::load(&write("list", &yaml)).unwrap();
    let names: Vec<&str> = cfg.destinations.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["aggregator-0", "aggregator-1_aggregator_savanna_svc_443"]);
    assert_eq!(cfg.destinations[1].url.to_string(), "https://Aggregator-1.aggregator.savanna.svc/");
    assert!(!format!("{cfg:?}").contains("tok-123"), "tokens never print");
}

#[test]
fn aggregator_lists_are_checked_field_by_field() {
    let one = |name: &str, url: &str| format!("  - name: {name}\n    url: {url}\n    token: file:token\n");
    // Both forms.
    let both =
        GOOD.replace("reporting_interval:", &format!("aggregators:\n{}reporting_interval:", one("a", "http://x:1")));
    let (e, text) = err("both", &both);
    assert!(text.contains("aggregators") && text.contains("not both") && e.line() == 7, "{text}");
    // Neither.
    let (_, text) = err("neither", &with_list("").replace("aggregators:\n", ""));
    assert!(text.contains("aggregators"), "{text}");
    // Empty.
    let (e, text) = err("empty", &with_list("  []\n"));
    assert!(text.contains("aggregators: list at least one") && e.line() == 5, "{text}");
    // Names: unique, label-safe.
    let (e, text) = err("dup-name", &with_list(&(one("a", "http://x:1") + &one("a", "http://y:1"))));
    assert!(text.contains("aggregators[1].name") && text.contains("used twice") && e.line() == 8, "{text}");
    let (e, text) = err("bad-name", &with_list(&one("Agg.0", "http://x:1")));
    assert!(text.contains("aggregators[0].name") && text.contains("a-z, 0-9") && e.line() == 5, "{text}");
    // URLs: unique, valid, named in the field.
    let (e, text) = err("dup-url", &with_list(&(one("a", "http://x:1") + &one("b", "http://x:1"))));
    assert!(text.contains("aggregators[1].url") && text.contains("listed twice") && e.line() == 9, "{text}");
    let (e, text) = err("bad-url", &with_list(&(one("a", "http://x:1") + &one("b", "ftp://x"))));
    assert!(text.contains("aggregators[1].url") && e.line() == 9, "{text}");
    let (_, text) = err("bad-token", &with_list(&one("a", "http://x:1").replace("file:token", "inline-s3cret")));
    assert!(text.contains("aggregators[0].token") && !text.contains("inline-s3cret"), "{text}");
    // Two unnamed destinations whose default names collide are told to set names.
    let (_, text) = err(
        "dup-default",
        &with_list(
            "  - {url: \"http://x:1\", token: file:token}\n  - {url: \"http://x:1/other\", token: file:token}\n",
        ),
    );
    assert!(text.contains("aggregators[1].url") && text.contains("set `name:`"), "{text}");
    // At most 8.
    let nine: String = (0..9).map(|i| one(&format!("a{i}"), &format!("http://x:{}", i + 1))).collect();
    let (_, text) = err("nine", &with_list(&nine));
    assert!(text.contains("aggregators: at most 8"), "{text}");
}
