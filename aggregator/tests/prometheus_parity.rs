//! Parity with a real Prometheus: the aggregator's burn rates and alert states equal what
//! Prometheus computes from the aggregator's own `/metrics` with the generated rules.
//!
//! Twelve scripted hours (three regions; an outage, noise, a latency degradation, a payment
//! failure burst, a slow USSD spell) drive the SLO engine and the exporter minute by minute. Every
//! minute the exposition is scraped (encoded to text and parsed back, as Prometheus would). The
//! scrapes become `input_series` of a `promtool test rules` file whose rules are the ones
//! `aggregator rules` prints; its tests assert that, at every quarter hour, each window's error
//! ratio from the rules equals the engine's (within 1e-9, both ways, no series missing) and that
//! exactly the alerts the engine fires are firing in Prometheus.
//!
//! Needs promtool (Debian's `prometheus`); under CI=true its absence is a failure.

use std::{collections::BTreeMap, fmt::Write as _};

use aggregator::slo::{
    engine::{Engine, SeriesEvent},
    export::SloMetrics,
    rules::rules_yaml,
    spec::bundled,
    windows::Severity,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use rand::{RngExt, SeedableRng};
use testkit::prometheus::Promtool;

const T0: i64 = 1_795_000_000_000 - 1_795_000_000_000 % 3_600_000;
const MIN: i64 = 60_000;
const MINUTES: i64 = 12 * 60;
const REGIONS: [&str; 3] = ["nairobi", "kampala", "dar"];

/// One journey's runs in one region and minute: (step, outcome, durations in µs).
type Runs = Vec<(&'static str, &'static str, Vec<u64>)>;

fn minute_of_traffic(rng: &mut rand_chacha::ChaCha8Rng, k: i64, region: &str) -> Vec<(&'static str, Runs)> {
    let mut out = Vec::new();
    // checkout-mpesa: 4 runs; the journey-level series and the `checkout` step.
    let kampala_outage = region == "kampala" && (300..330).contains(&k);
    let nairobi_slow = region == "nairobi" && (400..500).contains(&k);
    let mut journey = Vec::new();
    let mut step = Vec::new();
    for i in 0..4 {
        if kampala_outage {
            journey.push(("", "gateway_error", 31_000_000));
            step.push(("checkout", "gateway_error", 30_000_000));
        } else {
            journey.push(("", "ok", 5_200_000));
            step.push(("checkout", "ok", if nairobi_slow && i == 0 { 2_600_000 } else { 800_000 }));
        }
    }
    out.push(("checkout-mpesa", group(journey.into_iter().chain(step))));
    // mpesa-stk-push: 2 % business errors in Dar; a failure burst in Nairobi.
    let mut stk = Vec::new();
    for _ in 0..4 {
        let burst = region == "nairobi" && (550..570).contains(&k);
        let noise = region == "dar" && rng.random_bool(0.02);
        stk.push(("", if burst || noise { "business_error" } else { "ok" }, 3_100_000));
    }
    out.push(("mpesa-stk-push", group(stk.into_iter())));
    // ussd-balance: slow in Dar for a while (latency SLO: 3 s at 99 %).
    let mut ussd = Vec::new();
    for i in 0..4 {
        let slow = region == "dar" && (600..650).contains(&k) && i < 2;
        ussd.push(("", "ok", if slow { 3_500_000 } else { 900_000 }));
    }
    out.push(("ussd-balance", group(ussd.into_iter())));
    out
}

fn group(runs: impl Iterator<Item = (&'static str, &'static str, u64)>) -> Runs {
    let mut m: BTreeMap<(&str, &str), Vec<u64>> = BTreeMap::new();
    for (s, o, d) in runs {
        m.entry((s, o)).or_default().push(d);
    }
    m.into_iter().map(|((s, o), d)| (s, o, d)).collect()
}

/// Parses a text exposition into series → value.
fn scrape(reg: &Registry) -> BTreeMap<String, f64> {
    let mut text = String::new();
    encode(&mut text, reg).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse::<f64>().unwrap())
        })
        .collect()
}

fn camel(s: &str) -> String {
    s.split('-').map(|p| p[..1].to_uppercase() + &p[1..]).collect()
}

#[test]
fn burn_rates_and_alerts_match_prometheus() {
    let Some(promtool) = Promtool::find() else { return };
    let slos = bundled();
    let mut engine = Engine::new(slos.clone());
    let metrics = SloMetrics::new(&slos);
    let mut reg = Registry::default();
    reg.register_collector(Box::new(metrics.clone()));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    let empty = report::SparseHistogram::new();

    // Every counter exists, at zero, before the first scrape.
    for r in REGIONS {
        for (j, steps) in
            [("checkout-mpesa", &["", "checkout"][..]), ("mpesa-stk-push", &[""]), ("ussd-balance", &[""])]
        {
            for s in steps {
                metrics.record(&testkit::reports::key(j, s, "ok", r), 0, &empty);
            }
        }
    }
    let mut samples: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    let mut firing_at: BTreeMap<i64, Vec<(String, String, String, Severity)>> = BTreeMap::new();
    let push = |samples: &mut BTreeMap<String, Vec<Option<f64>>>, k: usize, scraped: BTreeMap<String, f64>| {
        for (series, v) in scraped {
            let col = samples.entry(series).or_insert_with(|| vec![None; MINUTES as usize + 1]);
            col[k] = Some(v);
        }
    };
    push(&mut samples, 0, scrape(&reg));
    for k in 0..MINUTES {
        let at = T0 + k * MIN + 30_000;
        for region in REGIONS {
            for (journey, runs) in minute_of_traffic(&mut rng, k, region) {
                for (step, outcome, durations) in runs {
                    let mut h = report::new_histogram();
                    for d in &durations {
                        h.record(*d).unwrap();
                    }
                    let n = durations.len() as u64;
                    let h = report::SparseHistogram::from(&h);
                    let rail = "";
                    engine.record(&SeriesEvent {
                        journey,
                        step,
                        outcome,
                        region,
                        rail,
                        count: n,
                        histogram: &h,
                        at_ms: at,
                    });
                    metrics.record(&testkit::reports::key(journey, step, outcome, region), n, &h);
                }
            }
        }
        let now = T0 + (k + 1) * MIN;
        let (statuses, _) = engine.evaluate(now);
        let firing: Vec<_> = statuses
            .iter()
            .flat_map(|s| {
                s.firing
                    .iter()
                    .map(move |sev| (s.scope.slo.clone(), s.scope.journey.clone(), s.scope.region.clone(), *sev))
            })
            .collect();
        firing_at.insert(k + 1, firing);
        metrics.set_statuses(statuses);
        push(&mut samples, k as usize + 1, scrape(&reg));
    }

    // The promtool test file.
    let dir = testkit::temp_dir("parity");
    std::fs::write(dir.join("rules.yml"), rules_yaml(&slos)).unwrap();
    let mut t = String::from(
        "rule_files: [rules.yml]\n# Rules are evaluated every 5 m; every checked time is a multiple of it.\nevaluation_interval: 5m\ntests:\n  - interval: 1m\n    input_series:\n",
    );
    for (series, col) in &samples {
        let values: Vec<String> = col.iter().map(|v| v.map_or("_".to_owned(), |x| format!("{x}"))).collect();
        let _ = writeln!(t, "      - series: '{series}'\n        values: '{}'", values.join(" "));
    }
    let eval_minutes: Vec<i64> = (1..=MINUTES / 15).map(|i| i * 15).collect();
    let _ = writeln!(t, "    promql_expr_test:");
    let mut parity_checks = 0;
    for m in &eval_minutes {
        // Every window, both ways: ratios differ by more than 1e-9, or a series exists on one side
        // only (NaN rule results, 0/0 with no events, are as absent as the engine's undefined ratio).
        let mut any = Vec::new();
        for w in ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"] {
            let rule = format!("slo:sli_error:ratio_rate{w}");
            let gauge = format!("synthetic_slo_error_ratio{{window=\"{w}\"}}");
            any.push(format!("(abs({gauge} - on(slo, journey, region) {rule}) > 1e-9)"));
            any.push(format!("({gauge} unless on(slo, journey, region) {rule})"));
            any.push(format!("(({rule} == {rule}) unless on(slo, journey, region) {gauge})"));
            parity_checks += 3;
        }
        let _ = writeln!(t, "      - expr: '{}'\n        eval_time: {m}m\n        exp_samples: []", any.join(" or "));
    }
    let _ = writeln!(t, "    alert_rule_test:");
    let mut expected_alerts = 0;
    for m in &eval_minutes {
        for slo in &slos {
            for sev in [Severity::Page, Severity::Ticket] {
                let name = format!("SLO{}{}", camel(&slo.name), if sev == Severity::Page { "Page" } else { "Ticket" });
                let _ = writeln!(t, "      - eval_time: {m}m\n        alertname: {name}\n        exp_alerts:");
                for (s, journey, region, _) in firing_at[m].iter().filter(|f| f.0 == slo.name && f.3 == sev) {
                    expected_alerts += 1;
                    let _ = writeln!(
                        t,
                        "          - exp_labels: {{severity: {sv}, sloth_severity: {sv}, team: {team}, slo: {s}, journey: {journey}, region: {region}, sloth_id: {svc}-{s}, sloth_service: {svc}, sloth_slo: {s}}}\n            exp_annotations:\n              summary: \"{journey} in {region} is burning the {s} error budget ({sv})\"\n              runbook_url: {rb}\n              title: \"{s}: high error budget burn\"",
                        sv = sev.as_str(),
                        team = slo.alerting.team,
                        svc = slo.service,
                        rb = slo.alerting.runbook_url,
                    );
                }
                if !firing_at[m].iter().any(|f| f.0 == slo.name && f.3 == sev) {
                    t.truncate(t.trim_end_matches("        exp_alerts:\n").len());
                    t.push_str("        exp_alerts: []\n");
                }
            }
        }
    }
    std::fs::write(dir.join("test.yml"), &t).unwrap();
    // The scenario must exercise alerts, or parity proves little.
    assert!(expected_alerts >= 10, "only {expected_alerts} expected firing alerts: the scenario is too quiet");
    assert!(firing_at.values().any(|f| f.iter().any(|x| x.2 == "kampala" && x.3 == Severity::Page)));

    let said = promtool.test_rules(&dir, "test.yml");
    if !said.ok {
        // Kept for reading: the rules and the test file promtool disagreed on.
        let kept = dir.keep();
        panic!(
            "Prometheus disagrees with the engine ({parity_checks} parity checks, {expected_alerts} expected alerts); files in {}:\n{}",
            kept.display(),
            said.text.chars().take(6000).collect::<String>()
        );
    }
    eprintln!("parity: {parity_checks} ratio checks and {expected_alerts} firing alerts agree with promtool");
}
