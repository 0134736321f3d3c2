//! The dialects, one small module each, registered in one line each below.

mod africastalking;
mod hubtel;
mod nalo;

pub use africastalking::{AfricasTalking, EndEvent};
pub use hubtel::Hubtel;
pub use nalo::Nalo;
use serde::Deserialize;

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
}
