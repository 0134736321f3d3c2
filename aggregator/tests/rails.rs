//! Payment rails through a running aggregator: reports whose payment series carry `rail` and
//! `reason` are stored, queried by rail and provider code over the HTTP API, exported with those
//! labels on `/metrics`, and counted by the bundled per-rail SLO; series without them read as
//! before.

mod common;

use std::{sync::Arc, time::Duration};

use aggregator::{
    Server,
    clock::{ManualClock, SharedClock},
};
use common::{Http, KLA, NBO, key, load_config, report, series, temp_dir};
use testkit::reports::pay_key;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_are_stored_queried_exported_and_counted_by_rail() {
    let dir = temp_dir("rails");
    let config = load_config(&dir, "slo:\n  evaluation_interval: 1s\n");
    let now = chrono::Utc::now().timestamp_millis();
    let shared: SharedClock = Arc::new(ManualClock::new(now));
    let server = Server::start(&config, shared).await.unwrap();
    let http = Http::new(server.base_url());

    // Kampala: 3 MoMo payments succeed, 1 is declined, 1 Airtel collection ends with a code the
    // rail's table did not know; the cart step and the journey level carry no rail.
    let momo = |outcome, reason| pay_key("checkout-momo", "pay", outcome, "kampala", "momo", reason);
    let kla = report(
        "kla-1",
        "kampala",
        1,
        now - 1_000,
        vec![
            series(key("checkout-momo", "", "ok", "kampala"), &[2_000_000; 4]),
            series(key("checkout-momo", "cart", "ok", "kampala"), &[100_000; 4]),
            series(momo("ok", "SUCCESSFUL"), &[1_500_000; 3]),
            series(momo("business_error", "APPROVAL_REJECTED"), &[4_000_000]),
            series(pay_key("airtel-collect", "collect", "gateway_error", "kampala", "airtel", "unknown"), &[900_000]),
        ],
    );
    let (s, j) = http.post_report(Some(KLA), &kla).await;
    assert_eq!((s, j["status"].as_str()), (200, Some("stored")), "{j}");
    // Nairobi, from a prober that knows nothing of rails: its report reads as before.
    let nbo =
        report("nbo-1", "nairobi", 1, now - 1_000, vec![series(key("checkout-mpesa", "", "ok", "nairobi"), &[5])]);
    assert_eq!(http.post_report(Some(NBO), &nbo).await.0, 200);
    // A reason without a rail is refused, naming the field.
    let mut bad = report("kla-1", "kampala", 2, now - 500, vec![series(momo("ok", "SUCCESSFUL"), &[5])]);
    bad.series[0].key.rail.clear();
    let (s, j) = http.post_report(Some(KLA), &bad).await;
    assert_eq!(s, 400, "{j}");
    assert!(j["reason"].as_str().unwrap().starts_with("series[0].reason:"), "{j}");

    // The query API: by rail (every payment step of it), grouped by rail and reason.
    let from = now - 3_600_000;
    let (s, q) = http.get(&format!("/api/v1/query?rail=momo,airtel&group_by=rail,reason&from={from}")).await;
    assert_eq!(s, 200, "{q}");
    let groups: Vec<(String, String, u64)> = q["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let l = |k: &str| g["labels"][k].as_str().unwrap().to_owned();
            (l("rail"), l("reason"), g["count"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("airtel".into(), "unknown".into(), 1),
            ("momo".into(), "APPROVAL_REJECTED".into(), 1),
            ("momo".into(), "SUCCESSFUL".into(), 3)
        ]
    );
    assert_eq!(q["selection"]["rails"], serde_json::json!(["momo", "airtel"]), "{q}");
    let (_, q) = http.get(&format!("/api/v1/query?reason=APPROVAL_REJECTED&group_by=outcome&from={from}")).await;
    assert_eq!(q["groups"][0]["labels"]["outcome"], "business_error", "{q}");
    // Without rail filters the default is still the journey level, without a `rails` key.
    let (_, q) = http.get(&format!("/api/v1/query?group_by=journey&from={from}")).await;
    assert_eq!(q["groups"].as_array().unwrap().len(), 2, "{q}");
    assert!(q["selection"].get("rails").is_none(), "{q}");
    let (s, q) = http.get("/api/v1/query?group_by=provider").await;
    assert_eq!(s, 400, "{q}");

    // /metrics: rail and reason on the payment series only.
    let text = String::from_utf8(http.request("GET", "/metrics", None, Vec::new()).await.2.to_vec()).unwrap();
    assert!(text.contains(r#"synthetic_journey_runs_total{journey="checkout-momo",step="pay",region="kampala",rail="momo",outcome="business_error",reason="APPROVAL_REJECTED"} 1"#), "{text}");
    assert!(
        text.contains(
            r#"synthetic_journey_runs_total{journey="checkout-momo",step="cart",region="kampala",outcome="ok"} 4"#
        ),
        "{text}"
    );

    // The bundled MoMo SLO counts the 4 payments (1 bad); the Airtel one its collection.
    let events = |slo: &'static str, journey: &'static str| {
        let http = &http;
        async move {
            for _ in 0..100 {
                let (_, j) = http.get(&format!("/api/v1/slos?slo={slo}")).await;
                let scope = j["slos"][0]["scopes"].as_array().and_then(|scopes| {
                    scopes
                        .iter()
                        .find(|s| s["scope"]["journey"] == journey && s["scope"]["region"] == "kampala")
                        .cloned()
                });
                if let Some(s) = scope {
                    assert_eq!(j["slos"][0]["selection"]["rails"][0], slo.split("-payment").next().unwrap(), "{j}");
                    return (s["period"]["events"].as_u64().unwrap(), s["period"]["bad"].as_u64().unwrap());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("no {slo} scope for {journey}");
        }
    };
    assert_eq!(events("momo-payment-success", "checkout-momo").await, (4, 1));
    assert_eq!(events("airtel-payment-success", "airtel-collect").await, (1, 1));
    server.shutdown().await.unwrap();
}
