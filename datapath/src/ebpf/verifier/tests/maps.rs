//! Maps: handles, lookups and null checks, proven value accesses, key and
//! value arguments.

use super::*;
use crate::ebpf::maps::{MapDef, MapKind, Maps};
use crate::ebpf::verifier::PtrKind;

/// Map 0: array, 16-byte values, 4 entries. Map 1: hash, 8-byte keys,
/// 12-byte values.
fn map_env() -> Arc<ProgEnv> {
    let maps = Maps::new([
        MapDef {
            kind: MapKind::Array,
            key_size: 4,
            value_size: 16,
            max_entries: 4,
        },
        MapDef {
            kind: MapKind::Hash,
            key_size: 8,
            value_size: 12,
            max_entries: 8,
        },
    ])
    .unwrap();
    Arc::new(ProgEnv {
        entry: Entry::MemLen,
        helpers: HelperRegistry::with_maps(),
        budget: 1000,
        maps: Arc::new(maps),
    })
}

fn ok(src: &str) -> Program {
    accept_in(&map_env(), src)
}

fn bad(src: &str) -> (usize, Reason) {
    let (pc, r, _) = reject_in(&map_env(), src);
    (pc, r)
}

/// Looks up key 1 in map 0: r0 = the result; r6 = a copy of it.
const LOOKUP0: &str = "stw [%r10-4], 1\nlddw %r1, map 0\nmov %r2, %r10\nadd %r2, -4\n\
                       call 1\nmov %r6, %r0\n";

#[test]
fn lookups_must_be_null_checked() {
    // pc: 0 stw, 1-2 lddw, 3 mov, 4 add, 5 call, 6 mov.
    let p = ok(&format!(
        "{LOOKUP0}jeq %r0, 0, out\nldxdw %r1, [%r0+8]\nstw [%r0+12], 3\nldxb %r0, [%r6+15]\n\
         out:\nmov %r0, 0\nexit"
    ));
    assert_eq!(
        acc(&p, 8),
        MemAccess {
            region: Region::Map(0),
            guard: false
        }
    );
    // The copy in r6 was checked with r0.
    assert_eq!(acc(&p, 10).region, Region::Map(0));
    // Without the check.
    assert_eq!(
        bad(&format!("{LOOKUP0}ldxdw %r1, [%r0]\nmov %r0, 0\nexit")),
        (7, Reason::MaybeNull { reg: 0 })
    );
    // On the null edge r0 is 0, a number.
    ok(&format!(
        "{LOOKUP0}jne %r0, 0, out\nadd %r0, 1\nexit\nout:\nmov %r0, 0\nexit"
    ));
    // With the operands the other way round, and with jne.
    ok(&format!(
        "{LOOKUP0}mov %r3, 0\njeq %r3, %r0, out\nldxw %r1, [%r6]\nout:\nmov %r0, 0\nexit"
    ));
    ok(&format!(
        "{LOOKUP0}jne %r6, 0, use\nmov %r0, 0\nexit\nuse:\nldxw %r0, [%r0]\nexit"
    ));
    // The result cannot be moved before the check, nor returned.
    let (_, r) = bad(&format!("{LOOKUP0}add %r0, 4\nmov %r0, 0\nexit"));
    assert!(
        matches!(r, Reason::PointerArithmetic { reg: 0, .. }),
        "{r:?}"
    );
    let (_, r) = bad(&format!("{LOOKUP0}exit"));
    assert!(matches!(r, Reason::PointerReturned { .. }), "{r:?}");
}

#[test]
fn value_accesses_are_proven_within_the_value() {
    let (pc, r) = bad(&format!(
        "{LOOKUP0}jeq %r0, 0, out\nldxdw %r1, [%r0+9]\nout:\nmov %r0, 0\nexit"
    ));
    assert_eq!(
        (pc, r),
        (
            8,
            Reason::MapValueOutOfBounds {
                map: 0,
                lo: 9,
                hi: 9,
                size: 8,
                value_size: 16
            }
        )
    );
    let (_, r) = bad(&format!(
        "{LOOKUP0}jeq %r0, 0, out\nldxb %r1, [%r0-1]\nout:\nmov %r0, 0\nexit"
    ));
    assert!(matches!(r, Reason::MapValueOutOfBounds { lo: -1, .. }));
    // A variable offset proven by a mask.
    let p = ok(&format!(
        "{LOOKUP0}jeq %r0, 0, out\nldxdw %r1, [%r0]\nand %r1, 7\nadd %r0, %r1\n\
         ldxdw %r1, [%r0]\nout:\nmov %r0, 0\nexit"
    ));
    assert!(!acc(&p, 11).guard);
    // Unbounded: rejected (never guarded at run time).
    let (_, r) = bad(&format!(
        "{LOOKUP0}jeq %r0, 0, out\nldxdw %r1, [%r0]\nadd %r0, %r1\n\
         ldxb %r1, [%r0]\nout:\nmov %r0, 0\nexit"
    ));
    assert!(
        matches!(r, Reason::MapValueOutOfBounds { map: 0, .. }),
        "{r:?}"
    );
    // Pointers never go into a map value; atomics must be aligned.
    let (_, r) = bad(&format!(
        "{LOOKUP0}jeq %r0, 0, out\nstxdw [%r0], %r10\nout:\nmov %r0, 0\nexit"
    ));
    assert!(matches!(
        r,
        Reason::PointerLeak {
            region: Region::Map(0),
            ..
        }
    ));
    ok(&format!(
        "{LOOKUP0}jeq %r0, 0, out\nmov %r1, 1\nlock add [%r0+8], %r1\n\
         lock fetch add32 [%r0+4], %r1\nout:\nmov %r0, 0\nexit"
    ));
    let (_, r) = bad(&format!(
        "{LOOKUP0}jeq %r0, 0, out\nmov %r1, 1\nlock add [%r0+4], %r1\nout:\nmov %r0, 0\nexit"
    ));
    assert_eq!(
        r,
        Reason::AtomicUnaligned {
            region: Region::Map(0),
            lo: 4,
            hi: 4,
            size: 8
        }
    );
}

#[test]
fn handles_go_only_to_map_helpers() {
    let (_, r) = bad("lddw %r1, map 0\nadd %r1, 8\nmov %r0, 0\nexit");
    assert!(
        matches!(r, Reason::PointerArithmetic { reg: 1, .. }),
        "{r:?}"
    );
    let (_, r) = bad("lddw %r1, map 0\nldxb %r0, [%r1]\nexit");
    assert_eq!(r, Reason::MapHandleAccess { reg: 1 });
    let (_, r) = bad("lddw %r1, map 0\njeq %r1, 0, +0\nmov %r0, 0\nexit");
    assert!(
        matches!(r, Reason::PointerComparison { reg: 1, .. }),
        "{r:?}"
    );
    let (_, r) = bad("lddw %r1, map 2\nmov %r0, 0\nexit");
    assert_eq!(r, Reason::UnknownMap { index: 2 });
    // A scalar is not a handle.
    let (_, r) =
        bad("stw [%r10-4], 1\nmov %r1, 0\nmov %r2, %r10\nadd %r2, -4\ncall 1\nmov %r0, 0\nexit");
    assert!(matches!(
        r,
        Reason::HelperArg {
            arg: 1,
            expected: ArgKind::MapHandle,
            ..
        }
    ));
    // Spilled and reloaded whole, it is still a handle.
    ok(
        "stw [%r10-4], 1\nlddw %r1, map 0\nstxdw [%r10-16], %r1\nldxdw %r1, [%r10-16]\n\
        mov %r2, %r10\nadd %r2, -4\ncall 1\nmov %r0, 0\nexit",
    );
}

#[test]
fn keys_and_values_are_initialised_memory_of_the_right_size() {
    // Map 1: 8-byte keys, 12-byte values.
    ok(
        "stdw [%r10-8], 1\nstdw [%r10-24], 2\nstw [%r10-16], 3\nlddw %r1, map 1\n\
        mov %r2, %r10\nadd %r2, -8\nmov %r3, %r10\nadd %r3, -24\nmov %r4, 0\ncall 2\nexit",
    );
    // Only 4 initialised bytes of the key.
    let (_, r) = bad("stw [%r10-8], 1\nlddw %r1, map 1\nmov %r2, %r10\nadd %r2, -8\ncall 3\nexit");
    assert_eq!(r, Reason::UninitStack { off: -4 });
    // The key runs past the frame.
    let (_, r) = bad("stdw [%r10-8], 1\nlddw %r1, map 1\nmov %r2, %r10\nadd %r2, -4\ncall 3\nexit");
    assert_eq!(
        r,
        Reason::ArgMemory {
            reg: 2,
            lo: -4,
            hi: -4,
            size: 8,
            region: Region::Stack
        }
    );
    // A spilled pointer is not key material.
    let (_, r) =
        bad("stxdw [%r10-8], %r10\nlddw %r1, map 1\nmov %r2, %r10\nadd %r2, -8\ncall 3\nexit");
    assert_eq!(r, Reason::PointerBytes { off: -8 });
    // The packet is not either.
    let (_, r) = bad("mov %r2, %r1\nlddw %r1, map 1\ncall 3\nexit");
    assert_eq!(
        r,
        Reason::ArgNotMemory {
            reg: 2,
            kind: PtrKind::Packet
        }
    );
    // A map value is (map 0's 16-byte value holds map 1's 8-byte key and
    // 12-byte value), within its bounds.
    ok(&format!(
        "{LOOKUP0}jeq %r0, 0, out\nlddw %r1, map 1\nmov %r2, %r6\nmov %r3, %r6\nadd %r3, 4\n\
         mov %r4, 0\ncall 2\nout:\nmov %r0, 0\nexit"
    ));
    let (_, r) = bad(&format!(
        "{LOOKUP0}jeq %r0, 0, out\nlddw %r1, map 1\nmov %r2, %r6\nmov %r3, %r6\nadd %r3, 5\n\
         mov %r4, 0\ncall 2\nout:\nmov %r0, 0\nexit"
    ));
    assert_eq!(
        r,
        Reason::ArgMemory {
            reg: 3,
            lo: 5,
            hi: 5,
            size: 12,
            region: Region::Map(0)
        }
    );
    // An unchecked lookup result is not.
    let (_, r) = bad(&format!(
        "{LOOKUP0}lddw %r1, map 1\nmov %r2, %r6\ncall 3\nmov %r0, 0\nexit"
    ));
    assert_eq!(r, Reason::MaybeNull { reg: 2 });
}

#[test]
fn a_null_check_refines_copies_of_the_same_lookup_only() {
    // r7: another lookup's result; checking r0 says nothing about it.
    let (pc, r) = bad(&format!(
        "{LOOKUP0}mov %r7, %r0
lddw %r1, map 0
mov %r2, %r10
add %r2, -4
call 1
         jeq %r0, 0, out
ldxw %r1, [%r0]
ldxw %r1, [%r7]
out:
mov %r0, 0
exit"
    ));
    assert_eq!((pc, r), (15, Reason::MaybeNull { reg: 7 }));
    // Results of two lookups joined: a copy of the joined value is checked
    // alone (the join has no single lookup to tie the copies to).
    let (pc, r) = bad("stw [%r10-4], 1
lddw %r1, map 0
mov %r2, %r10
add %r2, -4
         ldxw %r3, [%r2]
jeq %r3, 7, other
call 1
ja join
         other:
call 1
join:
mov %r7, %r0
jeq %r0, 0, out
ldxw %r1, [%r0]
ldxw %r1, [%r7]
         out:
mov %r0, 0
exit");
    assert_eq!((pc, r), (13, Reason::MaybeNull { reg: 7 }));
}

#[test]
fn map_pointers_are_neither_subtracted_nor_ordered() {
    let two = format!(
        "{LOOKUP0}jeq %r0, 0, out\nstw [%r10-8], 2\nlddw %r1, map 0\nmov %r2, %r10\nadd %r2, -8\n\
         call 1\njeq %r0, 0, out\n"
    );
    let (_, r) = bad(&format!("{two}sub %r0, %r6\nexit\nout:\nmov %r0, 0\nexit"));
    assert!(matches!(r, Reason::PointerArithmetic { .. }), "{r:?}");
    let (_, r) = bad(&format!("{two}jgt %r0, %r6, out\nout:\nmov %r0, 0\nexit"));
    assert!(matches!(r, Reason::PointerComparison { .. }), "{r:?}");
}
