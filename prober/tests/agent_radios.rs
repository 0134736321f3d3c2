//! The agent in-process with a fake radio source (a test double for the AT engine, which is tested
//! with its own modem emulator): the reports it sends carry the modems' readings in
//! `heartbeat.radios`, and a hung source reads as `no_answer` instead of holding the reports up.

mod agent_support;

use std::{sync::Arc, time::Duration};

use agent_support::{FakeAggregator, TOKEN, tmpdir, wait_until};
use prober::agent::{
    Control, Options,
    radios::{BoxFuture, RadioSource},
    run_with_radios,
};
use report::RadioHealth;
use testkit::config::{EdgeConfig, EdgeJourney, ms};

struct Fake {
    hang: bool,
}

impl RadioSource for Fake {
    fn modems(&self) -> Vec<String> {
        vec!["ttyUSB2".into()]
    }
    fn read(&self) -> BoxFuture<'_, Vec<RadioHealth>> {
        if self.hang {
            return Box::pin(std::future::pending());
        }
        Box::pin(async {
            vec![RadioHealth {
                modem: "ttyUSB2".into(),
                signal_dbm: Some(-77),
                registration: "home".into(),
                operator: "MTN UG".into(),
                access: "utran".into(),
                sim: "ready".into(),
                read_at_ms: chrono::Utc::now().timestamp_millis(),
                error: String::new(),
            }]
        })
    }
}

async fn reports_radios(tag: &str, hang: bool) -> RadioHealth {
    let agg = FakeAggregator::start().await;
    let dir = tmpdir(tag);
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(
        dir.join("probe.yaml"),
        "name: probe\nvariables:\n  target: http://127.0.0.1:1\nsteps:\n  - name: hit\n    http:\n      url: \"{{ target }}/probe\"\n      assert: {status: 200}\n",
    )
    .unwrap();
    let path = EdgeConfig::new("kla-1", "kampala", &agg.url(), "file:token")
        .reporting_interval(ms(1_000))
        .profile("loopback")
        .listen("127.0.0.1:0")
        .journey(EdgeJourney::new("probe.yaml", ms(500)).timeout(ms(400)).var("target", agg.url()))
        .write(&dir.join("edge.yaml"));
    let cfg = prober::agent::config::load(&path).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let agent = tokio::spawn(run_with_radios(cfg, Options::default(), Some(Arc::new(Fake { hang })), rx));
    let with_radios = || agg.reports().into_iter().find(|r| !r.heartbeat.radios.is_empty());
    wait_until("a report with radios", Duration::from_secs(30), || with_radios().is_some()).await;
    tx.send(Control::Stop).await.unwrap();
    agent.await.unwrap().unwrap();
    with_radios().unwrap().heartbeat.radios[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reports_carry_the_modems_readings() {
    let r = reports_radios("radios-ok", false).await;
    assert_eq!((r.modem.as_str(), r.signal_dbm, r.operator.as_str()), ("ttyUSB2", Some(-77), "MTN UG"));
    assert!(r.is_up());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_modem_reads_no_answer_and_the_reports_go_on() {
    let r = reports_radios("radios-hung", true).await;
    assert_eq!((r.modem.as_str(), r.error.as_str()), ("ttyUSB2", "no_answer"));
    assert!(!r.is_up());
}
