//! What every emulated provider reads from a request's headers: `Authorization: Bearer <token>`,
//! `Authorization: Basic base64(user:secret)`, and how an outcome table keyed by the phone
//! number's last two digits is read. One home, so each emulation only decides what to answer.

use axum::http::{HeaderMap, header};
use base64::Engine as _;

/// The token of `Authorization: Bearer <token>` (scheme in any case), if there is one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let (scheme, token) = authorization(headers)?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.to_owned()).filter(|t| !t.is_empty())
}

/// The user and secret of `Authorization: Basic base64(user:secret)`, if it is well formed.
pub(crate) fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let (scheme, encoded) = authorization(headers)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, secret) = decoded.split_once(':')?;
    Some((user.to_owned(), secret.to_owned()))
}

fn authorization(headers: &HeaderMap) -> Option<(&str, &str)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    Some((scheme, rest.trim()))
}

/// The row of `table` for a phone number's last two digits (any format: only digits count), or
/// `other`.
pub(crate) fn by_suffix<T: Copy>(table: &[(&str, T)], phone: &str, other: T) -> T {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let suffix: String = digits[digits.len().saturating_sub(2)..].iter().collect();
    table.iter().find(|(s, _)| *s == suffix).map_or(other, |(_, o)| *o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn credentials_are_read_whatever_the_case_and_spacing() {
        assert_eq!(bearer(&with("Bearer abc")).as_deref(), Some("abc"));
        assert_eq!(bearer(&with("  bearer   abc ")).as_deref(), Some("abc"));
        assert_eq!(bearer(&with("Basic abc")), None);
        assert_eq!(bearer(&with("Bearer")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
        assert_eq!(basic(&with("Basic dXNlcjpwYTpzcw==")), Some(("user".into(), "pa:ss".into())));
        assert_eq!(basic(&with("basic dXNlcjpwYTpzcw==")).map(|b| b.0), Some("user".into()));
        assert_eq!(basic(&with("Basic !!!")), None);
        assert_eq!(basic(&with("Basic dXNlcg==")), None, "no colon");
        assert_eq!(basic(&with("Bearer dXNlcjpwYTpzcw==")), None);
    }

    #[test]
    fn the_last_two_digits_pick_the_row() {
        let table = [("00", 'a'), ("01", 'b')];
        assert_eq!(by_suffix(&table, "+254 700 000 101", 'z'), 'b');
        assert_eq!(by_suffix(&table, "254700000100", 'z'), 'a');
        assert_eq!(by_suffix(&table, "254700000199", 'z'), 'z');
        assert_eq!(by_suffix(&table, "1", 'z'), 'z');
        assert_eq!(by_suffix(&table, "", 'z'), 'z');
    }
}
