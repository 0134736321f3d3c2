//! Secrets by reference: a file names `env:NAME` or `file:PATH`, never the value. The value is
//! read when the file is loaded (so a missing secret stops the process before anything is sent),
//! held in a [`Secret`] that prints as `***`, and compared in constant time.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SecretRef {
    /// An environment variable.
    Env(String),
    /// A file; a relative path is relative to the directory of the file that names it.
    File(PathBuf),
}

impl SecretRef {
    /// `env:NAME` or `file:PATH`. The message never repeats an inline value: it may be the secret.
    pub fn parse(text: &str) -> Result<SecretRef, String> {
        if let Some(name) = text.strip_prefix("env:") {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`env:{name}` is not a valid environment variable name"));
            }
            Ok(SecretRef::Env(name.to_owned()))
        } else if let Some(path) = text.strip_prefix("file:") {
            if path.is_empty() {
                return Err("`file:` needs a path".into());
            }
            Ok(SecretRef::File(PathBuf::from(path)))
        } else {
            Err("give secrets by reference, `env:NAME` or `file:PATH`, never inline".into())
        }
    }

    /// Reads the value from the process environment or the file (relative to `base`).
    pub fn resolve(&self, base: &Path) -> Result<Secret, String> {
        self.resolve_with(base, &|name| std::env::var(name).ok())
    }

    /// Like [`SecretRef::resolve`] with `env` standing in for the environment (tests, tools).
    /// Surrounding whitespace (a file's trailing newline) is removed; an empty value is an error.
    pub fn resolve_with(&self, base: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Secret, String> {
        let value = match self {
            SecretRef::Env(name) => env(name).ok_or_else(|| {
                format!("environment variable `{name}` is not set (export it, or point the secret at a file)")
            })?,
            SecretRef::File(path) => {
                let p = base.join(path);
                std::fs::read_to_string(&p).map_err(|e| format!("cannot read secret file `{}`: {e}", p.display()))?
            }
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(format!("`{self}` is empty"));
        }
        Ok(Secret(value.to_owned()))
    }
}

/// The reference itself is not secret: `env:NAME`, `file:PATH`.
impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SecretRef, D::Error> {
        let s = String::deserialize(d)?;
        SecretRef::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A secret value. Debug and Display print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for building a request or comparing; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with a presented value without stopping at the first differing byte, so timing
    /// does not tell how much of a guess was right.
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        let mut diff = u8::from(a.len() != b.len());
        for i in 0..a.len().max(b.len()) {
            diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
        }
        diff == 0
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_inline_values_are_refused_without_echo() {
        assert_eq!(SecretRef::parse("env:DARAJA_KEY"), Ok(SecretRef::Env("DARAJA_KEY".into())));
        assert_eq!(SecretRef::parse("file:secrets/pin"), Ok(SecretRef::File("secrets/pin".into())));
        let e = SecretRef::parse("hunter2").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(SecretRef::parse("env:NO-DASH").is_err());
        assert!(SecretRef::parse("file:").is_err());
        assert_eq!(SecretRef::parse("env:A_1").unwrap().to_string(), "env:A_1");
    }

    #[test]
    fn resolution_trims_and_refuses_empty_and_missing() {
        // tempfile directly: testkit itself depends on conf.
        let tmp = tempfile::Builder::new().prefix("savanna-conf-secret-").tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("pin"), "1234\n").unwrap();
        std::fs::write(dir.join("empty"), "\n").unwrap();
        let env = |n: &str| (n == "TOKEN").then(|| "  tok-0123456789abcdef ".to_owned());
        let file = |p: &str| SecretRef::File(p.into());
        assert_eq!(file("pin").resolve_with(dir, &env).unwrap().expose(), "1234");
        assert!(file("empty").resolve_with(dir, &env).unwrap_err().contains("is empty"));
        assert!(file("nope").resolve_with(dir, &env).unwrap_err().contains("cannot read secret file"));
        let t = SecretRef::Env("TOKEN".into()).resolve_with(dir, &env).unwrap();
        assert_eq!(t.expose(), "tok-0123456789abcdef");
        let e = SecretRef::Env("UNSET_4711".into()).resolve_with(dir, &env).unwrap_err();
        assert!(e.contains("`UNSET_4711` is not set"), "{e}");
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("tok-0123456789abcdef");
        assert_eq!(format!("{s} {s:?} {:?}", Some(&s)), "*** *** Some(***)");
    }

    #[test]
    fn matching() {
        let s = Secret::new("tok-0123456789abcdef");
        assert!(s.matches("tok-0123456789abcdef"));
        assert!(!s.matches("tok-0123456789abcdeg"));
        assert!(!s.matches("tok-0123456789abcde"));
        assert!(!s.matches(""));
    }
}
