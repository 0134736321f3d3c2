//! The Airtel Money emulation over HTTP: OAuth with a JSON body, the collection and its reply,
//! the enquiry for every row of the outcome table, callback delivery to the configured URL, every
//! validation error naming its field, the duplicate id, the subscriber lock, tokens, and faults.

mod common;

use std::{sync::Arc, time::Duration};

use axum::{Router, body::Bytes, extract::State, routing::post};
use common::{DELAY, EXPIRY, Http, Resp, fast_config, start_with};
use http::StatusCode;
use parking_lot::Mutex;
use sandbox::{Fault, SandboxHandle, Service, airtel::Settings};
use serde_json::{Value, json};
use tokio::{net::TcpListener, time::Instant};

const ID: &str = "savanna-airtel-client-id";
const SECRET: &str = "savanna-airtel-client-secret";

/// A merchant's callback endpoint, as registered in Airtel's portal: keeps every JSON body.
#[derive(Clone, Default)]
struct Receiver {
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    /// Listens on a free loopback port; returns the receiver and its callback URL.
    async fn start() -> (Receiver, String) {
        let r = Receiver::default();
        let app = Router::new()
            .route(
                "/airtel/callback",
                post(|State(r): State<Receiver>, body: Bytes| async move {
                    r.bodies.lock().push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    "OK"
                }),
            )
            .with_state(r.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/airtel/callback", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (r, url)
    }

    fn for_id(&self, id: &str) -> Vec<Value> {
        self.bodies.lock().iter().filter(|v| v["transaction"]["id"] == id).cloned().collect()
    }

    async fn wait_for(&self, id: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.for_id(id);
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "{} of {n} callbacks for {id}", got.len());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A sandbox with fast timings whose Airtel calls back to `callback_url`.
async fn start(callback_url: Option<&str>) -> SandboxHandle {
    let airtel = Settings { callback_url: callback_url.map(|u| u.parse().unwrap()), ..Default::default() };
    start_with(sandbox::Config { airtel, ..fast_config() }).await
}

fn token_body(id: &str, secret: &str, grant: &str) -> Value {
    json!({"client_id": id, "client_secret": secret, "grant_type": grant})
}

async fn token(http: &Http, base: &str) -> String {
    let r = http.post_json(&format!("{base}/auth/oauth2/token"), &token_body(ID, SECRET, "client_credentials")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["access_token"].as_str().unwrap().to_owned()
}

fn collect_body(msisdn: &str, id: &str) -> Value {
    json!({
        "reference": "Probe",
        "subscriber": {"country": "UG", "currency": "UGX", "msisdn": msisdn},
        "transaction": {"amount": 500, "country": "UG", "currency": "UGX", "id": id},
    })
}

async fn collect(http: &Http, base: &str, token: &str, body: &Value) -> Resp {
    let bearer = format!("Bearer {token}");
    let headers = [("authorization", bearer.as_str()), ("x-country", "UG"), ("x-currency", "UGX"), ("accept", "*/*")];
    http.post_json_with(&format!("{base}/merchant/v1/payments/"), &headers, body).await
}

async fn enquiry(http: &Http, base: &str, token: &str, id: &str) -> Resp {
    let bearer = format!("Bearer {token}");
    let headers = [("authorization", bearer.as_str()), ("x-country", "UG"), ("x-currency", "UGX")];
    http.get_with(&format!("{base}/standard/v1/payments/{id}"), &headers).await
}

/// Polls the enquiry until the status is not TIP; returns the answer.
async fn settled(http: &Http, base: &str, token: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = enquiry(http, base, token, id).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        if v["data"]["transaction"]["status"] != "TIP" {
            return v;
        }
        assert!(Instant::now() < deadline, "{id} still TIP");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A refusal in Airtel's envelope: HTTP status, `status.code` the same, `success` false, and the
/// result code and words expected.
fn assert_refused(r: &Resp, status: StatusCode, result_code: Option<&str>, words: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"]["code"], status.as_u16().to_string(), "{v}");
    assert_eq!(v["status"]["success"], false, "{v}");
    assert_eq!(v["status"]["result_code"].as_str(), result_code, "{v}");
    let message = v["status"]["message"].as_str().unwrap();
    assert!(message.contains(words), "{words:?} not in {message:?}");
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn oauth_takes_a_json_body_and_refuses_bad_requests() {
    let sb = start(None).await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let url = format!("{base}/auth/oauth2/token");
    let r = http.post_json(&url, &token_body(ID, SECRET, "client_credentials")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(keys(&v), ["access_token", "expires_in", "token_type"]);
    assert_eq!(v["expires_in"], "3599", "expires_in is a string");
    assert_eq!(v["token_type"], "bearer");

    let oauth_error = |r: &Resp, status: StatusCode, error: &str, words: &str| {
        assert_eq!(r.status, status, "{}", r.text());
        let v = r.json();
        assert_eq!(v["error"], error, "{v}");
        assert!(v["error_description"].as_str().unwrap().contains(words), "{v}");
    };
    let r = http.post_json(&url, &token_body(ID, "wrong", "client_credentials")).await;
    oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client", "Invalid client credentials");
    let r = http.post_json(&url, &token_body("someone", SECRET, "client_credentials")).await;
    oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client", "Invalid client credentials");
    let r = http.post_json(&url, &token_body(ID, SECRET, "password")).await;
    oauth_error(&r, StatusCode::BAD_REQUEST, "unsupported_grant_type", "grant_type");
    let r = http.post_json(&url, &json!({"client_secret": SECRET, "grant_type": "client_credentials"})).await;
    oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_request", "client_id");
    let r = http.post_json(&url, &json!({"client_id": ID, "grant_type": "client_credentials"})).await;
    oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_request", "client_secret");
    // A form body, as most OAuth servers take: refused, Airtel wants JSON.
    let r = http
        .post_form(&url, &[("client_id", ID), ("client_secret", SECRET), ("grant_type", "client_credentials")])
        .await;
    oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_request", "must be a JSON object");
    sb.shutdown().await;
}

#[tokio::test]
async fn collection_enquiry_and_callback_round_trip() {
    let (rx, url) = Receiver::start().await;
    let sb = start(Some(&url)).await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let tok = token(&http, &base).await;
    // The documented reply, with our id.
    let r = collect(&http, &base, &tok, &collect_body("750000100", "round-trip-1")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"data": {"transaction": {"id": "round-trip-1", "status": "Success."}},
            "status": {"code": "200", "message": "SUCCESS", "result_code": "ESB000010",
                "response_code": "DP00800001006", "success": true}})
    );
    let cb = rx.wait_for("round-trip-1", 1).await;
    let t = &cb[0]["transaction"];
    assert_eq!(keys(t), ["airtel_money_id", "id", "message", "status_code"]);
    assert_eq!(t["status_code"], "TS");
    assert_eq!(t["message"], "Transaction is successful.");
    let money_id = t["airtel_money_id"].as_str().unwrap().to_owned();
    assert!(money_id.starts_with("MP"), "{money_id}");

    let v = settled(&http, &base, &tok, "round-trip-1").await;
    let t = &v["data"]["transaction"];
    assert_eq!(keys(t), ["airtel_money_id", "id", "message", "status"]);
    assert_eq!((t["status"].as_str(), t["id"].as_str()), (Some("TS"), Some("round-trip-1")));
    assert_eq!(t["airtel_money_id"], money_id.as_str(), "the enquiry and the callback agree");
    assert_eq!(v["status"]["response_code"], "DP00800001001");
    assert_eq!(v["status"]["success"], true);

    // A slow payment (07) is TIP, with Airtel's "in process" code, until it settles.
    collect(&http, &base, &tok, &collect_body("750000107", "slow-1")).await;
    let v = enquiry(&http, &base, &tok, "slow-1").await.json();
    assert_eq!(v["data"]["transaction"]["status"], "TIP");
    assert_eq!(v["status"]["response_code"], "DP00800001006");
    assert!(rx.for_id("slow-1").is_empty(), "no callback while in progress");
    assert_eq!(settled(&http, &base, &tok, "slow-1").await["data"]["transaction"]["status"], "TS");
    rx.wait_for("slow-1", 1).await;
    sb.shutdown().await;
}

#[tokio::test]
async fn every_row_of_the_outcome_table() {
    let (rx, url) = Receiver::start().await;
    let sb = start(Some(&url)).await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let tok = token(&http, &base).await;
    // (suffix, final status, response code, callbacks)
    let rows = [
        ("00", "TS", "DP00800001001", 1),
        ("01", "TF", "DP00800001008", 1),
        ("02", "TF", "DP00800001007", 1),
        ("03", "TF", "DP00800001002", 1),
        ("04", "TF", "DP00800001024", 1),
        ("05", "TA", "DP00800001000", 0),
        ("06", "TS", "DP00800001001", 3),
        ("07", "TS", "DP00800001001", 1),
        ("42", "TS", "DP00800001001", 1),
    ];
    for (suffix, ..) in rows {
        let r = collect(&http, &base, &tok, &collect_body(&format!("7500001{suffix}"), &format!("row-{suffix}"))).await;
        assert_eq!(r.status, StatusCode::OK, "{suffix}: {}", r.text());
    }
    // Nobody answers (04): in progress, and not called back, until the expiry.
    let v = enquiry(&http, &base, &tok, "row-04").await.json();
    assert_eq!(v["data"]["transaction"]["status"], "TIP", "{v}");
    assert!(rx.for_id("row-04").is_empty());
    for (suffix, status, code, callbacks) in rows {
        let id = format!("row-{suffix}");
        let v = settled(&http, &base, &tok, &id).await;
        assert_eq!(v["data"]["transaction"]["status"], status, "{suffix}: {v}");
        assert_eq!(v["status"]["response_code"], code, "{suffix}: {v}");
        if callbacks > 0 {
            let got = rx.wait_for(&id, callbacks).await;
            assert!(got.iter().all(|c| c["transaction"]["status_code"] == status), "{suffix}: {got:?}");
            assert_eq!(got[0]["transaction"]["message"], v["data"]["transaction"]["message"]);
        }
    }
    assert_eq!(rx.for_id("row-06").len(), 3, "duplicates");
    assert!(rx.for_id("row-05").is_empty(), "an ambiguous transaction is not called back");
    let timed_out = settled(&http, &base, &tok, "row-04").await;
    assert_eq!(timed_out["data"]["transaction"]["message"], "The transaction was timed out.");
    assert!(EXPIRY > DELAY * 2, "04 settles after the others");
    sb.shutdown().await;
}

#[tokio::test]
async fn without_a_callback_url_results_come_by_enquiry_only() {
    let (rx, _) = Receiver::start().await;
    let sb = start(None).await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let tok = token(&http, &base).await;
    collect(&http, &base, &tok, &collect_body("750000200", "quiet-1")).await;
    assert_eq!(settled(&http, &base, &tok, "quiet-1").await["data"]["transaction"]["status"], "TS");
    assert!(rx.for_id("quiet-1").is_empty());
    sb.shutdown().await;
}

#[tokio::test]
async fn every_validation_error_names_its_field() {
    let sb = start(None).await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let tok = token(&http, &base).await;
    let set = |path: &str, value: Value| {
        let mut b = collect_body("750000300", "fields-1");
        match path.split_once('.') {
            Some((parent, key)) => b[parent][key] = value,
            None => b[path] = value,
        }
        b
    };
    let cases = [
        ("reference", json!(""), "ESB000008"),
        ("subscriber", json!("UG"), "ESB000008"),
        ("subscriber.country", json!("TZ"), "ESB000034"),
        ("subscriber.currency", json!("USD"), "ESB000035"),
        ("subscriber.msisdn", json!("256750000300"), "ESB000033"),
        ("subscriber.msisdn", json!("0750000300"), "ESB000033"),
        ("subscriber.msisdn", json!("75000030"), "ESB000033"),
        ("subscriber.msisdn", json!("650000300"), "ESB000033"),
        ("transaction", json!(null), "ESB000008"),
        ("transaction.amount", json!(0), "ESB000008"),
        ("transaction.amount", json!("five"), "ESB000008"),
        ("transaction.amount", json!(2.5), "ESB000008"),
        ("transaction.country", json!("TZ"), "ESB000034"),
        ("transaction.currency", json!("TZS"), "ESB000035"),
        ("transaction.id", json!(""), "ESB000008"),
        ("transaction.id", json!(7), "ESB000008"),
    ];
    for (field, value, code) in cases {
        let r = collect(&http, &base, &tok, &set(field, value.clone())).await;
        assert_refused(&r, StatusCode::BAD_REQUEST, Some(code), field);
    }
    // The mistake the emulation exists to catch: an E.164 number, country code included.
    let r = collect(&http, &base, &tok, &collect_body("256750000300", "fields-2")).await;
    assert_refused(&r, StatusCode::BAD_REQUEST, Some("ESB000033"), "must not include the country code 256");

    // The headers come first: X-Country, then X-Currency (the country's).
    let bearer = format!("Bearer {tok}");
    let url = format!("{base}/merchant/v1/payments/");
    let body = collect_body("750000300", "fields-3");
    for (headers, code) in [
        (vec![("authorization", bearer.as_str()), ("x-currency", "UGX")], "ROUTER006"),
        (vec![("authorization", bearer.as_str()), ("x-country", "KE"), ("x-currency", "KES")], "ROUTER006"),
        (vec![("authorization", bearer.as_str()), ("x-country", "UG")], "ROUTER112"),
        (vec![("authorization", bearer.as_str()), ("x-country", "UG"), ("x-currency", "TZS")], "ROUTER112"),
    ] {
        let r = http.post_json_with(&url, &headers, &body).await;
        assert_refused(
            &r,
            StatusCode::BAD_REQUEST,
            Some(code),
            if code == "ROUTER006" { "X-Country" } else { "X-Currency" },
        );
    }
    // None of the refused requests was recorded.
    assert_refused(
        &enquiry(&http, &base, &tok, "fields-3").await,
        StatusCode::NOT_FOUND,
        Some("ESB000045"),
        "No Transaction",
    );
    // A Tanzanian collection takes TZ numbers (6 or 7 first) and TZS.
    let tz = json!({
        "reference": "Probe",
        "subscriber": {"country": "TZ", "currency": "TZS", "msisdn": "684000300"},
        "transaction": {"amount": "500", "country": "TZ", "currency": "TZS", "id": "tz-1"},
    });
    let tz_headers = [("authorization", bearer.as_str()), ("x-country", "TZ"), ("x-currency", "TZS")];
    let r = http.post_json_with(&url, &tz_headers, &tz).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // The enquiry answers in the country the payment was made in only.
    assert_refused(
        &enquiry(&http, &base, &tok, "tz-1").await,
        StatusCode::NOT_FOUND,
        Some("ESB000045"),
        "No Transaction",
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn ids_are_unique_and_a_subscriber_has_one_collection_in_flight() {
    let sb = start(None).await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let tok = token(&http, &base).await;
    // 04: in progress until the expiry, so the subscriber stays locked meanwhile.
    let r = collect(&http, &base, &tok, &collect_body("750000404", "lock-1")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = collect(&http, &base, &tok, &collect_body("750000404", "lock-2")).await;
    assert_refused(&r, StatusCode::CONFLICT, Some("ESB000004"), "already in process");
    let r = collect(&http, &base, &tok, &collect_body("750000500", "lock-1")).await;
    assert_refused(&r, StatusCode::BAD_REQUEST, Some("ESB000041"), "External Transaction ID already exists");
    // Another subscriber is free.
    let r = collect(&http, &base, &tok, &collect_body("750000500", "lock-3")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // Once settled the subscriber is free again, but the id stays used.
    assert_eq!(settled(&http, &base, &tok, "lock-1").await["data"]["transaction"]["status"], "TF");
    let r = collect(&http, &base, &tok, &collect_body("750000404", "lock-1")).await;
    assert_refused(&r, StatusCode::BAD_REQUEST, Some("ESB000041"), "transaction.id");
    let r = collect(&http, &base, &tok, &collect_body("750000404", "lock-4")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    sb.shutdown().await;
}

#[tokio::test]
async fn only_live_airtel_tokens_are_accepted() {
    let sb = start_with(sandbox::Config { token_ttl: Duration::from_millis(300), ..fast_config() }).await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let body = collect_body("750000600", "tok-1");
    let r = http
        .post_json_with(&format!("{base}/merchant/v1/payments/"), &[("x-country", "UG"), ("x-currency", "UGX")], &body)
        .await;
    assert_refused(&r, StatusCode::UNAUTHORIZED, None, "access token");
    assert_refused(&collect(&http, &base, "forged", &body).await, StatusCode::UNAUTHORIZED, None, "access token");
    // Daraja's tokens are Daraja's.
    let daraja = common::token(&http, &base).await;
    assert_refused(&collect(&http, &base, &daraja, &body).await, StatusCode::UNAUTHORIZED, None, "access token");
    let tok = token(&http, &base).await;
    assert_eq!(collect(&http, &base, &tok, &body).await.status, StatusCode::OK);
    assert_eq!(enquiry(&http, &base, &tok, "tok-1").await.status, StatusCode::OK);
    assert_refused(&enquiry(&http, &base, "forged", "tok-1").await, StatusCode::UNAUTHORIZED, None, "access token");
    // Expired after its TTL.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_refused(&enquiry(&http, &base, &tok, "tok-1").await, StatusCode::UNAUTHORIZED, None, "access token");
    sb.shutdown().await;
}

#[tokio::test]
async fn faults_answer_in_airtels_envelope() {
    let sb = start(None).await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let tok = token(&http, &base).await;
    let body = collect_body("750000700", "fault-1");
    sb.faults().set(Service::Airtel, Fault { outage: true, ..Fault::default() }).unwrap();
    let r = collect(&http, &base, &tok, &body).await;
    assert_refused(&r, StatusCode::SERVICE_UNAVAILABLE, None, "Service Unavailable");
    assert_eq!(r.headers["x-sandbox-fault"], "outage");
    let r = http.post_json(&format!("{base}/auth/oauth2/token"), &token_body(ID, SECRET, "client_credentials")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "the token path is Airtel's too");
    // Daraja is another service.
    assert!(!common::token(&http, &base).await.is_empty());

    let r = http.put_json(&format!("{base}/admin/faults/airtel"), &json!({"error_rate": 1.0})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = enquiry(&http, &base, &tok, "fault-1").await;
    assert_refused(&r, StatusCode::INTERNAL_SERVER_ERROR, Some("ESB000001"), "Something went wrong");
    assert_eq!(r.headers["x-sandbox-fault"], "error");
    let r = http.put_json(&format!("{base}/admin/faults/airtel"), &json!({"callback_delay_ms": 5})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "daraja only: {}", r.text());

    sb.faults().clear();
    assert_eq!(collect(&http, &base, &tok, &body).await.status, StatusCode::OK);
    sb.shutdown().await;
}
