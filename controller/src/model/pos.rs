//! The position index: where each node of a YAML document is, by path.
//!
//! serde_yaml attaches a position to the errors raised while deserialising,
//! but checks made afterwards (cross references, overlaps) only have the
//! typed model. This index, built from the events of a YAML parser with
//! marks (saphyr-parser), maps a path written like serde_yaml writes them
//! (`tables[0].flows[2].match.tcp_dst`) to the line and column of the key
//! and of the value. While building it we also refuse a key that appears
//! twice in one mapping, which serde would otherwise let the last one win.

use ahash::AHashMap as HashMap;
use std::path::Path;
use std::sync::Arc;

use saphyr_parser::{Event, Marker, Parser};

use super::error::{Location, ModelError};

/// Collections nest at most this deep (serde_yaml stops at 128 too); this
/// also bounds the length of paths.
const MAX_DEPTH: usize = 100;

/// Line and column (1-based) of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LineCol {
    line: usize,
    col: usize,
}

impl From<Marker> for LineCol {
    fn from(m: Marker) -> Self {
        LineCol {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Where the key is, for mapping values.
    key: Option<LineCol>,
    /// Where the value starts (the first key for a block mapping, the
    /// bracket for a flow collection, the quote for a quoted scalar).
    value: LineCol,
}

/// Positions of every node of one file, by path.
#[derive(Debug, Clone)]
pub struct PosIndex {
    file: Arc<Path>,
    entries: HashMap<String, Entry>,
    /// The top-level keys in order, with where they are.
    top_keys: Vec<(String, Location)>,
}

enum Frame {
    Map {
        path: String,
        /// The key whose value comes next, if any.
        key: Option<String>,
        seen: Keys,
    },
    Seq {
        path: String,
        next: usize,
    },
    /// A complex (non-scalar) mapping key: its contents get no path.
    Opaque {
        depth: usize,
    },
}

/// The keys seen so far in one mapping: a short list (most mappings have
/// a handful of keys), indexed by a hash map once it grows.
#[derive(Default)]
struct Keys {
    list: Vec<(String, LineCol)>,
    index: Option<HashMap<String, LineCol>>,
}

impl Keys {
    const INDEX_FROM: usize = 16;

    fn get(&self, k: &str) -> Option<LineCol> {
        match &self.index {
            Some(m) => m.get(k).copied(),
            None => self.list.iter().find(|(n, _)| n == k).map(|(_, at)| *at),
        }
    }

    fn insert(&mut self, k: &str, at: LineCol) {
        match &mut self.index {
            Some(m) => {
                m.insert(k.to_string(), at);
            }
            None => {
                self.list.push((k.to_string(), at));
                if self.list.len() >= Self::INDEX_FROM {
                    self.index = Some(std::mem::take(&mut self.list).into_iter().collect());
                }
            }
        }
    }
}

fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl PosIndex {
    /// Parses `text`. Errors: the first syntax error, or every duplicated key.
    pub fn build(file: &Arc<Path>, text: &str) -> Result<PosIndex, Vec<ModelError>> {
        let mut idx = PosIndex {
            file: Arc::clone(file),
            entries: HashMap::new(),
            top_keys: Vec::new(),
        };
        let mut errors = Vec::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut documents = 0usize;
        let mut parser = Parser::new_from_str(text);
        while let Some(ev) = parser.next_event() {
            let (ev, span) = match ev {
                Ok(x) => x,
                Err(e) => {
                    let lc = LineCol::from(*e.marker());
                    errors.push(ModelError::Syntax {
                        at: Location::new(file, lc.line, lc.col),
                        msg: e.info().to_string(),
                    });
                    return Err(errors);
                }
            };
            let at = LineCol::from(span.start);
            match ev {
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        errors.push(ModelError::Syntax {
                            at: Location::new(file, at.line, at.col),
                            msg: "a file holds one YAML document; this is a second one".into(),
                        });
                        return Err(errors);
                    }
                }
                Event::Scalar(value, ..) => {
                    idx.node(&mut stack, &mut errors, at, Some(&value), false);
                }
                Event::Alias(_) => {
                    idx.node(&mut stack, &mut errors, at, None, false);
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let is_map = matches!(ev, Event::MappingStart(..));
                    if let Some(Frame::Opaque { depth }) = stack.last_mut() {
                        *depth += 1;
                        continue;
                    }
                    if stack.len() >= MAX_DEPTH {
                        errors.push(ModelError::Syntax {
                            at: Location::new(file, at.line, at.col),
                            msg: format!("nesting deeper than {MAX_DEPTH} levels"),
                        });
                        return Err(errors);
                    }
                    let path = idx.node(&mut stack, &mut errors, at, None, true);
                    let frame = match path {
                        None => Frame::Opaque { depth: 1 },
                        Some(path) if is_map => Frame::Map {
                            path,
                            key: None,
                            seen: Keys::default(),
                        },
                        Some(path) => Frame::Seq { path, next: 0 },
                    };
                    stack.push(frame);
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    if let Some(Frame::Opaque { depth }) = stack.last_mut() {
                        *depth -= 1;
                        if *depth > 0 {
                            continue;
                        }
                    }
                    stack.pop();
                }
                _ => {}
            }
        }
        if errors.is_empty() {
            Ok(idx)
        } else {
            Err(errors)
        }
    }

    /// Handles a node starting at `at`. Returns the node's path when it is a
    /// value (or the document root), `None` when it is a mapping key or is
    /// inside an opaque key.
    fn node(
        &mut self,
        stack: &mut [Frame],
        errors: &mut Vec<ModelError>,
        at: LineCol,
        scalar: Option<&str>,
        collection: bool,
    ) -> Option<String> {
        let file = Arc::clone(&self.file);
        let top = stack.len() == 1;
        match stack.last_mut() {
            None => {
                self.entries.insert(
                    String::new(),
                    Entry {
                        key: None,
                        value: at,
                    },
                );
                Some(String::new())
            }
            Some(Frame::Opaque { .. }) => None,
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                self.entries.insert(
                    p.clone(),
                    Entry {
                        key: None,
                        value: at,
                    },
                );
                Some(p)
            }
            Some(Frame::Map { path, key, seen }) => match key.take() {
                Some(k) => {
                    let p = child(path, &k);
                    let key_at = seen.get(&k);
                    self.entries
                        .entry(p.clone())
                        .and_modify(|e| e.value = at)
                        .or_insert(Entry {
                            key: key_at,
                            value: at,
                        });
                    Some(p)
                }
                None => {
                    // This node is a key.
                    match (scalar, collection) {
                        (Some(k), _) => {
                            if let Some(first) = seen.get(k) {
                                errors.push(ModelError::DuplicateKey {
                                    at: Location::new(&file, at.line, at.col),
                                    key: k.to_string(),
                                    first: Location::new(&file, first.line, first.col),
                                });
                            } else {
                                seen.insert(k, at);
                                if top {
                                    self.top_keys.push((
                                        k.to_string(),
                                        Location::new(&file, at.line, at.col),
                                    ));
                                }
                            }
                            *key = Some(k.to_string());
                            let p = child(path, k);
                            self.entries.entry(p).or_insert(Entry {
                                key: Some(at),
                                value: at,
                            });
                            None
                        }
                        // An alias or a collection as a key: its value gets
                        // a placeholder name that no lookup uses.
                        (None, _) => {
                            *key = Some("?".to_string());
                            None
                        }
                    }
                }
            },
        }
    }

    fn loc(&self, lc: LineCol) -> Location {
        Location::new(&self.file, lc.line, lc.col)
    }

    /// Where the value at `path` starts; for a path that is absent (a key
    /// that was left out), the nearest present ancestor.
    /// A path may start with `.` (the children of a document's root
    /// written as `{root}.key` with an empty root).
    pub fn value(&self, path: &str) -> Location {
        let mut p = path.strip_prefix('.').unwrap_or(path);
        loop {
            if let Some(e) = self.entries.get(p) {
                return self.loc(e.value);
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return self.root(),
            }
        }
    }

    /// Where the key of the mapping entry at `path` is (the value's place for
    /// a sequence element); falls back like [`PosIndex::value`].
    pub fn key(&self, path: &str) -> Location {
        match self.entries.get(path.strip_prefix('.').unwrap_or(path)) {
            Some(e) => self.loc(e.key.unwrap_or(e.value)),
            None => self.value(path),
        }
    }

    /// Whether the document has a node at `path`.
    pub fn has(&self, path: &str) -> bool {
        self.entries.contains_key(path)
    }

    fn root(&self) -> Location {
        match self.entries.get("") {
            Some(e) => self.loc(e.value),
            None => Location::start(&self.file),
        }
    }

    /// The top-level keys in file order, when the document is a mapping.
    pub fn top_keys(&self) -> &[(String, Location)] {
        &self.top_keys
    }

    pub fn file(&self) -> &Arc<Path> {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(text: &str) -> PosIndex {
        let f: Arc<Path> = Arc::from(Path::new("t.yaml"));
        PosIndex::build(&f, text).unwrap()
    }

    #[test]
    fn paths_of_block_and_flow_nodes() {
        let i = idx("a:\n  b: [1, {c: 2}]\n  d:\n    - x: 1\n      y: 2\n");
        assert_eq!(i.value("a.b").to_string(), "t.yaml:2:6");
        assert_eq!(i.key("a.b").to_string(), "t.yaml:2:3");
        assert_eq!(i.value("a.b[0]").to_string(), "t.yaml:2:7");
        assert_eq!(i.value("a.b[1].c").to_string(), "t.yaml:2:14");
        assert_eq!(i.key("a.b[1].c").to_string(), "t.yaml:2:11");
        assert_eq!(i.value("a.d[0]").to_string(), "t.yaml:4:7");
        assert_eq!(i.value("a.d[0].y").to_string(), "t.yaml:5:10");
        // Absent paths fall back to the nearest ancestor.
        assert_eq!(i.value("a.d[0].z").to_string(), "t.yaml:4:7");
        let keys: Vec<_> = i.top_keys().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a"]);
    }

    #[test]
    fn duplicate_keys_and_syntax_errors_have_positions() {
        let f: Arc<Path> = Arc::from(Path::new("t.yaml"));
        let e = PosIndex::build(&f, "a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(
            e[0].to_string(),
            "t.yaml:3:1: `a` appears twice in this mapping (first at t.yaml:1:1)"
        );
        let e = PosIndex::build(&f, "a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e[0].to_string().starts_with("t.yaml:"), "{}", e[0]);
        let e = PosIndex::build(&f, "a: 1\n---\nb: 2\n").unwrap_err();
        assert!(e[0].to_string().contains("second"), "{}", e[0]);
        // Past the size where the keys get a hash index, too.
        let mut many: String = (0..40).map(|i| format!("k{i}: {i}\n")).collect();
        many.push_str("k3: 0\n");
        let e = PosIndex::build(&f, &many).unwrap_err();
        assert_eq!(
            e[0].to_string(),
            "t.yaml:41:1: `k3` appears twice in this mapping (first at t.yaml:4:1)"
        );
        let deep = "- ".repeat(MAX_DEPTH + 1);
        let e = PosIndex::build(&f, &deep).unwrap_err();
        assert_eq!(
            e[0].to_string(),
            format!(
                "t.yaml:1:{}: YAML syntax: nesting deeper than {MAX_DEPTH} levels",
                2 * MAX_DEPTH + 1
            )
        );
    }
}
