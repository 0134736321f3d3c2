//! Keeping secrets and phone numbers out of everything the player outputs.
//!
//! Everything a run shows (excerpts, failure messages, labels) goes through the run's [`Masker`]:
//! - fields named like secrets (`"access_token": "…"`, `pin=…`) and credential header lines
//!   (`authorization: …`), whatever their value;
//! - secrets by value: the journey's secrets, tokens obtained during the run, credential header
//!   values and token-named variables;
//! - phone numbers: the journey's own numbers (MSISDN pool, configured phones) in any shape,
//!   bare subscriber digits included, and any number of the fleet's countries ([`mask_phones`]).
//!
//! Text is masked whole and only then cut ([`Masker::excerpt`], [`Masker::start`]); a cut that
//! ends in the beginning of a secret, or in a run of digits, hides that end too.
//!
//! The phone rule and its output shape are written down once, in `docs/security.md`,
//! with the table of shapes both this module and the sandbox's copy are tested against.

use std::{
    fmt,
    sync::{LazyLock, OnceLock},
};

use regex::{Captures, Regex};

/// Country codes whose numbers are masked wherever they appear: the fleet's (Kenya, Tanzania,
/// Uganda) and their neighbours and partners (Rwanda, Burundi, South Sudan, Ghana, Malawi).
pub const COUNTRY_CODES: [&str; 8] = ["254", "255", "256", "250", "257", "211", "233", "265"];

/// Header names whose values are credentials, lower case.
pub const CREDENTIAL_HEADERS: [&str; 10] = [
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "apikey",
    "ocp-apim-subscription-key",
    "cookie",
    "set-cookie",
    "x-auth-token",
    "x-access-token",
];

/// At most one separator between the parts and digits of a number: a space, `-`, `.`, or a
/// URL-encoded space (`+`, `%20`).
const SEP: &str = r"(?:[ .+\-]|%20)?";

/// The shortest beginning of a secret hidden at a cut: a cut may show at most the first character
/// of a secret (hiding that too would hide a text's last character whenever it begins a secret).
pub const MIN_PREFIX: usize = 2;

/// Secrets at least this long are masked before phone numbers (so a digit run inside one cannot
/// break it apart); shorter ones (PINs) after them.
const LONG_SECRET: usize = 8;

/// Any number of the fleet's countries: an optional international prefix (`+`, `%2B`, `00`), a
/// country code, an optional `(0)`, and an 8- or 9-digit national number; or a local number: a
/// trunk `0` (or `(0)`) and 9 digits starting with 1, 6 or 7.
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    let cc = COUNTRY_CODES.join("|");
    Regex::new(&format!(
        r"(?:(?P<intl>\+|%2[Bb]|00)?(?P<cc>{cc}){SEP}(?:\(0\){SEP})?(?P<nsn>\d(?:{SEP}\d){{7,8}}))|(?:(?P<trunk>\(0\)|0){SEP}(?P<lnsn>[167](?:{SEP}\d){{8}}))"
    ))
    .expect("valid regex")
});

/// Words that make a field's value secret whatever it is (a session id is a credential: the
/// M-Pesa OpenAPI's `output_SessionID` opens payments for an hour).
const SECRET_WORDS: &str =
    r"[\w.\-]*(?:token|password|passwd|passkey|secret|api_?key|authorization|output_session_?id)|pin";

/// JSON or form fields whose values are secret by their name, and credential header lines.
static SECRET_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    let headers = CREDENTIAL_HEADERS.join("|");
    Regex::new(&format!(
        r#"(?im)(?P<json>"(?:{SECRET_WORDS})"\s*:\s*")(?:[^"\\]|\\.)*(?P<close>"|$)|\b(?P<form>(?:{SECRET_WORDS})=)[^&\s"]*|^(?P<header>(?:{headers}):[ \t]*)[^\r\n]*"#
    ))
    .expect("valid regex")
});

/// Masks known secret values and every phone number in `text`.
#[derive(Clone, Default)]
pub struct Masker {
    /// Longest first, so a secret that contains another is hidden whole.
    secrets: Vec<String>,
    /// National numbers (digits) of the run's own phone numbers.
    numbers: Vec<String>,
    /// Those numbers in every shape; built when first needed after a number is added.
    known: OnceLock<Regex>,
}

/// Never prints what it hides.
impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Masker({} secrets, {} numbers)", self.secrets.len(), self.numbers.len())
    }
}

impl Masker {
    /// A masker that hides `secrets` (each of at least 3 characters).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Masker {
        let mut m = Masker::default();
        for s in secrets {
            m.add_secret(s);
        }
        m
    }

    /// Hides `value` from now on (e.g. an OAuth token obtained during the run). Values shorter
    /// than 3 characters are ignored: hiding them would destroy the text.
    pub fn add_secret(&mut self, value: &str) {
        if value.len() >= 3 && !self.secrets.iter().any(|s| s == value) {
            self.secrets.push(value.to_owned());
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Hides the phone number `phone` (any shape: `+254712345678`, `0712 345 678`, …) from now on
    /// in every shape, its bare national digits (`712345678`) included. Fewer than 7 digits are
    /// ignored.
    pub fn add_number(&mut self, phone: &str) {
        let Some(nsn) = national_number(phone) else { return };
        if !self.numbers.contains(&nsn) {
            self.numbers.push(nsn);
            self.numbers.sort_by_key(|n| std::cmp::Reverse(n.len()));
            self.known = OnceLock::new();
        }
    }

    /// `text` with secrets and phone numbers hidden.
    pub fn mask(&self, text: &str) -> String {
        let mut out = mask_secret_fields(text);
        // Long secrets before phones, so a digit run inside a secret cannot break it apart; short
        // ones (a PIN) after, so they cannot break a phone number apart.
        out = self.replace_secrets(out, |s| s.len() >= LONG_SECRET);
        if !self.numbers.is_empty() {
            out = replace_numbers(self.known.get_or_init(|| known_numbers(&self.numbers)), &out);
        }
        out = mask_phones(&out);
        self.replace_secrets(out, |s| s.len() < LONG_SECRET)
    }

    /// An excerpt for a trace: `text` masked, then cut to [`crate::trace::EXCERPT_LIMIT`]
    /// characters with `… (N bytes in all)`.
    pub fn excerpt(&self, text: &str) -> String {
        self.cut(text, crate::trace::EXCERPT_LIMIT, true)
    }

    /// The first `chars` characters of `text` masked, for a message (`body starts "…"`).
    pub fn start(&self, text: &str, chars: usize) -> String {
        self.cut(text, chars, false)
    }

    /// Masks enough of `text` to fill `limit` characters (all of it if needed: masking only
    /// shortens what it hides), cuts there, and hides what the cut left of a secret or a number.
    /// An end that begins a secret is hidden even when nothing was cut here: the text may have
    /// been cut before it reached the prober (a target that echoes the first bytes of a request).
    fn cut(&self, text: &str, limit: usize, say_size: bool) -> String {
        let longest = self.secrets.first().map_or(0, |s| s.chars().count());
        let mut window = (limit * 2).max(limit + longest + 64);
        loop {
            let (head, whole) = match text.char_indices().nth(window) {
                Some((i, _)) => (&text[..i], false),
                None => (text, true),
            };
            let masked = self.mask(head);
            match masked.char_indices().nth(limit) {
                Some((i, _)) => {
                    let kept = self.mask_cut_end(&masked[..i], true);
                    return if say_size { format!("{kept}… ({} bytes in all)", text.len()) } else { kept };
                }
                None if whole => return self.mask_cut_end(&masked, false),
                // The window was cut and masking shrank it below the limit: take more.
                None => window *= 2,
            }
        }
    }

    /// `text` ends at a cut: an end that is the beginning of a secret ([`MIN_PREFIX`] characters
    /// or more), or with `digits` a run of at least 4 digits (which may be the beginning of a
    /// number), becomes `***`.
    fn mask_cut_end(&self, text: &str, digits: bool) -> String {
        for s in &self.secrets {
            let prefixes = s.char_indices().map(|(i, _)| i).skip(MIN_PREFIX).chain([s.len()]);
            let mut longest = None;
            for end in prefixes {
                if text.ends_with(&s[..end]) {
                    longest = Some(end);
                }
            }
            if let Some(end) = longest {
                return format!("{}***", &text[..text.len() - end]);
            }
        }
        if !digits {
            return text.to_owned();
        }
        let run = text.len() - text.trim_end_matches(|c: char| c.is_ascii_digit() || " .-+()".contains(c)).len();
        let tail = text[text.len() - run..].trim_start_matches([' ', '.', '-', ')']);
        if tail.chars().filter(char::is_ascii_digit).count() >= 4 {
            return format!("{}***", &text[..text.len() - tail.len()]);
        }
        text.to_owned()
    }

    fn replace_secrets(&self, mut out: String, which: impl Fn(&str) -> bool) -> String {
        for s in self.secrets.iter().filter(|s| which(s)) {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

/// Hides the values of fields named like secrets (`"access_token": "…"`, `pin=…`) and of
/// credential header lines (`authorization: …`, as an error page that echoes the request shows
/// them).
pub fn mask_secret_fields(text: &str) -> String {
    SECRET_FIELD
        .replace_all(text, |c: &Captures<'_>| {
            if let Some(open) = c.name("json") {
                format!("{}***{}", open.as_str(), c.name("close").map_or("", |m| m.as_str()))
            } else if let Some(key) = c.name("form").or_else(|| c.name("header")) {
                format!("{}***", key.as_str())
            } else {
                c[0].to_owned()
            }
        })
        .into_owned()
}

/// Masks every phone number of the fleet's countries, in any of its shapes, keeping the prefix
/// as written and the last 3 digits: `+254 712 345 678` → `+254***678`, `sub_254712345678` →
/// `sub_254***678`, `%2B254712345678` → `%2B254***678`, `0712-345-678` → `0***678`.
pub fn mask_phones(text: &str) -> String {
    replace_numbers(&PHONE, text)
}

/// Replaces every match of `re` that no digit touches on either side (`\b` would miss
/// `sub_254…` and `id254…x`) by its masked shape.
fn replace_numbers(re: &Regex, text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut from) = (0, 0);
    while let Some(c) = re.captures_at(text, from) {
        let m = c.get(0).expect("group 0 is the match");
        let touches = |s: Option<char>| s.is_some_and(|ch| ch.is_ascii_digit());
        if m.is_empty() || touches(text[..m.start()].chars().next_back()) || touches(text[m.end()..].chars().next()) {
            // Not a number of its own; it may still start further on.
            from = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8);
            if from > text.len() {
                break;
            }
            continue;
        }
        out.push_str(&text[copied..m.start()]);
        out.push_str(&masked_shape(&c));
        copied = m.end();
        from = m.end();
    }
    out.push_str(&text[copied..]);
    out
}

/// The one output shape: the international prefix and country code as written (or the trunk
/// `0`), `***`, the last 3 digits.
fn masked_shape(c: &Captures<'_>) -> String {
    let nsn = c.name("nsn").or_else(|| c.name("lnsn")).map_or("", |m| m.as_str());
    let digits: Vec<char> = nsn.chars().filter(char::is_ascii_digit).collect();
    let last: String = digits[digits.len().saturating_sub(3)..].iter().collect();
    let head = match (c.name("trunk"), c.name("cc")) {
        (Some(_), _) => "0".to_owned(),
        (None, cc) => format!("{}{}", c.name("intl").map_or("", |m| m.as_str()), cc.map_or("", |m| m.as_str())),
    };
    format!("{head}***{last}")
}

/// The national number of `phone` (digits only): without its country code when that is one of
/// [`COUNTRY_CODES`], without the trunk `0` of a 10-digit local number, else all its digits.
/// `None` below 7 digits.
fn national_number(phone: &str) -> Option<String> {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    let digits = match digits.strip_prefix("00") {
        Some(rest) if phone.trim_start().starts_with("00") => rest.to_owned(),
        _ => digits,
    };
    let cc = COUNTRY_CODES.iter().find(|cc| digits.starts_with(**cc) && (11..=12).contains(&digits.len()));
    let nsn = match (cc, digits.strip_prefix('0')) {
        (Some(cc), _) => digits[cc.len()..].to_owned(),
        (None, Some(local)) if digits.len() == 10 => local.to_owned(),
        _ => digits,
    };
    (nsn.len() >= 7).then_some(nsn)
}

/// A regex for the given national numbers in every shape: with or without an international
/// prefix and a country code, with a trunk `0` or `(0)`, or bare; any separators between digits.
fn known_numbers(numbers: &[String]) -> Regex {
    let cc = COUNTRY_CODES.join("|");
    let alternatives: Vec<String> =
        numbers.iter().map(|n| n.chars().map(String::from).collect::<Vec<_>>().join(SEP)).collect();
    Regex::new(&format!(
        r"(?:(?P<intl>\+|%2[Bb]|00)?(?:(?P<cc>{cc}){SEP}(?:\(0\){SEP})?)?|(?P<trunk>\(0\)|0){SEP})(?P<nsn>{})",
        alternatives.join("|")
    ))
    .expect("digits and separators always make a valid regex")
}

#[cfg(test)]
mod tests;
