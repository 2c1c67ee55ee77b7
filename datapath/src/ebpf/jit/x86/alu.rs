//! ALU operations, byte swaps and immediates.

use dynasmrt::{dynasm, DynasmApi, DynasmLabelApi};

use super::{Gen, Opnd, R11, RAX, RCX, RDX};
use crate::ebpf::insn::{AluOp, EndKind};
use crate::ebpf::jit::JitError;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shift {
    Shl,
    Shr,
    Sar,
}

impl Gen<'_> {
    pub(super) fn mov_imm64(&mut self, d: u8, v: u64) {
        if v == 0 {
            dynasm!(self.a ; .arch x64 ; xor Rd(d), Rd(d));
        } else if v <= u32::MAX as u64 {
            dynasm!(self.a ; .arch x64 ; mov Rd(d), DWORD v as u32 as i32);
        } else if i32::try_from(v as i64).is_ok() {
            dynasm!(self.a ; .arch x64 ; mov Rq(d), DWORD v as i64 as i32);
        } else {
            dynasm!(self.a ; .arch x64 ; mov Rq(d), QWORD v as i64);
        }
    }

    pub(super) fn alu(&mut self, wide: bool, op: AluOp, d: u8, s: Opnd) {
        match op {
            AluOp::Add => binop!(self.a, add, wide, d, s),
            AluOp::Sub => binop!(self.a, sub, wide, d, s),
            AluOp::Or => binop!(self.a, or, wide, d, s),
            AluOp::And => binop!(self.a, and, wide, d, s),
            AluOp::Xor => binop!(self.a, xor, wide, d, s),
            AluOp::Mov => match s {
                Opnd::I(i) if wide => self.mov_imm64(d, i as i64 as u64),
                Opnd::I(i) => self.mov_imm64(d, i as u32 as u64),
                Opnd::R(r) if wide => dynasm!(self.a ; .arch x64 ; mov Rq(d), Rq(r)),
                Opnd::R(r) => dynasm!(self.a ; .arch x64 ; mov Rd(d), Rd(r)),
            },
            AluOp::Mul => match (wide, s) {
                (true, Opnd::R(r)) => dynasm!(self.a ; .arch x64 ; imul Rq(d), Rq(r)),
                (false, Opnd::R(r)) => dynasm!(self.a ; .arch x64 ; imul Rd(d), Rd(r)),
                (true, Opnd::I(i)) if i8::try_from(i).is_ok() => {
                    dynasm!(self.a ; .arch x64 ; imul Rq(d), Rq(d), BYTE i as i8)
                }
                (false, Opnd::I(i)) if i8::try_from(i).is_ok() => {
                    dynasm!(self.a ; .arch x64 ; imul Rd(d), Rd(d), BYTE i as i8)
                }
                (true, Opnd::I(i)) => dynasm!(self.a ; .arch x64 ; imul Rq(d), Rq(d), DWORD i),
                (false, Opnd::I(i)) => dynasm!(self.a ; .arch x64 ; imul Rd(d), Rd(d), DWORD i),
            },
            AluOp::Lsh => self.shift(Shift::Shl, wide, d, s),
            AluOp::Rsh => self.shift(Shift::Shr, wide, d, s),
            AluOp::Arsh => self.shift(Shift::Sar, wide, d, s),
            AluOp::Div => self.divmod(wide, false, false, d, s),
            AluOp::SDiv => self.divmod(wide, true, false, d, s),
            AluOp::Mod => self.divmod(wide, false, true, d, s),
            AluOp::SMod => self.divmod(wide, true, true, d, s),
            AluOp::MovSx(bits) => self.movsx(wide, bits, d, s),
        }
    }

    fn movsx(&mut self, wide: bool, bits: u8, d: u8, s: Opnd) {
        let r = match s {
            Opnd::R(r) => r,
            Opnd::I(i) => {
                // Not produced by the decoder; computed here for completeness.
                let v = match bits {
                    8 => i as i8 as i64,
                    16 => i as i16 as i64,
                    _ => i as i64,
                };
                let v = if wide { v as u64 } else { v as u32 as u64 };
                self.mov_imm64(d, v);
                return;
            }
        };
        match (wide, bits) {
            (true, 8) => dynasm!(self.a ; .arch x64 ; movsx Rq(d), Rb(r)),
            (true, 16) => dynasm!(self.a ; .arch x64 ; movsx Rq(d), Rw(r)),
            (true, _) => dynasm!(self.a ; .arch x64 ; movsxd Rq(d), Rd(r)),
            (false, 8) => dynasm!(self.a ; .arch x64 ; movsx Rd(d), Rb(r)),
            (false, 16) => dynasm!(self.a ; .arch x64 ; movsx Rd(d), Rw(r)),
            (false, _) => dynasm!(self.a ; .arch x64 ; mov Rd(d), Rd(r)),
        }
    }

    fn shift_by_cl(&mut self, k: Shift, wide: bool, r: u8) {
        match k {
            Shift::Shl => shift_cl!(self.a, shl, wide, r),
            Shift::Shr => shift_cl!(self.a, shr, wide, r),
            Shift::Sar => shift_cl!(self.a, sar, wide, r),
        }
    }

    fn shift(&mut self, k: Shift, wide: bool, d: u8, s: Opnd) {
        match s {
            Opnd::I(i) => {
                let n = (i & if wide { 63 } else { 31 }) as i8;
                if n == 0 {
                    // Nothing to shift; a 32-bit op still zero-extends.
                    if !wide {
                        dynasm!(self.a ; .arch x64 ; mov Rd(d), Rd(d));
                    }
                    return;
                }
                match k {
                    Shift::Shl => shift_imm!(self.a, shl, wide, d, n),
                    Shift::Shr => shift_imm!(self.a, shr, wide, d, n),
                    Shift::Sar => shift_imm!(self.a, sar, wide, d, n),
                }
            }
            Opnd::R(r) => {
                // x86 takes a variable count only in cl, and rcx is eBPF r4.
                if r == RCX {
                    self.shift_by_cl(k, wide, d);
                    if !wide {
                        dynasm!(self.a ; .arch x64 ; mov Rd(d), Rd(d));
                    }
                } else if d == RCX {
                    dynasm!(self.a ; .arch x64 ; mov r11, rcx ; mov rcx, Rq(r));
                    self.shift_by_cl(k, wide, R11);
                    if wide {
                        dynasm!(self.a ; .arch x64 ; mov rcx, r11);
                    } else {
                        dynasm!(self.a ; .arch x64 ; mov ecx, r11d);
                    }
                } else {
                    dynasm!(self.a ; .arch x64 ; mov r11, rcx ; mov rcx, Rq(r));
                    self.shift_by_cl(k, wide, d);
                    dynasm!(self.a ; .arch x64 ; mov rcx, r11);
                    if !wide {
                        dynasm!(self.a ; .arch x64 ; mov Rd(d), Rd(d));
                    }
                }
            }
        }
    }

    /// Division and modulo. x86 `div`/`idiv` use rdx:rax (eBPF r3:r0) and
    /// fault on a zero divisor and on signed MIN / -1, so both are handled
    /// before the instruction: x / 0 = 0, x % 0 = x, MIN / -1 = MIN (= -MIN
    /// wrapped), MIN % -1 = 0.
    fn divmod(&mut self, wide: bool, signed: bool, is_mod: bool, d: u8, s: Opnd) {
        let zero = self.a.new_dynamic_label();
        let minus1 = self.a.new_dynamic_label();
        let done = self.a.new_dynamic_label();
        let mut need_zero = false;
        let mut need_minus1 = false;
        match s {
            Opnd::I(i) => {
                let divisor = if wide {
                    i as i64 as u64
                } else {
                    i as u32 as u64
                };
                if divisor == 0 {
                    self.div_by_zero(wide, is_mod, d);
                    return;
                }
                if signed && i == -1 {
                    self.div_by_minus1(wide, is_mod, d);
                    return;
                }
                if wide {
                    dynasm!(self.a ; .arch x64 ; mov r11, DWORD i);
                } else {
                    dynasm!(self.a ; .arch x64 ; mov r11d, DWORD i);
                }
            }
            Opnd::R(r) => {
                // A 64-bit x % 0 leaves x as it is: straight to the end.
                let on_zero = if is_mod && wide { done } else { zero };
                if wide {
                    dynasm!(self.a ; .arch x64 ; mov r11, Rq(r) ; test r11, r11 ; jz =>on_zero);
                } else {
                    dynasm!(self.a ; .arch x64 ; mov r11d, Rd(r) ; test r11d, r11d ; jz =>on_zero);
                }
                need_zero = !(is_mod && wide);
                if signed {
                    if wide {
                        dynasm!(self.a ; .arch x64 ; cmp r11, BYTE -1 ; je =>minus1);
                    } else {
                        dynasm!(self.a ; .arch x64 ; cmp r11d, BYTE -1 ; je =>minus1);
                    }
                    need_minus1 = true;
                }
            }
        }
        // The dividend goes to rax and rdx is free for the high half; eBPF
        // r0/r3 (rax/rdx) are kept in r10 or, for r0, in dst itself (which
        // is overwritten by the result anyway). r9 holds the budget.
        if d == RAX {
            dynasm!(self.a ; .arch x64 ; mov r10, rdx);
        } else if d == RDX {
            dynasm!(self.a ; .arch x64 ; mov r10, rax ; mov rax, rdx);
        } else {
            dynasm!(self.a ; .arch x64 ; xchg rax, Rq(d) ; mov r10, rdx);
        }
        if wide {
            // When dividend and divisor both fit in 32 bits (so both are
            // non-negative), a 32-bit `div` gives the same quotient and
            // remainder, signed or not, and is much faster than the 64-bit
            // forms. rdx is free here (saved above or the destination).
            let wide_div = self.a.new_dynamic_label();
            let divided = self.a.new_dynamic_label();
            dynasm!(self.a
                ; .arch x64
                ; mov rdx, rax
                ; or rdx, r11
                ; shr rdx, 32
                ; jnz =>wide_div
                ; div r11d
                ; jmp =>divided
                ; =>wide_div
            );
            if signed {
                dynasm!(self.a ; .arch x64 ; cqo ; idiv r11);
            } else {
                dynasm!(self.a ; .arch x64 ; xor edx, edx ; div r11);
            }
            dynasm!(self.a ; .arch x64 ; =>divided);
        } else if signed {
            dynasm!(self.a ; .arch x64 ; cdq ; idiv r11d);
        } else {
            dynasm!(self.a ; .arch x64 ; xor edx, edx ; div r11d);
        }
        // 32-bit div/idiv wrote eax/edx, zero-extending.
        if d == RAX {
            if is_mod {
                dynasm!(self.a ; .arch x64 ; mov rax, rdx);
            }
            dynasm!(self.a ; .arch x64 ; mov rdx, r10);
        } else if d == RDX {
            if !is_mod {
                dynasm!(self.a ; .arch x64 ; mov rdx, rax);
            }
            dynasm!(self.a ; .arch x64 ; mov rax, r10);
        } else {
            if is_mod {
                dynasm!(self.a ; .arch x64 ; mov rax, rdx);
            }
            dynasm!(self.a ; .arch x64 ; xchg rax, Rq(d) ; mov rdx, r10);
        }
        if need_zero || need_minus1 {
            dynasm!(self.a ; .arch x64 ; jmp =>done);
        }
        // (`done` may also be the target of the zero test above.)
        if need_zero {
            dynasm!(self.a ; .arch x64 ; =>zero);
            self.div_by_zero(wide, is_mod, d);
            if need_minus1 {
                dynasm!(self.a ; .arch x64 ; jmp =>done);
            }
        }
        if need_minus1 {
            dynasm!(self.a ; .arch x64 ; =>minus1);
            self.div_by_minus1(wide, is_mod, d);
        }
        dynasm!(self.a ; .arch x64 ; =>done);
    }

    fn div_by_zero(&mut self, wide: bool, is_mod: bool, d: u8) {
        if !is_mod {
            dynasm!(self.a ; .arch x64 ; xor Rd(d), Rd(d));
        } else if !wide {
            dynasm!(self.a ; .arch x64 ; mov Rd(d), Rd(d));
        }
    }

    fn div_by_minus1(&mut self, wide: bool, is_mod: bool, d: u8) {
        match (is_mod, wide) {
            (true, _) => dynasm!(self.a ; .arch x64 ; xor Rd(d), Rd(d)),
            (false, true) => dynasm!(self.a ; .arch x64 ; neg Rq(d)),
            (false, false) => dynasm!(self.a ; .arch x64 ; neg Rd(d)),
        }
    }

    pub(super) fn end(
        &mut self,
        pc: usize,
        kind: EndKind,
        bits: u8,
        d: u8,
    ) -> Result<(), JitError> {
        match (kind, bits) {
            (EndKind::Le, 16) => dynasm!(self.a ; .arch x64 ; movzx Rd(d), Rw(d)),
            (EndKind::Le, 32) => dynasm!(self.a ; .arch x64 ; mov Rd(d), Rd(d)),
            (EndKind::Le, 64) => {}
            (EndKind::Be | EndKind::Swap, 16) => {
                dynasm!(self.a ; .arch x64 ; rol Rw(d), BYTE 8 ; movzx Rd(d), Rw(d))
            }
            (EndKind::Be | EndKind::Swap, 32) => dynasm!(self.a ; .arch x64 ; bswap Rd(d)),
            (EndKind::Be | EndKind::Swap, 64) => dynasm!(self.a ; .arch x64 ; bswap Rq(d)),
            _ => {
                return Err(JitError::Unsupported {
                    pc,
                    what: "byte swap width other than 16, 32 or 64",
                })
            }
        }
        Ok(())
    }
}
