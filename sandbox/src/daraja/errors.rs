//! Daraja's synchronous error envelope `{"requestId", "errorCode", "errorMessage"}` (not RFC 9457)
//! and the codes the emulation answers with.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

/// One Daraja error: HTTP status, `errorCode`, `errorMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DarajaError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl DarajaError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// `400.002.02 Bad Request - Invalid <Field>`: the message's suffix names the field.
    pub fn invalid_field(field: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "400.002.02", format!("Bad Request - Invalid {field}"))
    }

    /// `400.002.05`: the body is not a JSON object.
    pub fn invalid_payload() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "400.002.05", "Invalid Request Payload")
    }

    /// `404.001.03` with HTTP 404: missing, unknown or expired Bearer token.
    pub fn invalid_token() -> Self {
        Self::new(StatusCode::NOT_FOUND, "404.001.03", "Invalid Access Token")
    }

    /// `400.001.01`: OAuth without `grant_type=client_credentials`.
    pub fn invalid_grant_type() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "400.001.01", "Invalid grant type passed")
    }

    /// `401.002.01`: OAuth with a missing or wrong Basic authorization.
    pub fn invalid_authentication() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "401.002.01", "Invalid Authentication passed")
    }

    /// `500.001.1001`: the Password does not match shortcode + passkey + Timestamp.
    pub fn wrong_credentials() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "500.001.1001", "[MerchantValidate] - Wrong credentials")
    }

    /// `500.001.1001`: a BusinessShortCode the emulation does not know.
    pub fn merchant_does_not_exist() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "500.001.1001", "Merchant does not exist")
    }

    /// `500.001.1001`: a push to an MSISDN that has one in flight.
    pub fn subscriber_locked() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "500.001.1001",
            "Unable to lock subscriber, a transaction is already in process for the current subscriber",
        )
    }

    /// `500.001.1001`: STK query while the payment is pending.
    pub fn being_processed() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "500.001.1001", "The transaction is being processed")
    }

    /// `500.003.1001`: the fault layer's injected server error.
    pub fn injected_error() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "500.003.1001", "Internal Server Error")
    }

    /// `503.001.01`: the fault layer's injected outage.
    pub fn injected_outage() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "503.001.01", "Service Unavailable")
    }

    /// `500.003.02`: the emulation is full of in-flight transactions.
    pub fn system_busy() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "500.003.02", "System is busy. Please try again in few minutes.")
    }
}

/// Request ids look like Daraja's (`<5 digits>-<number>-1`); unique within a process.
fn next_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(4_620_561);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{}-{n}-1", 10_000 + n % 90_000)
}

impl IntoResponse for DarajaError {
    fn into_response(self) -> Response {
        let body = json!({ "requestId": next_request_id(), "errorCode": self.code, "errorMessage": self.message });
        (self.status, Json(body)).into_response()
    }
}
