//! Phone-number masking for logs, screens and stored records: a phone number never reaches a log
//! line whole.
//!
//! The sandbox depends on no crate of ours, so this is a copy of the prober's rule
//! (`scenarios/src/mask.rs`). The rule and its output shape are written down once, in
//! `docs/security.md`; both copies are tested against the table of shapes there.

use std::sync::LazyLock;

use regex::{Captures, Regex};

/// The fleet's countries (Kenya, Tanzania, Uganda) and their neighbours and partners.
const COUNTRY_CODES: [&str; 8] = ["254", "255", "256", "250", "257", "211", "233", "265"];

/// One optional separator: a space, `-`, `.`, or a URL-encoded space (`+`, `%20`).
const SEP: &str = r"(?:[ .+\-]|%20)?";

/// International (`+`/`%2B`/`00`, country code, `(0)`, 8–9 digits) or local (`0`, 9 digits
/// starting 1, 6 or 7) numbers.
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    let cc = COUNTRY_CODES.join("|");
    Regex::new(&format!(
        r"(?:(?P<intl>\+|%2[Bb]|00)?(?P<cc>{cc}){SEP}(?:\(0\){SEP})?(?P<nsn>\d(?:{SEP}\d){{7,8}}))|(?:(?P<trunk>\(0\)|0){SEP}(?P<lnsn>[167](?:{SEP}\d){{8}}))"
    ))
    .expect("valid regex")
});

/// Masks one phone value: `0712345678` → `0***678`, `254712345678` → `254***678`,
/// `+254 711 223 344` → `+254***344`. A value that is not a phone number of the rule shows only
/// `***` and, above 7 characters, its last 3: `***678`.
pub fn mask_phone(phone: &str) -> String {
    let masked = mask_phones(phone);
    if masked != phone {
        return masked;
    }
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 7 {
        return "***".to_owned();
    }
    format!("***{}", chars[chars.len() - 3..].iter().collect::<String>())
}

/// Masks every phone number in `text` (a request path, a message), keeping the prefix as written
/// and the last 3 digits.
pub fn mask_phones(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut from) = (0, 0);
    while let Some(c) = PHONE.captures_at(text, from) {
        let m = c.get(0).expect("group 0 is the match");
        let digit = |s: Option<char>| s.is_some_and(|ch| ch.is_ascii_digit());
        if digit(text[..m.start()].chars().next_back()) || digit(text[m.end()..].chars().next()) {
            from = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        out.push_str(&text[copied..m.start()]);
        out.push_str(&shape(&c));
        copied = m.end();
        from = m.end();
    }
    out.push_str(&text[copied..]);
    out
}

/// The prefix and country code as written (or the trunk `0`), `***`, the last 3 digits.
fn shape(c: &Captures<'_>) -> String {
    let nsn = c.name("nsn").or_else(|| c.name("lnsn")).map_or("", |m| m.as_str());
    let digits: Vec<char> = nsn.chars().filter(char::is_ascii_digit).collect();
    let last: String = digits[digits.len().saturating_sub(3)..].iter().collect();
    let head = match c.name("trunk") {
        Some(_) => "0".to_owned(),
        None => format!("{}{}", c.name("intl").map_or("", |m| m.as_str()), c.name("cc").map_or("", |m| m.as_str())),
    };
    format!("{head}***{last}")
}

#[cfg(test)]
mod tests {
    use super::{mask_phone, mask_phones};

    /// The table of shapes in `docs/security.md` (the prober's copy reads it too).
    #[test]
    fn every_shape_of_the_documented_table() {
        let doc = include_str!("../../docs/security.md");
        let (_, rest) = doc.split_once("<!-- phone-shapes: begin -->").expect("start marker");
        let (table, _) = rest.split_once("<!-- phone-shapes: end -->").expect("end marker");
        let mut rows = 0;
        for line in table.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.split('|').map(|c| c.trim().trim_matches('`')).collect();
            assert_eq!(mask_phones(cells[1]), cells[2], "{}", cells[1]);
            rows += 1;
        }
        assert!(rows >= 30, "{rows} rows");
    }

    #[test]
    fn one_value() {
        assert_eq!(mask_phone("0712345678"), "0***678");
        assert_eq!(mask_phone("254712345678"), "254***678");
        assert_eq!(mask_phone("+254711223344"), "+254***344");
        assert_eq!(mask_phone("98765432101"), "***101", "not a number of the rule");
        assert_eq!(mask_phone("1234567"), "***");
        assert_eq!(mask_phone(""), "***");
    }
}
