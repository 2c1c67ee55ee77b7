//! Control flow: branch pruning, refinement, loops, analysis limits.

use super::*;

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
