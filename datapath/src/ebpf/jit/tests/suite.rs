//! The bpf_conformance suite through the JIT: on programs the verifier built
//! (guards only where it could not prove an access) and on programs from the
//! test builder (every access guarded). Every run is also compared with the
//! interpreter: same result or error, same memory afterwards.

use super::*;
use crate::ebpf::conformance::{assert_suite_passes, TestCase};
use crate::ebpf::engine::verdict;
use crate::ebpf::interp;
use crate::ebpf::verifier::verify;

/// How a file's program is turned into a [`Program`].
type Prepare = fn(&TestCase) -> Result<Program, String>;

fn verified(tc: &TestCase) -> Result<Program, String> {
    verify(&tc.insns, &ProgEnv::mem()).map_err(|e| format!("rejected: {e}"))
}

fn built(tc: &TestCase) -> Result<Program, String> {
    insn::decode_all(&tc.insns).map_err(|(pc, e)| format!("insn {pc}: {e}"))?;
    Ok(program(tc.insns.clone(), ProgEnv::mem(), true))
}

/// Runs one case through the JIT and the interpreter: `Ok(())` when they
/// agree (result or error, memory afterwards) and the case passes (see
/// [`verdict`]), else the reason.
fn check(tc: &TestCase, prepare: Prepare) -> Result<(), String> {
    let prog = match prepare(tc) {
        Ok(p) => p,
        Err(e) => return verdict(tc, Err(e)).into_result(),
    };
    let jp = compile(&prog).map_err(|e| format!("JIT compile failed: {e}"))?;
    // Same buffer for both engines, so addresses agree too.
    let mut mem = tc.mem.clone();
    let by_interp = interp::run(&prog, RunInput::mem(&mut mem));
    let mem_interp = mem.clone();
    mem.copy_from_slice(&tc.mem);
    let by_jit = jp.run(RunInput::mem(&mut mem));
    if by_jit != by_interp {
        return Err(format!("jit {by_jit:x?} but interpreter {by_interp:x?}"));
    }
    if mem != mem_interp {
        return Err("memory after the run differs from the interpreter's".into());
    }
    verdict(tc, by_jit.map_err(|e| format!("run-time error: {e}"))).into_result()
}

fn run_suite(test: &str, prepare: Prepare) {
    let files = assert_suite_passes(test, |tc| check(tc, prepare));
    if let Some(files) = files {
        assert!(files.iter().any(|f| f.ends_with("callx.data")));
    }
}

#[test]
fn conformance_suite_verified() {
    run_suite("jit::conformance_suite_verified", verified);
}

#[test]
fn conformance_suite_unverified_all_guarded() {
    run_suite("jit::conformance_suite_unverified_all_guarded", built);
}
