//! What a listener tolerates from its clients, with production defaults.

use std::time::Duration;

use crate::Error;

/// Every bound a listener enforces. `Limits::default()` is meant for production; tests shrink the
/// deadlines (`Limits { header_read_timeout: Duration::from_millis(300), ..Default::default() }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// A new connection must deliver its first complete request head within this time (after the
    /// TLS handshake): this covers the protocol detection, the HTTP/2 preface and a slow first
    /// request. On HTTP/1.1 it also bounds every later request head; hyper starts that timer as
    /// soon as the previous response is written, so an idle HTTP/1.1 keep-alive connection is
    /// closed after this long. Default 10 s.
    pub header_read_timeout: Duration,
    /// An HTTP/2 connection with no request in flight for this long gets a GOAWAY and is closed
    /// (HTTP/1.1 connections are bounded tighter by `header_read_timeout`). PINGs and other
    /// control frames do not count as activity. Default 90 s: a prober reports every 15 s over
    /// one kept-alive connection.
    pub idle_timeout: Duration,
    /// A TLS handshake that takes longer is dropped. Default 10 s.
    pub tls_handshake_timeout: Duration,
    /// Once `body_rate_grace` has passed since a request's head arrived, its body must have
    /// arrived at this average rate at least (bytes per second), or the request is answered
    /// `408` and its connection (HTTP/1.1) or stream (HTTP/2) closed. Default 1 KiB/s.
    pub body_min_rate: u64,
    /// See `body_min_rate`. Default 10 s.
    pub body_rate_grace: Duration,
    /// Connections open at once on the listener; more are closed as soon as they are accepted.
    /// Default 4096.
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 client: its /64). Default 64.
    /// Behind a reverse proxy every connection comes from the proxy: raise it to
    /// `max_connections`.
    pub max_connections_per_peer: usize,
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`: requests in flight on one connection; the
    /// server refuses streams above it (`RST_STREAM REFUSED_STREAM`). Default 100.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE` in bytes (decoded names and values plus 32 per
    /// field); a larger request head is answered `431`. Default 16 KiB.
    pub h2_max_header_list_size: u32,
    /// The server sends an HTTP/2 PING after this long without a frame from the client, and
    /// closes the connection if the PING is not answered within `h2_keep_alive_timeout`:
    /// connections to vanished peers do not linger. `None`: no PINGs. Default 30 s.
    pub h2_keep_alive_interval: Option<Duration>,
    /// See `h2_keep_alive_interval`. Default 20 s.
    pub h2_keep_alive_timeout: Duration,
    /// Streams a client may open and reset before the server has accepted them ("rapid reset",
    /// CVE-2023-44487); above it the connection gets `GOAWAY ENHANCE_YOUR_CALM`. Default 20.
    pub h2_max_pending_accept_reset_streams: usize,
    /// Streams the server may reset because the client broke the protocol on them, over the
    /// connection's life (RUSTSEC-2024-0003); above it, `GOAWAY ENHANCE_YOUR_CALM`. Default 1024.
    pub h2_max_local_error_reset_streams: usize,
    /// After an HTTP/2 response sent before its request body was read whole (an early `413`),
    /// the rest of the body is read and discarded for at most this long, so that clients which
    /// fail a request whose stream closes while they upload (curl before 8) still get the
    /// answer; then the stream is reset (`RST_STREAM NO_ERROR`). nginx's `lingering_time` does
    /// the same for HTTP/1.1. Default 10 s.
    pub h2_linger_time: Duration,
    /// See `h2_linger_time`: at most this many bytes are discarded. Default 64 MiB.
    pub h2_linger_bytes: u64,
}

/// Production defaults, as documented on each field.
pub const DEFAULT: Limits = Limits {
    header_read_timeout: Duration::from_secs(10),
    idle_timeout: Duration::from_secs(90),
    tls_handshake_timeout: Duration::from_secs(10),
    body_min_rate: 1024,
    body_rate_grace: Duration::from_secs(10),
    max_connections: 4096,
    max_connections_per_peer: 64,
    h2_max_concurrent_streams: 100,
    h2_max_header_list_size: 16 * 1024,
    h2_keep_alive_interval: Some(Duration::from_secs(30)),
    h2_keep_alive_timeout: Duration::from_secs(20),
    h2_max_pending_accept_reset_streams: 20,
    h2_max_local_error_reset_streams: 1024,
    h2_linger_time: Duration::from_secs(10),
    h2_linger_bytes: 64 << 20,
};

impl Default for Limits {
    fn default() -> Limits {
        DEFAULT
    }
}

impl Limits {
    /// Refuses values that would disable a bound or make every request fail. The error names the
    /// field as the config files spell it.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field: &'static str, reason: &str| Err(Error::InvalidLimit { field, reason: reason.to_owned() });
        for (field, d) in [
            ("header_read_timeout", self.header_read_timeout),
            ("idle_timeout", self.idle_timeout),
            ("tls_handshake_timeout", self.tls_handshake_timeout),
            ("body_rate_grace", self.body_rate_grace),
            ("h2_keep_alive_timeout", self.h2_keep_alive_timeout),
            ("h2_linger_time", self.h2_linger_time),
        ] {
            if d.is_zero() {
                return bad(field, "must be above zero");
            }
        }
        if self.h2_keep_alive_interval.is_some_and(|d| d.is_zero()) {
            return bad("h2_keep_alive_interval", "must be above zero (leave it out to send no PINGs)");
        }
        if self.body_min_rate == 0 {
            return bad("body_min_rate", "must be at least 1 byte per second");
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1");
        }
        if self.max_connections_per_peer == 0 || self.max_connections_per_peer > self.max_connections {
            return bad("max_connections_per_peer", "must be between 1 and max_connections");
        }
        if self.h2_max_concurrent_streams == 0 {
            return bad("h2_max_concurrent_streams", "must be at least 1");
        }
        if self.h2_max_header_list_size < 1024 {
            return bad("h2_max_header_list_size", "must be at least 1 KiB (1024)");
        }
        if self.h2_max_pending_accept_reset_streams == 0 || self.h2_max_local_error_reset_streams == 0 {
            let field = if self.h2_max_pending_accept_reset_streams == 0 {
                "h2_max_pending_accept_reset_streams"
            } else {
                "h2_max_local_error_reset_streams"
            };
            return bad(field, "must be at least 1");
        }
        Ok(())
    }

    /// The bytes a request body must have delivered `elapsed` after its head arrived.
    pub fn body_bytes_due(&self, elapsed: Duration) -> u64 {
        let late = elapsed.saturating_sub(self.body_rate_grace);
        (late.as_secs_f64() * self.body_min_rate as f64) as u64
    }

    /// When, counted from its head, a body that delivered `received` bytes falls behind.
    pub fn body_deadline(&self, received: u64) -> Duration {
        self.body_rate_grace + Duration::from_secs_f64(received as f64 / self.body_min_rate as f64)
    }
}

/// A duration field of the `connections:` section, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurOrOff(pub Option<Duration>);

impl<'de> serde::Deserialize<'de> for DurOrOff {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DurOrOff, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Either {
            Dur(conf::Dur),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Dur(v) => Ok(DurOrOff(Some(v.get()))),
            Either::Text(t) if t.trim() == "off" => Ok(DurOrOff(None)),
            Either::Text(t) => conf::duration::parse(&t)
                .map(|v| DurOrOff(Some(v)))
                .map_err(|m| serde::de::Error::custom(format!("{m} (or `off`)"))),
        }
    }
}

/// The `connections:` section of a config file (the aggregator's and the edge's): every bound
/// optional, [`DEFAULT`] for what is left out. Durations and sizes in the `conf` grammar.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub header_read_timeout: Option<conf::Dur>,
    pub idle_timeout: Option<conf::Dur>,
    pub tls_handshake_timeout: Option<conf::Dur>,
    /// Bytes per second.
    pub body_min_rate: Option<conf::Size>,
    pub body_rate_grace: Option<conf::Dur>,
    pub max_connections: Option<usize>,
    pub max_connections_per_peer: Option<usize>,
    pub h2_max_concurrent_streams: Option<u32>,
    pub h2_max_header_list_size: Option<conf::Size>,
    /// A duration, or `off` for no PINGs.
    pub h2_keep_alive_interval: Option<DurOrOff>,
    pub h2_keep_alive_timeout: Option<conf::Dur>,
    pub h2_max_pending_accept_reset_streams: Option<usize>,
    pub h2_max_local_error_reset_streams: Option<usize>,
    pub h2_linger_time: Option<conf::Dur>,
    pub h2_linger_bytes: Option<conf::Size>,
}

impl LimitsFile {
    /// The limits over [`DEFAULT`], validated; the error names the field as written.
    pub fn resolve(self) -> Result<Limits, Error> {
        let d = DEFAULT;
        let dur = |v: Option<conf::Dur>, default: Duration| v.map_or(default, conf::Dur::get);
        let limits = Limits {
            header_read_timeout: dur(self.header_read_timeout, d.header_read_timeout),
            idle_timeout: dur(self.idle_timeout, d.idle_timeout),
            tls_handshake_timeout: dur(self.tls_handshake_timeout, d.tls_handshake_timeout),
            body_min_rate: self.body_min_rate.map_or(d.body_min_rate, conf::Size::bytes),
            body_rate_grace: dur(self.body_rate_grace, d.body_rate_grace),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            max_connections_per_peer: self.max_connections_per_peer.unwrap_or(d.max_connections_per_peer),
            h2_max_concurrent_streams: self.h2_max_concurrent_streams.unwrap_or(d.h2_max_concurrent_streams),
            h2_max_header_list_size: self
                .h2_max_header_list_size
                .map_or(d.h2_max_header_list_size, |b| b.bytes().min(u64::from(u32::MAX)) as u32),
            h2_keep_alive_interval: self.h2_keep_alive_interval.map_or(d.h2_keep_alive_interval, |s| s.0),
            h2_keep_alive_timeout: dur(self.h2_keep_alive_timeout, d.h2_keep_alive_timeout),
            h2_max_pending_accept_reset_streams: self
                .h2_max_pending_accept_reset_streams
                .unwrap_or(d.h2_max_pending_accept_reset_streams),
            h2_max_local_error_reset_streams: self
                .h2_max_local_error_reset_streams
                .unwrap_or(d.h2_max_local_error_reset_streams),
            h2_linger_time: dur(self.h2_linger_time, d.h2_linger_time),
            h2_linger_bytes: self.h2_linger_bytes.map_or(d.h2_linger_bytes, conf::Size::bytes),
        };
        limits.validate()?;
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zeroes_are_refused_by_name() {
        Limits::default().validate().unwrap();
        let e = Limits { idle_timeout: Duration::ZERO, ..DEFAULT }.validate().unwrap_err();
        assert!(e.to_string().contains("idle_timeout"), "{e}");
        let e = Limits { max_connections_per_peer: 5000, ..DEFAULT }.validate().unwrap_err();
        assert!(e.to_string().contains("max_connections_per_peer"), "{e}");
        let e = Limits { h2_keep_alive_interval: Some(Duration::ZERO), ..DEFAULT }.validate().unwrap_err();
        assert!(e.to_string().contains("h2_keep_alive_interval"), "{e}");
        Limits { h2_keep_alive_interval: None, ..DEFAULT }.validate().unwrap();
    }

    #[test]
    fn the_body_rate_starts_after_the_grace() {
        let l = Limits { body_min_rate: 1000, body_rate_grace: Duration::from_secs(10), ..DEFAULT };
        assert_eq!(l.body_bytes_due(Duration::from_secs(5)), 0);
        assert_eq!(l.body_bytes_due(Duration::from_secs(12)), 2000);
        assert_eq!(l.body_deadline(0), Duration::from_secs(10));
        assert_eq!(l.body_deadline(3000), Duration::from_secs(13));
    }
}
