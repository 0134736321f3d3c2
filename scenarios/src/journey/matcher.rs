//! Matching text and JSON: `exact`, `contains`, `regex`, and JSON path checks.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Deserializer, de};
use serde_json_path::JsonPath;

/// How a piece of text must look. A bare string means `exact`.
#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(String),
    Contains(String),
    Regex(Regex),
}

impl Matcher {
    pub fn matches(&self, text: &str) -> bool {
        match self {
            Matcher::Exact(s) => text.trim() == s.trim(),
            Matcher::Contains(s) => text.contains(s.as_str()),
            Matcher::Regex(r) => r.is_match(text),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Exact(s) => write!(f, "exactly {s:?}"),
            Matcher::Contains(s) => write!(f, "containing {s:?}"),
            Matcher::Regex(r) => write!(f, "matching /{}/", r.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Matcher, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Matcher;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string (exact match) or one of {exact: …}, {contains: …}, {regex: …}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Matcher, E> {
                Ok(Matcher::Exact(v.to_owned()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Matcher, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::custom("give one of exact, contains or regex"));
                };
                let value: String = map.next_value()?;
                let m = match key.as_str() {
                    "exact" => Matcher::Exact(value),
                    "contains" => Matcher::Contains(value),
                    "regex" => Matcher::Regex(
                        Regex::new(&value).map_err(|e| de::Error::custom(format_args!("invalid regex: {e}")))?,
                    ),
                    other => return Err(de::Error::unknown_field(other, &["exact", "contains", "regex"])),
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom("give only one of exact, contains or regex"));
                }
                Ok(m)
            }
        }
        d.deserialize_any(V)
    }
}

/// A check on a JSON path of a response body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonCheck {
    /// RFC 9535 JSON path, e.g. `$.status` or `$.items[0].id`.
    pub path: Path,
    /// The first match equals this value.
    pub equals: Option<serde_json::Value>,
    /// Whether the path must (true) or must not (false) match anything.
    pub exists: Option<bool>,
    /// The first match, as text, satisfies this.
    #[serde(rename = "match")]
    pub matcher: Option<Matcher>,
}

/// A compiled JSON path that remembers how it was written.
#[derive(Debug, Clone)]
pub struct Path {
    pub text: String,
    pub compiled: JsonPath,
}

impl Path {
    pub fn parse(text: &str) -> Result<Path, String> {
        JsonPath::parse(text)
            .map(|compiled| Path { text: text.to_owned(), compiled })
            .map_err(|e| format!("invalid JSON path `{text}`: {e}"))
    }

    /// The first node the path selects.
    pub fn first<'a>(&self, doc: &'a serde_json::Value) -> Option<&'a serde_json::Value> {
        self.compiled.query(doc).first()
    }
}

impl<'de> Deserialize<'de> for Path {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Path, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Path;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON path such as $.status")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Path, E> {
                Path::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl JsonCheck {
    /// `None` when the check holds, otherwise what was wrong.
    pub fn check(&self, doc: &serde_json::Value) -> Option<String> {
        let found = self.path.first(doc).cloned();
        let path = &self.path.text;
        if let Some(want) = self.exists
            && want != found.is_some()
        {
            return Some(if want { format!("{path} is missing") } else { format!("{path} is present") });
        }
        if let Some(want) = &self.equals {
            match &found {
                Some(v) if json_eq(v, want) => {}
                Some(v) => return Some(format!("{path} is {v}, expected {want}")),
                None => return Some(format!("{path} is missing, expected {want}")),
            }
        }
        if let Some(m) = &self.matcher {
            let text = found.as_ref().map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            match text {
                Some(t) if m.matches(&t) => {}
                Some(t) => return Some(format!("{path} is {t:?}, expected {m}")),
                None => return Some(format!("{path} is missing, expected {m}")),
            }
        }
        None
    }
}

/// JSON equality where numbers compare by value (1 == 1.0).
fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn m(y: &str) -> Matcher {
        serde_yaml_ng::from_str(y).unwrap()
    }

    #[test]
    fn text_matchers() {
        assert!(m("hello").matches(" hello "));
        assert!(!m("hello").matches("hello world"));
        assert!(m("{contains: world}").matches("hello world"));
        assert!(m("{regex: 'KES [0-9,.]+'}").matches("balance is KES 1,250.00"));
        let e = serde_yaml_ng::from_str::<Matcher>("{regex: '('}").unwrap_err().to_string();
        assert!(e.contains("invalid regex"), "{e}");
        let e = serde_yaml_ng::from_str::<Matcher>("{like: x}").unwrap_err().to_string();
        assert!(e.contains("unknown field `like`"), "{e}");
    }

    #[test]
    fn json_checks() {
        let doc = json!({"status": "paid", "total": 250, "items": [{"id": "unga-2kg"}]});
        let c: JsonCheck = serde_yaml_ng::from_str("{path: $.status, equals: paid}").unwrap();
        assert_eq!(c.check(&doc), None);
        let c: JsonCheck = serde_yaml_ng::from_str("{path: $.total, equals: 250.0}").unwrap();
        assert_eq!(c.check(&doc), None);
        let c: JsonCheck = serde_yaml_ng::from_str("{path: '$.items[0].id', match: {contains: unga}}").unwrap();
        assert_eq!(c.check(&doc), None);
        let c: JsonCheck = serde_yaml_ng::from_str("{path: $.receipt, exists: true}").unwrap();
        assert_eq!(c.check(&doc).unwrap(), "$.receipt is missing");
        let c: JsonCheck = serde_yaml_ng::from_str("{path: $.status, equals: pending}").unwrap();
        assert!(c.check(&doc).unwrap().contains("expected \"pending\""));
        assert!(serde_yaml_ng::from_str::<JsonCheck>("{path: 'status['}").is_err());
    }
}
