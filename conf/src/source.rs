//! A configuration file and the one error type every loader reports.

use std::{fmt, path::Path, sync::OnceLock};

use serde::de::DeserializeOwned;

use crate::index::{Index, Pos};

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read at all.
    #[error("{file}: cannot read the file: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The file was read, and something in it is wrong.
    #[error(transparent)]
    Invalid(Box<Invalid>),
}

/// What is wrong, and where. Displays as `file:line:column: path: message`; the position is left
/// out when unknown (0), the path when the problem is the whole file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Invalid {
    pub file: String,
    /// 1-based; 0 when no single line is to blame.
    pub line: usize,
    /// 1-based; 0 when unknown.
    pub column: usize,
    /// The field, as `probers[2].token`; empty for the file as a whole.
    pub path: String,
    /// What is wrong and, where it helps, what to write instead.
    pub message: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        f.write_str(": ")?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl Error {
    /// The details, for an error about the content (not for [`Error::Read`]).
    pub fn invalid(&self) -> Option<&Invalid> {
        match self {
            Error::Invalid(i) => Some(i),
            Error::Read { .. } => None,
        }
    }

    /// The 1-based line to blame, 0 when none (or the file could not be read).
    pub fn line(&self) -> usize {
        self.invalid().map_or(0, |i| i.line)
    }

    /// The file it is about.
    pub fn file(&self) -> &str {
        match self {
            Error::Read { file, .. } => file,
            Error::Invalid(i) => &i.file,
        }
    }

    /// The same error about another file (a document embedded in another one, say).
    pub fn with_message(self, f: impl FnOnce(String) -> String) -> Error {
        match self {
            Error::Invalid(mut i) => {
                i.message = f(i.message);
                Error::Invalid(i)
            }
            read => read,
        }
    }
}

/// A YAML configuration file: its name (for messages), its text, and where each field is.
#[derive(Debug)]
pub struct Source {
    file: String,
    text: String,
    index: OnceLock<Index>,
}

impl Source {
    /// Reads `path`; the error names the file.
    pub fn read(path: &Path) -> Result<Source, Error> {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Source::new(file, text)),
            Err(source) => Err(Error::Read { file, source }),
        }
    }

    /// A source from text already in memory; `file` names it in messages.
    pub fn new(file: impl Into<String>, text: impl Into<String>) -> Source {
        Source { file: file.into(), text: text.into(), index: OnceLock::new() }
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Deserializes the whole document. Errors name the field path (`serde_path_to_error`) and the
    /// position the YAML parser reported for it.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let de = serde_yaml_ng::Deserializer::from_str(&self.text);
        serde_path_to_error::deserialize(de).map_err(|e| self.yaml_error(e))
    }

    /// The document as a generic YAML value, to decide what kind of file it is before parsing it.
    pub fn value(&self) -> Result<serde_yaml_ng::Value, Error> {
        self.parse()
    }

    /// An error about the field at `path` (`probers[2].token`, `steps[0].http.method`; empty for
    /// the whole file), found after parsing. The position is where the field's value is written,
    /// or, for a field that is missing, the mapping that lacks it.
    pub fn error(&self, path: impl AsRef<str>, message: impl Into<String>) -> Error {
        let path = path.as_ref();
        let at = self.index().find(path);
        self.at(at, path, message.into())
    }

    /// Like [`Source::error`], pointing at the field's key rather than its value (for "this field
    /// is not allowed with that one").
    pub fn key_error(&self, path: impl AsRef<str>, message: impl Into<String>) -> Error {
        let path = path.as_ref();
        let at = self.index().find_key(path);
        self.at(at, path, message.into())
    }

    /// The 1-based line of the field at `path` (its value, else the nearest enclosing field).
    pub fn line_of(&self, path: &str) -> usize {
        self.index().find(path).map_or(0, |p| p.line)
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| Index::build(&self.text))
    }

    fn at(&self, at: Option<Pos>, path: &str, message: String) -> Error {
        let Pos { line, column } = at.unwrap_or(Pos { line: 0, column: 0 });
        Error::Invalid(Box::new(Invalid { file: self.file.clone(), line, column, path: path.to_owned(), message }))
    }

    fn yaml_error(&self, e: serde_path_to_error::Error<serde_yaml_ng::Error>) -> Error {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let inner = e.into_inner();
        let mut message = inner.to_string();
        // serde_yaml_ng appends " at line L column C" and prefixes its own copy of the path; the
        // error carries both separately.
        if let Some(i) = message.rfind(" at line ") {
            message.truncate(i);
        }
        if let Some((head, rest)) = message.split_once(": ")
            && !head.is_empty()
            && !head.contains(' ')
            && path.starts_with(head)
        {
            message = rest.to_owned();
        }
        // The path is exact (serde_path_to_error tracks it through every visitor), while the
        // deserializer's own mark is where it was reading, which for an error raised by a field's
        // `Deserialize` may be the enclosing mapping. So: the path's position when the path is
        // written; else the parser's (a syntax error); else the nearest written parent.
        // An unknown field is its key's fault, not its value's.
        let key = if message.starts_with("unknown field") { self.index().exact_key(&path) } else { None };
        let at = key
            .or_else(|| self.index().exact(&path))
            .or_else(|| inner.location().map(|l| Pos { line: l.line(), column: l.column() }))
            .or_else(|| self.index().find(&path));
        self.at(at, &path, message)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Agg {
        listen: String,
        probers: Vec<Prober>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Prober {
        #[allow(dead_code)]
        id: String,
        #[allow(dead_code)]
        every: crate::Dur,
        #[serde(default)]
        #[allow(dead_code)]
        labels: BTreeMap<String, String>,
    }

    fn invalid(e: Error) -> Invalid {
        match e {
            Error::Invalid(i) => *i,
            Error::Read { .. } => panic!("not a content error"),
        }
    }

    #[test]
    fn a_nested_unknown_field_names_its_path_and_position() {
        let src =
            Source::new("agg.yaml", "listen: x\nprobers:\n  - id: a\n    every: 15s\n  - id: b\n    evrey: 15s\n");
        let e = invalid(src.parse::<Agg>().unwrap_err());
        assert_eq!(e.path, "probers[1].evrey");
        assert_eq!((e.line, e.column), (6, 5));
        assert!(e.message.starts_with("unknown field `evrey`, expected one of"), "{}", e.message);
    }

    #[test]
    fn a_bad_value_in_flow_style_points_at_the_value() {
        let src =
            Source::new("agg.yaml", "listen: x\nprobers:\n  - {id: a, every: 15s}\n  - {id: b, every: 15 parsecs}\n");
        let e = invalid(src.parse::<Agg>().unwrap_err());
        assert_eq!(e.path, "probers[1].every");
        assert_eq!(e.line, 4);
        assert!(e.column >= 13, "{e}");
        assert!(e.to_string().starts_with("agg.yaml:4:"), "{e}");
        assert!(e.message.contains("unknown unit"), "{}", e.message);
    }

    #[test]
    fn a_missing_field_names_the_mapping() {
        let src = Source::new("agg.yaml", "listen: x\nprobers:\n  - id: a\n");
        let e = invalid(src.parse::<Agg>().unwrap_err());
        assert_eq!(e.path, "probers[0]");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("missing field `every`"), "{}", e.message);
    }

    #[test]
    fn a_check_after_parsing_points_at_the_field() {
        let src = Source::new("agg.yaml", "listen: x\nprobers:\n  - {id: a, every: 15s}\n  - {id: b, every: 2h}\n");
        src.parse::<Agg>().unwrap();
        let e = src.error("probers[1].every", "must be at most 1h");
        assert_eq!(e.to_string(), "agg.yaml:4:20: probers[1].every: must be at most 1h");
        let e = src.key_error("probers[1].every", "not with `cron`");
        assert_eq!(e.line(), 4);
        assert_eq!(src.error("", "empty fleet").to_string(), "agg.yaml:1:1: empty fleet");
    }

    #[test]
    fn an_error_from_a_fields_own_deserializer_points_at_that_field() {
        #[derive(Debug, Deserialize)]
        struct Agg {
            #[allow(dead_code)]
            url: String,
            #[allow(dead_code)]
            token: crate::SecretRef,
        }
        #[derive(Debug, Deserialize)]
        struct Doc {
            #[allow(dead_code)]
            aggregator: Agg,
        }
        let src = Source::new("edge.yaml", "aggregator:\n  url: http://x\n  token: hunter2-inline\n");
        let e = invalid(src.parse::<Doc>().unwrap_err());
        assert_eq!((e.path.as_str(), e.line, e.column), ("aggregator.token", 3, 10), "{e}");
        assert!(!e.message.contains("hunter2"), "{e}");
    }

    #[test]
    fn broken_yaml_has_the_parsers_position() {
        let src = Source::new("agg.yaml", "listen: x\nprobers: [\n");
        let e = invalid(src.parse::<Agg>().unwrap_err());
        assert!(e.line >= 2, "{e}");
    }

    #[test]
    fn an_unreadable_file_names_it() {
        let e = Source::read(Path::new("/nonexistent/agg.yaml")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/agg.yaml: cannot read the file:"), "{e}");
        assert_eq!(e.line(), 0);
        assert!(std::error::Error::source(&e).is_some(), "the io::Error is kept as the source");
    }
}
