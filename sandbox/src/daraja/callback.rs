//! The end of an STK transaction: after its delay the transaction settles (the query then answers
//! with the result) and Daraja POSTs the callback JSON to `CallBackURL`.
//!
//! ```json
//! {"Body":{"stkCallback":{"MerchantRequestID":"…","CheckoutRequestID":"ws_CO_…",
//!   "ResultCode":0,"ResultDesc":"The service request is processed successfully.",
//!   "CallbackMetadata":{"Item":[{"Name":"Amount","Value":1.0},
//!    {"Name":"MpesaReceiptNumber","Value":"OEB44R5U3U"},{"Name":"Balance"},
//!    {"Name":"TransactionDate","Value":20200511201419},
//!    {"Name":"PhoneNumber","Value":254794721438}]}}}}
//! ```
//!
//! `ResultCode`, `TransactionDate` and `PhoneNumber` are numbers; `Balance` has no `Value`;
//! `CallbackMetadata` is there only on success.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};
use tokio::time::sleep;

use super::{Daraja, Outcome, TxnState, nairobi_timestamp};
use crate::client::loggable;

/// How long one callback delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A transaction waiting to settle.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub merchant_request_id: String,
    pub checkout_request_id: String,
    pub msisdn: String,
    pub amount: u64,
    pub callback_url: url::Url,
    pub outcome: Outcome,
    pub after: Duration,
}

/// The callback body for a settled transaction. `receipt` and `transaction_date` matter only on
/// success.
pub fn callback_body(
    merchant_request_id: &str,
    checkout_request_id: &str,
    outcome: Outcome,
    amount: u64,
    receipt: &str,
    transaction_date: u64,
    msisdn: u64,
) -> Value {
    let mut callback = json!({
        "MerchantRequestID": merchant_request_id,
        "CheckoutRequestID": checkout_request_id,
        "ResultCode": outcome.result_code(),
        "ResultDesc": outcome.result_desc(),
    });
    if outcome.result_code() == 0 {
        callback["CallbackMetadata"] = json!({ "Item": [
            { "Name": "Amount", "Value": amount as f64 },
            { "Name": "MpesaReceiptNumber", "Value": receipt },
            { "Name": "Balance" },
            { "Name": "TransactionDate", "Value": transaction_date },
            { "Name": "PhoneNumber", "Value": msisdn },
        ]});
    }
    json!({ "Body": { "stkCallback": callback } })
}

/// The sender of M-Pesa confirmation messages.
pub const CONFIRMATION_SENDER: &str = "MPESA";
/// The merchant the sandbox's till belongs to, as the confirmation names it.
pub const MERCHANT_NAME: &str = "SAVANNA PULSE SHOP";

/// The payer's confirmation SMS in the shape Safaricom sends for a Lipa na M-Pesa payment:
/// `<receipt> Confirmed. Ksh<amount> paid to <merchant>. on <d/m/yy> at <h:mm AM>. ...`.
pub fn confirmation_sms(receipt: &str, amount: u64, now: chrono::DateTime<chrono::Utc>) -> String {
    let nairobi = now.with_timezone(&chrono::FixedOffset::east_opt(3 * 3600).expect("UTC+3"));
    format!(
        "{receipt} Confirmed. Ksh{amount}.00 paid to {MERCHANT_NAME}. on {} at {}. New M-PESA balance is \
         Ksh1,250.00. Transaction cost, Ksh0.00. Amount you can transact within the day is 499,000.00.",
        nairobi.format("%-d/%-m/%y"),
        nairobi.format("%-I:%M %p"),
    )
}

/// Waits, settles the transaction, releases the subscriber lock, and delivers the callback(s).
pub(crate) async fn complete(daraja: Arc<Daraja>, job: Job) {
    sleep(job.after).await;
    let outcome = job.outcome;
    daraja.ledger.lock().settle(&job.checkout_request_id, &job.msisdn, |txn| {
        txn.state = TxnState::Done { result_code: outcome.result_code(), result_desc: outcome.result_desc() };
    });
    let copies = outcome.callback_copies();
    if copies == 0 {
        tracing::info!(checkout = %job.checkout_request_id, result_code = outcome.result_code(), "stk settled without callback");
        return;
    }
    let receipt = daraja.rng.upper_alnum(10);
    if outcome.result_code() == 0 {
        let text = confirmation_sms(&receipt, job.amount, chrono::Utc::now());
        if let Err(e) = daraja.sms.send(&format!("+{}", job.msisdn), CONFIRMATION_SENDER, &text) {
            tracing::warn!(error = %e, "confirmation SMS not sent");
        }
    }
    let date = nairobi_timestamp().parse::<u64>().unwrap_or_default();
    let msisdn = job.msisdn.parse::<u64>().unwrap_or_default();
    let body =
        callback_body(&job.merchant_request_id, &job.checkout_request_id, outcome, job.amount, &receipt, date, msisdn);
    let body = bytes::Bytes::from(body.to_string());
    for copy in 1..=copies {
        let result = daraja
            .http
            .send(
                http::Method::POST,
                job.callback_url.as_str(),
                Some(("application/json", body.clone())),
                &[],
                DELIVERY_TIMEOUT,
            )
            .await;
        match result {
            Ok(resp) => tracing::info!(
                checkout = %job.checkout_request_id,
                result_code = outcome.result_code(),
                url = %loggable(&job.callback_url),
                status = resp.status.as_u16(),
                copy,
                "stk callback delivered"
            ),
            Err(e) => tracing::warn!(
                checkout = %job.checkout_request_id,
                url = %loggable(&job.callback_url),
                error = %e,
                copy,
                "stk callback delivery failed"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_body_has_typed_metadata() {
        let v = callback_body("m", "c", Outcome::Success, 1, "OEB44R5U3U", 20200511201419, 254794721438);
        let cb = &v["Body"]["stkCallback"];
        assert_eq!(cb["ResultCode"], json!(0));
        let items = cb["CallbackMetadata"]["Item"].as_array().unwrap();
        let by_name = |n: &str| items.iter().find(|i| i["Name"] == n).unwrap();
        assert!(by_name("Amount")["Value"].is_f64());
        assert_eq!(by_name("MpesaReceiptNumber")["Value"], "OEB44R5U3U");
        assert!(by_name("Balance").get("Value").is_none());
        assert_eq!(by_name("TransactionDate")["Value"], json!(20200511201419u64));
        assert_eq!(by_name("PhoneNumber")["Value"], json!(254794721438u64));
        assert!(v.to_string().contains(r#"{"Name":"Amount","Value":1.0}"#), "{v}");
    }

    #[test]
    fn failure_body_has_no_metadata() {
        let v = callback_body("m", "c", Outcome::Cancelled, 1, "X", 1, 1);
        let cb = &v["Body"]["stkCallback"];
        assert_eq!(cb["ResultCode"], json!(1032));
        assert_eq!(cb["ResultDesc"], "Request cancelled by user");
        assert!(cb.get("CallbackMetadata").is_none());
    }
}
