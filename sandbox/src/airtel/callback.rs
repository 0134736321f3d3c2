//! The end of a collection: after its delay the transaction settles (the enquiry then answers with
//! the final status), the subscriber is free again, and — when a callback URL is configured, as
//! Airtel's is in its portal — the sandbox POSTs:
//!
//! ```json
//! {"transaction":{"id":"<transaction.id>","message":"Transaction is successful.",
//!   "status_code":"TS","airtel_money_id":"MP261203.1015.A12345"}}
//! ```
//!
//! `status_code` is `TS` or `TF`; an ambiguous (`TA`) transaction is not called back. Airtel's
//! callback carries no signature in v1 as far as public sources show (**Unsure**), so neither does
//! this one.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};
use tokio::time::sleep;

use super::{Airtel, Outcome, TxnState};
use crate::client::loggable;

/// How long one callback delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A transaction waiting to settle.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub id: String,
    pub msisdn: String,
    pub amount: u64,
    pub currency: &'static str,
    pub outcome: Outcome,
    pub after: Duration,
}

/// The callback body for a settled transaction.
pub fn callback_body(id: &str, outcome: Outcome, airtel_money_id: &str) -> Value {
    json!({ "transaction": {
        "id": id,
        "message": outcome.response().1,
        "status_code": outcome.status(),
        "airtel_money_id": airtel_money_id,
    }})
}

/// Waits, settles the transaction, releases the subscriber, and delivers the callback(s).
pub(crate) async fn settle(airtel: Arc<Airtel>, job: Job) {
    sleep(job.after).await;
    let outcome = job.outcome;
    let money_id = airtel.ledger.lock().settle(&job.id, &job.msisdn, |txn| {
        txn.state = TxnState::Done(outcome);
        txn.airtel_money_id.clone()
    });
    let money_id = money_id.unwrap_or_default();
    tracing::info!(
        id = %job.id,
        status = outcome.status(),
        amount = job.amount,
        currency = job.currency,
        "airtel collection settled"
    );
    let Some(url) = airtel.settings.callback_url.clone() else { return };
    let copies = outcome.callback_copies();
    let body = bytes::Bytes::from(callback_body(&job.id, outcome, &money_id).to_string());
    for copy in 1..=copies {
        let result = airtel
            .http
            .send(http::Method::POST, url.as_str(), Some(("application/json", body.clone())), &[], DELIVERY_TIMEOUT)
            .await;
        match result {
            Ok(resp) => tracing::info!(
                id = %job.id,
                status_code = outcome.status(),
                url = %loggable(&url),
                status = resp.status.as_u16(),
                copy,
                "airtel callback delivered"
            ),
            Err(e) => {
                tracing::warn!(id = %job.id, url = %loggable(&url), error = %e, copy, "airtel callback delivery failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_the_final_status() {
        let v = callback_body("abc", Outcome::Success, "MP1");
        assert_eq!(v["transaction"]["status_code"], "TS");
        assert_eq!(v["transaction"]["airtel_money_id"], "MP1");
        let v = callback_body("abc", Outcome::NoAnswer, "MP1");
        assert_eq!(v["transaction"]["status_code"], "TF");
        assert_eq!(v["transaction"]["message"], "The transaction was timed out.");
        let mut keys: Vec<&String> = v["transaction"].as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["airtel_money_id", "id", "message", "status_code"]);
    }
}
