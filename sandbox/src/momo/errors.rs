//! MoMo's refusals, in the two shapes its API answers with:
//!
//! - the API's own `{"code": "RESOURCE_ALREADY_EXIST", "message": "…"}` (the codes of MTN's
//!   "common errors" list: `RESOURCE_NOT_FOUND`, `INVALID_CURRENCY`, `NOT_ALLOWED_TARGET_ENVIRONMENT`,
//!   `INVALID_CALLBACK_URL_HOST`, `INTERNAL_PROCESSING_ERROR`, …);
//! - the API gateway's `{"statusCode": 401, "message": "Access denied due to …"}` for a missing or
//!   wrong subscription key or access token (MoMo sits behind an Azure API Management gateway,
//!   whose standard texts these are).

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

/// Which body a refusal is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `{"code", "message"}`.
    Api,
    /// `{"statusCode", "message"}`.
    Gateway,
    /// `{"error": "login_failed"}`, the token endpoint's answer to wrong credentials.
    Login,
}

/// One refusal: its HTTP status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MomoError {
    pub status: StatusCode,
    pub shape: Shape,
    /// Empty unless the shape is [`Shape::Api`].
    pub code: &'static str,
    pub message: String,
}

impl MomoError {
    fn api(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, shape: Shape::Api, code, message: message.into() }
    }

    fn gateway(status: StatusCode, message: &str) -> Self {
        Self { status, shape: Shape::Gateway, code: "", message: message.to_owned() }
    }

    pub fn missing_subscription_key() -> Self {
        Self::gateway(
            StatusCode::UNAUTHORIZED,
            "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.",
        )
    }

    pub fn invalid_subscription_key() -> Self {
        Self::gateway(
            StatusCode::UNAUTHORIZED,
            "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.",
        )
    }

    pub fn invalid_token() -> Self {
        Self::gateway(StatusCode::UNAUTHORIZED, "Access denied due to invalid or expired access token.")
    }

    /// `POST /collection/token/` with a wrong or missing Basic API user and key.
    pub fn login_failed() -> Self {
        Self { status: StatusCode::UNAUTHORIZED, shape: Shape::Login, code: "", message: "login_failed".into() }
    }

    /// A request that breaks the specification: which header or field, and why.
    pub fn bad_request(what: impl Into<String>) -> Self {
        Self::api(StatusCode::BAD_REQUEST, "BAD_REQUEST", what)
    }

    pub fn duplicate_reference() -> Self {
        Self::api(
            StatusCode::CONFLICT,
            "RESOURCE_ALREADY_EXIST",
            "Duplicated reference id. Creation of resource failed.",
        )
    }

    pub fn not_found() -> Self {
        Self::api(StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND", "Requested resource was not found.")
    }

    pub fn not_allowed_environment() -> Self {
        Self::api(
            StatusCode::INTERNAL_SERVER_ERROR,
            "NOT_ALLOWED_TARGET_ENVIRONMENT",
            "Access to target environment is forbidden.",
        )
    }

    pub fn invalid_currency() -> Self {
        Self::api(StatusCode::INTERNAL_SERVER_ERROR, "INVALID_CURRENCY", "Currency not supported.")
    }

    pub fn invalid_callback_host() -> Self {
        Self::api(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INVALID_CALLBACK_URL_HOST",
            "Callback URL with domain not whitelisted.",
        )
    }

    /// The answer of an injected fault (HTTP 500).
    pub fn injected_error() -> Self {
        Self::api(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_PROCESSING_ERROR",
            "An internal error occurred while processing.",
        )
    }

    /// The answer of an injected outage (HTTP 503).
    pub fn injected_outage() -> Self {
        Self::api(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", "Service is currently unavailable.")
    }
}

impl IntoResponse for MomoError {
    fn into_response(self) -> Response {
        let body = match self.shape {
            Shape::Login => json!({ "error": self.message }),
            Shape::Gateway => json!({ "statusCode": self.status.as_u16(), "message": self.message }),
            Shape::Api => json!({ "code": self.code, "message": self.message }),
        };
        (self.status, Json(body)).into_response()
    }
}
