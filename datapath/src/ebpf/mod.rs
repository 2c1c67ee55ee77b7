//! The eBPF engine: codec, assembler and disassembler, verifier, interpreter
//! (the reference semantics) and x86-64 JIT.
//!
//! A program goes `&[Insn]` → [`verifier::verify`] → [`Program`] (verified,
//! with per-instruction facts the engines rely on) → run by
//! [`interp::run`] or compiled by [`jit::compile`].

pub mod alu;
pub mod asm;
pub mod bench;
pub mod conformance;
pub mod diff;
pub mod disasm;
pub mod engine;
pub mod helpers;
pub mod insn;
pub mod interp;
pub mod jit;
pub mod maps;
pub mod testgen;
pub mod verifier;
pub mod vm;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use helpers::HelperRegistry;
pub use insn::{Insn, Op};
pub use maps::{MapDef, MapKind, Maps};
pub use vm::{Entry, MemAccess, Region, RunError, RunInput};

/// Where and how a program runs: its entry convention, its helpers and its
/// run-time budget. Shared by every program of one kind.
#[derive(Debug, Clone)]
pub struct ProgEnv {
    pub entry: Entry,
    pub helpers: Arc<HelperRegistry>,
    /// Taken backward jumps plus local calls allowed in one run.
    pub budget: u64,
    /// The maps programs may use (`lddw rX, map N` names map N), shared by
    /// every program and worker of a switch.
    pub maps: Arc<Maps>,
}

impl ProgEnv {
    /// The bpf_conformance environment: r1/r2 = memory and its length,
    /// the standard helpers, the default budget.
    pub fn mem() -> Arc<ProgEnv> {
        Arc::new(ProgEnv {
            entry: Entry::MemLen,
            helpers: HelperRegistry::standard(),
            budget: vm::DEFAULT_BUDGET,
            maps: Arc::default(),
        })
    }
}

/// A program the verifier accepted. Only the verifier constructs it.
#[derive(Debug, Clone)]
pub struct Program {
    /// The raw slots.
    pub insns: Vec<Insn>,
    /// Decoded instruction at each slot (`None` for the second slot of `lddw`).
    pub ops: Vec<Option<Op>>,
    /// For each load, store and atomic: the region and whether it needs a
    /// run-time bounds check. `None` elsewhere.
    pub access: Vec<Option<MemAccess>>,
    /// For each `callx`: the helper id the verifier proved the register holds.
    pub callx: Vec<Option<u32>>,
    pub env: Arc<ProgEnv>,
}
