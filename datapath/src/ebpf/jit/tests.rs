//! JIT unit tests: every instruction family against values computed here in
//! plain Rust, register preservation around the x86 quirks (cl, rdx:rax),
//! error exits, helpers, local calls, arenas and W^X.

mod alu;
#[cfg(target_arch = "x86_64")]
mod arena;
mod calls;
mod mem;
mod random;
mod suite;

use std::sync::Arc;

use super::*;
use crate::ebpf::helpers::HelperRegistry;
use crate::ebpf::insn::{self, AluOp, AtomicOp, Cond, EndKind, Src};
use crate::ebpf::vm::{Entry, Region, DEFAULT_BUDGET, STACK_TOTAL};
use crate::ebpf::ProgEnv;

pub(crate) use crate::ebpf::testgen::unverified_program as program;

pub(crate) fn prog_ops(ops: &[Op]) -> Program {
    program(insn::encode_all(ops), ProgEnv::mem(), true)
}

/// Runs `p` in the JIT, after checking that the interpreter, on the same
/// buffer, gives the same result and leaves the same memory.
pub(crate) fn run_prog(p: &Program, mem: &mut [u8]) -> Result<u64, RunError> {
    run_both(&compile(p).unwrap(), p, mem)
}

/// Runs a compiled program and, on the same buffer beforehand, the
/// interpreter; both must agree on the result and the memory.
pub(crate) fn run_both(jp: &JitProgram, p: &Program, mem: &mut [u8]) -> Result<u64, RunError> {
    let before = mem.to_vec();
    let by_interp = crate::ebpf::interp::run(p, RunInput::mem(mem));
    let after_interp = mem.to_vec();
    mem.copy_from_slice(&before);
    let by_jit = jp.run(RunInput::mem(mem));
    assert_eq!(by_jit, by_interp, "JIT and interpreter disagree");
    assert_eq!(
        mem,
        &after_interp[..],
        "JIT and interpreter leave different memory"
    );
    by_jit
}

/// JIT only, for helpers the interpreter cannot survive (panics).
#[cfg(target_arch = "x86_64")]
pub(crate) fn run_jit(p: &Program, mem: &mut [u8]) -> Result<u64, RunError> {
    compile(p).unwrap().run(RunInput::mem(mem))
}

pub(crate) fn run_ops(ops: &[Op], mem: &mut [u8]) -> Result<u64, RunError> {
    run_prog(&prog_ops(ops), mem)
}

// Small constructors for readable programs.
pub(crate) fn alu64(op: AluOp, dst: u8, src: Src) -> Op {
    Op::Alu {
        wide: true,
        op,
        dst,
        src,
    }
}
pub(crate) fn mov64(dst: u8, imm: i32) -> Op {
    alu64(AluOp::Mov, dst, Src::Imm(imm))
}
pub(crate) fn movr(dst: u8, src: u8) -> Op {
    alu64(AluOp::Mov, dst, Src::Reg(src))
}
pub(crate) fn lddw(dst: u8, imm: u64) -> Op {
    Op::Lddw {
        dst,
        kind: insn::LDDW_IMM,
        imm,
    }
}
pub(crate) fn ldx(size: u8, dst: u8, src: u8, off: i16) -> Op {
    Op::Ldx {
        size,
        signed: false,
        dst,
        src,
        off,
    }
}
pub(crate) fn stx(size: u8, dst: u8, src: u8, off: i16) -> Op {
    Op::Stx {
        size,
        dst,
        src,
        off,
    }
}
pub(crate) fn jmp(cond: Cond, dst: u8, src: Src, off: i16) -> Op {
    Op::Jmp {
        wide: true,
        cond,
        dst,
        src,
        off,
    }
}

#[test]
fn returns_immediate() {
    assert_eq!(run_ops(&[mov64(0, 42), Op::Exit], &mut []), Ok(42));
    assert_eq!(run_ops(&[mov64(0, -1), Op::Exit], &mut []), Ok(u64::MAX));
    assert_eq!(
        run_ops(&[lddw(0, 0x1122_3344_5566_7788), Op::Exit], &mut []),
        Ok(0x1122_3344_5566_7788)
    );
}

#[test]
fn entry_registers() {
    let mut mem = [0u8; 13];
    let addr = mem.as_ptr() as u64;
    assert_eq!(run_ops(&[movr(0, 1), Op::Exit], &mut mem), Ok(addr));
    assert_eq!(run_ops(&[movr(0, 2), Op::Exit], &mut mem), Ok(13));
    // r0 and r3..r9 start at zero.
    for r in [3u8, 4, 5, 6, 7, 8, 9] {
        let ops = [mov64(0, 7), alu64(AluOp::Add, 0, Src::Reg(r)), Op::Exit];
        assert_eq!(run_ops(&ops, &mut mem), Ok(7), "r{r}");
    }
    assert_eq!(run_ops(&[Op::Exit], &mut mem), Ok(0));
}

#[test]
fn ctx_entry_gets_pointers_filled() {
    use crate::ebpf::vm::{CtxField, CtxLayout};
    let layout = CtxLayout {
        size: 24,
        fields: vec![
            (0, 8, CtxField::PacketStart),
            (8, 8, CtxField::PacketEnd),
            (16, 4, CtxField::ScalarRw),
        ],
    };
    let env = Arc::new(ProgEnv {
        entry: Entry::Ctx(layout.clone()),
        helpers: HelperRegistry::standard(),
        budget: DEFAULT_BUDGET,
        maps: Default::default(),
    });
    // r0 = end - start + ctx.field16; also writes ctx.field16 = 9.
    let ops = [
        ldx(8, 2, 1, 0),
        ldx(8, 0, 1, 8),
        alu64(AluOp::Sub, 0, Src::Reg(2)),
        ldx(4, 3, 1, 16),
        alu64(AluOp::Add, 0, Src::Reg(3)),
        Op::St {
            size: 4,
            dst: 1,
            off: 16,
            imm: 9,
        },
        Op::Exit,
    ];
    let mut p = program(insn::encode_all(&ops), env, false);
    for a in p.access.iter_mut().flatten() {
        a.region = Region::Ctx;
    }
    let mut pkt = [0u8; 60];
    let mut ctx = [0u8; 24];
    ctx[16] = 5;
    let mut input = RunInput::ctx(&mut pkt, &mut ctx);
    crate::ebpf::vm::fill_ctx_pointers(&layout, &mut input);
    let r = compile(&p).unwrap().run(input);
    assert_eq!(r, Ok(65));
    assert_eq!(ctx[16], 9);
}

#[test]
fn jit_program_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<JitProgram>();
    fn check_send<T: Send>() {}
    check_send::<JitScratch>();
}

#[test]
fn runs_on_many_threads_at_once() {
    // r0 = sum of the 8 bytes of memory, with a loop.
    let ops = [
        mov64(0, 0),
        mov64(3, 0),
        // loop:
        movr(4, 1),
        alu64(AluOp::Add, 4, Src::Reg(3)),
        ldx(1, 5, 4, 0),
        alu64(AluOp::Add, 0, Src::Reg(5)),
        alu64(AluOp::Add, 3, Src::Imm(1)),
        jmp(Cond::Lt, 3, Src::Reg(2), -6),
        Op::Exit,
    ];
    let jp = Arc::new(compile(&prog_ops(&ops)).unwrap());
    let handles: Vec<_> = (0..4u8)
        .map(|t| {
            let jp = jp.clone();
            std::thread::spawn(move || {
                let mut scratch = JitScratch::new();
                for i in 0..2000u32 {
                    let mut mem = [t, 1, 2, 3, 4, 5, 6, (i % 200) as u8];
                    let want = 21 + u64::from(t) + u64::from(i % 200);
                    assert_eq!(jp.run_with(&mut scratch, RunInput::mem(&mut mem)), Ok(want));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

// Elsewhere `compile` only wraps the program for the interpreter, which
// reports these at run time.
#[cfg(target_arch = "x86_64")]
#[test]
fn compile_rejects_malformed_programs() {
    // Falls off the end.
    let p = prog_ops(&[mov64(0, 1)]);
    assert_eq!(compile(&p).err(), Some(JitError::FallsOffEnd { pc: 0 }));
    // Jump out of range.
    let p = prog_ops(&[Op::Ja { off: 5 }, Op::Exit]);
    assert_eq!(
        compile(&p).err(),
        Some(JitError::BadTarget { pc: 0, target: 6 })
    );
    // Jump into the second half of lddw.
    let p = prog_ops(&[Op::Ja { off: 1 }, lddw(0, 1), Op::Exit]);
    assert_eq!(
        compile(&p).err(),
        Some(JitError::BadTarget { pc: 0, target: 2 })
    );
    // Table lengths disagree.
    let mut p = prog_ops(&[Op::Exit]);
    p.access.clear();
    assert!(matches!(compile(&p), Err(JitError::Shape { .. })));
    // Memory access without verifier facts.
    let mut p = prog_ops(&[ldx(8, 0, 1, 0), Op::Exit]);
    p.access[0] = None;
    assert_eq!(compile(&p).err(), Some(JitError::MissingAccess { pc: 0 }));
    // A map handle is the map's index, as in the interpreter.
    let p = prog_ops(&[
        Op::Lddw {
            dst: 0,
            kind: insn::LDDW_MAP,
            imm: 3,
        },
        Op::Exit,
    ]);
    assert_eq!(compile(&p).unwrap().run(RunInput::mem(&mut [])), Ok(3));
    // Empty.
    let p = program(Vec::new(), ProgEnv::mem(), true);
    assert_eq!(compile(&p).err(), Some(JitError::Empty));
}

#[test]
fn budget_stops_an_endless_loop() {
    let env = Arc::new(ProgEnv {
        entry: Entry::MemLen,
        helpers: HelperRegistry::standard(),
        budget: 1000,
        maps: Default::default(),
    });
    // pc 0: r0 += 1; pc 1: ja -2 (back edge).
    let ops = [alu64(AluOp::Add, 0, Src::Imm(1)), Op::Ja { off: -2 }];
    let p = program(insn::encode_all(&ops), env.clone(), true);
    assert_eq!(run_prog(&p, &mut []), Err(RunError::Budget { pc: 1 }));
    // A conditional back edge: counts only taken jumps. 1000 taken jumps
    // are allowed, the 1001st fails.
    let loop_n = |n: i32| {
        let ops = [
            alu64(AluOp::Add, 0, Src::Imm(1)),
            jmp(Cond::Lt, 0, Src::Imm(n), -2),
            Op::Exit,
        ];
        program(insn::encode_all(&ops), env.clone(), true)
    };
    assert_eq!(run_prog(&loop_n(1001), &mut []), Ok(1001));
    assert_eq!(
        run_prog(&loop_n(1002), &mut []),
        Err(RunError::Budget { pc: 1 })
    );
    // Self loop (target == own slot).
    let p = program(insn::encode_all(&[Op::Ja { off: -1 }, Op::Exit]), env, true);
    assert_eq!(run_prog(&p, &mut []), Err(RunError::Budget { pc: 0 }));
}
