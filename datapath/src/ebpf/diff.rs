//! Differential execution: one program, both engines, same input; the
//! interpreter is the reference and the JIT must agree on r0, on every error
//! and on the memory the program leaves behind: the packet, and the
//! contents of the environment's maps (cleared before each engine's run).

use std::sync::Arc;

use super::engine::LoadError;
use super::jit;
use super::verifier::{self, VerifyError};
use super::vm::{RunError, RunInput};
use super::{interp, Insn, ProgEnv};

/// What happened when both engines ran one program.
#[derive(Debug)]
pub enum DiffOutcome {
    /// The verifier refused the program (neither engine ran).
    Rejected(VerifyError),
    /// Both engines gave the same result and left the same memory.
    Agree(Result<u64, RunError>),
    /// They disagree: a bug in one of them (or in the verifier's proofs).
    Disagree {
        interp: Result<u64, RunError>,
        jit: Result<u64, RunError>,
        /// `true` when r0/errors agree but memory differs.
        memory_differs: bool,
        /// `true` when the maps' contents differ.
        maps_differ: bool,
    },
    /// The verifier accepted it but the JIT could not compile it.
    JitFailed(LoadError),
}

impl DiffOutcome {
    pub fn is_disagreement(&self) -> bool {
        matches!(
            self,
            DiffOutcome::Disagree { .. } | DiffOutcome::JitFailed(_)
        )
    }
}

/// Verifies `insns` and runs them on both engines over separate copies of `pkt`.
pub fn run_both(insns: &[Insn], pkt: &[u8], env: &Arc<ProgEnv>) -> DiffOutcome {
    let prog = match verifier::verify(insns, env) {
        Ok(p) => p,
        Err(e) => return DiffOutcome::Rejected(e),
    };
    let compiled = match jit::compile(&prog) {
        Ok(j) => j,
        Err(e) => return DiffOutcome::JitFailed(e.into()),
    };
    let maps = &env.maps;
    let mut m_interp = pkt.to_vec();
    let mut m_jit = pkt.to_vec();
    maps.clear();
    let r_interp = interp::run(&prog, RunInput::mem(&mut m_interp));
    let maps_interp = maps.snapshot();
    maps.clear();
    let r_jit = compiled.run(RunInput::mem(&mut m_jit));
    let maps_jit = maps.snapshot();
    if r_interp == r_jit && m_interp == m_jit && maps_interp == maps_jit {
        DiffOutcome::Agree(r_interp)
    } else {
        DiffOutcome::Disagree {
            memory_differs: m_interp != m_jit,
            maps_differ: maps_interp != maps_jit,
            interp: r_interp,
            jit: r_jit,
        }
    }
}
