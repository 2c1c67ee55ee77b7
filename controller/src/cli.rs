//! Command-line interface: argument parsing and dispatch to the verbs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::bpf::BpfCmd;

#[derive(Debug, Parser)]
#[command(
    name = "flowswitch",
    version,
    about = "A programmable software switch with per-flow JIT-compiled eBPF"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// The eBPF toolchain: test, run, assemble, disassemble, verify, bench.
    #[command(subcommand)]
    Bpf(BpfCmd),
    /// A self-contained demo that needs no root.
    Demo,
    /// Validate a switch file or a topology file: print a summary, or the
    /// errors (each with file:line:col) and exit 1.
    Check {
        /// A switch file (flows/*.yaml) or a topology file (topologies/*.yaml).
        file: PathBuf,
    },
}

/// Parses the command line and runs the verb. Errors print on stderr and give exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Bpf(cmd) => crate::bpf::run(cmd),
        Cmd::Demo => crate::demo::run(),
        Cmd::Check { file } => Ok(crate::check::run(&file)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flowswitch: {e}");
            ExitCode::FAILURE
        }
    }
}
