//! Stack, packet and ctx accesses.

use super::*;

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
    let (_, r, _) = reject("stw [%r10-8], 1\nmov %r0, 0\nlock add [%r10-8], %r0\nexit");
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
    // A partial overwrite leaves the pointer's other bytes unreadable.
    let (pc, r, _) = reject(
        "stxdw [%r10-16], %r1\nstb [%r10-12], 0\nldxdw %r3, [%r10-16]\nldxb %r0, [%r3]\nexit",
    );
    assert_eq!((pc, r), (2, Reason::UninitStack { off: -16 }));
    let p = accept("stxdw [%r10-16], %r1\nstb [%r10-12], 0\nldxb %r0, [%r10-12]\nexit");
    assert_eq!(acc(&p, 2), STACK);
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

#[test]
fn ctx_accesses_must_lie_within_a_field() {
    let env = ctx_env();
    let p = accept_in(
        &env,
        "ldxw %r0, [%r1+16]\nstw [%r1+20], 1\nstxdw [%r1+24], %r0\nmov %r2, %r1\nadd %r2, 16\n\
         ldxw %r3, [%r2+4]\nexit",
    );
    for pc in [0, 1, 2, 5] {
        assert_eq!(acc(&p, pc), CTX, "pc {pc}");
    }
    // Number fields may be accessed in part, never across a field boundary.
    let p = accept_in(
        &env,
        "ldxh %r0, [%r1+16]\nldxb %r0, [%r1+19]\nsth [%r1+22], 1\nldxw %r0, [%r1+28]\nexit",
    );
    for pc in 0..4 {
        assert_eq!(acc(&p, pc), CTX, "pc {pc}");
    }
    let (_, r, _) = reject_in(&env, "ldxw %r0, [%r1+18]\nexit");
    assert_eq!(r, Reason::CtxNoField { off: 18, size: 4 });
    let (_, r, _) = reject_in(&env, "ldxdw %r0, [%r1+20]\nexit");
    assert_eq!(r, Reason::CtxNoField { off: 20, size: 8 });
    // Read-only stays read-only in part.
    let (_, r, _) = reject_in(&env, "sth [%r1+18], 1\nmov %r0, 0\nexit");
    assert_eq!(r, Reason::CtxReadOnly { off: 18 });
    // Packet pointers only whole.
    let (_, r, _) = reject_in(&env, "ldxw %r0, [%r1+0]\nexit");
    assert_eq!(r, Reason::CtxNoField { off: 0, size: 4 });
    let (_, r, _) = reject_in(&env, "ldxw %r0, [%r1+12]\nexit");
    assert_eq!(r, Reason::CtxNoField { off: 12, size: 4 });
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

#[test]
fn ctx_fields_overlapping_packet_pointers_are_not_writable() {
    let env = Arc::new(ProgEnv {
        entry: Entry::Ctx(CtxLayout {
            size: 16,
            fields: vec![
                (0, 8, CtxField::PacketStart),
                (8, 8, CtxField::PacketEnd),
                (4, 8, CtxField::ScalarRw),
                (12, 4, CtxField::ScalarRw),
            ],
        }),
        helpers: HelperRegistry::standard(),
        budget: 10,
        maps: Default::default(),
    });
    let (_, r, _) = reject_in(&env, "stdw [%r1+4], 0\nmov %r0, 0\nexit");
    assert_eq!(r, Reason::CtxReadOnly { off: 4 });
    let (_, r, _) = reject_in(&env, "stw [%r1+12], 0\nmov %r0, 0\nexit");
    assert_eq!(r, Reason::CtxReadOnly { off: 12 });
    // Reading them is fine.
    accept_in(&env, "ldxdw %r0, [%r1+4]\nexit");
}

/// Address bits differ between engines and runs, so a program may move
/// pointers around but never read them as numbers.
#[test]
fn pointer_bytes_are_never_readable_as_numbers() {
    // Only whole, aligned spills.
    let (pc, r, text) = reject("stxw [%r10-8], %r1\nmov %r0, 0\nexit");
    assert_eq!(
        (pc, r),
        (
            0,
            Reason::PartialSpill {
                reg: 1,
                kind: crate::ebpf::verifier::PtrKind::Packet
            }
        )
    );
    assert_eq!(
        text,
        "insn 0: stxw [%r10-8], %r1: r1 (packet pointer) can only be spilled whole, \
         to an 8-aligned stack slot"
    );
    let (_, r, _) = reject("stxdw [%r10-12], %r10\nmov %r0, 0\nexit");
    assert!(matches!(r, Reason::PartialSpill { reg: 10, .. }), "{r:?}");
    // No narrow or misaligned reads of a spilled pointer.
    let (_, r, _) = reject("stxdw [%r10-8], %r1\nldxb %r0, [%r10-5]\nexit");
    assert_eq!(r, Reason::PointerBytes { off: -8 });
    let (_, r, _) = reject("stxdw [%r10-16], %r1\nstdw [%r10-8], 0\nldxdw %r0, [%r10-12]\nexit");
    assert_eq!(r, Reason::PointerBytes { off: -16 });
    // No atomics on them, and no pointers as atomic operands.
    let (_, r, _) = reject("stxdw [%r10-8], %r1\nmov %r0, 1\nlock add [%r10-8], %r0\nexit");
    assert_eq!(r, Reason::PointerBytes { off: -8 });
    let (_, r, _) = reject("stdw [%r10-8], 0\nlock xchg [%r10-8], %r1\nmov %r0, 0\nexit");
    assert!(
        matches!(
            r,
            Reason::PointerLeak {
                region: Region::Stack,
                ..
            }
        ),
        "{r:?}"
    );
    // A pointer on one path and a number on the other: the bytes are lost.
    let (pc, r, _) = reject(
        "jeq %r2, 0, +2\nstxdw [%r10-8], %r1\nja +1\nstdw [%r10-8], 5\nldxdw %r0, [%r10-8]\nexit",
    );
    assert_eq!((pc, r), (4, Reason::UninitStack { off: -8 }));
    // Pointers into a callee's frame left in the caller's stack are
    // forgotten on return.
    let (pc, r, _) = reject(
        "mov %r1, %r10\nsub %r1, 8\ncall local f\nldxdw %r0, [%r10-8]\nexit\n\
         f:\nmov %r2, %r10\nstxdw [%r1], %r2\nmov %r0, 0\nexit",
    );
    assert_eq!((pc, r), (3, Reason::UninitStack { off: -8 }));
}

#[test]
fn narrow_loads_of_spilled_constants_are_exact() {
    // The byte at -6 of 0x1122334455667788 (little-endian) is 0x66; with it
    // as an index the stack access is proven in the frame.
    let p = accept(
        "lddw %r3, 0x1122334455667788\nstxdw [%r10-8], %r3\nldxb %r4, [%r10-6]\n\
         sub %r4, 0x60\nmov %r5, %r10\nsub %r5, %r4\nldxb %r0, [%r5-1]\nexit",
    );
    assert_eq!(acc(&p, 7), STACK);
    // Sign extension: 0x88 as a signed byte is -120.
    let (_, r, _) = reject(
        "lddw %r3, 0x1122334455667788\nstxdw [%r10-8], %r3\nldxsb %r4, [%r10-8]\n\
         mov %r5, %r10\nadd %r5, %r4\nstb [%r5-400], 0\nmov %r0, 0\nexit",
    );
    assert_eq!(
        r,
        Reason::StackOutOfFrame {
            lo: -520,
            hi: -520,
            size: 1
        }
    );
}

#[test]
fn variable_packet_offsets_are_proven_by_their_own_checks() {
    let env = ctx_env();
    // r2 = pkt + x (x a u16 from the ctx); `r2 + 20 > end` proves 20 bytes
    // past r2 whatever x is, for r2 and its copies and constant moves.
    let src = "ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\nldxh %r4, [%r1+16]\nmov %r0, 0\n\
               add %r2, %r4\nmov %r5, %r2\nadd %r5, 20\njgt %r5, %r3, +6\n\
               ldxh %r0, [%r2+18]\nldxw %r0, [%r2+18]\nldxb %r0, [%r5-1]\nldxb %r0, [%r5]\n\
               add %r2, 4\nldxdw %r0, [%r2+8]\nexit";
    let p = accept_in(&env, src);
    assert_eq!(acc(&p, 8), PKT_PROVEN);
    assert_eq!(acc(&p, 9), PKT_GUARDED, "bytes 18..22 exceed 20");
    assert_eq!(acc(&p, 10), PKT_PROVEN);
    assert_eq!(acc(&p, 11), PKT_GUARDED);
    assert_eq!(acc(&p, 13), PKT_PROVEN, "4 + 8 + 8 <= 20");
    // Below the variable base: proven only where the total offset cannot be
    // negative.
    let p = accept_in(
        &env,
        "ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\nldxh %r4, [%r1+16]\nmov %r0, 0\n\
         add %r4, 14\nadd %r2, %r4\nmov %r5, %r2\nadd %r5, 8\njgt %r5, %r3, +2\n\
         ldxb %r0, [%r2-14]\nldxb %r0, [%r2-15]\nexit",
    );
    assert_eq!(acc(&p, 9), PKT_PROVEN);
    assert_eq!(acc(&p, 10), PKT_GUARDED);
    // A check on a different variable offset proves nothing for this one.
    let p = accept_in(
        &env,
        "ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\nldxh %r4, [%r1+16]\nmov %r0, 0\n\
         mov %r6, %r2\nadd %r2, %r4\nldxh %r4, [%r1+18]\nadd %r6, %r4\n\
         mov %r5, %r6\nadd %r5, 20\njgt %r5, %r3, +2\nldxb %r0, [%r6]\nldxb %r0, [%r2]\nexit",
    );
    assert_eq!(acc(&p, 11), PKT_PROVEN);
    assert_eq!(acc(&p, 12), PKT_GUARDED);
    // Redoing the add in a loop gives a new value: an older copy loses the
    // proof (r6 keeps the previous iteration's pointer).
    let p = accept_in(
        &env,
        "ldxdw %r7, [%r1+0]\nldxdw %r3, [%r1+8]\nmov %r0, 0\nmov %r8, 0\nmov %r6, %r7\n\
         loop:\nldxh %r4, [%r1+16]\nmov %r2, %r7\nadd %r2, %r4\nmov %r5, %r2\nadd %r5, 4\n\
         jgt %r5, %r3, out\nldxw %r0, [%r2]\nldxb %r0, [%r6]\nmov %r6, %r2\nadd %r8, 1\n\
         jlt %r8, 3, loop\nout:\nexit",
    );
    assert_eq!(acc(&p, 11), PKT_PROVEN);
    assert_eq!(acc(&p, 12), PKT_GUARDED);
    // The reversed comparison, the not-taken edge, spills, and joins.
    let p = accept_in(
        &env,
        "ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\nldxh %r4, [%r1+16]\nmov %r0, 0\n\
         add %r2, %r4\nmov %r5, %r2\nadd %r5, 6\njge %r3, %r5, +1\nexit\n\
         stxdw [%r10-8], %r2\nldxh %r4, [%r1+18]\njeq %r4, 0, +1\nmov %r0, 1\n\
         ldxdw %r6, [%r10-8]\nldxh %r0, [%r6+4]\nexit",
    );
    assert_eq!(acc(&p, 14), PKT_PROVEN);
}

#[test]
fn joins_keep_a_variable_offset_only_where_both_sides_agree() {
    let env = ctx_env();
    // On one path r2 is checked for 8 bytes, on the other for 4: after the
    // join only 4 are proven.
    let p = accept_in(
        &env,
        "ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\nldxh %r4, [%r1+16]\nmov %r0, 0\n\
         add %r2, %r4\nldxw %r6, [%r1+20]\nmov %r5, %r2\njeq %r6, 0, +3\n\
         add %r5, 8\njgt %r5, %r3, out\nja +2\nadd %r5, 4\njgt %r5, %r3, out\n\
         ldxw %r0, [%r2]\nldxb %r0, [%r2+4]\nout:\nexit",
    );
    assert_eq!(acc(&p, 13), PKT_PROVEN);
    assert_eq!(acc(&p, 14), PKT_GUARDED);
    // Two different variable offsets joined: nothing is known.
    let p = accept_in(
        &env,
        "ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\nldxh %r4, [%r1+16]\nmov %r0, 0\n\
         ldxw %r6, [%r1+20]\njeq %r6, 0, +2\nadd %r2, %r4\nja +1\nadd %r2, %r4\n\
         mov %r5, %r2\nadd %r5, 8\njgt %r5, %r3, +1\nldxw %r0, [%r2]\nexit",
    );
    assert_eq!(acc(&p, 12), PKT_GUARDED);
}

/// A misaligned locked access is a split lock (SIGBUS on some kernels), so
/// atomics must be provably aligned: never on packet memory.
#[test]
fn atomics_must_be_provably_aligned() {
    accept("stdw [%r10-8], 0\nmov %r1, 1\nlock add [%r10-8], %r1\nmov %r0, 0\nexit");
    accept("stw [%r10-4], 0\nmov %r1, 1\nlock add32 [%r10-4], %r1\nmov %r0, 0\nexit");
    let (pc, r, _) =
        reject("stdw [%r10-16], 0\nmov %r1, 1\nlock add [%r10-12], %r1\nmov %r0, 0\nexit");
    assert_eq!(
        (pc, r),
        (
            2,
            Reason::AtomicUnaligned {
                region: Region::Stack,
                lo: -12,
                hi: -12,
                size: 8
            }
        )
    );
    let (pc, r, _) = reject("mov %r3, 1\nlock add [%r1+0], %r3\nmov %r0, 0\nexit");
    assert_eq!(pc, 1);
    assert!(
        matches!(
            r,
            Reason::AtomicUnaligned {
                region: Region::Packet,
                ..
            }
        ),
        "{r:?}"
    );
}
