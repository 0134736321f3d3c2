//! How a request to pay ends, chosen by the last two digits of the payer's `partyId` (the same
//! convention as the Daraja emulation's table), so a journey picks its outcome by the MSISDN.
//!
//! | suffix | status | reason |
//! |---|---|---|
//! | 00 | SUCCESSFUL | |
//! | 01 | FAILED | APPROVAL_REJECTED (the payer declined) |
//! | 02 | FAILED | NOT_ENOUGH_FUNDS |
//! | 03 | FAILED | PAYER_LIMIT_REACHED |
//! | 04 | PENDING until the expiry (nobody answers), then FAILED | COULD_NOT_PERFORM_TRANSACTION |
//! | 05 | SUCCESSFUL, the callback delivered 3 times | |
//! | 06 | FAILED | EXPIRED |
//! | 07 | FAILED | INTERNAL_PROCESSING_ERROR |
//! | 08 | FAILED | PAYER_NOT_FOUND (and `accountholder/…/active` says false) |
//! | 09 | SUCCESSFUL after 10 × the callback delay | |
//! | 10 | FAILED | SENDER_ACCOUNT_NOT_ACTIVE |
//! | 11 | FAILED | TRANSACTION_CANCELED |
//! | other | SUCCESSFUL | |

use std::time::Duration;

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Rejected,
    NotEnoughFunds,
    LimitReached,
    NobodyAnswers,
    DuplicateCallbacks,
    Expired,
    InternalError,
    PayerNotFound,
    Slow,
    NotActive,
    Cancelled,
}

/// The table as (suffix, outcome), in order; "other" is [`Outcome::Success`].
pub const TABLE: [(&str, Outcome); 12] = [
    ("00", Outcome::Success),
    ("01", Outcome::Rejected),
    ("02", Outcome::NotEnoughFunds),
    ("03", Outcome::LimitReached),
    ("04", Outcome::NobodyAnswers),
    ("05", Outcome::DuplicateCallbacks),
    ("06", Outcome::Expired),
    ("07", Outcome::InternalError),
    ("08", Outcome::PayerNotFound),
    ("09", Outcome::Slow),
    ("10", Outcome::NotActive),
    ("11", Outcome::Cancelled),
];

impl Outcome {
    /// The outcome for a party id (only its last two digits count).
    pub fn for_party(party: &str) -> Outcome {
        crate::auth::by_suffix(&TABLE, party, Outcome::Success)
    }

    /// The failure `reason`, or `None` for a success.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Outcome::Success | Outcome::DuplicateCallbacks | Outcome::Slow => None,
            Outcome::Rejected => Some("APPROVAL_REJECTED"),
            Outcome::NotEnoughFunds => Some("NOT_ENOUGH_FUNDS"),
            Outcome::LimitReached => Some("PAYER_LIMIT_REACHED"),
            Outcome::NobodyAnswers => Some("COULD_NOT_PERFORM_TRANSACTION"),
            Outcome::Expired => Some("EXPIRED"),
            Outcome::InternalError => Some("INTERNAL_PROCESSING_ERROR"),
            Outcome::PayerNotFound => Some("PAYER_NOT_FOUND"),
            Outcome::NotActive => Some("SENDER_ACCOUNT_NOT_ACTIVE"),
            Outcome::Cancelled => Some("TRANSACTION_CANCELED"),
        }
    }

    /// How many times the callback is delivered.
    pub fn callback_copies(self) -> u32 {
        if self == Outcome::DuplicateCallbacks { 3 } else { 1 }
    }

    /// When the payment ends after the request: the callback delay, ten times it for
    /// [`Outcome::Slow`], the approval window for [`Outcome::NobodyAnswers`].
    pub fn completes_after(self, callback_delay: Duration, approval_window: Duration) -> Duration {
        match self {
            Outcome::NobodyAnswers => approval_window,
            Outcome::Slow => callback_delay * 10,
            _ => callback_delay,
        }
    }

    /// A short description for logs and `--help`.
    pub fn describe(self) -> &'static str {
        match self {
            Outcome::NobodyAnswers => "PENDING until the approval window ends, then COULD_NOT_PERFORM_TRANSACTION",
            Outcome::DuplicateCallbacks => "SUCCESSFUL, callback delivered 3 times",
            Outcome::Slow => "SUCCESSFUL after 10 × the callback delay",
            other => other.reason().unwrap_or("SUCCESSFUL"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suffix_picks_the_row() {
        assert_eq!(Outcome::for_party("256772000100"), Outcome::Success);
        assert_eq!(Outcome::for_party("256772000101"), Outcome::Rejected);
        assert_eq!(Outcome::for_party("256772000104"), Outcome::NobodyAnswers);
        assert_eq!(Outcome::for_party("256772000111"), Outcome::Cancelled);
        assert_eq!(Outcome::for_party("256772000199"), Outcome::Success);
        assert_eq!(Outcome::for_party("7"), Outcome::Success);
        assert_eq!(Outcome::for_party(""), Outcome::Success);
        for (suffix, outcome) in TABLE {
            assert_eq!(Outcome::for_party(&format!("2567720001{suffix}")), outcome);
            assert!(!outcome.describe().is_empty());
        }
    }
}
