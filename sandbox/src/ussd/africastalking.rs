//! Africa's Talking dialect: the gateway POSTs a form per hop with `text` = every input so far
//! joined by `*` (`""` on the first hit); the app answers `text/plain` `CON ...` or `END ...`.
//! At the end of a session AT POSTs an event to a separate URL; the app answers 200.

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use super::{MAX_TEXT_CHARS, UssdState, check_input, menu::split_africastalking_text, redact_inputs};
use crate::{
    error::ApiError,
    mask::{mask_phone, mask_phones},
};

/// One hop from the gateway.
#[derive(Debug, Deserialize)]
struct HopForm {
    #[serde(rename = "sessionId")]
    session_id: String,
    #[serde(rename = "serviceCode", default)]
    service_code: String,
    #[serde(rename = "phoneNumber")]
    phone_number: String,
    #[serde(rename = "networkCode", default)]
    network_code: String,
    /// Missing is taken as the first hit (`""`), as some simulators leave it out.
    #[serde(default)]
    text: String,
}

fn parse_form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_urlencoded::from_bytes(body).map_err(|e| ApiError::bad_request(format!("invalid form body: {e}")))
}

/// `POST /ussd/at`.
pub(crate) async fn hop(State(state): State<Arc<UssdState>>, body: Bytes) -> Result<Response, ApiError> {
    let form: HopForm = parse_form(&body)?;
    if form.session_id.trim().is_empty() {
        return Err(ApiError::bad_request("field `sessionId`: must not be empty"));
    }
    if form.text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::bad_request(format!("field `text`: longer than {MAX_TEXT_CHARS} characters")));
    }
    let inputs = split_africastalking_text(&form.text);
    for input in &inputs {
        check_input("text", input)?;
    }
    let screen = state.screen(&inputs);
    tracing::debug!(
        dialect = "africastalking",
        session = %form.session_id,
        service_code = %form.service_code,
        network = %form.network_code,
        phone = %mask_phone(&form.phone_number),
        hop = inputs.len() + 1,
        end = screen.is_end(),
        "ussd hop"
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], screen.to_africastalking()).into_response())
}

/// The end-of-session notification, as AT sends it.
#[derive(Debug, Deserialize)]
struct EventForm {
    date: Option<String>,
    #[serde(rename = "sessionId")]
    session_id: String,
    #[serde(rename = "serviceCode")]
    service_code: Option<String>,
    #[serde(rename = "networkCode")]
    network_code: Option<String>,
    #[serde(rename = "phoneNumber")]
    phone_number: Option<String>,
    status: String,
    cost: Option<String>,
    #[serde(rename = "durationInMillis")]
    duration_in_millis: Option<String>,
    #[serde(rename = "hopsCount")]
    hops_count: Option<String>,
    #[serde(rename = "hopsMetadata")]
    hops_metadata: Option<String>,
    input: Option<String>,
    #[serde(rename = "lastAppResponse")]
    last_app_response: Option<String>,
    #[serde(rename = "errorMessage")]
    error_message: Option<String>,
}

/// An event as kept for `GET /ussd/at/events`: AT's field names, every phone number masked (in
/// `input`, `lastAppResponse` and `errorMessage` too) and the PIN in `input` replaced by `****`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    pub date: Option<String>,
    pub session_id: String,
    pub service_code: Option<String>,
    pub network_code: Option<String>,
    pub phone_number: Option<String>,
    pub status: String,
    pub cost: Option<String>,
    pub duration_in_millis: Option<u64>,
    pub hops_count: Option<u64>,
    pub hops_metadata: Option<String>,
    pub input: Option<String>,
    pub last_app_response: Option<String>,
    pub error_message: Option<String>,
    /// When the sandbox received it (UTC, RFC 3339).
    pub received_at: String,
}

fn parse_count(field: &str, value: Option<String>) -> Result<Option<u64>, ApiError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("field `{field}`: must be a whole number, got `{v}`"))),
    }
}

/// `POST /ussd/at/events`.
pub(crate) async fn event(State(state): State<Arc<UssdState>>, body: Bytes) -> Result<Response, ApiError> {
    let form: EventForm = parse_form(&body)?;
    if form.session_id.trim().is_empty() {
        return Err(ApiError::bad_request("field `sessionId`: must not be empty"));
    }
    if !matches!(form.status.as_str(), "Success" | "Incomplete" | "Failed") {
        return Err(ApiError::bad_request(format!(
            "field `status`: must be Success, Incomplete or Failed, got `{}`",
            form.status
        )));
    }
    let stored = StoredEvent {
        duration_in_millis: parse_count("durationInMillis", form.duration_in_millis)?,
        hops_count: parse_count("hopsCount", form.hops_count)?,
        date: form.date,
        session_id: form.session_id,
        service_code: form.service_code,
        network_code: form.network_code,
        phone_number: form.phone_number.as_deref().map(mask_phone),
        status: form.status,
        cost: form.cost,
        hops_metadata: form.hops_metadata,
        input: form.input.as_deref().map(|i| mask_phones(&redact_inputs(&split_africastalking_text(i)).join("*"))),
        last_app_response: form.last_app_response.as_deref().map(mask_phones),
        error_message: form.error_message.as_deref().map(mask_phones),
        received_at: chrono::Utc::now().to_rfc3339(),
    };
    tracing::info!(session = %stored.session_id, status = %stored.status, "ussd end-of-session event");
    let mut events = state.events.lock();
    if events.len() >= state.max_events {
        events.pop_front();
    }
    events.push_back(stored);
    Ok(StatusCode::OK.into_response())
}

/// `GET /ussd/at/events`: the last events, oldest first.
pub(crate) async fn list_events(State(state): State<Arc<UssdState>>) -> Json<Vec<StoredEvent>> {
    Json(state.events.lock().iter().cloned().collect())
}
