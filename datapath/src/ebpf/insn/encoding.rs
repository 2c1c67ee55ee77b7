//! [`Op`]s back to slots.

use super::*;

/// Encodes a decoded instruction back into one or two slots.
pub fn encode(op: &Op) -> Vec<Insn> {
    let src_of = |s: Src| match s {
        Src::Reg(r) => (SRC_X, r, 0),
        Src::Imm(v) => (SRC_K, 0, v),
    };
    match *op {
        Op::Alu { wide, op, dst, src } => {
            let cls = if wide { CLS_ALU64 } else { CLS_ALU };
            let (code, off) = op.code();
            let (sbit, sreg, imm) = src_of(src);
            vec![Insn::new(code | sbit | cls, dst, sreg, off, imm)]
        }
        Op::Neg { wide, dst } => {
            let cls = if wide { CLS_ALU64 } else { CLS_ALU };
            vec![Insn::new(ALU_NEG | cls, dst, 0, 0, 0)]
        }
        Op::End { kind, bits, dst } => {
            let op = match kind {
                EndKind::Le => ALU_END | SRC_K | CLS_ALU,
                EndKind::Be => ALU_END | SRC_X | CLS_ALU,
                EndKind::Swap => ALU_END | SRC_K | CLS_ALU64,
            };
            vec![Insn::new(op, dst, 0, 0, bits as i32)]
        }
        Op::Ja { off } => {
            if let Ok(o) = i16::try_from(off) {
                vec![Insn::new(JMP_JA | CLS_JMP, 0, 0, o, 0)]
            } else {
                vec![Insn::new(JMP_JA | CLS_JMP32, 0, 0, 0, off)]
            }
        }
        Op::Jmp {
            wide,
            cond,
            dst,
            src,
            off,
        } => {
            let cls = if wide { CLS_JMP } else { CLS_JMP32 };
            let code = match cond {
                Cond::Eq => JMP_JEQ,
                Cond::Gt => JMP_JGT,
                Cond::Ge => JMP_JGE,
                Cond::Set => JMP_JSET,
                Cond::Ne => JMP_JNE,
                Cond::Sgt => JMP_JSGT,
                Cond::Sge => JMP_JSGE,
                Cond::Lt => JMP_JLT,
                Cond::Le => JMP_JLE,
                Cond::Slt => JMP_JSLT,
                Cond::Sle => JMP_JSLE,
            };
            let (sbit, sreg, imm) = src_of(src);
            vec![Insn::new(code | sbit | cls, dst, sreg, off, imm)]
        }
        Op::Call { helper } => vec![Insn::new(JMP_CALL | CLS_JMP, 0, CALL_HELPER, 0, helper)],
        Op::CallLocal { off } => vec![Insn::new(JMP_CALL | CLS_JMP, 0, CALL_LOCAL, 0, off)],
        Op::CallX { reg } => vec![Insn::new(JMP_CALL | SRC_X | CLS_JMP, reg, 0, 0, 0)],
        Op::Exit => vec![Insn::new(JMP_EXIT | CLS_JMP, 0, 0, 0, 0)],
        Op::Lddw { dst, kind, imm } => vec![
            Insn::new(CLS_LD | MODE_IMM | SZ_DW, dst, kind, 0, imm as u32 as i32),
            Insn::new(0, 0, 0, 0, (imm >> 32) as u32 as i32),
        ],
        Op::Ldx {
            size,
            signed,
            dst,
            src,
            off,
        } => {
            let mode = if signed { MODE_MEMSX } else { MODE_MEM };
            vec![Insn::new(
                CLS_LDX | mode | size_code(size),
                dst,
                src,
                off,
                0,
            )]
        }
        Op::St {
            size,
            dst,
            off,
            imm,
        } => {
            vec![Insn::new(
                CLS_ST | MODE_MEM | size_code(size),
                dst,
                0,
                off,
                imm,
            )]
        }
        Op::Stx {
            size,
            dst,
            src,
            off,
        } => {
            vec![Insn::new(
                CLS_STX | MODE_MEM | size_code(size),
                dst,
                src,
                off,
                0,
            )]
        }
        Op::Atomic {
            size,
            op,
            fetch,
            dst,
            src,
            off,
        } => {
            let imm = match op {
                AtomicOp::Add => ATOMIC_ADD,
                AtomicOp::Or => ATOMIC_OR,
                AtomicOp::And => ATOMIC_AND,
                AtomicOp::Xor => ATOMIC_XOR,
                AtomicOp::Xchg => ATOMIC_XCHG,
                AtomicOp::CmpXchg => ATOMIC_CMPXCHG,
            } | if fetch { ATOMIC_FETCH } else { 0 };
            vec![Insn::new(
                CLS_STX | MODE_ATOMIC | size_code(size),
                dst,
                src,
                off,
                imm,
            )]
        }
    }
}

/// Encodes a whole sequence of decoded instructions.
pub fn encode_all(ops: &[Op]) -> Vec<Insn> {
    ops.iter().flat_map(encode).collect()
}
