//! ALU, byte-swap and jump instructions against a plain-Rust model.

use super::*;

/// Interesting operand values: edges of every width and sign.
const VALUES: &[u64] = &[
    0,
    1,
    2,
    3,
    7,
    31,
    32,
    33,
    63,
    64,
    65,
    0x7f,
    0x80,
    0xff,
    0x8000,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_ffff_ffff,
    0x8000_0000_0000_0000,
    0xffff_ffff_8000_0000,
    0x1234_5678_9abc_def0,
    (-5i64) as u64,
    u64::MAX - 1,
    u64::MAX,
];

const IMMS: &[i32] = &[
    0,
    1,
    -1,
    2,
    5,
    -7,
    31,
    32,
    63,
    64,
    0x7f,
    -128,
    0x8000,
    i32::MAX,
    i32::MIN,
];

fn ops_list(wide: bool) -> Vec<AluOp> {
    AluOp::all(wide)
}

/// The reference semantics (RFC 9669 plus the brief's rules for division).
pub(crate) fn model(wide: bool, op: AluOp, a: u64, b: u64) -> u64 {
    if wide {
        let (sa, sb) = (a as i64, b as i64);
        match op {
            AluOp::Add => a.wrapping_add(b),
            AluOp::Sub => a.wrapping_sub(b),
            AluOp::Mul => a.wrapping_mul(b),
            AluOp::Div => a.checked_div(b).unwrap_or(0),
            AluOp::SDiv if b == 0 => 0,
            AluOp::SDiv => sa.wrapping_div(sb) as u64,
            AluOp::Or => a | b,
            AluOp::And => a & b,
            AluOp::Lsh => a << (b & 63),
            AluOp::Rsh => a >> (b & 63),
            AluOp::Mod => a.checked_rem(b).unwrap_or(a),
            AluOp::SMod if b == 0 => a,
            AluOp::SMod => sa.wrapping_rem(sb) as u64,
            AluOp::Xor => a ^ b,
            AluOp::Mov => b,
            AluOp::Arsh => (sa >> (b & 63)) as u64,
            AluOp::MovSx(8) => b as i8 as i64 as u64,
            AluOp::MovSx(16) => b as i16 as i64 as u64,
            AluOp::MovSx(_) => b as i32 as i64 as u64,
        }
    } else {
        let (a, b) = (a as u32, b as u32);
        let (sa, sb) = (a as i32, b as i32);
        let r = match op {
            AluOp::Add => a.wrapping_add(b),
            AluOp::Sub => a.wrapping_sub(b),
            AluOp::Mul => a.wrapping_mul(b),
            AluOp::Div => a.checked_div(b).unwrap_or(0),
            AluOp::SDiv if b == 0 => 0,
            AluOp::SDiv => sa.wrapping_div(sb) as u32,
            AluOp::Or => a | b,
            AluOp::And => a & b,
            AluOp::Lsh => a << (b & 31),
            AluOp::Rsh => a >> (b & 31),
            AluOp::Mod => a.checked_rem(b).unwrap_or(a),
            AluOp::SMod if b == 0 => a,
            AluOp::SMod => sa.wrapping_rem(sb) as u32,
            AluOp::Xor => a ^ b,
            AluOp::Mov => b,
            AluOp::Arsh => (sa >> (b & 31)) as u32,
            AluOp::MovSx(8) => b as i8 as i32 as u32,
            AluOp::MovSx(16) => b as i16 as i32 as u32,
            AluOp::MovSx(_) => b,
        };
        u64::from(r)
    }
}

fn cond_model(wide: bool, c: Cond, a: u64, b: u64) -> bool {
    let (a, b) = if wide {
        (a, b)
    } else {
        (a as u32 as u64, b as u32 as u64)
    };
    let (sa, sb) = if wide {
        (a as i64, b as i64)
    } else {
        (a as u32 as i32 as i64, b as u32 as i32 as i64)
    };
    match c {
        Cond::Eq => a == b,
        Cond::Ne => a != b,
        Cond::Set => a & b != 0,
        Cond::Gt => a > b,
        Cond::Ge => a >= b,
        Cond::Lt => a < b,
        Cond::Le => a <= b,
        Cond::Sgt => sa > sb,
        Cond::Sge => sa >= sb,
        Cond::Slt => sa < sb,
        Cond::Sle => sa <= sb,
    }
}

const CONDS: [Cond; 11] = Cond::ALL;

/// Distinct start values for r0..r9, with upper halves set so a missing
/// zero-extension or a clobbered register shows.
fn init(i: u8) -> u64 {
    0x0101_0101_0101_0101u64.wrapping_mul(u64::from(i) + 1) ^ 0xa5a5_0000_0000_5a5a
}

/// A program that sets r0..r9 (dst = a, src = b), runs `op`, and writes
/// all ten registers to memory (r1 points at 80 bytes).
fn dump_program(op: Op, dst: u8, src: Option<u8>, a: u64, b: u64) -> Program {
    let mut ops = vec![stx(8, 10, 1, -8)];
    for r in 0..10u8 {
        let v = if r == dst {
            a
        } else if Some(r) == src {
            b
        } else {
            init(r)
        };
        ops.push(lddw(r, v));
    }
    ops.push(op);
    for r in 0..10u8 {
        ops.push(stx(8, 10, r, -16 - 8 * i16::from(r)));
    }
    ops.push(ldx(8, 1, 10, -8));
    for r in 0..10u8 {
        ops.push(ldx(8, 2, 10, -16 - 8 * i16::from(r)));
        ops.push(stx(8, 1, 2, 8 * i16::from(r)));
    }
    ops.push(Op::Exit);
    prog_ops(&ops)
}

fn run_dump(jp: &JitProgram, p: &Program) -> [u64; 10] {
    let mut mem = [0u8; 80];
    run_both(jp, p, &mut mem).unwrap();
    let mut out = [0u64; 10];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u64::from_le_bytes(mem[i * 8..i * 8 + 8].try_into().unwrap());
    }
    out
}

/// Expected register file after `dump_program`: everything as initialised,
/// except dst.
fn expect_regs(dst: u8, src: Option<u8>, b: u64, result: u64) -> [u64; 10] {
    let mut e = [0u64; 10];
    for r in 0..10u8 {
        e[r as usize] = if r == dst {
            result
        } else if Some(r) == src {
            b
        } else {
            init(r)
        };
    }
    e
}

/// Compiles a batch and checks each program's r0.
fn check_batch(cases: &[(Program, u64, String)]) {
    let progs: Vec<&Program> = cases.iter().map(|c| &c.0).collect();
    let jps = compile_many(&progs).unwrap();
    for (jp, (p, want, what)) in jps.iter().zip(cases) {
        assert_eq!(run_both(jp, p, &mut []), Ok(*want), "{what}");
    }
}

#[test]
fn alu_register_operands_all_values() {
    for wide in [true, false] {
        for op in ops_list(wide) {
            let mut cases = Vec::new();
            for &a in VALUES {
                for &b in VALUES {
                    let ops = [
                        lddw(2, a),
                        lddw(4, b),
                        Op::Alu {
                            wide,
                            op,
                            dst: 2,
                            src: Src::Reg(4),
                        },
                        movr(0, 2),
                        Op::Exit,
                    ];
                    let what = format!("wide={wide} {op:?} {a:#x}, {b:#x}");
                    cases.push((prog_ops(&ops), model(wide, op, a, b), what));
                }
            }
            check_batch(&cases);
        }
    }
}

#[test]
fn alu_immediate_operands_all_values() {
    for wide in [true, false] {
        for op in ops_list(wide) {
            if matches!(op, AluOp::MovSx(_)) {
                continue; // register-only
            }
            let mut cases = Vec::new();
            for &a in VALUES {
                for &imm in IMMS {
                    let ops = [
                        lddw(3, a),
                        Op::Alu {
                            wide,
                            op,
                            dst: 3,
                            src: Src::Imm(imm),
                        },
                        movr(0, 3),
                        Op::Exit,
                    ];
                    let b = imm as i64 as u64;
                    let what = format!("wide={wide} {op:?} {a:#x}, imm {imm}");
                    cases.push((prog_ops(&ops), model(wide, op, a, b), what));
                }
            }
            check_batch(&cases);
        }
    }
}

/// Every (dst, src) register pair, so the rax/rdx/rcx special cases of
/// div, mod and shifts are exercised, and every other register must keep
/// its value.
#[test]
fn alu_every_register_pair_preserves_the_rest() {
    let pairs: &[(u64, u64)] = &[
        (0x8000_0000_0000_0000, u64::MAX),
        (0xffff_ffff_8000_0000, 0xffff_ffff),
        (0x1234_5678_9abc_def0, 0),
        (0xfedc_ba98_7654_3210, 0x1_0000_0025),
        (1000, 7),
    ];
    for wide in [true, false] {
        for op in ops_list(wide) {
            let mut progs = Vec::new();
            let mut want = Vec::new();
            for dst in 0..10u8 {
                for src in 0..10u8 {
                    for &(a, b) in pairs {
                        let b_eff = if src == dst { a } else { b };
                        let alu = Op::Alu {
                            wide,
                            op,
                            dst,
                            src: Src::Reg(src),
                        };
                        progs.push(dump_program(alu, dst, Some(src), a, b));
                        let r = model(wide, op, a, b_eff);
                        let src_opt = (src != dst).then_some(src);
                        want.push((expect_regs(dst, src_opt, b, r), (dst, src, a, b)));
                    }
                }
            }
            let refs: Vec<&Program> = progs.iter().collect();
            let jps = compile_many(&refs).unwrap();
            for ((jp, p), (w, what)) in jps.iter().zip(&progs).zip(&want) {
                assert_eq!(&run_dump(jp, p), w, "wide={wide} {op:?} {what:x?}");
            }
        }
    }
}

#[test]
fn alu_immediate_every_destination_preserves_the_rest() {
    for wide in [true, false] {
        for op in ops_list(wide) {
            if matches!(op, AluOp::MovSx(_)) {
                continue;
            }
            let mut progs = Vec::new();
            let mut want = Vec::new();
            for dst in 0..10u8 {
                for imm in [0, -1, 3, 33, i32::MIN] {
                    let a = 0x8000_0000_0000_0007u64;
                    let alu = Op::Alu {
                        wide,
                        op,
                        dst,
                        src: Src::Imm(imm),
                    };
                    progs.push(dump_program(alu, dst, None, a, 0));
                    let r = model(wide, op, a, imm as i64 as u64);
                    want.push((expect_regs(dst, None, 0, r), (dst, imm)));
                }
            }
            let refs: Vec<&Program> = progs.iter().collect();
            let jps = compile_many(&refs).unwrap();
            for ((jp, p), (w, what)) in jps.iter().zip(&progs).zip(&want) {
                assert_eq!(&run_dump(jp, p), w, "wide={wide} {op:?} {what:?}");
            }
        }
    }
}

#[test]
fn neg_and_byte_swaps() {
    for &a in VALUES {
        for dst in [0u8, 1, 3, 4, 6, 9] {
            let run1 = |op: Op| {
                let p = dump_program(op, dst, None, a, 0);
                run_dump(&compile(&p).unwrap(), &p)[dst as usize]
            };
            assert_eq!(run1(Op::Neg { wide: true, dst }), a.wrapping_neg());
            assert_eq!(
                run1(Op::Neg { wide: false, dst }),
                u64::from((a as u32).wrapping_neg())
            );
            let end = |kind, bits| Op::End { kind, bits, dst };
            assert_eq!(run1(end(EndKind::Le, 16)), a & 0xffff);
            assert_eq!(run1(end(EndKind::Le, 32)), a & 0xffff_ffff);
            assert_eq!(run1(end(EndKind::Le, 64)), a);
            for kind in [EndKind::Be, EndKind::Swap] {
                assert_eq!(
                    run1(end(kind, 16)),
                    u64::from((a as u16).swap_bytes()),
                    "{kind:?} 16 {a:#x}"
                );
                assert_eq!(run1(end(kind, 32)), u64::from((a as u32).swap_bytes()));
                assert_eq!(run1(end(kind, 64)), a.swap_bytes());
            }
        }
    }
}

#[test]
fn conditional_jumps_forward() {
    for wide in [true, false] {
        for cond in CONDS {
            let mut cases = Vec::new();
            for &a in VALUES {
                for &b in VALUES {
                    for imm in [false, true] {
                        if imm && b as i64 != i64::from(b as i32) {
                            continue;
                        }
                        let src = if imm { Src::Imm(b as i32) } else { Src::Reg(4) };
                        let ops = [
                            lddw(2, a),
                            lddw(4, b),
                            Op::Jmp {
                                wide,
                                cond,
                                dst: 2,
                                src,
                                off: 2,
                            },
                            mov64(0, 0),
                            Op::Exit,
                            mov64(0, 1),
                            Op::Exit,
                        ];
                        let want = u64::from(cond_model(wide, cond, a, b));
                        let what = format!("wide={wide} {cond:?} {a:#x} {b:#x} imm={imm}");
                        cases.push((prog_ops(&ops), want, what));
                    }
                }
            }
            check_batch(&cases);
        }
    }
}

#[test]
fn conditional_jumps_backward() {
    for wide in [true, false] {
        for cond in CONDS {
            let mut cases = Vec::new();
            for &a in &VALUES[..12] {
                for &b in &VALUES[15..] {
                    for (x, y) in [(a, b), (b, a), (a, a)] {
                        // pc 5: ja +2 → 8; pc 8: jcc → 6 (back edge).
                        let ops = [
                            mov64(0, 0),
                            lddw(2, x),
                            lddw(4, y),
                            Op::Ja { off: 2 },
                            mov64(0, 1),
                            Op::Exit,
                            Op::Jmp {
                                wide,
                                cond,
                                dst: 2,
                                src: Src::Reg(4),
                                off: -3,
                            },
                            Op::Exit,
                        ];
                        let want = u64::from(cond_model(wide, cond, x, y));
                        let what = format!("wide={wide} {cond:?} {x:#x} {y:#x}");
                        cases.push((prog_ops(&ops), want, what));
                    }
                }
            }
            check_batch(&cases);
        }
    }
}

#[test]
fn jumps_compare_every_register() {
    // jeq rX, rY with every pair, equal values.
    let mut cases = Vec::new();
    for dst in 0..10u8 {
        for src in 0..10u8 {
            let v = 0x8000_0000_1234_0000u64;
            let ops = [
                lddw(dst, v),
                lddw(src, v),
                jmp(Cond::Eq, dst, Src::Reg(src), 2),
                mov64(0, 0),
                Op::Exit,
                mov64(0, 1),
                Op::Exit,
            ];
            cases.push((prog_ops(&ops), 1, format!("r{dst} r{src}")));
        }
    }
    check_batch(&cases);
}
