//! Register types: uninitialised reads, scalars as pointers, pointer arithmetic, leaks.

use super::*;

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
                kind: crate::ebpf::verifier::PtrKind::Packet
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
    // (Atomics on packet memory are refused before the leak is even considered.)
    let (_, r, _) = reject("lock xchg [%r1], %r1\nmov %r0, 0\nexit");
    assert!(matches!(r, Reason::AtomicUnaligned { .. }), "{r:?}");
}
