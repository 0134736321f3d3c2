//! What a sandbox runs with. Every field has the default the binary uses, so a test writes only
//! what it changes: `Config { listen: "127.0.0.1:0".parse()?, ..Default::default() }`.

use std::{fmt, net::SocketAddr, time::Duration};

use crate::{airtel, faults::FaultSet};

/// The public Daraja sandbox passkey for shortcode 174379 (published in Safaricom's docs).
pub const SANDBOX_PASSKEY: &str = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919";

/// The sandbox's configuration. `Debug` hides the PIN, the consumer secret and the passkey.
#[derive(Clone)]
pub struct Config {
    /// Where the one HTTP/1.1 server listens; port 0 picks a free port (see
    /// [`SandboxHandle::base_url`](crate::SandboxHandle::base_url)).
    pub listen: SocketAddr,
    /// Seed of every random choice (fault decisions, jitter, identifiers), so a run replays.
    pub seed: u64,
    /// The USSD app's PIN for send money and Lipa na M-Pesa.
    pub ussd_pin: String,
    /// Daraja consumer key accepted by OAuth.
    pub consumer_key: String,
    /// Daraja consumer secret accepted by OAuth.
    pub consumer_secret: String,
    /// The only BusinessShortCode the Daraja emulation knows.
    pub shortcode: String,
    /// The Lipa na M-Pesa passkey: STK Password = base64(shortcode + passkey + timestamp).
    pub passkey: String,
    /// Lifetime of an OAuth access token (`expires_in` says it in whole seconds).
    pub token_ttl: Duration,
    /// Time from an accepted STK push to its callback (outcome `09` takes ten times this).
    pub callback_delay: Duration,
    /// How long an unanswered push (outcome `04`) stays pending before it ends with 1037; also how
    /// long an unanswered Airtel collection (its outcome `04`) stays `TIP` before it fails.
    pub query_expiry: Duration,
    /// MTN MoMo's API user, key, subscription key and callback host.
    pub momo: crate::momo::Settings,
    /// The Airtel Money emulation's credentials and callback URL (its timings are the ones above).
    pub airtel: airtel::Settings,
    /// The Vodacom M-Pesa (OpenAPI) emulation's API key, service provider code and private key.
    pub mpesa_tz: crate::mpesa_tz::Settings,
    /// Faults in force from the start (the `--fault` flags).
    pub faults: FaultSet,
    /// Caps on stored state.
    pub limits: Limits,
    /// What the listener tolerates from slow, idle and hostile clients.
    pub http: HttpLimits,
}

/// Bounds on the listener's clients: the same hyper settings the fleet's own listeners use,
/// without their per-client cap (probers and load runs all come from one address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// A connection's first request head must arrive within this, and every later HTTP/1.1 head
    /// (hyper's timer starts when the previous response is written, so this also closes idle
    /// HTTP/1.1 connections).
    pub header_read_timeout: Duration,
    /// An HTTP/2 connection with no request in flight for this long is closed (GOAWAY).
    pub idle_timeout: Duration,
    /// A whole request body (at most 64 KiB) must arrive within this; otherwise `408`.
    pub body_timeout: Duration,
    /// Connections open at once; more are closed as soon as they are accepted (`prober load`
    /// opens one per worker, 1000 by default).
    pub max_connections: usize,
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`; larger heads get `431`.
    pub h2_max_header_list_size: u32,
    /// An HTTP/2 PING after this long without a frame; no answer within
    /// `h2_keep_alive_timeout` closes the connection.
    pub h2_keep_alive_interval: Duration,
    pub h2_keep_alive_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            body_timeout: Duration::from_secs(30),
            max_connections: 8192,
            h2_max_concurrent_streams: 100,
            h2_max_header_list_size: 16 * 1024,
            h2_keep_alive_interval: Duration::from_secs(30),
            h2_keep_alive_timeout: Duration::from_secs(20),
        }
    }
}

/// Caps that keep memory bounded whatever the load.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open Hubtel/Nalo sessions kept (the oldest go first).
    pub max_sessions: usize,
    /// A USSD session with no hop for this long is forgotten (the gateways' 180 s session limit).
    pub session_ttl: Duration,
    /// Africa's Talking end-of-session events kept for `GET /ussd/at/events`.
    pub max_events: usize,
    /// Access tokens kept (expired ones go first).
    pub max_tokens: usize,
    /// STK transactions kept for queries and the subscriber lock.
    pub max_transactions: usize,
    /// How long a finished STK transaction stays queryable.
    pub transaction_ttl: Duration,
    /// Shop carts and orders kept, each.
    pub max_shop_records: usize,
    /// How long carts and orders are kept.
    pub shop_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_sessions: 10_000,
            session_ttl: Duration::from_secs(180),
            max_events: 200,
            max_tokens: 10_000,
            max_transactions: 20_000,
            transaction_ttl: Duration::from_secs(3600),
            max_shop_records: 10_000,
            shop_ttl: Duration::from_secs(6 * 3600),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            seed: 42,
            ussd_pin: "1234".to_owned(),
            consumer_key: "savanna-sandbox-key".to_owned(),
            consumer_secret: "savanna-sandbox-secret".to_owned(),
            shortcode: "174379".to_owned(),
            passkey: SANDBOX_PASSKEY.to_owned(),
            token_ttl: Duration::from_secs(3599),
            callback_delay: Duration::from_secs(3),
            query_expiry: Duration::from_secs(60),
            momo: crate::momo::Settings::default(),
            airtel: airtel::Settings::default(),
            mpesa_tz: crate::mpesa_tz::Settings::default(),
            faults: FaultSet::default(),
            limits: Limits::default(),
            http: HttpLimits::default(),
        }
    }
}

impl Config {
    /// Refuses values the services cannot work with.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |m: &str| Err(crate::Error::Config(m.to_owned()));
        if self.ussd_pin.is_empty() || !self.ussd_pin.chars().all(|c| c.is_ascii_digit()) {
            return bad("the USSD PIN must be digits (--ussd-pin)");
        }
        if self.consumer_key.is_empty() || self.consumer_secret.is_empty() {
            return bad("the Daraja consumer key and secret must not be empty");
        }
        if !(5..=7).contains(&self.shortcode.len()) || !self.shortcode.chars().all(|c| c.is_ascii_digit()) {
            return bad("the shortcode must be 5 to 7 digits (--shortcode)");
        }
        if self.passkey.is_empty() {
            return bad("the passkey must not be empty (--passkey)");
        }
        self.momo.validate().map_err(crate::Error::Config)?;
        self.airtel.validate().map_err(crate::Error::Config)?;
        self.mpesa_tz.validate().map_err(crate::Error::Config)?;
        if self.token_ttl.is_zero() {
            return bad("the token TTL must be positive (--token-ttl-secs)");
        }
        let h = &self.http;
        if [h.header_read_timeout, h.idle_timeout, h.body_timeout, h.h2_keep_alive_interval, h.h2_keep_alive_timeout]
            .iter()
            .any(Duration::is_zero)
        {
            return bad("the listener's timeouts must be above zero");
        }
        if h.max_connections == 0 || h.h2_max_concurrent_streams == 0 || h.h2_max_header_list_size < 1024 {
            return bad("max connections and HTTP/2 streams must be at least 1, the header list at least 1 KiB");
        }
        for (service, fault) in self.faults.iter() {
            fault.validate(service).map_err(|source| crate::Error::Fault { service, source })?;
        }
        Ok(())
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("seed", &self.seed)
            .field("ussd_pin", &"<redacted>")
            .field("consumer_key", &self.consumer_key)
            .field("consumer_secret", &"<redacted>")
            .field("shortcode", &self.shortcode)
            .field("passkey", &"<redacted>")
            .field("token_ttl", &self.token_ttl)
            .field("callback_delay", &self.callback_delay)
            .field("query_expiry", &self.query_expiry)
            .field("momo", &self.momo)
            .field("airtel", &self.airtel)
            .field("mpesa_tz", &self.mpesa_tz)
            .field("faults", &self.faults)
            .field("limits", &self.limits)
            .field("http", &self.http)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let airtel = airtel::Settings { client_secret: "a1rt3l".into(), ..Default::default() };
        let momo = crate::momo::Settings {
            api_key: "m0m0k3y".into(),
            subscription_key: "m0m0sub".into(),
            ..Default::default()
        };
        let c =
            Config { ussd_pin: "9876".into(), consumer_secret: "s3cr3t".into(), airtel, momo, ..Default::default() };
        let shown = format!("{c:?}");
        assert!(!shown.contains("m0m0k3y") && !shown.contains("m0m0sub"), "{shown}");
        assert!(!shown.contains("9876"));
        assert!(!shown.contains("s3cr3t"));
        assert!(!shown.contains("a1rt3l"));
        assert!(!shown.contains(SANDBOX_PASSKEY));
        assert!(shown.contains("savanna-sandbox-key"));
    }

    #[test]
    fn defaults_are_valid_and_bad_values_are_refused() {
        Config::default().validate().unwrap();
        let err = Config { ussd_pin: "12a4".into(), ..Default::default() }.validate().unwrap_err();
        assert!(err.to_string().contains("PIN"), "{err}");
        assert!(Config { shortcode: "12".into(), ..Default::default() }.validate().is_err());
        let http = HttpLimits { body_timeout: Duration::ZERO, ..Default::default() };
        assert!(Config { http, ..Default::default() }.validate().unwrap_err().to_string().contains("timeouts"));
    }
}
