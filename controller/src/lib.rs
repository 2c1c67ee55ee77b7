//! flowswitch controller library: the command-line interface, the YAML model
//! and, later, the control socket and the topology runner.

pub mod bench_pipeline;
pub mod bpf;
pub mod check;
pub mod cli;
pub mod dataplane;
pub mod demo;
pub mod model;
pub mod trace;
pub mod up;
