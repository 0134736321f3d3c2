//! The transaction enquiry, `GET /standard/v1/payments/{id}` with the Bearer token, `X-Country`
//! and `X-Currency`:
//!
//! ```json
//! {"data":{"transaction":{"airtel_money_id":"MP261203.1015.A12345","id":"<transaction.id>",
//!   "message":"Transaction is successful.","status":"TS"}},
//!  "status":{"code":"200","message":"SUCCESS","result_code":"ESB000010",
//!   "response_code":"DP00800001001","success":true}}
//! ```
//!
//! `status` is `TIP` (in progress, `DP00800001006`) until the transaction settles, then `TS`,
//! `TF` or `TA` with the outcome's `DP…` code and text. An id the emulation does not know, or one
//! collected in another country, is `ESB000045` with HTTP 404 (the sandbox's choice of status).

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::HeaderMap,
};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Airtel, AirtelError, TxnState, country_headers, outcome::IN_PROCESS};

/// The enquiry's answer for one transaction.
pub(crate) fn answer(id: &str, airtel_money_id: &str, state: &TxnState) -> Value {
    let (status, (response_code, message)) = match state {
        TxnState::Pending => ("TIP", IN_PROCESS),
        TxnState::Done(outcome) => (outcome.status(), outcome.response()),
    };
    json!({
        "data": { "transaction": {
            "airtel_money_id": airtel_money_id,
            "id": id,
            "message": message,
            "status": status,
        }},
        "status": {
            "code": "200",
            "message": "SUCCESS",
            "result_code": "ESB000010",
            "response_code": response_code,
            "success": true,
        },
    })
}

/// `GET /standard/v1/payments/{id}`.
pub(crate) async fn status(
    State(airtel): State<Arc<Airtel>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, AirtelError> {
    airtel.check_bearer(&headers)?;
    let country = country_headers(&headers)?;
    let txn = airtel.ledger.lock().txns.get(&id, Instant::now()).cloned();
    match txn {
        Some(t) if t.country == country => Ok(Json(answer(&id, &t.airtel_money_id, &t.state))),
        _ => Err(AirtelError::not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::airtel::Outcome;

    #[test]
    fn answers_carry_status_code_and_text() {
        let v = answer("abc", "MP1", &TxnState::Pending);
        assert_eq!(v["data"]["transaction"]["status"], "TIP");
        assert_eq!(v["status"]["response_code"], "DP00800001006");
        let v = answer("abc", "MP1", &TxnState::Done(Outcome::NotEnoughBalance));
        assert_eq!(v["data"]["transaction"]["status"], "TF");
        assert_eq!(v["status"]["response_code"], "DP00800001007");
        assert_eq!(v["data"]["transaction"]["id"], "abc");
    }
}
