//! Burn rates recomputed from the probers' own records (every report each prober wrote, from its
//! outbox archive), independently of the aggregator's store and SLO engine, from the SLO
//! definitions the aggregator publishes: availability counts runs whose outcome is not `ok` or
//! `expected` as bad; latency counts `ok` runs at the SLO's step whose HDR bucket starts above the
//! threshold as bad.

use std::{collections::BTreeMap, path::Path};

use super::report_files;

/// (slo, journey, region or `all`) → (events, bad).
pub type Expected = BTreeMap<(String, String, String), (u64, u64)>;

/// Every series of every report in `outbox` (waiting, `acked/`, `rejected/`).
pub fn recorded_series(outbox: &Path) -> Vec<report::Series> {
    let mut out = Vec::new();
    for d in [outbox.to_path_buf(), outbox.join("acked"), outbox.join("rejected")] {
        for (_, p) in report_files(&d) {
            let r = report::decode(&std::fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            out.extend(r.series);
        }
    }
    out
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// The events and bad events every SLO of `slos` (the aggregator's `/api/v1/slos`) should hold
/// for `series`, per journey and region and over all regions.
pub fn recompute(slos: &serde_json::Value, series: &[report::Series]) -> Expected {
    let mut out = Expected::new();
    for slo in slos["slos"].as_array().expect("slos") {
        let name = slo["name"].as_str().unwrap().to_owned();
        let journeys = strings(&slo["selection"]["journeys"]);
        let regions = strings(&slo["selection"]["regions"]);
        let step = slo["selection"]["step"].as_str().unwrap_or("");
        // `rails`: the payment steps of those rails, whatever they are called (any step, unless
        // the selection names one).
        let rails = strings(&slo["selection"]["rails"]);
        let step_named = slo["selection"]["step"].as_str().is_some();
        let threshold_us = slo["latency_threshold_ms"].as_u64().map(|ms| ms * 1000);
        for s in series {
            let k = &s.key;
            if (!journeys.is_empty() && !journeys.contains(&k.journey))
                || (!regions.is_empty() && !regions.contains(&k.region))
                || (!rails.is_empty() && !rails.contains(&k.rail))
                || ((rails.is_empty() || step_named) && k.step != step)
            {
                continue;
            }
            let bad = match threshold_us {
                None => {
                    if report::is_good(&k.outcome) {
                        0
                    } else {
                        s.count
                    }
                }
                Some(_) if k.outcome != "ok" => continue,
                Some(t) => {
                    // Dense, through HdrHistogram itself: independent of the aggregator's sparse code.
                    let h = s.histogram.to_histogram();
                    let fast: u64 = h
                        .iter_recorded()
                        .filter(|v| h.lowest_equivalent(v.value_iterated_to()) <= t)
                        .map(|v| v.count_at_value())
                        .sum();
                    s.count - fast.min(s.count)
                }
            };
            for region in [k.region.as_str(), "all"] {
                let e = out.entry((name.clone(), k.journey.clone(), region.to_owned())).or_default();
                e.0 += s.count;
                e.1 += bad;
            }
        }
    }
    out
}

/// Compares the aggregator's windows that span the whole test (30m and longer, and the period)
/// with `expected`: events and bad equal, burn rate = (bad/events)/budget. Returns the
/// differences, one line each (empty when they agree), and how many scope-windows were compared.
pub fn compare(slos: &serde_json::Value, expected: &Expected) -> (Vec<String>, usize) {
    let mut diffs = Vec::new();
    let mut compared = 0;
    let mut seen = std::collections::BTreeSet::new();
    for slo in slos["slos"].as_array().expect("slos") {
        let budget = slo["error_budget"].as_f64().unwrap();
        for st in slo["scopes"].as_array().cloned().unwrap_or_default() {
            let key = (
                st["scope"]["slo"].as_str().unwrap().to_owned(),
                st["scope"]["journey"].as_str().unwrap().to_owned(),
                st["scope"]["region"].as_str().unwrap().to_owned(),
            );
            let (events, bad) = expected.get(&key).copied().unwrap_or_default();
            seen.insert(key.clone());
            let windows = st["windows"].as_array().cloned().unwrap_or_default();
            for w in windows
                .iter()
                .filter(|w| !matches!(w["window"].as_str(), Some("5m")))
                .chain(std::iter::once(&st["period"]))
            {
                compared += 1;
                let label = w["window"].as_str().unwrap_or("period");
                let (got_events, got_bad) = (w["events"].as_u64().unwrap(), w["bad"].as_u64().unwrap());
                if (got_events, got_bad) != (events, bad) {
                    diffs.push(format!(
                        "{key:?} {label}: aggregator {got_bad}/{got_events} bad, recomputed {bad}/{events}"
                    ));
                    continue;
                }
                let want = (events > 0).then(|| bad as f64 / events as f64 / budget);
                let got = w["burn_rate"].as_f64();
                let agree = match (got, want) {
                    (Some(g), Some(w)) => (g - w).abs() <= 1e-9 * w.max(1.0),
                    (None, None) => true,
                    _ => false,
                };
                if !agree {
                    diffs.push(format!("{key:?} {label}: burn rate {got:?}, recomputed {want:?}"));
                }
            }
        }
    }
    for key in expected.keys().filter(|k| !seen.contains(*k)) {
        diffs.push(format!("{key:?}: recomputed {:?}, but the aggregator has no such scope", expected[key]));
    }
    (diffs, compared)
}
