//! Connecting through a profile: DNS and the TCP handshake cost what they cost on the emulated link.
//!
//! The emulated delays are added on top of the real ones (the emulated link is the last mile; the
//! real path behind it still counts). Lost packets during set-up are retried like a phone's stack
//! does: a lost DNS query after 1 s, a lost SYN or SYN-ACK after the initial RTO of 1 s, doubling,
//! at most 6 times (Linux `tcp_syn_retries`).

use std::{
    io,
    net::{IpAddr, SocketAddr},
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Duration,
};

use parking_lot::Mutex;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::{
    net::TcpStream,
    time::{Instant, sleep_until},
};

use crate::{
    link::{LossState, derive_seed, sample_one_way},
    profile::Profile,
    stream::{Radio, ShapedStream},
};

/// Timeout before a lost DNS query is sent again.
pub const DNS_RETRY: Duration = Duration::from_secs(1);
/// Linux's initial retransmission timeout for a SYN.
pub const SYN_RTO: Duration = Duration::from_secs(1);
/// SYN retransmissions before connect gives up (Linux `tcp_syn_retries`).
pub const SYN_RETRIES: u32 = 6;

/// How long connection set-up took, per phase, as a user on the link would see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectTimings {
    /// Name resolution (zero for an IP literal).
    pub dns: Duration,
    /// The TCP handshake.
    pub connect: Duration,
}

/// An open, shaped connection.
pub struct Connected {
    pub stream: ShapedStream<TcpStream>,
    pub timings: ConnectTimings,
    pub peer: SocketAddr,
}

/// Why a connection could not be set up. `phase()` tells which timing it belongs to.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("DNS lookup of `{host}` failed: {source}")]
    Dns { host: String, source: io::Error },
    #[error("DNS lookup of `{host}` returned no address")]
    NoAddress { host: String },
    #[error("DNS lookup of `{host}` timed out: every query was lost on the emulated link")]
    DnsLost { host: String },
    #[error("TCP connect to {addr} failed: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("TCP connect to {addr} timed out: the SYN was lost {SYN_RETRIES} times on the emulated link")]
    SynLost { addr: SocketAddr },
}

impl ConnectError {
    /// `"dns"` or `"connect"`.
    pub fn phase(&self) -> &'static str {
        match self {
            ConnectError::Dns { .. } | ConnectError::NoAddress { .. } | ConnectError::DnsLost { .. } => "dns",
            ConnectError::Connect { .. } | ConnectError::SynLost { .. } => "connect",
        }
    }
}

/// Opens shaped connections for one device: every connection gets its own link (and seed), all
/// share the device's radio.
pub struct Connector {
    profile: Profile,
    seed: u64,
    next: AtomicU64,
    radio: Radio,
    setup: Mutex<(ChaCha8Rng, LossState)>,
}

impl Connector {
    /// Must be called inside a tokio runtime (the radio's clock starts now).
    pub fn new(profile: Profile, seed: u64) -> Connector {
        let radio = Radio::new(&profile);
        let setup =
            Mutex::new((ChaCha8Rng::seed_from_u64(derive_seed(seed, u64::MAX, 7)), LossState::new(profile.loss)));
        Connector { profile, seed, next: AtomicU64::new(0), radio, setup }
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The device's radio (promotions paid so far, for instance).
    pub fn radio(&self) -> &Radio {
        &self.radio
    }

    /// Resolves `host` (paying one emulated RTT for DNS when the profile says so and `host` is a
    /// name), connects (paying one emulated RTT for the handshake) and returns the shaped stream.
    pub async fn connect(&self, host: &str, port: u16) -> Result<Connected, ConnectError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let t0 = Instant::now();
        let (addrs, dns): (Vec<SocketAddr>, Duration) = match host.parse::<IpAddr>() {
            Ok(ip) => (vec![SocketAddr::new(ip, port)], Duration::ZERO),
            Err(_) => {
                let found = tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|source| ConnectError::Dns { host: host.to_owned(), source })?
                    .collect::<Vec<_>>();
                if found.is_empty() {
                    return Err(ConnectError::NoAddress { host: host.to_owned() });
                }
                if self.profile.dns_rtt {
                    let wait = self
                        .emulated_round_trip(t0, DNS_RETRY, 3, false)
                        .ok_or_else(|| ConnectError::DnsLost { host: host.to_owned() })?;
                    sleep_until(Instant::now() + wait).await;
                }
                (found, t0.elapsed())
            }
        };

        let t1 = Instant::now();
        let mut last_err = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    let wait = self
                        .emulated_round_trip(t1, SYN_RTO, SYN_RETRIES, true)
                        .ok_or(ConnectError::SynLost { addr })?;
                    sleep_until(Instant::now() + wait).await;
                    let connect = t1.elapsed();
                    let index = self.next.fetch_add(1, Relaxed);
                    let stream = ShapedStream::with_radio(
                        tcp,
                        &self.profile,
                        derive_seed(self.seed, index, 0),
                        self.radio.clone(),
                    );
                    return Ok(Connected { stream, timings: ConnectTimings { dns, connect }, peer: addr });
                }
                Err(source) => last_err = Some(ConnectError::Connect { addr, source }),
            }
        }
        Err(last_err.expect("at least one address was tried"))
    }

    /// The emulated cost of one request/response exchange started at `start`: radio promotion if
    /// idle, a one-way delay each way, and `retry` (doubling when `backoff`) per lost packet.
    /// `None` when more than `retries` attempts were lost.
    fn emulated_round_trip(&self, start: Instant, retry: Duration, retries: u32, backoff: bool) -> Option<Duration> {
        let p = &self.profile;
        let at = self.radio.at(start);
        let ready = self.radio.with(|r| r.ready_for(at));
        let mut wait = ready - at;
        let mut setup = self.setup.lock();
        let (rng, loss) = &mut *setup;
        let mut attempt = 0;
        // A request and its answer each cross the link once; either may be lost.
        while loss.lose(rng) || loss.lose(rng) {
            if attempt == retries {
                return None;
            }
            wait += if backoff { retry * (1 << attempt) } else { retry };
            attempt += 1;
        }
        wait += sample_one_way(&p.jitter, p.one_way_delay, rng) + sample_one_way(&p.jitter, p.one_way_delay, rng);
        self.radio.with(|r| r.touch(at + wait));
        Some(wait)
    }
}
