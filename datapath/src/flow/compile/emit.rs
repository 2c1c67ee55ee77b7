//! A small instruction builder with forward labels: typed methods append
//! encoded slots, jumps name a [`Label`] that is bound later, and
//! [`Emitter::finish`] patches the offsets in.

use thiserror::Error;

use crate::ebpf::insn::*;

/// A jump target, bound to a slot with [`Emitter::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(u32);

/// Why the emitted code cannot be finished.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EmitError {
    #[error("label {0} used but never bound")]
    Unbound(u32),
    #[error("jump at slot {pc} to slot {target} does not fit the offset field")]
    TooFar { pc: usize, target: usize },
}

#[derive(Debug, Clone, Copy)]
enum Fix {
    /// 16-bit `off` field (conditional jumps, `ja`).
    Off,
    /// 32-bit `imm` field (`call local`).
    Imm,
}

/// The builder.
#[derive(Debug, Default)]
pub struct Emitter {
    insns: Vec<Insn>,
    labels: Vec<Option<u32>>,
    fixups: Vec<(u32, Label, Fix)>,
}

fn cond_code(c: Cond) -> u8 {
    match c {
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
    }
}

/// Does `v` survive the sign extension of a 32-bit immediate?
pub fn fits_imm(v: u64) -> bool {
    i32::try_from(v as i64).is_ok()
}

impl Emitter {
    pub fn with_capacity(slots: usize) -> Self {
        Emitter {
            insns: Vec::with_capacity(slots),
            labels: Vec::with_capacity(8),
            fixups: Vec::with_capacity(16),
        }
    }

    /// Slots emitted so far.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() as u32 - 1)
    }

    /// Whether some jump or call targets `l`.
    pub fn is_used(&self, l: Label) -> bool {
        self.fixups.iter().any(|&(_, x, _)| x == l)
    }

    /// Binds `l` to the next slot.
    pub fn bind(&mut self, l: Label) {
        if let Some(slot) = self.labels.get_mut(l.0 as usize) {
            *slot = Some(self.insns.len() as u32);
        }
    }

    fn push(&mut self, op: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.insns.push(Insn::new(op, dst, src, off, imm));
    }

    /// Appends raw slots (a custom program).
    pub fn raw(&mut self, insns: &[Insn]) {
        self.insns.extend_from_slice(insns);
    }

    /// 64-bit `dst = dst OP imm` (imm sign-extended).
    pub fn alu64_imm(&mut self, op: AluOp, dst: u8, imm: i32) {
        let (code, off) = op.code();
        self.push(code | SRC_K | CLS_ALU64, dst, 0, off, imm);
    }

    /// 64-bit `dst = dst OP src`.
    pub fn alu64_reg(&mut self, op: AluOp, dst: u8, src: u8) {
        let (code, off) = op.code();
        self.push(code | SRC_X | CLS_ALU64, dst, src, off, 0);
    }

    /// 32-bit `dst = dst OP imm`, zero-extended.
    pub fn alu32_imm(&mut self, op: AluOp, dst: u8, imm: i32) {
        let (code, off) = op.code();
        self.push(code | SRC_K | CLS_ALU, dst, 0, off, imm);
    }

    pub fn mov_reg(&mut self, dst: u8, src: u8) {
        self.alu64_reg(AluOp::Mov, dst, src);
    }

    /// `dst = v` with the shortest encoding.
    pub fn mov_const(&mut self, dst: u8, v: u64) {
        if fits_imm(v) {
            self.alu64_imm(AluOp::Mov, dst, v as i32);
        } else if v <= u64::from(u32::MAX) {
            self.alu32_imm(AluOp::Mov, dst, v as u32 as i32);
        } else {
            self.lddw(dst, v);
        }
    }

    /// `dst = dst OP v` for a 64-bit constant; `tmp` holds it when it does
    /// not fit an immediate.
    pub fn alu64_const(&mut self, op: AluOp, dst: u8, v: u64, tmp: u8) {
        if fits_imm(v) {
            self.alu64_imm(op, dst, v as i32);
        } else {
            self.mov_const(tmp, v);
            self.alu64_reg(op, dst, tmp);
        }
    }

    pub fn lddw(&mut self, dst: u8, v: u64) {
        self.push(CLS_LD | MODE_IMM | SZ_DW, dst, LDDW_IMM, 0, v as u32 as i32);
        self.push(0, 0, 0, 0, (v >> 32) as u32 as i32);
    }

    /// `dst = *(size *)(src + off)`, zero-extended.
    pub fn ldx(&mut self, size: u8, dst: u8, src: u8, off: i16) {
        self.push(CLS_LDX | MODE_MEM | size_code(size), dst, src, off, 0);
    }

    /// `*(size *)(dst + off) = imm`.
    pub fn st(&mut self, size: u8, dst: u8, off: i16, imm: i32) {
        self.push(CLS_ST | MODE_MEM | size_code(size), dst, 0, off, imm);
    }

    /// `*(size *)(dst + off) = src`.
    pub fn stx(&mut self, size: u8, dst: u8, src: u8, off: i16) {
        self.push(CLS_STX | MODE_MEM | size_code(size), dst, src, off, 0);
    }

    fn fixup(&mut self, l: Label, fix: Fix) {
        let at = self.insns.len() as u32 - 1;
        self.fixups.push((at, l, fix));
    }

    /// `if dst COND imm goto l`; `wide` compares 64 bits (imm
    /// sign-extended), otherwise the low 32.
    pub fn jmp_imm(&mut self, wide: bool, cond: Cond, dst: u8, imm: i32, l: Label) {
        let cls = if wide { CLS_JMP } else { CLS_JMP32 };
        self.push(cond_code(cond) | SRC_K | cls, dst, 0, 0, imm);
        self.fixup(l, Fix::Off);
    }

    /// `if dst COND src goto l` (64-bit).
    pub fn jmp_reg(&mut self, cond: Cond, dst: u8, src: u8, l: Label) {
        self.push(cond_code(cond) | SRC_X | CLS_JMP, dst, src, 0, 0);
        self.fixup(l, Fix::Off);
    }

    pub fn ja(&mut self, l: Label) {
        self.push(JMP_JA | CLS_JMP, 0, 0, 0, 0);
        self.fixup(l, Fix::Off);
    }

    pub fn call(&mut self, helper: u32) {
        self.push(JMP_CALL | CLS_JMP, 0, CALL_HELPER, 0, helper as i32);
    }

    pub fn call_local(&mut self, l: Label) {
        self.push(JMP_CALL | CLS_JMP, 0, CALL_LOCAL, 0, 0);
        self.fixup(l, Fix::Imm);
    }

    pub fn exit(&mut self) {
        self.push(JMP_EXIT | CLS_JMP, 0, 0, 0, 0);
    }

    /// `r0 = code; exit`.
    pub fn ret(&mut self, code: u64) {
        self.mov_const(0, code);
        self.exit();
    }

    /// Resolves the labels and returns the slots.
    pub fn finish(mut self) -> Result<Vec<Insn>, EmitError> {
        for &(at, l, fix) in &self.fixups {
            let target = self
                .labels
                .get(l.0 as usize)
                .copied()
                .flatten()
                .ok_or(EmitError::Unbound(l.0))?;
            let rel = i64::from(target) - i64::from(at) - 1;
            let too_far = EmitError::TooFar {
                pc: at as usize,
                target: target as usize,
            };
            let Some(slot) = self.insns.get_mut(at as usize) else {
                continue;
            };
            match fix {
                Fix::Off => slot.off = i16::try_from(rel).map_err(|_| too_far)?,
                Fix::Imm => slot.imm = i32::try_from(rel).map_err(|_| too_far)?,
            }
        }
        Ok(self.insns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(insns: &[Insn]) -> Op {
        decode(insns, 0).expect("decodes")
    }

    #[test]
    fn encodings_match_the_codec() {
        let mut e = Emitter::default();
        e.alu64_imm(AluOp::Add, 3, -7);
        e.alu64_reg(AluOp::Xor, 2, 9);
        e.alu32_imm(AluOp::And, 4, 0xffff);
        e.ldx(2, 1, 6, 96);
        e.st(4, 7, 12, 0x0a00_0002);
        e.stx(1, 6, 2, 74);
        e.call(16);
        e.exit();
        e.lddw(5, 0x1234_5678_9abc_def0);
        let insns = e.finish().expect("no labels");
        let want = [
            Op::Alu {
                wide: true,
                op: AluOp::Add,
                dst: 3,
                src: Src::Imm(-7),
            },
            Op::Alu {
                wide: true,
                op: AluOp::Xor,
                dst: 2,
                src: Src::Reg(9),
            },
            Op::Alu {
                wide: false,
                op: AluOp::And,
                dst: 4,
                src: Src::Imm(0xffff),
            },
            Op::Ldx {
                size: 2,
                signed: false,
                dst: 1,
                src: 6,
                off: 96,
            },
            Op::St {
                size: 4,
                dst: 7,
                off: 12,
                imm: 0x0a00_0002,
            },
            Op::Stx {
                size: 1,
                dst: 6,
                src: 2,
                off: 74,
            },
            Op::Call { helper: 16 },
            Op::Exit,
            Op::Lddw {
                dst: 5,
                kind: LDDW_IMM,
                imm: 0x1234_5678_9abc_def0,
            },
        ];
        assert_eq!(encode_all(&want), insns);
    }

    #[test]
    fn labels_resolve_forward_and_backward() {
        let mut e = Emitter::default();
        let top = e.label();
        let end = e.label();
        let sub = e.label();
        e.bind(top);
        e.jmp_imm(true, Cond::Ne, 1, 5, end); // 0
        e.call_local(sub); // 1
        e.jmp_imm(false, Cond::Eq, 0, 0, top); // 2
        e.ja(end); // 3
        e.bind(end);
        e.exit(); // 4
        e.bind(sub);
        e.ret(7); // 5, 6
        let insns = e.finish().expect("bound");
        assert_eq!(
            only(&insns[0..]),
            Op::Jmp {
                wide: true,
                cond: Cond::Ne,
                dst: 1,
                src: Src::Imm(5),
                off: 3
            }
        );
        assert_eq!(only(&insns[1..]), Op::CallLocal { off: 3 });
        assert_eq!(
            only(&insns[2..]),
            Op::Jmp {
                wide: false,
                cond: Cond::Eq,
                dst: 0,
                src: Src::Imm(0),
                off: -3
            }
        );
        assert_eq!(only(&insns[3..]), Op::Ja { off: 0 });
    }

    #[test]
    fn constants_take_the_shortest_form() {
        for (v, slots) in [
            (0u64, 1),
            (0x7fff_ffff, 1),
            (u64::MAX, 1),
            (0xffff_ffff_8000_0000, 1),
            (0x8000_0000, 1),
            (0xffff_ffff, 1),
            (0x1_0000_0000, 2),
        ] {
            let mut e = Emitter::default();
            e.mov_const(2, v);
            let insns = e.finish().expect("ok");
            assert_eq!(insns.len(), slots, "{v:#x}");
            // The value the interpreter's semantics give.
            let got = match decode(&insns, 0).expect("decodes") {
                Op::Alu {
                    wide: true,
                    src: Src::Imm(i),
                    ..
                } => i64::from(i) as u64,
                Op::Alu {
                    wide: false,
                    src: Src::Imm(i),
                    ..
                } => u64::from(i as u32),
                Op::Lddw { imm, .. } => imm,
                op => panic!("{op:?}"),
            };
            assert_eq!(got, v);
        }
    }

    #[test]
    fn unbound_and_distant_labels_are_errors() {
        let mut e = Emitter::default();
        let l = e.label();
        e.ja(l);
        assert_eq!(e.finish(), Err(EmitError::Unbound(0)));
        let mut e = Emitter::default();
        let l = e.label();
        e.ja(l);
        for _ in 0..40_000 {
            e.exit();
        }
        e.bind(l);
        e.exit();
        assert!(matches!(e.finish(), Err(EmitError::TooFar { pc: 0, .. })));
    }
}
