//! # netem — honest network links, in userspace
//!
//! Savanna Pulse measures what a user on a 3G link in Kampala experiences, so every prober
//! connection goes through this crate's link emulator.
//!
//! - [`profile`]: what a link looks like ([`Profile`]), the bundled East African profiles, and
//!   custom profiles from YAML with errors that name the file, line and field.
//! - [`link`]: the pure link model — a virtual link clock with absolute deadlines, in-order
//!   propagation with jitter, loss as retransmission delay, radio promotion — property-tested
//!   without a runtime.
//! - [`ShapedStream`]: wraps any tokio `AsyncRead + AsyncWrite` (a `TcpStream`, and rustls on
//!   top of it) and applies a profile per direction, with bounded buffers so backpressure reaches
//!   the writer.
//! - [`Connector`]: resolves and connects through a profile (one RTT for DNS, one for the TCP
//!   handshake) and reports the phase timings.
//! - [`proxy`]: a shaping TCP proxy for any client (what `prober proxy` runs).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! let profile = netem::profile::bundled("ea-3g").unwrap();
//! let connector = netem::Connector::new(profile, 42);
//! let mut conn = connector.connect("127.0.0.1", 8080).await?;
//! println!("dns {:?}, connect {:?}", conn.timings.dns, conn.timings.connect);
//! conn.stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
//! let mut body = Vec::new();
//! conn.stream.read_to_end(&mut body).await?;
//! # Ok(()) }
//! ```

pub mod connect;
pub mod link;
pub mod profile;
pub mod proxy;
pub mod stream;

pub use connect::{ConnectError, ConnectTimings, Connected, Connector};
pub use link::Direction;
pub use profile::{Profile, ProfileError, RadioPromotion, Rate};
pub use stream::{LinkStats, ShapedStream};
