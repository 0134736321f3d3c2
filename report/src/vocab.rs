//! The fleet's vocabulary: how a run can end, which endings are good, and what identifiers and
//! names may look like. The prober checks its config with these rules, the aggregator its config
//! and every report, so an identity the aggregator accepts is one whose reports decode, and the
//! other way round. The taxonomy is described in `docs/outcomes.md`.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Longest identifier or name, in bytes.
pub const MAX_LABEL: usize = 128;

/// How a step (or a journey) ended. `Ok` and `Expected` are good; everything else is a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// The service answered, but not what the journey expects.
    AssertionFailed,
    /// A deadline passed (step, hop, session, journey).
    Timeout,
    /// DNS, connect, reset, or a broken emulated link.
    NetworkError,
    /// The TLS handshake failed (certificate, protocol).
    TlsError,
    /// The gateway or server failed: HTTP 5xx, a malformed USSD reply, a Daraja system error.
    GatewayError,
    /// The service worked and said no: M-Pesa ResultCode 1 (insufficient funds), 2001, ...
    BusinessError,
    /// An outcome the journey declared acceptable (e.g. 1037 with no human at the phone).
    Expected,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Ok,
        Outcome::AssertionFailed,
        Outcome::Timeout,
        Outcome::NetworkError,
        Outcome::TlsError,
        Outcome::GatewayError,
        Outcome::BusinessError,
        Outcome::Expected,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::AssertionFailed => "assertion_failed",
            Outcome::Timeout => "timeout",
            Outcome::NetworkError => "network_error",
            Outcome::TlsError => "tls_error",
            Outcome::GatewayError => "gateway_error",
            Outcome::BusinessError => "business_error",
            Outcome::Expected => "expected",
        }
    }

    /// Whether a run that ended so counts as good (availability SLIs, failure counts, exit codes).
    pub const fn is_good(self) -> bool {
        matches!(self, Outcome::Ok | Outcome::Expected)
    }

    /// The outcome called `name`, if it is one.
    pub fn parse(name: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = String;

    fn from_str(s: &str) -> Result<Outcome, String> {
        Outcome::parse(s)
            .ok_or_else(|| format!("`{}` is not an outcome; use one of {}", s.escape_default(), OUTCOMES.join(", ")))
    }
}

/// The outcome names, in [`Outcome::ALL`]'s order.
pub const OUTCOMES: [&str; 8] = {
    let mut names = [""; 8];
    let mut i = 0;
    while i < 8 {
        names[i] = Outcome::ALL[i].as_str();
        i += 1;
    }
    names
};

/// Whether the outcome called `name` is good; an unknown name is not.
pub fn is_good(name: &str) -> bool {
    Outcome::parse(name).is_some_and(Outcome::is_good)
}

/// The good outcomes as a regex alternation (`ok|expected`), for PromQL matchers.
pub fn good_outcomes_regex() -> String {
    Outcome::ALL.iter().filter(|o| o.is_good()).map(|o| o.as_str()).collect::<Vec<_>>().join("|")
}

/// Identifiers — prober, region, profile, run ids, label names: 1 to [`MAX_LABEL`] bytes of
/// letters, digits, `-`, `_`, `.`, `:` (what a Prometheus label value and a file name can hold
/// without quoting). The message says what is wrong, never more of the value than it shows.
pub fn check_label(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("must not be empty".into());
    }
    if v.len() > MAX_LABEL {
        return Err(format!("longer than {MAX_LABEL} bytes"));
    }
    if !v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)) {
        return Err(format!("`{}` may use only letters, digits, `-`, `_`, `.`, `:`", v.escape_default()));
    }
    Ok(())
}

/// Names — journeys, steps, versions: 1 to [`MAX_LABEL`] bytes of printable text (spaces
/// allowed), no quotes or backslashes.
pub fn check_name(v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > MAX_LABEL {
        return Err(format!("must be 1 to {MAX_LABEL} bytes"));
    }
    if v.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
        return Err("must not contain control characters, quotes or backslashes".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_only_ok_and_expected_are_good() {
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(o));
            assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{o}\""));
            assert_eq!(is_good(o.as_str()), o.is_good());
        }
        let good: Vec<_> = Outcome::ALL.into_iter().filter(|o| o.is_good()).collect();
        assert_eq!(good, [Outcome::Ok, Outcome::Expected]);
        assert_eq!(good_outcomes_regex(), "ok|expected");
        assert_eq!(OUTCOMES[1], "assertion_failed");
        assert!(!is_good("pwned"));
        let e = "pwned".parse::<Outcome>().unwrap_err();
        assert!(e.contains("use one of ok, assertion_failed,"), "{e}");
    }

    #[test]
    fn labels_and_names() {
        assert!(check_label("nbo-1").is_ok());
        assert!(check_label("kla.edge:2").is_ok());
        assert!(check_label("nairobi west").unwrap_err().contains("may use only"));
        assert!(check_label("").unwrap_err().contains("empty"));
        assert!(check_label(&"a".repeat(MAX_LABEL + 1)).unwrap_err().contains("longer than 128"));
        assert!(check_name("checkout mpesa").is_ok());
        assert!(check_name("a\"b").is_err());
        assert!(check_name(&"a".repeat(MAX_LABEL + 1)).is_err());
    }
}
