//! How a C2B payment ends, chosen by the last two digits of `input_CustomerMSISDN` (the same
//! convention as the other emulations' tables). The answer comes when the customer has acted:
//! after the callback delay, or for `04` after the expiry.
//!
//! | suffix | code | HTTP | meaning |
//! |---|---|---|---|
//! | 00 | INS-0 | 201 | request processed successfully |
//! | 01 | INS-5 | 401 | transaction cancelled by the customer |
//! | 02 | INS-2006 | 422 | insufficient balance |
//! | 03 | INS-2001 | 400 | initiator authentication error (a wrong PIN) |
//! | 04 | INS-9 | 408 | request timeout: nobody answered, after the expiry |
//! | 05 | INS-6 | 401 | transaction failed |
//! | 06 | INS-996 | 400 | the customer's account is not active |
//! | 07 | INS-1 | 500 | internal error |
//! | 08 | INS-2051 | 400 | MSISDN invalid (no M-Pesa account) |
//! | 09 | INS-0 | 201 | success after 10 × the callback delay |
//! | other | INS-0 | 201 | success |

use std::time::Duration;

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Cancelled,
    InsufficientBalance,
    WrongPin,
    NobodyAnswers,
    Failed,
    NotActive,
    InternalError,
    InvalidMsisdn,
    Slow,
}

/// The table as (suffix, outcome), in order; "other" is [`Outcome::Success`].
pub const TABLE: [(&str, Outcome); 10] = [
    ("00", Outcome::Success),
    ("01", Outcome::Cancelled),
    ("02", Outcome::InsufficientBalance),
    ("03", Outcome::WrongPin),
    ("04", Outcome::NobodyAnswers),
    ("05", Outcome::Failed),
    ("06", Outcome::NotActive),
    ("07", Outcome::InternalError),
    ("08", Outcome::InvalidMsisdn),
    ("09", Outcome::Slow),
];

impl Outcome {
    /// The outcome for a customer MSISDN (only its last two digits count).
    pub fn for_msisdn(msisdn: &str) -> Outcome {
        crate::auth::by_suffix(&TABLE, msisdn, Outcome::Success)
    }

    /// The `output_ResponseCode`.
    pub fn code(self) -> &'static str {
        match self {
            Outcome::Success | Outcome::Slow => "INS-0",
            Outcome::Cancelled => "INS-5",
            Outcome::InsufficientBalance => "INS-2006",
            Outcome::WrongPin => "INS-2001",
            Outcome::NobodyAnswers => "INS-9",
            Outcome::Failed => "INS-6",
            Outcome::NotActive => "INS-996",
            Outcome::InternalError => "INS-1",
            Outcome::InvalidMsisdn => "INS-2051",
        }
    }

    /// When the customer has acted: the callback delay, ten times it for [`Outcome::Slow`], the
    /// expiry for [`Outcome::NobodyAnswers`].
    pub fn answers_after(self, delay: Duration, expiry: Duration) -> Duration {
        match self {
            Outcome::NobodyAnswers => expiry,
            Outcome::Slow => delay * 10,
            _ => delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suffix_picks_the_row() {
        assert_eq!(Outcome::for_msisdn("255754000100"), Outcome::Success);
        assert_eq!(Outcome::for_msisdn("255754000104").code(), "INS-9");
        assert_eq!(Outcome::for_msisdn("255754000199"), Outcome::Success);
        for (suffix, outcome) in TABLE {
            assert_eq!(Outcome::for_msisdn(&format!("2557540001{suffix}")), outcome);
            assert!(super::super::describe(outcome.code()).1 >= 200);
        }
    }
}
