//! Flows: the flow key, the datapath's form of a flow (masked matches,
//! priority, actions), and the compiler from flows to eBPF programs.

pub mod compile;
pub mod key;
pub mod spec;

pub use key::FlowKey;
pub use spec::{Action, FlowSpec, Match, PortId, SetField};
