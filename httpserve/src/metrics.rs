//! One counter per bound, so every refusal is observable. A process registers one
//! [`ServeMetrics`] under its own prefix and tags each listener with a name.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The listener's name (`api`, `metrics`, `payment_callback`).
    pub listener: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: String,
}

/// Why a connection was refused at accept (`{prefix}_connections_refused_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_connections` were open.
    MaxConnections,
    /// `max_connections_per_peer` were open from the same address.
    MaxConnectionsPerPeer,
}

impl Refused {
    pub fn label(self) -> &'static str {
        match self {
            Refused::MaxConnections => "max_connections",
            Refused::MaxConnectionsPerPeer => "max_connections_per_peer",
        }
    }
}

/// Why a bound closed a connection (`{prefix}_connections_closed_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The TLS handshake took longer than `tls_handshake_timeout`.
    TlsHandshakeTimeout,
    /// A request head took longer than `header_read_timeout`.
    HeaderTimeout,
    /// No request in flight for `idle_timeout`.
    IdleTimeout,
    /// An HTTP/2 keep-alive PING went unanswered for `h2_keep_alive_timeout`.
    KeepAliveTimeout,
    /// HTTP/2 `GOAWAY ENHANCE_YOUR_CALM`: too many reset streams (rapid reset and the like).
    H2Flood,
}

impl Closed {
    pub fn label(self) -> &'static str {
        match self {
            Closed::TlsHandshakeTimeout => "tls_handshake_timeout",
            Closed::HeaderTimeout => "header_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::KeepAliveTimeout => "h2_keep_alive_timeout",
            Closed::H2Flood => "h2_flood",
        }
    }
}

/// The counters of every listener of a process.
#[derive(Debug, Clone, Default)]
pub struct ServeMetrics {
    refused: Family<ReasonLabels, Counter>,
    closed: Family<ReasonLabels, Counter>,
    requests_refused: Family<ReasonLabels, Counter>,
    open: Family<ListenerLabels, Gauge>,
}

impl ServeMetrics {
    pub fn new() -> ServeMetrics {
        ServeMetrics::default()
    }

    /// Registers `{prefix}_connections_refused`, `{prefix}_connections_closed`,
    /// `{prefix}_requests_refused` (counters: `_total` on the wire) and `{prefix}_connections_open`.
    pub fn register(&self, registry: &mut Registry, prefix: &str) {
        registry.register(
            format!("{prefix}_connections_refused"),
            "Connections closed as soon as accepted, by listener and reason (max_connections, max_connections_per_peer)",
            self.refused.clone(),
        );
        registry.register(
            format!("{prefix}_connections_closed"),
            "Connections closed by a bound, by listener and reason (tls_handshake_timeout, header_timeout, \
             idle_timeout, h2_keep_alive_timeout, h2_flood)",
            self.closed.clone(),
        );
        registry.register(
            format!("{prefix}_requests_refused"),
            "Requests answered 408 because their body arrived below body_min_rate (reason body_too_slow)",
            self.requests_refused.clone(),
        );
        registry.register(format!("{prefix}_connections_open"), "Connections open now", self.open.clone());
    }

    pub(crate) fn refuse(&self, listener: &str, why: Refused) {
        self.refused.get_or_create(&labels(listener, why.label())).inc();
    }

    pub(crate) fn close(&self, listener: &str, why: Closed) {
        self.closed.get_or_create(&labels(listener, why.label())).inc();
    }

    pub(crate) fn body_too_slow(&self, listener: &str) {
        self.requests_refused.get_or_create(&labels(listener, "body_too_slow")).inc();
    }

    pub(crate) fn open_gauge(&self, listener: &str) -> Gauge {
        self.open.get_or_create(&ListenerLabels { listener: listener.to_owned() }).clone()
    }

    /// Connections refused on `listener` for `why` so far (tests, status pages).
    pub fn refused(&self, listener: &str, why: Refused) -> u64 {
        self.refused.get_or_create(&labels(listener, why.label())).get()
    }

    /// Connections `listener` closed for `why` so far.
    pub fn closed(&self, listener: &str, why: Closed) -> u64 {
        self.closed.get_or_create(&labels(listener, why.label())).get()
    }

    /// Requests `listener` answered 408 for a slow body so far.
    pub fn slow_bodies(&self, listener: &str) -> u64 {
        self.requests_refused.get_or_create(&labels(listener, "body_too_slow")).get()
    }

    /// Connections open on `listener` now.
    pub fn open(&self, listener: &str) -> i64 {
        self.open_gauge(listener).get()
    }
}

fn labels(listener: &str, reason: &str) -> ReasonLabels {
    ReasonLabels { listener: listener.to_owned(), reason: reason.to_owned() }
}

/// Registers the metrics of a struct from one table, one line per metric:
/// `register_metrics!(registry, metrics, { field: "name", "help"; … })` calls
/// `registry.register("name", "help", metrics.field.clone())` for each line. The listeners'
/// owners (the aggregator, the prober) register their own metrics with it beside these.
#[macro_export]
macro_rules! register_metrics {
    ($r:expr, $m:expr, { $($field:ident: $name:literal, $help:literal;)* }) => {
        $($r.register($name, $help, $m.$field.clone());)*
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_the_listener_and_reason() {
        let m = ServeMetrics::new();
        let mut r = Registry::default();
        m.register(&mut r, "aggregator");
        m.refuse("api", Refused::MaxConnectionsPerPeer);
        m.close("api", Closed::HeaderTimeout);
        m.body_too_slow("api");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        for line in [
            r#"aggregator_connections_refused_total{listener="api",reason="max_connections_per_peer"} 1"#,
            r#"aggregator_connections_closed_total{listener="api",reason="header_timeout"} 1"#,
            r#"aggregator_requests_refused_total{listener="api",reason="body_too_slow"} 1"#,
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        assert_eq!(m.refused("api", Refused::MaxConnectionsPerPeer), 1);
    }
}
