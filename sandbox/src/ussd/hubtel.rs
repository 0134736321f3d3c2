//! Hubtel Programmable Services dialect: JSON per hop with `Type` (`Initiation`, `Response`,
//! `Release`, `Timeout`) and `Message` = the current input only; the app answers JSON with
//! `Type: "response"` (wait for input) or `"release"` (end), and `Label`, `DataType`, `FieldType`
//! always present (Hubtel refuses a reply without them).

use std::sync::Arc;

use axum::{Json, body::Bytes, extract::State};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Dialect, Screen, UssdState, check_input};
use crate::{
    error::{ApiError, parse_json},
    mask::mask_phone,
};

const LABEL: &str = "Savanna Pay";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HubtelRequest {
    session_id: String,
    #[serde(default)]
    mobile: String,
    #[serde(default)]
    service_code: String,
    #[serde(rename = "Type")]
    kind: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    operator: String,
    /// Hop number; a number, though some integrations send it as a string.
    #[serde(default)]
    sequence: Option<Value>,
    #[serde(default)]
    client_state: Option<String>,
}

/// The app's answer, exactly the fields Hubtel requires.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HubtelResponse {
    pub session_id: String,
    #[serde(rename = "Type")]
    pub kind: &'static str,
    pub message: String,
    pub label: &'static str,
    pub client_state: String,
    pub data_type: &'static str,
    pub field_type: &'static str,
}

impl HubtelResponse {
    fn from_screen(session_id: String, screen: &Screen) -> Self {
        let (kind, data_type) = if screen.is_end() { ("release", "display") } else { ("response", "input") };
        Self {
            session_id,
            kind,
            message: screen.text().to_owned(),
            label: LABEL,
            client_state: String::new(),
            data_type,
            field_type: "text",
        }
    }
}

fn sequence(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `POST /ussd/hubtel`.
pub(crate) async fn hop(State(state): State<Arc<UssdState>>, body: Bytes) -> Result<Json<HubtelResponse>, ApiError> {
    let req: HubtelRequest = parse_json(&body)?;
    if req.session_id.trim().is_empty() {
        return Err(ApiError::bad_request("field `SessionId`: must not be empty"));
    }
    check_input("Message", &req.message)?;
    let seq = sequence(req.sequence.as_ref());
    tracing::debug!(
        dialect = "hubtel",
        session = %req.session_id,
        kind = %req.kind,
        service_code = %req.service_code,
        operator = %req.operator,
        phone = %mask_phone(&req.mobile),
        sequence = ?seq,
        client_state = req.client_state.is_some(),
        "ussd hop"
    );
    let screen = match req.kind.to_ascii_lowercase().as_str() {
        // The Initiation's Message is what was dialled: a direct dial carries inputs.
        "initiation" => state.start_session(Dialect::Hubtel, &req.session_id, &req.message),
        "response" => state
            .continue_session(Dialect::Hubtel, &req.session_id, req.message.trim(), seq)
            .unwrap_or_else(|| Screen::End("Session expired. Please dial again.".to_owned())),
        "release" | "timeout" => {
            state.end_session(Dialect::Hubtel, &req.session_id);
            Screen::End("Session ended.".to_owned())
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "field `Type`: unsupported value `{}` (expected Initiation, Response, Release or Timeout)",
                req.kind
            )));
        }
    };
    Ok(Json(HubtelResponse::from_screen(req.session_id, &screen)))
}
