//! flowswitch controller library: the command-line interface, the YAML model,
//! the running switch's controller and its control socket, and, later, the
//! topology runner.

pub mod bench_pipeline;
pub mod bpf;
pub mod check;
pub mod cli;
pub mod control;
pub mod ctl;
pub mod dataplane;
pub mod demo;
pub mod model;
pub mod switchd;
pub mod trace;
pub mod up;
