//! Byte sizes: `1048576`, `512KiB`, `64 MiB`, `1GiB`, `10MB`, `1.5GB` (bytesize's grammar: `KiB`,
//! `MiB`, `GiB`, `TiB` are powers of 1024; `KB`, `MB`, `GB`, `TB` powers of 1000; a bare number is
//! bytes).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Parses a size in bytes.
pub fn parse(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    if s.starts_with('-') {
        return Err(format!("`{s}`: a size is not negative"));
    }
    s.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| format!("`{s}` is not a size (write e.g. 1048576, 512KiB, 64MiB, 1GiB, 10MB)"))
}

/// A size field, in bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Size(pub u64);

impl Size {
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, n) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if b >= n && b.is_multiple_of(n) {
                return write!(f, "{}{unit}", b / n);
            }
        }
        write!(f, "{b}")
    }
}

impl fmt::Debug for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Size({self})")
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 1048576, 64MiB or 1GiB")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                parse(v).map(Size).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v).map(Size).map_err(|_| E::custom(format!("`{v}`: a size is not negative")))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form the two size parsers this one replaced took.
    #[test]
    fn every_form_the_old_parsers_took() {
        for (text, want) in [
            ("1048576", 1_048_576),
            ("512KiB", 512 << 10),
            ("64MiB", 64 << 20),
            ("1GiB", 1 << 30),
            ("10MB", 10_000_000),
            ("1KB", 1_000),
            ("1GB", 1_000_000_000),
            ("100B", 100),
            ("64 MiB", 64 << 20),
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refusals() {
        assert!(parse("-1MiB").unwrap_err().contains("not negative"));
        assert!(parse("lots").unwrap_err().contains("not a size"));
        assert!(serde_yaml_ng::from_str::<Size>("-5").unwrap_err().to_string().contains("not negative"));
    }

    #[test]
    fn displays_in_whole_binary_units() {
        assert_eq!(Size(64 << 20).to_string(), "64MiB");
        assert_eq!(Size(1_000_000).to_string(), "1000000");
        assert_eq!(parse(&Size(3 << 30).to_string()), Ok(3 << 30));
    }
}
