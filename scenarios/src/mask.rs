//! Keeping secrets and phone numbers out of everything the player outputs.

use std::sync::LazyLock;

use regex::Regex;

/// Phone numbers as they appear in East African payloads: E.164 with or without `+` (254…, 255…,
/// 256…, 250…, 257…, 211…, 233…, 265…), and local 07xx/01xx numbers.
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\+|%2B|\b)(?:254|255|256|250|257|211|233|265)\d{9}\b|\b0[17]\d{8}\b").expect("valid regex")
});

/// JSON or form fields whose values are secret by their name, whatever the value.
static SECRET_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)("(?:access_token|refresh_token|token|password|passkey|pin|secret|client_secret|consumer_secret|authorization)"\s*:\s*")[^"]*(")|\b((?:access_token|password|passkey|pin|secret|client_secret|consumer_secret)=)[^&\s]*"#,
    )
    .expect("valid regex")
});

/// Masks known secret values and every phone number in `text`.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    secrets: Vec<String>,
}

impl Masker {
    /// A masker that hides `secrets` (and any value longer than 2 characters given later).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Masker {
        let mut m = Masker::default();
        for s in secrets {
            m.add_secret(s);
        }
        m
    }

    /// Hides `value` from now on (e.g. an OAuth token obtained during the run).
    pub fn add_secret(&mut self, value: &str) {
        if value.len() >= 3 && !self.secrets.iter().any(|s| s == value) {
            self.secrets.push(value.to_owned());
            // Longest first, so a secret that contains another is hidden whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    pub fn mask(&self, text: &str) -> String {
        // Phones first: a short secret (a PIN) inside a phone number would otherwise break the
        // number's pattern and leave the rest of it visible.
        let mut out = mask_phones(&mask_secret_fields(text));
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

/// Hides the values of fields named like secrets (`"access_token": "…"`, `pin=…`).
pub fn mask_secret_fields(text: &str) -> String {
    SECRET_FIELD
        .replace_all(text, |c: &regex::Captures<'_>| match (c.get(1), c.get(2), c.get(3)) {
            (Some(open), Some(close), _) => format!("{}***{}", open.as_str(), close.as_str()),
            (_, _, Some(key)) => format!("{}***", key.as_str()),
            _ => c[0].to_owned(),
        })
        .into_owned()
}

/// Replaces the middle of every phone number: `254712345678` → `2547*****678`.
pub fn mask_phones(text: &str) -> String {
    PHONE
        .replace_all(text, |c: &regex::Captures<'_>| {
            let m = &c[0];
            let prefix = if m.starts_with('+') {
                1
            } else if m.starts_with("%2B") {
                3
            } else {
                0
            };
            let keep_head = prefix + 4;
            let keep_tail = 3;
            let stars = m.len().saturating_sub(keep_head + keep_tail);
            format!("{}{}{}", &m[..keep_head], "*".repeat(stars), &m[m.len() - keep_tail..])
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_masked_in_every_shape() {
        assert_eq!(mask_phones("to 254712345678."), "to 2547*****678.");
        assert_eq!(mask_phones("+254712345678"), "+2547*****678");
        assert_eq!(mask_phones("phoneNumber=%2B256772123456"), "phoneNumber=%2B2567*****456");
        assert_eq!(mask_phones("call 0712345678 now"), "call 0712***678 now");
        assert_eq!(mask_phones(r#""PhoneNumber":254708920430}"#), r#""PhoneNumber":2547*****430}"#);
        // Not phone numbers: timestamps, amounts, shortcodes.
        assert_eq!(mask_phones("20160216165627 174379 KES 1250"), "20160216165627 174379 KES 1250");
    }

    #[test]
    fn fields_named_like_secrets_are_masked_before_their_values_are_known() {
        assert_eq!(
            mask_secret_fields(r#"{"access_token":"c7DHOUV6","expires_in":"3599"}"#),
            r#"{"access_token":"***","expires_in":"3599"}"#
        );
        assert_eq!(mask_secret_fields(r#"{"Password": "MTc0"}"#), r#"{"Password": "***"}"#);
        assert_eq!(mask_secret_fields("user=a&pin=1234&x=1"), "user=a&pin=***&x=1");
        assert_eq!(mask_secret_fields("text=2*0712*100*1234"), "text=2*0712*100*1234", "inputs are masked by value");
    }

    #[test]
    fn secrets_are_masked_longest_first() {
        let mut m = Masker::new(["s3cret", "s3cret-key-long"]);
        m.add_secret("ab"); // too short to mask without destroying the text
        assert_eq!(m.mask("k=s3cret-key-long p=s3cret ab"), "k=*** p=*** ab");
        let pin = Masker::new(["1234"]);
        assert_eq!(pin.mask("text=2*0712345678*100*1234"), "text=2*0712***678*100****");
    }
}
