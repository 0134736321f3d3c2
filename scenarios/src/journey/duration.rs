//! Durations in journey files: `250ms`, `15s`, `2m`, `1h`, or a bare number of seconds.

use std::{fmt, time::Duration};

use serde::{Deserialize, Deserializer, de};

/// A duration as written in a journey file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl Dur {
    /// Parses `250ms`, `1.5s`, `2m`, `1h` (or a bare number of seconds).
    pub fn parse(s: &str) -> Result<Dur, String> {
        let s = s.trim();
        let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let v: f64 = num.parse().map_err(|_| format!("`{s}` is not a duration (write e.g. 250ms, 15s, 2m)"))?;
        let secs = match unit.trim() {
            "" | "s" => v,
            "ms" => v / 1000.0,
            "m" | "min" => v * 60.0,
            "h" => v * 3600.0,
            other => return Err(format!("`{s}`: unknown unit `{other}` (use ms, s, m or h)")),
        };
        if !(secs.is_finite() && (0.0..=86_400.0).contains(&secs)) {
            return Err(format!("`{s}` must be between 0 and 24h"));
        }
        Ok(Dur(Duration::from_secs_f64(secs)))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_secs_f64() * 1000.0;
        if ms < 1000.0 { write!(f, "{ms:.0}ms") } else { write!(f, "{}s", ms / 1000.0) }
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 250ms, 15s or 2m")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                Dur::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                Dur::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                Dur::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
                Dur::parse(&v.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(Dur::parse("250ms").unwrap().0, Duration::from_millis(250));
        assert_eq!(Dur::parse("1.5s").unwrap().0, Duration::from_millis(1500));
        assert_eq!(Dur::parse("2m").unwrap().0, Duration::from_secs(120));
        assert_eq!(Dur::parse("3").unwrap().0, Duration::from_secs(3));
        assert!(Dur::parse("5 parsecs").unwrap_err().contains("unknown unit"));
        assert!(Dur::parse("-1s").is_err());
        assert!(Dur::parse("2d").is_err());
    }
}
