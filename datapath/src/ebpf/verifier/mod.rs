//! The verifier: decides whether a program is safe to run and annotates it
//! with the facts the engines rely on.
//!
//! Two passes:
//! 1. [`cfg`]: structural checks (decoding, registers, jump targets, helper
//!    ids, no fall-through past the end).
//! 2. [`analyze`]: abstract interpretation over the control-flow graph,
//!    tracking for every register whether it is uninitialised, a scalar
//!    (bounds and known bits, see [`scalar`]) or a pointer into the context,
//!    the stack, or the packet, plus per-byte stack initialisation. Every
//!    load, store and atomic gets its region and whether it needs a run-time
//!    bounds check (`Program.access`).
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
