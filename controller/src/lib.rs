//! flowswitch controller library: the command-line interface and, later, YAML
//! models, the control socket and the topology runner.

pub mod bpf;
pub mod cli;
pub mod demo;
