//! Local calls (frames, depth, budget) and helper calls (trampoline, exits,
//! faults, callx).

use std::sync::OnceLock;

use super::*;
use crate::ebpf::helpers::{ArgKind, Helper, HelperCtx, HelperExit};

fn call(off: i32) -> Op {
    Op::CallLocal { off }
}

fn env_with(helpers: Arc<HelperRegistry>, budget: u64) -> Arc<ProgEnv> {
    Arc::new(ProgEnv {
        entry: Entry::MemLen,
        helpers,
        budget,
        maps: Default::default(),
    })
}

fn run_env(ops: &[Op], env: Arc<ProgEnv>, mem: &mut [u8]) -> Result<u64, RunError> {
    run_prog(&program(insn::encode_all(ops), env, true), mem)
}

#[test]
fn local_call_passes_args_and_returns_r0() {
    // main: r1 = 5; call f; r0 += 1; exit.   f: r0 = r1 * 3; exit.
    let ops = [
        mov64(1, 5),
        call(2),
        alu64(AluOp::Add, 0, Src::Imm(1)),
        Op::Exit,
        movr(0, 1),
        alu64(AluOp::Mul, 0, Src::Imm(3)),
        Op::Exit,
    ];
    assert_eq!(run_ops(&ops, &mut []), Ok(16));
}

#[test]
fn local_call_restores_r6_to_r10_and_uses_its_own_frame() {
    // main sets r6..r9 and [r10-8], calls f which overwrites all of them
    // (and its own [r10-8]) and returns its r10. main checks everything.
    let ops = [
        mov64(6, 6),
        mov64(7, 7),
        mov64(8, 8),
        mov64(9, 9),
        mov64(2, 1234),
        stx(8, 10, 2, -8),
        call(18), // → pc 25
        // r0 = callee r10; r0 = r10 - r0 must be 512.
        movr(2, 10),
        alu64(AluOp::Sub, 2, Src::Reg(0)),
        jmp(Cond::Ne, 2, Src::Imm(512), 12),
        jmp(Cond::Ne, 6, Src::Imm(6), 11),
        jmp(Cond::Ne, 7, Src::Imm(7), 10),
        jmp(Cond::Ne, 8, Src::Imm(8), 9),
        jmp(Cond::Ne, 9, Src::Imm(9), 8),
        ldx(8, 3, 10, -8),
        jmp(Cond::Ne, 3, Src::Imm(1234), 6),
        mov64(0, 1),
        Op::Exit,
        Op::Exit,
        Op::Exit,
        Op::Exit,
        Op::Exit,
        Op::Exit,
        // pc 23: failure
        mov64(0, 0),
        Op::Exit,
        // pc 25: f
        mov64(6, -1),
        mov64(7, -1),
        mov64(8, -1),
        mov64(9, -1),
        mov64(2, 99),
        stx(8, 10, 2, -8),
        movr(0, 10),
        Op::Exit,
    ];
    // Redirect the failure jumps (pc 9..15) to pc 23.
    let mut ops = ops.to_vec();
    for (pc, op) in ops.iter_mut().enumerate() {
        if let Op::Jmp { off, .. } = op {
            *off = (23 - pc as i64 - 1) as i16;
        }
    }
    assert_eq!(run_ops(&ops, &mut []), Ok(1));
}

/// f(n) = n == 0 ? 0 : f(n - 1) + 1, called from main with n = r1.
fn recursion(n: i32) -> Vec<Op> {
    vec![
        mov64(1, n),
        call(1),
        Op::Exit,
        // pc 3: f
        jmp(Cond::Eq, 1, Src::Imm(0), 3),
        alu64(AluOp::Sub, 1, Src::Imm(1)),
        call(-3),
        alu64(AluOp::Add, 0, Src::Imm(1)),
        Op::Exit,
    ]
}

#[test]
fn call_depth_limit_is_exact() {
    // main + 7 nested frames = 8 = MAX_CALL_DEPTH: fine.
    assert_eq!(run_ops(&recursion(6), &mut []), Ok(6));
    // One more frame fails at the recursive call site.
    assert_eq!(
        run_ops(&recursion(7), &mut []),
        Err(RunError::CallDepth { pc: 5 })
    );
    assert_eq!(
        run_ops(&recursion(1000), &mut []),
        Err(RunError::CallDepth { pc: 5 })
    );
    // The native stack is intact afterwards: the same thread runs again.
    assert_eq!(run_ops(&recursion(3), &mut []), Ok(3));
}

#[test]
fn local_calls_consume_budget() {
    let env = env_with(HelperRegistry::standard(), 3);
    // Three calls fit in a budget of 3, the fourth does not.
    let p = |n| program(insn::encode_all(&recursion(n)), env.clone(), true);
    assert_eq!(run_prog(&p(2), &mut []), Ok(2));
    assert_eq!(run_prog(&p(3), &mut []), Err(RunError::Budget { pc: 5 }));
    assert_eq!(run_prog(&p(3), &mut []), Err(RunError::Budget { pc: 5 }));
}

#[test]
fn error_deep_in_a_call_unwinds_everything() {
    // f(n) recurses 5 deep, then loads out of bounds.
    let ops = [
        mov64(2, 5),
        call(1),
        Op::Exit,
        // pc 3
        jmp(Cond::Eq, 2, Src::Imm(0), 3),
        alu64(AluOp::Sub, 2, Src::Imm(1)),
        call(-3),
        Op::Exit,
        ldx(8, 0, 1, 100),
        Op::Exit,
    ];
    let jp = compile(&prog_ops(&ops)).unwrap();
    for _ in 0..3 {
        assert_eq!(
            jp.run(RunInput::mem(&mut [0u8; 8])),
            Err(RunError::OutOfBounds {
                pc: 7,
                region: Region::Packet,
                offset: 100,
                size: 8
            })
        );
    }
}

// Helpers for the tests below.
fn h_sum(_: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    Ok(a.iter()
        .fold(0u64, |s, v| s.wrapping_mul(31).wrapping_add(*v)))
}
fn h_fault(_: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    Err(HelperExit::Fault(format!("boom {}", a[0])))
}
fn h_panic(_: &mut HelperCtx<'_>, _: [u64; 5]) -> Result<u64, HelperExit> {
    panic!("helper panics on purpose (test)")
}
fn h_pkt(c: &mut HelperCtx<'_>, _: [u64; 5]) -> Result<u64, HelperExit> {
    if let Some(b) = c.pkt.first_mut() {
        *b = 0xab;
    }
    Ok(c.pkt.len() as u64 + c.ctx.len() as u64 * 1000)
}
fn h_exit(_: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    Err(HelperExit::Exit(a[0] + 42))
}
/// Returns the misalignment of a 16-byte-aligned local: non-zero if the
/// JIT called us with a misaligned stack.
fn h_align(_: &mut HelperCtx<'_>, _: [u64; 5]) -> Result<u64, HelperExit> {
    #[repr(align(16))]
    struct A(#[allow(dead_code)] [u8; 16]);
    let a = std::hint::black_box(A([0; 16]));
    Ok((std::hint::black_box(&a) as *const A as usize % 16) as u64)
}
static INNER: OnceLock<JitProgram> = OnceLock::new();
/// Runs another JIT program from inside a helper.
fn h_nested(c: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    let inner = INNER.get().ok_or(HelperExit::Fault("no inner".into()))?;
    let r = inner
        .run(RunInput::mem(c.pkt))
        .map_err(|e| HelperExit::Fault(e.to_string()))?;
    Ok(r + a[0])
}

fn registry() -> Arc<HelperRegistry> {
    let mut r = (*HelperRegistry::standard()).clone();
    let all: [(u32, &'static str, crate::ebpf::helpers::HelperFn); 7] = [
        (1, "sum", h_sum),
        (2, "fault", h_fault),
        (3, "panic", h_panic),
        (4, "pkt", h_pkt),
        (6, "exit", h_exit),
        (7, "align", h_align),
        (8, "nested", h_nested),
    ];
    for (id, name, func) in all {
        r.register(Helper {
            id,
            name,
            args: [ArgKind::Any; 5],
            func,
            changes_packet: false,
            ret: Default::default(),
        });
    }
    Arc::new(r)
}

fn call_h(id: i32) -> Op {
    Op::Call { helper: id }
}

#[test]
fn helper_gets_r1_to_r5_and_returns_r0_keeping_r6_to_r10() {
    let env = env_with(registry(), DEFAULT_BUDGET);
    let ops = [
        mov64(6, 60),
        mov64(7, 70),
        mov64(8, 80),
        mov64(9, 90),
        mov64(2, 123),
        stx(8, 10, 2, -8),
        mov64(1, 1),
        mov64(2, 2),
        mov64(3, 3),
        mov64(4, 4),
        mov64(5, 5),
        call_h(1),
        alu64(AluOp::Add, 0, Src::Reg(6)),
        alu64(AluOp::Add, 0, Src::Reg(7)),
        alu64(AluOp::Add, 0, Src::Reg(8)),
        alu64(AluOp::Add, 0, Src::Reg(9)),
        ldx(8, 2, 10, -8),
        alu64(AluOp::Add, 0, Src::Reg(2)),
        Op::Exit,
    ];
    let want = h_sum(
        &mut HelperCtx {
            pkt: &mut [],
            ctx: &mut [],
            state: None,
            stack: &[],
            maps: &crate::ebpf::maps::Maps::empty(),
        },
        [1, 2, 3, 4, 5],
    )
    .unwrap()
        + 300
        + 123;
    assert_eq!(run_env(&ops, env, &mut []), Ok(want));
}

#[test]
fn unwind_helper_and_exit_from_a_helper() {
    let std_env = ProgEnv::mem();
    // unwind(0) ends the program with 0; unwind(7) returns 7.
    let ops = [mov64(1, 0), call_h(5), mov64(0, 99), Op::Exit];
    assert_eq!(run_env(&ops, std_env.clone(), &mut []), Ok(0));
    let ops = [mov64(1, 7), call_h(5), Op::Exit];
    assert_eq!(run_env(&ops, std_env, &mut []), Ok(7));
    // Exit from three calls deep.
    let env = env_with(registry(), DEFAULT_BUDGET);
    let ops = [
        mov64(2, 3),
        call(2),
        mov64(0, 1),
        Op::Exit,
        // pc 4
        jmp(Cond::Eq, 2, Src::Imm(0), 3),
        alu64(AluOp::Sub, 2, Src::Imm(1)),
        call(-3),
        Op::Exit,
        mov64(1, 8),
        call_h(6),
        Op::Exit,
    ];
    assert_eq!(run_env(&ops, env, &mut []), Ok(50));
}

#[test]
fn helper_faults_panics_and_unknown_ids() {
    let env = env_with(registry(), DEFAULT_BUDGET);
    let ops = [mov64(1, 3), mov64(0, 0), call_h(2), Op::Exit];
    assert_eq!(
        run_env(&ops, env.clone(), &mut []),
        Err(RunError::HelperFault {
            pc: 2,
            id: 2,
            reason: "boom 3".into()
        })
    );
    // JIT only: in the interpreter the panic propagates.
    #[cfg(target_arch = "x86_64")]
    {
        let ops = [call_h(3), Op::Exit];
        let p = program(insn::encode_all(&ops), env.clone(), true);
        assert_eq!(
            run_jit(&p, &mut []),
            Err(RunError::HelperFault {
                pc: 0,
                id: 3,
                reason: "helper panicked".into()
            })
        );
    }
    let ops = [mov64(0, 0), call_h(99), Op::Exit];
    assert_eq!(
        run_env(&ops, env, &mut []),
        Err(RunError::UnknownHelper { pc: 1, id: 99 })
    );
}

#[test]
fn helper_sees_packet_and_ctx_and_an_aligned_stack() {
    let env = env_with(registry(), DEFAULT_BUDGET);
    let mut mem = [0u8; 9];
    assert_eq!(
        run_env(&[call_h(4), Op::Exit], env.clone(), &mut mem),
        Ok(9)
    );
    assert_eq!(mem[0], 0xab);
    // Stack alignment at depth 0 and inside local calls.
    assert_eq!(run_env(&[call_h(7), Op::Exit], env.clone(), &mut []), Ok(0));
    let ops = [call(1), Op::Exit, call(1), Op::Exit, call_h(7), Op::Exit];
    assert_eq!(run_env(&ops, env, &mut []), Ok(0));
}

#[test]
fn callx_uses_the_verifier_id_or_the_register() {
    let env = env_with(registry(), DEFAULT_BUDGET);
    let callx = Op::CallX { reg: 8 };
    let ops = [mov64(8, 77), mov64(1, 1), callx, Op::Exit];
    let mut p = program(insn::encode_all(&ops), env.clone(), true);
    // Without a verifier id: the register's 77 is unknown.
    assert_eq!(
        run_prog(&p, &mut []),
        Err(RunError::UnknownHelper { pc: 2, id: 77 })
    );
    // With one, the register value is not used.
    p.callx[2] = Some(6);
    assert_eq!(run_prog(&p, &mut []), Ok(43));
    // Register holds a real id.
    let ops = [mov64(8, 6), mov64(1, 2), callx, Op::Exit];
    let p = program(insn::encode_all(&ops), env.clone(), true);
    assert_eq!(run_prog(&p, &mut []), Ok(44));
    // An id beyond 32 bits.
    let ops = [lddw(8, 6 | 1 << 40), callx, Op::Exit];
    let p = program(insn::encode_all(&ops), env, true);
    assert_eq!(
        run_prog(&p, &mut []),
        Err(RunError::UnknownHelper {
            pc: 2,
            id: 6 | 1 << 40
        })
    );
}

#[test]
fn a_helper_can_run_another_jit_program() {
    let inner = [mov64(2, 5), stx(8, 10, 2, -8), ldx(8, 0, 10, -8), Op::Exit];
    let _ = INNER.set(compile(&prog_ops(&inner)).unwrap());
    let env = env_with(registry(), DEFAULT_BUDGET);
    let ops = [
        mov64(2, 1000),
        stx(8, 10, 2, -8),
        mov64(1, 10),
        call_h(8),
        ldx(8, 2, 10, -8),
        alu64(AluOp::Add, 0, Src::Reg(2)),
        Op::Exit,
    ];
    assert_eq!(run_env(&ops, env, &mut []), Ok(1015));
}
