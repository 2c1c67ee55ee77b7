//! Choosing an execution engine, and judging bpf_conformance test cases.
//!
//! Loading a program always goes through the verifier; the JIT only ever sees
//! a verified [`Program`].

use std::sync::Arc;

use thiserror::Error;

use super::conformance::TestCase;
use super::jit::{self, JitError, JitProgram};
use super::verifier::{self, VerifyError};
use super::vm::{RunError, RunInput};
use super::{interp, Insn, ProgEnv, Program};

/// Which engine runs a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    Interp,
    Jit,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Interp => "interp",
            Engine::Jit => "jit",
        }
    }
}

impl std::str::FromStr for Engine {
    type Err = LoadError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "interp" => Ok(Engine::Interp),
            "jit" => Ok(Engine::Jit),
            other => Err(LoadError::UnknownEngine(other.to_string())),
        }
    }
}

/// Why a program could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LoadError {
    #[error("verifier: {0}")]
    Verify(#[from] VerifyError),
    #[error("jit: {0}")]
    Jit(#[from] JitError),
    #[error("unknown engine {0:?} (expected interp or jit)")]
    UnknownEngine(String),
}

/// A verified program, ready to run on one engine.
pub enum Loaded {
    Interp(Program),
    Jit(JitProgram),
}

impl Loaded {
    /// Verifies `insns` for `env` and prepares them for `engine`.
    pub fn load(insns: &[Insn], env: &Arc<ProgEnv>, engine: Engine) -> Result<Loaded, LoadError> {
        let prog = verifier::verify(insns, env)?;
        Ok(match engine {
            Engine::Interp => Loaded::Interp(prog),
            Engine::Jit => Loaded::Jit(jit::compile(&prog)?),
        })
    }

    pub fn run(&self, input: RunInput<'_>) -> Result<u64, RunError> {
        match self {
            Loaded::Interp(p) => interp::run(p, input),
            Loaded::Jit(j) => j.run(input),
        }
    }

    /// Whether a run may call helpers (`true` when not known: the
    /// interpreter's programs). A context-entry program that calls none
    /// leaves its packet window where it was.
    #[inline]
    pub fn may_call_helpers(&self) -> bool {
        match self {
            Loaded::Interp(_) => true,
            Loaded::Jit(j) => j.calls_helpers(),
        }
    }

    /// Where the program's machine code starts (JIT only), for prefetching.
    #[inline]
    pub fn code_addr(&self) -> Option<usize> {
        match self {
            Loaded::Interp(_) => None,
            Loaded::Jit(j) => j.code_addr(),
        }
    }
}

/// The verdict on one conformance case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Expected an error and got one (the message says which).
    PassRejected(String),
    Fail(String),
}

impl Verdict {
    pub fn passed(&self) -> bool {
        !matches!(self, Verdict::Fail(_))
    }

    /// `Err` with the reason for a failure, `Ok` otherwise.
    pub fn into_result(self) -> Result<(), String> {
        match self {
            Verdict::Fail(e) => Err(e),
            _ => Ok(()),
        }
    }
}

/// Judges `outcome`, what loading and running `case` gave (r0, or why the
/// program was rejected or stopped): a case with `-- error` passes when
/// there is an error; otherwise r0 must equal `-- result`.
pub fn verdict(case: &TestCase, outcome: Result<u64, String>) -> Verdict {
    match (outcome, case.expect_error, case.result) {
        (Err(e), true, _) => Verdict::PassRejected(e),
        (Ok(r0), true, _) => Verdict::Fail(format!("expected an error, got r0 = {r0:#x}")),
        (Err(e), false, _) => Verdict::Fail(e),
        (Ok(r0), false, Some(want)) if r0 == want => Verdict::Pass,
        (Ok(r0), false, Some(want)) => Verdict::Fail(format!("r0 = {r0:#x}, expected {want:#x}")),
        (Ok(r0), false, None) => Verdict::Fail(format!("r0 = {r0:#x}, but the file has no result")),
    }
}

/// Runs one conformance case on `engine` and judges it ([`verdict`]).
pub fn judge(case: &TestCase, engine: Engine) -> Verdict {
    let mut mem = case.mem.clone();
    let outcome = Loaded::load(&case.insns, &ProgEnv::mem(), engine)
        .map_err(|e| e.to_string())
        .and_then(|l| l.run(RunInput::mem(&mut mem)).map_err(|e| e.to_string()));
    verdict(case, outcome)
}
