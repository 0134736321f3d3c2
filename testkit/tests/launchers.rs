//! The launchers against the real tools (Debian's `prometheus` and `prometheus-alertmanager`):
//! each comes up on loopback, answers, and leaves no directory behind once dropped.

use std::time::Duration;

use testkit::{
    alertmanager::Alertmanager,
    prometheus::{Prometheus, PrometheusConfig, Promtool},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_starts_with_the_example_routing_and_holds_no_alerts() {
    let Some(am) = Alertmanager::start_example().await else { return };
    assert!(am.url.starts_with("http://127.0.0.1:"));
    assert!(am.alerts().await.is_empty(), "a fresh Alertmanager holds no alerts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_starts_on_loopback() {
    let Some(p) = Prometheus::start(&PrometheusConfig::every(Duration::from_secs(1))).await else { return };
    assert!(p.url.starts_with("http://127.0.0.1:"));
}

#[test]
fn promtool_checks_a_metrics_text() {
    let Some(promtool) = Promtool::find() else { return };
    let said = promtool.check_metrics("# HELP x_total A counter.\n# TYPE x_total counter\nx_total 1\n");
    assert!(said.ok, "{}", said.text);
    assert!(!promtool.check_metrics("not a metric line {\n").ok);
}
