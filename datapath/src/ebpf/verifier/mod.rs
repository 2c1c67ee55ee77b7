//! The verifier: decides whether a program is safe to run and annotates it
//! with the facts the engines rely on.
//!
//! Two passes:
//! 1. `cfg`: structural checks (decoding, registers, r10 read-only, jump
//!    and call targets, no fall-through past the end, helper ids, no map
//!    `lddw`).
//! 2. `analyze`: abstract interpretation over the control-flow graph.
//!    Every register is uninitialised, a scalar (unsigned and signed bounds
//!    plus known bits, see `scalar` and `tnum`) or a pointer into the
//!    context, a stack frame, or the packet (with an offset range), or the
//!    packet end; each stack frame tracks per-byte initialisation and
//!    8-byte register spills. States are joined where control flow merges
//!    and widened (first to the constants the program compares against) so
//!    loops converge. Conditional jumps refine their operands on both edges
//!    and edges that cannot be taken are not followed. `call local` is
//!    analysed per call chain (each chain of call sites is its own context).
//!
//! Every load, store and atomic gets its region and whether it needs a
//! run-time bounds check (`Program.access`): stack and ctx accesses are
//! always proven; a packet access is proven when its offset range plus size
//! lies within the packet length established by a comparison (`len < N`
//! on [`crate::ebpf::Entry::MemLen`]'s r2, or kernel-style `pkt + N > end`),
//! or, for a pointer with a variable offset (`p = pkt + x`), within what a
//! kernel-style check of `p` itself (or a copy of it moved by a constant)
//! proved past `p` (`state::VarOff`).
//!
//! Ctx accesses must lie within one field of the layout: packet-pointer
//! fields are read whole (8 bytes), number fields may be read or written
//! (if writable) in part, with any access size.
//!
//! Limits: the analysis stops with [`Reason::TooComplex`] after
//! [`MAX_STEPS`] steps and with [`Reason::TooManyStates`] when stored
//! states would hold more than [`MAX_STORED_FRAMES`] call frames; static
//! call chains deeper than [`crate::ebpf::vm::MAX_CALL_DEPTH`] are rejected,
//! recursion is left to the run-time depth check.
//!
//! Helpers: arguments are checked against their [`ArgKind`]s
//! (`ArgKind::Ctx`: the ctx pointer itself, offset 0); a helper flagged
//! `changes_packet` kills every packet pointer (registers and spills) and
//! what was proven of the packet's length, so the program must reload
//! `data` / `data_end` from the ctx and check again.
//!
//! Assumptions the proofs make of the engines: the ctx buffer is at least
//! `CtxLayout::size` bytes, its packet-window fields
//! ([`crate::ebpf::vm::CtxLayout::window_fields`]) describe the Packet
//! region the engines check against (the program cannot write them; the
//! engines re-read them after `changes_packet` helpers and refuse any other
//! helper that changes them), and each call level gets its own 512-byte
//! frame.
//!
//! [`ArgKind`]: crate::ebpf::helpers::ArgKind
//!
//! Errors name the instruction index, the instruction and a structured
//! [`Reason`].

mod analyze;
mod cfg;
mod error;
mod mem;
mod refine;
mod scalar;
mod state;
mod step;
mod tnum;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use analyze::MAX_STORED_FRAMES;
pub use error::{Reason, VerifyError};
pub use state::PtrKind;

use super::insn::{Insn, Op};
use super::vm::{MemAccess, Region};
use super::{ProgEnv, Program};

/// Default cap on instructions interpreted during analysis (counting
/// revisits), after which a program is rejected as too complex.
pub const MAX_STEPS: usize = 1 << 20;

/// Verifies `insns` for `env` and returns the annotated program.
pub fn verify(insns: &[Insn], env: &Arc<ProgEnv>) -> Result<Program, VerifyError> {
    verify_with_limit(insns, env, MAX_STEPS)
}

/// [`verify`] with a custom cap on analysis steps.
pub fn verify_with_limit(
    insns: &[Insn],
    env: &Arc<ProgEnv>,
    max_steps: usize,
) -> Result<Program, VerifyError> {
    let cfg = cfg::check(insns, env)?;
    let mut an = analyze::Analyzer::new(insns, &cfg, env, max_steps);
    an.run()?;
    let mut access = std::mem::take(&mut an.access);
    let callx = std::mem::take(&mut an.callx);
    // Memory instructions the analysis never reached cannot run; give them a
    // checked annotation anyway so every load/store has one.
    for (slot, op) in access.iter_mut().zip(&cfg.ops) {
        let is_mem = matches!(
            op,
            Some(Op::Ldx { .. } | Op::St { .. } | Op::Stx { .. } | Op::Atomic { .. })
        );
        if is_mem && slot.is_none() {
            *slot = Some(MemAccess {
                region: Region::Packet,
                guard: true,
            });
        }
    }
    Ok(Program {
        insns: insns.to_vec(),
        ops: cfg.ops,
        access,
        callx,
        env: Arc::clone(env),
    })
}
