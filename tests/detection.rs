//! Detection (issue 5), with the whole fleet on loopback (three regions, each journey every 15 s;
//! [`savanna_pulse::fleet`]) and a real Alertmanager (Debian's `prometheus-alertmanager`, routed
//! by deploy/edge/alertmanager/alertmanager.yml):
//!
//! - in real time, a 100 % STK failure injected into the sandbox (every region's Daraja answers
//!   HTTP 500) makes a payments page alert fire in Alertmanager; the time from the injection to
//!   Alertmanager holding the active alert is measured and printed, and must stay under the
//!   marketplace's bar of 5 minutes;
//! - a healthy fleet, with the sandbox's normal behaviour and the emulated links' jitter and loss,
//!   pages nobody and raises no availability alert of any severity over a simulated day (at 360×,
//!   four minutes of real time). Every SLO evaluation is read from the aggregator's JSON API as it
//!   happens. Latency tickets are printed with the day's measured latencies but do not fail the
//!   test: latency on the emulated links depends on this shared machine's load (under load, one
//!   run raised a checkout-latency ticket in Dar; see benches/RESULTS.md, "Detection"), and tests
//!   must not depend on the machine's timing.
//!
//! Without Alertmanager the first test says SKIPPED and passes, except under `CI=true` where it
//! fails. Run with `--nocapture` to see the measurements.

use std::{collections::BTreeSet, time::Duration};

use aggregator::{
    api::{Dim, QueryParams, SloFilter},
    client::AggregatorClient,
};
use sandbox::{Fault, Service};
use savanna_pulse::fleet::{EDGES, Fleet, FleetOptions};
use testkit::alertmanager::Alertmanager;
use tokio::time::{Instant, sleep};

/// Both tests run a whole fleet on a 2-core machine: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The marketplace's bar for detecting a payment problem.
const BAR: Duration = Duration::from_secs(300);

/// Active page alerts of the payments team that Alertmanager holds, by `alertname/region`.
async fn payments_pages(am: &Alertmanager) -> BTreeSet<String> {
    am.alerts()
        .await
        .iter()
        .filter(|a| a["status"]["state"] == "active")
        .filter(|a| a["labels"]["severity"] == "page" && a["labels"]["team"] == "payments")
        .map(|a| {
            format!(
                "{}/{}",
                a["labels"]["alertname"].as_str().unwrap_or("?"),
                a["labels"]["region"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// Whether every region has stored runs of the payment journeys (the SLO scopes exist).
async fn payments_measured(agg: &AggregatorClient) -> bool {
    let Ok(v) = agg.slos(&payments_slo()).await else { return false };
    let scopes = v.slos.into_iter().next().map(|s| s.scopes).unwrap_or_default();
    EDGES.iter().all(|e| scopes.iter().any(|s| s.scope.region == e.region && s.windows.iter().any(|x| x.events > 0)))
}

fn payments_slo() -> SloFilter {
    SloFilter { slo: Some("mpesa-payment-success".into()), ..SloFilter::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_total_stk_failure_pages_payments_in_alertmanager_well_within_five_minutes() {
    let _serial = SERIAL.lock().await;
    let Some(am) = Alertmanager::start_example().await else { return };
    let dir = testkit::temp_dir("detection-stk");
    let mut opts = FleetOptions::new(dir.to_path_buf());
    opts.alertmanager_url = Some(am.url.clone());
    let fleet = Fleet::start(opts).await.expect("starting the fleet");
    let agg = AggregatorClient::new(fleet.aggregator_url());

    // A healthy start: every region's payment journeys measured, nothing paging.
    let t0 = Instant::now();
    while !payments_measured(&agg).await {
        if t0.elapsed() > Duration::from_secs(180) {
            let probers = agg.probers().await.map(|v| format!("{v:?}")).unwrap_or_default();
            let slo = agg.slos(&payments_slo()).await.map(|v| format!("{v:?}"));
            panic!("no payment runs stored in every region within 3 minutes\nprobers: {probers}\nslo: {slo:?}");
        }
        sleep(Duration::from_millis(500)).await;
    }
    sleep(Duration::from_secs(60)).await; // a minute of healthy history in the windows
    assert!(payments_pages(&am).await.is_empty(), "a payments page before any fault: {:?}", payments_pages(&am).await);
    let history = t0.elapsed();

    // Daraja fails every request, in every region.
    let injected = Instant::now();
    for (_, sb) in &fleet.sandboxes {
        sb.faults().set(Service::Daraja, Fault { error_rate: 1.0, ..Default::default() }).unwrap();
    }
    let mut first: Vec<(String, Duration)> = Vec::new();
    let limit = BAR + Duration::from_secs(60);
    while injected.elapsed() < limit {
        for p in payments_pages(&am).await {
            if !first.iter().any(|(n, _)| *n == p) {
                first.push((p, injected.elapsed()));
            }
        }
        // Both payment SLOs page in every region (or the bound runs out).
        if first.len() >= 2 * EDGES.len() {
            break;
        }
        sleep(Duration::from_millis(250)).await;
    }
    for (_, sb) in &fleet.sandboxes {
        sb.faults().clear();
    }
    fleet.stop().await.expect("stopping the fleet cleanly");
    drop(am);

    eprintln!("detection: {:.0} s of healthy history, then a 100 % STK failure in every region", history.as_secs_f64());
    for (p, t) in &first {
        eprintln!("detection: {p:<40} active in Alertmanager {:>6.1} s after the injection", t.as_secs_f64());
    }
    let (name, took) =
        first.first().cloned().unwrap_or_else(|| panic!("no payments page reached Alertmanager in {limit:?}"));
    eprintln!(
        "detection: injection → first payments page firing in Alertmanager: {:.1} s ({name})",
        took.as_secs_f64()
    );
    assert!(took < BAR, "detection took {took:?}, above the marketplace's bar of {BAR:?}");
    assert!(
        first.iter().any(|(p, _)| p.starts_with("SLOCheckoutAvailabilityPage/"))
            && first.iter().any(|(p, _)| p.starts_with("SLOMpesaPaymentSuccessPage/")),
        "both payment SLOs should page: {first:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_fleet_fires_nothing_over_a_simulated_day() {
    let _serial = SERIAL.lock().await;
    const SPEED: f64 = 480.0;
    const DAY_MS: i64 = 86_400_000;
    let dir = testkit::temp_dir("detection-healthy");
    let mut opts = FleetOptions::new(dir.to_path_buf());
    opts.speed = SPEED;
    let eval = opts.evaluation_interval();
    let origin = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    opts.origin_ms = Some(origin);
    let fleet = Fleet::start(opts).await.expect("starting the fleet");
    let agg = AggregatorClient::new(fleet.aggregator_url());

    // Every evaluation the aggregator publishes stays until the next one (at least `eval` of
    // real time); reading four times as often sees each of them.
    let mut evaluations = BTreeSet::new();
    let mut fired: BTreeSet<String> = BTreeSet::new();
    let real_limit = Duration::from_secs_f64(DAY_MS as f64 / 1000.0 / SPEED) + Duration::from_secs(120);
    let t0 = Instant::now();
    while fleet.now_ms() - origin < DAY_MS {
        assert!(t0.elapsed() < real_limit, "a simulated day did not pass in {real_limit:?}");
        if let Ok(v) = agg.alerts().await {
            evaluations.insert(v.evaluated_at_ms);
            fired.extend(v.firing.iter().map(|a| a.key()));
        }
        sleep(eval / 4).await;
    }
    let to = fleet.now_ms();
    let day = |group_by: Vec<Dim>| QueryParams {
        from_ms: Some(origin),
        to_ms: Some(to + 3_600_000),
        group_by,
        ..QueryParams::default()
    };
    let runs = agg.query(&day(vec![Dim::Journey, Dim::Region])).await.expect("the query API");
    // The latency SLOs' own measurements over the day (checkout step < 2 s, USSD balance < 3 s).
    let mut latency = Vec::new();
    for (what, journey, step) in
        [("checkout step", "checkout-mpesa", Some("checkout")), ("ussd-balance run", "ussd-balance", None)]
    {
        let q = QueryParams {
            journeys: vec![journey.into()],
            step: step.map(str::to_owned),
            outcomes: vec!["ok".into()],
            ..day(vec![Dim::Region])
        };
        let v = agg.query(&q).await.expect("the query API");
        for g in &v.groups {
            let l = g.latency_ms.as_ref().map_or_else(
                || "no latency".to_owned(),
                |l| format!("p50 {} ms, p90 {} ms, p95 {} ms, p99 {} ms", l.p50, l.p90, l.p95, l.p99),
            );
            latency.push(format!("{what} in {}: {l} (n={})", g.label(Dim::Region), g.count));
        }
    }
    fleet.stop().await.expect("stopping the fleet cleanly");

    let groups = runs.groups;
    let (mut total, mut failed) = (0, 0);
    for g in &groups {
        let count = g.count;
        total += count;
        failed += g.failed();
        eprintln!(
            "healthy day: {} {}: {count} runs, outcomes {:?}",
            g.label(Dim::Region),
            g.label(Dim::Journey),
            g.outcomes
        );
        assert!(count >= 10, "too few runs to judge: {g:?}");
    }
    let expected_evals = (to - origin) as f64 / (eval.as_secs_f64() * 1000.0 * SPEED);
    eprintln!(
        "healthy day: {total} runs ({failed} failed) over {:.1} simulated hours in {:.0} s; {} of ~{expected_evals:.0} SLO evaluations read; alerts: {fired:?}",
        (to - origin) as f64 / 3.6e6,
        t0.elapsed().as_secs_f64(),
        evaluations.len()
    );
    let expected: usize = EDGES.iter().map(|e| e.journeys().count()).sum();
    assert_eq!(groups.len(), expected, "every edge ran each of its journeys");
    assert!(
        evaluations.len() as f64 >= 0.5 * expected_evals,
        "read only {} of ~{expected_evals:.0} evaluations: the check would miss alerts",
        evaluations.len()
    );
    for l in &latency {
        eprintln!("healthy day: {l}");
    }
    // Availability: the sandbox's normal behaviour and the links' loss must never look like an
    // outage, at any severity. Pages: nothing may wake anyone.
    let availability = ["checkout-availability", "mpesa-payment-success", "ussd-availability"];
    let wrong: Vec<&String> = fired
        .iter()
        .filter(|a| a.starts_with("page ") || availability.iter().any(|s| a.contains(&format!(" {s} "))))
        .collect();
    assert!(wrong.is_empty(), "a healthy fleet fired alerts over a simulated day: {wrong:?} (all: {fired:?})");
    // Latency tickets measure the emulated links, whose timers run late on a loaded machine (an
    // earlier run under heavy load raised a checkout-latency ticket in Dar on ea-3g-slow, with no
    // fault anywhere). Reported, not failed: tests must not depend on this machine's timing.
    if !fired.is_empty() {
        eprintln!("healthy day: NOTE latency tickets fired (slow links or a loaded machine, no fault): {fired:?}");
    }
}
