//! Loads, stores, bounds guards and atomics.

use dynasmrt::{dynasm, DynasmApi, DynasmLabelApi};

use super::{region_index, size_index, Gen, Stub, R11};
use crate::ebpf::insn::AtomicOp;
use crate::ebpf::jit::JitError;
use crate::sys::jitcall::off;

impl Gen<'_> {
    /// `dst = *(size *)(src + off)`, zero- or sign-extended.
    pub(super) fn ldx(
        &mut self,
        pc: usize,
        size: u8,
        signed: bool,
        dst: u8,
        src: u8,
        off: i16,
    ) -> Result<(), JitError> {
        let d = Self::reg(pc, dst)?;
        let (b, o) = self.mem(pc, src, off, size)?;
        match (size, signed) {
            (1, false) => dynasm!(self.a ; .arch x64 ; movzx Rd(d), BYTE [Rq(b) + o]),
            (2, false) => dynasm!(self.a ; .arch x64 ; movzx Rd(d), WORD [Rq(b) + o]),
            (4, false) => dynasm!(self.a ; .arch x64 ; mov Rd(d), DWORD [Rq(b) + o]),
            (8, _) => dynasm!(self.a ; .arch x64 ; mov Rq(d), QWORD [Rq(b) + o]),
            (1, true) => dynasm!(self.a ; .arch x64 ; movsx Rq(d), BYTE [Rq(b) + o]),
            (2, true) => dynasm!(self.a ; .arch x64 ; movsx Rq(d), WORD [Rq(b) + o]),
            (4, true) => dynasm!(self.a ; .arch x64 ; movsxd Rq(d), DWORD [Rq(b) + o]),
            _ => return Err(JitError::BadSize { pc, size }),
        }
        Ok(())
    }

    /// `*(size *)(dst + off) = imm`.
    pub(super) fn st(
        &mut self,
        pc: usize,
        size: u8,
        dst: u8,
        off: i16,
        imm: i32,
    ) -> Result<(), JitError> {
        let (b, o) = self.mem(pc, dst, off, size)?;
        match size {
            1 => dynasm!(self.a ; .arch x64 ; mov BYTE [Rq(b) + o], imm as i8),
            2 => dynasm!(self.a ; .arch x64 ; mov WORD [Rq(b) + o], imm as i16),
            4 => dynasm!(self.a ; .arch x64 ; mov DWORD [Rq(b) + o], imm),
            8 => dynasm!(self.a ; .arch x64 ; mov QWORD [Rq(b) + o], imm),
            _ => return Err(JitError::BadSize { pc, size }),
        }
        Ok(())
    }

    /// `*(size *)(dst + off) = src`.
    pub(super) fn stx(
        &mut self,
        pc: usize,
        size: u8,
        dst: u8,
        src: u8,
        off: i16,
    ) -> Result<(), JitError> {
        let s = Self::reg(pc, src)?;
        let (b, o) = self.mem(pc, dst, off, size)?;
        match size {
            1 => dynasm!(self.a ; .arch x64 ; mov BYTE [Rq(b) + o], Rb(s)),
            2 => dynasm!(self.a ; .arch x64 ; mov WORD [Rq(b) + o], Rw(s)),
            4 => dynasm!(self.a ; .arch x64 ; mov DWORD [Rq(b) + o], Rd(s)),
            8 => dynasm!(self.a ; .arch x64 ; mov QWORD [Rq(b) + o], Rq(s)),
            _ => return Err(JitError::BadSize { pc, size }),
        }
        Ok(())
    }

    /// Base register and displacement for an access of `size` bytes at
    /// `base + off`. A guarded access is checked here against its region's
    /// run-time bounds and then addressed through r11.
    pub(super) fn mem(
        &mut self,
        pc: usize,
        base: u8,
        off: i16,
        size: u8,
    ) -> Result<(u8, i32), JitError> {
        let acc = self
            .prog
            .access
            .get(pc)
            .copied()
            .flatten()
            .ok_or(JitError::MissingAccess { pc })?;
        let b = Self::reg(pc, base)?;
        let k = size_index(size).ok_or(JitError::BadSize { pc, size })?;
        if !acc.guard {
            return Ok((b, off as i32));
        }
        let out = self.stub(Stub::OutOfBounds {
            pc,
            region: acc.region,
            size,
        });
        let o = off as i32;
        if o == 0 {
            dynasm!(self.a ; .arch x64 ; mov r11, Rq(b));
        } else {
            dynasm!(self.a ; .arch x64 ; lea r11, [Rq(b) + o]);
        }
        let Some(region) = region_index(acc.region) else {
            // A map value: the map's storage, whose bounds are fixed for the
            // program's life (its environment keeps the maps alive). The
            // offset wraps to a huge number below the start.
            let slab = match acc.region {
                crate::ebpf::vm::Region::Map(n) => self.prog.env.maps.get(n).map(|m| m.slab()),
                _ => None,
            }
            .ok_or(JitError::MissingAccess { pc })?;
            let lim = (slab.len() + 1).saturating_sub(usize::from(size));
            dynasm!(self.a
                ; .arch x64
                ; mov r10, QWORD slab.base() as i64
                ; neg r10
                ; add r10, r11
            );
            if let Ok(lim) = i32::try_from(lim) {
                dynasm!(self.a ; .arch x64 ; cmp r10, lim ; jae =>out);
            } else {
                return Err(JitError::TooLarge(lim));
            }
            return Ok((R11, 0));
        };
        dynasm!(self.a
            ; .arch x64
            ; mov r10, r11
            ; sub r10, [r12 + off::region_start(region)]
            ; jb =>out
            ; cmp r10, [r12 + off::region_lim(region, k)]
            ; jae =>out
        );
        Ok((R11, 0))
    }

    /// Atomic read-modify-write of `[b + o]` with eBPF src register `s`.
    pub(super) fn atomic(&mut self, wide: bool, op: AtomicOp, fetch: bool, s: u8, b: u8, o: i32) {
        match (op, fetch) {
            (AtomicOp::Add, false) => self.lock_op(wide, AtomicOp::Add, s, b, o),
            (AtomicOp::Or, false) => self.lock_op(wide, AtomicOp::Or, s, b, o),
            (AtomicOp::And, false) => self.lock_op(wide, AtomicOp::And, s, b, o),
            (AtomicOp::Xor, false) => self.lock_op(wide, AtomicOp::Xor, s, b, o),
            (AtomicOp::Add, true) => {
                if wide {
                    dynasm!(self.a
                        ; .arch x64
                        ; mov r10, Rq(s)
                        ; lock xadd QWORD [Rq(b) + o], r10
                        ; mov Rq(s), r10
                    );
                } else {
                    dynasm!(self.a
                        ; .arch x64
                        ; mov r10d, Rd(s)
                        ; lock xadd DWORD [Rq(b) + o], r10d
                        ; mov Rd(s), r10d
                    );
                }
            }
            (AtomicOp::Or | AtomicOp::And | AtomicOp::Xor, true) => {
                self.fetch_logic(wide, op, s, b, o)
            }
            (AtomicOp::Xchg, _) => {
                if wide {
                    dynasm!(self.a
                        ; .arch x64
                        ; mov r10, Rq(s)
                        ; xchg QWORD [Rq(b) + o], r10
                        ; mov Rq(s), r10
                    );
                } else {
                    dynasm!(self.a
                        ; .arch x64
                        ; mov r10d, Rd(s)
                        ; xchg DWORD [Rq(b) + o], r10d
                        ; mov Rd(s), r10d
                    );
                }
            }
            (AtomicOp::CmpXchg, _) => {
                // Compares with rax (eBPF r0) and leaves the old value there.
                if wide {
                    dynasm!(self.a ; .arch x64 ; lock cmpxchg QWORD [Rq(b) + o], Rq(s));
                } else {
                    // On success a 32-bit cmpxchg leaves rax's upper half alone.
                    dynasm!(self.a
                        ; .arch x64
                        ; lock cmpxchg DWORD [Rq(b) + o], Rd(s)
                        ; mov eax, eax
                    );
                }
            }
        }
    }

    fn lock_op(&mut self, wide: bool, op: AtomicOp, s: u8, b: u8, o: i32) {
        match (op, wide) {
            (AtomicOp::Add, true) => {
                dynasm!(self.a ; .arch x64 ; lock add QWORD [Rq(b) + o], Rq(s))
            }
            (AtomicOp::Add, false) => {
                dynasm!(self.a ; .arch x64 ; lock add DWORD [Rq(b) + o], Rd(s))
            }
            (AtomicOp::Or, true) => dynasm!(self.a ; .arch x64 ; lock or QWORD [Rq(b) + o], Rq(s)),
            (AtomicOp::Or, false) => dynasm!(self.a ; .arch x64 ; lock or DWORD [Rq(b) + o], Rd(s)),
            (AtomicOp::And, true) => {
                dynasm!(self.a ; .arch x64 ; lock and QWORD [Rq(b) + o], Rq(s))
            }
            (AtomicOp::And, false) => {
                dynasm!(self.a ; .arch x64 ; lock and DWORD [Rq(b) + o], Rd(s))
            }
            (AtomicOp::Xor, true) => {
                dynasm!(self.a ; .arch x64 ; lock xor QWORD [Rq(b) + o], Rq(s))
            }
            (_, _) => dynasm!(self.a ; .arch x64 ; lock xor DWORD [Rq(b) + o], Rd(s)),
        }
    }

    /// Fetching or/and/xor: a `lock cmpxchg` loop. It needs rax, so r0 is
    /// saved on the native stack around it, with rcx as the loop temporary;
    /// the address goes to r11 first (the base may be rax or rcx), the
    /// operand to r10 (the source may be either).
    fn fetch_logic(&mut self, wide: bool, op: AtomicOp, s: u8, b: u8, o: i32) {
        if b != R11 || o != 0 {
            dynasm!(self.a ; .arch x64 ; lea r11, [Rq(b) + o]);
        }
        let again = self.a.new_dynamic_label();
        if wide {
            dynasm!(self.a
                ; .arch x64
                ; mov r10, Rq(s)
                ; push rax
                ; push rcx
                ; mov rax, [r11]
                ; =>again
                ; mov rcx, rax
            );
            match op {
                AtomicOp::Or => dynasm!(self.a ; .arch x64 ; or rcx, r10),
                AtomicOp::And => dynasm!(self.a ; .arch x64 ; and rcx, r10),
                _ => dynasm!(self.a ; .arch x64 ; xor rcx, r10),
            }
            dynasm!(self.a
                ; .arch x64
                ; lock cmpxchg [r11], rcx
                ; jne =>again
                ; mov r10, rax
                ; pop rcx
                ; pop rax
                ; mov Rq(s), r10
            );
        } else {
            dynasm!(self.a
                ; .arch x64
                ; mov r10d, Rd(s)
                ; push rax
                ; push rcx
                ; mov eax, [r11]
                ; =>again
                ; mov ecx, eax
            );
            match op {
                AtomicOp::Or => dynasm!(self.a ; .arch x64 ; or ecx, r10d),
                AtomicOp::And => dynasm!(self.a ; .arch x64 ; and ecx, r10d),
                _ => dynasm!(self.a ; .arch x64 ; xor ecx, r10d),
            }
            dynasm!(self.a
                ; .arch x64
                ; lock cmpxchg [r11], ecx
                ; jne =>again
                ; mov r10d, eax
                ; pop rcx
                ; pop rax
                ; mov Rd(s), r10d
            );
        }
    }
}
