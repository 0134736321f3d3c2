//! `{{ name }}` templates. Names are variables, `secrets.NAME`, or builtins (`run_id`).

use std::collections::BTreeMap;

use super::Secrets;

/// A template reference that does not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown variable `{0}` in a template")]
pub struct Unknown(pub String);

/// Names referenced by `text`, in order (may repeat).
pub fn references(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            return Err(format!("unclosed `{{{{` in {text:?}"));
        };
        let name = after[..j].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
            return Err(format!("`{{{{ {name} }}}}` is not a variable name"));
        }
        out.push(name.to_owned());
        rest = &after[j + 2..];
    }
    Ok(out)
}

/// Values available to templates while a journey runs.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub vars: BTreeMap<String, String>,
    pub secrets: Secrets,
}

impl Scope {
    pub fn get(&self, name: &str) -> Option<&str> {
        match name.strip_prefix("secrets.") {
            Some(s) => self.secrets.get(s).map(|s| s.expose()),
            None => self.vars.get(name).map(String::as_str),
        }
    }

    /// Renders every `{{ name }}` in `text`.
    pub fn render(&self, text: &str) -> Result<String, Unknown> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find("{{") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(j) = after.find("}}") else {
                out.push_str(&rest[i..]);
                return Ok(out);
            };
            let name = after[..j].trim();
            out.push_str(self.get(name).ok_or_else(|| Unknown(name.to_owned()))?);
            rest = &after[j + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Renders every string inside a JSON value.
    pub fn render_json(&self, v: &serde_json::Value) -> Result<serde_json::Value, Unknown> {
        use serde_json::Value;
        Ok(match v {
            Value::String(s) => Value::String(self.render(s)?),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.render_json(x)).collect::<Result<_, _>>()?),
            Value::Object(o) => {
                Value::Object(o.iter().map(|(k, x)| Ok((k.clone(), self.render_json(x)?))).collect::<Result<_, _>>()?)
            }
            other => other.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journey::Secret;

    #[test]
    fn renders_variables_and_secrets() {
        let mut s = Scope::default();
        s.vars.insert("shop".into(), "http://127.0.0.1:7700".into());
        s.secrets.0.insert("pin".into(), Secret::new("1234"));
        assert_eq!(s.render("{{ shop }}/api/{{shop}}").unwrap(), "http://127.0.0.1:7700/api/http://127.0.0.1:7700");
        assert_eq!(s.render("pin={{ secrets.pin }}").unwrap(), "pin=1234");
        assert_eq!(s.render("{{ nope }}").unwrap_err(), Unknown("nope".into()));
        assert_eq!(references("a {{ x }} b {{ secrets.y }}").unwrap(), ["x", "secrets.y"]);
        assert!(references("{{ x").is_err());
        assert!(references("{{ x y }}").is_err());
        let j = s.render_json(&serde_json::json!({"a": ["{{ shop }}", 1]})).unwrap();
        assert_eq!(j, serde_json::json!({"a": ["http://127.0.0.1:7700", 1]}));
    }
}
