//! Custom profiles from YAML.
//!
//! A file holds one profile, or several under `profiles:`. Each may start from a bundled profile
//! (`base: ea-3g`) and override only what differs. See `netem/examples/profiles.yaml`.

use std::{fmt, path::Path, time::Duration};

use conf::Source;
use serde::{Deserialize, Deserializer, de};

use super::{GilbertElliott, Jitter, JitterDistribution, Loss, Profile, RadioPromotion, Rate, bundled};

/// A profile file that could not be read or is not valid: `file:line:column: field: message`.
pub type ProfileError = conf::Error;

/// Reads every profile in a YAML file.
pub fn load_file(path: &Path) -> Result<Vec<Profile>, ProfileError> {
    parse_source(&Source::read(path)?)
}

/// Parses the profiles in `src`; `file` names the source in error messages.
pub fn parse_yaml(src: &str, file: &str) -> Result<Vec<Profile>, ProfileError> {
    parse_source(&Source::new(file, src))
}

fn parse_source(src: &Source) -> Result<Vec<Profile>, ProfileError> {
    let (docs, listed) = match src.value()? {
        serde_yaml_ng::Value::Mapping(m) if m.contains_key("profiles") => (src.parse::<ProfilesDoc>()?.profiles, true),
        serde_yaml_ng::Value::Mapping(_) => (vec![src.parse::<ProfileDoc>()?], false),
        _ => return Err(src.error("", "expected a profile (a mapping with `name:`) or a list under `profiles:`")),
    };
    if docs.is_empty() {
        return Err(src.error("profiles", "the list is empty"));
    }
    let mut out: Vec<Profile> = Vec::with_capacity(docs.len());
    for (i, doc) in docs.into_iter().enumerate() {
        let at = |key: &str| if listed { format!("profiles[{i}].{key}") } else { key.to_owned() };
        if out.iter().any(|p| p.name == doc.name) {
            return Err(src.error(at("name"), format!("profile `{}` is defined twice in this file", doc.name)));
        }
        let profile = doc.resolve().map_err(|(key, message)| src.error(at(key), message))?;
        out.push(profile);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesDoc {
    profiles: Vec<ProfileDoc>,
}

/// One profile as written in YAML. Every field but `name` is optional; missing fields come from
/// `base` or, without a base, mean "no shaping" for that aspect.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileDoc {
    /// Name used with `--profile NAME`; must not shadow a bundled profile.
    name: String,
    /// One line shown by `prober profiles`.
    description: Option<String>,
    /// A bundled profile to start from.
    base: Option<String>,
    /// Server → client rate in kbit/s, or `unlimited`.
    down_kbps: Option<RateField>,
    /// Client → server rate in kbit/s, or `unlimited`.
    up_kbps: Option<RateField>,
    /// Round-trip time in ms (split evenly between the two directions).
    rtt_ms: Option<Millis>,
    /// One-way delay in ms (alternative to `rtt_ms`).
    one_way_delay_ms: Option<Millis>,
    /// Jitter in ms: standard deviation (normal) or half-width (uniform).
    jitter_ms: Option<Millis>,
    /// `normal` (default, like tc netem) or `uniform`.
    jitter_distribution: Option<JitterDistribution>,
    /// Independent random loss, in percent.
    loss_pct: Option<Pct>,
    /// Bursty loss (alternative to `loss_pct`).
    gilbert_elliott: Option<GeDoc>,
    /// Link MTU in bytes (576..=65535); default 1500.
    mtu: Option<u32>,
    /// Header bytes counted against the rate per segment; default 40 (IPv4 + TCP).
    overhead_bytes: Option<u32>,
    /// Radio promotion delay after idle.
    radio: Option<RadioDoc>,
    /// Pay one RTT for DNS when connecting to a host name; default true when there is delay.
    dns_rtt: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GeDoc {
    /// Good → bad transition probability per segment, percent.
    p_pct: Pct,
    /// Bad → good transition probability per segment, percent.
    r_pct: Pct,
    /// Loss probability in the bad state (netem's 1-h), percent; default 100.
    bad_loss_pct: Option<Pct>,
    /// Loss probability in the good state (netem's 1-k), percent; default 0.
    good_loss_pct: Option<Pct>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RadioDoc {
    /// Delay before the first byte after idle, ms.
    promotion_ms: Millis,
    /// Idle time after which the radio drops and must be promoted again, ms.
    tail_ms: Millis,
}

type FieldError = (&'static str, String);

impl ProfileDoc {
    fn resolve(self) -> Result<Profile, FieldError> {
        let name = self.name.trim().to_owned();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(("name", format!("`{name}` must be non-empty and use only letters, digits, `-`, `_`, `.`")));
        }
        if bundled(&name).is_some() {
            return Err((
                "name",
                format!("`{name}` is a bundled profile; give yours a new name and write `base: {name}`"),
            ));
        }
        let mut p = match &self.base {
            Some(base) => {
                let mut p = bundled(base)
                    .ok_or_else(|| ("base", format!("`{base}` is not a bundled profile (see `prober profiles`)")))?;
                p.name = name.clone();
                p
            }
            None => Profile::unshaped(&name),
        };
        if let Some(d) = self.description {
            p.description = d;
        }
        if let Some(r) = self.down_kbps {
            p.down = r.0;
        }
        if let Some(r) = self.up_kbps {
            p.up = r.0;
        }
        match (self.rtt_ms, self.one_way_delay_ms) {
            (Some(_), Some(_)) => {
                return Err(("one_way_delay_ms", "give either rtt_ms or one_way_delay_ms, not both".into()));
            }
            (Some(rtt), None) => p.one_way_delay = rtt.0 / 2,
            (None, Some(ow)) => p.one_way_delay = ow.0,
            (None, None) => {}
        }
        if self.jitter_ms.is_some() || self.jitter_distribution.is_some() {
            p.jitter = Jitter {
                amount: self.jitter_ms.map_or(p.jitter.amount, |j| j.0),
                distribution: self.jitter_distribution.unwrap_or(p.jitter.distribution),
            };
        }
        match (self.loss_pct, self.gilbert_elliott) {
            (Some(_), Some(_)) => {
                return Err(("gilbert_elliott", "give either loss_pct or gilbert_elliott, not both".into()));
            }
            (Some(l), None) => p.loss = if l.0 > 0.0 { Loss::Random { pct: l.0 } } else { Loss::None },
            (None, Some(ge)) => {
                p.loss = Loss::GilbertElliott(GilbertElliott {
                    p_pct: ge.p_pct.0,
                    r_pct: ge.r_pct.0,
                    bad_loss_pct: ge.bad_loss_pct.map_or(100.0, |v| v.0),
                    good_loss_pct: ge.good_loss_pct.map_or(0.0, |v| v.0),
                })
            }
            (None, None) => {}
        }
        if let Some(m) = self.mtu {
            p.mtu = m;
        }
        if let Some(o) = self.overhead_bytes {
            p.overhead_bytes = o;
        }
        if let Some(r) = self.radio {
            p.radio = Some(RadioPromotion { promotion: r.promotion_ms.0, tail: r.tail_ms.0 });
        }
        p.dns_rtt = self.dns_rtt.unwrap_or(!p.one_way_delay.is_zero());
        p.validate().map_err(|message| {
            // `validate` names the field first (`mtu: must be …`): point there and say the rest.
            ["mtu", "overhead_bytes", "down_kbps", "up_kbps", "loss_pct"]
                .into_iter()
                .find_map(|f| message.strip_prefix(f).and_then(|m| m.strip_prefix(": ")).map(|m| (f, m.to_owned())))
                .unwrap_or(("name", message))
        })?;
        Ok(p)
    }
}

// === validated scalar fields ===
// Each rejects impossible values while deserializing, so serde_yaml reports the field path and line.

/// A rate: a positive number of kbit/s or the word `unlimited`.
struct RateField(Rate);

impl<'de> Deserialize<'de> for RateField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = RateField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a positive number of kbit/s or `unlimited`")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RateField, E> {
                if v.is_finite() && v > 0.0 {
                    Ok(RateField(Rate::Kbps(v)))
                } else {
                    Err(E::custom(format_args!("must be a positive number of kbit/s (or `unlimited`), got {v}")))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RateField, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RateField, E> {
                self.visit_f64(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RateField, E> {
                if v.eq_ignore_ascii_case("unlimited") {
                    Ok(RateField(Rate::Unlimited))
                } else {
                    Err(E::custom(format_args!("must be a positive number of kbit/s or `unlimited`, got `{v}`")))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A number checked inside the deserializer, so a refusal carries the field path and line.
struct Checked<F>(F);

impl<F: Fn(f64) -> Result<f64, String>> de::Visitor<'_> for Checked<F> {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        (self.0)(v).map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        self.visit_f64(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        self.visit_f64(v as f64)
    }
}

/// A non-negative duration in milliseconds (fractions allowed).
struct Millis(Duration);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ms = d.deserialize_any(Checked(|v: f64| {
            if v.is_finite() && (0.0..=3_600_000.0).contains(&v) {
                Ok(v)
            } else {
                Err(format!("must be between 0 and 3600000 ms, got {v}"))
            }
        }))?;
        Ok(Millis(Duration::from_secs_f64(ms / 1000.0)))
    }
}

/// A percentage in 0..=100.
struct Pct(f64);

impl<'de> Deserialize<'de> for Pct {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Checked(|v: f64| {
            if v.is_finite() && (0.0..=100.0).contains(&v) {
                Ok(v)
            } else {
                Err(format!("must be a percentage between 0 and 100, got {v}"))
            }
        }))
        .map(Pct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> String {
        parse_yaml(src, "p.yaml").unwrap_err().to_string()
    }

    #[test]
    fn a_single_profile_inherits_from_its_base() {
        let ps = parse_yaml("name: kla-evening\nbase: ea-3g\ndown_kbps: 900\nloss_pct: 2\n", "p.yaml").unwrap();
        assert_eq!(ps.len(), 1);
        let p = &ps[0];
        assert_eq!(p.name, "kla-evening");
        assert_eq!(p.down, Rate::Kbps(900.0));
        assert_eq!(p.up, Rate::Kbps(768.0), "up comes from the base");
        assert_eq!(p.rtt(), Duration::from_millis(300));
        assert_eq!(p.loss, Loss::Random { pct: 2.0 });
    }

    #[test]
    fn a_list_of_profiles_with_every_field() {
        let src = "profiles:
  - name: a
    down_kbps: 100.5
    up_kbps: unlimited
    one_way_delay_ms: 25
    jitter_ms: 4
    jitter_distribution: uniform
    gilbert_elliott: { p_pct: 1, r_pct: 25, bad_loss_pct: 80 }
    mtu: 1280
    overhead_bytes: 60
    radio: { promotion_ms: 1500, tail_ms: 4000 }
    dns_rtt: false
  - name: b
    rtt_ms: 10
";
        let ps = parse_yaml(src, "p.yaml").unwrap();
        let a = &ps[0];
        assert_eq!(a.down, Rate::Kbps(100.5));
        assert_eq!(a.up, Rate::Unlimited);
        assert_eq!(a.one_way_delay, Duration::from_millis(25));
        assert_eq!(a.jitter.distribution, JitterDistribution::Uniform);
        let Loss::GilbertElliott(ge) = a.loss else { panic!("{:?}", a.loss) };
        assert_eq!((ge.p_pct, ge.r_pct, ge.bad_loss_pct, ge.good_loss_pct), (1.0, 25.0, 80.0, 0.0));
        assert_eq!(a.mss(), 1240);
        assert_eq!(a.radio.unwrap().promotion, Duration::from_millis(1500));
        assert!(!a.dns_rtt);
        assert_eq!(ps[1].one_way_delay, Duration::from_millis(5));
        assert!(ps[1].dns_rtt, "delay implies DNS costs an RTT unless told otherwise");
    }

    #[test]
    fn errors_name_the_file_line_and_field() {
        let e = err("name: x\ndown_kbps: -5\n");
        assert!(e.starts_with("p.yaml:2:12: down_kbps: must be a positive number"), "{e}");

        let e = err("name: x\nup_kbps: 10\nloss_pct: 150\n");
        assert!(e.starts_with("p.yaml:3:11: loss_pct: must be a percentage between 0 and 100, got 150"), "{e}");

        let e = err("name: x\nrtt_ms: 10\nrate_kbps: 5\n");
        assert!(e.starts_with("p.yaml:3:1: rate_kbps: ") && e.contains("unknown field `rate_kbps`"), "{e}");

        let e = err("profiles:\n  - name: a\n  - name: b\n    gilbert_elliott: {p_pct: 1, r_pct: 101}\n");
        assert!(
            e.starts_with("p.yaml:4:") && e.contains(": profiles[1].gilbert_elliott.r_pct: must be a percentage"),
            "{e}"
        );

        let e = err("name: x\nrtt_ms: -1\n");
        assert!(e.starts_with("p.yaml:2:9: rtt_ms: must be between 0"), "{e}");

        let e = err("name: x\ndown_kbps: fast\n");
        assert!(e.contains("down_kbps") && e.contains("`fast`"), "{e}");
    }

    #[test]
    fn cross_field_errors_point_at_the_offending_key() {
        let e = err("profiles:\n  - name: a\n    rtt_ms: 5\n  - name: b\n    rtt_ms: 10\n    one_way_delay_ms: 5\n");
        assert_eq!(e, "p.yaml:6:23: profiles[1].one_way_delay_ms: give either rtt_ms or one_way_delay_ms, not both");

        let e = err("name: x\nloss_pct: 1\ngilbert_elliott: {p_pct: 1, r_pct: 2}\n");
        assert!(e.starts_with("p.yaml:3:19: gilbert_elliott: give either"), "{e}");

        let e = err("name: x\nmtu: 100\n");
        assert!(e.starts_with("p.yaml:2:6: mtu: must be between 576"), "{e}");

        let e = err("name: x\nbase: ea-5g\n");
        assert!(e.starts_with("p.yaml:2:7: base: `ea-5g` is not a bundled profile"), "{e}");

        let e = err("name: ea-3g\n");
        assert!(e.contains("is a bundled profile"), "{e}");

        let e = err("profiles:\n  - name: a\n  - name: a\n");
        assert!(e.contains("defined twice"), "{e}");

        let e = err("- 1\n- 2\n");
        assert!(e.starts_with("p.yaml:1:3: expected a profile"), "{e}");
    }

    #[test]
    fn the_example_file_loads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/profiles.yaml");
        let ps = load_file(&path).unwrap();
        let names: Vec<_> = ps.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["kampala-evening", "rural-tz-edge", "vsat"]);
        assert!((ps[1].loss.mean_rate() - 0.8 / 26.0).abs() < 1e-9);
    }

    #[test]
    fn a_missing_file_says_so() {
        let e = load_file(std::path::Path::new("/nonexistent/p.yaml")).unwrap_err().to_string();
        assert!(e.starts_with("/nonexistent/p.yaml: cannot read the file"), "{e}");
    }

    proptest::proptest! {
        /// Whatever the bytes, loading returns a profile or an error; it never panics.
        #[test]
        fn loading_never_panics(src in "(name|base|down_kbps|rtt_ms|loss_pct|profiles|gilbert_elliott|p_pct|: |-|\\n|  |[0-9.]{1,6}|ea-3g|unlimited|\\{|\\}|,|\\[|\\])*") {
            let _ = parse_yaml(&src, "fuzz.yaml");
        }

        #[test]
        fn loading_arbitrary_text_never_panics(src in "\\PC*") {
            let _ = parse_yaml(&src, "fuzz.yaml");
        }
    }
}
