//! The bundled East African profiles (the sources of every number: `docs/link-model.md` §10).

use std::time::Duration;

use super::{DEFAULT_MTU, DEFAULT_OVERHEAD, Jitter, JitterDistribution, Loss, Profile, RadioPromotion, Rate};

/// One row of the bundled table.
pub struct Bundled {
    pub name: &'static str,
    pub description: &'static str,
    pub down_kbps: Option<f64>,
    pub up_kbps: Option<f64>,
    pub rtt_ms: u64,
    pub jitter_ms: u64,
    pub loss_pct: f64,
    /// (promotion ms, tail ms)
    pub radio_ms: Option<(u64, u64)>,
}

/// Every bundled profile, fastest first.
pub const BUNDLED: &[Bundled] = &[
    row("ea-4g-urban", "Kenyan 4G, Ookla median (Nairobi)", (17_000.0, 9_000.0), (40, 5), 0.2, None),
    row("ea-4g-degraded", "Tanzanian 4G, low tail", (5_000.0, 2_000.0), (80, 15), 0.5, None),
    row("ea-3g", "3G (WebPageTest 3G)", (1_600.0, 768.0), (300, 50), 0.5, None),
    row(
        "ea-3g-rrc",
        "ea-3g plus RRC promotion: 2 s after 5 s idle",
        (1_600.0, 768.0),
        (300, 50),
        0.5,
        Some((2_000, 5_000)),
    ),
    row("ea-3g-slow", "congested 3G (WPT 3G_EM, Chrome Slow 3G)", (400.0, 400.0), (400, 50), 1.0, None),
    row("ea-edge", "2.5G EDGE (WebPageTest Edge)", (240.0, 200.0), (840, 100), 1.0, None),
    row("ea-2g-gprs", "2G GPRS (old WPT 2G, Loadero GPRS)", (50.0, 30.0), (1_300, 150), 2.0, None),
    Bundled {
        name: "loopback",
        description: "no shaping at all",
        down_kbps: None,
        up_kbps: None,
        rtt_ms: 0,
        jitter_ms: 0,
        loss_pct: 0.0,
        radio_ms: None,
    },
];

/// A shaped row: (down, up) kbit/s, (rtt, jitter) ms, loss %, radio (promotion, tail) ms.
const fn row(
    name: &'static str,
    description: &'static str,
    (down, up): (f64, f64),
    (rtt_ms, jitter_ms): (u64, u64),
    loss_pct: f64,
    radio_ms: Option<(u64, u64)>,
) -> Bundled {
    Bundled { name, description, down_kbps: Some(down), up_kbps: Some(up), rtt_ms, jitter_ms, loss_pct, radio_ms }
}

impl Bundled {
    pub fn profile(&self) -> Profile {
        let rate = |k: Option<f64>| k.map_or(Rate::Unlimited, Rate::Kbps);
        Profile {
            name: self.name.to_owned(),
            description: self.description.to_owned(),
            down: rate(self.down_kbps),
            up: rate(self.up_kbps),
            one_way_delay: Duration::from_millis(self.rtt_ms) / 2,
            jitter: Jitter { amount: Duration::from_millis(self.jitter_ms), distribution: JitterDistribution::Normal },
            loss: if self.loss_pct > 0.0 { Loss::Random { pct: self.loss_pct } } else { Loss::None },
            mtu: DEFAULT_MTU,
            overhead_bytes: DEFAULT_OVERHEAD,
            radio: self.radio_ms.map(|(promotion, tail)| RadioPromotion {
                promotion: Duration::from_millis(promotion),
                tail: Duration::from_millis(tail),
            }),
            dns_rtt: self.rtt_ms > 0,
        }
    }
}

/// The bundled profile called `name`.
pub fn bundled(name: &str) -> Option<Profile> {
    BUNDLED.iter().find(|b| b.name == name).map(Bundled::profile)
}

/// Names of the bundled profiles, in table order.
pub fn bundled_names() -> impl Iterator<Item = &'static str> {
    BUNDLED.iter().map(|b| b.name)
}

#[cfg(test)]
mod tests {

    /// docs/link-model.md §10 lists every bundled profile with the numbers the code uses.
    #[test]
    fn the_link_model_page_lists_every_bundled_profile_with_its_numbers() {
        let page = include_str!("../../../docs/link-model.md");
        let num = |v: Option<f64>| v.map_or_else(|| "unlimited".to_owned(), |k| format!("{k}"));
        for b in BUNDLED {
            let row = page
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", b.name)))
                .unwrap_or_else(|| panic!("docs/link-model.md §10 has no row for `{}`", b.name));
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let want = [num(b.down_kbps), num(b.up_kbps), b.rtt_ms.to_string(), b.jitter_ms.to_string()];
            assert_eq!(&cells[2..6], &want.each_ref().map(String::as_str), "{row}");
            let loss: f64 = cells[6].parse().unwrap();
            assert_eq!(loss, b.loss_pct, "{row}");
        }
    }
    use super::*;

    #[test]
    fn every_bundled_profile_is_valid_and_matches_the_design_table() {
        for b in BUNDLED {
            let p = b.profile();
            p.validate().unwrap_or_else(|e| panic!("{}: {e}", b.name));
        }
        let p = bundled("ea-3g").unwrap();
        assert_eq!(p.down, Rate::Kbps(1600.0));
        assert_eq!(p.up, Rate::Kbps(768.0));
        assert_eq!(p.rtt(), Duration::from_millis(300));
        assert_eq!(p.jitter.amount, Duration::from_millis(50));
        assert_eq!(p.loss, Loss::Random { pct: 0.5 });
        assert!(bundled("loopback").unwrap().is_passthrough());
        assert!(!bundled("ea-4g-urban").unwrap().is_passthrough());
        assert!(bundled("nope").is_none());
    }
}
