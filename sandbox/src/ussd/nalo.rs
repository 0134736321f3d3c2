//! Nalo Solutions dialect: JSON per hop, `MSGTYPE: true` on the initial hit (`USERDATA` is then the
//! dialled code), `USERDATA` = the current input only afterwards; the app answers
//! `{USERID, MSISDN, MSG, MSGTYPE}` with `MSGTYPE: true` to continue and `false` to end.

use std::sync::Arc;

use axum::{Json, body::Bytes, extract::State};
use serde::{Deserialize, Serialize};

use super::{Dialect, Screen, UssdState, check_input};
use crate::{
    error::{ApiError, parse_json},
    mask::mask_phone,
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
struct NaloRequest {
    userid: String,
    msisdn: String,
    #[serde(default)]
    userdata: String,
    msgtype: bool,
    #[serde(default)]
    network: String,
    sessionid: String,
}

/// The app's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub struct NaloResponse {
    pub userid: String,
    pub msisdn: String,
    pub msg: String,
    /// `true`: wait for input; `false`: the session ends.
    pub msgtype: bool,
}

/// `POST /ussd/nalo`.
pub(crate) async fn hop(State(state): State<Arc<UssdState>>, body: Bytes) -> Result<Json<NaloResponse>, ApiError> {
    let req: NaloRequest = parse_json(&body)?;
    if req.sessionid.trim().is_empty() {
        return Err(ApiError::bad_request("field `SESSIONID`: must not be empty"));
    }
    check_input("USERDATA", &req.userdata)?;
    tracing::debug!(
        dialect = "nalo",
        session = %req.sessionid,
        initial = req.msgtype,
        network = %req.network,
        phone = %mask_phone(&req.msisdn),
        "ussd hop"
    );
    let screen = if req.msgtype {
        state.start_session(Dialect::Nalo, &req.sessionid, &req.userdata)
    } else {
        state
            .continue_session(Dialect::Nalo, &req.sessionid, req.userdata.trim(), None)
            .unwrap_or_else(|| Screen::End("Session expired. Please dial again.".to_owned()))
    };
    Ok(Json(NaloResponse {
        userid: req.userid,
        msisdn: req.msisdn,
        msg: screen.text().to_owned(),
        msgtype: !screen.is_end(),
    }))
}
