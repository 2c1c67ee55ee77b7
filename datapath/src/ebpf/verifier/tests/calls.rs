//! Local calls, helpers and callx.

use super::*;

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
