use proptest::prelude::*;

use super::*;
use crate::slo::{
    spec::parse,
    windows::{W1H, W5M, W6H},
};

const MIN: i64 = 60_000;
const T0: i64 = 1_795_000_000_000 - 1_795_000_000_000 % 3_600_000;

const SLOS: &str = "slos:
  - name: checkout-availability
    service: marketplace
    objective: 99.9
    sli: {availability: {}}
    selection: {journeys: [checkout-mpesa]}
    alerting: {team: payments, runbook_url: https://r.example/c}
  - name: checkout-latency
    service: marketplace
    objective: 95
    sli: {latency: {threshold: 2s}}
    selection: {journeys: [checkout-mpesa], step: checkout}
    alerting: {team: payments, runbook_url: https://r.example/l}
";

fn engine() -> Engine {
    Engine::new(parse(SLOS, "s.yaml").unwrap())
}

/// Recorded by HdrHistogram itself, then made sparse as the aggregator receives it.
fn dense(values_us: &[u64]) -> hdrhistogram::Histogram<u64> {
    let mut h = report::new_histogram();
    for v in values_us {
        h.record(*v).unwrap();
    }
    h
}

fn hist(values_us: &[u64]) -> SparseHistogram {
    SparseHistogram::from(&dense(values_us))
}

/// `n` checkout runs in `region` at `at`, `bad` of them failed (availability ignores durations,
/// so one shared histogram serves).
fn runs(e: &mut Engine, region: &str, at: i64, n: u64, bad: u64) {
    thread_local! { static H: SparseHistogram = SparseHistogram::new(); }
    H.with(|h| {
        if n > bad {
            e.record(&SeriesEvent {
                journey: "checkout-mpesa",
                step: "",
                outcome: "ok",
                region,
                rail: "",
                count: n - bad,
                histogram: h,
                at_ms: at,
            });
        }
        if bad > 0 {
            e.record(&SeriesEvent {
                journey: "checkout-mpesa",
                step: "",
                outcome: "gateway_error",
                region,
                rail: "",
                count: bad,
                histogram: h,
                at_ms: at,
            });
        }
    });
}

fn status<'a>(s: &'a [ScopeStatus], slo: &str, region: &str) -> &'a ScopeStatus {
    s.iter().find(|x| x.scope.slo == slo && x.scope.region == region).unwrap()
}

#[test]
fn the_workbooks_single_failure_at_one_probe_a_minute_pages_then_resolves() {
    // docs/slo.md §7: at 1 probe/min and 99.9 %, one failed probe pages, and stops 5 min later.
    let mut e = engine();
    for m in 0..(7 * 60) {
        runs(&mut e, "nairobi", T0 + m * MIN + 30_000, 1, u64::from(m == 7 * 60 - 1));
    }
    let now = T0 + 7 * 60 * MIN;
    let (s, t) = e.evaluate(now);
    let st = status(&s, "checkout-availability", "nairobi");
    let br1h = st.burn_rate(W1H).unwrap();
    assert!((br1h - (1.0 / 60.0) / 0.001).abs() < 1e-6, "{br1h}");
    assert!(st.firing.contains(&Severity::Page));
    assert!(t.iter().any(|t| t.firing && t.severity == Severity::Page && t.scope.region == "nairobi"));
    // Five minutes of good probes later, the 5 m window is clean: resolved.
    for m in 0..5 {
        runs(&mut e, "nairobi", now + m * MIN + 30_000, 1, 0);
    }
    let (s, t) = e.evaluate(now + 5 * MIN);
    let st = status(&s, "checkout-availability", "nairobi");
    assert!(!st.firing.contains(&Severity::Page), "{st:#?}");
    assert!(t.iter().any(|t| !t.firing && t.severity == Severity::Page));
    // The slow ticket pair still sees it: 1 bad in 6 h burns at 2.8 > 1 (and in 3 d at 2.35 > 1).
    assert!(st.firing.contains(&Severity::Ticket));
}

#[test]
fn thirty_simulated_days_healthy_then_an_outage() {
    let mut e = engine();
    let regions = ["nairobi", "kampala", "dar"];
    let day = 24 * 60;
    // A healthy month: 4 runs a minute per region, one failure a day per region (noise) once the
    // fleet has a day of history (in its first hour a single failure would rightly open a ticket).
    for m in 0..(30 * day) {
        for (i, r) in regions.iter().enumerate() {
            let bad = u64::from(m >= day && m % day == (i as i64) * 97);
            runs(&mut e, r, T0 + m * MIN + 15_000, 4, bad);
        }
        if m % 60 == 59 {
            let (_, t) = e.evaluate(T0 + (m + 1) * MIN);
            assert!(t.is_empty(), "a healthy fleet fired at minute {m}: {t:?}");
        }
    }
    let now = T0 + 30 * day * MIN;
    let (s, _) = e.evaluate(now);
    let all = status(&s, "checkout-availability", ALL_REGIONS);
    assert_eq!(all.period.events, 3 * 4 * 30 * day as u64, "every run of the 30 days");
    let r = all.error_budget_remaining.unwrap();
    // 87 bad of ~518,000 at 99.9 %: 1 − 87/518 ≈ 0.832 left.
    assert!((r - (1.0 - 87.0 / (0.001 * all.period.events as f64))).abs() < 1e-9, "{r}");

    // Kampala's checkout fails completely: the page fires within the first minutes.
    let mut fired_at = None;
    for m in 0..30 {
        let t_min = 30 * day + m;
        for r in regions {
            runs(&mut e, r, T0 + t_min * MIN + 15_000, 4, if r == "kampala" { 4 } else { 0 });
        }
        let (_, t) = e.evaluate(T0 + (t_min + 1) * MIN);
        if let Some(tr) = t.iter().find(|t| t.firing && t.severity == Severity::Page && t.scope.region == "kampala") {
            fired_at.get_or_insert(m + 1);
            assert_eq!(tr.scope.slo, "checkout-availability");
        }
        assert!(!t.iter().any(|t| t.firing && t.scope.region == "nairobi"), "nairobi is healthy");
    }
    assert_eq!(fired_at, Some(1), "100 % errors fire the page at the first evaluation");
    let (s, _) = e.evaluate(T0 + (30 * day + 30) * MIN);
    let k = status(&s, "checkout-availability", "kampala");
    assert!((k.burn_rate(W5M).unwrap() - 1000.0).abs() < 1e-6);
    assert!(k.time_to_exhaustion_s.is_some());
    // The all-regions scope burns at a third of the rate.
    let all = status(&s, "checkout-availability", ALL_REGIONS);
    assert!((all.burn_rate(W5M).unwrap() - 1000.0 / 3.0).abs() < 1e-6);
}

#[test]
fn no_events_means_undefined_not_zero_and_nothing_fires() {
    let mut e = engine();
    runs(&mut e, "dar", T0 + 30_000, 1, 0);
    // Three hours later nothing happened in the short windows.
    let (s, t) = e.evaluate(T0 + 3 * 60 * MIN);
    let st = status(&s, "checkout-availability", "dar");
    assert_eq!(st.burn_rate(W5M), None);
    assert_eq!(st.window(W5M).unwrap().error_ratio, None);
    assert!(st.burn_rate(W6H).is_some());
    assert!(t.is_empty() && st.firing.is_empty());
}

#[test]
fn late_data_updates_the_past_windows() {
    let mut e = engine();
    let now = T0 + 10 * 60 * MIN;
    runs(&mut e, "kampala", now - 30_000, 100, 0);
    let (s, _) = e.evaluate(now);
    assert_eq!(status(&s, "checkout-availability", "kampala").window(W1H).unwrap().bad, 0);
    // The edge was cut off for 40 minutes; its outbox now delivers what it measured then.
    runs(&mut e, "kampala", now - 40 * MIN, 50, 50);
    let (s, _) = e.evaluate(now);
    let st = status(&s, "checkout-availability", "kampala");
    assert_eq!((st.window(W1H).unwrap().events, st.window(W1H).unwrap().bad), (150, 50));
    assert_eq!(st.window(W5M).unwrap().bad, 0, "not in the last 5 minutes");
}

#[test]
fn latency_slis_count_slow_successful_runs() {
    let mut e = engine();
    let h = hist(&[500_000, 1_900_000, 2_000_000, 2_500_000, 9_000_000]);
    e.record(&SeriesEvent {
        journey: "checkout-mpesa",
        step: "checkout",
        outcome: "ok",
        region: "dar",
        rail: "",
        count: 5,
        histogram: &h,
        at_ms: T0 + 1,
    });
    // Failed runs do not count for latency.
    e.record(&SeriesEvent {
        journey: "checkout-mpesa",
        step: "checkout",
        outcome: "timeout",
        region: "dar",
        rail: "",
        count: 1,
        histogram: &hist(&[30_000_000]),
        at_ms: T0 + 1,
    });
    let (s, _) = e.evaluate(T0 + MIN);
    let st = status(&s, "checkout-latency", "dar");
    assert_eq!(
        (st.window(W5M).unwrap().events, st.window(W5M).unwrap().bad),
        (5, 2),
        "2.5 s and 9 s are slow; 2.0 s is within"
    );
    assert_eq!(count_within(&h, Duration::from_secs(2)), 3);
}

proptest! {
    /// The one-pass count equals hdrhistogram's own `count_between(1, T)` for every threshold.
    #[test]
    fn one_pass_counts_equal_count_between(values in prop::collection::vec(1u64..report::HIST_HIGH_US, 0..60), t in prop::collection::vec(1u64..200_000_000, 1..8)) {
        let h = dense(&values);
        let fast = counts_within(&SparseHistogram::from(&h), &t);
        for (i, th) in t.iter().enumerate() {
            prop_assert_eq!(fast[i], h.count_between(report::HIST_LOW_US, *th), "threshold {}", th);
        }
    }

    /// Burn rate depends on the error ratio only: scaling traffic changes nothing.
    #[test]
    fn burn_rate_is_scale_invariant(total in 1u64..500, bad_frac in 0.0f64..1.0, k in 1u64..20) {
        let bad = (total as f64 * bad_frac) as u64;
        let rate = |scale: u64| {
            let mut e = engine();
            runs(&mut e, "nairobi", T0 + 30_000, total * scale, bad * scale);
            let (s, _) = e.evaluate(T0 + MIN);
            status(&s, "checkout-availability", "nairobi").burn_rate(W5M).unwrap()
        };
        let (a, b) = (rate(1), rate(k));
        prop_assert!((a - b).abs() <= 1e-9 * a.max(1.0), "{a} vs {b}");
        prop_assert!((a - bad as f64 / total as f64 / 0.001).abs() < 1e-6);
    }
}

#[test]
fn a_rail_slo_counts_the_rails_payment_steps_whatever_they_are_called() {
    let slos = parse(
        "slos:
  - name: momo-payment-success
    service: payments
    objective: 98
    sli: {availability: {}}
    selection: {rails: [momo], regions: [kampala]}
    alerting: {team: payments, runbook_url: https://r.example/m}
",
        "s.yaml",
    )
    .unwrap();
    let mut e = Engine::new(slos);
    let h = SparseHistogram::new();
    let at = T0 + MIN;
    let ev = |journey, step, outcome, region, rail, count| SeriesEvent {
        journey,
        step,
        outcome,
        region,
        rail,
        count,
        histogram: &h,
        at_ms: at,
    };
    e.record(&ev("checkout-momo", "pay", "ok", "kampala", "momo", 6));
    e.record(&ev("checkout-momo", "pay", "expected", "kampala", "momo", 1));
    e.record(&ev("checkout-momo", "pay", "business_error", "kampala", "momo", 1));
    // Another journey's payment step under another name: the same rail, so it counts.
    e.record(&ev("shop-momo", "settle", "timeout", "kampala", "momo", 2));
    // Not counted: the journey level, other steps, other rails, other regions.
    e.record(&ev("checkout-momo", "", "gateway_error", "kampala", "", 5));
    e.record(&ev("checkout-momo", "cart", "gateway_error", "kampala", "", 5));
    e.record(&ev("airtel-collect", "collect", "gateway_error", "kampala", "airtel", 5));
    e.record(&ev("checkout-momo", "pay", "gateway_error", "nairobi", "momo", 5));
    let (statuses, _) = e.evaluate(at + MIN);
    let events = |journey: &str, region: &str| {
        statuses
            .iter()
            .find(|s| s.scope.journey == journey && s.scope.region == region)
            .map(|s| (s.period.events, s.period.bad))
    };
    assert_eq!(events("checkout-momo", "kampala"), Some((8, 1)), "ok and expected are good");
    assert_eq!(events("shop-momo", "kampala"), Some((2, 2)));
    assert_eq!(events("checkout-momo", ALL_REGIONS), Some((8, 1)), "Nairobi is not selected");
    assert_eq!(statuses.len(), 4, "{statuses:?}");
}

/// Firing page transitions and the page state of the Nairobi checkout scope at `now`.
fn page_state(e: &mut Engine, now: i64) -> (bool, Vec<bool>) {
    let (s, t) = e.evaluate(now);
    let firing = s
        .iter()
        .find(|x| x.scope.slo == "checkout-availability" && x.scope.region == "nairobi")
        .is_some_and(|x| x.firing.contains(&Severity::Page));
    let changes = t
        .iter()
        .filter(|t| {
            t.severity == Severity::Page && t.scope.slo == "checkout-availability" && t.scope.region == "nairobi"
        })
        .map(|t| t.firing)
        .collect();
    (firing, changes)
}

#[test]
fn a_firing_alert_holds_through_a_gap_in_the_data() {
    // An hour healthy, then every checkout fails; then nothing arrives for 10 minutes (a cut
    // edge), then the backlog lands in order, still failing. No data is not good: no resolve.
    let mut e = engine();
    for m in 0..60 {
        runs(&mut e, "nairobi", T0 + m * MIN + 30_000, 4, 0);
    }
    for m in 60..80 {
        runs(&mut e, "nairobi", T0 + m * MIN + 30_000, 4, 4);
    }
    let (firing, changes) = page_state(&mut e, T0 + 80 * MIN);
    assert!(firing && changes == [true]);
    for m in 81..=90 {
        let (firing, changes) = page_state(&mut e, T0 + m * MIN);
        assert!(firing && changes.is_empty(), "minute {m}: the gap must not resolve the page");
    }
    let since =
        e.firing().iter().find(|f| f.severity == Severity::Page && f.scope.region == "nairobi").unwrap().since_ms;
    for m in 80..90 {
        runs(&mut e, "nairobi", T0 + m * MIN + 30_000, 4, 4);
    }
    let (firing, changes) = page_state(&mut e, T0 + 90 * MIN + 30_000);
    assert!(firing && changes.is_empty());
    let again =
        e.firing().iter().find(|f| f.severity == Severity::Page && f.scope.region == "nairobi").unwrap().since_ms;
    assert_eq!(since, again, "one alert, never restarted");
    // Healthy data in the short windows (5m, then 30m) resolves it, as before.
    for m in 90..125 {
        runs(&mut e, "nairobi", T0 + m * MIN + 30_000, 4, 0);
    }
    let (firing, changes) = page_state(&mut e, T0 + 125 * MIN);
    assert!(!firing && changes == [false]);
}

#[test]
fn a_held_alert_resolves_once_its_long_window_has_no_data_either() {
    let mut e = engine();
    for m in 0..20 {
        runs(&mut e, "nairobi", T0 + m * MIN + 30_000, 4, 4);
    }
    assert!(page_state(&mut e, T0 + 20 * MIN).0);
    // The journey stops reporting for good: held while the 1h/6h windows still burn.
    assert!(page_state(&mut e, T0 + 3 * 60 * MIN).0);
    let (firing, changes) = page_state(&mut e, T0 + 7 * 60 * MIN);
    assert!(!firing && changes == [false], "bounded: the 6 h window emptied");
}

#[test]
fn a_restarted_replica_catching_up_never_resolves_what_still_burns() {
    // Replica A runs throughout; replica B is killed at minute 75 (its store holds what it had
    // acknowledged), restarts at minute 90 with its engine rebuilt from that store, and then
    // receives the probers' backlog for minutes 75..90 in order, one report interval at a time,
    // while evaluating on its own clock.
    let (mut a, mut b) = (engine(), engine());
    let feed = |e: &mut Engine, m: i64| runs(e, "nairobi", T0 + m * MIN + 30_000, 4, if m >= 60 { 4 } else { 0 });
    for m in 0..75 {
        feed(&mut a, m);
        feed(&mut b, m);
        if m >= 60 {
            page_state(&mut a, T0 + (m + 1) * MIN);
            page_state(&mut b, T0 + (m + 1) * MIN);
        }
    }
    let mut a_changes = Vec::new();
    for m in 75..90 {
        feed(&mut a, m);
        a_changes.extend(page_state(&mut a, T0 + (m + 1) * MIN).1);
    }
    // B after kill -9: a new engine, rebuilt from its store (minutes 0..75).
    let mut b = {
        drop(b);
        let mut fresh = engine();
        for m in 0..75 {
            feed(&mut fresh, m);
        }
        fresh
    };
    let mut b_changes = Vec::new();
    // Its first evaluation: the 6h/30m pair already burns from what the store kept (the 5m
    // window is empty until the backlog lands, and an empty window claims nothing either way).
    b_changes.extend(page_state(&mut b, T0 + 90 * MIN).1);
    for m in 75..90 {
        feed(&mut b, m);
        let (_, c) = page_state(&mut b, T0 + 90 * MIN + (m - 74) * 1_000);
        b_changes.extend(c);
    }
    assert!(a_changes.is_empty(), "A fired at minute 61 and never changed: {a_changes:?}");
    assert_eq!(b_changes, [true], "B fires once when the backlog lands, and never resolves");
    // Caught up: the same firing state and the same numbers.
    let now = T0 + 91 * MIN;
    feed(&mut a, 90);
    feed(&mut b, 90);
    let (sa, _) = a.evaluate(now);
    let (sb, _) = b.evaluate(now);
    assert_eq!(sa, sb, "the same statuses, firing included");
}
