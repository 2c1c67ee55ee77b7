//! Slots to [`Op`]s: every field checked, never a panic.

use super::*;

fn size_bytes(op: u8) -> u8 {
    match op & 0x18 {
        SZ_W => 4,
        SZ_H => 2,
        SZ_B => 1,
        _ => 8,
    }
}

fn reg(op: u8, r: u8) -> Result<u8, CodecError> {
    if (r as usize) < NREGS {
        Ok(r)
    } else {
        Err(CodecError::BadRegister { op, reg: r })
    }
}

fn field_zero(op: u8, field: &'static str, v: i64) -> Result<(), CodecError> {
    if v == 0 {
        Ok(())
    } else {
        Err(CodecError::BadField {
            op,
            field,
            expected: "0",
            actual: v,
        })
    }
}

fn alu_op(op: u8, off: i16) -> Result<AluOp, CodecError> {
    let code = op & 0xf0;
    let bad_off = |expected| CodecError::BadField {
        op,
        field: "offset",
        expected,
        actual: off as i64,
    };
    let plain = |a: AluOp| if off == 0 { Ok(a) } else { Err(bad_off("0")) };
    match code {
        ALU_ADD => plain(AluOp::Add),
        ALU_SUB => plain(AluOp::Sub),
        ALU_MUL => plain(AluOp::Mul),
        ALU_OR => plain(AluOp::Or),
        ALU_AND => plain(AluOp::And),
        ALU_LSH => plain(AluOp::Lsh),
        ALU_RSH => plain(AluOp::Rsh),
        ALU_XOR => plain(AluOp::Xor),
        ALU_ARSH => plain(AluOp::Arsh),
        ALU_DIV => match off {
            0 => Ok(AluOp::Div),
            1 => Ok(AluOp::SDiv),
            _ => Err(bad_off("0 or 1")),
        },
        ALU_MOD => match off {
            0 => Ok(AluOp::Mod),
            1 => Ok(AluOp::SMod),
            _ => Err(bad_off("0 or 1")),
        },
        ALU_MOV => match off {
            0 => Ok(AluOp::Mov),
            8 | 16 => Ok(AluOp::MovSx(off as u8)),
            32 if op & 0x07 == CLS_ALU64 => Ok(AluOp::MovSx(32)),
            _ => Err(bad_off("0, 8, 16 or 32")),
        },
        _ => Err(CodecError::UnknownOpcode { op }),
    }
}

fn cond(op: u8) -> Result<Cond, CodecError> {
    Ok(match op & 0xf0 {
        JMP_JEQ => Cond::Eq,
        JMP_JGT => Cond::Gt,
        JMP_JGE => Cond::Ge,
        JMP_JSET => Cond::Set,
        JMP_JNE => Cond::Ne,
        JMP_JSGT => Cond::Sgt,
        JMP_JSGE => Cond::Sge,
        JMP_JLT => Cond::Lt,
        JMP_JLE => Cond::Le,
        JMP_JSLT => Cond::Slt,
        JMP_JSLE => Cond::Sle,
        _ => return Err(CodecError::UnknownOpcode { op }),
    })
}

/// Decodes the instruction at slot `pc`.
pub fn decode(insns: &[Insn], pc: usize) -> Result<Op, CodecError> {
    let i = *insns.get(pc).ok_or(CodecError::OutOfRange(pc))?;
    let op = i.op;
    match i.class() {
        CLS_ALU | CLS_ALU64 => {
            let wide = i.class() == CLS_ALU64;
            let dst = reg(op, i.dst)?;
            match op & 0xf0 {
                ALU_NEG => {
                    field_zero(op, "source bit", (op & SRC_X) as i64)?;
                    field_zero(op, "src", i.src as i64)?;
                    field_zero(op, "offset", i.off as i64)?;
                    field_zero(op, "imm", i.imm as i64)?;
                    Ok(Op::Neg { wide, dst })
                }
                ALU_END => {
                    field_zero(op, "src", i.src as i64)?;
                    field_zero(op, "offset", i.off as i64)?;
                    let kind = match (wide, op & SRC_X) {
                        (false, SRC_K) => EndKind::Le,
                        (false, _) => EndKind::Be,
                        (true, SRC_K) => EndKind::Swap,
                        (true, _) => return Err(CodecError::UnknownOpcode { op }),
                    };
                    match i.imm {
                        16 | 32 | 64 => Ok(Op::End {
                            kind,
                            bits: i.imm as u8,
                            dst,
                        }),
                        v => Err(CodecError::BadField {
                            op,
                            field: "imm",
                            expected: "16, 32 or 64",
                            actual: v as i64,
                        }),
                    }
                }
                _ => {
                    let aop = alu_op(op, i.off)?;
                    if matches!(aop, AluOp::MovSx(_)) && op & SRC_X == 0 {
                        return Err(CodecError::BadField {
                            op,
                            field: "source bit",
                            expected: "register (movsx takes a register)",
                            actual: 0,
                        });
                    }
                    let src = if op & SRC_X != 0 {
                        field_zero(op, "imm", i.imm as i64)?;
                        Src::Reg(reg(op, i.src)?)
                    } else {
                        field_zero(op, "src", i.src as i64)?;
                        Src::Imm(i.imm)
                    };
                    Ok(Op::Alu {
                        wide,
                        op: aop,
                        dst,
                        src,
                    })
                }
            }
        }
        CLS_JMP | CLS_JMP32 => {
            let wide = i.class() == CLS_JMP;
            match op & 0xf0 {
                JMP_JA => {
                    field_zero(op, "source bit", (op & SRC_X) as i64)?;
                    field_zero(op, "dst", i.dst as i64)?;
                    field_zero(op, "src", i.src as i64)?;
                    if wide {
                        field_zero(op, "imm", i.imm as i64)?;
                        Ok(Op::Ja { off: i.off as i32 })
                    } else {
                        field_zero(op, "offset", i.off as i64)?;
                        Ok(Op::Ja { off: i.imm })
                    }
                }
                JMP_CALL if wide => {
                    field_zero(op, "offset", i.off as i64)?;
                    if op & SRC_X != 0 {
                        field_zero(op, "src", i.src as i64)?;
                        field_zero(op, "imm", i.imm as i64)?;
                        return Ok(Op::CallX {
                            reg: reg(op, i.dst)?,
                        });
                    }
                    field_zero(op, "dst", i.dst as i64)?;
                    match i.src {
                        CALL_HELPER => Ok(Op::Call { helper: i.imm }),
                        CALL_LOCAL => Ok(Op::CallLocal { off: i.imm }),
                        s => Err(CodecError::BadField {
                            op,
                            field: "src",
                            expected: "0 (helper) or 1 (local)",
                            actual: s as i64,
                        }),
                    }
                }
                JMP_EXIT if wide => {
                    field_zero(op, "source bit", (op & SRC_X) as i64)?;
                    field_zero(op, "dst", i.dst as i64)?;
                    field_zero(op, "src", i.src as i64)?;
                    field_zero(op, "offset", i.off as i64)?;
                    field_zero(op, "imm", i.imm as i64)?;
                    Ok(Op::Exit)
                }
                _ => {
                    let c = cond(op)?;
                    let dst = reg(op, i.dst)?;
                    let src = if op & SRC_X != 0 {
                        field_zero(op, "imm", i.imm as i64)?;
                        Src::Reg(reg(op, i.src)?)
                    } else {
                        field_zero(op, "src", i.src as i64)?;
                        Src::Imm(i.imm)
                    };
                    Ok(Op::Jmp {
                        wide,
                        cond: c,
                        dst,
                        src,
                        off: i.off,
                    })
                }
            }
        }
        CLS_LD => {
            if op != (CLS_LD | MODE_IMM | SZ_DW) {
                return Err(CodecError::UnknownOpcode { op });
            }
            let dst = reg(op, i.dst)?;
            field_zero(op, "offset", i.off as i64)?;
            if i.src != LDDW_IMM && i.src != LDDW_MAP {
                return Err(CodecError::BadField {
                    op,
                    field: "src",
                    expected: "0 (imm64) or 1 (map)",
                    actual: i.src as i64,
                });
            }
            let hi = *insns.get(pc + 1).ok_or(CodecError::TruncatedLddw)?;
            if hi.op != 0 || hi.dst != 0 || hi.src != 0 || hi.off != 0 {
                return Err(CodecError::BadLddwTail { op: hi.op });
            }
            let imm = (i.imm as u32 as u64) | ((hi.imm as u32 as u64) << 32);
            Ok(Op::Lddw {
                dst,
                kind: i.src,
                imm,
            })
        }
        CLS_LDX => {
            let mode = op & 0xe0;
            let size = size_bytes(op);
            let signed = match mode {
                MODE_MEM => false,
                MODE_MEMSX if size < 8 => true,
                _ => return Err(CodecError::UnknownOpcode { op }),
            };
            field_zero(op, "imm", i.imm as i64)?;
            Ok(Op::Ldx {
                size,
                signed,
                dst: reg(op, i.dst)?,
                src: reg(op, i.src)?,
                off: i.off,
            })
        }
        CLS_ST => {
            if op & 0xe0 != MODE_MEM {
                return Err(CodecError::UnknownOpcode { op });
            }
            field_zero(op, "src", i.src as i64)?;
            Ok(Op::St {
                size: size_bytes(op),
                dst: reg(op, i.dst)?,
                off: i.off,
                imm: i.imm,
            })
        }
        _ => {
            // CLS_STX
            let size = size_bytes(op);
            let dst = reg(op, i.dst)?;
            let src = reg(op, i.src)?;
            match op & 0xe0 {
                MODE_MEM => {
                    field_zero(op, "imm", i.imm as i64)?;
                    Ok(Op::Stx {
                        size,
                        dst,
                        src,
                        off: i.off,
                    })
                }
                MODE_ATOMIC if size == 4 || size == 8 => {
                    let (aop, fetch) = match i.imm {
                        ATOMIC_XCHG => (AtomicOp::Xchg, true),
                        ATOMIC_CMPXCHG => (AtomicOp::CmpXchg, true),
                        imm => {
                            let fetch = imm & ATOMIC_FETCH != 0;
                            let aop = match imm & !ATOMIC_FETCH {
                                ATOMIC_ADD => AtomicOp::Add,
                                ATOMIC_OR => AtomicOp::Or,
                                ATOMIC_AND => AtomicOp::And,
                                ATOMIC_XOR => AtomicOp::Xor,
                                _ => {
                                    return Err(CodecError::BadField {
                                        op,
                                        field: "atomic imm",
                                        expected: "add/or/and/xor[|fetch], xchg or cmpxchg",
                                        actual: imm as i64,
                                    })
                                }
                            };
                            (aop, fetch)
                        }
                    };
                    Ok(Op::Atomic {
                        size,
                        op: aop,
                        fetch,
                        dst,
                        src,
                        off: i.off,
                    })
                }
                _ => Err(CodecError::UnknownOpcode { op }),
            }
        }
    }
}

/// Decodes every instruction of a program, paired with its slot index.
/// The second slot of an `lddw` is skipped.
pub fn decode_all(insns: &[Insn]) -> Result<Vec<(usize, Op)>, (usize, CodecError)> {
    let mut out = Vec::with_capacity(insns.len());
    let mut pc = 0;
    while pc < insns.len() {
        let op = decode(insns, pc).map_err(|e| (pc, e))?;
        out.push((pc, op));
        pc += op.slots();
    }
    Ok(out)
}
