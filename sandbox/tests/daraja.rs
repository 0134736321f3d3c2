//! The Daraja emulation over HTTP: OAuth, STK push, the callback's exact shape, STK query, every
//! row of the outcome table, token expiry, the subscriber lock and field validation.

mod common;

use std::time::Duration;

use common::{
    CallbackSink, DELAY, EXPIRY, Http, KEY, SECRET, basic, push, push_body, query, query_until_done, start, token,
};
use http::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

fn assert_envelope(r: &common::Resp, status: StatusCode, code: &str, message: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert_eq!(v["errorCode"], code, "{v}");
    assert_eq!(v["errorMessage"], message, "{v}");
    assert!(v["requestId"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["errorCode", "errorMessage", "requestId"]);
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn oauth_issues_tokens_and_refuses_bad_requests() {
    let sb = start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let url = format!("{base}/oauth/v1/generate?grant_type=client_credentials");
    let r = http.get_with(&url, &[("authorization", &basic(KEY, SECRET))]).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["expires_in"], json!("3599"), "expires_in is a string");
    assert!(v["access_token"].as_str().unwrap().len() >= 20);
    assert_eq!(keys(&v), ["access_token", "expires_in"]);

    let r = http
        .get_with(&format!("{base}/oauth/v1/generate?grant_type=password"), &[("authorization", &basic(KEY, SECRET))])
        .await;
    assert_envelope(&r, StatusCode::BAD_REQUEST, "400.001.01", "Invalid grant type passed");
    let r = http.get_with(&format!("{base}/oauth/v1/generate"), &[("authorization", &basic(KEY, SECRET))]).await;
    assert_envelope(&r, StatusCode::BAD_REQUEST, "400.001.01", "Invalid grant type passed");
    let r = http.get_with(&url, &[("authorization", &basic(KEY, "wrong"))]).await;
    assert_envelope(&r, StatusCode::UNAUTHORIZED, "401.002.01", "Invalid Authentication passed");
    let r = http.get(&url).await;
    assert_envelope(&r, StatusCode::UNAUTHORIZED, "401.002.01", "Invalid Authentication passed");
    let r = http.get_with(&url, &[("authorization", "Basic !!!notbase64")]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    sb.shutdown().await;
}

#[tokio::test]
async fn push_callback_and_query_round_trip() {
    let sb = start().await;
    let sink = CallbackSink::start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let tok = token(&http, &base).await;
    let pushed_at = Instant::now();
    let r = push(&http, &base, &tok, &push_body("254708920400", 150, &sink.url)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let sync = r.json();
    assert_eq!(
        keys(&sync),
        ["CheckoutRequestID", "CustomerMessage", "MerchantRequestID", "ResponseCode", "ResponseDescription"]
    );
    assert_eq!(sync["ResponseCode"], "0");
    assert_eq!(sync["ResponseDescription"], "Success. Request accepted for processing");
    assert_eq!(sync["CustomerMessage"], "Success. Request accepted for processing");
    let checkout = sync["CheckoutRequestID"].as_str().unwrap().to_owned();
    let merchant = sync["MerchantRequestID"].as_str().unwrap().to_owned();
    assert!(checkout.starts_with("ws_CO_"), "{checkout}");

    // Pending: HTTP 500 with the "being processed" envelope.
    let r = query(&http, &base, &tok, &checkout).await;
    assert_envelope(&r, StatusCode::INTERNAL_SERVER_ERROR, "500.001.1001", "The transaction is being processed");

    let got = sink.wait_for(&checkout, 1, Duration::from_secs(5)).await;
    let (arrived, body) = &got[0];
    assert!(*arrived - pushed_at >= DELAY, "the callback waits for the delay");
    assert_eq!(keys(body), ["Body"]);
    assert_eq!(keys(&body["Body"]), ["stkCallback"]);
    let cb = &body["Body"]["stkCallback"];
    assert_eq!(keys(cb), ["CallbackMetadata", "CheckoutRequestID", "MerchantRequestID", "ResultCode", "ResultDesc"]);
    assert_eq!(cb["MerchantRequestID"], merchant.as_str());
    assert_eq!(cb["ResultCode"], json!(0));
    assert!(cb["ResultCode"].is_u64(), "ResultCode is a number");
    assert_eq!(cb["ResultDesc"], "The service request is processed successfully.");
    let items = cb["CallbackMetadata"]["Item"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|i| i["Name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Amount", "MpesaReceiptNumber", "Balance", "TransactionDate", "PhoneNumber"]);
    assert!(items[0]["Value"].is_f64() && items[0]["Value"].as_f64() == Some(150.0), "{}", items[0]);
    let receipt = items[1]["Value"].as_str().unwrap();
    assert!(receipt.len() == 10 && receipt.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
    assert_eq!(keys(&items[2]), ["Name"], "Balance has no Value");
    let date = items[3]["Value"].as_u64().expect("TransactionDate is a number");
    assert_eq!(date.to_string().len(), 14);
    assert_eq!(items[4]["Value"], json!(254708920400u64));
    assert!(items[4]["Value"].is_u64(), "PhoneNumber is a number");
    assert!(body.to_string().contains(r#"{"Name":"Amount","Value":150.0}"#), "{body}");

    let done = query(&http, &base, &tok, &checkout).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    let done = done.json();
    assert_eq!(
        keys(&done),
        ["CheckoutRequestID", "MerchantRequestID", "ResponseCode", "ResponseDescription", "ResultCode", "ResultDesc"]
    );
    assert_eq!(done["ResponseCode"], "0");
    assert_eq!(done["ResultCode"], json!("0"), "ResultCode is a string in the query");
    assert_eq!(done["CheckoutRequestID"], checkout.as_str());
    assert_eq!(done["MerchantRequestID"], merchant.as_str());
    sb.shutdown().await;
}

/// Every row of the outcome table, pushed concurrently with distinct phone numbers.
#[tokio::test]
async fn every_outcome_row() {
    let sb = start().await;
    let sink = CallbackSink::start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let tok = token(&http, &base).await;
    // (suffix, ResultCode, callbacks, "Cancelled"-style failure has no metadata)
    let rows: [(&str, u32, usize); 11] = [
        ("00", 0, 1),
        ("01", 1032, 1),
        ("02", 1, 1),
        ("03", 2001, 1),
        ("04", 1037, 0),
        ("05", 0, 3),
        ("06", 1037, 1),
        ("07", 1025, 1),
        ("08", 1019, 1),
        ("09", 0, 1),
        ("57", 0, 1),
    ];
    let mut tasks = Vec::new();
    for (suffix, code, copies) in rows {
        let (http, base, tok, sink) = (http.clone(), base.clone(), tok.clone(), sink.clone());
        tasks.push(tokio::spawn(async move {
            let phone = format!("2547089204{suffix}");
            let pushed = Instant::now();
            let r = push(&http, &base, &tok, &push_body(&phone, 10, &sink.url)).await;
            assert_eq!(r.status, StatusCode::OK, "{suffix}: {}", r.text());
            let checkout = r.json()["CheckoutRequestID"].as_str().unwrap().to_owned();
            let result = query_until_done(&http, &base, &tok, &checkout, Duration::from_secs(10)).await;
            let settled = Instant::now() - pushed;
            assert_eq!(result["ResultCode"], json!(code.to_string()), "{suffix}: {result}");
            match suffix {
                "04" => assert!(settled >= EXPIRY, "04 stays pending until the expiry ({settled:?})"),
                "09" => assert!(settled >= DELAY * 10, "09 is slow ({settled:?})"),
                _ => assert!(settled < DELAY * 8, "{suffix} settles after about the delay ({settled:?})"),
            }
            if copies == 0 {
                tokio::time::sleep(DELAY * 3).await;
                assert!(sink.for_checkout(&checkout).is_empty(), "{suffix}: no callback at all");
                return;
            }
            let got = sink.wait_for(&checkout, copies, Duration::from_secs(5)).await;
            tokio::time::sleep(DELAY * 2).await;
            let got_later = sink.for_checkout(&checkout);
            assert_eq!(got_later.len(), copies, "{suffix}: exactly {copies} callback(s)");
            for (_, body) in &got_later {
                assert_eq!(body, &got[0].1, "{suffix}: duplicates are identical");
            }
            let cb = &got[0].1["Body"]["stkCallback"];
            assert_eq!(cb["ResultCode"], json!(code), "{suffix}");
            assert_eq!(cb["ResultDesc"], result["ResultDesc"], "{suffix}: query and callback agree");
            assert_eq!(cb.get("CallbackMetadata").is_some(), code == 0, "{suffix}: metadata only on success");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn tokens_expire() {
    let sb =
        common::start_with(sandbox::Config { token_ttl: Duration::from_millis(400), ..common::fast_config() }).await;
    let sink = CallbackSink::start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let tok = token(&http, &base).await;
    let r = push(&http, &base, &tok, &push_body("254708920410", 5, &sink.url)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let checkout = r.json()["CheckoutRequestID"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = push(&http, &base, &tok, &push_body("254708920411", 5, &sink.url)).await;
    assert_envelope(&r, StatusCode::NOT_FOUND, "404.001.03", "Invalid Access Token");
    let r = query(&http, &base, &tok, &checkout).await;
    assert_envelope(&r, StatusCode::NOT_FOUND, "404.001.03", "Invalid Access Token");
    let fresh = token(&http, &base).await;
    assert_eq!(query(&http, &base, &fresh, &checkout).await.status, StatusCode::OK);

    // Unknown and missing tokens are refused the same way.
    let r = push(&http, &base, "not-a-token", &push_body("254708920412", 5, &sink.url)).await;
    assert_envelope(&r, StatusCode::NOT_FOUND, "404.001.03", "Invalid Access Token");
    let r = http
        .post_json(&format!("{base}/mpesa/stkpush/v1/processrequest"), &push_body("254708920412", 5, &sink.url))
        .await;
    assert_envelope(&r, StatusCode::NOT_FOUND, "404.001.03", "Invalid Access Token");
    sb.shutdown().await;
}

#[tokio::test]
async fn one_push_in_flight_per_subscriber() {
    let sb = start().await;
    let sink = CallbackSink::start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let tok = token(&http, &base).await;
    let first = push(&http, &base, &tok, &push_body("254708920420", 5, &sink.url)).await;
    assert_eq!(first.status, StatusCode::OK);
    let checkout = first.json()["CheckoutRequestID"].as_str().unwrap().to_owned();
    let second = push(&http, &base, &tok, &push_body("254708920420", 7, &sink.url)).await;
    assert_envelope(
        &second,
        StatusCode::INTERNAL_SERVER_ERROR,
        "500.001.1001",
        "Unable to lock subscriber, a transaction is already in process for the current subscriber",
    );
    // Another subscriber is not locked.
    assert_eq!(push(&http, &base, &tok, &push_body("254708920421", 5, &sink.url)).await.status, StatusCode::OK);
    // Once the first settles, the subscriber can pay again.
    query_until_done(&http, &base, &tok, &checkout, Duration::from_secs(5)).await;
    assert_eq!(push(&http, &base, &tok, &push_body("254708920420", 7, &sink.url)).await.status, StatusCode::OK);
    sb.shutdown().await;
}

#[tokio::test]
async fn validation_and_credentials() {
    let sb = start().await;
    let sink = CallbackSink::start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let tok = token(&http, &base).await;
    let cases: [(&str, Value); 11] = [
        ("BusinessShortCode", json!("17437a")),
        ("Timestamp", json!("2024-01-01 12:00")),
        ("TransactionType", json!("PayBill")),
        ("Amount", json!("0")),
        ("Amount", json!("12.50")),
        ("PartyA", json!("0708920400")),
        ("PartyB", json!("")),
        ("PhoneNumber", json!("254808920400")),
        ("CallBackURL", json!("callback")),
        ("AccountReference", json!("a reference that is too long")),
        ("TransactionDesc", json!("a description that is too long")),
    ];
    for (field, value) in cases {
        let mut body = push_body("254708920440", 5, &sink.url);
        body[field] = value;
        let r = push(&http, &base, &tok, &body).await;
        assert_envelope(&r, StatusCode::BAD_REQUEST, "400.002.02", &format!("Bad Request - Invalid {field}"));
    }
    let mut missing = push_body("254708920440", 5, &sink.url);
    missing.as_object_mut().unwrap().remove("Amount");
    assert_envelope(
        &push(&http, &base, &tok, &missing).await,
        StatusCode::BAD_REQUEST,
        "400.002.02",
        "Bad Request - Invalid Amount",
    );

    // A Password that does not match shortcode + passkey + Timestamp.
    let mut body = push_body("254708920440", 5, &sink.url);
    body["Timestamp"] = json!("20240101120001");
    assert_envelope(
        &push(&http, &base, &tok, &body).await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "500.001.1001",
        "[MerchantValidate] - Wrong credentials",
    );
    let mut body = push_body("254708920440", 5, &sink.url);
    body["Password"] = json!("d3Jvbmc=");
    assert_envelope(
        &push(&http, &base, &tok, &body).await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "500.001.1001",
        "[MerchantValidate] - Wrong credentials",
    );
    // An unknown merchant.
    let mut body = push_body("254708920440", 5, &sink.url);
    body["BusinessShortCode"] = json!("600000");
    assert_envelope(
        &push(&http, &base, &tok, &body).await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "500.001.1001",
        "Merchant does not exist",
    );

    // None of the refused pushes reached a phone or locked the subscriber.
    let ok = push(&http, &base, &tok, &push_body("254708920440", 5, &sink.url)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());

    // A body that is not JSON.
    let bearer = format!("Bearer {tok}");
    let r = http
        .send(
            http::Method::POST,
            &format!("{base}/mpesa/stkpush/v1/processrequest"),
            &[("authorization", &bearer)],
            Some(("application/json", b"{oops".to_vec())),
        )
        .await;
    assert_envelope(&r, StatusCode::BAD_REQUEST, "400.002.05", "Invalid Request Payload");
    // Query of an unknown CheckoutRequestID.
    let r = query(&http, &base, &tok, "ws_CO_000").await;
    assert_envelope(&r, StatusCode::BAD_REQUEST, "400.002.02", "Bad Request - Invalid CheckoutRequestID");
    sb.shutdown().await;
}
