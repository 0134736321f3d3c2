//! The MTN MoMo emulation over real HTTP: provisioning, the token, request to pay with its status
//! and callbacks for every outcome, each refusal in MoMo's shape, and faults.

mod common;

use std::time::Duration;

use common::{CallbackSink, Http, Resp, basic};
use http::{Method, StatusCode};
use sandbox::{
    Fault, Service,
    momo::{SANDBOX_API_KEY, SANDBOX_API_USER, SANDBOX_SUBSCRIPTION_KEY, outcome::TABLE},
};
use serde_json::{Value, json};
use tokio::time::Instant;

const SUB: (&str, &str) = ("ocp-apim-subscription-key", SANDBOX_SUBSCRIPTION_KEY);

fn reference() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn token(http: &Http, base: &str) -> String {
    let auth = basic(SANDBOX_API_USER, SANDBOX_API_KEY);
    let r = http.send(Method::POST, &format!("{base}/collection/token/"), &[SUB, ("authorization", &auth)], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["token_type"], "access_token");
    assert!(v["expires_in"].is_u64(), "expires_in is a number: {v}");
    v["access_token"].as_str().unwrap().to_owned()
}

fn payment(party: &str, currency: &str) -> Value {
    json!({
        "amount": "500",
        "currency": currency,
        "externalId": "SavannaPulse",
        "payer": {"partyIdType": "MSISDN", "partyId": party},
        "payerMessage": "Probe",
        "payeeNote": "SavannaPulse"
    })
}

/// A request to pay with the usual headers, plus `extra`.
async fn request(http: &Http, base: &str, token: &str, reference: &str, body: &Value, extra: &[(&str, &str)]) -> Resp {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![
        SUB,
        ("authorization", bearer.as_str()),
        ("x-target-environment", "mtnuganda"),
        ("x-reference-id", reference),
    ];
    headers.extend_from_slice(extra);
    http.post_json_with(&format!("{base}/collection/v1_0/requesttopay"), &headers, body).await
}

async fn status(http: &Http, base: &str, token: &str, reference: &str) -> Resp {
    let bearer = format!("Bearer {token}");
    let headers = [SUB, ("authorization", bearer.as_str()), ("x-target-environment", "mtnuganda")];
    http.get_with(&format!("{base}/collection/v1_0/requesttopay/{reference}"), &headers).await
}

/// Polls the status until it is no longer PENDING (panics after `within`).
async fn settled(http: &Http, base: &str, token: &str, reference: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let r = status(http, base, token, reference).await;
        assert_eq!(r.status, StatusCode::OK, "status answers 200 even for a failed payment: {}", r.text());
        let v = r.json();
        if v["status"] != "PENDING" {
            return v;
        }
        assert!(Instant::now() < deadline, "still PENDING after {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn code_of(r: &Resp) -> String {
    r.json()["code"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_request_to_pay_is_accepted_then_settles_and_calls_back() {
    let sb = common::start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let sink = CallbackSink::start().await;
    let t = token(&http, &base).await;
    let id = reference();
    let r = request(&http, &base, &t, &id, &payment("256772000100", "UGX"), &[("x-callback-url", &sink.url)]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert!(r.body.is_empty(), "202 has an empty body");
    assert_eq!(status(&http, &base, &t, &id).await.json()["status"], "PENDING");

    let done = settled(&http, &base, &t, &id, Duration::from_secs(10)).await;
    assert_eq!(done["status"], "SUCCESSFUL");
    assert!(done["financialTransactionId"].as_str().is_some_and(|f| f.chars().all(|c| c.is_ascii_digit())));
    assert_eq!(done["payer"]["partyId"], "256772000100");
    assert_eq!((done["amount"].as_str(), done["currency"].as_str()), (Some("500"), Some("UGX")));
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink.total() == 0 {
        assert!(Instant::now() < deadline, "no callback");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sink.bodies(), vec![done.clone()], "the callback is the status document");
    // The payer's phone gets MoMo's confirmation (the SMS centre delivers it to a modem with that SIM).
    let sms = sb.sms().messages_for("+256772000100");
    assert_eq!(sms.len(), 1, "{sms:?}");
    assert_eq!(sms[0].from, "MTNMoMo");
    assert!(sms[0].text.contains(done["financialTransactionId"].as_str().unwrap()), "{}", sms[0].text);
    sb.shutdown().await;
}

#[tokio::test]
async fn every_suffix_ends_as_its_table_row_says() {
    let sb = common::start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let sink = CallbackSink::start().await;
    let t = token(&http, &base).await;
    let mut ids = Vec::new();
    for (suffix, outcome) in TABLE {
        let id = reference();
        let party = format!("2567720001{suffix}");
        let r = request(&http, &base, &t, &id, &payment(&party, "UGX"), &[("x-callback-url", &sink.url)]).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{suffix}: {}", r.text());
        ids.push((id, outcome));
    }
    for (id, outcome) in &ids {
        let v = settled(&http, &base, &t, id, Duration::from_secs(20)).await;
        match outcome.reason() {
            Some(reason) => assert_eq!((v["status"].as_str(), v["reason"].as_str()), (Some("FAILED"), Some(reason))),
            None => assert_eq!(v["status"], "SUCCESSFUL", "{outcome:?}"),
        }
    }
    // Every payment calls back once, except suffix 05 (three times).
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink.total() < TABLE.len() + 2 {
        assert!(Instant::now() < deadline, "{} callbacks", sink.total());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let duplicated = sink.bodies().iter().filter(|b| b["payer"]["partyId"] == "256772000105").count();
    assert_eq!(duplicated, 3);
    sb.shutdown().await;
}

#[tokio::test]
async fn refusals_come_in_momos_shapes() {
    let sb = common::start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let t = token(&http, &base).await;
    let body = payment("256772000100", "UGX");
    let url = format!("{base}/collection/v1_0/requesttopay");
    let bearer = format!("Bearer {t}");

    // The gateway's own answers: {statusCode, message}.
    let r = http.post_json_with(&url, &[("authorization", &bearer)], &body).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["statusCode"], 401);
    assert!(r.json()["message"].as_str().unwrap().contains("missing subscription key"));
    let r =
        http.post_json_with(&url, &[("ocp-apim-subscription-key", "wrong"), ("authorization", &bearer)], &body).await;
    assert!(r.json()["message"].as_str().unwrap().contains("invalid subscription key"));
    let r = request(&http, &base, "not-a-token", &reference(), &body, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(!r.json()["message"].as_str().unwrap().contains("subscription key"), "{}", r.text());

    // The API's: {code, message}.
    let headers = [SUB, ("authorization", bearer.as_str()), ("x-reference-id", "3f1b6a34-7a4e-4c47-9b55-2a2f0f6b9a10")];
    let r = http.post_json_with(&url, &headers, &body).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "no X-Target-Environment");
    assert!(r.json()["message"].as_str().unwrap().starts_with("X-Target-Environment"));
    let headers = [
        SUB,
        ("authorization", bearer.as_str()),
        ("x-target-environment", "mtnkenya"),
        ("x-reference-id", "3f1b6a34-7a4e-4c47-9b55-2a2f0f6b9a10"),
    ];
    let r = http.post_json_with(&url, &headers, &body).await;
    assert_eq!((r.status, code_of(&r)), (StatusCode::INTERNAL_SERVER_ERROR, "NOT_ALLOWED_TARGET_ENVIRONMENT".into()));
    let r = request(&http, &base, &t, "1234", &body, &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["message"].as_str().unwrap().starts_with("X-Reference-Id"));
    let r = request(&http, &base, &t, "5f3c8a2e-1b4d-1e6f-9a7b-2c8d0e1f3a5b", &body, &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a version-1 UUID");
    let r = request(&http, &base, &t, &reference(), &payment("256772000100", "EUR"), &[]).await;
    assert_eq!((r.status, code_of(&r)), (StatusCode::INTERNAL_SERVER_ERROR, "INVALID_CURRENCY".into()));
    let r = request(&http, &base, &t, &reference(), &body, &[("x-callback-url", "http://evil.example/cb")]).await;
    assert_eq!((r.status, code_of(&r)), (StatusCode::INTERNAL_SERVER_ERROR, "INVALID_CALLBACK_URL_HOST".into()));
    let mut bad = body.clone();
    bad["payer"]["partyId"] = json!("+256772000100");
    let r = request(&http, &base, &t, &reference(), &bad, &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["message"].as_str().unwrap().starts_with("payer.partyId"), "{}", r.text());

    let id = reference();
    assert_eq!(request(&http, &base, &t, &id, &body, &[]).await.status, StatusCode::ACCEPTED);
    let r = request(&http, &base, &t, &id, &body, &[]).await;
    assert_eq!((r.status, code_of(&r)), (StatusCode::CONFLICT, "RESOURCE_ALREADY_EXIST".into()));
    let r = status(&http, &base, &t, &reference()).await;
    assert_eq!((r.status, code_of(&r)), (StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND".into()));
    sb.shutdown().await;
}

#[tokio::test]
async fn sandbox_users_are_provisioned_as_in_mtns_sandbox() {
    let sb = common::start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let user = reference();
    let create = |id: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let headers = [SUB, ("x-reference-id", id.as_str())];
            http.post_json_with(
                &format!("{base}/v1_0/apiuser"),
                &headers,
                &json!({"providerCallbackHost": "localhost"}),
            )
            .await
        }
    };
    assert_eq!(create(user.clone()).await.status, StatusCode::CREATED);
    assert_eq!(create(user.clone()).await.status, StatusCode::CONFLICT);
    let r = http.get_with(&format!("{base}/v1_0/apiuser/{user}"), &[SUB]).await;
    assert_eq!(r.json(), json!({"providerCallbackHost": "localhost", "targetEnvironment": "sandbox"}));
    let r = http.send(Method::POST, &format!("{base}/v1_0/apiuser/{user}/apikey"), &[SUB], None).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let key = r.json()["apiKey"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 32);

    let token_url = format!("{base}/collection/token/");
    let r = http.send(Method::POST, &token_url, &[SUB, ("authorization", &basic(&user, &key))], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let theirs = r.json()["access_token"].as_str().unwrap().to_owned();
    let r = http.send(Method::POST, &token_url, &[SUB, ("authorization", &basic(&user, "wrong"))], None).await;
    assert_eq!((r.status, r.json()), (StatusCode::UNAUTHORIZED, json!({"error": "login_failed"})));

    // Another API user's payment is not theirs to see; their callback host is their own.
    let ours = token(&http, &base).await;
    let id = reference();
    assert_eq!(
        request(&http, &base, &ours, &id, &payment("256772000100", "UGX"), &[]).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(status(&http, &base, &theirs, &id).await.status, StatusCode::NOT_FOUND);
    let r = request(
        &http,
        &base,
        &theirs,
        &reference(),
        &payment("256772000100", "UGX"),
        &[("x-callback-url", "http://localhost:9/cb")],
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    sb.shutdown().await;
}

#[tokio::test]
async fn account_holders_and_balance() {
    let sb = common::start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let t = token(&http, &base).await;
    let bearer = format!("Bearer {t}");
    let headers = [SUB, ("authorization", bearer.as_str()), ("x-target-environment", "mtnuganda")];
    let active = |party: &str| format!("{base}/collection/v1_0/accountholder/msisdn/{party}/active");
    assert_eq!(http.get_with(&active("256772000100"), &headers).await.json(), json!({"result": true}));
    assert_eq!(http.get_with(&active("256772000108"), &headers).await.json(), json!({"result": false}));
    assert_eq!(http.get_with(&active("256702000100"), &headers).await.json(), json!({"result": false}), "Airtel");
    let r = http.get_with(&format!("{base}/collection/v1_0/accountholder/MSISDN/256772000100/active"), &headers).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "the type is lowercase");
    let r = http.get_with(&format!("{base}/collection/v1_0/account/balance"), &headers).await;
    assert_eq!(r.json()["currency"], "UGX");

    // A non-MTN number is accepted, then fails as MoMo does: no wallet.
    let id = reference();
    assert_eq!(request(&http, &base, &t, &id, &payment("256702000100", "UGX"), &[]).await.status, StatusCode::ACCEPTED);
    let v = settled(&http, &base, &t, &id, Duration::from_secs(10)).await;
    assert_eq!(v["reason"], "PAYER_NOT_FOUND");
    sb.shutdown().await;
}

#[tokio::test]
async fn momo_faults_answer_in_momos_envelope() {
    let sb = common::start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    sb.faults().set(Service::Momo, Fault { outage: true, ..Default::default() }).unwrap();
    let r = http.send(Method::POST, &format!("{base}/collection/token/"), &[SUB], None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code_of(&r), "SERVICE_UNAVAILABLE");
    assert_eq!(r.headers["x-sandbox-fault"], "outage");
    sb.faults().set(Service::Momo, Fault { error_rate: 1.0, ..Default::default() }).unwrap();
    let r = http.send(Method::POST, &format!("{base}/collection/token/"), &[SUB], None).await;
    assert_eq!((r.status, code_of(&r)), (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_PROCESSING_ERROR".into()));
    // Daraja is untouched.
    assert_ne!(http.get(&format!("{base}/oauth/v1/generate")).await.status, StatusCode::SERVICE_UNAVAILABLE);
    let r = http.put_json(&format!("{base}/admin/faults/momo"), &json!({"latency_ms": 1})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    sb.shutdown().await;
}
