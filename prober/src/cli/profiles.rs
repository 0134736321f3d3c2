//! `prober profiles`: the network profiles, as a table.

use std::path::PathBuf;

use clap::Args;
use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use netem::{
    Profile, Rate,
    profile::{self, Loss},
};

use super::UsageError;

/// List the network profiles: the bundled East African ones, plus any in --profile-file.
///
/// Rates are on the wire (payload plus 40 header bytes per segment), as `tc` counts them. RTT is
/// split evenly between directions; jitter is the standard deviation of each one-way delay.
#[derive(Debug, Clone, Args)]
pub struct ProfilesArgs {
    /// Also list the profiles in this YAML file.
    #[arg(long, value_name = "FILE")]
    pub profile_file: Option<PathBuf>,
}

pub fn run(args: ProfilesArgs) -> anyhow::Result<()> {
    let mut profiles: Vec<Profile> = profile::BUNDLED.iter().map(|b| b.profile()).collect();
    if let Some(path) = &args.profile_file {
        profiles.extend(profile::load_file(path).map_err(|e| UsageError(e.to_string()))?);
    }
    println!("{}", table(&profiles));
    Ok(())
}

/// The table `prober profiles` prints.
pub fn table(profiles: &[Profile]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(["profile", "down kbit/s", "up kbit/s", "RTT ms", "jitter ms", "loss", "radio", "description"]);
    for p in profiles {
        let rate = |r: Rate| match r {
            Rate::Unlimited => "unlimited".to_owned(),
            Rate::Kbps(k) => format!("{k}"),
        };
        let loss = match p.loss {
            Loss::None => "0 %".to_owned(),
            Loss::Random { pct } => format!("{pct} %"),
            Loss::GilbertElliott(ge) => format!("GE {:.2} % (p {} r {})", ge.mean_loss() * 100.0, ge.p_pct, ge.r_pct),
        };
        let radio = p.radio.map_or("-".to_owned(), |r| {
            format!("+{} ms after {} s idle", r.promotion.as_millis(), r.tail.as_secs_f64())
        });
        let jitter = match p.jitter.distribution {
            netem::profile::JitterDistribution::Normal => {
                format!("{}", p.jitter.amount.as_millis())
            }
            netem::profile::JitterDistribution::Uniform => {
                format!("±{} (uniform)", p.jitter.amount.as_millis())
            }
        };
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        t.add_row(vec![
            Cell::new(&p.name),
            right(rate(p.down)),
            right(rate(p.up)),
            right(format!("{}", p.rtt().as_millis())),
            right(jitter),
            right(loss),
            Cell::new(radio),
            Cell::new(&p.description),
        ]);
    }
    t
}
