//! The x86-64 JIT: verified programs to native code.
//!
//! [`compile`] (one program) and [`compile_many`] (a batch sharing one
//! executable arena) translate `Program.ops` in a single pass into x86-64
//! machine code (the `x86` module), with the eBPF registers in machine registers.
//! The code is copied into a fresh mapping that is switched from read+write
//! to read+execute before first use (`sys::exec`); it never calls back into
//! the interpreter. Running enters the code through `sys::jitcall`, which
//! also hosts the helper trampoline.
//!
//! Memory accesses the verifier marked `guard: true` are checked inline
//! against the region's run-time bounds (a map value's against its map's
//! storage, whose bounds are fixed when the code is made); the others are
//! trusted. Run-time
//! errors come back as the same [`RunError`] values the interpreter produces.
//!
//! On other architectures [`compile`] returns a program that runs the
//! interpreter, and says so once on stderr.
//!
//! Use: compile flow programs in batches with [`compile_many`] (one mapping
//! for the batch; 100,000 small programs take about 1.6 MB). A
//! [`JitProgram`] is `Send + Sync`; each worker thread keeps a
//! [`JitScratch`] and calls [`JitProgram::run_with`], the cheapest way in
//! (about 4 ns of fixed cost); [`JitProgram::run`] uses a thread-local
//! scratch and costs a few ns more. A caller that picks one of many lean
//! programs per run keeps them in a [`LeanTable`] (8 bytes each; `lean`).
//!
//! The generated code per program: a prologue saving only the callee-saved
//! registers the program uses (nothing at all for a small leaf program), the
//! body with eBPF registers in x86 registers, the run-time budget in r9, and
//! out-of-line error stubs. See `x86` for the code and `sys::jitcall` for
//! the calling contract.

mod lean;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests;

use std::cell::RefCell;
#[cfg(target_arch = "x86_64")]
use std::sync::Arc;

use thiserror::Error;

use super::insn::Op;
#[cfg(target_arch = "x86_64")]
use super::insn::{R10, STACK_SIZE};
#[cfg(target_arch = "x86_64")]
use super::vm::{Region, STACK_TOTAL};
use super::vm::{RunError, RunInput};
use super::Program;
#[cfg(target_arch = "x86_64")]
use super::{vm::WindowFields, Entry, ProgEnv};
#[cfg(target_arch = "x86_64")]
use crate::sys::exec::{ExecArena, ExecEntry};
#[cfg(target_arch = "x86_64")]
use crate::sys::jitcall::{self, status, CtxWindow, EnterArgs, EntryArg, RawError, RunState};

pub use lean::{LeanRef, LeanTable};

/// Why a program could not be compiled. Verified programs only fail on
/// resource exhaustion ([`JitError::Map`]); the other variants describe
/// programs the verifier would not have produced.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JitError {
    #[error("program has no instructions")]
    Empty,
    #[error("program has {slots} slots but {ops} ops, {access} access and {callx} callx entries")]
    Shape {
        slots: usize,
        ops: usize,
        access: usize,
        callx: usize,
    },
    #[error("program of {0} slots is too large to compile")]
    TooLarge(usize),
    #[error("insn {pc}: jump or call target {target} is not an instruction")]
    BadTarget { pc: usize, target: i64 },
    #[error("insn {pc}: invalid register r{reg}")]
    BadRegister { pc: usize, reg: u8 },
    #[error("insn {pc}: invalid access size {size}")]
    BadSize { pc: usize, size: u8 },
    #[error("insn {pc}: memory access has no region information from the verifier")]
    MissingAccess { pc: usize },
    #[error("insn {pc}: {what} is not supported by the JIT")]
    Unsupported { pc: usize, what: &'static str },
    #[error("insn {pc}: execution can run past the last instruction")]
    FallsOffEnd { pc: usize },
    #[error("code generation failed: {0}")]
    Assemble(String),
    #[error("cannot map executable memory: {0}")]
    Map(String),
}

/// Per-thread working memory for runs: the eBPF stack and the state the
/// generated code shares with Rust. Reusing one across runs avoids an
/// allocation per run (see [`JitProgram::run_with`]).
pub struct JitScratch {
    #[cfg(target_arch = "x86_64")]
    state: Box<RunState>,
}

impl JitScratch {
    pub fn new() -> Self {
        JitScratch {
            #[cfg(target_arch = "x86_64")]
            state: RunState::new(),
        }
    }
}

impl Default for JitScratch {
    fn default() -> Self {
        Self::new()
    }
}

thread_local! {
    static SCRATCH: RefCell<Option<JitScratch>> = const { RefCell::new(None) };
}

/// Where a program's code lives, for tests and statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenaInfo {
    /// Address of the arena's first byte: equal for programs sharing an arena.
    pub base: usize,
    /// Bytes of code in the arena (all its programs).
    pub code_bytes: usize,
    /// Bytes mapped for it (whole pages).
    pub mapped_bytes: usize,
}

/// A compiled program. Cheap to run repeatedly and shareable between
/// threads (`Send + Sync`); keeps its executable arena alive.
pub struct JitProgram {
    #[cfg(target_arch = "x86_64")]
    native: Native,
    #[cfg(not(target_arch = "x86_64"))]
    prog: Program,
}

#[cfg(target_arch = "x86_64")]
struct Native {
    entry: ExecEntry,
    /// Keeps alive what the code refers to by address (the helper registry,
    /// the maps' storage); its maps go to the helpers.
    _env: Arc<ProgEnv>,
    /// `env.entry` is `Entry::Ctx`.
    ctx_entry: bool,
    /// Runs need set-up in Rust (context entry or bounds, stack zeroing).
    slow: bool,
    /// A context-entry program whose code never touches the `VmCtx` and
    /// needs no stack zeroing: a run only checks the context's size and
    /// packet window and calls the code ([`JitProgram::run_ctx_lean`]).
    lean: bool,
    /// The code calls helpers.
    helper_calls: bool,
    /// `env.budget`.
    budget: u64,
    /// The code reads the context's bounds.
    ctx_bounds: bool,
    /// For `Entry::Ctx`: where the context keeps the packet window, and
    /// the layout's size.
    window: WindowFields,
    /// For lean entries: the offsets of `data` and `data_end` (the layout
    /// has both).
    window_offs: (usize, usize),
    ctx_size: usize,
    /// Bytes at the top of the eBPF stack to zero before each run.
    stack_zero: usize,
}

impl JitProgram {
    /// Runs the program on `input` with this thread's scratch memory.
    pub fn run(&self, input: RunInput<'_>) -> Result<u64, RunError> {
        let RunInput {
            pkt,
            ctx,
            mut state,
        } = input;
        let done = SCRATCH.try_with(|cell| {
            // Busy only for a nested run (from inside a helper), which then
            // gets a fresh scratch.
            let mut slot = cell.try_borrow_mut().ok()?;
            let scratch = slot.get_or_insert_with(JitScratch::new);
            Some(self.run_with(
                scratch,
                RunInput {
                    pkt: &mut *pkt,
                    ctx: &mut *ctx,
                    state: state.as_deref_mut(),
                },
            ))
        });
        match done {
            Ok(Some(r)) => r,
            // The thread-local is busy, or gone (the thread is exiting).
            _ => self.run_with(&mut JitScratch::new(), RunInput { pkt, ctx, state }),
        }
    }

    /// Runs the program on `input` using `scratch` for its stack.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    pub fn run_with(&self, scratch: &mut JitScratch, input: RunInput<'_>) -> Result<u64, RunError> {
        let n = &self.native;
        if n.slow {
            if n.lean {
                return self.run_ctx_lean(scratch, input);
            }
            return self.run_slow(scratch, input);
        }
        match jitcall::enter_mem(&n.entry, &mut scratch.state, input.pkt, n.budget) {
            Ok(r0) => Ok(r0),
            Err(e) => run_error(e),
        }
    }

    /// The packet window `input`'s context describes, checked to lie in
    /// `input.pkt`, after checking that the context is large enough.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn ctx_window(&self, input: &RunInput<'_>) -> Result<CtxWindow, RunError> {
        let n = &self.native;
        if input.ctx.len() < n.ctx_size {
            return Err(RunError::CtxTooSmall {
                len: input.ctx.len(),
                need: n.ctx_size,
            });
        }
        let (start, len) = n
            .window
            .read_window(input.pkt.as_ptr() as u64, input.pkt.len(), input.ctx)
            .map_err(|(data, data_end)| RunError::PacketWindow {
                data,
                data_end,
                len: input.pkt.len(),
            })?;
        Ok(CtxWindow {
            fields: n.window,
            start,
            len,
        })
    }

    /// `run_with` for a context-entry program that never touches the
    /// `VmCtx` (no helpers, guards, loops or local calls): the generated
    /// code reads and writes only the context and the packet window its
    /// proven accesses reach, so checking both is all the set-up it needs.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn run_ctx_lean(&self, scratch: &mut JitScratch, input: RunInput<'_>) -> Result<u64, RunError> {
        let n = &self.native;
        if self.abi().check(input.pkt, input.ctx).is_err() {
            // The general entry says what is wrong.
            return self.run_slow(scratch, input);
        }
        jitcall::enter_ctx_lean(&n.entry, &mut scratch.state, input.pkt, input.ctx, n.budget)
            .or_else(run_error)
    }

    /// `run_with` for programs that need set-up in Rust: a context and
    /// its packet window, or stack zeroing.
    #[cfg(target_arch = "x86_64")]
    #[inline(never)]
    fn run_slow(&self, scratch: &mut JitScratch, input: RunInput<'_>) -> Result<u64, RunError> {
        let n = &self.native;
        let entry = if n.ctx_entry {
            EntryArg::Ctx(self.ctx_window(&input)?)
        } else {
            EntryArg::MemLen
        };
        if n.stack_zero > 0 {
            zero_stack_top(&mut scratch.state, n.stack_zero);
        }
        jitcall::enter(
            &n.entry,
            &mut scratch.state,
            EnterArgs {
                pkt: input.pkt,
                ctx: input.ctx,
                entry,
                budget: n.budget,
                ctx_bounds: n.ctx_bounds,
                state: input.state,
                maps: &n._env.maps,
            },
        )
        .or_else(run_error)
    }

    /// Runs the program on `input` (the interpreter: no JIT on this target).
    #[cfg(not(target_arch = "x86_64"))]
    pub fn run_with(
        &self,
        _scratch: &mut JitScratch,
        input: RunInput<'_>,
    ) -> Result<u64, RunError> {
        super::interp::run(&self.prog, input)
    }

    /// Whether a run enters the code with no set-up beyond checking the
    /// context and its packet window (a context-entry program that uses no
    /// helpers, guards, loops, local calls or stack zeroing): for tests
    /// and statistics.
    pub fn lean_entry(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            self.native.lean
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Whether the program calls helpers (`true` where there is no JIT:
    /// unknown). Without helpers a context-entry program cannot move its
    /// packet window (`data` / `data_end` are read-only to programs).
    #[inline]
    pub fn calls_helpers(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            self.native.helper_calls
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            true
        }
    }

    /// The address of the program's first instruction (`None` where there
    /// is no JIT), for prefetching.
    #[inline]
    pub fn code_addr(&self) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        {
            Some(self.native.entry.body_addr())
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// The program's machine code (empty where there is no JIT).
    pub fn code(&self) -> &[u8] {
        #[cfg(target_arch = "x86_64")]
        {
            self.native.entry.body_code()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            &[]
        }
    }

    /// The executable arena holding the code (`None` where there is no JIT).
    pub fn arena(&self) -> Option<ArenaInfo> {
        #[cfg(target_arch = "x86_64")]
        {
            let a = self.native.entry.arena();
            Some(ArenaInfo {
                base: a.base_addr(),
                code_bytes: a.len(),
                mapped_bytes: a.mapped_bytes(),
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// All machine code of the arena this program lives in: every program
    /// compiled with it.
    pub fn arena_code(&self) -> &[u8] {
        #[cfg(target_arch = "x86_64")]
        {
            self.native.entry.arena().code()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            &[]
        }
    }
}

/// Zeroes the top `bytes` of the eBPF stack.
#[cfg(target_arch = "x86_64")]
#[cold]
fn zero_stack_top(state: &mut RunState, bytes: usize) {
    let stack = state.stack_mut();
    let from = stack.len().saturating_sub(bytes);
    if let Some(top) = stack.get_mut(from..) {
        top.fill(0);
    }
}

/// Converts an error exit of the code into the interpreter's error (or, for
/// a helper's `Exit`, its result).
#[cfg(target_arch = "x86_64")]
#[cold]
#[inline(never)]
fn run_error(raw: RawError) -> Result<u64, RunError> {
    let pc = raw.err_pc as usize;
    Err(match raw.status {
        status::HELPER_EXIT => return Ok(raw.err_a),
        status::OUT_OF_BOUNDS => RunError::OutOfBounds {
            pc,
            region: match raw.err_b as usize & 0xff {
                jitcall::REGION_STACK => Region::Stack,
                jitcall::REGION_CTX => Region::Ctx,
                jitcall::REGION_MAP => Region::Map((raw.err_b >> 16) as u32),
                _ => Region::Packet,
            },
            offset: raw.err_a as i64,
            size: (raw.err_b >> 8) as u8,
        },
        status::BUDGET => RunError::Budget { pc },
        status::CALL_DEPTH => RunError::CallDepth { pc },
        status::UNKNOWN_HELPER => RunError::UnknownHelper { pc, id: raw.err_a },
        _ => RunError::HelperFault {
            pc,
            id: raw.err_a as u32,
            reason: raw.fault.unwrap_or_default(),
        },
    })
}

/// Compiles one program into its own arena.
pub fn compile(prog: &Program) -> Result<JitProgram, JitError> {
    let mut v = compile_many(&[prog])?;
    v.pop()
        .ok_or_else(|| JitError::Assemble("no program came out of the batch".into()))
}

/// Compiles many programs into one shared executable arena (one mapping),
/// so each costs only its own code bytes. The result has
/// one [`JitProgram`] per input, in order.
#[cfg(target_arch = "x86_64")]
pub fn compile_many(progs: &[&Program]) -> Result<Vec<JitProgram>, JitError> {
    if progs.is_empty() {
        return Ok(Vec::new());
    }
    let mut a = x86::Asm::new(0);
    let mut parts = Vec::with_capacity(progs.len());
    for prog in progs {
        check_shape(prog)?;
        dynasmrt::DynasmApi::align(&mut a, 16, 0xcc);
        parts.push(x86::emit_program(&mut a, prog)?);
    }
    let code = a
        .finalize()
        .map_err(|e| JitError::Assemble(e.to_string()))?;
    let arena = ExecArena::seal(&code).map_err(|e| JitError::Map(e.to_string()))?;
    progs
        .iter()
        .zip(parts)
        .map(|(prog, part)| {
            let entry = ExecEntry::new(arena.clone(), part.body, part.len).ok_or_else(|| {
                JitError::Assemble(format!(
                    "program at {}+{} lies outside the {}-byte arena",
                    part.body,
                    part.len,
                    arena.len()
                ))
            })?;
            let (ctx_entry, window, ctx_size) = match &prog.env.entry {
                Entry::Ctx(l) => (true, l.window_fields(), l.size),
                Entry::MemLen => (false, WindowFields::default(), 0),
            };
            let stack_zero = stack_zero_bytes(prog);
            Ok(JitProgram {
                native: Native {
                    entry,
                    _env: prog.env.clone(),
                    ctx_entry,
                    slow: ctx_entry || stack_zero > 0 || part.ctx_bounds,
                    lean: ctx_entry
                        && stack_zero == 0
                        && !part.uses_vm
                        && window.start.is_some()
                        && window.end.is_some(),
                    window_offs: (window.start.unwrap_or(0), window.end.unwrap_or(0)),
                    helper_calls: part.helper_calls,
                    budget: prog.env.budget,
                    ctx_bounds: part.ctx_bounds,
                    window,
                    ctx_size,
                    stack_zero,
                },
            })
        })
        .collect()
}

/// Without a JIT for this architecture: programs run in the interpreter.
#[cfg(not(target_arch = "x86_64"))]
pub fn compile_many(progs: &[&Program]) -> Result<Vec<JitProgram>, JitError> {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        eprintln!(
            "flowswitch: no eBPF JIT for {}; programs run in the interpreter",
            std::env::consts::ARCH
        )
    });
    progs
        .iter()
        .map(|p| {
            check_shape(p)?;
            Ok(JitProgram { prog: (*p).clone() })
        })
        .collect()
}

/// Checks what code generation relies on: per-slot tables of the right
/// length, slot indices that fit the code's 32-bit immediates, and no way to
/// run past the end.
fn check_shape(prog: &Program) -> Result<(), JitError> {
    let slots = prog.insns.len();
    if prog.ops.len() != slots || prog.access.len() != slots || prog.callx.len() != slots {
        return Err(JitError::Shape {
            slots,
            ops: prog.ops.len(),
            access: prog.access.len(),
            callx: prog.callx.len(),
        });
    }
    if slots > i32::MAX as usize {
        return Err(JitError::TooLarge(slots));
    }
    let last = prog
        .ops
        .iter()
        .enumerate()
        .rev()
        .find_map(|(pc, op)| op.map(|op| (pc, op)));
    match last {
        None => Err(JitError::Empty),
        Some((_, Op::Exit | Op::Ja { .. })) => Ok(()),
        Some((pc, _)) => Err(JitError::FallsOffEnd { pc }),
    }
}

/// How many bytes at the top of the eBPF stack a run must zero so the
/// program sees the same (zeroed) stack the interpreter gives it. Programs
/// that never touch the stack need none; programs whose stack accesses are
/// all proven, r10-relative and without local calls need only the lowest
/// offset they use; anything else gets the whole stack.
#[cfg(target_arch = "x86_64")]
fn stack_zero_bytes(prog: &Program) -> usize {
    let mut lowest: i64 = 0;
    let mut any = false;
    let mut whole = false;
    for (op, acc) in prog.ops.iter().zip(&prog.access) {
        let Some(op) = op else { continue };
        let (base, off, size) = match *op {
            Op::CallLocal { .. } => {
                whole = true;
                continue;
            }
            Op::Ldx { src, off, size, .. } => (src, off, size),
            Op::St { dst, off, size, .. }
            | Op::Stx { dst, off, size, .. }
            | Op::Atomic { dst, off, size, .. } => (dst, off, size),
            _ => continue,
        };
        let Some(acc) = acc else { continue };
        if acc.region != Region::Stack {
            continue;
        }
        any = true;
        let (off, end) = (i64::from(off), i64::from(off) + i64::from(size));
        if acc.guard {
            whole = true;
        } else if base != R10 {
            // Proven inside the current frame, somewhere.
            lowest = -(STACK_SIZE as i64);
        } else if end > 0 || off < -(STACK_SIZE as i64) {
            whole = true;
        } else {
            lowest = lowest.min(off);
        }
    }
    if !any {
        0
    } else if whole {
        STACK_TOTAL
    } else {
        (-lowest) as usize
    }
}
