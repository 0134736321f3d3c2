//! The Vodacom M-Pesa OpenAPI emulation over real HTTP: sessions under the bundled test key
//! (encrypted by the test as a client would, with the public half the portal would hand out), C2B
//! for every outcome, each field's refusal, duplicates, the customer lock, faults.

mod common;

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};
use common::{Http, Resp};
use http::{Method, StatusCode};
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey, RsaPublicKey, pkcs8::DecodePublicKey};
use sandbox::{
    Fault, Service,
    mpesa_tz::{SANDBOX_API_KEY, outcome::TABLE},
};
use serde_json::{Value, json};

const PUBLIC_KEY: &str = include_str!("../../scenarios/secrets/sandbox-mpesa-tz-public-key");
const ROOT: &str = "/sandbox/ipg/v2/vodacomTZN";

fn public_key() -> RsaPublicKey {
    RsaPublicKey::from_public_key_der(&STANDARD.decode(PUBLIC_KEY.trim()).unwrap()).unwrap()
}

fn encrypt(key: &RsaPublicKey, secret: &str) -> String {
    STANDARD.encode(key.encrypt(&mut rsa::rand_core::OsRng, Pkcs1v15Encrypt, secret.as_bytes()).unwrap())
}

async fn session_with(http: &Http, base: &str, key: &RsaPublicKey, api_key: &str) -> Resp {
    let bearer = format!("Bearer {}", encrypt(key, api_key));
    http.get_with(&format!("{base}{ROOT}/getSession/"), &[("authorization", &bearer), ("origin", "*")]).await
}

async fn session(http: &Http, base: &str) -> String {
    let r = session_with(http, base, &public_key(), SANDBOX_API_KEY).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["output_ResponseCode"], "INS-0");
    v["output_SessionID"].as_str().unwrap().to_owned()
}

fn c2b_body(msisdn: &str, conversation: &str) -> Value {
    json!({
        "input_Amount": "500",
        "input_Country": "TZN",
        "input_Currency": "TZS",
        "input_CustomerMSISDN": msisdn,
        "input_ServiceProviderCode": "000000",
        "input_ThirdPartyConversationID": conversation,
        "input_TransactionReference": "SavannaPulse",
        "input_PurchasedItemsDesc": "Probe"
    })
}

async fn c2b(http: &Http, base: &str, session: &str, body: &Value) -> Resp {
    let bearer = format!("Bearer {}", encrypt(&public_key(), session));
    let headers = [("authorization", bearer.as_str()), ("origin", "*")];
    http.post_json_with(&format!("{base}{ROOT}/c2bPayment/singleStage/"), &headers, body).await
}

fn code(r: &Resp) -> String {
    r.json()["output_ResponseCode"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_payment_answers_when_the_customer_has_acted() {
    let sb = common::start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let s = session(&http, &base).await;
    let r = c2b(&http, &base, &s, &c2b_body("255754000100", "conv1")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let v = r.json();
    assert_eq!(v["output_ResponseCode"], "INS-0");
    assert_eq!(v["output_ResponseDesc"], "Request processed successfully");
    assert_eq!(v["output_ThirdPartyConversationID"], "conv1");
    assert_eq!(v["output_TransactionID"].as_str().unwrap().len(), 12);
    assert_eq!(v["output_ConversationID"].as_str().unwrap().len(), 32);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_suffix_answers_its_code_and_status() {
    let sb = common::start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let s = session(&http, &base).await;
    let calls = TABLE.iter().map(|(suffix, outcome)| {
        let (http, base, s) = (http.clone(), base.clone(), s.clone());
        async move {
            let r = c2b(&http, &base, &s, &c2b_body(&format!("2557540001{suffix}"), &format!("c{suffix}"))).await;
            (*outcome, r)
        }
    });
    for (outcome, r) in futures_join(calls).await {
        let (words, status) = sandbox::mpesa_tz::describe(outcome.code());
        assert_eq!((r.status.as_u16(), code(&r)), (status, outcome.code().to_owned()), "{outcome:?}: {}", r.text());
        assert_eq!(r.json()["output_ResponseDesc"], words);
    }
    sb.shutdown().await;
}

/// Runs the futures at once and collects their outputs in order.
async fn futures_join<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn sessions_need_the_api_key_under_our_public_key() {
    let sb = common::start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let r = session_with(&http, &base, &public_key(), "another-key").await;
    assert_eq!((r.status, code(&r)), (StatusCode::UNAUTHORIZED, "INS-2".into()));
    let stranger = RsaPublicKey::from(&RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap());
    let r = session_with(&http, &base, &stranger, SANDBOX_API_KEY).await;
    assert_eq!((r.status, code(&r)), (StatusCode::UNAUTHORIZED, "INS-2".into()), "another key pair");
    let r = http.get_with(&format!("{base}{ROOT}/getSession/"), &[("authorization", "Bearer not-base64!")]).await;
    assert_eq!(code(&r), "INS-20", "no Origin header: {}", r.text());
    let r = http
        .get_with(
            &format!("{base}/sandbox/ipg/v2/vodacomGHA/getSession/"),
            &[("authorization", &format!("Bearer {}", encrypt(&public_key(), SANDBOX_API_KEY))), ("origin", "*")],
        )
        .await;
    assert_eq!(code(&r), "INS-998");
    // A payment with an unknown session: 401, and the words say it is the session.
    let r = c2b(&http, &base, "0123456789abcdef0123456789abcdef", &c2b_body("255754000100", "x")).await;
    assert_eq!((r.status, code(&r)), (StatusCode::UNAUTHORIZED, "INS-26".into()));
    assert!(r.json()["output_ResponseDesc"].as_str().unwrap().contains("session"));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_fields_duplicates_and_the_customer_lock_are_refused() {
    let sb =
        common::start_with(sandbox::Config { query_expiry: Duration::from_secs(1), ..common::fast_config() }).await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let s = session(&http, &base).await;
    let mut bad = c2b_body("255754000100", "b1");
    bad["input_CustomerMSISDN"] = json!("0754000100");
    let r = c2b(&http, &base, &s, &bad).await;
    assert_eq!((r.status, code(&r)), (StatusCode::BAD_REQUEST, "INS-2051".into()));
    let mut missing = c2b_body("255754000100", "b2");
    missing.as_object_mut().unwrap().remove("input_PurchasedItemsDesc");
    let r = c2b(&http, &base, &s, &missing).await;
    assert_eq!(code(&r), "INS-20");
    assert!(r.text().contains("input_PurchasedItemsDesc"));

    assert_eq!(c2b(&http, &base, &s, &c2b_body("255754000200", "d1")).await.status, StatusCode::CREATED);
    let r = c2b(&http, &base, &s, &c2b_body("255754000300", "d1")).await;
    assert_eq!((r.status, code(&r)), (StatusCode::CONFLICT, "INS-10".into()), "a reused conversation id");

    // Two payments for one customer at once: one has the prompt (04 waits for the expiry), the
    // other is refused at once, whichever arrives first.
    let call = |conversation: &'static str| {
        let (http, base, s) = (http.clone(), base.clone(), s.clone());
        tokio::spawn(async move { c2b(&http, &base, &s, &c2b_body("255754000404", conversation)).await })
    };
    let (a, b) = (call("l1"), call("l2"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let mut got = [(a.status, code(&a)), (b.status, code(&b))];
    got.sort();
    assert_eq!(got, [(StatusCode::REQUEST_TIMEOUT, "INS-9".into()), (StatusCode::CONFLICT, "INS-10".into())]);
    assert!(a.text().contains("in progress") || b.text().contains("in progress"));
    sb.shutdown().await;
}

#[tokio::test]
async fn faults_answer_in_the_openapi_envelope() {
    let sb = common::start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    sb.faults().set(Service::MpesaTz, Fault { outage: true, ..Default::default() }).unwrap();
    let r = http.send(Method::GET, &format!("{base}{ROOT}/getSession/"), &[], None).await;
    assert_eq!((r.status, code(&r)), (StatusCode::SERVICE_UNAVAILABLE, "INS-16".into()));
    assert_eq!(r.headers["x-sandbox-fault"], "outage");
    let r = http.put_json(&format!("{base}/admin/faults/mpesa-tz"), &json!({"error_rate": 1.0})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = http.send(Method::GET, &format!("{base}{ROOT}/getSession/"), &[], None).await;
    assert_eq!((r.status, code(&r)), (StatusCode::INTERNAL_SERVER_ERROR, "INS-1".into()));
    sb.shutdown().await;
}
