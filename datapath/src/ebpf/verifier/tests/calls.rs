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
        changes_packet: false,
        ret: Default::default(),
    });
    let env = Arc::new(ProgEnv {
        entry: Entry::MemLen,
        helpers: Arc::new(reg),
        budget: 100,
        maps: Default::default(),
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

/// The ctx environment with helper 9 `touch(ctx, x)`, which may move the
/// packet, and helper 10 `peek(ctx)`, which does not.
fn packet_helper_env() -> Arc<ProgEnv> {
    let mut reg = HelperRegistry::new();
    for (id, name, changes_packet) in [(9, "touch", true), (10, "peek", false)] {
        reg.register(Helper {
            id,
            name,
            args: [
                ArgKind::Ctx,
                if id == 9 {
                    ArgKind::Scalar
                } else {
                    ArgKind::Unused
                },
                ArgKind::Unused,
                ArgKind::Unused,
                ArgKind::Unused,
            ],
            func: add_helper,
            changes_packet,
            ret: Default::default(),
        });
    }
    let Entry::Ctx(layout) = ctx_env().entry.clone() else {
        unreachable!()
    };
    Arc::new(ProgEnv {
        entry: Entry::Ctx(layout),
        helpers: Arc::new(reg),
        budget: 100,
        maps: Default::default(),
    })
}

#[test]
fn ctx_arguments_must_be_the_ctx_itself() {
    let env = packet_helper_env();
    accept_in(&env, "mov %r2, 1\ncall 9\nmov %r0, 0\nexit");
    // A copy of r1 is the ctx too.
    accept_in(
        &env,
        "mov %r6, %r1\nmov %r1, %r6\ncall 10\nmov %r0, 0\nexit",
    );
    let bad = |src: &str, actual: &'static str| {
        let (_, r, _) = reject_in(&env, src);
        assert_eq!(
            r,
            Reason::HelperArg {
                id: 10,
                name: "peek",
                arg: 1,
                expected: ArgKind::Ctx,
                actual
            },
            "{src}"
        );
    };
    bad(
        "add %r1, 8\ncall 10\nexit",
        "a ctx pointer with a non-zero offset",
    );
    bad("mov %r1, %r10\ncall 10\nexit", "a stack pointer");
    bad("mov %r1, 0\ncall 10\nexit", "a scalar");
    bad("ldxdw %r1, [%r1]\ncall 10\nexit", "a packet pointer");
    let (_, r, _) = reject_in(&env, "mov %r1, %r2\ncall 10\nexit");
    assert_eq!(r, Reason::UninitRegister { reg: 2 });
}

#[test]
fn packet_changing_helpers_kill_packet_pointers() {
    let env = packet_helper_env();
    // Checked packet pointer in r6 and spilled to the stack.
    let prologue = "mov %r9, %r1\nldxdw %r6, [%r1]\nldxdw %r7, [%r1+8]\n\
                    mov %r3, %r6\nadd %r3, 4\njgt %r3, %r7, out\n\
                    stxdw [%r10-8], %r6\nmov %r1, %r9\nmov %r2, 0\n";
    // Without a packet-changing call, both stay usable and proven.
    let p = accept_in(
        &env,
        &format!("{prologue}call 10\nldxw %r0, [%r6]\nldxdw %r8, [%r10-8]\nldxw %r0, [%r8]\nexit\nout:\nmov %r0, 0\nexit"),
    );
    assert!(!acc(&p, 10).guard && !acc(&p, 12).guard);
    // After `touch` the register is dead...
    let (pc, r, _) = reject_in(
        &env,
        &format!("{prologue}call 9\nldxw %r0, [%r6]\nexit\nout:\nmov %r0, 0\nexit"),
    );
    assert_eq!((pc, r), (10, Reason::UninitRegister { reg: 6 }));
    // ... the spill's bytes are unreadable...
    let (pc, r, _) = reject_in(
        &env,
        &format!("{prologue}call 9\nldxdw %r8, [%r10-8]\nmov %r0, 0\nexit\nout:\nmov %r0, 0\nexit"),
    );
    assert_eq!((pc, r), (10, Reason::UninitStack { off: -8 }));
    // ... and a reloaded `data` is a fresh pointer: unchecked, so guarded,
    // until the program checks it again.
    let p = accept_in(
        &env,
        &format!(
            "{prologue}call 9\nldxdw %r6, [%r9]\nldxw %r0, [%r6]\nldxdw %r7, [%r9+8]\n\
             mov %r3, %r6\nadd %r3, 4\njgt %r3, %r7, out\nldxw %r0, [%r6]\nexit\nout:\nmov %r0, 0\nexit"
        ),
    );
    assert!(acc(&p, 11).guard);
    assert!(!acc(&p, 16).guard);
    // Scalars and ctx pointers survive.
    accept_in(
        &env,
        &format!("{prologue}mov %r8, 5\ncall 9\nldxw %r0, [%r9+16]\nadd %r0, %r8\nexit\nout:\nmov %r0, 0\nexit"),
    );
}

#[test]
fn only_the_window_fields_hold_packet_pointers() {
    // A second PacketStart field is not accessible (the engines take the
    // window from the first).
    let env = Arc::new(ProgEnv {
        entry: Entry::Ctx(CtxLayout {
            size: 24,
            fields: vec![
                (0, 8, CtxField::PacketStart),
                (8, 8, CtxField::PacketEnd),
                (16, 8, CtxField::PacketStart),
            ],
        }),
        helpers: HelperRegistry::standard(),
        budget: 100,
        maps: Default::default(),
    });
    accept_in(
        &env,
        "ldxdw %r2, [%r1]\nldxdw %r3, [%r1+8]\nmov %r0, 0\nexit",
    );
    let (_, r, _) = reject_in(&env, "ldxdw %r2, [%r1+16]\nmov %r0, 0\nexit");
    assert_eq!(r, Reason::CtxNoField { off: 16, size: 8 });
}
