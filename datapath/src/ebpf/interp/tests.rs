//! Unit tests of the interpreter, on programs built directly from [`Op`]s
//! (the test builder below stands in for the verifier: it decodes the slots
//! and gives every access based on r10 the Stack region, every other the
//! Packet region).

use std::sync::Arc;

use super::run;
use crate::ebpf::helpers::{ArgKind, Helper, HelperCtx, HelperExit, HelperRegistry};
use crate::ebpf::insn::{
    decode, encode_all, AluOp, AtomicOp, Cond, EndKind, Insn, Op, Src, LDDW_MAP,
};
use crate::ebpf::vm::{
    fill_ctx_pointers, CtxField, CtxLayout, Entry, MemAccess, Region, RunError, RunInput,
    MAX_CALL_DEPTH, STACK_TOTAL,
};
use crate::ebpf::{ProgEnv, Program};

// ---- instruction shorthands ----

fn mov(dst: u8, imm: i32) -> Op {
    alu(AluOp::Mov, dst, imm)
}
fn movr(dst: u8, src: u8) -> Op {
    alur(AluOp::Mov, dst, src)
}
fn alu(op: AluOp, dst: u8, imm: i32) -> Op {
    Op::Alu {
        wide: true,
        op,
        dst,
        src: Src::Imm(imm),
    }
}
fn alur(op: AluOp, dst: u8, src: u8) -> Op {
    Op::Alu {
        wide: true,
        op,
        dst,
        src: Src::Reg(src),
    }
}
fn alu32(op: AluOp, dst: u8, imm: i32) -> Op {
    Op::Alu {
        wide: false,
        op,
        dst,
        src: Src::Imm(imm),
    }
}
fn alu32r(op: AluOp, dst: u8, src: u8) -> Op {
    Op::Alu {
        wide: false,
        op,
        dst,
        src: Src::Reg(src),
    }
}
fn lddw(dst: u8, imm: u64) -> Op {
    Op::Lddw { dst, kind: 0, imm }
}
fn jmp(cond: Cond, dst: u8, imm: i32, off: i16) -> Op {
    Op::Jmp {
        wide: true,
        cond,
        dst,
        src: Src::Imm(imm),
        off,
    }
}
fn jmp32(cond: Cond, dst: u8, imm: i32, off: i16) -> Op {
    Op::Jmp {
        wide: false,
        cond,
        dst,
        src: Src::Imm(imm),
        off,
    }
}
fn ldx(size: u8, dst: u8, src: u8, off: i16) -> Op {
    Op::Ldx {
        size,
        signed: false,
        dst,
        src,
        off,
    }
}
fn ldxs(size: u8, dst: u8, src: u8, off: i16) -> Op {
    Op::Ldx {
        size,
        signed: true,
        dst,
        src,
        off,
    }
}
fn st(size: u8, dst: u8, off: i16, imm: i32) -> Op {
    Op::St {
        size,
        dst,
        off,
        imm,
    }
}
fn stx(size: u8, dst: u8, src: u8, off: i16) -> Op {
    Op::Stx {
        size,
        dst,
        src,
        off,
    }
}
fn lock(size: u8, op: AtomicOp, fetch: bool, dst: u8, src: u8, off: i16) -> Op {
    Op::Atomic {
        size,
        op,
        fetch,
        dst,
        src,
        off,
    }
}
fn call(helper: i32) -> Op {
    Op::Call { helper }
}
fn call_local(off: i32) -> Op {
    Op::CallLocal { off }
}
const EXIT: Op = Op::Exit;

// ---- test builder and runners ----

fn env_with(entry: Entry, helpers: Arc<HelperRegistry>, budget: u64) -> Arc<ProgEnv> {
    Arc::new(ProgEnv {
        entry,
        helpers,
        budget,
        maps: Default::default(),
    })
}

/// Stands in for the verifier (see `testgen::unverified_program`): all accesses guarded.
pub(super) fn build(ops: &[Op], env: Arc<ProgEnv>) -> Program {
    crate::ebpf::testgen::unverified_program(encode_all(ops), env, true)
}

fn prog(ops: &[Op]) -> Program {
    build(ops, ProgEnv::mem())
}

fn run_mem(ops: &[Op], mem: &mut [u8]) -> Result<u64, RunError> {
    run(&prog(ops), RunInput::mem(mem))
}

fn r0(ops: &[Op]) -> u64 {
    run_mem(ops, &mut []).unwrap()
}

fn with_budget(ops: &[Op], budget: u64) -> Result<u64, RunError> {
    let env = env_with(Entry::MemLen, HelperRegistry::standard(), budget);
    run(&build(ops, env), RunInput::mem(&mut []))
}

/// Evaluates a 64-bit binary op on `a` and an immediate or register `b`.
fn eval64(op: AluOp, a: u64, b: u64) -> u64 {
    r0(&[lddw(0, a), lddw(1, b), alur(op, 0, 1), EXIT])
}

fn eval32(op: AluOp, a: u64, b: u64) -> u64 {
    r0(&[lddw(0, a), lddw(1, b), alu32r(op, 0, 1), EXIT])
}

// ---- entry state ----

#[test]
fn entry_registers() {
    let mut mem = [0u8; 13];
    let sum_scratch = [
        movr(1, 0),
        alur(AluOp::Or, 1, 3),
        alur(AluOp::Or, 1, 4),
        alur(AluOp::Or, 1, 5),
        alur(AluOp::Or, 1, 6),
        alur(AluOp::Or, 1, 7),
        alur(AluOp::Or, 1, 8),
        alur(AluOp::Or, 1, 9),
        movr(0, 1),
        EXIT,
    ];
    assert_eq!(run_mem(&sum_scratch, &mut mem), Ok(0));
    assert_eq!(run_mem(&[movr(0, 2), EXIT], &mut mem), Ok(13));
    let addr = mem.as_ptr() as u64;
    assert_eq!(run_mem(&[movr(0, 1), EXIT], &mut mem), Ok(addr));
    // r1 points at the memory: read its first byte through it.
    mem[0] = 0x5a;
    assert_eq!(run_mem(&[ldx(1, 0, 1, 0), EXIT], &mut mem), Ok(0x5a));
}

#[test]
fn immediates_sign_extend_for_alu64_only() {
    assert_eq!(r0(&[mov(0, -1), EXIT]), u64::MAX);
    assert_eq!(r0(&[alu32(AluOp::Mov, 0, -1), EXIT]), 0xffff_ffff);
    assert_eq!(
        r0(&[mov(0, 0), alu(AluOp::Add, 0, -2), EXIT]),
        (-2i64) as u64
    );
    assert_eq!(
        r0(&[lddw(0, 0x1234_5678_9abc_def0), EXIT]),
        0x1234_5678_9abc_def0
    );
}

// ---- ALU corners ----

#[test]
fn division_by_zero_gives_zero() {
    let a = 0x1_0000_0005u64;
    for op in [AluOp::Div, AluOp::SDiv] {
        assert_eq!(eval64(op, a, 0), 0);
        assert_eq!(eval32(op, a, 0), 0);
        // Only the low half of a 32-bit divisor counts.
        assert_eq!(eval32(op, a, 1 << 32), 0);
        assert_eq!(r0(&[lddw(0, a), alu(op, 0, 0), EXIT]), 0);
        assert_eq!(r0(&[lddw(0, a), alu32(op, 0, 0), EXIT]), 0);
    }
}

#[test]
fn modulo_by_zero_leaves_dst() {
    let a = 0xabcd_0000_0000_0005u64;
    for op in [AluOp::Mod, AluOp::SMod] {
        assert_eq!(eval64(op, a, 0), a);
        assert_eq!(eval32(op, a, 0), 5, "32-bit form zero-extends dst");
        assert_eq!(r0(&[lddw(0, a), alu(op, 0, 0), EXIT]), a);
        assert_eq!(r0(&[lddw(0, a), alu32(op, 0, 0), EXIT]), 5);
    }
}

#[test]
fn int_min_divided_by_minus_one() {
    let min64 = i64::MIN as u64;
    assert_eq!(r0(&[lddw(0, min64), alu(AluOp::SDiv, 0, -1), EXIT]), min64);
    assert_eq!(r0(&[lddw(0, min64), alu(AluOp::SMod, 0, -1), EXIT]), 0);
    assert_eq!(eval64(AluOp::SDiv, min64, u64::MAX), min64);
    assert_eq!(eval64(AluOp::SMod, min64, u64::MAX), 0);
    let min32 = 0x8000_0000u64;
    assert_eq!(
        r0(&[lddw(0, min32), alu32(AluOp::SDiv, 0, -1), EXIT]),
        min32
    );
    assert_eq!(r0(&[lddw(0, min32), alu32(AluOp::SMod, 0, -1), EXIT]), 0);
    assert_eq!(eval32(AluOp::SDiv, min32 | 7 << 32, 0xffff_ffff), min32);
}

#[test]
fn signed_and_unsigned_division() {
    assert_eq!(eval64(AluOp::SDiv, -7i64 as u64, 2), -3i64 as u64);
    assert_eq!(eval64(AluOp::SMod, -7i64 as u64, 2), -1i64 as u64);
    assert_eq!(eval64(AluOp::Div, -7i64 as u64, 2), (-7i64 as u64) / 2);
    assert_eq!(eval32(AluOp::SDiv, -7i64 as u64, 2), 0xffff_fffd);
    assert_eq!(eval32(AluOp::SMod, 7, -2i64 as u64), 1);
    assert_eq!(eval32(AluOp::Mod, 17, 5), 2);
}

#[test]
fn shift_counts_are_masked() {
    assert_eq!(r0(&[mov(0, 1), alu(AluOp::Lsh, 0, 65), EXIT]), 2);
    assert_eq!(eval64(AluOp::Lsh, 1, 64), 1);
    assert_eq!(eval64(AluOp::Rsh, 8, 67), 1);
    assert_eq!(eval64(AluOp::Arsh, -16i64 as u64, 66), -4i64 as u64);
    assert_eq!(r0(&[mov(0, 1), alu32(AluOp::Lsh, 0, 33), EXIT]), 2);
    assert_eq!(eval32(AluOp::Lsh, 1, 32), 1);
    assert_eq!(eval32(AluOp::Rsh, 0x8000_0000, 63), 1);
    assert_eq!(eval32(AluOp::Arsh, 0x8000_0000, 35), 0xf000_0000);
    // A negative immediate count is masked too.
    assert_eq!(r0(&[mov(0, 1), alu(AluOp::Lsh, 0, -1), EXIT]), 1 << 63);
}

#[test]
fn alu32_zero_extends() {
    let ones = u64::MAX;
    assert_eq!(r0(&[lddw(0, ones), alu32(AluOp::Add, 0, 1), EXIT]), 0);
    assert_eq!(
        r0(&[lddw(0, ones), alu32(AluOp::Or, 0, 0), EXIT]),
        0xffff_ffff
    );
    assert_eq!(
        r0(&[lddw(0, ones), alu32(AluOp::And, 0, -1), EXIT]),
        0xffff_ffff
    );
    assert_eq!(
        r0(&[lddw(0, ones), alu32(AluOp::Mul, 0, 1), EXIT]),
        0xffff_ffff
    );
    assert_eq!(
        r0(&[lddw(1, ones), alu32r(AluOp::Mov, 0, 1), EXIT]),
        0xffff_ffff
    );
    assert_eq!(
        r0(&[
            lddw(0, 1 << 32),
            Op::Neg {
                wide: false,
                dst: 0
            },
            EXIT
        ]),
        0
    );
    assert_eq!(
        r0(&[mov(0, 1), Op::Neg { wide: true, dst: 0 }, EXIT]),
        u64::MAX
    );
    assert_eq!(eval32(AluOp::Sub, 0, 1), 0xffff_ffff);
    assert_eq!(eval32(AluOp::Xor, ones, 0), 0xffff_ffff);
}

#[test]
fn movsx() {
    let v = 0x0123_4567_89ab_cdefu64;
    let mx = |wide: bool, bits: u8| {
        r0(&[
            lddw(1, v),
            lddw(0, u64::MAX),
            Op::Alu {
                wide,
                op: AluOp::MovSx(bits),
                dst: 0,
                src: Src::Reg(1),
            },
            EXIT,
        ])
    };
    assert_eq!(mx(true, 8), 0xffff_ffff_ffff_ffef);
    assert_eq!(mx(true, 16), 0xffff_ffff_ffff_cdef);
    assert_eq!(mx(true, 32), 0xffff_ffff_89ab_cdef);
    assert_eq!(mx(false, 8), 0xffff_ffef);
    assert_eq!(mx(false, 16), 0xffff_cdef);
}

#[test]
fn byte_order_ops() {
    let v = 0x0123_4567_89ab_cdefu64;
    let e = |kind: EndKind, bits: u8| r0(&[lddw(0, v), Op::End { kind, bits, dst: 0 }, EXIT]);
    assert_eq!(e(EndKind::Le, 16), 0xcdef);
    assert_eq!(e(EndKind::Le, 32), 0x89ab_cdef);
    assert_eq!(e(EndKind::Le, 64), v);
    assert_eq!(e(EndKind::Be, 16), 0xefcd);
    assert_eq!(e(EndKind::Be, 32), 0xefcd_ab89);
    assert_eq!(e(EndKind::Be, 64), 0xefcd_ab89_6745_2301);
    assert_eq!(e(EndKind::Swap, 16), 0xefcd);
    assert_eq!(e(EndKind::Swap, 32), 0xefcd_ab89);
    assert_eq!(e(EndKind::Swap, 64), 0xefcd_ab89_6745_2301);
}

// ---- jumps ----

#[test]
fn jumps_compare_with_sign_extended_immediates() {
    let taken = |j: Op| r0(&[lddw(1, 0xffff_ffff), mov(0, 0), j, mov(0, 1), EXIT]) == 0;
    assert!(!taken(jmp(Cond::Eq, 1, -1, 1)));
    assert!(taken(jmp32(Cond::Eq, 1, -1, 1)));
    assert!(taken(jmp(Cond::Sgt, 1, -1, 1)));
    assert!(!taken(jmp32(Cond::Sgt, 1, -1, 1)));
    assert!(taken(jmp32(Cond::Slt, 1, 0, 1)));
    assert!(taken(jmp(Cond::Gt, 1, 0x7fff_ffff, 1)));
    assert!(!taken(jmp(Cond::Gt, 1, -1, 1)));
    assert!(taken(jmp(Cond::Set, 1, 0x100, 1)));
    let hi = |j: Op| r0(&[lddw(1, 5 | 1 << 40), mov(0, 0), j, mov(0, 1), EXIT]) == 0;
    assert!(hi(jmp32(Cond::Eq, 1, 5, 1)));
    assert!(!hi(jmp(Cond::Eq, 1, 5, 1)));
    assert!(hi(jmp(Cond::Ne, 1, 5, 1)));
    assert!(hi(jmp32(Cond::Le, 1, 5, 1)));
    // Register operands.
    let rr = r0(&[
        mov(1, 3),
        mov(2, -3),
        mov(0, 0),
        Op::Jmp {
            wide: true,
            cond: Cond::Slt,
            dst: 2,
            src: Src::Reg(1),
            off: 1,
        },
        mov(0, 1),
        EXIT,
    ]);
    assert_eq!(rr, 0);
}

#[test]
fn long_jump_ja32() {
    // ja with a 32-bit offset skips over the mov.
    assert_eq!(r0(&[mov(0, 1), Op::Ja { off: 1 }, mov(0, 2), EXIT]), 1);
}

// ---- memory ----

#[test]
fn loads_of_every_width() {
    let mut mem = [0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x7f];
    let l = |op: Op, mem: &mut [u8]| run_mem(&[op, EXIT], mem).unwrap();
    assert_eq!(l(ldx(1, 0, 1, 0), &mut mem), 0x81);
    assert_eq!(l(ldx(2, 0, 1, 0), &mut mem), 0x8281);
    assert_eq!(l(ldx(4, 0, 1, 0), &mut mem), 0x8483_8281);
    assert_eq!(l(ldx(8, 0, 1, 0), &mut mem), 0x8887_8685_8483_8281);
    assert_eq!(l(ldx(8, 0, 1, 1), &mut mem), 0x7f88_8786_8584_8382);
    assert_eq!(l(ldxs(1, 0, 1, 0), &mut mem), 0xffff_ffff_ffff_ff81);
    assert_eq!(l(ldxs(2, 0, 1, 0), &mut mem), 0xffff_ffff_ffff_8281);
    assert_eq!(l(ldxs(4, 0, 1, 0), &mut mem), 0xffff_ffff_8483_8281);
    assert_eq!(l(ldxs(1, 0, 1, 8), &mut mem), 0x7f);
    // Base register equal to the destination.
    assert_eq!(
        run_mem(&[movr(0, 1), ldx(2, 0, 0, 7), EXIT], &mut mem),
        Ok(0x7f88)
    );
}

#[test]
fn stores_to_packet_and_stack() {
    let mut mem = [0u8; 16];
    let p = [
        st(1, 1, 0, 0x1ff),
        st(2, 1, 1, -2),
        st(4, 1, 3, 0x0403_0201),
        st(8, 1, 8, -1),
        lddw(2, 0x1122_3344_5566_7788),
        stx(8, 10, 2, -8),
        stx(4, 10, 2, -16),
        ldx(8, 0, 10, -8),
        ldx(8, 3, 10, -16),
        alur(AluOp::Xor, 0, 3),
        EXIT,
    ];
    let r = run_mem(&p, &mut mem).unwrap();
    assert_eq!(
        mem,
        [0xff, 0xfe, 0xff, 1, 2, 3, 4, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
    );
    // The stack starts zeroed: the upper half of [r10-16] is 0.
    assert_eq!(r, 0x1122_3344_5566_7788 ^ 0x5566_7788);
    let mut mem = [0u8; 4];
    run_mem(&[mov(2, 0x1234), stx(2, 1, 2, 2), EXIT], &mut mem).unwrap();
    assert_eq!(mem, [0, 0, 0x34, 0x12]);
}

#[test]
fn out_of_bounds_packet_access() {
    let mut mem = [0u8; 8];
    let oob = |pc: usize, offset: i64, size: u8| RunError::OutOfBounds {
        pc,
        region: Region::Packet,
        offset,
        size,
    };
    assert_eq!(run_mem(&[ldx(4, 0, 1, 4), EXIT], &mut mem), Ok(0));
    assert_eq!(
        run_mem(&[ldx(4, 0, 1, 5), EXIT], &mut mem),
        Err(oob(0, 5, 4))
    );
    assert_eq!(
        run_mem(&[ldx(1, 0, 1, 8), EXIT], &mut mem),
        Err(oob(0, 8, 1))
    );
    assert_eq!(
        run_mem(&[mov(0, 0), ldx(1, 0, 1, -1), EXIT], &mut mem),
        Err(oob(1, -1, 1))
    );
    assert_eq!(
        run_mem(&[st(8, 1, 1, 7), EXIT], &mut mem),
        Err(oob(0, 1, 8))
    );
    assert_eq!(mem, [0; 8], "a failed store writes nothing");
    assert_eq!(
        run_mem(&[mov(2, 9), stx(2, 1, 2, 7), EXIT], &mut mem),
        Err(oob(1, 7, 2))
    );
    assert_eq!(
        run_mem(&[lock(8, AtomicOp::Add, false, 1, 2, 4), EXIT], &mut mem),
        Err(oob(0, 4, 8))
    );
    // Far outside, on either side, and wrapping around the address space.
    let base = mem.as_ptr() as u64;
    assert_eq!(
        run_mem(
            &[alu(AluOp::Add, 1, 1 << 30), ldx(1, 0, 1, 0), EXIT],
            &mut mem
        ),
        Err(oob(1, 1 << 30, 1))
    );
    assert_eq!(
        run_mem(&[mov(1, 0), ldx(8, 0, 1, 0), EXIT], &mut mem),
        Err(oob(1, 0u64.wrapping_sub(base) as i64, 8))
    );
    assert_eq!(
        run_mem(&[lddw(1, u64::MAX), ldx(2, 0, 1, 0), EXIT], &mut mem),
        Err(oob(2, u64::MAX.wrapping_sub(base) as i64, 2))
    );
    // An empty packet has no byte to read.
    assert_eq!(
        run_mem(&[ldx(1, 0, 1, 0), EXIT], &mut []),
        Err(oob(0, 0, 1))
    );
}

#[test]
fn out_of_bounds_stack_access() {
    let oob = |pc: usize, offset: i64, size: u8| RunError::OutOfBounds {
        pc,
        region: Region::Stack,
        offset,
        size,
    };
    let top = STACK_TOTAL as i64;
    assert_eq!(r0(&[ldx(8, 0, 10, -8), EXIT]), 0);
    assert_eq!(
        run_mem(&[ldx(1, 0, 10, 0), EXIT], &mut []),
        Err(oob(0, top, 1))
    );
    assert_eq!(
        run_mem(&[ldx(8, 0, 10, -4), EXIT], &mut []),
        Err(oob(0, top - 4, 8))
    );
    // The Stack region is the whole buffer of every frame.
    assert_eq!(
        run_mem(
            &[
                st(8, 10, -(top as i16), 3),
                ldx(8, 0, 10, -(top as i16)),
                EXIT
            ],
            &mut []
        ),
        Ok(3)
    );
    assert_eq!(
        run_mem(&[st(1, 10, -(top as i16) - 1, 3), EXIT], &mut []),
        Err(oob(0, -1, 1))
    );
}

#[test]
fn access_checked_against_the_named_region() {
    // The verifier's fact says Ctx, but r1 holds a packet pointer: the
    // interpreter checks against the (empty) ctx and reports it.
    let mut mem = [0u8; 8];
    let mut p = prog(&[ldx(1, 0, 1, 0), EXIT]);
    p.access[0] = Some(MemAccess {
        region: Region::Ctx,
        guard: false,
    });
    let ctx_base = {
        let ctx: &mut [u8] = &mut [];
        ctx.as_ptr() as u64
    };
    match run(&p, RunInput::mem(&mut mem)) {
        Err(RunError::OutOfBounds {
            pc: 0,
            region: Region::Ctx,
            size: 1,
            ..
        }) => {}
        other => panic!("expected ctx out of bounds, got {other:?} (ctx base {ctx_base:#x})"),
    }
    // Says Stack while pointing at the packet.
    p.access[0] = Some(MemAccess {
        region: Region::Stack,
        guard: true,
    });
    assert!(matches!(
        run(&p, RunInput::mem(&mut mem)),
        Err(RunError::OutOfBounds {
            region: Region::Stack,
            ..
        })
    ));
}

#[test]
fn ctx_entry() {
    let layout = CtxLayout {
        size: 24,
        fields: vec![
            (0, 8, CtxField::PacketStart),
            (8, 8, CtxField::PacketEnd),
            (16, 4, CtxField::ScalarRw),
        ],
    };
    let env = env_with(
        Entry::Ctx(layout.clone()),
        HelperRegistry::standard(),
        crate::ebpf::vm::DEFAULT_BUDGET,
    );
    // r1 = the context, r2 = 0.
    let mut ctx = [0u8; 24];
    let ctx_addr = ctx.as_ptr() as u64;
    let regs = |ops: &[Op], ctx: &mut [u8]| {
        let p = build(ops, env.clone());
        let mut pkt = [1u8];
        let mut input = RunInput::ctx(&mut pkt, ctx);
        fill_ctx_pointers(&layout, &mut input);
        run(&p, input)
    };
    assert_eq!(regs(&[movr(0, 1), EXIT], &mut ctx), Ok(ctx_addr));
    assert_eq!(regs(&[mov(0, 5), movr(0, 2), EXIT], &mut ctx), Ok(0));
    let mut p = build(
        &[
            ldx(8, 2, 1, 0),
            ldx(8, 3, 1, 8),
            movr(0, 3),
            alur(AluOp::Sub, 0, 2),
            ldx(1, 4, 2, 1),
            alur(AluOp::Add, 0, 4),
            st(4, 1, 16, 77),
            EXIT,
        ],
        env,
    );
    for pc in [0, 1, 6] {
        p.access[pc] = Some(MemAccess {
            region: Region::Ctx,
            guard: false,
        });
    }
    let mut pkt = [1u8, 40, 3];
    let mut ctx = [0u8; 24];
    let mut input = RunInput::ctx(&mut pkt, &mut ctx);
    fill_ctx_pointers(&layout, &mut input);
    let r = run(&p, input);
    assert_eq!(r, Ok(3 + 40));
    assert_eq!(ctx[16..20], 77u32.to_le_bytes());
    // Ctx bounds are checked too.
    p.ops[6] = Some(st(4, 1, 22, 77));
    let r = run(&p, RunInput::ctx(&mut pkt, &mut ctx));
    assert_eq!(
        r,
        Err(RunError::OutOfBounds {
            pc: 6,
            region: Region::Ctx,
            offset: 22,
            size: 4
        })
    );
}

// ---- atomics ----

/// Runs `op` on an 8-byte packet holding `mem`, with r2 = `src`, r0 = `r0in`.
/// Returns (r0 after, r2 after, memory after).
fn atomic_case(op: Op, mem: u64, src: u64, r0in: u64) -> (u64, u64, u64) {
    let mut buf = mem.to_le_bytes();
    let r0_after = run_mem(&[lddw(2, src), lddw(0, r0in), op, EXIT], &mut buf).unwrap();
    let mut buf2 = mem.to_le_bytes();
    let p2 = [lddw(2, src), lddw(0, r0in), op, movr(0, 2), EXIT];
    let r2_after = run_mem(&p2, &mut buf2).unwrap();
    assert_eq!(buf, buf2);
    (r0_after, r2_after, u64::from_le_bytes(buf))
}

#[test]
fn atomic_arithmetic() {
    let m = 0x1111_2222_f0f0_f0f0u64;
    let s = 0x0000_0001_0f0f_0f1fu64;
    for (op, f64, f32) in [
        (
            AtomicOp::Add,
            m.wrapping_add(s),
            0x1111_2222_0000_0000 | (0xf0f0_f0f0u32.wrapping_add(0x0f0f_0f1f)) as u64,
        ),
        (AtomicOp::Or, m | s, 0x1111_2222_ffff_ffff),
        (AtomicOp::And, m & s, 0x1111_2222_0000_0010),
        (AtomicOp::Xor, m ^ s, 0x1111_2222_ffff_ffef),
    ] {
        // 64-bit, without and with fetch.
        assert_eq!(
            atomic_case(lock(8, op, false, 1, 2, 0), m, s, 9),
            (9, s, f64)
        );
        assert_eq!(
            atomic_case(lock(8, op, true, 1, 2, 0), m, s, 9),
            (9, m, f64)
        );
        // 32-bit: only the low word changes; fetch zero-extends.
        assert_eq!(
            atomic_case(lock(4, op, false, 1, 2, 0), m, s, 9),
            (9, s, f32)
        );
        assert_eq!(
            atomic_case(lock(4, op, true, 1, 2, 0), m, s, 9),
            (9, 0xf0f0_f0f0, f32)
        );
    }
}

#[test]
fn atomic_exchange() {
    let m = 0x1111_2222_3333_4444u64;
    let s = 0xaaaa_bbbb_cccc_ddddu64;
    assert_eq!(
        atomic_case(lock(8, AtomicOp::Xchg, true, 1, 2, 0), m, s, 9),
        (9, m, s)
    );
    assert_eq!(
        atomic_case(lock(4, AtomicOp::Xchg, true, 1, 2, 0), m, s, 9),
        (9, 0x3333_4444, 0x1111_2222_cccc_dddd)
    );
}

#[test]
fn atomic_compare_exchange() {
    let m = 0x1111_2222_3333_4444u64;
    let s = 0xaaaa_bbbb_cccc_ddddu64;
    let cx = |size: u8| lock(size, AtomicOp::CmpXchg, true, 1, 2, 0);
    // 64-bit: equal → store, r0 = old; unequal → no store, r0 = old.
    assert_eq!(atomic_case(cx(8), m, s, m), (m, s, s));
    assert_eq!(atomic_case(cx(8), m, s, m ^ 1 << 63), (m, s, m));
    // 32-bit: only the low half of r0 is compared; r0 = old, zero-extended.
    assert_eq!(
        atomic_case(cx(4), m, s, 0xffff_0000_3333_4444),
        (0x3333_4444, s, 0x1111_2222_cccc_dddd)
    );
    assert_eq!(atomic_case(cx(4), m, s, 0x3333_4445), (0x3333_4444, s, m));
}

#[test]
fn atomics_on_the_stack() {
    let p = [
        st(8, 10, -8, 40),
        mov(1, 2),
        lock(8, AtomicOp::Add, false, 10, 1, -8),
        mov(0, 42),
        mov(3, 7),
        lock(8, AtomicOp::CmpXchg, true, 10, 3, -8),
        ldx(8, 4, 10, -8),
        alu(AluOp::Lsh, 0, 8),
        alur(AluOp::Or, 0, 4),
        EXIT,
    ];
    assert_eq!(r0(&p), 42 << 8 | 7);
}

// ---- calls ----

#[test]
fn local_call_frames_and_callee_saved_registers() {
    let p = [
        /* 0 */ mov(6, 11),
        /* 1 */ mov(7, 22),
        /* 2 */ mov(8, 33),
        /* 3 */ mov(9, 44),
        /* 4 */ st(8, 10, -8, 1000),
        /* 5 */ mov(1, 5),
        /* 6 */ mov(2, 6),
        /* 7 */ call_local(8), // → 16
        /* 8 */ alur(AluOp::Add, 0, 6),
        /* 9 */ alur(AluOp::Add, 0, 7),
        /* 10 */ alur(AluOp::Add, 0, 8),
        /* 11 */ alur(AluOp::Add, 0, 9),
        /* 12 */ ldx(8, 1, 10, -8),
        /* 13 */ alur(AluOp::Add, 0, 1),
        /* 14 */ EXIT,
        /* 15 */ EXIT,
        // callee: r0 = r1 * r2; clobbers r6..r9 and its own [r10-8].
        /* 16 */
        movr(0, 1),
        /* 17 */ alur(AluOp::Mul, 0, 2),
        /* 18 */ mov(6, -1),
        /* 19 */ mov(7, -1),
        /* 20 */ mov(8, -1),
        /* 21 */ mov(9, -1),
        /* 22 */ st(8, 10, -8, -1),
        /* 23 */ EXIT,
    ];
    assert_eq!(r0(&p), 30 + 11 + 22 + 33 + 44 + 1000);
}

#[test]
fn callee_sees_callers_r6_to_r9_and_its_own_frame() {
    // r6..r9 are passed through unchanged (the verifier forbids reading
    // them, the engines agree on keeping them).
    let p = [mov(6, 5), call_local(1), EXIT, movr(0, 6), EXIT];
    assert_eq!(r0(&p), 5);
    // The callee's r10 is one frame (512 bytes) below the caller's.
    let p = [
        call_local(4),
        movr(1, 10),
        alur(AluOp::Sub, 1, 0),
        movr(0, 1),
        EXIT,
        movr(0, 10),
        EXIT,
    ];
    assert_eq!(r0(&p), 512);
    // The callee reads the caller's stack through a pointer argument.
    let mut pr = prog(&[
        st(8, 10, -8, 99),
        movr(1, 10),
        alu(AluOp::Add, 1, -8),
        call_local(1),
        EXIT,
        ldx(8, 0, 1, 0),
        EXIT,
    ]);
    pr.access[5] = Some(MemAccess {
        region: Region::Stack,
        guard: false,
    });
    assert_eq!(run(&pr, RunInput::mem(&mut [])), Ok(99));
}

/// `f(n)`: recursion depth n below the first call; returns n.
fn recursion(n: i32) -> Vec<Op> {
    vec![
        /* 0 */ mov(1, n),
        /* 1 */ mov(0, 0),
        /* 2 */ call_local(1), // → 4
        /* 3 */ EXIT,
        /* 4 */ jmp(Cond::Eq, 1, 0, 3), // → 8
        /* 5 */ alu(AluOp::Sub, 1, 1),
        /* 6 */ call_local(-3), // → 4
        /* 7 */ alu(AluOp::Add, 0, 1),
        /* 8 */ EXIT,
    ]
}

#[test]
fn call_depth_limit() {
    // Frames 0..MAX_CALL_DEPTH-1 exist: the entry frame plus 7 nested calls.
    let deepest = (MAX_CALL_DEPTH - 2) as i32;
    assert_eq!(r0(&recursion(deepest)), deepest as u64);
    assert_eq!(
        run_mem(&recursion(deepest + 1), &mut []),
        Err(RunError::CallDepth { pc: 6 })
    );
    // Unbounded recursion: stops at the depth limit, not the budget.
    assert_eq!(
        run_mem(&[call_local(-1), EXIT], &mut []),
        Err(RunError::CallDepth { pc: 0 })
    );
}

#[test]
fn budget_is_checked_before_call_depth() {
    // 7 calls succeed (7 units), the 8th is charged before the depth check.
    assert_eq!(
        with_budget(&[call_local(-1), EXIT], 7),
        Err(RunError::Budget { pc: 0 })
    );
    assert_eq!(
        with_budget(&[call_local(-1), EXIT], 8),
        Err(RunError::CallDepth { pc: 0 })
    );
}

#[test]
fn unwind_helper() {
    assert_eq!(r0(&[mov(1, 9), call(5), EXIT]), 9);
    assert_eq!(r0(&[mov(1, 0), call(5), mov(0, 7), EXIT]), 0);
    // From a nested frame, unwinding ends the whole program.
    let p = [
        mov(0, 1),
        call_local(2),
        mov(0, 7),
        EXIT,
        mov(0, 3),
        mov(1, 0),
        call(5),
        mov(0, 4),
        EXIT,
    ];
    assert_eq!(r0(&p), 0);
    // Non-zero argument from a nested frame just returns.
    let mut q = p;
    q[5] = mov(1, 6);
    assert_eq!(r0(&q), 7);
}

fn sum(_: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    Ok(a.iter().fold(0u64, |s, v| s.wrapping_add(*v)))
}

fn poke(h: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    if let Some(b) = h.pkt.first_mut() {
        *b = a[0] as u8;
    }
    Ok(h.pkt.len() as u64 + h.ctx.len() as u64)
}

fn fault(_: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    Err(HelperExit::Fault(format!("bad argument {}", a[0])))
}

fn registry() -> Arc<HelperRegistry> {
    let mut r = HelperRegistry::new();
    for (id, name, func) in [
        (1, "sum", sum as crate::ebpf::helpers::HelperFn),
        (2, "poke", poke),
        (3, "fault", fault),
        (0xffff_ffff, "max", sum),
    ] {
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

fn run_helpers(ops: &[Op], mem: &mut [u8]) -> Result<u64, RunError> {
    let env = env_with(Entry::MemLen, registry(), 100);
    run(&build(ops, env), RunInput::mem(mem))
}

#[test]
fn helper_calls() {
    let args = [mov(1, 1), mov(2, 2), mov(3, 3), mov(4, 4), mov(5, 5)];
    let mut p = args.to_vec();
    p.extend([call(1), EXIT]);
    assert_eq!(run_helpers(&p, &mut []), Ok(15));
    let mut mem = [0u8; 3];
    assert_eq!(run_helpers(&[mov(1, 0xab), call(2), EXIT], &mut mem), Ok(3));
    assert_eq!(mem, [0xab, 0, 0]);
    assert_eq!(
        run_helpers(&[mov(1, 4), call(3), EXIT], &mut []),
        Err(RunError::HelperFault {
            pc: 1,
            id: 3,
            reason: "bad argument 4".into()
        })
    );
    assert_eq!(
        run_helpers(&[call(4), EXIT], &mut []),
        Err(RunError::UnknownHelper { pc: 0, id: 4 })
    );
    // A negative immediate is the u32 id with the same bits.
    assert_eq!(run_helpers(&[mov(1, 8), call(-1), EXIT], &mut []), Ok(8));
    assert_eq!(
        run_mem(&[call(-2), EXIT], &mut []),
        Err(RunError::UnknownHelper {
            pc: 0,
            id: 0xffff_fffe
        })
    );
}

#[test]
fn callx() {
    // The id comes from the register...
    assert_eq!(
        run_helpers(&[mov(1, 7), mov(6, 1), Op::CallX { reg: 6 }, EXIT], &mut []),
        Ok(7)
    );
    assert_eq!(
        run_helpers(&[lddw(6, 1 << 40), Op::CallX { reg: 6 }, EXIT], &mut []),
        Err(RunError::UnknownHelper { pc: 2, id: 1 << 40 })
    );
    assert_eq!(
        run_helpers(&[mov(6, 9), Op::CallX { reg: 6 }, EXIT], &mut []),
        Err(RunError::UnknownHelper { pc: 1, id: 9 })
    );
    // ...unless the verifier recorded it.
    let env = env_with(Entry::MemLen, registry(), 100);
    let mut p = build(&[mov(1, 7), mov(6, 9), Op::CallX { reg: 6 }, EXIT], env);
    p.callx[2] = Some(1);
    assert_eq!(run(&p, RunInput::mem(&mut [])), Ok(7));
    // The conformance case: callx to unwind with r1 = -1.
    assert_eq!(
        r0(&[mov(1, -1), mov(2, 5), Op::CallX { reg: 2 }, mov(0, 2), EXIT]),
        2
    );
}

// ---- budget ----

#[test]
fn budget_ends_an_infinite_loop() {
    assert_eq!(
        with_budget(&[Op::Ja { off: -1 }, EXIT], 1000),
        Err(RunError::Budget { pc: 0 })
    );
    assert_eq!(
        run_mem(&[mov(0, 0), jmp(Cond::Eq, 0, 0, -1), EXIT], &mut []),
        Err(RunError::Budget { pc: 1 })
    );
}

#[test]
fn budget_counts_taken_back_edges_exactly() {
    // r0 counts to 10: 9 taken back edges.
    let p = [
        mov(0, 0),
        alu(AluOp::Add, 0, 1),
        jmp(Cond::Lt, 0, 10, -2),
        EXIT,
    ];
    assert_eq!(with_budget(&p, 9), Ok(10));
    assert_eq!(with_budget(&p, 8), Err(RunError::Budget { pc: 2 }));
    // Forward jumps and untaken back edges cost nothing.
    let q = [
        mov(0, 1),
        jmp(Cond::Eq, 0, 1, 1),
        mov(0, 2),
        jmp(Cond::Eq, 0, 5, -3),
        Op::Ja { off: 0 },
        EXIT,
    ];
    assert_eq!(with_budget(&q, 0), Ok(1));
    // Local calls cost one each.
    let c = [call_local(2), call_local(1), EXIT, mov(0, 3), EXIT];
    assert_eq!(with_budget(&c, 2), Ok(3));
    assert_eq!(with_budget(&c, 1), Err(RunError::Budget { pc: 1 }));
}

// ---- invalid programs ----

#[test]
fn broken_invariants_are_errors_not_panics() {
    let invalid = |r: Result<u64, RunError>| matches!(r, Err(RunError::InvalidProgram { .. }));
    // Falling off the end.
    assert_eq!(
        run_mem(&[mov(0, 1)], &mut []),
        Err(RunError::InvalidProgram {
            pc: 1,
            reason: "execution left the program"
        })
    );
    assert!(invalid(run_mem(&[Op::Ja { off: 5 }, EXIT], &mut [])));
    assert!(invalid(run_mem(&[Op::Ja { off: -3 }, EXIT], &mut [])));
    assert!(invalid(run_mem(&[call_local(-5), EXIT], &mut [])));
    assert!(invalid(run_mem(&[call_local(i32::MAX), EXIT], &mut [])));
    // Jumping into the second half of lddw.
    assert!(invalid(run_mem(
        &[Op::Ja { off: 1 }, lddw(0, 1), EXIT],
        &mut []
    )));
    // lddw of a map: the handle is the map's index (what maps exist is
    // the verifier's business).
    assert_eq!(
        run_mem(
            &[
                Op::Lddw {
                    dst: 0,
                    kind: LDDW_MAP,
                    imm: 5,
                },
                EXIT,
            ],
            &mut [],
        ),
        Ok(5)
    );
    // Memory access without an access fact.
    let mut p = prog(&[ldx(1, 0, 10, -1), EXIT]);
    p.access[0] = None;
    assert!(invalid(run(&p, RunInput::mem(&mut []))));
    p.access.clear();
    assert!(invalid(run(&p, RunInput::mem(&mut []))));
    // Registers above r10 and impossible sizes, which the codec never makes.
    let mut p = prog(&[mov(0, 0), EXIT]);
    for op in [
        mov(11, 0),
        movr(0, 200),
        Op::Neg {
            wide: true,
            dst: 15,
        },
        jmp(Cond::Eq, 12, 0, 0),
        ldx(3, 0, 10, -8),
        st(16, 10, -8, 0),
        lock(2, AtomicOp::Add, false, 10, 1, -8),
        Op::CallX { reg: 11 },
        ldx(8, 11, 10, -8),
        stx(8, 10, 11, -8),
    ] {
        p.ops[0] = Some(op);
        p.access[0] = Some(MemAccess {
            region: Region::Stack,
            guard: true,
        });
        assert!(invalid(run(&p, RunInput::mem(&mut []))), "{op:?}");
    }
    // An empty program.
    let p = prog(&[]);
    assert!(invalid(run(&p, RunInput::mem(&mut []))));
}

/// Jumps use small offsets around zero; other instructions mostly need 0.
fn off_zero_bias(op: u8) -> bool {
    !matches!(op & 7, 5 | 6)
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn arbitrary_programs_never_panic_or_hang() {
    // Opcode bytes that decode to something, so most slots are instructions.
    let valid: Vec<u8> = (0..=255u8)
        .filter(|&op| {
            [
                (1, 2, 0, 0),
                (1, 0, 0, 16),
                (1, 2, 1, 1),
                (1, 2, 8, 0),
                (0, 0, 0, 0),
            ]
            .iter()
            .any(|&(d, s, o, i)| decode(&[Insn::new(op, d, s, o, i), Insn::default()], 0).is_ok())
        })
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let regions = [
        None,
        Some(Region::Stack),
        Some(Region::Packet),
        Some(Region::Ctx),
    ];
    let mut outcomes = [0usize; 2];
    let mut kinds = std::collections::HashMap::new();
    for _ in 0..20_000 {
        let n = 1 + rng.below(24) as usize;
        let mut insns: Vec<Insn> = (0..n)
            .map(|_| loop {
                let op = valid[rng.below(valid.len() as u64) as usize];
                // Fields are often 0, so `exit`, `ja` and friends decode.
                let mut field = |n: u64| if rng.below(3) == 0 { 0 } else { rng.below(n) };
                let dst = field(11) as u8;
                let src = field(11) as u8;
                let off = field(13) as i16 - if off_zero_bias(op) { 0 } else { 6 };
                let imm = match rng.below(5) {
                    0 => rng.next() as i32,
                    1 => [0x01, 0xe1, 0xf1, 0x40, 0x51, 5, 16, 32, 64][rng.below(9) as usize],
                    2 => 0,
                    _ => rng.below(16) as i32 - 8,
                };
                let insn = Insn::new(op, dst, src, off, imm);
                // Keep a few slots that do not decode.
                if rng.below(10) == 0 || decode(&[insn, Insn::default()], 0).is_ok() {
                    break insn;
                }
            })
            .collect();
        insns.push(Insn::new(0x95, 0, 0, 0, 0));
        let n = n + 1;
        let env = env_with(Entry::MemLen, registry(), rng.below(64));
        let p = Program {
            ops: (0..n).map(|pc| decode(&insns, pc).ok()).collect(),
            access: (0..n)
                .map(|_| {
                    regions[rng.below(4) as usize].map(|region| MemAccess {
                        region,
                        guard: rng.below(2) == 0,
                    })
                })
                .collect(),
            callx: (0..n)
                .map(|_| (rng.below(4) == 0).then(|| rng.below(6) as u32))
                .collect(),
            insns,
            env,
        };
        let mut pkt = [0u8; 64];
        let mut ctx = [0u8; 16];
        let r = run(&p, RunInput::ctx(&mut pkt, &mut ctx));
        outcomes[r.is_ok() as usize] += 1;
        if let Err(e) = &r {
            let kind = match e {
                RunError::OutOfBounds { .. } => "out of bounds",
                RunError::Budget { .. } => "budget",
                RunError::CallDepth { .. } => "call depth",
                RunError::UnknownHelper { .. } => "unknown helper",
                RunError::HelperFault { .. } => "helper fault",
                RunError::InvalidProgram { reason, .. } => reason,
                RunError::PacketWindow { .. } | RunError::CtxTooSmall { .. } => "entry",
            };
            *kinds.entry(kind).or_insert(0usize) += 1;
        }
    }
    // Both kinds of outcome occur, so the programs did run.
    assert!(
        outcomes[0] > 100 && outcomes[1] > 100,
        "{outcomes:?} {kinds:?}"
    );
}

// ---- with the verifier ----

#[test]
fn verified_programs_run_with_checks() {
    use crate::ebpf::asm::assemble;
    use crate::ebpf::verifier::verify;
    let load = verify(
        &assemble("ldxw %r0, [%r1+2]\nexit\n").unwrap(),
        &ProgEnv::mem(),
    )
    .unwrap();
    assert_eq!(
        run(&load, RunInput::mem(&mut [1, 2, 3, 4, 5, 6])),
        Ok(0x0605_0403)
    );
    assert_eq!(
        run(&load, RunInput::mem(&mut [1, 2, 3, 4, 5])),
        Err(RunError::OutOfBounds {
            pc: 0,
            region: Region::Packet,
            offset: 2,
            size: 4
        })
    );
    // A loop the verifier accepts but the budget ends.
    let spin = verify(
        &assemble("mov %r0, 0\nloop:\nadd %r0, 1\njne %r0, 0, loop\nexit\n").unwrap(),
        &Arc::new(ProgEnv {
            entry: Entry::MemLen,
            helpers: HelperRegistry::standard(),
            budget: 1000,
            maps: Default::default(),
        }),
    )
    .unwrap();
    assert_eq!(
        run(&spin, RunInput::mem(&mut [])),
        Err(RunError::Budget { pc: 2 })
    );
}
