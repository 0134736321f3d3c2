//! Airtel's answers when something is refused, in the two shapes the emulation speaks:
//!
//! - the Open API's `status` envelope for the payment paths:
//!   `{"data":{},"status":{"code":"400","message":"…","result_code":"ESB000008","success":false}}`
//!   (`result_code` and `response_code` only when the emulation has a documented code for the
//!   case);
//! - an OAuth 2.0 error for the token path (RFC 6749 §5.2): `{"error":"invalid_client",
//!   "error_description":"…"}`. Airtel publishes no refusal example for its token endpoint, so this
//!   shape is the sandbox's choice (sandbox/README.md says so).
//!
//! The `ESB…` and `ROUTER…` codes are those integrators list from Airtel's error-code pages; the
//! HTTP statuses that go with them are the sandbox's choice (Airtel documents none).

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// One refusal: HTTP status, the envelope's fields, or an OAuth error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AirtelError {
    pub status: StatusCode,
    pub message: String,
    /// `ESB…`/`ROUTER…`, when there is a documented one.
    pub result_code: Option<&'static str>,
    /// `DP…`, when there is a documented one.
    pub response_code: Option<&'static str>,
    /// `Some(error)` for the token path: the answer is an OAuth 2.0 error body instead.
    pub oauth: Option<&'static str>,
}

impl AirtelError {
    fn new(status: StatusCode, result_code: Option<&'static str>, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), result_code, response_code: None, oauth: None }
    }

    fn oauth(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self { oauth: Some(error), ..Self::new(status, None, description) }
    }

    /// OAuth `invalid_request` (HTTP 400): `field` is missing or not a string.
    pub fn oauth_invalid_request(field: &str) -> Self {
        Self::oauth(StatusCode::BAD_REQUEST, "invalid_request", format!("{field} is missing or not a string"))
    }

    /// OAuth `invalid_request` (HTTP 400): the body is not a JSON object (a form, say).
    pub fn oauth_not_json() -> Self {
        Self::oauth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be a JSON object {client_id, client_secret, grant_type}",
        )
    }

    /// OAuth `unsupported_grant_type` (HTTP 400): `grant_type` is not `client_credentials`.
    pub fn oauth_grant_type() -> Self {
        Self::oauth(StatusCode::BAD_REQUEST, "unsupported_grant_type", "grant_type must be client_credentials")
    }

    /// OAuth `invalid_client` (HTTP 401): wrong `client_id` or `client_secret`.
    pub fn oauth_invalid_client() -> Self {
        Self::oauth(StatusCode::UNAUTHORIZED, "invalid_client", "Invalid client credentials")
    }

    /// HTTP 401: a missing, unknown or expired Bearer token.
    pub fn invalid_token() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, None, "Authorization failed: invalid or expired access token")
    }

    /// `ROUTER006` (HTTP 400): `X-Country` missing or not a country the emulation serves.
    pub fn invalid_country_header() -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("ROUTER006"), "Invalid country code provided. (X-Country: UG or TZ)")
    }

    /// `ROUTER112` (HTTP 400): `X-Currency` missing or not the country's currency.
    pub fn invalid_currency_header() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Some("ROUTER112"),
            "Invalid currency provided. (X-Currency must be the X-Country's: UGX for UG, TZS for TZ)",
        )
    }

    /// `ESB000008` field validation (HTTP 400), naming the field and what it must be.
    pub fn field(field: &str, must: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("ESB000008"), format!("Field validation: {field} {must}"))
    }

    /// `ESB000033` (HTTP 400): `subscriber.msisdn` is not a 9-digit national mobile number.
    pub fn msisdn(why: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("ESB000033"), format!("Invalid MSISDN Length: subscriber.msisdn {why}"))
    }

    /// `ESB000034` (HTTP 400): a body `country` that is not the `X-Country`.
    pub fn country(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Some("ESB000034"),
            format!("Invalid Country Name: {field} must be X-Country"),
        )
    }

    /// `ESB000035` (HTTP 400): a body `currency` that is not the `X-Currency`.
    pub fn currency(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Some("ESB000035"),
            format!("Invalid Currency Code: {field} must be X-Currency"),
        )
    }

    /// `ESB000041` (HTTP 400): a `transaction.id` used before.
    pub fn duplicate_id() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Some("ESB000041"),
            "External Transaction ID already exists. (transaction.id must be unique)",
        )
    }

    /// `ESB000004` (HTTP 409): the subscriber has a payment in flight.
    pub fn subscriber_busy() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            Some("ESB000004"),
            "An error occurred while initiating the payment: a transaction is already in process for subscriber.msisdn",
        )
    }

    /// `ESB000045` / `DP00800001025` (HTTP 404): the status query names no known transaction.
    pub fn not_found() -> Self {
        Self {
            response_code: Some("DP00800001025"),
            ..Self::new(StatusCode::NOT_FOUND, Some("ESB000045"), "No Transaction Found With Provided Transaction Id.")
        }
    }

    /// `ESB000001` (HTTP 503): the emulation is full of transactions in flight.
    pub fn busy() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("ESB000001"),
            "Something went wrong: too many transactions in flight",
        )
    }

    /// `ESB000001` (HTTP 500): the fault layer's injected server error.
    pub fn injected_error() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, Some("ESB000001"), "Something went wrong")
    }

    /// HTTP 503: the fault layer's injected outage.
    pub fn injected_outage() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, None, "Service Unavailable")
    }

    /// The JSON body of the answer.
    pub fn body(&self) -> Value {
        if let Some(error) = self.oauth {
            return json!({ "error": error, "error_description": self.message });
        }
        let mut status = json!({
            "code": self.status.as_u16().to_string(),
            "message": self.message,
            "success": false,
        });
        if let Some(c) = self.result_code {
            status["result_code"] = json!(c);
        }
        if let Some(c) = self.response_code {
            status["response_code"] = json!(c);
        }
        json!({ "data": {}, "status": status })
    }
}

impl std::fmt::Display for AirtelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl IntoResponse for AirtelError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_and_oauth_errors() {
        let e = AirtelError::field("reference", "must be text").body();
        assert_eq!(e["status"]["code"], "400");
        assert_eq!(e["status"]["result_code"], "ESB000008");
        assert_eq!(e["status"]["success"], false);
        assert!(e["status"].get("response_code").is_none());
        let nf = AirtelError::not_found().body();
        assert_eq!(nf["status"]["response_code"], "DP00800001025");
        let o = AirtelError::oauth_invalid_client().body();
        assert_eq!(o["error"], "invalid_client");
        assert!(o.get("status").is_none());
    }
}
