//! The bpf_conformance suite through the JIT: on programs the verifier built
//! (guards only where it could not prove an access) and on programs from the
//! test builder (every access guarded). Every run is also compared with the
//! interpreter: same result or error, same memory afterwards.

use std::path::Path;

use super::*;
use crate::ebpf::conformance::{list_files, load, suite_for_test, TestCase};
use crate::ebpf::interp;
use crate::ebpf::verifier::verify;

fn verified(tc: &TestCase) -> Result<Program, String> {
    verify(&tc.insns, &ProgEnv::mem()).map_err(|e| format!("rejected: {e}"))
}

fn built(tc: &TestCase) -> Result<Program, String> {
    insn::decode_all(&tc.insns).map_err(|(pc, e)| format!("insn {pc}: {e}"))?;
    Ok(program(tc.insns.clone(), ProgEnv::mem(), true))
}

fn check(path: &Path, prepare: fn(&TestCase) -> Result<Program, String>) -> Result<(), String> {
    let tc = load(path).map_err(|e| e.to_string())?;
    let prog = match prepare(&tc) {
        Ok(p) => p,
        Err(_) if tc.expect_error => return Ok(()),
        Err(e) => return Err(e),
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
    match (by_jit, tc.expect_error, tc.result) {
        (Err(_), true, _) => Ok(()),
        (Ok(r0), true, _) => Err(format!("expected an error, got r0 = {r0:#x}")),
        (Err(e), false, _) => Err(format!("run-time error: {e}")),
        (Ok(r0), false, Some(want)) if r0 == want => Ok(()),
        (Ok(r0), false, want) => Err(format!("r0 = {r0:#x}, expected {want:x?}")),
    }
}

fn run_suite(test: &str, prepare: fn(&TestCase) -> Result<Program, String>) {
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
    assert!(files.iter().any(|f| f.ends_with("callx.data")));
}

#[test]
fn conformance_suite_verified() {
    run_suite("jit::conformance_suite_verified", verified);
}

#[test]
fn conformance_suite_unverified_all_guarded() {
    run_suite("jit::conformance_suite_unverified_all_guarded", built);
}
