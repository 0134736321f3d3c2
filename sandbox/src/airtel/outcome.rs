//! How an Airtel collection ends, chosen by the last two digits of `subscriber.msisdn`, so a
//! journey picks its outcome by the number it pays from (the same idea as Daraja's table).
//!
//! | suffix | status | outcome |
//! |---|---|---|
//! | 00 | TS | success (`DP00800001001`) |
//! | 01 | TF | refused by the payer (`DP00800001008`) |
//! | 02 | TF | not enough balance (`DP00800001007`) |
//! | 03 | TF | incorrect PIN (`DP00800001002`) |
//! | 04 | TIP, then TF | nobody answers: in progress until the expiry, then timed out (`DP00800001024`); no callback before |
//! | 05 | TA | ambiguous (`DP00800001000`); no callback (Airtel calls back with TS or TF only) |
//! | 06 | TS | success, the callback delivered 3 times |
//! | 07 | TS | slow success: settled after 10 × the callback delay |
//! | other | TS | success |
//!
//! The `DP…` codes and their texts are those of Airtel's collection error-code page as
//! integrators copy it (developers.airtel.africa, "Collection APIs — error codes"); which code a
//! real settlement carries in the status query is **Unsure** (not observed in UAT).

use std::time::Duration;

/// One row of the outcome table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Refused,
    NotEnoughBalance,
    WrongPin,
    NoAnswer,
    Ambiguous,
    DuplicateCallbacks,
    Slow,
}

/// The table as (suffix, outcome), in order; "other" is [`Outcome::Success`].
pub const TABLE: [(&str, Outcome); 8] = [
    ("00", Outcome::Success),
    ("01", Outcome::Refused),
    ("02", Outcome::NotEnoughBalance),
    ("03", Outcome::WrongPin),
    ("04", Outcome::NoAnswer),
    ("05", Outcome::Ambiguous),
    ("06", Outcome::DuplicateCallbacks),
    ("07", Outcome::Slow),
];

/// `TIP`'s response code and text in the status query.
pub const IN_PROCESS: (&str, &str) = ("DP00800001006", "Transaction in pending state. Please check after sometime.");

impl Outcome {
    /// The outcome for a number (any format: only the last two digits count).
    pub fn for_msisdn(msisdn: &str) -> Outcome {
        crate::auth::by_suffix(&TABLE, msisdn, Outcome::Success)
    }

    /// The final transaction status: `TS`, `TF` or `TA`.
    pub fn status(self) -> &'static str {
        match self {
            Outcome::Success | Outcome::DuplicateCallbacks | Outcome::Slow => "TS",
            Outcome::Refused | Outcome::NotEnoughBalance | Outcome::WrongPin | Outcome::NoAnswer => "TF",
            Outcome::Ambiguous => "TA",
        }
    }

    /// The final `DP…` response code and Airtel's text for it.
    pub fn response(self) -> (&'static str, &'static str) {
        match self {
            Outcome::Success | Outcome::DuplicateCallbacks | Outcome::Slow => {
                ("DP00800001001", "Transaction is successful.")
            }
            Outcome::Refused => ("DP00800001008", "The transaction was refused."),
            Outcome::NotEnoughBalance => {
                ("DP00800001007", "User wallet does not have enough money to cover the payable amount.")
            }
            Outcome::WrongPin => ("DP00800001002", "Incorrect pin has been entered."),
            Outcome::NoAnswer => ("DP00800001024", "The transaction was timed out."),
            Outcome::Ambiguous => (
                "DP00800001000",
                "The transaction is still processing and is in ambiguous state. Please do the transaction enquiry to fetch the transaction status.",
            ),
        }
    }

    /// How many times the callback is delivered (if a callback URL is configured).
    pub fn callback_copies(self) -> u32 {
        match self {
            Outcome::Ambiguous => 0,
            Outcome::DuplicateCallbacks => 3,
            _ => 1,
        }
    }

    /// When the transaction settles after the request: the callback delay, ten times it for
    /// [`Outcome::Slow`], the expiry for [`Outcome::NoAnswer`].
    pub fn settles_after(self, callback_delay: Duration, expiry: Duration) -> Duration {
        match self {
            Outcome::NoAnswer => expiry,
            Outcome::Slow => callback_delay * 10,
            _ => callback_delay,
        }
    }

    /// A short description for logs and `--help`.
    pub fn describe(self) -> &'static str {
        match self {
            Outcome::Success => "TS success",
            Outcome::Refused => "TF refused by the payer",
            Outcome::NotEnoughBalance => "TF not enough balance",
            Outcome::WrongPin => "TF incorrect PIN",
            Outcome::NoAnswer => "TIP until the expiry, then TF timed out (no callback before)",
            Outcome::Ambiguous => "TA ambiguous, no callback",
            Outcome::DuplicateCallbacks => "TS success, callback delivered 3 times",
            Outcome::Slow => "TS success after 10x the callback delay",
        }
    }
}

/// The table as text, for `--help`.
pub fn table_text() -> String {
    let mut out = String::from("Airtel collection outcome by subscriber.msisdn's last two digits:\n");
    for (suffix, outcome) in TABLE {
        out.push_str(&format!("  {suffix}     {}\n", outcome.describe()));
    }
    out.push_str("  other  TS success\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_pick_outcomes() {
        assert_eq!(Outcome::for_msisdn("750000100"), Outcome::Success);
        assert_eq!(Outcome::for_msisdn("750000101").status(), "TF");
        assert_eq!(Outcome::for_msisdn("750000102").response().0, "DP00800001007");
        assert_eq!(Outcome::for_msisdn("750000103").response().0, "DP00800001002");
        assert_eq!(Outcome::for_msisdn("750000104"), Outcome::NoAnswer);
        assert_eq!(Outcome::for_msisdn("750000105").status(), "TA");
        assert_eq!(Outcome::for_msisdn("750000106").callback_copies(), 3);
        assert_eq!(Outcome::for_msisdn("750000107"), Outcome::Slow);
        assert_eq!(Outcome::for_msisdn("750000199"), Outcome::Success);
        assert_eq!(Outcome::for_msisdn(""), Outcome::Success);
    }

    #[test]
    fn timing_rows() {
        let (d, e) = (Duration::from_millis(100), Duration::from_secs(60));
        assert_eq!(Outcome::Slow.settles_after(d, e), Duration::from_secs(1));
        assert_eq!(Outcome::NoAnswer.settles_after(d, e), e);
        assert_eq!(Outcome::Refused.settles_after(d, e), d);
        assert_eq!(Outcome::Ambiguous.callback_copies(), 0);
        assert!(table_text().contains("  04     TIP until the expiry"));
    }
}
