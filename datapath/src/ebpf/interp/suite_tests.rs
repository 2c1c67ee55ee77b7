//! The bpf_conformance suite, run by the interpreter: once on programs the
//! verifier built (the real path), once on programs from the test builder
//! (every access guarded, regions guessed from r10), so a verifier fact can
//! never hide an interpreter bug.

use std::path::Path;

use super::run;
use crate::ebpf::conformance::{list_files, load, suite_for_test, TestCase};
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

/// Runs one file: `Ok(())` when it passes, else the reason. A file with
/// `-- error` passes when the program is rejected or stops with an error.
fn check(path: &Path, prepare: Prepare) -> Result<(), String> {
    let tc = load(path).map_err(|e| e.to_string())?;
    let prog = match prepare(&tc) {
        Ok(p) => p,
        Err(_) if tc.expect_error => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut mem = tc.mem.clone();
    match (
        run(&prog, RunInput::mem(&mut mem)),
        tc.expect_error,
        tc.result,
    ) {
        (Err(_), true, _) => Ok(()),
        (Ok(r0), true, _) => Err(format!("expected an error, got r0 = {r0:#x}")),
        (Err(e), false, _) => Err(format!("run-time error: {e}")),
        (Ok(r0), false, Some(want)) if r0 == want => Ok(()),
        (Ok(r0), false, want) => Err(format!("r0 = {r0:#x}, expected {want:x?}")),
    }
}

fn run_suite(test: &str, prepare: Prepare) {
    let Some(dir) = suite_for_test(test).unwrap() else {
        return;
    };
    let files = list_files(&[dir]).unwrap();
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| {
            check(f, prepare)
                .err()
                .map(|e| format!("{}: {e}", f.display()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} files failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    assert_eq!(files.len(), 313);
}

#[test]
fn conformance_suite_verified() {
    run_suite("interp::conformance_suite_verified", verified);
}

#[test]
fn conformance_suite_unverified_all_guarded() {
    run_suite("interp::conformance_suite_unverified_all_guarded", built);
}
