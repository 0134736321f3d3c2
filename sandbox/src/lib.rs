//! # sandbox — reference targets that answer like the real services
//!
//! Savanna Pulse's journeys need something to probe in tests and in the demo. This crate serves,
//! from one listener (HTTP/1.1 and HTTP/2, with bounds on slow, idle and hostile clients:
//! [`HttpLimits`]):
//!
//! - [`ussd`]: one USSD menu engine ("Savanna Pay", service code `*384*7#`) behind three gateway
//!   dialects — Africa's Talking (`/ussd/at`, form POST, cumulative `text`, `CON`/`END`), Hubtel
//!   (`/ussd/hubtel`, JSON) and Nalo (`/ussd/nalo`, JSON) — plus AT's end-of-session events.
//! - [`daraja`]: Safaricom Daraja at its standard paths (OAuth, STK push, STK query) with real
//!   asynchronous callbacks, field validation, the error envelopes, and outcomes chosen by the
//!   phone number's last two digits ([`daraja::outcome`]).
//! - [`momo`]: MTN MoMo Collection (sandbox provisioning, token, request to pay with its status
//!   and `PUT` callback, balance, account holder), with MTN's error shapes and outcomes chosen by
//!   the payer's last two digits ([`momo::outcome`]).
//! - [`airtel`]: Airtel Money Collections (v1) at Airtel's paths (OAuth with a JSON body, the USSD
//!   push, the transaction enquiry) with callbacks to a configured URL, the strict field checks
//!   (the MSISDN without its country code), and outcomes by the MSISDN's last two digits
//!   ([`airtel::outcome`]).
//! - [`mpesa_tz`]: Vodacom M-Pesa Tanzania through the M-Pesa OpenAPI (session and synchronous
//!   C2B single stage, RSA-encrypted bearers under a bundled test key pair), outcomes by the
//!   customer's last two digits ([`mpesa_tz::outcome`]).
//! - [`shop`]: a small marketplace API whose checkout pays through the sandbox's own Daraja over
//!   real HTTP, as a merchant would.
//! - [`modem`]: a GSM modem on a pseudo-terminal or a TCP port that speaks the AT command set
//!   (TS 27.007/27.005): USSD into the same menu, radio health, SIM PIN, and radio faults.
//! - [`faults`]: runtime fault injection per service (latency, jitter, error rate, outage, callback
//!   delay), over `/admin/faults` or programmatically through [`SandboxHandle::faults`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! let sandbox = sandbox::Sandbox::start(sandbox::Config {
//!     listen: "127.0.0.1:0".parse()?,
//!     callback_delay: Duration::from_millis(50),
//!     ..Default::default()
//! })
//! .await?;
//! println!("Daraja base URL: {}", sandbox.base_url());
//! sandbox.faults().set(sandbox::Service::Daraja, sandbox::Fault { error_rate: 0.5, ..Default::default() })?;
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

pub mod airtel;
pub mod config;
pub mod daraja;
pub mod faults;
pub mod modem;
pub mod momo;
pub mod mpesa_tz;
pub mod shop;
pub mod ussd;

mod auth;
mod client;
mod error;
mod listen;
mod mask;
mod rng;
mod server;
mod store;

pub use config::{Config, HttpLimits, Limits};
pub use error::Error;
pub use faults::{Fault, FaultError, FaultSet, Faults, Service};
pub use mask::{mask_phone, mask_phones};
pub use server::{Sandbox, SandboxHandle};
