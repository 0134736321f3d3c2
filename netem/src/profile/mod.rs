//! Network profiles: what a link looks like (rates, delay, jitter, loss, MTU, radio promotion).
//!
//! A [`Profile`] is plain data. The bundled East African profiles come from [`bundled`]; custom ones
//! are read from YAML with [`load_file`] / [`parse_yaml`]. Every value is validated at load time: a
//! negative rate, a loss above 100 % or an unknown key is an error that names the file, the line and
//! the field.

mod bundled;
mod file;

use std::time::Duration;

pub use bundled::{BUNDLED, bundled, bundled_names};
pub use file::{ProfileError, load_file, parse_yaml};

/// One link's shape. Rates are counted on the wire (payload plus [`Profile::overhead_bytes`] per
/// segment), as a packet-level shaper such as `tc tbf` counts them.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Name used on the command line and in reports (`ea-3g`).
    pub name: String,
    /// One line for `prober profiles`.
    pub description: String,
    /// Server → client direction.
    pub down: Rate,
    /// Client → server direction.
    pub up: Rate,
    /// One-way propagation delay (half the configured RTT), per direction.
    pub one_way_delay: Duration,
    /// Jitter added to each segment's one-way delay.
    pub jitter: Jitter,
    /// Packet loss, turned into retransmission delay on the byte stream.
    pub loss: Loss,
    /// Link MTU in bytes; the MSS is `mtu - 40`.
    pub mtu: u32,
    /// Header bytes counted against the rate for every segment (IPv4 + TCP = 40).
    pub overhead_bytes: u32,
    /// 3G/4G radio promotion: a delay paid by the first bytes after the link has been idle.
    pub radio: Option<RadioPromotion>,
    /// Pay one RTT for a DNS lookup when connecting to a host name (not to an IP literal).
    pub dns_rtt: bool,
}

/// A link rate in kbit/s (1 kbit = 1000 bit), or no limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    Unlimited,
    Kbps(f64),
}

impl Rate {
    /// Bits per second, `None` when unlimited.
    pub fn bits_per_sec(self) -> Option<f64> {
        match self {
            Rate::Unlimited => None,
            Rate::Kbps(k) => Some(k * 1000.0),
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rate::Unlimited => f.write_str("unlimited"),
            Rate::Kbps(k) => write!(f, "{k}"),
        }
    }
}

/// Jitter: the spread of each segment's one-way delay around [`Profile::one_way_delay`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jitter {
    /// Standard deviation (normal) or half-width (uniform).
    pub amount: Duration,
    pub distribution: JitterDistribution,
}

impl Jitter {
    pub const NONE: Jitter = Jitter { amount: Duration::ZERO, distribution: JitterDistribution::Normal };

    /// The largest deviation a sample can take: normal samples are truncated at 3 σ, uniform ones
    /// are bounded by construction.
    pub fn max_deviation(&self) -> Duration {
        match self.distribution {
            JitterDistribution::Normal => self.amount * 3,
            JitterDistribution::Uniform => self.amount,
        }
    }
}

/// How jitter samples are distributed. `tc netem` defaults to normal as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JitterDistribution {
    #[default]
    Normal,
    Uniform,
}

/// Packet loss model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    None,
    /// Independent loss with this probability, in percent.
    Random {
        pct: f64,
    },
    /// Two-state Gilbert-Elliott model, with the same four parameters as `tc netem loss gemodel`.
    GilbertElliott(GilbertElliott),
}

impl Loss {
    /// Long-run fraction of segments lost (0..=1).
    pub fn mean_rate(&self) -> f64 {
        match *self {
            Loss::None => 0.0,
            Loss::Random { pct } => pct / 100.0,
            Loss::GilbertElliott(ge) => ge.mean_loss(),
        }
    }
}

/// Gilbert-Elliott parameters, all in percent: `p` good→bad, `r` bad→good, `bad_loss` (netem's
/// `1-h`) and `good_loss` (netem's `1-k`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    pub p_pct: f64,
    pub r_pct: f64,
    pub bad_loss_pct: f64,
    pub good_loss_pct: f64,
}

impl GilbertElliott {
    /// Stationary loss probability: π_bad·bad_loss + π_good·good_loss, π_bad = p / (p + r).
    pub fn mean_loss(&self) -> f64 {
        let (p, r) = (self.p_pct / 100.0, self.r_pct / 100.0);
        if p + r == 0.0 {
            return self.good_loss_pct / 100.0;
        }
        let bad = p / (p + r);
        bad * self.bad_loss_pct / 100.0 + (1.0 - bad) * self.good_loss_pct / 100.0
    }
}

/// Radio-state promotion (3G RRC IDLE/FACH → DCH, LTE RRC_IDLE → CONNECTED).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RadioPromotion {
    /// Delay paid before the first byte moves after an idle period.
    pub promotion: Duration,
    /// How long the radio stays connected after the last byte.
    pub tail: Duration,
}

/// Ethernet-sized MTU used unless a profile says otherwise.
pub const DEFAULT_MTU: u32 = 1500;
/// IPv4 (20) + TCP (20) header bytes per segment.
pub const DEFAULT_OVERHEAD: u32 = 40;
/// The smallest MTU an IPv4 host must accept (RFC 791).
pub const MIN_MTU: u32 = 576;

impl Profile {
    /// A link that does nothing: no rate limit, no delay, no loss.
    pub fn unshaped(name: &str) -> Profile {
        Profile {
            name: name.to_owned(),
            description: String::new(),
            down: Rate::Unlimited,
            up: Rate::Unlimited,
            one_way_delay: Duration::ZERO,
            jitter: Jitter::NONE,
            loss: Loss::None,
            mtu: DEFAULT_MTU,
            overhead_bytes: DEFAULT_OVERHEAD,
            radio: None,
            dns_rtt: false,
        }
    }

    /// Round-trip time without jitter.
    pub fn rtt(&self) -> Duration {
        self.one_way_delay * 2
    }

    /// Maximum segment payload.
    pub fn mss(&self) -> usize {
        (self.mtu - 40) as usize
    }

    /// True when the profile changes nothing, so streams can skip the emulator entirely.
    pub fn is_passthrough(&self) -> bool {
        self.down == Rate::Unlimited
            && self.up == Rate::Unlimited
            && self.one_way_delay.is_zero()
            && self.jitter.amount.is_zero()
            && self.loss == Loss::None
            && self.radio.is_none()
    }

    /// The least one-way delay a segment can see: the propagation delay minus the largest jitter
    /// deviation, never below zero. No byte is ever delivered sooner than this after it left.
    pub fn min_one_way_delay(&self) -> Duration {
        self.one_way_delay.saturating_sub(self.jitter.max_deviation())
    }

    /// Linux-like retransmission timeout: max(200 ms, RTT + 4·jitter).
    pub fn rto(&self) -> Duration {
        (self.rtt() + self.jitter.amount * 4).max(Duration::from_millis(200))
    }

    /// Checks the invariants a hand-built profile must keep (YAML loading checks them too).
    pub fn validate(&self) -> Result<(), String> {
        for (field, rate) in [("down_kbps", self.down), ("up_kbps", self.up)] {
            if let Rate::Kbps(k) = rate
                && !(k.is_finite() && k > 0.0)
            {
                return Err(format!("{field}: must be a positive number of kbit/s, got {k}"));
            }
        }
        if !(MIN_MTU..=65_535).contains(&self.mtu) {
            return Err(format!("mtu: must be between {MIN_MTU} and 65535 bytes, got {}", self.mtu));
        }
        if self.overhead_bytes > 1_000 {
            return Err(format!("overhead_bytes: must be at most 1000, got {}", self.overhead_bytes));
        }
        match self.loss {
            Loss::None => {}
            Loss::Random { pct } => check_pct("loss_pct", pct)?,
            Loss::GilbertElliott(ge) => {
                check_pct("gilbert_elliott.p_pct", ge.p_pct)?;
                check_pct("gilbert_elliott.r_pct", ge.r_pct)?;
                check_pct("gilbert_elliott.bad_loss_pct", ge.bad_loss_pct)?;
                check_pct("gilbert_elliott.good_loss_pct", ge.good_loss_pct)?;
            }
        }
        Ok(())
    }
}

fn check_pct(field: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && (0.0..=100.0).contains(&v) {
        Ok(())
    } else {
        Err(format!("{field}: must be a percentage between 0 and 100, got {v}"))
    }
}

/// Looks a profile up by name among the bundled ones and `extra` (custom profiles from a file,
/// which take precedence).
pub fn resolve(name: &str, extra: &[Profile]) -> Result<Profile, UnknownProfile> {
    if let Some(p) = extra.iter().find(|p| p.name == name) {
        return Ok(p.clone());
    }
    bundled(name).ok_or_else(|| UnknownProfile {
        name: name.to_owned(),
        known: bundled_names()
            .map(str::to_owned)
            .chain(extra.iter().map(|p| p.name.clone()))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// A profile name that is neither bundled nor in the loaded file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown network profile `{name}`; known profiles: {known} (add your own with a profile file)")]
pub struct UnknownProfile {
    pub name: String,
    pub known: String,
}
