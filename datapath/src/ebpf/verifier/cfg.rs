//! Structural checks, before any abstract interpretation: every slot
//! decodes, no register write to r10, jump and call targets are in range and
//! never the second slot of `lddw`, execution cannot fall off the end, helper
//! ids and maps exist. Also finds the block leaders the analysis joins states at.

use super::error::{Reason, VerifyError};
use crate::ebpf::disasm;
use crate::ebpf::insn::{self, AtomicOp, Insn, Op, LDDW_IMM, R10};
use crate::ebpf::ProgEnv;

/// The decoded program and its control-flow facts.
pub struct Cfg {
    /// Decoded instruction per slot (`None` for the second slot of `lddw`).
    pub ops: Vec<Option<Op>>,
    /// Slots where control can arrive from somewhere other than the previous
    /// instruction (jump targets, function entries, return points).
    pub leader: Vec<bool>,
}

/// The error for the instruction `op` at `pc`.
pub fn at(pc: usize, op: &Op, reason: Reason) -> VerifyError {
    VerifyError::At {
        pc,
        insn: disasm::format_op(op, pc),
        reason,
    }
}

/// The register `op` writes, if any (`cmpxchg` writes r0, never r10).
fn written(op: &Op) -> Option<u8> {
    match *op {
        Op::Alu { dst, .. }
        | Op::Neg { dst, .. }
        | Op::End { dst, .. }
        | Op::Lddw { dst, .. }
        | Op::Ldx { dst, .. } => Some(dst),
        Op::Atomic {
            fetch: true,
            op: aop,
            src,
            ..
        } if aop != AtomicOp::CmpXchg => Some(src),
        _ => None,
    }
}

/// Relative jump target, checked against the program and `lddw` halves.
fn target(pc: usize, off: i64, tail: &[bool]) -> Result<usize, Reason> {
    let t = pc as i64 + 1 + off;
    let len = tail.len();
    let idx = usize::try_from(t)
        .ok()
        .filter(|&i| i < len)
        .ok_or(Reason::JumpOutOfRange { target: t, len })?;
    if tail.get(idx).copied().unwrap_or(false) {
        return Err(Reason::JumpIntoLddw { target: idx });
    }
    Ok(idx)
}

pub fn check(insns: &[Insn], env: &ProgEnv) -> Result<Cfg, VerifyError> {
    let n = insns.len();
    if n == 0 {
        return Err(VerifyError::Empty);
    }
    let mut ops = vec![None; n];
    let mut tail = vec![false; n];
    let mut pc = 0;
    while pc < n {
        let op = insn::decode(insns, pc).map_err(|e| VerifyError::At {
            pc,
            insn: insns
                .get(pc)
                .map(|i| format!(".raw {:#018x}", i.to_u64()))
                .unwrap_or_default(),
            reason: Reason::Decode(e),
        })?;
        if let (Op::Lddw { .. }, Some(t)) = (op, tail.get_mut(pc + 1)) {
            *t = true;
        }
        if let Some(slot) = ops.get_mut(pc) {
            *slot = Some(op);
        }
        pc += op.slots();
    }

    let mut leader = vec![false; n];
    for (pc, op) in ops.iter().enumerate() {
        let Some(op) = op else { continue };
        let fail = |r| at(pc, op, r);
        if written(op) == Some(R10) {
            return Err(fail(Reason::WriteToR10));
        }
        let mut mark = |t: usize| {
            if let Some(l) = leader.get_mut(t) {
                *l = true;
            }
        };
        match *op {
            Op::Ja { off } => mark(target(pc, i64::from(off), &tail).map_err(fail)?),
            Op::Jmp { off, .. } => mark(target(pc, i64::from(off), &tail).map_err(fail)?),
            Op::CallLocal { off } => {
                mark(target(pc, i64::from(off), &tail).map_err(fail)?);
                mark(pc + 1);
            }
            Op::Call { helper } => {
                let known = u32::try_from(helper)
                    .ok()
                    .and_then(|id| env.helpers.get(id))
                    .is_some();
                if !known {
                    return Err(fail(Reason::UnknownHelper {
                        id: i64::from(helper),
                    }));
                }
            }
            Op::Lddw { kind, imm, .. } if kind != LDDW_IMM => {
                let known = u32::try_from(imm)
                    .ok()
                    .and_then(|i| env.maps.get(i))
                    .is_some();
                if !known {
                    return Err(fail(Reason::UnknownMap { index: imm }));
                }
            }
            _ => {}
        }
        let falls_through = !matches!(op, Op::Ja { .. } | Op::Exit);
        if falls_through && pc + op.slots() >= n {
            return Err(fail(Reason::FallsOffEnd));
        }
    }
    Ok(Cfg { ops, leader })
}
