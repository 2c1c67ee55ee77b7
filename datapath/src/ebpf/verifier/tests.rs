//! Verifier tests: the conformance suite, one test per rejection class,
//! precision checks and a no-panic property test.

use std::sync::Arc;

use super::{verify, verify_with_limit, Reason, VerifyError};
use crate::ebpf::asm::assemble;
use crate::ebpf::conformance;
use crate::ebpf::helpers::{ArgKind, Helper, HelperCtx, HelperExit, HelperRegistry};
use crate::ebpf::insn::{CodecError, Insn, Op};
use crate::ebpf::vm::{CtxField, CtxLayout, Entry, MemAccess, Region};
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
            }
            Ok(_) => {}
            Err(e) if case.expect_error => eprintln!("{}: rejected as expected: {e}", f.display()),
            Err(e) => failures.push(format!("{}: {e}", f.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---- structural rejections ----

#[test]
fn empty_program_is_rejected() {
    assert_eq!(verify(&[], &mem_env()).err(), Some(VerifyError::Empty));
}

#[test]
fn bad_opcode_is_rejected_with_raw_text() {
    let prog = [Insn::new(0xff, 0, 0, 0, 0), asm("exit")[0]];
    let e = verify(&prog, &mem_env()).unwrap_err();
    assert_eq!(
        e.reason(),
        Some(&Reason::Decode(CodecError::UnknownOpcode { op: 0xff }))
    );
    assert_eq!(e.pc(), Some(0));
    assert!(
        e.to_string().starts_with("insn 0: .raw 0x00000000000000ff"),
        "{e}"
    );
}

#[test]
fn bad_register_is_rejected() {
    let mut prog = asm("mov %r0, 0\nexit");
    prog[0].dst = 11;
    let e = verify(&prog, &mem_env()).unwrap_err();
    assert_eq!(
        e.reason(),
        Some(&Reason::Decode(CodecError::BadRegister {
            op: 0xb7,
            reg: 11
        }))
    );
}

#[test]
fn jumps_out_of_range_are_rejected() {
    let (pc, r, _) = reject("mov %r0, 0\nja +5\nexit");
    assert_eq!((pc, r), (1, Reason::JumpOutOfRange { target: 7, len: 3 }));
    let (pc, r, _) = reject("mov %r0, 0\njeq %r0, 0, -3\nexit");
    assert_eq!((pc, r), (1, Reason::JumpOutOfRange { target: -1, len: 3 }));
    let (_, r, _) = reject("mov %r0, 0\ncall local +9\nexit");
    assert_eq!(r, Reason::JumpOutOfRange { target: 11, len: 3 });
}

#[test]
fn jump_into_second_half_of_lddw_is_rejected() {
    let (pc, r, _) = reject("ja +1\nlddw %r0, 1\nexit");
    assert_eq!((pc, r), (0, Reason::JumpIntoLddw { target: 2 }));
    let (_, r, _) = reject("mov %r0, 0\ncall local +1\nlddw %r0, 1\nexit");
    assert_eq!(r, Reason::JumpIntoLddw { target: 3 });
}

#[test]
fn falling_off_the_end_is_rejected() {
    let (pc, r, _) = reject("mov %r0, 0");
    assert_eq!((pc, r), (0, Reason::FallsOffEnd));
    let (pc, r, _) = reject("mov %r0, 0\njeq %r0, 0, -2");
    assert_eq!((pc, r), (1, Reason::FallsOffEnd));
    let (_, r, _) = reject("mov %r0, 0\nexit\ncall 5");
    assert_eq!(r, Reason::FallsOffEnd);
    // A final unconditional jump is fine.
    accept("mov %r0, 0\nja +1\nja -2\nexit");
}

#[test]
fn writes_to_r10_are_rejected() {
    for src in [
        "mov %r10, 0\nexit",
        "add %r10, 8\nexit",
        "neg %r10\nexit",
        "le16 %r10\nexit",
        "lddw %r10, 5\nexit",
        "ldxdw %r10, [%r1]\nexit",
        "stdw [%r10-8], 0\nlock fetch add [%r10-8], %r10\nexit",
        "stdw [%r10-8], 0\nlock xchg [%r10-8], %r10\nexit",
    ] {
        let (_, r, _) = reject(src);
        assert_eq!(r, Reason::WriteToR10, "{src}");
    }
    // Reading r10 is fine, and cmpxchg writes r0, not src.
    accept("stdw [%r10-8], 0\nmov %r0, 0\nlock cmpxchg [%r10-8], %r10\nmov %r0, 0\nexit");
}

#[test]
fn unknown_helpers_are_rejected() {
    let (pc, r, text) = reject("mov %r0, 0\ncall 99\nexit");
    assert_eq!((pc, r), (1, Reason::UnknownHelper { id: 99 }));
    assert_eq!(text, "insn 1: call 99: unknown helper 99");
    let (_, r, _) = reject("call -1\nexit");
    assert_eq!(r, Reason::UnknownHelper { id: -1 });
}

#[test]
fn lddw_of_a_map_is_rejected() {
    let (_, r, _) = reject("lddw %r1, map 3\nmov %r0, 0\nexit");
    assert_eq!(r, Reason::LddwMap { kind: 1 });
}

// ---- register types ----

#[test]
fn uninitialised_registers_cannot_be_read() {
    let (pc, r, text) = reject("mov %r0, %r3\nexit");
    assert_eq!((pc, r), (0, Reason::UninitRegister { reg: 3 }));
    assert_eq!(text, "insn 0: mov %r0, %r3: r3 is not initialised");
    let (pc, r, _) = reject("exit");
    assert_eq!((pc, r), (0, Reason::UninitRegister { reg: 0 }));
    let (_, r, _) = reject("mov %r0, 1\njeq %r4, 0, +0\nexit");
    assert_eq!(r, Reason::UninitRegister { reg: 4 });
    let (_, r, _) = reject("stxdw [%r10-8], %r6\nmov %r0, 0\nexit");
    assert_eq!(r, Reason::UninitRegister { reg: 6 });
    // Only on one path: still rejected after the join.
    let (pc, r, _) = reject("jeq %r2, 0, +1\nmov %r0, 1\nexit");
    assert_eq!((pc, r), (2, Reason::UninitRegister { reg: 0 }));
}

#[test]
fn scalars_are_not_pointers() {
    let (pc, r, text) = reject("mov %r3, 5\nldxw %r0, [%r3+4]\nexit");
    assert_eq!((pc, r), (1, Reason::ScalarAsPointer { reg: 3 }));
    assert_eq!(
        text,
        "insn 1: ldxw %r0, [%r3+4]: r3 is a scalar, not a pointer"
    );
    let (_, r, _) = reject("mov %r0, 0\nstw [%r2], 1\nexit");
    assert_eq!(r, Reason::ScalarAsPointer { reg: 2 });
    let (_, r, _) = reject("mov %r0, 0\nmov %r3, 1\nlock add [%r3], %r0\nexit");
    assert_eq!(r, Reason::ScalarAsPointer { reg: 3 });
}

#[test]
fn only_pointer_plus_minus_scalar_is_allowed() {
    for (src, op) in [
        ("mul %r1, 2", "mul"),
        ("or %r1, 1", "or"),
        ("add32 %r1, 1", "32-bit arithmetic"),
        ("mov32 %r1, %r1", "32-bit mov"),
    ] {
        let (_, r, _) = reject(&format!("{src}\nmov %r0, 0\nexit"));
        assert!(
            matches!(r, Reason::PointerArithmetic { op: o, reg: 1, .. } if o == op),
            "{src}: {r:?}"
        );
    }
    let (_, r, _) = reject("mov %r3, %r10\nadd %r3, %r1\nmov %r0, 0\nexit");
    assert!(
        matches!(r, Reason::PointerArithmetic { op: "add", .. }),
        "{r:?}"
    );
    let (_, r, _) = reject("neg %r1\nmov %r0, 0\nexit");
    assert!(matches!(r, Reason::PointerArithmetic { op: "neg", .. }));
    let (_, r, _) = reject("mov %r3, %r10\nsub %r3, %r1\nmov %r0, 0\nexit");
    assert!(matches!(
        r,
        Reason::PointerArithmetic {
            op: "sub",
            reg: 1,
            ..
        }
    ));
    // Allowed: ptr + scalar, scalar + ptr, ptr - scalar, ptr - ptr (same region).
    accept(
        "mov %r3, 4\nadd %r3, %r1\nsub %r3, 2\nmov %r0, %r3\nsub %r0, %r1\n\
         ldxb %r4, [%r3]\nexit",
    );
}

#[test]
fn pointer_difference_is_a_usable_scalar() {
    // (r10 - 8) - r10 = -8, a constant offset that can address the stack.
    let p = accept(
        "stdw [%r10-8], 7\nmov %r2, %r10\nsub %r2, 8\nsub %r2, %r10\n\
         mov %r3, %r10\nadd %r3, %r2\nldxdw %r0, [%r3]\nexit",
    );
    assert_eq!(acc(&p, 6), STACK);
}

#[test]
fn exiting_with_a_pointer_is_rejected() {
    let (pc, r, _) = reject("mov %r0, %r1\nexit");
    assert_eq!(
        (pc, r),
        (
            1,
            Reason::PointerReturned {
                kind: super::PtrKind::Packet
            }
        )
    );
    let (_, r, _) = reject("mov %r0, %r10\nexit");
    assert!(matches!(r, Reason::PointerReturned { .. }));
}

#[test]
fn pointers_cannot_be_stored_into_the_packet_or_ctx() {
    let (_, r, _) = reject("stxdw [%r1], %r10\nmov %r0, 0\nexit");
    assert!(matches!(
        r,
        Reason::PointerLeak {
            reg: 10,
            region: Region::Packet,
            ..
        }
    ));
    let (_, r, _) = reject_in(&ctx_env(), "stxdw [%r1+24], %r1\nmov %r0, 0\nexit");
    assert!(matches!(
        r,
        Reason::PointerLeak {
            region: Region::Ctx,
            ..
        }
    ));
    let (_, r, _) = reject("lock xchg [%r1], %r1\nmov %r0, 0\nexit");
    assert!(matches!(r, Reason::PointerLeak { .. }));
}

// ---- stack ----

#[test]
fn stack_accesses_must_stay_in_the_frame() {
    let (pc, r, text) = reject("stw [%r10-516], 1\nmov %r0, 0\nexit");
    assert_eq!(
        (pc, r),
        (
            0,
            Reason::StackOutOfFrame {
                lo: -516,
                hi: -516,
                size: 4
            }
        )
    );
    assert!(text.contains("[-516, -516]"), "{text}");
    let (_, r, _) = reject("stb [%r10], 1\nmov %r0, 0\nexit");
    assert_eq!(
        r,
        Reason::StackOutOfFrame {
            lo: 0,
            hi: 0,
            size: 1
        }
    );
    let (_, r, _) = reject("stdw [%r10-4], 1\nmov %r0, 0\nexit");
    assert_eq!(
        r,
        Reason::StackOutOfFrame {
            lo: -4,
            hi: -4,
            size: 8
        }
    );
    // Edges of the frame are fine.
    let p = accept("stdw [%r10-512], 1\nstb [%r10-1], 1\nmov %r0, 0\nexit");
    assert_eq!(acc(&p, 0), STACK);
    // A variable offset that may leave the frame.
    let (_, r, _) =
        reject("ldxb %r3, [%r1]\nmov %r2, %r10\nsub %r2, %r3\nstb [%r2-300], 1\nmov %r0, 0\nexit");
    assert_eq!(
        r,
        Reason::StackOutOfFrame {
            lo: -555,
            hi: -300,
            size: 1
        }
    );
}

#[test]
fn uninitialised_stack_bytes_cannot_be_read() {
    let (pc, r, _) = reject("ldxdw %r0, [%r10-8]\nexit");
    assert_eq!((pc, r), (0, Reason::UninitStack { off: -8 }));
    let (_, r, _) = reject("stw [%r10-8], 1\nldxdw %r0, [%r10-8]\nexit");
    assert_eq!(r, Reason::UninitStack { off: -4 });
    let (_, r, _) = reject("stw [%r10-8], 1\nmov %r0, 0\nlock add32 [%r10-6], %r0\nexit");
    assert_eq!(r, Reason::UninitStack { off: -4 });
    // Initialised on one path only.
    let (_, r, _) = reject("jeq %r2, 0, +1\nstdw [%r10-8], 1\nldxdw %r0, [%r10-8]\nexit");
    assert_eq!(r, Reason::UninitStack { off: -8 });
    accept("sth [%r10-2], 1\nldxh %r0, [%r10-2]\nexit");
}

#[test]
fn spills_keep_pointer_types() {
    let p =
        accept("stxdw [%r10-16], %r1\nmov %r1, 0\nldxdw %r3, [%r10-16]\nldxb %r0, [%r3+2]\nexit");
    assert_eq!(acc(&p, 0), STACK);
    assert_eq!(acc(&p, 3), PKT_GUARDED);
    // A partial overwrite turns the slot into plain bytes.
    let (_, r, _) = reject(
        "stxdw [%r10-16], %r1\nstb [%r10-12], 0\nldxdw %r3, [%r10-16]\nldxb %r0, [%r3]\nexit",
    );
    assert_eq!(r, Reason::ScalarAsPointer { reg: 3 });
    // A spilled scalar keeps its bounds: this index stays inside the frame.
    accept(
        "ldxb %r3, [%r1]\nand %r3, 7\nstxdw [%r10-8], %r3\nldxdw %r4, [%r10-8]\n\
         mov %r5, %r10\nsub %r5, %r4\nstb [%r5-16], 1\nmov %r0, 0\nexit",
    );
}

#[test]
fn variable_stack_offsets_use_known_bits() {
    // stack.data with an unknown index: lookup[x % 2] with 8-byte entries.
    let p = accept(
        "ldxb %r1, [%r1]\nstdw [%r10-16], 0xab\nstdw [%r10-8], 0xcd\n\
         and %r1, 1\nlsh %r1, 3\nmov %r2, %r10\nadd %r2, %r1\nldxdw %r0, [%r2-16]\nexit",
    );
    assert_eq!(acc(&p, 7), STACK);
    // x % 4 could index past the table and out of the frame.
    let (pc, r, _) = reject(
        "ldxb %r1, [%r1]\nstdw [%r10-16], 0xab\nstdw [%r10-8], 0xcd\n\
         and %r1, 3\nlsh %r1, 3\nmov %r2, %r10\nadd %r2, %r1\nldxdw %r0, [%r2-16]\nexit",
    );
    assert_eq!(
        (pc, r),
        (
            7,
            Reason::StackOutOfFrame {
                lo: -16,
                hi: 8,
                size: 8
            }
        )
    );
    // In the frame but over uninitialised bytes.
    let (_, r, _) = reject(
        "ldxb %r1, [%r1]\nstdw [%r10-16], 0xab\nand %r1, 1\nlsh %r1, 3\n\
         mov %r2, %r10\nadd %r2, %r1\nldxdw %r0, [%r2-16]\nexit",
    );
    assert_eq!(r, Reason::UninitStack { off: -8 });
}

// ---- packet ----

#[test]
fn packet_accesses_are_guarded_unless_proven() {
    // MemLen: nothing is known about the length.
    let p = accept("ldxh %r0, [%r1+12]\nexit");
    assert_eq!(acc(&p, 0), PKT_GUARDED);
    // Comparing the length register proves it.
    let p = accept(
        "mov %r0, 0\njlt %r2, 14, +3\nldxh %r0, [%r1+12]\nldxw %r3, [%r1+12]\nstb [%r1+13], 1\nexit",
    );
    assert_eq!(acc(&p, 2), PKT_PROVEN);
    assert_eq!(acc(&p, 3), PKT_GUARDED, "bytes 12..16 exceed 14");
    assert_eq!(acc(&p, 4), PKT_PROVEN);
    // pkt + len is the packet end; a kernel-style check on it proves bounds.
    let p = accept(
        "mov %r3, %r1\nadd %r3, %r2\nmov %r4, %r1\nadd %r4, 20\nmov %r0, 0\n\
         jgt %r4, %r3, +2\nldxw %r0, [%r1+16]\nldxw %r0, [%r1+17]\nexit",
    );
    assert_eq!(acc(&p, 6), PKT_PROVEN);
    assert_eq!(acc(&p, 7), PKT_GUARDED);
    // Proven on one path only: guarded.
    let p = accept("mov %r0, 0\njlt %r2, 4, +0\nldxw %r0, [%r1]\nexit");
    assert_eq!(acc(&p, 2), PKT_GUARDED);
    // Negative offsets are never proven.
    let p = accept("mov %r0, 0\njlt %r2, 4, +1\nldxb %r0, [%r1-1]\nexit");
    assert_eq!(acc(&p, 2), PKT_GUARDED);
}

#[test]
fn ctx_packet_pointers_get_kernel_style_bounds() {
    let env = ctx_env();
    let src = "ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\nmov %r0, 0\n\
               mov %r4, %r2\nadd %r4, 14\njgt %r4, %r3, +3\n\
               ldxh %r0, [%r2+12]\nldxw %r5, [%r2+12]\nldxb %r5, [%r4-1]\nexit";
    let p = accept_in(&env, src);
    assert_eq!(acc(&p, 0), CTX);
    assert_eq!(acc(&p, 1), CTX);
    assert_eq!(acc(&p, 6), PKT_PROVEN);
    assert_eq!(acc(&p, 7), PKT_GUARDED);
    assert_eq!(acc(&p, 8), PKT_PROVEN);
    // The reversed comparison proves the same on its taken edge.
    let p = accept_in(
        &env,
        "ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\nmov %r0, 0\nmov %r4, %r2\nadd %r4, 8\n\
         jge %r3, %r4, +1\nexit\nldxdw %r0, [%r2]\nexit",
    );
    assert_eq!(acc(&p, 7), PKT_PROVEN);
    // The packet end cannot be dereferenced or moved.
    let (_, r, _) = reject_in(&env, "ldxdw %r3, [%r1+8]\nldxb %r0, [%r3-1]\nexit");
    assert_eq!(r, Reason::PacketEndAccess { reg: 3 });
    let (_, r, _) = reject_in(&env, "ldxdw %r3, [%r1+8]\nsub %r3, 1\nmov %r0, 0\nexit");
    assert!(matches!(r, Reason::PointerArithmetic { reg: 3, .. }));
}

// ---- ctx ----

#[test]
fn ctx_accesses_must_match_a_field() {
    let env = ctx_env();
    let p = accept_in(
        &env,
        "ldxw %r0, [%r1+16]\nstw [%r1+20], 1\nstxdw [%r1+24], %r0\nmov %r2, %r1\nadd %r2, 16\n\
         ldxw %r3, [%r2+4]\nexit",
    );
    for pc in [0, 1, 2, 5] {
        assert_eq!(acc(&p, pc), CTX, "pc {pc}");
    }
    let (_, r, _) = reject_in(&env, "ldxh %r0, [%r1+16]\nexit");
    assert_eq!(r, Reason::CtxNoField { off: 16, size: 2 });
    let (_, r, _) = reject_in(&env, "ldxw %r0, [%r1+18]\nexit");
    assert_eq!(r, Reason::CtxNoField { off: 18, size: 4 });
    let (_, r, _) = reject_in(&env, "ldxdw %r0, [%r1+32]\nexit");
    assert_eq!(r, Reason::CtxNoField { off: 32, size: 8 });
    let (_, r, _) = reject_in(&env, "stw [%r1+16], 1\nmov %r0, 0\nexit");
    assert_eq!(r, Reason::CtxReadOnly { off: 16 });
    let (_, r, _) = reject_in(&env, "mov %r0, 0\nstxdw [%r1+0], %r0\nexit");
    assert_eq!(r, Reason::CtxReadOnly { off: 0 });
    let (_, r, text) = reject_in(
        &env,
        "ldxw %r2, [%r1+16]\nand %r2, 4\nadd %r1, %r2\nldxw %r0, [%r1+16]\nexit",
    );
    assert_eq!(
        r,
        Reason::CtxVariableOffset {
            reg: 1,
            lo: 16,
            hi: 20
        }
    );
    assert!(text.starts_with("insn 3: ldxw %r0, [%r1+16]: "), "{text}");
    // Atomics only on writable fields.
    accept_in(&env, "mov %r0, 1\nlock add32 [%r1+20], %r0\nexit");
    let (_, r, _) = reject_in(&env, "mov %r0, 1\nlock add32 [%r1+16], %r0\nexit");
    assert_eq!(r, Reason::CtxReadOnly { off: 16 });
}

// ---- control flow ----

#[test]
fn branches_never_taken_are_not_explored() {
    // The jump is always taken: the uninitialised read is dead code.
    let p = accept("mov %r0, 0\njeq %r0, 0, +2\nmov %r0, %r9\nldxdw %r0, [%r9]\nexit");
    // Unreached memory instructions still get a (guarded) annotation.
    assert_eq!(acc(&p, 3), PKT_GUARDED);
    // 32-bit comparisons look only at the low half.
    accept("lddw %r0, 0x100000000\njeq32 %r0, 0, +1\nmov %r0, %r9\nexit");
    let (_, r, _) = reject("lddw %r0, 0x100000000\njeq %r0, 0, +1\nmov %r0, %r9\nexit");
    assert_eq!(r, Reason::UninitRegister { reg: 9 });
}

#[test]
fn comparisons_refine_both_branches() {
    // r3 < 64 on the fall-through edge of `jge r3, 64`: a stack index.
    let src = "ldxh %r3, [%r1]\nmov %r0, 0\njge %r3, 64, +4\nmov %r4, %r10\nsub %r4, %r3\n\
               stb [%r4-1], 1\nexit\nmov %r4, %r10\nsub %r4, %r3\nstb [%r4-1], 1\nexit";
    let (pc, r, _) = reject(src);
    assert_eq!(
        (pc, r),
        (
            9,
            Reason::StackOutOfFrame {
                lo: -65536,
                hi: -65,
                size: 1
            }
        )
    );
    // Signed comparisons bound signed values.
    accept(
        "ldxb %r3, [%r1]\nmovsx864 %r3, %r3\nmov %r0, 0\njsgt %r3, 0, +3\njslt %r3, -64, +2\n\
         mov %r4, %r10\nadd %r4, %r3\nexit",
    );
}

#[test]
fn bounded_loops_are_accepted() {
    // Sum of the first 100 bytes of the packet (guarded loads).
    let p = accept(
        "mov %r0, 0\nmov %r3, 0\nloop:\nmov %r4, %r1\nadd %r4, %r3\nldxb %r5, [%r4]\n\
         add %r0, %r5\nadd %r3, 1\njlt %r3, 100, loop\nexit",
    );
    assert_eq!(acc(&p, 4), PKT_GUARDED);
    // A loop filling a stack buffer: the counter widens to the loop bound,
    // so every store stays in the frame.
    let p = accept(
        "mov %r3, 0\nfill:\nmov %r4, %r10\nsub %r4, 64\nadd %r4, %r3\nstb [%r4], 0\nadd %r3, 1\n\
         jlt %r3, 64, fill\nmov %r0, %r3\nexit",
    );
    assert_eq!(acc(&p, 4), STACK);
    // Nested loops.
    accept(
        "mov %r0, 0\nmov %r3, 0\nouter:\nmov %r4, 0\ninner:\nadd %r0, 1\nadd %r4, 1\n\
         jlt %r4, 10, inner\nadd %r3, 1\njlt %r3, 10, outer\nexit",
    );
    // An unbounded loop is left to the run-time budget.
    accept("mov %r0, 0\nja -1\nexit");
    // Variable-offset stack writes do not initialise bytes (which ones is
    // unknown), so reading the buffer back is rejected.
    let (_, r, _) = reject(
        "mov %r3, 0\nfill:\nmov %r4, %r10\nsub %r4, 64\nadd %r4, %r3\nstb [%r4], 0\nadd %r3, 1\n\
         jlt %r3, 64, fill\nldxb %r0, [%r10-63]\nexit",
    );
    assert_eq!(r, Reason::UninitStack { off: -63 });
}

#[test]
fn analysis_work_is_capped() {
    let src = "mov %r0, 0\nmov %r3, 0\nloop:\nadd %r0, 1\nadd %r3, 1\njlt %r3, 1000, loop\nexit";
    let insns = asm(src);
    let e = verify_with_limit(&insns, &mem_env(), 10).unwrap_err();
    assert_eq!(e.reason(), Some(&Reason::TooComplex { steps: 10 }));
    assert!(verify_with_limit(&insns, &mem_env(), 1000).is_ok());
}

/// Seven levels of functions, each calling the next four times: 4^7 call
/// contexts, far beyond the default cap. Must stop with an error, quickly.
#[test]
fn exponential_call_fanout_stops_cleanly() {
    let mut src = String::from("mov %r0, 0\ncall local f1\nexit\n");
    for level in 1..=7 {
        src.push_str(&format!("f{level}:\nmov %r0, 0\n"));
        if level < 7 {
            for _ in 0..4 {
                src.push_str(&format!("call local f{}\n", level + 1));
            }
        }
        for _ in 0..40 {
            src.push_str("add %r0, 1\n");
        }
        src.push_str("exit\n");
    }
    let start = std::time::Instant::now();
    let Err(e) = verify(&asm(&src), &mem_env()) else {
        panic!("accepted");
    };
    assert!(
        matches!(
            e.reason(),
            Some(Reason::TooComplex { .. } | Reason::TooManyStates { .. })
        ),
        "{e}"
    );
    assert!(start.elapsed().as_secs() < 30);
}

// ---- calls ----

#[test]
fn local_calls_follow_the_calling_convention() {
    accept(
        "mov %r1, 1\nmov %r6, 6\nmov %r2, %r10\nsub %r2, 8\ncall local f\n\
         add %r0, %r6\nldxdw %r3, [%r10-8]\nadd %r0, %r3\nexit\n\
         f:\nstdw [%r2], 5\nmov %r0, %r1\nstdw [%r10-8], 1\nexit",
    );
    // r6-r9 are uninitialised in the callee.
    let (pc, r, _) = reject("mov %r6, 6\ncall local f\nexit\nf:\nmov %r0, %r6\nexit");
    assert_eq!((pc, r), (3, Reason::UninitRegister { reg: 6 }));
    // r1-r5 are clobbered after the return.
    let (pc, r, _) = reject("mov %r1, 1\ncall local f\nmov %r0, %r1\nexit\nf:\nmov %r0, 0\nexit");
    assert_eq!((pc, r), (2, Reason::UninitRegister { reg: 1 }));
    // The callee's frame is its own: the caller's initialised bytes are not.
    let (_, r, _) = reject("stdw [%r10-8], 1\ncall local f\nexit\nf:\nldxdw %r0, [%r10-8]\nexit");
    assert_eq!(r, Reason::UninitStack { off: -8 });
    // Returning a pointer into the callee's own frame is rejected.
    let (_, r, _) = reject("call local f\nmov %r0, 0\nexit\nf:\nmov %r0, %r10\nexit");
    assert_eq!(r, Reason::ReturnsOwnStack);
}

#[test]
fn static_call_depth_is_limited() {
    let chain = |n: usize| {
        let mut src = String::from("call local f1\nexit\n");
        for i in 1..n {
            src.push_str(&format!("f{i}:\ncall local f{}\nexit\n", i + 1));
        }
        src.push_str(&format!("f{n}:\nmov %r0, 0\nexit\n"));
        src
    };
    accept(&chain(7)); // 8 frames with the entry
    let (_, r, _) = reject(&chain(8));
    assert_eq!(r, Reason::CallDepth { depth: 9 });
    // Recursion with a base case is left to the run-time depth check.
    accept(
        "mov %r1, 3\ncall local f\nexit\n\
         f:\nmov %r0, 0\njeq %r1, 0, +2\nsub %r1, 1\ncall local f\nexit",
    );
}

#[test]
fn a_memory_instruction_has_one_region() {
    // The function is called with a stack pointer and with a packet pointer.
    let (pc, r, _) = reject(
        "mov %r6, %r1\nstdw [%r10-8], 0\nmov %r1, %r10\nsub %r1, 8\ncall local f\n\
         mov %r1, %r6\ncall local f\nexit\nf:\nldxb %r0, [%r1]\nexit",
    );
    assert_eq!(pc, 8);
    assert!(matches!(r, Reason::RegionConflict { reg: 1, .. }), "{r:?}");
}

#[test]
fn callx_needs_a_known_helper_id() {
    let p = accept("mov %r1, 1\nmov %r2, 5\ncall %r2\nexit");
    assert_eq!(p.callx[2], Some(5));
    let (_, r, _) = reject("mov %r1, 1\nmov %r0, 5\ncall %r4\nexit");
    assert_eq!(r, Reason::UninitRegister { reg: 4 });
    let (_, r, _) = reject("ldxb %r3, [%r1]\nmov %r1, 1\ncall %r3\nexit");
    assert_eq!(r, Reason::CallxNotConstant { reg: 3 });
    let (_, r, _) = reject("mov %r1, 1\nmov %r3, 77\ncall %r3\nexit");
    assert_eq!(r, Reason::CallxUnknownHelper { reg: 3, value: 77 });
    let (_, r, _) = reject("mov %r3, %r10\nmov %r1, 1\ncall %r3\nexit");
    assert_eq!(r, Reason::CallxNotConstant { reg: 3 });
}

fn add_helper(_: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    Ok(a[0].wrapping_add(a[1]))
}

#[test]
fn helper_arguments_are_checked() {
    let mut reg = HelperRegistry::new();
    reg.register(Helper {
        id: 9,
        name: "add",
        args: [
            ArgKind::Scalar,
            ArgKind::Any,
            ArgKind::Scalar,
            ArgKind::Unused,
            ArgKind::Unused,
        ],
        func: add_helper,
    });
    let env = Arc::new(ProgEnv {
        entry: Entry::MemLen,
        helpers: Arc::new(reg),
        budget: 100,
    });
    accept_in(&env, "mov %r1, 1\nmov %r2, %r10\nmov %r3, 0\ncall 9\nexit");
    // MemLen: r1 is the packet pointer at entry.
    let (pc, r, text) = reject_in(&env, "mov %r3, 0\ncall 9\nexit");
    assert_eq!(
        (pc, r),
        (
            1,
            Reason::HelperArg {
                id: 9,
                name: "add",
                arg: 1,
                expected: ArgKind::Scalar,
                actual: "a packet pointer"
            }
        )
    );
    assert_eq!(
        text,
        "insn 1: call 9: helper 9 (add) argument r1 must be Scalar, is a packet pointer"
    );
    let (_, r, _) = reject_in(&env, "mov %r1, 1\ncall 9\nexit");
    assert_eq!(r, Reason::UninitRegister { reg: 3 });
    // Unused arguments may be anything, even uninitialised.
    accept_in(&env, "mov %r1, 1\nmov %r3, 1\nmov %r5, %r10\ncall 9\nexit");
    // After the call r1-r5 are clobbered and r0 is a scalar.
    let (_, r, _) = reject_in(
        &env,
        "mov %r1, 1\nmov %r2, 2\nmov %r3, 0\ncall 9\nadd %r0, %r1\nexit",
    );
    assert_eq!(r, Reason::UninitRegister { reg: 1 });
}

// ---- robustness ----

mod props {
    use super::*;
    use proptest::prelude::*;

    /// Slots biased towards valid opcodes and small registers and offsets.
    fn slot() -> impl Strategy<Value = Insn> {
        let ops = prop_oneof![
            any::<u8>(),
            prop::sample::select(vec![
                0x07u8, 0x0f, 0x17, 0x1f, 0xb7, 0xbf, 0xb4, 0xbc, 0x57, 0x67, 0x77, 0x87, 0x05,
                0x15, 0x1d, 0x25, 0x2d, 0xa5, 0xad, 0x16, 0x85, 0x8d, 0x95, 0x18, 0x00, 0x61, 0x69,
                0x71, 0x79, 0x62, 0x6a, 0x72, 0x7a, 0x63, 0x6b, 0x73, 0x7b, 0xc3, 0xdb, 0x91, 0xd4,
                0xdc
            ]),
        ];
        (
            ops,
            0u8..12,
            0u8..12,
            prop_oneof![-20i16..20, any::<i16>(), (-64i16..0).prop_map(|v| v * 8)],
            prop_oneof![-20i32..20, any::<i32>(), Just(5), Just(1)],
        )
            .prop_map(|(op, dst, src, off, imm)| Insn::new(op, dst, src, off, imm))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn random_slots_never_panic(insns in prop::collection::vec(slot(), 1..40), ctx in any::<bool>()) {
            let env = if ctx { ctx_env() } else { mem_env() };
            if let Ok(p) = verify(&insns, &env) {
                for (pc, op) in p.ops.iter().enumerate() {
                    prop_assert_eq!(is_mem(op), p.access[pc].is_some());
                }
            }
        }
    }
}
