//! Where each node of a YAML document is: field path → line and column, from the parser's events.
//!
//! serde sees values, not places, so a check made after deserializing (an amount above its cap, a
//! token file that cannot be read) cannot ask serde where the field was written. The index walks
//! the parser's event stream once and remembers, for every mapping entry and sequence item, where
//! its key and its value start. Paths are spelled as `serde_path_to_error` spells them:
//! `probers[2].token`, `steps[0].http.method`.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Default)]
pub struct Index {
    /// Where the value of each path starts (for a mapping entry, its value, not its key).
    values: HashMap<String, Pos>,
    /// Where the key of each mapping entry is.
    keys: HashMap<String, Pos>,
}

impl Index {
    /// Indexes the first document of `src`; an unparseable document gives an empty index (the
    /// deserializer reports that error with its own position).
    pub fn build(src: &str) -> Index {
        let mut b = Builder::default();
        let mut parser = Parser::new_from_str(src);
        if parser.load(&mut b, false).is_err() {
            return Index::default();
        }
        b.index
    }

    /// Where `path`'s value starts, else its key, else the nearest enclosing field that is written
    /// (a missing field is reported at the mapping that lacks it).
    pub fn find(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = self.values.get(p).or_else(|| self.keys.get(p)) {
                return Some(*pos);
            }
            if p.is_empty() {
                return None;
            }
            p = parent(p);
        }
    }

    /// Where `path`'s value (else its key) is, if the path itself is written in the document.
    pub fn exact(&self, path: &str) -> Option<Pos> {
        self.values.get(path).or_else(|| self.keys.get(path)).copied()
    }

    /// Where `path`'s key is, if it is a mapping entry written in the document.
    pub fn exact_key(&self, path: &str) -> Option<Pos> {
        self.keys.get(path).copied()
    }

    /// Where `path`'s key is written (for "this field is not allowed here").
    pub fn find_key(&self, path: &str) -> Option<Pos> {
        self.keys.get(path).copied().or_else(|| self.find(path))
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → ``.
fn parent(path: &str) -> &str {
    match path.rfind(['.', '[']) {
        Some(i) => &path[..i],
        None => "",
    }
}

fn pos(m: Marker) -> Pos {
    // yaml-rust2's columns count from 0; people count from 1.
    Pos { line: m.line(), column: m.col() + 1 }
}

enum Frame {
    Map { path: String, key: Option<String>, start: Pos },
    Seq { path: String, next: usize, start: Pos },
}

impl Frame {
    fn path(&self) -> &str {
        match self {
            Frame::Map { path, .. } | Frame::Seq { path, .. } => path,
        }
    }
}

#[derive(Default)]
struct Builder {
    index: Index,
    stack: Vec<Frame>,
    /// Only the first document is indexed (what serde reads).
    done: bool,
}

impl Builder {
    /// The path of the node that starts now, or `None` when this node is a mapping key.
    fn next_path(&mut self, key_text: Option<&str>, at: Pos) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next, .. }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, key, .. }) => match key.take() {
                Some(k) => Some(join(path, &k)),
                None => {
                    // This node is a key. Complex (non-scalar) keys get a placeholder name.
                    let k = key_text.unwrap_or("?").to_owned();
                    self.index.keys.entry(join(path, &k)).or_insert(at);
                    *key = Some(k);
                    None
                }
            },
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_owned() } else { format!("{parent}.{key}") }
}

impl Builder {
    /// A collection is where the first scalar written inside it is: the parser's mark for the
    /// start of a block mapping lies past its first key.
    fn place_open_collections(&mut self, at: Pos) {
        for f in &self.stack {
            self.index.values.entry(f.path().to_owned()).or_insert(at);
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.done {
            return;
        }
        let at = pos(mark);
        match ev {
            Event::Scalar(text, ..) => {
                self.place_open_collections(at);
                if let Some(p) = self.next_path(Some(&text), at) {
                    self.index.values.entry(p).or_insert(at);
                }
            }
            Event::Alias(_) => {
                self.place_open_collections(at);
                if let Some(p) = self.next_path(None, at) {
                    self.index.values.entry(p).or_insert(at);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                // A collection used as a key: index what is inside under a placeholder.
                let path = self.next_path(None, at).unwrap_or_else(|| "?".to_owned());
                let start = at;
                self.stack.push(if is_map {
                    Frame::Map { path, key: None, start }
                } else {
                    Frame::Seq { path, next: 0, start }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                // An empty collection has only its own mark.
                if let Some(Frame::Map { path, start, .. } | Frame::Seq { path, start, .. }) = self.stack.pop() {
                    self.index.values.entry(path).or_insert(start);
                }
            }
            Event::DocumentEnd => self.done = true,
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, column: usize) -> Option<Pos> {
        Some(Pos { line, column })
    }

    #[test]
    fn block_style_paths() {
        let src =
            "listen: 127.0.0.1:8080\nprobers:\n  - id: nbo-1\n    token: env:A\n  - id: kla-1\n    token: env:B\n";
        let i = Index::build(src);
        assert_eq!(i.find("listen"), at(1, 9));
        assert_eq!(i.find_key("listen"), at(1, 1));
        assert_eq!(i.find("probers[1].token"), at(6, 12));
        assert_eq!(i.find_key("probers[1].token"), at(6, 5));
        assert_eq!(i.find("probers[0].id"), at(3, 9));
    }

    #[test]
    fn flow_style_paths() {
        let src = "probers:\n  - {id: nbo-1, token: env:A}\n  - {id: kla-1, region: kampala, token: env:B}\n";
        let i = Index::build(src);
        assert_eq!(i.find("probers[1].token"), at(3, 41));
        assert_eq!(i.find("probers[1].region"), at(3, 25));
    }

    #[test]
    fn a_missing_field_points_at_its_mapping() {
        let src = "steps:\n  - name: pay\n    http:\n      url: x\n";
        let i = Index::build(src);
        assert_eq!(i.find("steps[0].http.method"), at(4, 7));
        assert_eq!(i.find("steps[0]"), at(2, 5));
        assert_eq!(i.find("steps[3].http"), at(2, 5), "the list is where its first item is");
        assert_eq!(i.find("nothing.here"), at(1, 1));
    }

    #[test]
    fn only_the_first_document() {
        let i = Index::build("a: 1\n---\na: 2\nb: 3\n");
        assert_eq!(i.find("a"), at(1, 4));
        assert_eq!(i.find_key("b"), at(1, 1), "b is not in the first document");
    }

    #[test]
    fn broken_yaml_gives_an_empty_index() {
        assert_eq!(Index::build("a: [1, 2\n").find("a"), None);
    }
}
