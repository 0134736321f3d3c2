//! Secrets by reference: `env:NAME` or `file:PATH`, never inline. Values are wrapped so they never
//! print, and the player masks them out of every excerpt.

use std::{collections::BTreeMap, fmt, path::Path};

use serde::{Deserialize, Deserializer};

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(String),
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SecretRef, D::Error> {
        let s = String::deserialize(d)?;
        SecretRef::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl SecretRef {
    pub fn parse(s: &str) -> Result<SecretRef, String> {
        if let Some(name) = s.strip_prefix("env:") {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`env:{name}` is not a valid environment variable name"));
            }
            Ok(SecretRef::Env(name.to_owned()))
        } else if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err("`file:` needs a path".into());
            }
            Ok(SecretRef::File(path.to_owned()))
        } else {
            // Never echo the value: it may be the secret itself.
            Err("secrets must be references, `env:NAME` or `file:PATH`, never inline values".into())
        }
    }

    /// Reads the value; relative file paths are relative to `base` (the journey's directory).
    pub fn resolve(&self, base: &Path) -> Result<Secret, String> {
        match self {
            SecretRef::Env(name) => std::env::var(name).map(Secret).map_err(|_| {
                format!("environment variable `{name}` is not set (export it, or point the secret at a file)")
            }),
            SecretRef::File(path) => {
                let p = base.join(path);
                std::fs::read_to_string(&p)
                    .map(|s| Secret(s.trim_end_matches(['\n', '\r']).to_owned()))
                    .map_err(|e| format!("cannot read secret file `{}`: {e}", p.display()))
            }
        }
    }
}

/// A secret value. Debug and Display print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(v: impl Into<String>) -> Secret {
        Secret(v.into())
    }

    /// The value, for building requests only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A journey's resolved secrets, by name.
#[derive(Debug, Clone, Default)]
pub struct Secrets(pub BTreeMap<String, Secret>);

impl Secrets {
    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.0.get(name)
    }

    /// Every non-trivial value, for masking.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(Secret::expose).filter(|v| v.len() >= 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_only() {
        assert_eq!(SecretRef::parse("env:DARAJA_KEY").unwrap(), SecretRef::Env("DARAJA_KEY".into()));
        assert_eq!(SecretRef::parse("file:secrets/pin").unwrap(), SecretRef::File("secrets/pin".into()));
        let e = SecretRef::parse("hunter2").unwrap_err();
        assert!(!e.contains("hunter2") && e.contains("never inline"), "{e}");
        assert!(SecretRef::parse("env:NO-DASH").is_err());
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        let e = SecretRef::Env("SURELY_NOT_SET_4711".into()).resolve(Path::new(".")).unwrap_err();
        assert!(e.contains("SURELY_NOT_SET_4711"));
    }
}
