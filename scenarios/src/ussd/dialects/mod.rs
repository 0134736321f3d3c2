//! The dialects, one small module each, registered in one line each below.

mod africastalking;
mod hubtel;
mod nalo;
mod truroute;

pub use africastalking::{AfricasTalking, EndEvent};
pub use hubtel::Hubtel;
pub use nalo::Nalo;
use serde::Deserialize;
pub use truroute::TruRoute;

use super::Dialect;

/// Declares [`DialectName`] (what a `ussd:` step's `dialect:` may say) and [`dialect`] from one
/// list: `Variant => value`, the YAML name being the variant in lower case.
macro_rules! dialects {
    ($($(#[$attr:meta])* $Variant:ident => $value:expr),+ $(,)?) => {
        /// Gateway dialects the `ussd` step speaks.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum DialectName {
            $($(#[$attr])* $Variant),+
        }

        impl DialectName {
            /// Every dialect, in registration order.
            pub const ALL: &[DialectName] = &[$(DialectName::$Variant),+];
        }

        /// The dialect called `name`.
        pub fn dialect(name: DialectName) -> &'static dyn Dialect {
            match name {
                $(DialectName::$Variant => &$value),+
            }
        }
    };
}

// The registration list: adding a dialect is its module above and one line here.
dialects! {
    #[default]
    Africastalking => AfricasTalking,
    Hubtel => Hubtel,
    Nalo => Nalo,
    Truroute => TruRoute,
}

/// Ghana's mobile networks by MCC+MNC, as Hubtel's `Operator` (its documented values: `mtn`,
/// `vodafone`, `tigo`, `airtel`) and Nalo's `NETWORK` name them (docs/protocols/ussd.md §3–4).
/// Vodafone Ghana is Telecel since 2024 and Tigo and Airtel merged as AirtelTigo; the gateways'
/// documents keep the old names.
const GHANA: &[(&str, &str, &str)] = &[
    // (MCC+MNC, Hubtel Operator, Nalo NETWORK)
    ("62001", "mtn", "MTN"),
    ("62002", "vodafone", "VODAFONE"),
    ("62003", "tigo", "AIRTELTIGO"),
    ("62006", "airtel", "AIRTELTIGO"),
];

/// The Ghana network row for `mcc_mnc`.
fn ghana(mcc_mnc: &str) -> Option<&'static (&'static str, &'static str, &'static str)> {
    GHANA.iter().find(|(code, ..)| *code == mcc_mnc)
}

/// Load-time check shared by the two Ghanaian gateways.
fn check_ghana(gateway: &str, mcc_mnc: &str) -> Result<(), String> {
    match ghana(mcc_mnc) {
        Some(_) => Ok(()),
        None => Err(format!(
            "{gateway} serves Ghana's networks; `{mcc_mnc}` is not one of them: use {}",
            GHANA.iter().map(|(c, h, _)| format!("{c} ({h})")).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// `*384*7#` → `384*7`: a code without its leading `*`s and trailing `#`.
fn bare_code(dial: &str) -> &str {
    dial.trim_start_matches('*').trim_end_matches('#')
}
