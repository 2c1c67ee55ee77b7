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
//! 3. Lowering ([`lower`], [`mod@matches`]) resolves names (ports, meters,
//!    tables), applies the implied prerequisites of match fields, expands
//!    IP families and port ranges into alternatives, and produces the
//!    datapath's `FlowSpec`s. Every cross-reference error is placed with the
//!    position index.
//! 4. [`overlap`] refuses two flows of one table and one priority whose
//!    matches overlap, naming both.
//!
//! Every error ([`ModelError`]) names `file:line:col` and the key or value
//! at fault; a load returns all the errors it found ([`LoadErrors`]).
//!
//! # Rules beyond the letter of yaml.md
//! Where yaml.md leaves a choice open, the model decides as follows (every
//! example of yaml.md loads as written):
//! - `switch:` with its `name` is required; `threads` defaults to the
//!   number of cores and `miss` to `drop`. `busy_poll_us` (0..=10,000,
//!   default 200) is how long a worker polls after traffic before it
//!   sleeps (see `datapath::dp::switch`). Port ids are 1..=2³²-1; port
//!   names are TAP device names (at most 15 characters of `A-Za-z0-9_.-`,
//!   starting with a letter); `queues` is 1..=256.
//! - A switch file without `ports:` leaves port ids unchecked (a topology
//!   provides the ports), and then port names cannot be used. Under a
//!   topology the ports are the hosts: a host's port id, named by the host
//!   name; a name from the switch file's own `ports:` still resolves to its
//!   id, which must be a host's port.
//! - If there are tables, table 0 must exist (every packet starts there); a
//!   table that no `goto_table` reaches is a warning.
//! - `drop` and `goto_table` must be the last action of a list (what would
//!   follow could never run or would be ambiguous); a port may appear once
//!   in one `output`.
//! - A CIDR with bits set past its prefix (`10.0.0.5/24`) is an error, not
//!   silently masked; MAC masks work the same way.
//! - Prerequisites: `ipv4_*` and `icmp_*` imply IPv4, `ipv6_*` and
//!   `icmpv6_*` imply IPv6, `arp_*` imply ARP, `ip_proto`, `ip_dscp`,
//!   `ip_ecn`, `tcp_*` and `udp_*` imply IPv4 or IPv6 (two alternatives
//!   when nothing narrows it), `tcp_*`/`udp_*`/`icmp*_*` imply their
//!   `ip_proto`, `vlan_pcp` implies a tag. `set_field` is not checked
//!   against the match: rewriting a header the packet lacks is the
//!   datapath's concern.
//! - Two flows of one table and one priority overlap when their structured
//!   matches do; custom `ebpf` filters are not taken into account.
//! - Topology: host names are at most 12 characters; `ip` is an address
//!   with a prefix (IPv4 or IPv6); names, ports, addresses and MACs are
//!   unique; `vlan` is 1..=4094; `iperf` `seconds` defaults to 5. A check
//!   naming an unknown host is an error, except the target of
//!   `expect_no_ping`, which is a warning (such a ping can only fail, as in
//!   yaml.md's own example).

pub mod added;
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

pub use added::{lower_added, AddedFlow, ADDED_SOURCE};
pub use error::{LoadErrors, Location, ModelError, Warning};
pub use load::{
    from_str, kind_of, load, load_switch, load_topology, switch_from_str, topology_from_str,
    FileKind, HostPlan, Loaded, TopologyPlan,
};
pub use lower::{default_threads, EbpfProgram, MeterDesc, PortDesc, SwitchPlan, TableDesc};
pub use switch::{EbpfRef, Miss, SwitchFile};
pub use topology::{CheckSpec, TopologyFile};
