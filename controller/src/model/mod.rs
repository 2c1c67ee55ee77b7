//! The YAML model: switch files (`flows/*.yaml`) and topology files
//! (`topologies/*.yaml`), as specified in `shared/design/yaml.md`.
//!
//! Loading goes in four steps:
//! 1. [`pos::PosIndex`] parses the text with a YAML event parser that keeps
//!    marks, and maps each node's path (`tables[0].flows[2].match.tcp_dst`)
//!    to its line and column. Syntax errors and duplicate keys stop here.
//! 2. serde_yaml deserialises the typed model ([`switch::SwitchFile`],
//!    [`topology::TopologyFile`]). Every struct refuses unknown keys, and
//!    every value with a syntax of its own (MACs, CIDRs, port ranges, names
//!    of protocols, actions) has its own `Deserialize`, so an error carries
//!    the value's position.
//! 3. Lowering ([`lower`], [`matches`]) resolves names (ports, meters,
//!    tables), applies the implied prerequisites of match fields, expands
//!    IP families and port ranges into alternatives, and produces the
//!    datapath's `FlowSpec`s. Every cross-reference error is placed with the
//!    position index.
//! 4. [`overlap`] refuses two flows of one table and one priority whose
//!    matches overlap, naming both.
//!
//! Every error ([`ModelError`]) names `file:line:col` and the key or value
//! at fault; a load returns all the errors it found ([`LoadErrors`]).

pub mod error;
pub mod load;
pub mod lower;
pub mod matches;
pub mod overlap;
pub mod pos;
pub mod switch;
pub mod topology;
pub mod value;

#[cfg(test)]
mod tests;

pub use error::{LoadErrors, Location, ModelError, Warning};
pub use load::{
    from_str, kind_of, load, load_switch, load_topology, switch_from_str, topology_from_str,
    FileKind, HostPlan, Loaded, TopologyPlan,
};
pub use lower::{default_threads, EbpfProgram, MeterDesc, PortDesc, SwitchPlan, TableDesc};
pub use switch::{EbpfRef, Miss, SwitchFile};
pub use topology::{CheckSpec, TopologyFile};
