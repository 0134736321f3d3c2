//! How an STK push ends, chosen by the last two digits of its `PhoneNumber` (like the public
//! `mpesa-mock`'s phone-suffix table), so a journey picks its outcome by the MSISDN it uses.
//!
//! | suffix | outcome |
//! |---|---|
//! | 00 | success (ResultCode 0) |
//! | 01 | 1032 request cancelled by user |
//! | 02 | 1 insufficient funds |
//! | 03 | 2001 wrong PIN (initiator information invalid) |
//! | 04 | no callback at all; the query stays pending until the expiry (default 60 s), then 1037 |
//! | 05 | success, but the callback is delivered 3 times (duplicates) |
//! | 06 | 1037 DS timeout, user cannot be reached |
//! | 07 | 1025 error sending the push |
//! | 08 | 1019 transaction expired |
//! | 09 | slow success: the callback comes after 10 × the callback delay |
//! | other | success |

use std::time::Duration;

/// One row of the outcome table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Cancelled,
    InsufficientFunds,
    WrongPin,
    NoCallback,
    DuplicateCallbacks,
    DsTimeout,
    PushError,
    Expired,
    Slow,
}

/// The table as (suffix, outcome), in order; "other" is [`Outcome::Success`].
pub const TABLE: [(&str, Outcome); 10] = [
    ("00", Outcome::Success),
    ("01", Outcome::Cancelled),
    ("02", Outcome::InsufficientFunds),
    ("03", Outcome::WrongPin),
    ("04", Outcome::NoCallback),
    ("05", Outcome::DuplicateCallbacks),
    ("06", Outcome::DsTimeout),
    ("07", Outcome::PushError),
    ("08", Outcome::Expired),
    ("09", Outcome::Slow),
];

impl Outcome {
    /// The outcome for a phone number (any format: only the last two digits count).
    pub fn for_phone(phone: &str) -> Outcome {
        crate::auth::by_suffix(&TABLE, phone, Outcome::Success)
    }

    /// The ResultCode of the callback and the query.
    pub fn result_code(self) -> u32 {
        match self {
            Outcome::Success | Outcome::DuplicateCallbacks | Outcome::Slow => 0,
            Outcome::Cancelled => 1032,
            Outcome::InsufficientFunds => 1,
            Outcome::WrongPin => 2001,
            Outcome::NoCallback | Outcome::DsTimeout => 1037,
            Outcome::PushError => 1025,
            Outcome::Expired => 1019,
        }
    }

    /// The ResultDesc Daraja sends with the code.
    pub fn result_desc(self) -> &'static str {
        match self.result_code() {
            0 => "The service request is processed successfully.",
            1 => "The balance is insufficient for the transaction.",
            1032 => "Request cancelled by user",
            2001 => "The initiator information is invalid.",
            1037 => "DS timeout user cannot be reached",
            1025 => "An error occurred while sending a push request",
            1019 => "Transaction has expired",
            _ => "Unknown result",
        }
    }

    /// How many times the callback is delivered.
    pub fn callback_copies(self) -> u32 {
        match self {
            Outcome::NoCallback => 0,
            Outcome::DuplicateCallbacks => 3,
            _ => 1,
        }
    }

    /// When the transaction ends after the push: the callback delay, ten times it for
    /// [`Outcome::Slow`], the query expiry for [`Outcome::NoCallback`].
    pub fn completes_after(self, callback_delay: Duration, query_expiry: Duration) -> Duration {
        match self {
            Outcome::NoCallback => query_expiry,
            Outcome::Slow => callback_delay * 10,
            _ => callback_delay,
        }
    }

    /// A short description for logs and `--help`.
    pub fn describe(self) -> &'static str {
        match self {
            Outcome::Success => "success (0)",
            Outcome::Cancelled => "1032 cancelled by user",
            Outcome::InsufficientFunds => "1 insufficient funds",
            Outcome::WrongPin => "2001 wrong PIN",
            Outcome::NoCallback => "no callback; query pending until the expiry, then 1037",
            Outcome::DuplicateCallbacks => "success, callback delivered 3 times",
            Outcome::DsTimeout => "1037 DS timeout",
            Outcome::PushError => "1025 error sending the push",
            Outcome::Expired => "1019 transaction expired",
            Outcome::Slow => "success, callback after 10x the delay",
        }
    }
}

/// The table as text, for `--help`.
pub fn table_text() -> String {
    let mut out = String::from("STK push outcome by the PhoneNumber's last two digits:\n");
    for (suffix, outcome) in TABLE {
        out.push_str(&format!("  {suffix}     {}\n", outcome.describe()));
    }
    out.push_str("  other  success (0)\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_pick_outcomes() {
        assert_eq!(Outcome::for_phone("254708920400"), Outcome::Success);
        assert_eq!(Outcome::for_phone("254708920401").result_code(), 1032);
        assert_eq!(Outcome::for_phone("254708920402").result_code(), 1);
        assert_eq!(Outcome::for_phone("254708920403").result_code(), 2001);
        assert_eq!(Outcome::for_phone("254708920404"), Outcome::NoCallback);
        assert_eq!(Outcome::for_phone("254708920405").callback_copies(), 3);
        assert_eq!(Outcome::for_phone("254708920406").result_code(), 1037);
        assert_eq!(Outcome::for_phone("254708920407").result_code(), 1025);
        assert_eq!(Outcome::for_phone("254708920408").result_code(), 1019);
        assert_eq!(Outcome::for_phone("254708920409"), Outcome::Slow);
        assert_eq!(Outcome::for_phone("254708920430"), Outcome::Success);
        assert_eq!(Outcome::for_phone("0708920401"), Outcome::Cancelled);
        assert_eq!(Outcome::for_phone("7"), Outcome::Success);
    }

    #[test]
    fn timing_rows() {
        let d = Duration::from_millis(100);
        let e = Duration::from_secs(60);
        assert_eq!(Outcome::Slow.completes_after(d, e), Duration::from_secs(1));
        assert_eq!(Outcome::NoCallback.completes_after(d, e), e);
        assert_eq!(Outcome::Cancelled.completes_after(d, e), d);
        assert!(table_text().contains("  04     no callback"));
    }
}
