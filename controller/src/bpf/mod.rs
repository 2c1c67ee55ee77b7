//! `flowswitch bpf ...`: the eBPF toolchain verbs.

mod bench;
mod load;
mod suite;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use datapath::ebpf::engine::{Engine, Loaded};
use datapath::ebpf::{disasm, insn, verifier, ProgEnv, RunInput};
use thiserror::Error;

pub use load::{load_program, parse_hex, LoadedFile};

/// Errors of the bpf verbs.
#[derive(Debug, Error)]
pub enum BpfError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("--mem: {0}")]
    BadMem(String),
    #[error("{0}")]
    Load(#[from] datapath::ebpf::engine::LoadError),
    #[error("run-time error: {0}")]
    Run(#[from] datapath::ebpf::RunError),
    #[error("{0}")]
    Suite(String),
}

/// Engine choice on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    Interp,
    Jit,
    Both,
}

impl EngineArg {
    pub fn engines(self) -> &'static [Engine] {
        match self {
            EngineArg::Interp => &[Engine::Interp],
            EngineArg::Jit => &[Engine::Jit],
            EngineArg::Both => &[Engine::Interp, Engine::Jit],
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum BpfCmd {
    /// Run bpf_conformance `.data` files (files or directories).
    Test {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "both")]
        engine: EngineArg,
        /// Also print a line for each passing file.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Verify and run a program (`.s`, `.data`, or raw `.bin`), print r0.
    Run {
        file: PathBuf,
        /// Memory passed in r1 (length in r2), as hex bytes.
        #[arg(long)]
        mem: Option<String>,
        #[arg(long, value_enum, default_value = "jit")]
        engine: EngineArg,
    },
    /// Assemble a text program; write raw bytes to -o, or hex slots to stdout.
    Asm {
        file: PathBuf,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Disassemble a program (raw `.bin`, or any format `run` accepts).
    Disasm { file: PathBuf },
    /// Verify a program and report the verifier's verdict.
    Verify { file: PathBuf },
    /// Interpreter vs JIT vs native Rust on the benchmark programs, plus compile and verify times.
    Bench,
}

/// Runs one bpf verb.
pub fn run(cmd: BpfCmd) -> Result<ExitCode, BpfError> {
    match cmd {
        BpfCmd::Test {
            paths,
            engine,
            verbose,
        } => suite::run(&paths, engine.engines(), verbose),
        BpfCmd::Run { file, mem, engine } => {
            let f = load_program(&file)?;
            let mem = match mem {
                Some(h) => parse_hex(&h).map_err(BpfError::BadMem)?,
                None => f.mem.clone(),
            };
            let mut results = Vec::new();
            for &e in engine.engines() {
                let mut m = mem.clone();
                let l = Loaded::load(&f.insns, &ProgEnv::mem(), e)?;
                results.push((e, l.run(RunInput::mem(&mut m))?));
            }
            match results.as_slice() {
                [(_, r0)] => println!("{r0:#x}"),
                _ => {
                    for (e, r0) in &results {
                        println!("{}: {r0:#x}", e.name());
                    }
                    if results.windows(2).any(|w| w[0].1 != w[1].1) {
                        eprintln!("engines disagree");
                        return Ok(ExitCode::FAILURE);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BpfCmd::Asm { file, output } => {
            let f = load_program(&file)?;
            match output {
                Some(out) => std::fs::write(&out, insn::to_bytes(&f.insns))
                    .map_err(|source| BpfError::Io { path: out, source })?,
                None => {
                    for i in &f.insns {
                        println!("{:#018x}", i.to_u64());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BpfCmd::Disasm { file } => {
            let f = load_program(&file)?;
            print!("{}", disasm::disassemble(&f.insns));
            Ok(ExitCode::SUCCESS)
        }
        BpfCmd::Bench => bench::run(),
        BpfCmd::Verify { file } => {
            let f = load_program(&file)?;
            match verifier::verify(&f.insns, &ProgEnv::mem()) {
                Ok(p) => {
                    let guarded = p.access.iter().flatten().filter(|a| a.guard).count();
                    let accesses = p.access.iter().flatten().count();
                    println!(
                        "{}: ok, {} slots, {} memory accesses ({} proven, {} checked at run time)",
                        file.display(),
                        p.insns.len(),
                        accesses,
                        accesses - guarded,
                        guarded
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("{}: rejected: {e}", file.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
