//! The bpf_conformance suite, run by the interpreter: once on programs the
//! verifier built (the real path), once on programs from the test builder
//! (every access guarded, regions guessed from r10), so a verifier fact can
//! never hide an interpreter bug.

use super::run;
use crate::ebpf::conformance::{assert_suite_passes, TestCase};
use crate::ebpf::engine::verdict;
use crate::ebpf::insn::decode_all;
use crate::ebpf::verifier::verify;
use crate::ebpf::vm::RunInput;
use crate::ebpf::{ProgEnv, Program};

/// How a file's program is turned into a [`Program`].
type Prepare = fn(&TestCase) -> Result<Program, String>;

fn verified(tc: &TestCase) -> Result<Program, String> {
    verify(&tc.insns, &ProgEnv::mem()).map_err(|e| format!("rejected: {e}"))
}

fn built(tc: &TestCase) -> Result<Program, String> {
    let ops: Vec<_> = decode_all(&tc.insns)
        .map_err(|(pc, e)| format!("insn {pc}: {e}"))?
        .into_iter()
        .map(|(_, op)| op)
        .collect();
    Ok(super::tests::build(&ops, ProgEnv::mem()))
}

/// Runs one case: `Ok(())` when it passes, else the reason (see
/// [`verdict`]).
fn check(tc: &TestCase, prepare: Prepare) -> Result<(), String> {
    let outcome = prepare(tc).and_then(|prog| {
        let mut mem = tc.mem.clone();
        run(&prog, RunInput::mem(&mut mem)).map_err(|e| format!("run-time error: {e}"))
    });
    verdict(tc, outcome).into_result()
}

fn run_suite(test: &str, prepare: Prepare) {
    assert_suite_passes(test, |tc| check(tc, prepare));
}

#[test]
fn conformance_suite_verified() {
    run_suite("interp::conformance_suite_verified", verified);
}

#[test]
fn conformance_suite_unverified_all_guarded() {
    run_suite("interp::conformance_suite_unverified_all_guarded", built);
}
