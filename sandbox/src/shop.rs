//! A small marketplace API under `/shop/api`, the target of the `checkout-mpesa` journey.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/shop/api/products` | `[{"id","name","price_kes"}]` |
//! | POST | `/shop/api/carts` | `{"cart_id"}` |
//! | POST | `/shop/api/carts/{id}/items` `{"product_id","qty"}` | the cart |
//! | GET | `/shop/api/carts/{id}` | `{"cart_id","items":[…],"total_kes"}` |
//! | POST | `/shop/api/checkout` `{"cart_id","phone"}` | `{"order_id","status":"pending_payment","checkout_request_id"}` |
//! | GET | `/shop/api/orders/{id}` | `{"order_id","status","result_code","receipt","total_kes",…}` |
//! | POST | `/shop/api/mpesa/callback` | Daraja's STK callback (idempotent) |
//!
//! Checkout pays as a real merchant would: over HTTP to the sandbox's own Daraja (OAuth token
//! cached until it expires, Password from the passkey, `CallBackURL` = this shop's callback), so
//! Daraja faults and the phone-suffix outcomes reach the shop. A callback may arrive before the
//! push's reply has been recorded; it is kept briefly and applied then.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine as _;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::{
    client::HttpClient,
    config::Config,
    daraja::{nairobi_timestamp, stk::valid_msisdn, stk_password},
    error::ApiError,
    mask::mask_phone,
    rng::SharedRng,
    store::Bounded,
};

/// A product for sale.
#[derive(Debug, Clone, Serialize)]
pub struct Product {
    pub id: &'static str,
    pub name: &'static str,
    pub price_kes: u64,
}

/// The catalogue.
pub const PRODUCTS: [Product; 5] = [
    Product { id: "unga-2kg", name: "Maize flour (unga) 2 kg", price_kes: 230 },
    Product { id: "sugar-1kg", name: "Sugar 1 kg", price_kes: 180 },
    Product { id: "milk-500ml", name: "Fresh milk 500 ml", price_kes: 65 },
    Product { id: "bread-400g", name: "Bread 400 g", price_kes: 70 },
    Product { id: "cooking-oil-1l", name: "Cooking oil 1 L", price_kes: 390 },
];

/// Largest quantity of one product in a cart.
const MAX_QTY: u64 = 100;
/// Most distinct products in a cart.
const MAX_LINES: usize = 20;
/// The largest order M-Pesa can pay in one STK push.
const MAX_ORDER_KES: u64 = crate::daraja::stk::MAX_STK_AMOUNT;
/// How long the shop waits for its own Daraja.
const DARAJA_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize)]
struct CartLine {
    product_id: &'static str,
    name: &'static str,
    qty: u64,
    unit_price_kes: u64,
    line_total_kes: u64,
}

#[derive(Debug, Default)]
struct Cart {
    lines: Vec<CartLine>,
    checked_out: bool,
}

impl Cart {
    fn total(&self) -> u64 {
        self.lines.iter().map(|l| l.line_total_kes).sum()
    }

    fn to_json(&self, id: &str) -> Value {
        json!({ "cart_id": id, "items": self.lines, "total_kes": self.total(), "checked_out": self.checked_out })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum OrderStatus {
    PendingPayment,
    Paid,
    PaymentFailed,
}

#[derive(Debug, Clone)]
struct Settlement {
    result_code: i64,
    result_desc: String,
    receipt: Option<String>,
}

#[derive(Debug, Clone)]
struct Order {
    cart_id: String,
    total_kes: u64,
    checkout_request_id: String,
    status: OrderStatus,
    settlement: Option<Settlement>,
    callbacks_received: u32,
}

impl Order {
    fn to_json(&self, id: &str) -> Value {
        json!({
            "order_id": id,
            "status": self.status,
            "result_code": self.settlement.as_ref().map(|s| s.result_code),
            "result_desc": self.settlement.as_ref().map(|s| s.result_desc.clone()),
            "receipt": self.settlement.as_ref().and_then(|s| s.receipt.clone()),
            "total_kes": self.total_kes,
            "cart_id": self.cart_id,
            "checkout_request_id": self.checkout_request_id,
            "callbacks_received": self.callbacks_received,
        })
    }

    /// Settles a pending order; a settled order does not change (duplicate callbacks).
    fn settle(&mut self, s: Settlement) -> bool {
        self.callbacks_received += 1;
        if self.status != OrderStatus::PendingPayment {
            return false;
        }
        self.status = if s.result_code == 0 { OrderStatus::Paid } else { OrderStatus::PaymentFailed };
        self.settlement = Some(s);
        true
    }
}

/// Why Daraja did not take the shop's push.
#[derive(Debug, Clone)]
struct MerchantError {
    code: String,
    message: String,
}

/// The shop's Daraja client: what a merchant's backend does.
struct Merchant {
    http: HttpClient,
    base_url: String,
    consumer_key: String,
    consumer_secret: String,
    shortcode: String,
    passkey: String,
    token: Mutex<Option<(String, Instant)>>,
}

impl Merchant {
    fn transport(e: impl std::fmt::Display) -> MerchantError {
        MerchantError { code: "transport".into(), message: e.to_string() }
    }

    fn envelope(status: StatusCode, body: &[u8]) -> MerchantError {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        MerchantError {
            code: v["errorCode"].as_str().map_or_else(|| format!("HTTP {}", status.as_u16()), str::to_owned),
            message: v["errorMessage"].as_str().unwrap_or("no error message").to_owned(),
        }
    }

    async fn token(&self, refresh: bool) -> Result<String, MerchantError> {
        if !refresh
            && let Some((token, until)) = self.token.lock().clone()
            && Instant::now() < until
        {
            return Ok(token);
        }
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.consumer_key, self.consumer_secret));
        let url = format!("{}/oauth/v1/generate?grant_type=client_credentials", self.base_url);
        let resp = self
            .http
            .send(http::Method::GET, &url, None, &[(header::AUTHORIZATION, format!("Basic {basic}"))], DARAJA_TIMEOUT)
            .await
            .map_err(Self::transport)?;
        if !resp.status.is_success() {
            return Err(Self::envelope(resp.status, &resp.body));
        }
        let v: Value = serde_json::from_slice(&resp.body).map_err(Self::transport)?;
        let token = v["access_token"].as_str().ok_or_else(|| Self::transport("OAuth answer has no access_token"))?;
        // `expires_in` is a string on Daraja; accept a number too. Renew at 90 % of the lifetime.
        let secs = match &v["expires_in"] {
            Value::String(s) => s.parse::<u64>().unwrap_or(0),
            other => other.as_u64().unwrap_or(0),
        };
        let until = Instant::now() + Duration::from_secs(secs) * 9 / 10;
        *self.token.lock() = Some((token.to_owned(), until));
        Ok(token.to_owned())
    }

    /// Pushes a payment request; returns the CheckoutRequestID.
    async fn stk_push(&self, msisdn: &str, amount: u64, reference: &str) -> Result<String, MerchantError> {
        let url = format!("{}/mpesa/stkpush/v1/processrequest", self.base_url);
        for attempt in 0..2 {
            let token = self.token(attempt > 0).await?;
            let timestamp = nairobi_timestamp();
            let body = json!({
                "BusinessShortCode": self.shortcode,
                "Password": stk_password(&self.shortcode, &self.passkey, &timestamp),
                "Timestamp": timestamp,
                "TransactionType": "CustomerPayBillOnline",
                "Amount": amount.to_string(),
                "PartyA": msisdn,
                "PartyB": self.shortcode,
                "PhoneNumber": msisdn,
                "CallBackURL": format!("{}/shop/api/mpesa/callback", self.base_url),
                "AccountReference": reference,
                "TransactionDesc": "Savanna Shop",
            });
            let resp = self
                .http
                .send(
                    http::Method::POST,
                    &url,
                    Some(("application/json", Bytes::from(body.to_string()))),
                    &[(header::AUTHORIZATION, format!("Bearer {token}"))],
                    DARAJA_TIMEOUT,
                )
                .await
                .map_err(Self::transport)?;
            if resp.status.is_success() {
                let v: Value = serde_json::from_slice(&resp.body).map_err(Self::transport)?;
                return v["CheckoutRequestID"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| Self::transport("STK push answer has no CheckoutRequestID"));
            }
            let err = Self::envelope(resp.status, &resp.body);
            // A token that expired between our check and Daraja's: fetch a new one, once.
            if err.code == "404.001.03" && attempt == 0 {
                *self.token.lock() = None;
                continue;
            }
            return Err(err);
        }
        Err(Self::transport("Daraja refused two fresh tokens"))
    }
}

/// The shop's state.
pub(crate) struct ShopState {
    carts: Mutex<Bounded<String, Cart>>,
    orders: Mutex<Bounded<String, Order>>,
    by_checkout: Mutex<Bounded<String, String>>,
    early_callbacks: Mutex<Bounded<String, Settlement>>,
    merchant: Merchant,
    rng: SharedRng,
}

impl ShopState {
    pub fn new(config: &Config, base_url: &str, http: HttpClient) -> Self {
        let (cap, ttl) = (config.limits.max_shop_records, config.limits.shop_ttl);
        Self {
            carts: Mutex::new(Bounded::new(cap, ttl)),
            orders: Mutex::new(Bounded::new(cap, ttl)),
            by_checkout: Mutex::new(Bounded::new(cap, ttl)),
            early_callbacks: Mutex::new(Bounded::new(1000, Duration::from_secs(600))),
            merchant: Merchant {
                http,
                base_url: base_url.to_owned(),
                consumer_key: config.consumer_key.clone(),
                consumer_secret: config.consumer_secret.clone(),
                shortcode: config.shortcode.clone(),
                passkey: config.passkey.clone(),
                token: Mutex::new(None),
            },
            rng: SharedRng::new(config.seed, 4),
        }
    }
}

pub(crate) fn router(state: Arc<ShopState>) -> Router {
    Router::new()
        .route("/shop/api/products", get(products))
        .route("/shop/api/carts", post(create_cart))
        .route("/shop/api/carts/{id}", get(get_cart))
        .route("/shop/api/carts/{id}/items", post(add_item))
        .route("/shop/api/checkout", post(checkout))
        .route("/shop/api/orders/{id}", get(get_order))
        .route("/shop/api/mpesa/callback", post(mpesa_callback))
        .with_state(state)
}

// --- request bodies: fields checked one by one so an error names the field ---

fn object(body: &[u8], allowed: &[&str]) -> Result<Map<String, Value>, ApiError> {
    let map = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(ApiError::bad_request("the body must be a JSON object")),
        Err(e) => return Err(ApiError::bad_request(format!("invalid JSON body: {e}"))),
    };
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "field `{unknown}`: unknown field (expected {})",
            allowed.join(", ")
        )));
    }
    Ok(map)
}

fn string_field(map: &Map<String, Value>, field: &str) -> Result<String, ApiError> {
    match map.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Some(_) => Err(ApiError::bad_request(format!("field `{field}`: must be a non-empty string"))),
        None => Err(ApiError::bad_request(format!("field `{field}`: missing"))),
    }
}

/// `0712345678`, `+254712345678`, `254712345678` or `712345678` → `254712345678`.
pub fn normalize_msisdn(phone: &str) -> Option<String> {
    let p: String = phone.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let p = p.strip_prefix('+').unwrap_or(&p);
    let msisdn = if let Some(rest) = p.strip_prefix('0') {
        format!("254{rest}")
    } else if p.len() == 9 {
        format!("254{p}")
    } else {
        p.to_owned()
    };
    valid_msisdn(&msisdn).then_some(msisdn)
}

// --- handlers ---

async fn products() -> Json<&'static [Product]> {
    Json(&PRODUCTS)
}

async fn create_cart(State(shop): State<Arc<ShopState>>) -> Json<Value> {
    let id = format!("cart_{}", shop.rng.upper_alnum(10).to_lowercase());
    shop.carts.lock().insert(id.clone(), Cart::default(), Instant::now());
    Json(json!({ "cart_id": id }))
}

fn cart_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("no cart `{id}` (create one with POST /shop/api/carts)"))
}

async fn get_cart(State(shop): State<Arc<ShopState>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let carts = shop.carts.lock();
    let cart = carts.get(&id, Instant::now()).ok_or_else(|| cart_not_found(&id))?;
    Ok(Json(cart.to_json(&id)))
}

async fn add_item(
    State(shop): State<Arc<ShopState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let map = object(&body, &["product_id", "qty"])?;
    let product_id = string_field(&map, "product_id")?;
    let qty = match map.get("qty") {
        None => 1,
        Some(v) => v
            .as_u64()
            .filter(|q| (1..=MAX_QTY).contains(q))
            .ok_or_else(|| ApiError::bad_request(format!("field `qty`: must be a whole number from 1 to {MAX_QTY}")))?,
    };
    let product = PRODUCTS.iter().find(|p| p.id == product_id).ok_or_else(|| {
        ApiError::bad_request(format!(
            "field `product_id`: unknown product `{product_id}` (see GET /shop/api/products)"
        ))
    })?;
    let mut carts = shop.carts.lock();
    let cart = carts.get_mut(&id, Instant::now()).ok_or_else(|| cart_not_found(&id))?;
    if cart.checked_out {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("cart `{id}` is already checked out")));
    }
    let lines = cart.lines.len();
    match cart.lines.iter_mut().find(|l| l.product_id == product.id) {
        Some(line) => {
            if line.qty + qty > MAX_QTY {
                return Err(ApiError::bad_request(format!("field `qty`: at most {MAX_QTY} of one product per cart")));
            }
            line.qty += qty;
            line.line_total_kes = line.qty * line.unit_price_kes;
        }
        None if lines >= MAX_LINES => {
            return Err(ApiError::bad_request(format!("field `product_id`: at most {MAX_LINES} products per cart")));
        }
        None => cart.lines.push(CartLine {
            product_id: product.id,
            name: product.name,
            qty,
            unit_price_kes: product.price_kes,
            line_total_kes: qty * product.price_kes,
        }),
    }
    Ok(Json(cart.to_json(&id)))
}

async fn checkout(State(shop): State<Arc<ShopState>>, body: Bytes) -> Result<Response, ApiError> {
    let map = object(&body, &["cart_id", "phone"])?;
    let cart_id = string_field(&map, "cart_id")?;
    let phone = string_field(&map, "phone")?;
    let msisdn = normalize_msisdn(&phone).ok_or_else(|| {
        ApiError::bad_request("field `phone`: not a Kenyan mobile number (0712345678, +254712345678 or 254712345678)")
    })?;
    let total = {
        let mut carts = shop.carts.lock();
        let cart = carts.get_mut(&cart_id, Instant::now()).ok_or_else(|| cart_not_found(&cart_id))?;
        if cart.lines.is_empty() {
            return Err(ApiError::bad_request(format!("field `cart_id`: cart `{cart_id}` is empty")));
        }
        if cart.checked_out {
            return Err(ApiError::new(StatusCode::CONFLICT, format!("cart `{cart_id}` is already checked out")));
        }
        if cart.total() > MAX_ORDER_KES {
            return Err(ApiError::bad_request(format!(
                "field `cart_id`: total KES {} is over the M-Pesa limit of KES {MAX_ORDER_KES}",
                cart.total()
            )));
        }
        cart.checked_out = true;
        cart.total()
    };
    let order_id = format!("ORD-{}", shop.rng.upper_alnum(8));
    let checkout_request_id = match shop.merchant.stk_push(&msisdn, total, &order_id).await {
        Ok(id) => id,
        Err(e) => {
            if let Some(cart) = shop.carts.lock().get_mut(&cart_id, Instant::now()) {
                cart.checked_out = false;
            }
            tracing::info!(order = %order_id, phone = %mask_phone(&msisdn), code = %e.code, "checkout: M-Pesa refused the payment request");
            let body = json!({
                "error": format!("M-Pesa did not accept the payment request: {} {}", e.code, e.message),
                "daraja_error_code": e.code,
            });
            return Ok((StatusCode::BAD_GATEWAY, Json(body)).into_response());
        }
    };
    let now = Instant::now();
    let order = Order {
        cart_id,
        total_kes: total,
        checkout_request_id: checkout_request_id.clone(),
        status: OrderStatus::PendingPayment,
        settlement: None,
        callbacks_received: 0,
    };
    shop.orders.lock().insert(order_id.clone(), order, now);
    // The mapping and the early-callback stash change under one lock (see `mpesa_callback`), so a
    // callback racing this reply is applied exactly once.
    let early = {
        let mut by_checkout = shop.by_checkout.lock();
        by_checkout.insert(checkout_request_id.clone(), order_id.clone(), now);
        shop.early_callbacks.lock().remove(&checkout_request_id)
    };
    let status = {
        let mut orders = shop.orders.lock();
        let order = orders.get_mut(&order_id, now);
        match (order, early) {
            (Some(order), Some(settlement)) => {
                order.settle(settlement);
                order.status
            }
            (Some(order), None) => order.status,
            (None, _) => OrderStatus::PendingPayment,
        }
    };
    let answer = json!({ "order_id": order_id, "status": status, "checkout_request_id": checkout_request_id });
    tracing::info!(order = %order_id, phone = %mask_phone(&msisdn), total_kes = total, "checkout: payment requested");
    Ok(Json(answer).into_response())
}

async fn get_order(State(shop): State<Arc<ShopState>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let orders = shop.orders.lock();
    let order = orders.get(&id, Instant::now()).ok_or_else(|| ApiError::not_found(format!("no order `{id}`")))?;
    Ok(Json(order.to_json(&id)))
}

/// Reads `Body.stkCallback`: the CheckoutRequestID and the settlement.
fn parse_callback(body: &[u8]) -> Result<(String, Settlement), ApiError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid callback JSON: {e}")))?;
    let cb = &v["Body"]["stkCallback"];
    let checkout = cb["CheckoutRequestID"]
        .as_str()
        .ok_or_else(|| ApiError::bad_request("field `Body.stkCallback.CheckoutRequestID`: missing"))?;
    let result_code = match &cb["ResultCode"] {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| ApiError::bad_request("field `Body.stkCallback.ResultCode`: missing or not a number"))?;
    // Items are found by Name, not by position.
    let receipt = cb["CallbackMetadata"]["Item"].as_array().and_then(|items| {
        items.iter().find(|i| i["Name"] == "MpesaReceiptNumber").and_then(|i| i["Value"].as_str()).map(str::to_owned)
    });
    let result_desc = cb["ResultDesc"].as_str().unwrap_or_default().to_owned();
    Ok((checkout.to_owned(), Settlement { result_code, result_desc, receipt }))
}

async fn mpesa_callback(State(shop): State<Arc<ShopState>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let (checkout, settlement) = parse_callback(&body)?;
    let order_id = {
        let by_checkout = shop.by_checkout.lock();
        let order_id = by_checkout.get(&checkout, Instant::now()).cloned();
        if order_id.is_none() {
            // Before the push's reply was recorded (or for an unknown push): keep it briefly.
            shop.early_callbacks.lock().insert(checkout.clone(), settlement.clone(), Instant::now());
        }
        order_id
    };
    match order_id {
        Some(order_id) => {
            let mut orders = shop.orders.lock();
            if let Some(order) = orders.get_mut(&order_id, Instant::now()) {
                let code = settlement.result_code;
                let changed = order.settle(settlement);
                tracing::info!(order = %order_id, result_code = code, changed, "shop: M-Pesa callback");
            }
        }
        None => tracing::info!(checkout = %checkout, "shop: callback before its order; kept for the checkout"),
    }
    Ok(Json(json!({ "ResultCode": 0, "ResultDesc": "Accepted" })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_normalize_to_msisdn() {
        assert_eq!(normalize_msisdn("0712345678").as_deref(), Some("254712345678"));
        assert_eq!(normalize_msisdn("+254 712-345-678").as_deref(), Some("254712345678"));
        assert_eq!(normalize_msisdn("0112345678").as_deref(), Some("254112345678"));
        assert_eq!(normalize_msisdn("712345678").as_deref(), Some("254712345678"));
        assert_eq!(normalize_msisdn("0812345678"), None);
        assert_eq!(normalize_msisdn("07123"), None);
    }

    #[test]
    fn duplicate_settlements_do_not_change_an_order() {
        let mut order = Order {
            cart_id: "c".into(),
            total_kes: 5,
            checkout_request_id: "ws".into(),
            status: OrderStatus::PendingPayment,
            settlement: None,
            callbacks_received: 0,
        };
        let paid = Settlement { result_code: 0, result_desc: "ok".into(), receipt: Some("R1".into()) };
        assert!(order.settle(paid.clone()));
        let failed = Settlement { result_code: 1032, result_desc: "cancelled".into(), receipt: None };
        assert!(!order.settle(failed));
        assert_eq!(order.status, OrderStatus::Paid);
        assert_eq!(order.settlement.as_ref().unwrap().receipt.as_deref(), Some("R1"));
        assert_eq!(order.callbacks_received, 2);
    }

    #[test]
    fn callbacks_parse_by_item_name() {
        let body = json!({"Body":{"stkCallback":{"CheckoutRequestID":"ws_1","ResultCode":0,"ResultDesc":"ok",
            "CallbackMetadata":{"Item":[{"Name":"Balance"},{"Name":"MpesaReceiptNumber","Value":"ABC"}]}}}});
        let (id, s) = parse_callback(body.to_string().as_bytes()).unwrap();
        assert_eq!((id.as_str(), s.result_code, s.receipt.as_deref()), ("ws_1", 0, Some("ABC")));
        let bad = json!({"Body":{"stkCallback":{"CheckoutRequestID":"ws_1"}}});
        assert!(parse_callback(bad.to_string().as_bytes()).unwrap_err().message.contains("ResultCode"));
    }
}
