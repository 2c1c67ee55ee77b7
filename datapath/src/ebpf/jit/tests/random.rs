//! Generated programs, JIT against interpreter: same result or error, same
//! memory. Two sources: programs shaped to pass the verifier (run with its
//! facts, so unguarded accesses are exercised), and arbitrary instruction
//! mixes run with every access guarded (the path that must hold for any
//! program the JIT accepts).

use super::*;
use crate::ebpf::interp;
use crate::ebpf::verifier::verify;

/// xorshift64*: deterministic, seedable.
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
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn imm(&mut self) -> i32 {
        let (a, b) = (self.next() as i32, (self.next() % 100) as i32);
        self.pick(&[
            0,
            1,
            -1,
            2,
            7,
            31,
            32,
            63,
            64,
            255,
            -128,
            0x7fff,
            i32::MAX,
            i32::MIN,
            a,
            b,
        ])
    }
}

const ALU: [AluOp; 16] = AluOp::BOTH_WIDTHS;
const CONDS: [Cond; 11] = Cond::ALL;
const ATOMICS: [(AtomicOp, bool); 10] = [
    (AtomicOp::Add, false),
    (AtomicOp::Add, true),
    (AtomicOp::Or, false),
    (AtomicOp::Or, true),
    (AtomicOp::And, false),
    (AtomicOp::And, true),
    (AtomicOp::Xor, false),
    (AtomicOp::Xor, true),
    (AtomicOp::Xchg, true),
    (AtomicOp::CmpXchg, true),
];

/// Registers holding plain numbers in generated programs (r1 is the packet,
/// r6 a copy of it, r10 the frame pointer).
const SCALARS: [u8; 7] = [0, 2, 3, 4, 5, 7, 8];

/// A load; sign extension only below 8 bytes (the codec has no `ldxsdw`).
fn load(r: &mut Rng, dst: u8, src: u8, off: i16) -> Op {
    let size = r.pick(&[1, 2, 4, 8]);
    Op::Ldx {
        size,
        signed: size < 8 && r.chance(30),
        dst,
        src,
        off,
    }
}

fn alu_op(r: &mut Rng, dst: u8, src: u8) -> Op {
    let wide = r.chance(60);
    let mut op = r.pick(&ALU);
    if matches!(op, AluOp::MovSx(_)) && wide && r.chance(30) {
        op = AluOp::MovSx(32);
    }
    let src = if matches!(op, AluOp::MovSx(_)) || r.chance(50) {
        Src::Reg(src)
    } else {
        Src::Imm(r.imm())
    };
    Op::Alu { wide, op, dst, src }
}

/// A program shaped for the verifier: all registers and the 64 top stack
/// bytes initialised, scalar arithmetic, forward branches, stack loads,
/// stores and atomics, packet loads, a bounded loop, helper and local calls.
fn verifiable(r: &mut Rng) -> Vec<Op> {
    let mut ops = vec![movr(6, 1)];
    for &s in &SCALARS {
        if s != 2 {
            ops.push(lddw(s, r.next()));
        }
    }
    ops.push(lddw(9, 0));
    for k in 1..=8i16 {
        ops.push(stx(8, 10, r.pick(&SCALARS), -8 * k));
    }
    let body = 5 + r.below(25) as usize;
    let mut i = 0;
    while i < body {
        i += 1;
        let dst = r.pick(&SCALARS);
        let src = r.pick(&SCALARS);
        let slot = -8 * (1 + r.below(8) as i16);
        match r.below(100) {
            0..=44 => ops.push(alu_op(r, dst, src)),
            45..=49 => ops.push(Op::Neg {
                wide: r.chance(50),
                dst,
            }),
            50..=54 => ops.push(Op::End {
                kind: r.pick(&[EndKind::Le, EndKind::Be, EndKind::Swap]),
                bits: r.pick(&[16, 32, 64]),
                dst,
            }),
            55..=64 => {
                // Skip 1..3 of the following ALU instructions.
                let n = 1 + r.below(3) as i16;
                let src = if r.chance(50) {
                    Src::Reg(src)
                } else {
                    Src::Imm(r.imm())
                };
                ops.push(Op::Jmp {
                    wide: r.chance(50),
                    cond: r.pick(&CONDS),
                    dst,
                    src,
                    off: n,
                });
                for _ in 0..n {
                    let (d, s) = (r.pick(&SCALARS), r.pick(&SCALARS));
                    ops.push(alu_op(r, d, s));
                }
            }
            65..=72 => ops.push(stx(r.pick(&[1, 2, 4, 8]), 10, src, slot)),
            73..=80 => ops.push(load(r, dst, 10, slot)),
            81..=86 => {
                let (op, fetch) = r.pick(&ATOMICS);
                ops.push(Op::Atomic {
                    size: r.pick(&[4, 8]),
                    op,
                    fetch,
                    dst: 10,
                    src,
                    off: slot,
                });
            }
            87..=92 => {
                let off = r.below(40) as i16;
                ops.push(load(r, dst, 6, off));
            }
            93..=95 => {
                // r9 = n; loop: dst op= src; r9 -= 1; if r9 != 0 goto loop.
                ops.push(mov64(9, 1 + r.below(20) as i32));
                ops.push(alu_op(r, dst, src));
                ops.push(alu64(AluOp::Sub, 9, Src::Imm(1)));
                ops.push(jmp(Cond::Ne, 9, Src::Imm(0), -3));
            }
            96..=97 => {
                // unwind(r1): returns r1, or ends the program if it is 0.
                ops.push(mov64(1, r.pick(&[0, 7, 7, 7])));
                ops.push(Op::Call { helper: 5 });
                for s in 1..=5u8 {
                    ops.push(lddw(s, r.next()));
                }
                ops.push(movr(1, 6));
            }
            _ => {
                // Local call to a leaf at the end: r0 = r2 * 3 + 1.
                ops.push(Op::CallLocal { off: i32::MAX });
                for s in 1..=5u8 {
                    ops.push(lddw(s, r.next()));
                }
                ops.push(movr(1, 6));
            }
        }
    }
    ops.push(Op::Exit);
    // The leaf, and the local calls' offsets to it.
    let leaf = insn::encode_all(&ops).len();
    ops.push(movr(0, 2));
    ops.push(alu64(AluOp::Mul, 0, Src::Imm(3)));
    ops.push(alu64(AluOp::Add, 0, Src::Imm(1)));
    ops.push(Op::Exit);
    let mut slot = 0usize;
    for op in &mut ops {
        if let Op::CallLocal { off } = op {
            *off = (leaf as i64 - slot as i64 - 1) as i32;
        }
        slot += op.slots();
    }
    ops
}

/// Any mix of instructions, registers and offsets, except that r10 is only
/// ever a memory base (so no stack address, which differs between the
/// engines' stacks, can reach a result). Jumps stay inside the program.
fn arbitrary(r: &mut Rng) -> Vec<Op> {
    let n = 3 + r.below(30) as usize;
    let mut ops = Vec::with_capacity(n + 1);
    let reg = |r: &mut Rng| r.below(10) as u8;
    for i in 0..n {
        let dst = reg(r);
        let src = reg(r);
        let off = r.pick(&[0i16, 1, -1, 8, -8, 100, -512, -4096, 4095]);
        let fwd = (n - i) as i64;
        let jump_off = (r.below(fwd as u64 + 3) as i64 - 3).clamp(-(i as i64) - 1, fwd - 1) as i16;
        let op = match r.below(100) {
            0..=39 => alu_op(r, dst, src),
            40..=44 => Op::Neg {
                wide: r.chance(50),
                dst,
            },
            45..=49 => Op::End {
                kind: r.pick(&[EndKind::Le, EndKind::Be, EndKind::Swap]),
                bits: r.pick(&[16, 32, 64]),
                dst,
            },
            50..=59 => Op::Jmp {
                wide: r.chance(50),
                cond: r.pick(&CONDS),
                dst,
                src: if r.chance(50) {
                    Src::Reg(src)
                } else {
                    Src::Imm(r.imm())
                },
                off: jump_off,
            },
            60..=69 => {
                let base = if r.chance(40) { 10 } else { src };
                load(r, dst, base, off)
            }
            70..=74 => Op::St {
                size: r.pick(&[1, 2, 4, 8]),
                dst: if r.chance(40) { 10 } else { dst },
                off,
                imm: r.imm(),
            },
            75..=82 => stx(
                r.pick(&[1, 2, 4, 8]),
                if r.chance(40) { 10 } else { dst },
                src,
                off,
            ),
            83..=88 => {
                let (op, fetch) = r.pick(&ATOMICS);
                Op::Atomic {
                    size: r.pick(&[4, 8]),
                    op,
                    fetch,
                    dst: if r.chance(40) { 10 } else { dst },
                    src,
                    off,
                }
            }
            89..=92 => lddw(dst, r.next()),
            93..=95 => Op::Ja {
                off: jump_off as i32,
            },
            96..=97 => {
                // Helpers clobber r1..r5 (the verifier forbids reading them
                // afterwards; here they are simply set again).
                ops.push(Op::Call {
                    helper: r.pick(&[5, 5, 1, 99]),
                });
                for s in 1..=4u8 {
                    ops.push(mov64(s, r.imm()));
                }
                mov64(5, r.imm())
            }
            _ => Op::CallLocal {
                off: (r.below(n as u64) as i64 - i as i64 - 1) as i32,
            },
        };
        ops.push(op);
    }
    ops.push(Op::Exit);
    ops
}

/// Programs per test: `$JIT_RANDOM_CASES`, default 3000.
fn cases() -> u64 {
    std::env::var("JIT_RANDOM_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

/// Runs both engines on the same packet buffer; panics on any difference.
fn compare(prog: &Program, pkt_len: usize, seed: u64, what: &str) -> Result<u64, RunError> {
    let jp = compile(prog).unwrap_or_else(|e| panic!("{what} seed {seed}: JIT rejected: {e}"));
    let init: Vec<u8> = (0..pkt_len)
        .map(|i| (i as u8).wrapping_mul(37) ^ 0x5a)
        .collect();
    let mut mem = init.clone();
    let by_interp = interp::run(prog, RunInput::mem(&mut mem));
    let after = mem.clone();
    mem.copy_from_slice(&init);
    let by_jit = jp.run(RunInput::mem(&mut mem));
    assert_eq!(by_jit, by_interp, "{what} seed {seed}: results differ");
    assert_eq!(mem, after, "{what} seed {seed}: memory differs");
    by_jit
}

#[test]
fn verified_random_programs_agree_with_the_interpreter() {
    let n = cases();
    let (mut accepted, mut errors) = (0, 0);
    for seed in 1..=n {
        let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let ops = verifiable(&mut r);
        let Ok(prog) = verify(&insn::encode_all(&ops), &ProgEnv::mem()) else {
            continue;
        };
        accepted += 1;
        let len = r.pick(&[0, 8, 23, 40, 64]);
        if compare(&prog, len, seed, "verified").is_err() {
            errors += 1;
        }
    }
    println!("verified programs: {accepted} accepted of {n}, {errors} ended in an error");
    // The generator must mostly produce verifiable programs, or this test
    // would test little.
    assert!(accepted > n * 2 / 3, "only {accepted} programs verified");
    assert!(errors > 0 && errors < accepted / 2, "{errors} errors");
}

#[test]
fn arbitrary_guarded_programs_agree_with_the_interpreter() {
    // A small budget: many of these programs loop for ever.
    let env = Arc::new(ProgEnv {
        budget: 5000,
        maps: Default::default(),
        ..(*ProgEnv::mem()).clone()
    });
    let n = cases();
    let (mut ran, mut errors) = (0, 0);
    for seed in 1..=n {
        let mut r = Rng(seed.wrapping_mul(0xd1b5_4a32_d192_ed03) | 1);
        let ops = arbitrary(&mut r);
        let prog = program(insn::encode_all(&ops), env.clone(), true);
        if compile(&prog).is_err() {
            continue;
        }
        ran += 1;
        let len = r.pick(&[0, 16, 64]);
        if compare(&prog, len, seed, "arbitrary").is_err() {
            errors += 1;
        }
    }
    println!("arbitrary programs: {ran} ran, {errors} ended in an error");
    assert!(ran > n * 2 / 3, "only {ran} programs compiled");
    assert!(errors > 100 && errors < ran, "{errors} errors of {ran}");
}
