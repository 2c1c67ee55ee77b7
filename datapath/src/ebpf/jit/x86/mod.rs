//! x86-64 code generation: one pass from `Program.ops` to machine code, with
//! dynasm's label fixups resolving forward jumps at the end.
//!
//! See `sys::jitcall` for the run-time contract (register assignment, the
//! `VmCtx` layout, error reporting). Each program is a self-contained
//! function: a prologue that saves only the callee-saved registers the
//! program uses, the body, then its out-of-line error stubs.
//!
//! Programs without local calls return from `exit` through an inline
//! epilogue. Programs with local calls are *framed*: the prologue `call`s the
//! body, every `exit` is a plain `ret` (to the caller's frame or to the
//! prologue), and an error at any depth unwinds by restoring the stack
//! pointer recorded at depth 0 and returning.

// dynasm! expands dynamic register operands to `reg.into()`, which clippy
// flags for `u8` registers; the conversion is in generated code.
#![allow(clippy::useless_conversion)]

use dynasmrt::x64::X64Relocation;
use dynasmrt::{dynasm, DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler};

use super::JitError;
use crate::ebpf::helpers::HelperRegistry;
use crate::ebpf::insn::{AtomicOp, Cond, Op, Src, R10, STACK_SIZE};
use crate::ebpf::vm::{Region, MAX_CALL_DEPTH};
use crate::ebpf::Entry;
use crate::ebpf::Program;
use crate::sys::jitcall::{
    helper_trampoline_addr, off, status, PENDING_DYNAMIC, REGION_CTX, REGION_MAP, REGION_PACKET,
    REGION_STACK,
};

pub(super) type Asm = VecAssembler<X64Relocation>;

// x86-64 register numbers.
const RAX: u8 = 0;
const RCX: u8 = 1;
const RDX: u8 = 2;
const RBX: u8 = 3;
const RBP: u8 = 5;
const RSI: u8 = 6;
const RDI: u8 = 7;
const R8: u8 = 8;
const R11: u8 = 11;
const R12: u8 = 12;
const R13: u8 = 13;
const R14: u8 = 14;
const R15: u8 = 15;

/// eBPF register → x86 register. r12 holds the `VmCtx`, r9 the budget;
/// r10 and r11 are scratch.
const REG_MAP: [u8; 11] = [RAX, RDI, RSI, RDX, RCX, R8, RBX, R13, R14, R15, RBP];

/// Native stack bytes one local call level takes: five saved registers and
/// the return address. A multiple of 16, so alignment is the same at every
/// depth.
const CALL_FRAME: i32 = 6 * 8;

/// Where one compiled program ended up in the assembler's buffer.
pub(super) struct Emitted {
    pub body: usize,
    pub len: usize,
    /// The code reads the context's bounds, which `enter` must store.
    pub ctx_bounds: bool,
    /// The code reads or writes the `VmCtx` (region bounds, budget, call
    /// limit, helper calls); without it a run needs no set-up at all.
    pub uses_vm: bool,
    /// The code calls helpers.
    pub helper_calls: bool,
}

/// Index of a region's bounds in the `VmCtx` (map values have theirs
/// fixed at compile time).
fn region_index(r: Region) -> Option<usize> {
    match r {
        Region::Stack => Some(REGION_STACK),
        Region::Ctx => Some(REGION_CTX),
        Region::Packet => Some(REGION_PACKET),
        Region::Map(_) => None,
    }
}

/// `VmCtx.err_b` of an out-of-bounds error: the region code (a `REGION_*`
/// index, or `REGION_MAP` with the map index from bit 16) and the access
/// size in bits 8..16.
fn region_code(r: Region, size: u8) -> u64 {
    let code = match r {
        Region::Map(n) => REGION_MAP as u64 | u64::from(n) << 16,
        r => region_index(r).unwrap_or(REGION_PACKET) as u64,
    };
    code | u64::from(size) << 8
}

/// Index of an access size in `RegionBounds::lim`.
fn size_index(size: u8) -> Option<usize> {
    match size {
        1 => Some(0),
        2 => Some(1),
        4 => Some(2),
        8 => Some(3),
        _ => None,
    }
}

/// What a program uses, found before emitting it.
#[derive(Default)]
struct Scan {
    /// eBPF registers named by some instruction.
    regs: [bool; 11],
    local_calls: bool,
    helper_calls: bool,
    back_edges: bool,
    guards: bool,
    /// Per region and access size: some guarded access checks that limit.
    guarded: [[bool; 4]; 3],
}

fn scan(prog: &Program) -> Scan {
    let mut s = Scan::default();
    for (op, acc) in prog.ops.iter().zip(&prog.access) {
        let Some(op) = op else { continue };
        let mut mark = |r: u8| {
            if let Some(slot) = s.regs.get_mut(r as usize) {
                *slot = true;
            }
        };
        let mut size = None;
        match *op {
            Op::Alu { dst, src, .. } | Op::Jmp { dst, src, .. } => {
                mark(dst);
                if let Src::Reg(r) = src {
                    mark(r);
                }
            }
            Op::Neg { dst, .. } | Op::End { dst, .. } | Op::Lddw { dst, .. } => mark(dst),
            Op::Ldx {
                dst, src, size: n, ..
            }
            | Op::Stx {
                dst, src, size: n, ..
            }
            | Op::Atomic {
                dst, src, size: n, ..
            } => {
                mark(dst);
                mark(src);
                size = Some(n);
            }
            Op::St { dst, size: n, .. } => {
                mark(dst);
                size = Some(n);
            }
            Op::CallX { reg } => mark(reg),
            Op::Ja { .. } | Op::Call { .. } | Op::CallLocal { .. } | Op::Exit => {}
        }
        match *op {
            Op::Ja { off } if off < 0 => s.back_edges = true,
            Op::Jmp { off, .. } if off < 0 => s.back_edges = true,
            Op::CallLocal { .. } => s.local_calls = true,
            Op::Call { .. } | Op::CallX { .. } => s.helper_calls = true,
            Op::Atomic {
                op: AtomicOp::CmpXchg,
                ..
            } => s.regs[0] = true,
            _ => {}
        }
        if let Some(a) = acc.filter(|a| a.guard) {
            s.guards = true;
            if let (Some(k), Some(r)) = (size.and_then(size_index), region_index(a.region)) {
                s.guarded[r][k] = true;
            }
        }
    }
    s
}

/// How the program's native frame is laid out.
struct Frame {
    /// Callee-saved registers pushed by the prologue, in push order.
    saved: Vec<u8>,
    /// 8 bytes of padding below them, so helper calls see an aligned stack.
    pad: bool,
    /// The prologue calls the body (the program has local calls).
    framed: bool,
    /// r12 holds the `VmCtx`; r9 the budget; rbp the frame pointer.
    vm: bool,
    budget: bool,
    fp: bool,
}

impl Frame {
    fn new(s: &Scan) -> Frame {
        let fp = s.regs[R10 as usize] || s.local_calls;
        let vm = s.guards || s.back_edges || s.local_calls || s.helper_calls;
        let mut saved: Vec<u8> = [6usize, 7, 8, 9]
            .iter()
            .filter(|&&r| s.regs[r])
            .map(|&r| REG_MAP[r])
            .collect();
        if fp {
            saved.push(RBP);
        }
        if vm {
            saved.push(R12);
        }
        // At entry rsp = 8 (mod 16); the body must run at 0 (mod 16) for
        // helper calls. A framed body is one return address lower.
        let k = saved.len();
        let pad = s.helper_calls && (k & 1 == 0) != s.local_calls;
        Frame {
            saved,
            pad,
            framed: s.local_calls,
            vm,
            budget: s.back_edges || s.local_calls,
            fp,
        }
    }
}

/// Emits one program: prologue, body, error stubs.
pub(super) fn emit_program(a: &mut Asm, prog: &Program) -> Result<Emitted, JitError> {
    let start = a.offset().0;
    let s = scan(prog);
    let frame = Frame::new(&s);
    let labels = (0..prog.ops.len()).map(|_| a.new_dynamic_label()).collect();
    let mut g = Gen {
        a,
        prog,
        labels,
        stubs: Vec::new(),
        frame,
    };
    let mem_entry = matches!(prog.env.entry, Entry::MemLen);
    g.prologue(&s, mem_entry);
    for (pc, op) in prog.ops.iter().enumerate() {
        let Some(op) = op else { continue };
        let here = g.label(pc)?;
        dynasm!(g.a ; .arch x64 ; =>here);
        g.op(pc, op)?;
    }
    g.emit_stubs();
    let end = g.a.offset().0;
    Ok(Emitted {
        body: start,
        len: end - start,
        ctx_bounds: s.helper_calls || s.guarded[REGION_CTX].iter().any(|&g| g),
        uses_vm: g.frame.vm,
        helper_calls: s.helper_calls,
    })
}

/// A second operand: an x86 register or a 32-bit immediate.
#[derive(Clone, Copy)]
enum Opnd {
    R(u8),
    I(i32),
}

/// x86 condition codes the JIT uses.
#[derive(Clone, Copy)]
enum Cc {
    E,
    Ne,
    A,
    Ae,
    B,
    Be,
    G,
    Ge,
    L,
    Le,
}

impl Cc {
    fn of(c: Cond) -> Cc {
        match c {
            Cond::Eq => Cc::E,
            Cond::Ne | Cond::Set => Cc::Ne,
            Cond::Gt => Cc::A,
            Cond::Ge => Cc::Ae,
            Cond::Lt => Cc::B,
            Cond::Le => Cc::Be,
            Cond::Sgt => Cc::G,
            Cond::Sge => Cc::Ge,
            Cond::Slt => Cc::L,
            Cond::Sle => Cc::Le,
        }
    }

    fn not(self) -> Cc {
        match self {
            Cc::E => Cc::Ne,
            Cc::Ne => Cc::E,
            Cc::A => Cc::Be,
            Cc::Be => Cc::A,
            Cc::Ae => Cc::B,
            Cc::B => Cc::Ae,
            Cc::G => Cc::Le,
            Cc::Le => Cc::G,
            Cc::Ge => Cc::L,
            Cc::L => Cc::Ge,
        }
    }
}

/// An error exit, emitted out of line after the body.
enum Stub {
    /// Guarded access failed; the offset is in r10.
    OutOfBounds { pc: usize, region: Region, size: u8 },
    /// A check with a fixed status (budget, call depth).
    Status { pc: usize, status: u64 },
    /// A helper call whose id the registry does not know.
    UnknownHelper { pc: usize, id: u64 },
    /// The trampoline set a non-OK status.
    AfterHelper { pc: usize },
}

struct Gen<'a> {
    a: &'a mut Asm,
    prog: &'a Program,
    labels: Vec<DynamicLabel>,
    stubs: Vec<(DynamicLabel, Stub)>,
    frame: Frame,
}

/// `$mn dst, src` for add/sub/and/or/xor/cmp/test-like instructions, in
/// 64- or 32-bit width.
macro_rules! binop {
    ($a:expr, $mn:ident, $wide:expr, $d:expr, $src:expr) => {
        match ($wide, $src) {
            (true, Opnd::R(s)) => dynasm!($a ; .arch x64 ; $mn Rq($d), Rq(s)),
            (false, Opnd::R(s)) => dynasm!($a ; .arch x64 ; $mn Rd($d), Rd(s)),
            // The short form sign-extends an 8-bit immediate.
            (true, Opnd::I(i)) if i8::try_from(i).is_ok() => {
                dynasm!($a ; .arch x64 ; $mn Rq($d), BYTE i as i8)
            }
            (false, Opnd::I(i)) if i8::try_from(i).is_ok() => {
                dynasm!($a ; .arch x64 ; $mn Rd($d), BYTE i as i8)
            }
            (true, Opnd::I(i)) => dynasm!($a ; .arch x64 ; $mn Rq($d), DWORD i),
            (false, Opnd::I(i)) => dynasm!($a ; .arch x64 ; $mn Rd($d), DWORD i),
        }
    };
}

/// `$mn dst, src` always with a 32-bit immediate: `test` has no 8-bit form,
/// and dynasm encodes `cmp` with one regardless.
macro_rules! binop32 {
    ($a:expr, $mn:ident, $wide:expr, $d:expr, $src:expr) => {
        match ($wide, $src) {
            (true, Opnd::R(s)) => dynasm!($a ; .arch x64 ; $mn Rq($d), Rq(s)),
            (false, Opnd::R(s)) => dynasm!($a ; .arch x64 ; $mn Rd($d), Rd(s)),
            (true, Opnd::I(i)) => dynasm!($a ; .arch x64 ; $mn Rq($d), DWORD i),
            (false, Opnd::I(i)) => dynasm!($a ; .arch x64 ; $mn Rd($d), DWORD i),
        }
    };
}

/// Shift of `$r` (64- or 32-bit) by `cl`.
macro_rules! shift_cl {
    ($a:expr, $mn:ident, $wide:expr, $r:expr) => {
        if $wide {
            dynasm!($a ; .arch x64 ; $mn Rq($r), cl)
        } else {
            dynasm!($a ; .arch x64 ; $mn Rd($r), cl)
        }
    };
}

/// Shift of `$r` by a constant.
macro_rules! shift_imm {
    ($a:expr, $mn:ident, $wide:expr, $r:expr, $n:expr) => {
        if $wide {
            dynasm!($a ; .arch x64 ; $mn Rq($r), BYTE $n)
        } else {
            dynasm!($a ; .arch x64 ; $mn Rd($r), BYTE $n)
        }
    };
}

mod alu;
mod mem;

impl Gen<'_> {
    fn label(&self, pc: usize) -> Result<DynamicLabel, JitError> {
        self.labels.get(pc).copied().ok_or(JitError::BadTarget {
            pc,
            target: pc as i64,
        })
    }

    fn reg(pc: usize, r: u8) -> Result<u8, JitError> {
        REG_MAP
            .get(r as usize)
            .copied()
            .ok_or(JitError::BadRegister { pc, reg: r })
    }

    fn opnd(pc: usize, s: Src) -> Result<Opnd, JitError> {
        Ok(match s {
            Src::Reg(r) => Opnd::R(Self::reg(pc, r)?),
            Src::Imm(i) => Opnd::I(i),
        })
    }

    /// Label of the instruction `pc + 1 + off`, which must exist.
    fn target(&self, pc: usize, off: i64) -> Result<(usize, DynamicLabel), JitError> {
        let t = pc as i64 + 1 + off;
        let bad = JitError::BadTarget { pc, target: t };
        let tu = usize::try_from(t).map_err(|_| bad.clone())?;
        match self.prog.ops.get(tu) {
            Some(Some(_)) => Ok((tu, self.label(tu)?)),
            _ => Err(bad),
        }
    }

    fn stub(&mut self, s: Stub) -> DynamicLabel {
        let l = self.a.new_dynamic_label();
        self.stubs.push((l, s));
        l
    }

    fn op(&mut self, pc: usize, op: &Op) -> Result<(), JitError> {
        match *op {
            Op::Alu { wide, op, dst, src } => {
                let d = Self::reg(pc, dst)?;
                let s = Self::opnd(pc, src)?;
                self.alu(wide, op, d, s);
            }
            Op::Neg { wide, dst } => {
                let d = Self::reg(pc, dst)?;
                if wide {
                    dynasm!(self.a ; .arch x64 ; neg Rq(d));
                } else {
                    dynasm!(self.a ; .arch x64 ; neg Rd(d));
                }
            }
            Op::End { kind, bits, dst } => {
                let d = Self::reg(pc, dst)?;
                self.end(pc, kind, bits, d)?;
            }
            Op::Ja { off } => {
                let (t, l) = self.target(pc, off as i64)?;
                if t <= pc {
                    self.back_edge(pc, l);
                } else if t != pc + 1 {
                    dynasm!(self.a ; .arch x64 ; jmp =>l);
                }
            }
            Op::Jmp {
                wide,
                cond,
                dst,
                src,
                off,
            } => {
                let (t, l) = self.target(pc, off as i64)?;
                let d = Self::reg(pc, dst)?;
                let s = Self::opnd(pc, src)?;
                if cond == Cond::Set {
                    binop32!(self.a, test, wide, d, s);
                } else {
                    binop32!(self.a, cmp, wide, d, s);
                }
                let cc = Cc::of(cond);
                if t <= pc {
                    let skip = self.a.new_dynamic_label();
                    self.jcc(cc.not(), skip);
                    self.back_edge(pc, l);
                    dynasm!(self.a ; .arch x64 ; =>skip);
                } else {
                    self.jcc(cc, l);
                }
            }
            Op::Call { helper } => self.call_helper(pc, helper as u32 as u64),
            Op::CallX { reg } => match self.prog.callx.get(pc).copied().flatten() {
                Some(id) => self.call_helper(pc, u64::from(id)),
                None => {
                    let r = Self::reg(pc, reg)?;
                    // The program's `Arc<ProgEnv>` keeps the registry alive
                    // as long as the code.
                    let registry = &*self.prog.env.helpers as *const HelperRegistry;
                    dynasm!(self.a
                        ; .arch x64
                        ; mov QWORD [r12 + off::PENDING], PENDING_DYNAMIC as i32
                        ; mov [r12 + off::PENDING_ID], Rq(r)
                        ; mov r11, QWORD registry as usize as i64
                        ; mov [r12 + off::REGISTRY], r11
                    );
                    self.call_trampoline(pc);
                }
            },
            Op::CallLocal { off } => {
                let (_, l) = self.target(pc, off as i64)?;
                self.budget(pc);
                let deep = self.stub(Stub::Status {
                    pc,
                    status: status::CALL_DEPTH,
                });
                dynasm!(self.a
                    ; .arch x64
                    ; cmp rsp, [r12 + off::CALL_LIMIT]
                    ; jbe =>deep
                    ; push rbx
                    ; push r13
                    ; push r14
                    ; push r15
                    ; push rbp
                    ; sub rbp, STACK_SIZE as i32
                    ; call =>l
                    ; pop rbp
                    ; pop r15
                    ; pop r14
                    ; pop r13
                    ; pop rbx
                );
            }
            Op::Exit => {
                if self.frame.framed {
                    dynasm!(self.a ; .arch x64 ; ret);
                } else {
                    self.epilogue();
                }
            }
            // A map handle is the map's index (`LDDW_MAP`), like the
            // interpreter's.
            Op::Lddw { dst, imm, .. } => {
                let d = Self::reg(pc, dst)?;
                self.mov_imm64(d, imm);
            }
            Op::Ldx {
                size,
                signed,
                dst,
                src,
                off,
            } => self.ldx(pc, size, signed, dst, src, off)?,
            Op::St {
                size,
                dst,
                off,
                imm,
            } => self.st(pc, size, dst, off, imm)?,
            Op::Stx {
                size,
                dst,
                src,
                off,
            } => self.stx(pc, size, dst, src, off)?,
            Op::Atomic {
                size,
                op,
                fetch,
                dst,
                src,
                off,
            } => {
                if size != 4 && size != 8 {
                    return Err(JitError::BadSize { pc, size });
                }
                let s = Self::reg(pc, src)?;
                let (b, o) = self.mem(pc, dst, off, size)?;
                self.atomic(size == 8, op, fetch, s, b, o);
            }
        }
        Ok(())
    }

    /// Budget check before a taken back edge or a local call.
    fn budget(&mut self, pc: usize) {
        let out = self.stub(Stub::Status {
            pc,
            status: status::BUDGET,
        });
        dynasm!(self.a
            ; .arch x64
            ; sub r9, 1
            ; jb =>out
        );
    }

    /// A taken jump to `l` at or before `pc`: spends one unit of budget.
    fn back_edge(&mut self, pc: usize, l: DynamicLabel) {
        let out = self.stub(Stub::Status {
            pc,
            status: status::BUDGET,
        });
        dynasm!(self.a
            ; .arch x64
            ; sub r9, 1
            ; jae =>l
            ; jmp =>out
        );
    }

    /// Saves what the program clobbers, sets up r12 (VmCtx), rbp (r10), r9
    /// (budget) from the arguments and zeroes the other eBPF registers it
    /// names. A framed program then calls its body.
    fn prologue(&mut self, s: &Scan, mem_entry: bool) {
        let regs = &s.regs;
        for &r in &self.frame.saved {
            dynasm!(self.a ; .arch x64 ; push Rq(r));
        }
        if self.frame.pad {
            dynasm!(self.a ; .arch x64 ; sub rsp, 8);
        }
        if self.frame.vm {
            dynasm!(self.a ; .arch x64 ; mov r12, rdx);
        }
        if self.frame.fp {
            dynasm!(self.a ; .arch x64 ; mov rbp, rcx);
        }
        if self.frame.budget {
            dynasm!(self.a ; .arch x64 ; mov r9, r8);
        }
        // A MemLen program has its packet in rdi/rsi: it stores the packet's
        // bounds itself when guards or helpers need them.
        let pkt = &s.guarded[REGION_PACKET];
        if mem_entry && (s.helper_calls || pkt.iter().any(|&g| g)) {
            let (st, ln) = (
                off::region_start(REGION_PACKET),
                off::region_len(REGION_PACKET),
            );
            dynasm!(self.a
                ; .arch x64
                ; mov [r12 + st], rdi
                ; mov [r12 + ln], rsi
            );
            for (k, _) in pkt.iter().enumerate().filter(|(_, &g)| g) {
                // lim = len + 1 - size, or 0 if that is negative.
                let lim = off::region_lim(REGION_PACKET, k);
                let below = (1i32 << k) - 1;
                dynasm!(self.a
                    ; .arch x64
                    ; xor r10d, r10d
                    ; lea r11, [rsi - below]
                    ; cmp rsi, below
                    ; cmovb r11, r10
                    ; mov [r12 + lim], r11
                );
            }
        }
        // r0 always (it is the result); others when named.
        for r in [0u8, 3, 4, 5, 6, 7, 8, 9] {
            if r == 0 || regs[r as usize] {
                let x = REG_MAP[r as usize];
                dynasm!(self.a ; .arch x64 ; xor Rd(x), Rd(x));
            }
        }
        if self.frame.framed {
            let limit = CALL_FRAME * (MAX_CALL_DEPTH as i32 - 1);
            let body = self.a.new_dynamic_label();
            dynasm!(self.a
                ; .arch x64
                // Inside the body at depth 0, rsp is 8 lower (the return address).
                ; lea r11, [rsp - 8]
                ; mov [r12 + off::ENTRY_RSP], r11
                ; sub r11, DWORD limit
                ; mov [r12 + off::CALL_LIMIT], r11
                ; call =>body
            );
            self.epilogue();
            dynasm!(self.a ; .arch x64 ; =>body);
        }
    }

    /// Restores what the prologue saved and returns r0.
    fn epilogue(&mut self) {
        if self.frame.pad {
            dynasm!(self.a ; .arch x64 ; add rsp, 8);
        }
        for i in (0..self.frame.saved.len()).rev() {
            let r = self.frame.saved[i];
            dynasm!(self.a ; .arch x64 ; pop Rq(r));
        }
        dynasm!(self.a ; .arch x64 ; ret);
    }

    fn jcc(&mut self, cc: Cc, l: DynamicLabel) {
        match cc {
            Cc::E => dynasm!(self.a ; .arch x64 ; je =>l),
            Cc::Ne => dynasm!(self.a ; .arch x64 ; jne =>l),
            Cc::A => dynasm!(self.a ; .arch x64 ; ja =>l),
            Cc::Ae => dynasm!(self.a ; .arch x64 ; jae =>l),
            Cc::B => dynasm!(self.a ; .arch x64 ; jb =>l),
            Cc::Be => dynasm!(self.a ; .arch x64 ; jbe =>l),
            Cc::G => dynasm!(self.a ; .arch x64 ; jg =>l),
            Cc::Ge => dynasm!(self.a ; .arch x64 ; jge =>l),
            Cc::L => dynasm!(self.a ; .arch x64 ; jl =>l),
            Cc::Le => dynasm!(self.a ; .arch x64 ; jle =>l),
        }
    }

    /// Calls helper `id` (fixed at compile time).
    fn call_helper(&mut self, pc: usize, id: u64) {
        let known = u32::try_from(id)
            .ok()
            .and_then(|i| self.prog.env.helpers.get(i))
            .map(|h| (h.id, h.func, h.changes_packet));
        let Some((hid, func, changes_packet)) = known else {
            let out = self.stub(Stub::UnknownHelper { pc, id });
            dynasm!(self.a ; .arch x64 ; jmp =>out);
            return;
        };
        dynasm!(self.a
            ; .arch x64
            ; mov r11, QWORD func as usize as i64
            ; mov [r12 + off::PENDING], r11
            ; mov QWORD [r12 + off::PENDING_ID], hid as i32
        );
        if changes_packet {
            dynasm!(self.a ; .arch x64 ; mov QWORD [r12 + off::CHANGES], 1);
        }
        self.call_trampoline(pc);
    }

    /// Calls the trampoline (r1..r5 are already in the argument registers)
    /// and checks the status it leaves.
    fn call_trampoline(&mut self, pc: usize) {
        let out = self.stub(Stub::AfterHelper { pc });
        if self.frame.budget {
            dynasm!(self.a ; .arch x64 ; mov [r12 + off::BUDGET], r9);
        }
        dynasm!(self.a
            ; .arch x64
            ; mov r9, r12
            ; mov r11, QWORD helper_trampoline_addr() as i64
            ; call r11
        );
        if self.frame.budget {
            dynasm!(self.a ; .arch x64 ; mov r9, [r12 + off::BUDGET]);
        }
        dynasm!(self.a
            ; .arch x64
            ; cmp QWORD [r12 + off::STATUS], BYTE 0
            ; jne =>out
        );
    }

    /// Out-of-line error exits, then the unwind sequence they end in. A
    /// framed program restores the stack pointer of depth 0 and returns to
    /// the prologue, whatever the call depth; otherwise nothing is pushed at
    /// any error point and the epilogue returns directly.
    fn emit_stubs(&mut self) {
        if self.stubs.is_empty() {
            return;
        }
        let unwind = self.a.new_dynamic_label();
        for (l, s) in std::mem::take(&mut self.stubs) {
            dynasm!(self.a ; .arch x64 ; =>l);
            match s {
                Stub::OutOfBounds { pc, region, size } => {
                    let b = region_code(region, size) as i64;
                    dynasm!(self.a
                        ; .arch x64
                        ; mov [r12 + off::ERR_A], r10
                        ; mov r11, QWORD b
                        ; mov [r12 + off::ERR_B], r11
                        ; mov QWORD [r12 + off::ERR_PC], pc as i32
                        ; mov QWORD [r12 + off::STATUS], status::OUT_OF_BOUNDS as i32
                    );
                }
                Stub::Status { pc, status } => {
                    dynasm!(self.a
                        ; .arch x64
                        ; mov QWORD [r12 + off::ERR_PC], pc as i32
                        ; mov QWORD [r12 + off::STATUS], status as i32
                    );
                }
                Stub::UnknownHelper { pc, id } => {
                    dynasm!(self.a
                        ; .arch x64
                        ; mov r11, QWORD id as i64
                        ; mov [r12 + off::ERR_A], r11
                        ; mov QWORD [r12 + off::ERR_PC], pc as i32
                        ; mov QWORD [r12 + off::STATUS], status::UNKNOWN_HELPER as i32
                    );
                }
                Stub::AfterHelper { pc } => {
                    dynasm!(self.a ; .arch x64 ; mov QWORD [r12 + off::ERR_PC], pc as i32);
                }
            }
            dynasm!(self.a ; .arch x64 ; jmp =>unwind);
        }
        dynasm!(self.a ; .arch x64 ; =>unwind);
        if self.frame.framed {
            dynasm!(self.a
                ; .arch x64
                ; mov rsp, [r12 + off::ENTRY_RSP]
                ; ret
            );
        } else {
            self.epilogue();
        }
    }
}
