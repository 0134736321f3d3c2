use std::{collections::BTreeMap, path::Path, time::Duration};

use conf::Source;
use tokio::time::Instant;

use super::*;
use crate::journey::parse_journey;

fn caps(host: (u32, u64), msisdn: (u32, u64)) -> Politeness {
    Politeness {
        per_host: Cap::new(host.0, Duration::from_millis(host.1)),
        per_msisdn: Cap::new(msisdn.0, Duration::from_millis(msisdn.1)),
    }
}

/// 3 at once, then one every 1/3 s: the n-th request never starts before (n − 2) × 333 ms.
#[tokio::test(start_paused = true)]
async fn the_host_cap_holds_and_requests_wait_for_it() {
    let limiters = Limiters::new();
    let polite = limiters.for_run(&caps((3, 1000), (5, 60_000)));
    let start = Instant::now();
    let mut rec = Recorder::default();
    let mut starts = Vec::new();
    for _ in 0..9 {
        polite.host("shop.example:443", &mut rec).await;
        starts.push(start.elapsed());
    }
    let interval = Duration::from_secs(1) / 3;
    for (n, at) in starts.iter().enumerate() {
        let earliest = interval * (n.saturating_sub(2) as u32);
        assert!(*at >= earliest, "request {n} at {at:?}, before {earliest:?}: {starts:?}");
        assert!(*at <= earliest + Duration::from_millis(1), "request {n} waited too long: {starts:?}");
    }
    assert!(rec.throttled.abs_diff(starts[8]) < Duration::from_millis(1), "the wait is recorded: {:?}", rec.throttled);
    // Another host has a budget of its own.
    let before = Instant::now();
    polite.host("other.example:443", &mut rec).await;
    assert_eq!(before.elapsed(), Duration::ZERO);
    // A second run sharing the limiters shares the budget.
    let second = limiters.for_run(&caps((3, 1000), (5, 60_000)));
    let before = Instant::now();
    second.host("shop.example:443", &mut rec).await;
    assert!(before.elapsed() > Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn one_number_in_any_shape_has_one_budget_and_a_timeout_says_why() {
    let polite = Limiters::new().for_run(&caps((50, 1000), (1, 30_000)));
    let mut rec = Recorder::default();
    let start = Instant::now();
    polite.msisdn("+254 700 000100", &mut rec).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    let cut = tokio::time::timeout(Duration::from_secs(5), polite.msisdn("254700000100", &mut rec)).await;
    assert!(cut.is_err(), "the second push to the number waits for 30 s");
    assert_eq!(rec.throttled, Duration::from_secs(5), "a wait cut short is recorded too");
    let why = rec.last_problem.clone().unwrap();
    assert_eq!(why, "waiting for the cap politeness.per_msisdn (1 per 30s) for one MSISDN");
    assert!(!why.contains("254"), "the number is never shown");
    polite.msisdn("254700000100", &mut rec).await;
    assert!(start.elapsed() >= Duration::from_secs(30));
}

const THREE_CALLS: &str = "name: x
variables: {shop: \"http://127.0.0.1:7700\"}
politeness:
  per_host: {max: 2, per: 1s}
steps:
  - name: a
    http: {url: \"{{ shop }}/a\"}
  - name: b
    http: {url: \"{{ shop }}/b\"}
  - name: c
    http: {url: \"{{ shop }}/c\"}
";

#[test]
fn a_journey_over_its_cap_is_named_with_file_line_and_field() {
    let src = Source::new("j.yaml", THREE_CALLS);
    let j = parse_journey(THREE_CALLS, "j.yaml", Path::new(".")).unwrap();
    assert_eq!(j.politeness.per_host, Cap::new(2, Duration::from_secs(1)));
    assert_eq!(j.politeness.per_msisdn, Politeness::default().per_msisdn, "the other cap keeps its default");
    let n: Vec<String> = journey_notices(&src, &j).iter().map(ToString::to_string).collect();
    assert_eq!(
        n,
        ["j.yaml:7:17: steps[0].http.url: one run sends 3 requests to 127.0.0.1:7700, above politeness.per_host \
          (2 per 1s): each run will wait about 500 ms for the cap (inside its step timeouts); raise \
          politeness.per_host.max to at least 3 if the owner agrees"]
    );
    let ok = THREE_CALLS.replace("max: 2", "max: 3");
    let j = parse_journey(&ok, "j.yaml", Path::new(".")).unwrap();
    assert!(journey_notices(&Source::new("j.yaml", ok), &j).is_empty());
}

#[test]
fn a_load_plan_over_the_cap_says_what_gets_through_and_what_to_do() {
    let src = Source::new("j.yaml", THREE_CALLS.replace("max: 2", "max: 30"));
    let j = parse_journey(src.text(), "j.yaml", Path::new(".")).unwrap();
    assert!(plan_notices(&src, &j, &j.variables, 10.0).is_empty(), "30 requests/s is within 30 per 1s");
    let n: Vec<String> = plan_notices(&src, &j, &j.variables, 20.0).iter().map(ToString::to_string).collect();
    assert_eq!(n.len(), 1, "{n:?}");
    assert!(
        n[0].starts_with(
            "j.yaml:7:17: steps[0].http.url: 20 arrivals/s would need 60.0 requests/s to 127.0.0.1:7700, \
             above politeness.per_host (30 per 1s, 30.0/s): the run will wait for the cap, so at most about 10.0 \
             arrivals/s get through; lower the rate, or raise politeness.per_host"
        ),
        "{n:?}"
    );
    // An override moves the target elsewhere: the demand follows it.
    let vars = BTreeMap::from([("shop".to_owned(), "http://127.0.0.1:7701".to_owned())]);
    let n = plan_notices(&src, &j, &vars, 20.0);
    assert!(n[0].to_string().contains("to 127.0.0.1:7701"), "{n:?}");
}

#[test]
fn bad_caps_are_refused_at_their_field() {
    let parse = |p: &str| {
        let src = format!("name: x\npoliteness: {p}\nsteps:\n  - name: a\n    wait: {{fixed: 1s}}\n");
        parse_journey(&src, "j.yaml", Path::new(".")).unwrap_err().to_string()
    };
    let e = parse("{per_host: {max: 0, per: 1s}}");
    assert!(
        e.starts_with("j.yaml:2:30: politeness.per_host.max: invalid value: integer `0`, expected a nonzero u32"),
        "{e}"
    );
    let e = parse("{per_msisdn: {max: 5}}");
    assert!(e.contains("politeness.per_msisdn") && e.contains("missing field `per`"), "{e}");
    let e = parse("{per_hots: {max: 5, per: 1s}}");
    assert!(e.contains("politeness.per_hots: unknown field `per_hots`"), "{e}");
    let e = parse("{per_host: {max: 5000, per: 1ms}}");
    assert!(e.starts_with("j.yaml:2:41: politeness.per_host.per: `1ms` is too short for max 5000"), "{e}");
}
