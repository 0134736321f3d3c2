//! What every step kind implements, and the [`Kind`](crate::steps::Kind) enum that the
//! registration list in `steps/mod.rs` declares: the loader and the player dispatch on it, and
//! nowhere else names the kinds one by one.

use std::{collections::BTreeMap, future::Future, time::Duration};

use super::{Ctx, Done, Recorder};
use crate::{outcome::Failure, polite::Use};

/// A problem with one field of a kind's model: the path below the kind (`method`, `dialogue[2]`,
/// or empty for the whole kind) and what is wrong, in words.
pub type FieldError = (String, String);

/// What a kind's validation may know about the journey around it.
#[derive(Debug, Clone, Copy)]
pub struct LoadCx<'a> {
    /// The journey's `msisdn_pool` (checked before the steps).
    pub msisdn_pool: &'a [String],
    /// The journey's `variables:`, for checks that look at what a template sends.
    pub variables: &'a BTreeMap<String, String>,
}

/// One step kind: its YAML model (`Self`), checked at load, played at run time.
pub trait StepKind: Sized + Send + Sync {
    /// The key under a step in a journey file (`http:`), the trace's `kind`, the kind's folder.
    const NAME: &'static str;

    /// Checks what serde cannot: combinations, ranges, the journey around it. An error names the
    /// field below the kind.
    fn validate(&self, cx: &LoadCx<'_>) -> Result<(), FieldError>;

    /// The step's timeout when the journey gives none (called after [`StepKind::validate`]).
    fn default_timeout(&self) -> Duration;

    /// Every string that may hold `{{ var }}` templates, with its path below the kind: the loader
    /// checks that each variable is defined by then.
    fn templates(&self) -> Vec<(String, String)>;

    /// Fields that hold a credential in plain text (path below the kind, why), and journey
    /// variables the step sends as one (`variables.NAME`, why): warned about at load.
    fn plain_credentials(&self, _variables: &BTreeMap<String, String>) -> Vec<(String, &'static str)> {
        Vec::new()
    }

    /// What one run of the step sends at least (requests per host, sessions or pushes per
    /// number), for the politeness checks at load and plan time.
    fn uses(&self) -> Vec<Use> {
        Vec::new()
    }

    /// Runs the step. What it measured goes to `rec` as it goes, so a deadline keeps it.
    fn run(&self, ctx: &mut Ctx<'_>, rec: &mut Recorder) -> impl Future<Output = Result<Done, Failure>> + Send;
}

/// Declares the kinds' modules, their re-exported models and the `Kind` enum with its dispatch.
/// Invoked once, by `for_each_kind!` in `steps/mod.rs`.
macro_rules! declare_kinds {
    ($($key:ident => $Variant:ident($Model:ident)),+ $(,)?) => {
        $(pub mod $key;)+
        pub use self::{$($key::$Model),+};

        /// A step's kind: exactly one per step. Each variant holds its kind's model.
        #[derive(Debug, Clone)]
        pub enum Kind {
            $($Variant(Box<$Model>)),+
        }

        impl Kind {
            /// Every kind's key, in registration order.
            pub const NAMES: &[&str] = &[$(stringify!($key)),+];

            /// The kind's key: `http`, `ussd`, …
            pub fn name(&self) -> &'static str {
                match self {
                    $(Kind::$Variant(_) => <$Model as StepKind>::NAME),+
                }
            }

            pub fn validate(&self, cx: &LoadCx<'_>) -> Result<(), FieldError> {
                match self {
                    $(Kind::$Variant(k) => k.validate(cx)),+
                }
            }

            pub fn default_timeout(&self) -> ::std::time::Duration {
                match self {
                    $(Kind::$Variant(k) => k.default_timeout()),+
                }
            }

            pub fn templates(&self) -> Vec<(String, String)> {
                match self {
                    $(Kind::$Variant(k) => k.templates()),+
                }
            }

            pub fn plain_credentials(
                &self,
                variables: &::std::collections::BTreeMap<String, String>,
            ) -> Vec<(String, &'static str)> {
                match self {
                    $(Kind::$Variant(k) => k.plain_credentials(variables)),+
                }
            }

            pub fn uses(&self) -> Vec<crate::polite::Use> {
                match self {
                    $(Kind::$Variant(k) => k.uses()),+
                }
            }

            pub async fn run(&self, ctx: &mut Ctx<'_>, rec: &mut Recorder) -> Result<Done, Failure> {
                match self {
                    $(Kind::$Variant(k) => k.run(ctx, rec).await),+
                }
            }
        }

        #[cfg(test)]
        mod registration_tests {
            use super::*;

            /// The key in the list is the kind's `NAME` (its YAML key and its folder).
            #[test]
            fn every_kind_is_registered_under_its_name() {
                let names = [$(<$Model as StepKind>::NAME),+];
                assert_eq!(names.as_slice(), Kind::NAMES);
            }
        }
    };
}
pub(crate) use declare_kinds;
