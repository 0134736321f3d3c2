//! Fault injection: the admin API, each fault kind on each service, flags, and replay by seed.

mod common;

use std::time::Duration;

use common::{CallbackSink, Http, push, push_body, start, start_with, token};
use http::StatusCode;
use sandbox::{Config, Fault, FaultSet, Service};
use serde_json::{Value, json};
use tokio::time::Instant;

async fn at_first_hit(http: &Http, base: &str) -> common::Resp {
    http.post_form(&format!("{base}/ussd/at"), &[("sessionId", "f"), ("phoneNumber", "+254711223344"), ("text", "")])
        .await
}

#[tokio::test]
async fn health_and_admin_api() {
    let sb = start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let r = http.get(&format!("{base}/healthz")).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"status": "ok"})));

    let none = json!({"latency_ms": 0, "jitter_ms": 0, "error_rate": 0.0, "outage": false});
    assert_eq!(
        http.get(&format!("{base}/admin/faults")).await.json(),
        Value::Object(Service::ALL.iter().map(|s| (s.as_str().to_owned(), none.clone())).collect())
    );

    let r = http
        .put_json(
            &format!("{base}/admin/faults/daraja"),
            &json!({"latency_ms": 5, "error_rate": 0.25, "callback_delay_ms": 700}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let set = json!({"latency_ms": 5, "jitter_ms": 0, "error_rate": 0.25, "outage": false, "callback_delay_ms": 700});
    assert_eq!(r.json(), set);
    assert_eq!(http.get(&format!("{base}/admin/faults")).await.json()["daraja"], set);
    assert_eq!(sb.faults().get(Service::Daraja).callback_delay_ms, Some(700));

    for (service, body, field) in [
        ("ussd", json!({"error_rate": 2}), "error_rate"),
        ("ussd", json!({"latency_ms": -1}), "latency_ms"),
        ("ussd", json!({"jitter_ms": "lots"}), "jitter_ms"),
        ("shop", json!({"outage": "yes"}), "outage"),
        ("shop", json!({"callback_delay_ms": 10}), "callback_delay_ms"),
        ("shop", json!({"latency": 10}), "latency"),
        ("daraja", json!("slow"), "body"),
    ] {
        let r = http.put_json(&format!("{base}/admin/faults/{service}"), &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(r.json()["error"].as_str().unwrap().contains(&format!("`{field}`")), "{body}: {}", r.text());
    }
    assert_eq!(sb.faults().get(Service::Ussd), Fault::default(), "a refused fault changes nothing");
    let r = http.put_json(&format!("{base}/admin/faults/mpesa"), &json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    http.put_json(&format!("{base}/admin/faults/ussd"), &json!({"outage": true})).await;
    assert_eq!(http.delete(&format!("{base}/admin/faults/ussd")).await.status, StatusCode::OK);
    assert_eq!(sb.faults().get(Service::Ussd), Fault::default());
    let r = http.delete(&format!("{base}/admin/faults")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(sb.faults().snapshot(), FaultSet::default());
    assert_eq!(http.get(&format!("{base}/nowhere")).await.status, StatusCode::NOT_FOUND);
    sb.shutdown().await;
}

#[tokio::test]
async fn outage_answers_503_for_that_service_only() {
    let sb = start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    // The modem's faults are radio ones (tests/modem.rs); every HTTP service gets the outage.
    for service in Service::ALL.into_iter().filter(|s| *s != Service::Modem) {
        sb.faults().set(service, Fault { outage: true, ..Default::default() }).unwrap();
    }
    let r = at_first_hit(&http, &base).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers["x-sandbox-fault"], "outage");
    let r = http.get(&format!("{base}/oauth/v1/generate?grant_type=client_credentials")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["errorCode"], "503.001.01");
    let r = http.get(&format!("{base}/shop/api/products")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.json()["error"].is_string());
    // Health, admin and the event log stay up.
    assert_eq!(http.get(&format!("{base}/healthz")).await.status, StatusCode::OK);
    assert_eq!(http.get(&format!("{base}/ussd/at/events")).await.status, StatusCode::OK);

    sb.faults().clear_service(Service::Ussd);
    assert_eq!(at_first_hit(&http, &base).await.status, StatusCode::OK);
    assert_eq!(http.get(&format!("{base}/shop/api/products")).await.status, StatusCode::SERVICE_UNAVAILABLE);
    sb.shutdown().await;
}

#[tokio::test]
async fn latency_and_jitter() {
    let sb = start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let put = http.put_json(&format!("{base}/admin/faults/ussd"), &json!({"latency_ms": 300})).await;
    assert_eq!(put.status, StatusCode::OK);
    let t = Instant::now();
    let r = at_first_hit(&http, &base).await;
    let took = t.elapsed();
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().starts_with("CON Savanna Pay"));
    assert!(took >= Duration::from_millis(300), "{took:?}");
    // Other services are not slowed.
    let t = Instant::now();
    http.get(&format!("{base}/shop/api/products")).await;
    assert!(t.elapsed() < Duration::from_millis(250), "{:?}", t.elapsed());

    sb.faults().set(Service::Shop, Fault { latency_ms: 100, jitter_ms: 40, ..Default::default() }).unwrap();
    let mut times = Vec::new();
    for _ in 0..12 {
        let t = Instant::now();
        assert_eq!(http.get(&format!("{base}/shop/api/products")).await.status, StatusCode::OK);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (min, max) = times.iter().fold((f64::MAX, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    assert!(max - min > 10.0, "jitter spreads the delays: {times:?}");
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    assert!((60.0..300.0).contains(&mean), "mean near the latency: {mean} ms ({times:?})");
    sb.shutdown().await;
}

async fn statuses(seed: u64, n: usize) -> Vec<u16> {
    let sb = start_with(Config { seed, ..common::fast_config() }).await;
    sb.faults().set(Service::Shop, Fault { error_rate: 0.5, ..Default::default() }).unwrap();
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(http.get(&format!("{base}/shop/api/products")).await.status.as_u16());
    }
    sb.shutdown().await;
    out
}

#[tokio::test]
async fn error_rate_is_seeded() {
    let a = statuses(7, 200).await;
    let errors = a.iter().filter(|&&s| s == 500).count();
    assert!((60..=140).contains(&errors), "{errors} of 200 at rate 0.5");
    assert!(a.iter().all(|&s| s == 200 || s == 500));
    assert_eq!(a, statuses(7, 200).await, "the same seed replays the same faults");

    let sb = start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    sb.faults().set(Service::Ussd, Fault { error_rate: 1.0, ..Default::default() }).unwrap();
    let r = at_first_hit(&http, &base).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.headers["x-sandbox-fault"], "error");
    sb.faults().set(Service::Daraja, Fault { error_rate: 1.0, ..Default::default() }).unwrap();
    let r = http.get(&format!("{base}/oauth/v1/generate?grant_type=client_credentials")).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.json()["errorCode"], "500.003.1001");
    sb.shutdown().await;
}

#[tokio::test]
async fn callback_delay_override() {
    let sb = start().await;
    let sink = CallbackSink::start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let tok = token(&http, &base).await;
    sb.faults().set(Service::Daraja, Fault { callback_delay_ms: Some(700), ..Default::default() }).unwrap();
    let t = Instant::now();
    let r = push(&http, &base, &tok, &push_body("254708920450", 5, &sink.url)).await;
    let checkout = r.json()["CheckoutRequestID"].as_str().unwrap().to_owned();
    let got = sink.wait_for(&checkout, 1, Duration::from_secs(5)).await;
    let after = got[0].0 - t;
    assert!(after >= Duration::from_millis(700), "{after:?}");
    sb.shutdown().await;
}

#[tokio::test]
async fn faults_from_flags_apply_at_start() {
    let mut faults = FaultSet::default();
    faults.apply_flags(&["shop:outage=true", "ussd:latency_ms=150"]).unwrap();
    let sb = start_with(Config { faults, ..common::fast_config() }).await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    assert_eq!(http.get(&format!("{base}/shop/api/products")).await.status, StatusCode::SERVICE_UNAVAILABLE);
    let t = Instant::now();
    assert_eq!(at_first_hit(&http, &base).await.status, StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(150));
    sb.shutdown().await;

    let mut bad = FaultSet::default();
    bad.shop.callback_delay_ms = Some(5);
    let err = sandbox::Sandbox::start(Config { faults: bad, ..common::fast_config() }).await.err().expect("refused");
    assert!(err.to_string().contains("callback_delay_ms"), "{err}");
}

#[tokio::test]
async fn echo_repeats_the_request_in_a_500() {
    let sb = start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let r = http.put_json(&format!("{base}/admin/faults/shop"), &json!({"echo": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["echo"], true);
    assert_eq!(http.get(&format!("{base}/admin/faults")).await.json()["ussd"].get("echo"), None, "off: left out");

    let body = json!({"phone": "+254 712 345 678", "note": "x"});
    let r = http
        .post_json_with(&format!("{base}/shop/api/checkout?ref=sub_254712345678"), &[("x-api-key", "k-123")], &body)
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.headers["x-sandbox-fault"], "echo");
    let text = r.text();
    for part in
        ["POST /shop/api/checkout?ref=sub_254712345678 HTTP/1.1\n", "x-api-key: k-123\n", &format!("\n\n{body}")]
    {
        assert!(text.contains(part), "{part:?} in\n{text}");
    }
    // Other services answer as usual; a flag sets it too.
    assert_eq!(at_first_hit(&http, &base).await.status, StatusCode::OK);
    let mut set = FaultSet::default();
    set.apply_flags(&["ussd:echo=true"]).unwrap();
    assert!(set.ussd.echo);
    let r = http.put_json(&format!("{base}/admin/faults/shop"), &json!({"echo": "yes"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["error"].as_str().unwrap().contains("`echo`"), "{}", r.text());
    sb.shutdown().await;
}
