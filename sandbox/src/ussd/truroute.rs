//! TNM TruRoute dialect (Malawi): `text/xml` per hop, `<ussd><type>` 1 on the dial (`msg` is then
//! what was dialled), 2 with the current input in `msg`, 3 when the gateway releases the session;
//! the app answers the same document with `type` 2 (wait for input) or 3 (end).

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};

use super::{Dialect, Screen, UssdState, check_input};
use crate::{error::ApiError, mask::mask_phone};

/// One request, as the gateway sends it.
struct TruRouteRequest {
    kind: String,
    msg: String,
    sessionid: String,
    msisdn: String,
}

fn parse(body: &[u8]) -> Result<TruRouteRequest, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the body is not UTF-8 XML"))?;
    let doc = roxmltree::Document::parse(text).map_err(|e| ApiError::bad_request(format!("not XML: {e}")))?;
    let root = doc.root_element();
    if root.tag_name().name() != "ussd" {
        return Err(ApiError::bad_request(format!("the root element is <{}>, not <ussd>", root.tag_name().name())));
    }
    let field = |name: &str| {
        root.children()
            .find(|n| n.is_element() && n.tag_name().name() == name)
            .map(|n| n.text().unwrap_or_default().trim().to_owned())
    };
    let need = |name: &str| field(name).ok_or_else(|| ApiError::bad_request(format!("element <{name}>: missing")));
    Ok(TruRouteRequest {
        kind: need("type")?,
        msg: field("msg").unwrap_or_default(),
        sessionid: need("sessionid")?,
        msisdn: need("msisdn")?,
    })
}

/// `POST /ussd/truroute`.
pub(crate) async fn hop(State(state): State<Arc<UssdState>>, body: Bytes) -> Result<Response, ApiError> {
    let req = parse(&body)?;
    if req.sessionid.is_empty() {
        return Err(ApiError::bad_request("element <sessionid>: must not be empty"));
    }
    check_input("msg", &req.msg)?;
    tracing::debug!(dialect = "truroute", session = %req.sessionid, kind = %req.kind, phone = %mask_phone(&req.msisdn), "ussd hop");
    let screen = match req.kind.as_str() {
        "1" => state.start_session(Dialect::TruRoute, &req.sessionid, &req.msg),
        "2" => state
            .continue_session(Dialect::TruRoute, &req.sessionid, &req.msg, None)
            .unwrap_or_else(|| Screen::End("Session expired. Please dial again.".to_owned())),
        "3" => {
            state.end_session(Dialect::TruRoute, &req.sessionid);
            Screen::End("Session ended.".to_owned())
        }
        other => {
            return Err(ApiError::bad_request(format!("element <type>: `{other}` is not 1, 2 or 3")));
        }
    };
    let kind = if screen.is_end() { 3 } else { 2 };
    let xml = format!(
        "<ussd><type>{kind}</type><msg>{}</msg><msisdn>{}</msisdn></ussd>",
        escape(screen.text()),
        escape(&req.msisdn)
    );
    Ok(([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response())
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
