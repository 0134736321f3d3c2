//! The crate's error type (starting the sandbox) and the JSON error body every endpoint that is not
//! a wire-format emulation answers with.

use std::net::SocketAddr;

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};

use crate::faults::FaultError;

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound (in use, or not an address of this machine).
    #[error("cannot listen on {addr}: {source} (pick another address with --listen)")]
    Bind { addr: SocketAddr, source: std::io::Error },
    /// An initial fault in the configuration is out of range.
    #[error("invalid fault for {service}: {source}")]
    Fault { service: crate::Service, source: FaultError },
    /// A configuration value cannot work (for example an empty PIN).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The modem emulator could not open its pseudo-terminal.
    #[error("cannot open a pseudo-terminal for the modem emulator: {0} (is /dev/ptmx there and writable?)")]
    Pty(std::io::Error),
}

/// A plain `{"error": "..."}` answer with a status: what the shop, the admin API and the USSD
/// adapters send when a request is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, message: message.into() }
    }

    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

/// Parses a JSON request body into `T`, naming the offending field in the 400 answer
/// (`field `MSGTYPE`: invalid type: string "yes", expected a boolean`).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::bad_request(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::bad_request(format!("field `{path}`: {inner}"))
        }
    })
}
