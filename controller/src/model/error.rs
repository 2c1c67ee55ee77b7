//! Errors and warnings of the YAML model. Every one names the file, the line
//! and the column (1-based), and the key or value at fault.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

/// A place in a YAML file: `file:line:col`, 1-based.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub file: Arc<Path>,
    pub line: usize,
    pub col: usize,
}

impl Location {
    pub fn new(file: &Arc<Path>, line: usize, col: usize) -> Self {
        Location {
            file: Arc::clone(file),
            line,
            col,
        }
    }

    /// The start of the file (for errors that have no better place).
    pub fn start(file: &Arc<Path>) -> Self {
        Location::new(file, 1, 1)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// One error found while loading a switch or topology file.
#[derive(Debug, Error)]
pub enum ModelError {
    /// The file given on the command line cannot be read.
    #[error("{}:1:1: cannot read the file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file named inside a YAML file (`flows:`, `ebpf:`) is missing.
    #[error("{at}: `{}`: {reason}", path.display())]
    MissingFile {
        at: Location,
        path: PathBuf,
        reason: String,
    },
    /// Not well-formed YAML.
    #[error("{at}: YAML syntax: {msg}")]
    Syntax { at: Location, msg: String },
    /// A key that appears twice in one mapping.
    #[error("{at}: `{key}` appears twice in this mapping (first at {first})")]
    DuplicateKey {
        at: Location,
        key: String,
        first: Location,
    },
    /// A document whose top-level keys fit neither kind of file.
    #[error("{at}: {msg}")]
    UnknownKind { at: Location, msg: String },
    /// The file does not fit the schema: an unknown key, a missing key, a
    /// value of the wrong type or out of range (the message names it).
    #[error("{at}: {msg}")]
    Schema { at: Location, msg: String },
    /// Two things that must be unique share a name or number.
    #[error("{at}: duplicate {what} `{name}` (first at {first})")]
    Duplicate {
        at: Location,
        what: &'static str,
        name: String,
        first: Location,
    },
    /// A reference to a port that is not defined.
    #[error("{at}: port `{port}` is not defined{hint}")]
    UndefinedPort {
        at: Location,
        port: String,
        hint: String,
    },
    #[error("{at}: meter `{name}` is not defined in `meters:`")]
    UnknownMeter { at: Location, name: String },
    #[error("{at}: goto_table {to} from table {from}: the target must be a greater table id")]
    GotoNotForward { at: Location, from: u8, to: u8 },
    #[error("{at}: goto_table {to}: there is no table {to}")]
    GotoMissing { at: Location, to: u8 },
    #[error("{at}: `{action}` must be the last action of the list")]
    NotLast { at: Location, action: &'static str },
    /// Match fields whose prerequisites cannot hold together.
    #[error("{at}: `{field}` needs {need}, which contradicts `{other}` at {other_at}")]
    Contradiction {
        at: Location,
        field: String,
        need: String,
        other: String,
        other_at: Location,
    },
    /// Two flows of one table and one priority whose matches overlap.
    #[error(
        "{at}: flows `{b}` and `{a}` in table {table} both have priority {priority} and their matches overlap (`{a}` at {a_at}): the result would depend on the order of the file"
    )]
    Overlap {
        at: Location,
        table: u8,
        priority: u16,
        a: String,
        a_at: Location,
        b: String,
    },
    #[error("{at}: there is no table 0, where every packet starts")]
    NoTableZero { at: Location },
    #[error("{at}: host `{name}` is not defined in `hosts:`")]
    UnknownHost { at: Location, name: String },
    #[error("{at}: {msg}")]
    Invalid { at: Location, msg: String },
}

impl ModelError {
    /// Where the error is; `None` only for a file that cannot be read.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ModelError::Read { .. } => None,
            ModelError::MissingFile { at, .. }
            | ModelError::Syntax { at, .. }
            | ModelError::DuplicateKey { at, .. }
            | ModelError::UnknownKind { at, .. }
            | ModelError::Schema { at, .. }
            | ModelError::Duplicate { at, .. }
            | ModelError::UndefinedPort { at, .. }
            | ModelError::UnknownMeter { at, .. }
            | ModelError::GotoNotForward { at, .. }
            | ModelError::GotoMissing { at, .. }
            | ModelError::NotLast { at, .. }
            | ModelError::Contradiction { at, .. }
            | ModelError::Overlap { at, .. }
            | ModelError::NoTableZero { at }
            | ModelError::UnknownHost { at, .. }
            | ModelError::Invalid { at, .. } => Some(at),
        }
    }
}

/// All the errors of one load, in file order.
#[derive(Debug)]
pub struct LoadErrors(pub Vec<ModelError>);

impl LoadErrors {
    pub fn one(e: ModelError) -> Self {
        LoadErrors(vec![e])
    }

    /// Sorts by location (file, line, column), keeping the order of equals.
    pub fn sorted(mut self) -> Self {
        self.0.sort_by(|a, b| a.location().cmp(&b.location()));
        self
    }
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

impl From<ModelError> for LoadErrors {
    fn from(e: ModelError) -> Self {
        LoadErrors::one(e)
    }
}

/// Something legal but probably not what was meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub at: Location,
    pub msg: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning: {}", self.at, self.msg)
    }
}
