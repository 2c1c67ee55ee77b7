//! The interpreter: the reference semantics of a verified [`Program`].
//!
//! It walks the pre-decoded [`Program::ops`] with the registers in a local
//! array and checks every memory access against the region the verifier
//! named for it ([`Program::access`]), whether or not the verifier proved it
//! in bounds. Arithmetic comes from [`super::alu`], shared with the JIT's
//! constant folding and the differential tests.
//!
//! The interpreter is written in safe Rust only, and it never panics or
//! loops forever on any `Program`, even one the verifier did not build: a
//! broken invariant (a jump outside the program, a missing access fact, a
//! register above r10, ...) ends the run with [`RunError::InvalidProgram`],
//! a wrong access fact with [`RunError::OutOfBounds`], and loops and
//! recursion are bounded by the budget and [`MAX_CALL_DEPTH`].
//!
//! Order of checks at a `call local`: the budget first, then the call depth.
//! The stack buffer starts zeroed at every run.

use std::any::Any;

use super::alu;
use super::helpers::{HelperCtx, HelperExit};
use super::insn::{Op, Src, NREGS, STACK_SIZE};
use super::maps::{Maps, Slab};
use super::vm::{
    window_fault, Entry, Region, RunError, RunInput, WindowFields, MAX_CALL_DEPTH, STACK_TOTAL,
    UNFLAGGED_WINDOW_CHANGE,
};
use super::Program;

/// Runs `prog` on `input` and returns r0 at the final `exit`.
///
/// Entry state: for [`Entry::MemLen`], r1 = address of `input.pkt` and
/// r2 = its length; for [`Entry::Ctx`], r1 = address of `input.ctx`, and
/// the Packet region is the window of `input.pkt` that the context's
/// packet fields describe (checked: [`RunError::PacketWindow`],
/// [`RunError::CtxTooSmall`]). r10 = top of the stack; every other
/// register is 0.
pub fn run(prog: &Program, input: RunInput<'_>) -> Result<u64, RunError> {
    let RunInput { pkt, ctx, state } = input;
    let window = match &prog.env.entry {
        Entry::Ctx(layout) => {
            if ctx.len() < layout.size {
                return Err(RunError::CtxTooSmall {
                    len: ctx.len(),
                    need: layout.size,
                });
            }
            let fields = layout.window_fields();
            let win = fields
                .read_window(pkt.as_ptr() as u64, pkt.len(), ctx)
                .map_err(|(data, data_end)| RunError::PacketWindow {
                    data,
                    data_end,
                    len: pkt.len(),
                })?;
            Some((fields, win))
        }
        Entry::MemLen => None,
    };
    let mut stack = StackBuf([0; STACK_TOTAL]);
    let mut mem = Mem::new(pkt, ctx, &mut stack.0, &prog.env.maps);
    if let Some((_, (start, len))) = window {
        mem.set_window(start, len);
    }
    let (r1, r2) = match prog.env.entry {
        Entry::MemLen => (mem.pkt_base, mem.win_len as u64),
        Entry::Ctx(_) => (mem.ctx_base, 0),
    };
    let mut regs = [0u64; NREGS];
    regs[1] = r1;
    regs[2] = r2;
    regs[10] = mem.frame_top(0);
    let mut m = Machine {
        prog,
        regs,
        mem,
        window: window.map(|(f, _)| f),
        state,
        budget: prog.env.budget,
        depth: 0,
        frames: [Frame::default(); MAX_CALL_DEPTH],
    };
    m.exec()
}

/// The eBPF stack: all frames, 16-byte aligned like a native stack.
#[repr(C, align(16))]
struct StackBuf([u8; STACK_TOTAL]);

/// What a `call local` saves for the caller: where to resume, and r6..r10.
#[derive(Debug, Clone, Copy, Default)]
struct Frame {
    ret: usize,
    saved: [u64; 5],
}

/// The memory regions, with their start addresses as the program sees
/// them. The Packet region is the window `[win_start, win_start + win_len)`
/// of the packet buffer `pkt`.
struct Mem<'a> {
    pkt: &'a mut [u8],
    ctx: &'a mut [u8],
    stack: &'a mut [u8],
    maps: &'a Maps,
    win_start: usize,
    win_len: usize,
    /// Address of the Packet region's first byte.
    pkt_base: u64,
    ctx_base: u64,
    stack_base: u64,
}

impl<'a> Mem<'a> {
    fn new(pkt: &'a mut [u8], ctx: &'a mut [u8], stack: &'a mut [u8], maps: &'a Maps) -> Self {
        Mem {
            maps,
            pkt_base: pkt.as_ptr() as u64,
            win_start: 0,
            win_len: pkt.len(),
            ctx_base: ctx.as_ptr() as u64,
            stack_base: stack.as_ptr() as u64,
            pkt,
            ctx,
            stack,
        }
    }

    /// Makes `[start, start + len)` of the packet buffer the Packet region
    /// (checked by the caller to lie inside it).
    fn set_window(&mut self, start: usize, len: usize) {
        self.win_start = start;
        self.win_len = len;
        self.pkt_base = (self.pkt.as_ptr() as u64).wrapping_add(start as u64);
    }

    /// r10 of frame `k` (0 = entry frame): one past the frame's last byte.
    fn frame_top(&self, k: usize) -> u64 {
        let below = (STACK_TOTAL as u64).wrapping_sub((k as u64).wrapping_mul(STACK_SIZE as u64));
        self.stack_base.wrapping_add(below)
    }

    /// The `size` bytes at `addr`, which must lie inside `region`.
    #[inline]
    fn bytes(
        &mut self,
        pc: usize,
        region: Region,
        addr: u64,
        size: u8,
    ) -> Result<&mut [u8], RunError> {
        let (buf, base, len) = match region {
            Region::Packet => (&mut *self.pkt, self.pkt_base, self.win_len),
            Region::Ctx => (&mut *self.ctx, self.ctx_base, usize::MAX),
            Region::Stack => (&mut *self.stack, self.stack_base, usize::MAX),
            // Map values are shared between threads: `map_value`.
            Region::Map(_) => (&mut [][..], 0, 0),
        };
        let off = addr.wrapping_sub(base);
        let oob = || RunError::OutOfBounds {
            pc,
            region,
            offset: off as i64,
            size,
        };
        let start = usize::try_from(off).map_err(|_| oob())?;
        let end = start.checked_add(size as usize).ok_or_else(oob)?;
        if end > len {
            return Err(oob());
        }
        // Packet offsets are from the window's start.
        let shift = if region == Region::Packet {
            self.win_start
        } else {
            0
        };
        buf.get_mut(start + shift..end + shift).ok_or_else(oob)
    }

    /// The slab of map `map` and the offset of `[addr, addr + size)` in
    /// it, which must lie inside.
    #[inline]
    fn map_value(
        &self,
        pc: usize,
        map: u32,
        addr: u64,
        size: u8,
    ) -> Result<(&'a Slab, usize), RunError> {
        let maps: &'a Maps = self.maps;
        let slab = maps
            .get(map)
            .map(|m| m.slab())
            .ok_or_else(|| invalid(pc, "access to a map the environment does not have"))?;
        let off = slab
            .offset(addr, usize::from(size))
            .ok_or(RunError::OutOfBounds {
                pc,
                region: Region::Map(map),
                offset: addr.wrapping_sub(slab.base()) as i64,
                size,
            })?;
        Ok((slab, off))
    }

    /// Loads `size` bytes little-endian, zero-extended.
    #[inline]
    fn load(&mut self, pc: usize, region: Region, addr: u64, size: u8) -> Result<u64, RunError> {
        if let Region::Map(map) = region {
            let (slab, off) = self.map_value(pc, map, addr, size)?;
            return slab
                .load(off, usize::from(size))
                .ok_or_else(|| invalid(pc, "map access size"));
        }
        let src: &[u8] = self.bytes(pc, region, addr, size)?;
        // `bytes` returned exactly `size` bytes, so the conversions succeed.
        Ok(match size {
            1 => src.first().copied().map_or(0, u64::from),
            2 => src.try_into().map_or(0, |b| u16::from_le_bytes(b) as u64),
            4 => src.try_into().map_or(0, |b| u32::from_le_bytes(b) as u64),
            _ => src.try_into().map_or(0, u64::from_le_bytes),
        })
    }

    /// Stores the low `size` bytes of `v` little-endian.
    #[inline]
    fn store(
        &mut self,
        pc: usize,
        region: Region,
        addr: u64,
        size: u8,
        v: u64,
    ) -> Result<(), RunError> {
        if let Region::Map(map) = region {
            let (slab, off) = self.map_value(pc, map, addr, size)?;
            return slab
                .store(off, usize::from(size), v)
                .ok_or_else(|| invalid(pc, "map access size"));
        }
        let dst = self.bytes(pc, region, addr, size)?;
        let bytes = v.to_le_bytes();
        // `bytes` returned exactly `size` (1, 2, 4 or 8) bytes.
        if let Some(src) = bytes.get(..dst.len()) {
            dst.copy_from_slice(src);
        }
        Ok(())
    }
}

/// How one instruction hands over control.
enum Flow {
    Next,
    Goto(usize),
    /// The program is over with this r0.
    Done(u64),
}

struct Machine<'p, 'm> {
    prog: &'p Program,
    regs: [u64; NREGS],
    mem: Mem<'m>,
    /// Where the context keeps the packet window (`Entry::Ctx`).
    window: Option<WindowFields>,
    /// `RunInput.state`, for the helpers.
    state: Option<&'m mut dyn Any>,
    budget: u64,
    /// Index of the running frame (0 = entry).
    depth: usize,
    /// `frames[k]`: the state frame `k` saved when it called into `k + 1`.
    frames: [Frame; MAX_CALL_DEPTH],
}

fn invalid(pc: usize, reason: &'static str) -> RunError {
    RunError::InvalidProgram { pc, reason }
}

/// Access sizes the codec produces for loads and stores.
#[inline]
fn check_size(pc: usize, size: u8) -> Result<u8, RunError> {
    match size {
        1 | 2 | 4 | 8 => Ok(size),
        _ => Err(invalid(pc, "memory access size is not 1, 2, 4 or 8")),
    }
}

impl Machine<'_, '_> {
    fn exec(&mut self) -> Result<u64, RunError> {
        let prog = self.prog;
        let ops = &prog.ops[..];
        let mut pc = 0usize;
        loop {
            let op = match ops.get(pc) {
                Some(Some(op)) => *op,
                Some(None) => return Err(invalid(pc, "no instruction starts at this slot")),
                None => return Err(invalid(pc, "execution left the program")),
            };
            match self.step(pc, op)? {
                Flow::Next => pc += op.slots(),
                Flow::Goto(t) => pc = t,
                Flow::Done(r0) => return Ok(r0),
            }
        }
    }

    #[inline]
    fn reg(&self, pc: usize, r: u8) -> Result<u64, RunError> {
        self.regs
            .get(r as usize)
            .copied()
            .ok_or_else(|| invalid(pc, "register number above r10"))
    }

    #[inline]
    fn set(&mut self, pc: usize, r: u8, v: u64) -> Result<(), RunError> {
        let slot = self
            .regs
            .get_mut(r as usize)
            .ok_or_else(|| invalid(pc, "register number above r10"))?;
        *slot = v;
        Ok(())
    }

    #[inline]
    fn operand(&self, pc: usize, src: Src) -> Result<u64, RunError> {
        match src {
            Src::Reg(r) => self.reg(pc, r),
            Src::Imm(i) => Ok(alu::imm64(i)),
        }
    }

    /// The region the verifier gave the access at `pc`.
    #[inline]
    fn region(&self, pc: usize) -> Result<Region, RunError> {
        match self.prog.access.get(pc) {
            Some(Some(a)) => Ok(a.region),
            _ => Err(invalid(pc, "memory access without a region")),
        }
    }

    /// Spends one unit of budget (a taken back edge or a local call).
    #[inline]
    fn tick(&mut self, pc: usize) -> Result<(), RunError> {
        if self.budget == 0 {
            return Err(RunError::Budget { pc });
        }
        self.budget -= 1;
        Ok(())
    }

    /// Takes a jump from `pc` by `off` slots, charging back edges.
    #[inline]
    fn jump(&mut self, pc: usize, off: i64) -> Result<Flow, RunError> {
        let target = (pc as i64).wrapping_add(1).wrapping_add(off);
        if target <= pc as i64 {
            self.tick(pc)?;
        }
        usize::try_from(target)
            .map(Flow::Goto)
            .map_err(|_| invalid(pc, "jump before the first instruction"))
    }

    #[inline]
    fn address(&self, pc: usize, base: u8, off: i16) -> Result<u64, RunError> {
        Ok(self.reg(pc, base)?.wrapping_add(off as i64 as u64))
    }

    #[inline(always)]
    fn step(&mut self, pc: usize, op: Op) -> Result<Flow, RunError> {
        match op {
            Op::Alu { wide, op, dst, src } => {
                let b = self.operand(pc, src)?;
                let a = self.reg(pc, dst)?;
                self.set(pc, dst, alu::alu(wide, op, a, b))?;
            }
            Op::Neg { wide, dst } => {
                let a = self.reg(pc, dst)?;
                self.set(pc, dst, alu::neg(wide, a))?;
            }
            Op::End { kind, bits, dst } => {
                let a = self.reg(pc, dst)?;
                self.set(pc, dst, alu::end(kind, bits, a))?;
            }
            Op::Ja { off } => return self.jump(pc, off as i64),
            Op::Jmp {
                wide,
                cond,
                dst,
                src,
                off,
            } => {
                let a = self.reg(pc, dst)?;
                let b = self.operand(pc, src)?;
                if alu::cond(cond, wide, a, b) {
                    return self.jump(pc, off as i64);
                }
            }
            // A map handle is the map's index.
            Op::Lddw { dst, imm, .. } => self.set(pc, dst, imm)?,
            Op::Ldx {
                size,
                signed,
                dst,
                src,
                off,
            } => {
                let size = check_size(pc, size)?;
                let region = self.region(pc)?;
                let addr = self.address(pc, src, off)?;
                let raw = self.mem.load(pc, region, addr, size)?;
                self.set(pc, dst, alu::load_extend(size, signed, raw))?;
            }
            Op::St {
                size,
                dst,
                off,
                imm,
            } => {
                let size = check_size(pc, size)?;
                let region = self.region(pc)?;
                let addr = self.address(pc, dst, off)?;
                self.mem.store(pc, region, addr, size, alu::imm64(imm))?;
            }
            Op::Stx {
                size,
                dst,
                src,
                off,
            } => {
                let size = check_size(pc, size)?;
                let region = self.region(pc)?;
                let addr = self.address(pc, dst, off)?;
                let v = self.reg(pc, src)?;
                self.mem.store(pc, region, addr, size, v)?;
            }
            Op::Atomic {
                size,
                op,
                fetch,
                dst,
                src,
                off,
            } => {
                if size != 4 && size != 8 {
                    return Err(invalid(pc, "atomic access size is not 4 or 8"));
                }
                let region = self.region(pc)?;
                let addr = self.address(pc, dst, off)?;
                let s = self.reg(pc, src)?;
                let r0 = self.regs[0];
                let eff = if let Region::Map(map) = region {
                    // Shared with other workers: one atomic read-modify-write.
                    let (slab, o) = self.mem.map_value(pc, map, addr, size)?;
                    let old = slab
                        .update(o, usize::from(size), |old| {
                            alu::atomic(op, fetch, size, old, s, r0)
                                .store
                                .unwrap_or(old)
                        })
                        .ok_or_else(|| invalid(pc, "misaligned atomic on a map value"))?;
                    alu::atomic(op, fetch, size, old, s, r0)
                } else {
                    let old = self.mem.load(pc, region, addr, size)?;
                    let eff = alu::atomic(op, fetch, size, old, s, r0);
                    if let Some(v) = eff.store {
                        self.mem.store(pc, region, addr, size, v)?;
                    }
                    eff
                };
                if let Some(v) = eff.src {
                    self.set(pc, src, v)?;
                }
                if let Some(v) = eff.r0 {
                    self.regs[0] = v;
                }
            }
            Op::Call { helper } => return self.call_helper(pc, helper as u32 as u64),
            Op::CallX { reg } => {
                let id = match self.prog.callx.get(pc).copied().flatten() {
                    Some(id) => id as u64,
                    None => self.reg(pc, reg)?,
                };
                return self.call_helper(pc, id);
            }
            Op::CallLocal { off } => return self.call_local(pc, off),
            Op::Exit => return Ok(self.exit()),
        }
        Ok(Flow::Next)
    }

    fn call_helper(&mut self, pc: usize, id: u64) -> Result<Flow, RunError> {
        let helper = u32::try_from(id)
            .ok()
            .and_then(|i| self.prog.env.helpers.get(i))
            .ok_or(RunError::UnknownHelper { pc, id })?;
        let r = &self.regs;
        let args = [r[1], r[2], r[3], r[4], r[5]];
        let before = self.window.map(|w| w.raw(self.mem.ctx));
        let mut hctx = HelperCtx {
            pkt: &mut *self.mem.pkt,
            ctx: &mut *self.mem.ctx,
            state: self.state.as_deref_mut(),
            stack: &*self.mem.stack,
            maps: self.mem.maps,
        };
        let result = (helper.func)(&mut hctx, args);
        let fault = |reason| RunError::HelperFault {
            pc,
            id: helper.id,
            reason,
        };
        if let (Some(w), Some(before)) = (self.window, before) {
            if helper.changes_packet {
                let (start, len) = w
                    .read_window(
                        self.mem.pkt.as_ptr() as u64,
                        self.mem.pkt.len(),
                        self.mem.ctx,
                    )
                    .map_err(|(data, data_end)| {
                        fault(window_fault(data, data_end, self.mem.pkt.len()))
                    })?;
                self.mem.set_window(start, len);
            } else if w.raw(self.mem.ctx) != before {
                return Err(fault(UNFLAGGED_WINDOW_CHANGE.to_string()));
            }
        }
        match result {
            Ok(v) => {
                self.regs[0] = v;
                Ok(Flow::Next)
            }
            Err(HelperExit::Exit(v)) => Ok(Flow::Done(v)),
            Err(HelperExit::Fault(reason)) => Err(fault(reason)),
        }
    }

    fn call_local(&mut self, pc: usize, off: i32) -> Result<Flow, RunError> {
        self.tick(pc)?;
        let next = self.depth + 1;
        if next >= MAX_CALL_DEPTH {
            return Err(RunError::CallDepth { pc });
        }
        let target = usize::try_from((pc as i64) + 1 + off as i64)
            .map_err(|_| invalid(pc, "call before the first instruction"))?;
        let mut saved = [0u64; 5];
        saved.copy_from_slice(&self.regs[6..]);
        let frame = self
            .frames
            .get_mut(self.depth)
            .ok_or_else(|| invalid(pc, "call depth bookkeeping"))?;
        *frame = Frame { ret: pc + 1, saved };
        self.depth = next;
        self.regs[10] = self.mem.frame_top(next);
        Ok(Flow::Goto(target))
    }

    /// `exit`: return to the caller's frame, or end the program at depth 0.
    fn exit(&mut self) -> Flow {
        if self.depth == 0 {
            return Flow::Done(self.regs[0]);
        }
        self.depth -= 1;
        // `depth` was at most MAX_CALL_DEPTH - 1, so this frame exists.
        match self.frames.get(self.depth) {
            Some(f) => {
                self.regs[6..].copy_from_slice(&f.saved);
                Flow::Goto(f.ret)
            }
            None => Flow::Done(self.regs[0]),
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod suite_tests;
