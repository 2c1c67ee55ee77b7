//! flowswitch controller library: the command-line interface, the YAML model,
//! the switch on TAP devices (`run`, with `capture` for `--pcap`), the running
//! switch's controller and its control socket (`switchd`, `control`, `ctl`),
//! and the topology runner (`up`).

pub mod bench_pipeline;
pub mod bpf;
pub mod capture;
pub mod check;
pub mod cli;
pub mod control;
pub mod ctl;
pub mod dataplane;
pub mod demo;
pub mod files;
pub mod model;
pub mod run;
pub mod switchd;
pub mod trace;
pub mod up;
