//! Payment rails: the providers a `payment` step can collect money through, each a small module
//! behind one trait ([`Rail`]), and what they share.
//!
//! A rail knows its provider's protocol (authentication and its token cache, the collection
//! request, the status query, the callback's shape) and its code table (what each provider code
//! means and its failure class, [`CodeInfo`]). What every payment does the same way whatever the
//! rail lives in the step (`steps/payment/`): money safety, the payer from the MSISDN pool, one
//! request in flight per MSISDN across rails, how the result is awaited, and the classification
//! against the journey's own success and expected codes.
//!
//! - [`money`]: currencies with their caps, countries with their MSISDN formats;
//! - [`runtime`]: state shared by every run of a prober (tokens, MSISDN locks, callback listeners);
//! - [`callback`]: the HTTP listener every rail's callbacks arrive at;
//! - one folder per rail, registered once in `for_each_rail!` (this file).
//!
//! Adding a rail: a folder here implementing [`Rail`], one line in `for_each_rail!`, its protocol
//! in `docs/protocols/`, its emulation in the sandbox (CONTRIBUTING.md, "Adding a payment rail").

pub mod callback;
pub mod money;
pub mod runtime;

use std::{future::Future, time::Duration};

use serde_json::Value;

pub use self::{
    money::{Country, Currency},
    runtime::{MsisdnGuard, Runtime},
};
use crate::{
    journey::ResultSource,
    outcome::{Failure, Outcome},
    steps::{Ctx, FieldError, Recorder},
};

/// The registration point: `"yaml-key" => Variant(module::Model)`, one line per rail. The key is
/// the rail's name under `rail:` in a `payment` step, its `rail` label in reports, and the first
/// path segment of its callbacks on the player's listener.
macro_rules! for_each_rail {
    ($then:ident) => {
        $then! {
            "mpesa-ke" => MpesaKe(mpesa_ke::Daraja),
            "momo" => Momo(momo::Momo),
            "airtel" => Airtel(airtel::Airtel),
            "mpesa-tz" => MpesaTz(mpesa_tz::Vodacom),
        }
    };
}

pub mod airtel;
pub mod momo;
pub mod mpesa_ke;
pub mod mpesa_tz;

/// What a payment asks a rail for.
#[derive(Debug, Clone)]
pub struct Collect<'a> {
    /// Whole units of `currency`, already checked against the caps.
    pub amount: u64,
    pub currency: Currency,
    /// The payer, E.164 digits without `+` (`2547…`, `2567…`, `2557…`); the rail converts it to
    /// its own format.
    pub msisdn: &'a str,
    /// A fresh UUID v4 per request: the idempotency key where the rail has one (MoMo's
    /// `X-Reference-Id`, Airtel's `transaction.id`, Vodacom's `input_ThirdPartyConversationID`).
    pub idempotency_key: &'a str,
    /// The journey's reference, shown to the payer and kept for reconciliation (Daraja's
    /// `AccountReference`, MoMo's `externalId`, …).
    pub reference: &'a str,
    /// A short text for the payer.
    pub description: &'a str,
    /// Where the provider should send the result (callback and relay modes); `None` when polling
    /// or when the rail answers synchronously.
    pub callback_url: Option<&'a str>,
}

/// A rail's answer to a collection request.
#[derive(Debug, Clone)]
pub enum Requested {
    /// Accepted: the payer is being asked; the result comes later, for `id`.
    Pending { id: String },
    /// The answer is the result (a synchronous rail, such as Vodacom's C2B single stage).
    Done(RailResult),
}

/// A status query's answer.
#[derive(Debug, Clone)]
pub enum Status {
    /// Not final yet; the provider's code (`PENDING`, `TIP`, the STK Query's "being processed").
    Pending(String),
    Final(RailResult),
}

/// What a rail said about a payment at its end.
#[derive(Debug, Clone, PartialEq)]
pub struct RailResult {
    /// The payment it is about, as the rail names it (compared with the requested one).
    pub id: String,
    /// The provider's result code as text: `0`, `1037`, `SUCCESSFUL`, `APPROVAL_REJECTED`, `TS`,
    /// `INS-0`.
    pub code: String,
    /// The provider's own words (`ResultDesc`, `message`, `output_ResponseDesc`).
    pub text: String,
    /// The document it came in, for `extract:`.
    pub raw: Value,
}

/// What a provider code means, and its failure class when the journey did not declare it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeInfo {
    pub meaning: &'static str,
    /// `Ok` for the rail's success code; otherwise the class a failure with this code gets.
    pub class: Outcome,
    /// Whether the code is in the rail's documented table (else it is reported as `unknown`).
    pub known: bool,
}

impl CodeInfo {
    pub const fn known(meaning: &'static str, class: Outcome) -> CodeInfo {
        CodeInfo { meaning, class, known: true }
    }

    /// A code the rail's table does not have: the provider's fault until someone reads it.
    pub const UNKNOWN: CodeInfo =
        CodeInfo { meaning: "a code this rail's table does not list", class: Outcome::GatewayError, known: false };
}

/// One payment rail: its model (`Self`, the settings under `rail: {<name>: …}`), checked at load,
/// and its protocol at run time.
pub trait Rail: Sized + Send + Sync {
    /// The key under `rail:`, the `rail` label, the callback path segment.
    const NAME: &'static str;
    /// How results may arrive, in order of preference: `Callback`, `Relay`, `Poll`, or
    /// `Response` for a rail whose request answers with the result.
    const MODES: &'static [ResultSource];
    /// What `success:` means when a journey gives none.
    const SUCCESS: &'static [&'static str];

    /// The country whose wallets it collects from (the payer must be one of its numbers).
    fn country(&self) -> Country;
    /// The currencies it may charge in.
    fn currencies(&self) -> &'static [Currency];

    /// Checks what serde cannot. An error names the field below the rail (`api_user`).
    fn validate(&self) -> Result<(), FieldError>;
    /// Every field that may hold `{{ var }}` templates, with its path below the rail.
    fn templates(&self) -> Vec<(String, String)>;
    /// Credential fields written literally instead of as `{{ secrets.… }}`: (path, why).
    fn plain_credentials(&self) -> Vec<(String, &'static str)>;
    /// The provider's base URL as written (a template), for politeness checks.
    fn base_url(&self) -> &str;
    /// A step's timeout when the journey gives none: longer than the provider's window for the
    /// payer to answer.
    fn default_timeout(&self) -> Duration;

    /// What `code` means on this rail.
    fn describe(code: &str) -> CodeInfo;
    /// Reads a callback that arrived at `/{NAME}/{rest}` on the listener (`rest` is what the rail
    /// put after its name in the callback URL, possibly empty).
    fn read_callback(rest: &str, body: &[u8]) -> Result<RailResult, String>;

    /// Authenticates (tokens are cached in `ctx.payments`) and asks for the money. Every request
    /// goes through `steps::exchange`; credentials are masked before anything is recorded.
    fn request(
        &self,
        ctx: &Ctx<'_>,
        rec: &mut Recorder,
        c: &Collect<'_>,
    ) -> impl Future<Output = Result<Requested, Failure>> + Send;

    /// One status query for the payment `id` (polling mode).
    fn status(
        &self,
        ctx: &Ctx<'_>,
        rec: &mut Recorder,
        id: &str,
    ) -> impl Future<Output = Result<Status, Failure>> + Send;
}

/// Declares the [`RailConf`] enum (a `payment` step's `rail:`) and its dispatch. Invoked once.
macro_rules! declare_rails {
    ($($key:literal => $Variant:ident($module:ident :: $Model:ident)),+ $(,)?) => {
        /// A payment step's rail and its settings: exactly one key under `rail:`.
        #[derive(Debug, Clone)]
        pub enum RailConf {
            $($Variant(Box<$module::$Model>)),+
        }

        impl<'de> serde::Deserialize<'de> for RailConf {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RailConf, D::Error> {
                #[derive(serde::Deserialize)]
                #[serde(deny_unknown_fields)]
                #[allow(non_snake_case)]
                struct Keys {
                    $(#[serde(rename = $key)] $Variant: Option<Box<$module::$Model>>,)+
                }
                let k = Keys::deserialize(d)?;
                let mut given = Vec::new();
                $(given.extend(k.$Variant.map(RailConf::$Variant));)+
                if given.len() != 1 {
                    return Err(serde::de::Error::custom(format!(
                        "give exactly one rail: {}",
                        RailConf::NAMES.join(", ")
                    )));
                }
                Ok(given.pop().expect("one rail"))
            }
        }

        impl RailConf {
            /// Every rail's name, in registration order.
            pub const NAMES: &[&str] = &[$($key),+];

            pub fn name(&self) -> &'static str {
                match self { $(RailConf::$Variant(_) => <$module::$Model as Rail>::NAME),+ }
            }
            pub fn modes(&self) -> &'static [ResultSource] {
                match self { $(RailConf::$Variant(_) => <$module::$Model as Rail>::MODES),+ }
            }
            pub fn success(&self) -> &'static [&'static str] {
                match self { $(RailConf::$Variant(_) => <$module::$Model as Rail>::SUCCESS),+ }
            }
            pub fn country(&self) -> Country {
                match self { $(RailConf::$Variant(r) => r.country()),+ }
            }
            pub fn currencies(&self) -> &'static [Currency] {
                match self { $(RailConf::$Variant(r) => r.currencies()),+ }
            }
            pub fn validate(&self) -> Result<(), FieldError> {
                match self { $(RailConf::$Variant(r) => r.validate()),+ }
            }
            pub fn templates(&self) -> Vec<(String, String)> {
                match self { $(RailConf::$Variant(r) => r.templates()),+ }
            }
            pub fn plain_credentials(&self) -> Vec<(String, &'static str)> {
                match self { $(RailConf::$Variant(r) => r.plain_credentials()),+ }
            }
            pub fn base_url(&self) -> &str {
                match self { $(RailConf::$Variant(r) => r.base_url()),+ }
            }
            pub fn default_timeout(&self) -> Duration {
                match self { $(RailConf::$Variant(r) => r.default_timeout()),+ }
            }
            pub fn describe(&self, code: &str) -> CodeInfo {
                match self { $(RailConf::$Variant(_) => <$module::$Model as Rail>::describe(code)),+ }
            }
            pub async fn request(&self, ctx: &Ctx<'_>, rec: &mut Recorder, c: &Collect<'_>) -> Result<Requested, Failure> {
                match self { $(RailConf::$Variant(r) => r.request(ctx, rec, c).await),+ }
            }
            pub async fn status(&self, ctx: &Ctx<'_>, rec: &mut Recorder, id: &str) -> Result<Status, Failure> {
                match self { $(RailConf::$Variant(r) => r.status(ctx, rec, id).await),+ }
            }
        }

        /// Reads a callback for the rail `name` (the first segment of its path on the listener);
        /// `None` when no rail has that name.
        pub fn read_callback(name: &str, rest: &str, body: &[u8]) -> Option<Result<RailResult, String>> {
            match name {
                $($key => Some(<$module::$Model as Rail>::read_callback(rest, body)),)+
                _ => None,
            }
        }

        #[cfg(test)]
        mod registration_tests {
            use super::*;

            /// The key in the list is the rail's `NAME`, and a label the reports accept.
            #[test]
            fn every_rail_is_registered_under_its_name() {
                let names = [$(<$module::$Model as Rail>::NAME),+];
                assert_eq!(names.as_slice(), RailConf::NAMES);
                for n in names {
                    report::check_label(n).unwrap();
                }
            }
        }
    };
}
for_each_rail!(declare_rails);

/// Reads an OAuth-style token answer, `{"access_token": "…", "expires_in": 3599 | "3599", …}`,
/// the shape Daraja, MoMo and Airtel share (each sends `expires_in` as a number or a string).
pub fn parse_token(body: &[u8]) -> Result<(String, Duration), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not a token response: {e}"))?;
    let token = v.get("access_token").and_then(Value::as_str).ok_or("the token response has no access_token")?;
    if token.trim().is_empty() {
        return Err("the access token is empty".into());
    }
    let quoted = |s: &str| s.chars().take(20).collect::<String>();
    let secs = match v.get("expires_in") {
        Some(Value::String(s)) => {
            s.trim().parse::<u64>().map_err(|_| format!("expires_in {:?} is not a number", quoted(s)))?
        }
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| format!("expires_in {n} is not a whole number"))?,
        Some(other) => {
            return Err(format!("expires_in is {}, expected a number or a string", quoted(&other.to_string())));
        }
        None => return Err("the token response has no expires_in".into()),
    };
    Ok((token.to_owned(), Duration::from_secs(secs)))
}

/// A token (or session id) a provider just issued: masked in this run from now on, cached in
/// `ctx.payments` under `key` for `expires_in`, and returned.
pub fn keep_token(
    ctx: &Ctx<'_>,
    key: &runtime::TokenKey,
    token: String,
    expires_in: Duration,
) -> crate::journey::Secret {
    ctx.masker.lock().add_secret(&token);
    let token = crate::journey::Secret::new(token);
    ctx.payments.store_token(key, token.clone(), expires_in);
    token
}

/// The label-safe `reason` a result is reported under: its code when the rail's table or the
/// journey knows it, else `unknown` (a hostile gateway must not grow the label set).
pub fn reason_label(code: &str, info: &CodeInfo, declared: bool) -> String {
    if (info.known || declared) && report::check_label(code).is_ok() && code.len() <= 40 {
        code.to_owned()
    } else {
        "unknown".to_owned()
    }
}
