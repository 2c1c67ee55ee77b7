//! The bpf_conformance suite, run by the interpreter.

use std::path::Path;

use super::run;
use crate::ebpf::conformance::{list_files, load, suite_for_test};
use crate::ebpf::insn::decode_all;
use crate::ebpf::vm::RunInput;
use crate::ebpf::ProgEnv;

/// Runs one file: `Ok(())` when it passes, else the reason.
fn check(path: &Path) -> Result<(), String> {
    let tc = load(path).map_err(|e| e.to_string())?;
    let ops: Vec<_> = match decode_all(&tc.insns) {
        Ok(d) => d.into_iter().map(|(_, op)| op).collect(),
        Err(_) if tc.expect_error => return Ok(()),
        Err((pc, e)) => return Err(format!("insn {pc}: {e}")),
    };
    let prog = super::tests::build(&ops, ProgEnv::mem());
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

#[test]
fn conformance_suite() {
    let Some(dir) = suite_for_test("interp::conformance_suite").unwrap() else {
        return;
    };
    let files = list_files(&[dir]).unwrap();
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| check(f).err().map(|e| format!("{}: {e}", f.display())))
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
