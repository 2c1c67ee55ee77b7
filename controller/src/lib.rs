//! flowswitch controller library: the command-line interface, the YAML model
//! and, later, the control socket and the topology runner.

pub mod bpf;
pub mod check;
pub mod cli;
pub mod demo;
pub mod model;
