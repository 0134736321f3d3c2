//! The `wait` model, its checks and its run on the paused clock.

use std::{path::Path, time::Duration};

use crate::journey::parse_journey;

#[test]
fn fixed_or_min_to_max() {
    let parse = |w: &str| parse_journey(&format!("name: x\nsteps:\n  - name: a\n    wait: {w}\n"), "j.yaml", Path::new("."));
    assert_eq!(parse("{fixed: 2s}").unwrap().steps[0].timeout, Duration::from_secs(3));
    assert_eq!(parse("{min: 1s, max: 4s}").unwrap().steps[0].timeout, Duration::from_secs(5));
    let e = parse("{min: 1s}").unwrap_err().to_string();
    assert!(e.contains("steps[0].wait: step `a`: give either `fixed`, or both `min` and `max`"), "{e}");
    let e = parse("{fixed: 1s, min: 1s, max: 2s}").unwrap_err().to_string();
    assert!(e.contains("give either"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn a_wait_takes_its_time_on_the_paused_clock() {
    let j = parse_journey("name: x\nsteps:\n  - name: a\n    wait: {fixed: 90s}\n", "j.yaml", Path::new(".")).unwrap();
    let t = crate::play(&j, &crate::PlayOptions::new(netem::Profile::unshaped("loopback"), 1)).await;
    assert_eq!(t.outcome, crate::Outcome::Ok);
    assert_eq!(t.steps[0].duration, Duration::from_secs(90));
}
