//! Choosing a network profile on the command line: `--profile NAME`, `--profile-file FILE`, and
//! flags that override single values (shared by every subcommand that opens connections).

use std::{path::PathBuf, time::Duration};

use clap::Args;
use netem::{
    Profile, Rate,
    profile::{self, Loss},
};

use super::UsageError;

/// Network profile selection and overrides.
#[derive(Debug, Clone, Args)]
pub struct LinkArgs {
    /// Network profile: a bundled one (see `prober profiles`), one from --profile-file, or `custom`
    /// to build one from the flags below alone.
    #[arg(long, short = 'p', value_name = "NAME")]
    pub profile: Option<String>,

    /// YAML file with custom profiles (one profile, or a list under `profiles:`).
    #[arg(long, value_name = "FILE")]
    pub profile_file: Option<PathBuf>,

    /// Override the server → client rate, kbit/s (`unlimited` for none).
    #[arg(long, value_name = "KBPS", value_parser = parse_rate, allow_negative_numbers = true)]
    pub down_kbps: Option<Rate>,

    /// Override the client → server rate, kbit/s (`unlimited` for none).
    #[arg(long, value_name = "KBPS", value_parser = parse_rate, allow_negative_numbers = true)]
    pub up_kbps: Option<Rate>,

    /// Override the round-trip time, ms.
    #[arg(long, value_name = "MS", value_parser = parse_ms, allow_negative_numbers = true)]
    pub rtt_ms: Option<Duration>,

    /// Override the jitter (standard deviation of the one-way delay), ms.
    #[arg(long, value_name = "MS", value_parser = parse_ms, allow_negative_numbers = true)]
    pub jitter_ms: Option<Duration>,

    /// Override the loss: independent random loss, percent (0 for none).
    #[arg(long, value_name = "PCT", value_parser = parse_pct, allow_negative_numbers = true)]
    pub loss_pct: Option<f64>,

    /// Seed for jitter and loss, so a run can be replayed (default: a fresh one, printed at start).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

impl LinkArgs {
    /// The profile the flags describe, validated; `default` when --profile is absent.
    pub fn resolve(&self, default: Option<&str>) -> Result<Profile, UsageError> {
        let Some(name) = self.profile.as_deref().or(default) else {
            return Err(UsageError("--profile is required (see `prober profiles`)".into()));
        };
        let extra = match &self.profile_file {
            Some(path) => profile::load_file(path).map_err(|e| UsageError(e.to_string()))?,
            None => Vec::new(),
        };
        let mut p = if name == "custom" {
            let mut p = Profile::unshaped("custom");
            p.description = "built from command-line flags".into();
            p
        } else {
            profile::resolve(name, &extra).map_err(|e| UsageError(e.to_string()))?
        };
        let mut changed = false;
        if let Some(r) = self.down_kbps {
            p.down = r;
            changed = true;
        }
        if let Some(r) = self.up_kbps {
            p.up = r;
            changed = true;
        }
        if let Some(rtt) = self.rtt_ms {
            p.one_way_delay = rtt / 2;
            changed = true;
        }
        if let Some(j) = self.jitter_ms {
            p.jitter.amount = j;
            changed = true;
        }
        if let Some(l) = self.loss_pct {
            p.loss = if l > 0.0 { Loss::Random { pct: l } } else { Loss::None };
            changed = true;
        }
        if changed && self.rtt_ms.is_some() {
            p.dns_rtt = !p.one_way_delay.is_zero();
        }
        if changed && p.name != "custom" {
            p.name = format!("{}+overrides", p.name);
        }
        p.validate().map_err(|e| UsageError(format!("profile `{}`: {e}", p.name)))?;
        Ok(p)
    }

    /// The seed to use: the given one or a fresh one.
    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or_else(|| {
            use std::hash::{BuildHasher, RandomState};
            RandomState::new().hash_one(std::process::id())
        })
    }
}

fn parse_rate(s: &str) -> Result<Rate, String> {
    if s.eq_ignore_ascii_case("unlimited") {
        return Ok(Rate::Unlimited);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(Rate::Kbps(v)),
        _ => Err(format!("`{s}` is not a rate: give a positive number of kbit/s or `unlimited`")),
    }
}

fn parse_ms(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=3_600_000.0).contains(&v) => Ok(Duration::from_secs_f64(v / 1000.0)),
        _ => Err(format!("`{s}` is not a duration: give milliseconds between 0 and 3600000")),
    }
}

fn parse_pct(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a percentage between 0 and 100")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        link: LinkArgs,
    }

    fn parse(args: &[&str]) -> Result<Profile, String> {
        let t = T::try_parse_from(std::iter::once("t").chain(args.iter().copied())).map_err(|e| e.to_string())?;
        t.link.resolve(None).map_err(|e| e.0)
    }

    #[test]
    fn flags_override_a_bundled_profile() {
        let p = parse(&["--profile", "ea-3g", "--down-kbps", "900", "--loss-pct", "0"]).unwrap();
        assert_eq!(p.name, "ea-3g+overrides");
        assert_eq!(p.down, Rate::Kbps(900.0));
        assert_eq!(p.up, Rate::Kbps(768.0));
        assert_eq!(p.loss, Loss::None);
    }

    #[test]
    fn custom_starts_from_nothing() {
        let p = parse(&["-p", "custom", "--rtt-ms", "100", "--up-kbps", "unlimited", "--down-kbps", "50"]).unwrap();
        assert_eq!(p.rtt(), Duration::from_millis(100));
        assert_eq!(p.down, Rate::Kbps(50.0));
        assert_eq!(p.up, Rate::Unlimited);
        assert!(p.dns_rtt);
        assert!(parse(&["-p", "custom"]).unwrap().is_passthrough());
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let e = parse(&["-p", "ea-3g", "--loss-pct", "150"]).unwrap_err();
        assert!(e.contains("--loss-pct") && e.contains("between 0 and 100"), "{e}");
        let e = parse(&["-p", "ea-3g", "--down-kbps", "-5"]).unwrap_err();
        assert!(e.contains("--down-kbps") && e.contains("positive"), "{e}");
        let e = parse(&["-p", "ea-9g"]).unwrap_err();
        assert!(e.contains("unknown network profile `ea-9g`") && e.contains("ea-3g"), "{e}");
    }
}
