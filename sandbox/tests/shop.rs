//! The shop API, with checkout paying through the sandbox's own Daraja over HTTP.

mod common;

use std::time::Duration;

use common::{DELAY, Http, start};
use http::StatusCode;
use sandbox::{Fault, Service};
use serde_json::{Value, json};
use tokio::time::Instant;

async fn cart_with(http: &Http, base: &str, items: &[(&str, u64)]) -> String {
    let r = http.post_json(&format!("{base}/shop/api/carts"), &json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let id = r.json()["cart_id"].as_str().unwrap().to_owned();
    for (product, qty) in items {
        let r = http
            .post_json(&format!("{base}/shop/api/carts/{id}/items"), &json!({"product_id": product, "qty": qty}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    id
}

async fn checkout(http: &Http, base: &str, cart: &str, phone: &str) -> common::Resp {
    http.post_json(&format!("{base}/shop/api/checkout"), &json!({"cart_id": cart, "phone": phone})).await
}

/// Polls the order until it leaves `pending_payment`.
async fn settled_order(http: &Http, base: &str, order: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = http.get(&format!("{base}/shop/api/orders/{order}")).await.json();
        if v["status"] != "pending_payment" {
            return v;
        }
        assert!(Instant::now() < deadline, "order {order} still pending: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn catalogue_and_carts() {
    let sb = start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let products = http.get(&format!("{base}/shop/api/products")).await.json();
    let unga = products.as_array().unwrap().iter().find(|p| p["id"] == "unga-2kg").expect("unga-2kg is for sale");
    assert!(unga["name"].is_string() && unga["price_kes"].is_u64(), "{unga}");

    let cart = cart_with(&http, &base, &[("unga-2kg", 2), ("milk-500ml", 1)]).await;
    let r = http
        .post_json(&format!("{base}/shop/api/carts/{cart}/items"), &json!({"product_id": "unga-2kg", "qty": 1}))
        .await;
    let v = r.json();
    assert_eq!(v["cart_id"], cart.as_str());
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["product_id"], "unga-2kg");
    assert_eq!(items[0]["qty"], 3);
    let price = unga["price_kes"].as_u64().unwrap();
    assert_eq!(v["total_kes"], json!(3 * price + 65));
    assert_eq!(http.get(&format!("{base}/shop/api/carts/{cart}")).await.json()["total_kes"], v["total_kes"]);

    for (body, field) in [
        (json!({"product_id": "caviar", "qty": 1}), "product_id"),
        (json!({"product_id": "unga-2kg", "qty": 0}), "qty"),
        (json!({"product_id": "unga-2kg", "qty": "2"}), "qty"),
        (json!({"product_id": "unga-2kg", "quantity": 2}), "quantity"),
        (json!({"qty": 2}), "product_id"),
    ] {
        let r = http.post_json(&format!("{base}/shop/api/carts/{cart}/items"), &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(r.json()["error"].as_str().unwrap().contains(&format!("`{field}`")), "{body}: {}", r.text());
    }
    assert_eq!(http.get(&format!("{base}/shop/api/carts/nope")).await.status, StatusCode::NOT_FOUND);
    let r = http
        .post_json(&format!("{base}/shop/api/carts/nope/items"), &json!({"product_id": "unga-2kg", "qty": 1}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(http.get(&format!("{base}/shop/api/orders/nope")).await.status, StatusCode::NOT_FOUND);
    sb.shutdown().await;
}

#[tokio::test]
async fn checkout_to_paid() {
    let sb = start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let cart = cart_with(&http, &base, &[("unga-2kg", 1), ("sugar-1kg", 2)]).await;
    let total = http.get(&format!("{base}/shop/api/carts/{cart}")).await.json()["total_kes"].clone();
    let r = checkout(&http, &base, &cart, "0708920400").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "pending_payment");
    assert!(v["checkout_request_id"].as_str().unwrap().starts_with("ws_CO_"));
    let order = v["order_id"].as_str().unwrap().to_owned();
    let pending = http.get(&format!("{base}/shop/api/orders/{order}")).await.json();
    assert_eq!(pending["status"], "pending_payment");
    assert_eq!(pending["result_code"], Value::Null);
    assert_eq!(pending["receipt"], Value::Null);

    let paid = settled_order(&http, &base, &order).await;
    assert_eq!(paid["status"], "paid", "{paid}");
    assert_eq!(paid["result_code"], json!(0));
    assert_eq!(paid["total_kes"], total);
    assert_eq!(paid["receipt"].as_str().unwrap().len(), 10);
    assert_eq!(paid["checkout_request_id"], v["checkout_request_id"]);

    // A checked-out cart cannot be paid twice.
    assert_eq!(checkout(&http, &base, &cart, "0708920400").await.status, StatusCode::CONFLICT);
    sb.shutdown().await;
}

#[tokio::test]
async fn checkout_to_payment_failed() {
    let sb = start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let cart = cart_with(&http, &base, &[("bread-400g", 1)]).await;
    let r = checkout(&http, &base, &cart, "+254708920401").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let order = r.json()["order_id"].as_str().unwrap().to_owned();
    let failed = settled_order(&http, &base, &order).await;
    assert_eq!(failed["status"], "payment_failed", "{failed}");
    assert_eq!(failed["result_code"], json!(1032));
    assert_eq!(failed["receipt"], Value::Null);
    sb.shutdown().await;
}

#[tokio::test]
async fn duplicate_callbacks_do_not_change_a_settled_order() {
    let sb = start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let cart = cart_with(&http, &base, &[("milk-500ml", 4)]).await;
    let r = checkout(&http, &base, &cart, "254708920405").await;
    let v = r.json();
    let (order, checkout_id) = (v["order_id"].as_str().unwrap().to_owned(), v["checkout_request_id"].clone());
    let paid = settled_order(&http, &base, &order).await;
    assert_eq!(paid["status"], "paid");
    let deadline = Instant::now() + Duration::from_secs(5);
    let all = loop {
        let o = http.get(&format!("{base}/shop/api/orders/{order}")).await.json();
        if o["callbacks_received"] == 3 {
            break o;
        }
        assert!(Instant::now() < deadline, "3 callbacks expected: {o}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(all["receipt"], paid["receipt"], "the first settlement stands");

    // A late, contradicting callback changes nothing either.
    let late = json!({"Body": {"stkCallback": {"MerchantRequestID": "x", "CheckoutRequestID": checkout_id,
        "ResultCode": 1032, "ResultDesc": "Request cancelled by user"}}});
    let r = http.post_json(&format!("{base}/shop/api/mpesa/callback"), &late).await;
    assert_eq!(r.status, StatusCode::OK);
    let after = http.get(&format!("{base}/shop/api/orders/{order}")).await.json();
    assert_eq!(after["status"], "paid");
    assert_eq!(after["result_code"], json!(0));
    let r = http.post_json(&format!("{base}/shop/api/mpesa/callback"), &json!({"Body": {}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    sb.shutdown().await;
}

#[tokio::test]
async fn checkout_refusals() {
    let sb = start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let cart = cart_with(&http, &base, &[("unga-2kg", 1)]).await;
    let r = checkout(&http, &base, &cart, "12345").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("`phone`"), "{}", r.text());
    let empty = cart_with(&http, &base, &[]).await;
    let r = checkout(&http, &base, &empty, "0708920400").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("empty"), "{}", r.text());
    assert_eq!(checkout(&http, &base, "cart_missing", "0708920400").await.status, StatusCode::NOT_FOUND);

    // Daraja down: the shop answers 502 with Daraja's code, and the cart can be paid later.
    sb.faults().set(Service::Daraja, Fault { outage: true, ..Default::default() }).unwrap();
    let r = checkout(&http, &base, &cart, "0708920400").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert_eq!(r.json()["daraja_error_code"], "503.001.01");
    sb.faults().clear();
    let r = checkout(&http, &base, &cart, "0708920400").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // The same phone while its push is in flight: Daraja's subscriber lock, passed on.
    let other = cart_with(&http, &base, &[("unga-2kg", 1)]).await;
    let r = checkout(&http, &base, &other, "0708920400").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert_eq!(r.json()["daraja_error_code"], "500.001.1001");
    tokio::time::sleep(DELAY * 3).await;
    sb.shutdown().await;
}
