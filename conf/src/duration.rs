//! Durations as people write them in every Savanna Pulse file.
//!
//! One grammar everywhere: a number and a unit, or several in a row (`1h30m`, `1m 30s`), or a bare
//! number of seconds (`90`, `0.5`). Numbers may have a decimal fraction (`1.5s`, `2.5d`), which is
//! read exactly (no floating point). Units:
//!
//! | unit | also written |
//! |---|---|
//! | `ns` | `nsec` |
//! | `us` | `µs`, `usec` |
//! | `ms` | `msec` |
//! | `s` | `sec`, `secs`, `second`, `seconds` |
//! | `m` | `min`, `mins`, `minute`, `minutes` |
//! | `h` | `hr`, `hrs`, `hour`, `hours` |
//! | `d` | `day`, `days` |
//! | `w` | `week`, `weeks` |
//!
//! A field may bound what it takes: [`Dur<MIN_MS, MAX_MS>`](Dur) refuses, while the file is
//! parsed (so the error points at the field), anything outside `MIN_MS..=MAX_MS` milliseconds.

use std::{fmt, time::Duration};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

const NANOS_PER: [(&[&str], u128); 8] = [
    (&["ns", "nsec"], 1),
    (&["us", "µs", "usec"], 1_000),
    (&["ms", "msec"], 1_000_000),
    (&["s", "sec", "secs", "second", "seconds"], 1_000_000_000),
    (&["m", "min", "mins", "minute", "minutes"], 60_000_000_000),
    (&["h", "hr", "hrs", "hour", "hours"], 3_600_000_000_000),
    (&["d", "day", "days"], 86_400_000_000_000),
    (&["w", "week", "weeks"], 604_800_000_000_000),
];

const EXAMPLES: &str = "write e.g. 250ms, 15s, 2m, 1h30m, 7d";

/// Parses a duration in the grammar above.
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err(format!("an empty value is not a duration ({EXAMPLES})"));
    }
    if s.starts_with('-') {
        return Err(format!("`{s}`: a duration is not negative"));
    }
    let mut rest = s;
    let mut total: u128 = 0;
    let mut terms = 0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        let after = after.trim_start();
        if num.is_empty() {
            return Err(format!("`{s}` is not a duration ({EXAMPLES})"));
        }
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let per = if unit.is_empty() {
            // A bare number means seconds, but only on its own: `1h30` is a typo, not 1h 30s.
            if terms > 0 || !after.trim().is_empty() {
                return Err(format!("`{s}`: `{num}` needs a unit ({EXAMPLES})"));
            }
            1_000_000_000
        } else {
            NANOS_PER
                .iter()
                .find(|(names, _)| names.contains(&unit))
                .map(|(_, n)| *n)
                .ok_or_else(|| format!("`{s}`: unknown unit `{unit}` (use ns, us, ms, s, m, h, d or w)"))?
        };
        let nanos = scaled(num, per).ok_or_else(|| format!("`{s}`: `{num}` is not a number"))?;
        total = total.checked_add(nanos).ok_or_else(|| format!("`{s}` is too long"))?;
        terms += 1;
        rest = after.trim_start();
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| format!("`{s}` is too long"))?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// `num` (digits, at most one `.`) × `per` nanoseconds, exactly (fractions below 1 ns dropped).
fn scaled(num: &str, per: u128) -> Option<u128> {
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if (whole.is_empty() && frac.is_empty()) || frac.contains('.') {
        return None;
    }
    let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let mut out = whole.checked_mul(per)?;
    let mut scale = per;
    for d in frac.bytes() {
        scale /= 10;
        if scale == 0 {
            break;
        }
        out = out.checked_add(u128::from(d - b'0') * scale)?;
    }
    Some(out)
}

/// The shortest way to write `d` in the grammar: `250ms`, `1.5s`, `15s`, `2m`, `1h30m`, `35d`.
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000_000_000 || !nanos.is_multiple_of(1_000_000_000) {
        // Below a second, or not whole seconds: one unit with a fraction.
        let (per, unit) = if nanos < 1_000 {
            (1, "ns")
        } else if nanos < 1_000_000 {
            (1_000, "us")
        } else if nanos < 1_000_000_000 {
            (1_000_000, "ms")
        } else {
            (1_000_000_000, "s")
        };
        let whole = nanos / per;
        let frac = nanos % per;
        if frac == 0 {
            return format!("{whole}{unit}");
        }
        let width = per.ilog10() as usize;
        let digits = format!("{frac:0width$}");
        return format!("{whole}.{}{unit}", digits.trim_end_matches('0'));
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, n) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= n {
            out.push_str(&format!("{}{unit}", secs / n));
            secs %= n;
        }
    }
    out
}

/// A duration field, bounded to `MIN_MS..=MAX_MS` milliseconds (by default: any).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur<const MIN_MS: u64 = 0, const MAX_MS: u64 = { u64::MAX }>(Duration);

impl Dur {
    /// Parses without bounds.
    pub fn parse(text: &str) -> Result<Dur, String> {
        parse(text).map(Dur)
    }
}

impl<const MIN_MS: u64, const MAX_MS: u64> Dur<MIN_MS, MAX_MS> {
    /// `d`, if it is within this field's bounds.
    pub fn new(d: Duration) -> Result<Self, String> {
        if d < Duration::from_millis(MIN_MS) {
            return Err(format!("`{}` is below the least allowed here, {}", format(d), bound(MIN_MS)));
        }
        if d > Duration::from_millis(MAX_MS) {
            return Err(format!("`{}` is above the most allowed here, {}", format(d), bound(MAX_MS)));
        }
        Ok(Dur(d))
    }

    pub fn get(self) -> Duration {
        self.0
    }
}

fn bound(ms: u64) -> String {
    format(Duration::from_millis(ms))
}

impl<const A: u64, const B: u64> From<Dur<A, B>> for Duration {
    fn from(d: Dur<A, B>) -> Duration {
        d.0
    }
}

impl<const A: u64, const B: u64> fmt::Display for Dur<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format(self.0))
    }
}

impl<const A: u64, const B: u64> fmt::Debug for Dur<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dur({})", format(self.0))
    }
}

impl<const A: u64, const B: u64> Serialize for Dur<A, B> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(self.0))
    }
}

impl<'de, const A: u64, const B: u64> Deserialize<'de> for Dur<A, B> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const A: u64, const B: u64>;
        impl<const A: u64, const B: u64> de::Visitor<'_> for V<A, B> {
            type Value = Dur<A, B>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a duration ({EXAMPLES})")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse(v).and_then(Dur::new).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Dur::new(Duration::from_secs(v)).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                let secs = u64::try_from(v).map_err(|_| E::custom(format!("`{v}`: a duration is not negative")))?;
                self.visit_u64(secs)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                // Through the text form, so `0.1` is exactly 100 ms.
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V::<A, B>)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Every form the six parsers this one replaced took (journeys, edge config, load plans,
    /// aggregator config, SLO files, the demo).
    #[test]
    fn every_form_the_old_parsers_took() {
        for (text, want) in [
            ("250ms", ms(250)),
            ("1.5s", ms(1_500)),
            ("15s", ms(15_000)),
            ("2m", ms(120_000)),
            ("2min", ms(120_000)),
            ("1h", ms(3_600_000)),
            ("3", ms(3_000)),
            ("0.5", ms(500)),
            ("35d", ms(35 * 86_400_000)),
            ("7d", ms(7 * 86_400_000)),
            ("0.5d", ms(43_200_000)),
            ("250us", Duration::from_micros(250)),
            ("250µs", Duration::from_micros(250)),
            ("500 ms", ms(500)),
            (" 10s ", ms(10_000)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn compound_and_long_forms() {
        assert_eq!(parse("1h30m"), Ok(ms(5_400_000)));
        assert_eq!(parse("1m 30s"), Ok(ms(90_000)));
        assert_eq!(parse("2 hours 5 minutes"), Ok(ms(7_500_000)));
        assert_eq!(parse("1w"), Ok(ms(7 * 86_400_000)));
        assert_eq!(parse("100ns"), Ok(Duration::from_nanos(100)));
        assert_eq!(parse("0.1s"), Ok(ms(100)), "exact, no floating point");
    }

    #[test]
    fn refusals_say_what_to_write() {
        for (text, says) in [
            ("", "empty"),
            ("-1s", "not negative"),
            ("5 parsecs", "unknown unit `parsecs`"),
            ("2x", "unknown unit `x`"),
            ("1h30", "needs a unit"),
            ("s", "not a duration"),
            ("1.2.3s", "not a number"),
            ("99999999999999999999999w", "too long"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn formatting() {
        assert_eq!(format(ms(250)), "250ms");
        assert_eq!(format(ms(1_500)), "1.5s");
        assert_eq!(format(ms(15_000)), "15s");
        assert_eq!(format(ms(120_000)), "2m");
        assert_eq!(format(ms(5_400_000)), "1h30m");
        assert_eq!(format(ms(35 * 86_400_000)), "35d");
        assert_eq!(format(Duration::from_micros(1_250)), "1.25ms");
        assert_eq!(format(Duration::ZERO), "0s");
    }

    #[test]
    fn fields_enforce_their_bounds_while_parsing() {
        #[derive(Debug, Deserialize)]
        struct Step {
            #[allow(dead_code)]
            timeout: Dur<1, 86_400_000>,
        }
        let ok: Step = serde_yaml_ng::from_str("timeout: 90").unwrap();
        assert_eq!(ok.timeout.get(), ms(90_000));
        let e = serde_yaml_ng::from_str::<Step>("timeout: 25h").unwrap_err().to_string();
        assert!(e.contains("`1d1h` is above the most allowed here, 1d"), "{e}");
        let e = serde_yaml_ng::from_str::<Step>("timeout: 0s").unwrap_err().to_string();
        assert!(e.contains("below the least allowed here, 1ms"), "{e}");
        let e = serde_yaml_ng::from_str::<Step>("timeout: -3").unwrap_err().to_string();
        assert!(e.contains("not negative"), "{e}");
    }

    proptest! {
        #[test]
        fn format_parses_back(n in 0u64..10_000_000_000_000_000) {
            let d = Duration::from_nanos(n);
            prop_assert_eq!(parse(&format(d)), Ok(d));
        }
    }
}
