//! Verifier tests: the conformance suite, one test per rejection class,
//! precision checks, soundness against the interpreter and a no-panic
//! property test. Shared helpers live here.

mod calls;
mod flow;
mod maps;
mod memory;
mod robustness;
mod soundness;
mod structure;
mod types;

use std::sync::Arc;

use super::{verify, verify_with_limit, Reason, VerifyError};
use crate::ebpf::asm::assemble;
use crate::ebpf::conformance;
use crate::ebpf::helpers::{ArgKind, Helper, HelperCtx, HelperExit, HelperRegistry};
use crate::ebpf::insn::{CodecError, Insn, Op};
use crate::ebpf::interp;
use crate::ebpf::vm::{CtxField, CtxLayout, Entry, MemAccess, Region};
use crate::ebpf::vm::{RunError, RunInput};
use crate::ebpf::{ProgEnv, Program};

fn mem_env() -> Arc<ProgEnv> {
    ProgEnv::mem()
}

fn ctx_env() -> Arc<ProgEnv> {
    Arc::new(ProgEnv {
        entry: Entry::Ctx(CtxLayout {
            size: 32,
            fields: vec![
                (0, 8, CtxField::PacketStart),
                (8, 8, CtxField::PacketEnd),
                (16, 4, CtxField::Scalar),
                (20, 4, CtxField::ScalarRw),
                (24, 8, CtxField::ScalarRw),
            ],
        }),
        helpers: HelperRegistry::standard(),
        budget: 1000,
        maps: Default::default(),
    })
}

fn asm(src: &str) -> Vec<Insn> {
    assemble(src).unwrap_or_else(|e| panic!("bad test program: {e}\n{src}"))
}

fn accept_in(env: &Arc<ProgEnv>, src: &str) -> Program {
    verify(&asm(src), env).unwrap_or_else(|e| panic!("rejected: {e}\n{src}"))
}

fn accept(src: &str) -> Program {
    accept_in(&mem_env(), src)
}

fn reject_in(env: &Arc<ProgEnv>, src: &str) -> (usize, Reason, String) {
    match verify(&asm(src), env) {
        Ok(_) => panic!("accepted:\n{src}"),
        Err(e @ VerifyError::At { .. }) => {
            let text = e.to_string();
            match e {
                VerifyError::At { pc, reason, .. } => (pc, reason, text),
                VerifyError::Empty => unreachable!(),
            }
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn reject(src: &str) -> (usize, Reason, String) {
    reject_in(&mem_env(), src)
}

fn acc(p: &Program, pc: usize) -> MemAccess {
    p.access[pc].unwrap_or_else(|| panic!("no access annotation at {pc}"))
}

const STACK: MemAccess = MemAccess {
    region: Region::Stack,
    guard: false,
};
const PKT_GUARDED: MemAccess = MemAccess {
    region: Region::Packet,
    guard: true,
};
const PKT_PROVEN: MemAccess = MemAccess {
    region: Region::Packet,
    guard: false,
};
const CTX: MemAccess = MemAccess {
    region: Region::Ctx,
    guard: false,
};

fn is_mem(op: &Option<Op>) -> bool {
    matches!(
        op,
        Some(Op::Ldx { .. } | Op::St { .. } | Op::Stx { .. } | Op::Atomic { .. })
    )
}

#[test]
fn whole_conformance_suite_verifies_with_annotations() {
    let Some(dir) = conformance::suite_for_test("verifier suite").expect("suite") else {
        return;
    };
    let files = conformance::list_files(&[dir]).expect("list");
    assert!(files.len() >= 313, "only {} files", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let case = conformance::load(f).expect("parse");
        match verify(&case.insns, &mem_env()) {
            Ok(p) if !case.expect_error => {
                for (pc, op) in p.ops.iter().enumerate() {
                    assert_eq!(
                        is_mem(op),
                        p.access[pc].is_some(),
                        "{}: annotation at {pc}",
                        f.display()
                    );
                    if matches!(op, Some(Op::CallX { .. })) {
                        assert!(p.callx[pc].is_some(), "{}: callx at {pc}", f.display());
                    }
                }
                // A proven access never fails at run time.
                let mut mem = case.mem.clone();
                if let Err(RunError::OutOfBounds { pc, .. }) =
                    interp::run(&p, RunInput::mem(&mut mem))
                {
                    assert!(
                        acc(&p, pc).guard,
                        "{}: proven access {pc} failed",
                        f.display()
                    );
                }
            }
            Ok(_) => {}
            Err(e) if case.expect_error => eprintln!("{}: rejected as expected: {e}", f.display()),
            Err(e) => failures.push(format!("{}: {e}", f.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
