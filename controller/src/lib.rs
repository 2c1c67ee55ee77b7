//! flowswitch controller library: the command-line interface, the YAML model,
//! the switch on TAP devices (`run`, with `capture` for `--pcap`) and,
//! later, the control socket and the topology runner.

pub mod bench_pipeline;
pub mod bpf;
pub mod capture;
pub mod check;
pub mod cli;
pub mod dataplane;
pub mod demo;
pub mod model;
pub mod run;
pub mod trace;
