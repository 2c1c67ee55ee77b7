//! Entering JIT-compiled eBPF code, and the trampoline through which that
//! code calls helpers.
//!
//! A compiled program body is a function
//! `extern "sysv64" fn(r1, r2, vm: *mut VmCtx, fp, budget) -> u64` returning
//! r0: r1 and r2 arrive where eBPF keeps them (rdi, rsi), `fp` is the initial
//! r10 and `budget` the run-time budget. The body saves the callee-saved
//! registers it uses, keeps the `VmCtx` pointer in r12 and the remaining
//! budget in r9. eBPF r0..r10 live in rax, rdi, rsi, rdx, rcx, r8, rbx, r13,
//! r14, r15, rbp; r10 and r11 are scratch.
//!
//! Errors: the body stores the instruction index and details into the
//! `VmCtx`, sets `status` and returns; [`enter`] turns that into a
//! [`RawError`] and resets `status`, so it is `OK` whenever a run starts.
//!
//! A helper call passes r1..r5 in the SysV argument registers they already
//! occupy and the `VmCtx` in r9 (the sixth argument); the budget is parked in
//! `VmCtx.budget` around it. The code names the helper by storing its
//! function pointer and id in `pending` / `pending_id` (both fixed when the
//! program was compiled), or, for a `callx` resolved at run time, 0 and the
//! id, with the registry's address in `registry`.
//!
//! The code also stores 1 in `changes` before calling a helper flagged
//! `changes_packet`.
//!
//! The `VmCtx` and the eBPF stack live together in a [`RunState`], allocated
//! once and reused by every run on it. Region bounds: the stack's are fixed
//! when the state is made; the packet's are stored by the program's own
//! prologue for [`EntryArg::MemLen`] programs (it gets the packet in r1/r2);
//! [`enter`] stores the context's, and for [`EntryArg::Ctx`] programs the
//! packet window's (the region guarded accesses check) and the whole packet
//! buffer's (what helpers get). After a helper the trampoline checks the
//! window: a `changes_packet` helper's new window is read from the context,
//! checked to lie in the buffer and becomes the Packet region; any other
//! helper must have left it alone. The layout of [`VmCtx`] is shared with
//! the code generator through the offsets in [`off`].

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::exec::{CodeRef, ExecEntry};
use crate::ebpf::helpers::{HelperCtx, HelperExit, HelperFn, HelperRegistry};
use crate::ebpf::maps::Maps;
use crate::ebpf::vm::{window_fault, WindowFields, STACK_TOTAL, UNFLAGGED_WINDOW_CHANGE};

/// Status values the generated code and the trampoline store in `VmCtx.status`.
pub mod status {
    /// The program returned normally.
    pub const OK: u64 = 0;
    /// A guarded access failed: `err_a` = offset, `err_b` = region | size << 8.
    pub const OUT_OF_BOUNDS: u64 = 1;
    pub const BUDGET: u64 = 2;
    pub const CALL_DEPTH: u64 = 3;
    /// `err_a` = the helper id that was asked for.
    pub const UNKNOWN_HELPER: u64 = 4;
    /// `err_a` = helper id; the reason is in `RawError::fault`.
    pub const HELPER_FAULT: u64 = 5;
    /// A helper ended the program with `HelperExit::Exit`: r0 = `err_a`.
    pub const HELPER_EXIT: u64 = 6;
}

/// Index of each region's bounds in `VmCtx.regions`.
pub const REGION_STACK: usize = 0;
pub const REGION_CTX: usize = 1;
pub const REGION_PACKET: usize = 2;
/// Region code of map values in out-of-bounds errors (they have no bounds
/// in the `VmCtx`: the code compares with the map's fixed bounds).
pub const REGION_MAP: usize = 3;

/// `VmCtx.pending` value meaning "look `pending_id` up in `registry`".
pub const PENDING_DYNAMIC: u64 = 0;

/// Bounds of one memory region as the generated code checks them.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct RegionBounds {
    /// Address of the first byte.
    pub start: u64,
    pub len: u64,
    /// For access sizes 1, 2, 4, 8: `(len + 1).saturating_sub(size)`. An
    /// access at offset `o` (address - start, unsigned) is in bounds iff
    /// `o < lim[size]`.
    pub lim: [u64; 4],
}

impl RegionBounds {
    #[inline]
    fn set(&mut self, start: u64, len: usize) {
        let len = len as u64;
        let lim = |size: u64| (len + 1).saturating_sub(size);
        *self = RegionBounds {
            start,
            len,
            lim: [lim(1), lim(2), lim(4), lim(8)],
        };
    }
}

/// State shared between [`enter`], the generated code and the helper
/// trampoline. Addresses are stored as integers: they are only meaningful
/// during the run that set them.
#[repr(C)]
#[derive(Debug, Default)]
pub struct VmCtx {
    regions: [RegionBounds; 3],
    /// The budget while a helper runs (the code keeps it in r9 otherwise).
    budget: u64,
    /// A local call is refused when the native stack pointer is at or below this.
    call_limit: u64,
    /// Native stack pointer inside the body at depth 0 (it points at the
    /// return address into the prologue): error exits restore it and `ret`.
    entry_rsp: u64,
    status: u64,
    err_pc: u64,
    err_a: u64,
    err_b: u64,
    /// The helper being called: its `HelperFn` as an address, or
    /// [`PENDING_DYNAMIC`].
    pending: u64,
    /// Its id (for a dynamic call, the value of the `callx` register).
    pending_id: u64,
    /// `*const HelperRegistry`, for dynamic calls.
    registry: u64,
    /// Non-zero: the helper being called is flagged `changes_packet`.
    changes: u64,
    fault: Option<String>,
    /// `Entry::Ctx` runs: the whole packet buffer (the helpers' `pkt`) and
    /// where the context keeps the window. `None` for `MemLen` runs.
    window: Option<(WindowFields, RegionBounds)>,
    /// `RunInput.state` of the current run, for the helpers.
    state: Option<StatePtr>,
    /// `*const Maps` of the running program's environment (0: none).
    maps: usize,
}

/// The per-run state's address while a run is in progress.
#[derive(Debug, Clone, Copy)]
struct StatePtr(*mut dyn Any);

// SAFETY: a `StatePtr` is stored only by `enter`, for the duration of one
// run on the calling thread, and cleared before `enter` returns; a
// `RunState` moved to another thread never carries one, so the pointer is
// never dereferenced off the thread that borrowed the state.
unsafe impl Send for StatePtr {}

/// Byte offsets of `VmCtx` fields, for the code generator.
pub mod off {
    use super::{RegionBounds, VmCtx};
    use std::mem::{offset_of, size_of};

    const fn i(v: usize) -> i32 {
        v as i32
    }
    /// Offset of region `r`'s start address.
    pub const fn region_start(r: usize) -> i32 {
        i(offset_of!(VmCtx, regions)
            + r * size_of::<RegionBounds>()
            + offset_of!(RegionBounds, start))
    }
    /// Offset of region `r`'s limit for access size index `k` (1, 2, 4, 8 → 0..3).
    pub const fn region_lim(r: usize, k: usize) -> i32 {
        i(offset_of!(VmCtx, regions)
            + r * size_of::<RegionBounds>()
            + offset_of!(RegionBounds, lim)
            + k * 8)
    }
    pub const BUDGET: i32 = i(offset_of!(VmCtx, budget));
    pub const CALL_LIMIT: i32 = i(offset_of!(VmCtx, call_limit));
    pub const ENTRY_RSP: i32 = i(offset_of!(VmCtx, entry_rsp));
    pub const STATUS: i32 = i(offset_of!(VmCtx, status));
    pub const ERR_PC: i32 = i(offset_of!(VmCtx, err_pc));
    pub const ERR_A: i32 = i(offset_of!(VmCtx, err_a));
    pub const ERR_B: i32 = i(offset_of!(VmCtx, err_b));
    pub const PENDING: i32 = i(offset_of!(VmCtx, pending));
    pub const PENDING_ID: i32 = i(offset_of!(VmCtx, pending_id));
    pub const REGISTRY: i32 = i(offset_of!(VmCtx, registry));
    pub const CHANGES: i32 = i(offset_of!(VmCtx, changes));
    /// Offset of region `r`'s length.
    pub const fn region_len(r: usize) -> i32 {
        i(offset_of!(VmCtx, regions)
            + r * size_of::<RegionBounds>()
            + offset_of!(RegionBounds, len))
    }
}

/// The eBPF stack: all frames, 16-byte aligned.
#[repr(C, align(16))]
struct StackBuf([u8; STACK_TOTAL]);

/// Everything a run works in besides the program and its input: the
/// `VmCtx` and the eBPF stack. One per thread, reused across runs.
#[repr(C)]
pub struct RunState {
    vm: VmCtx,
    stack: StackBuf,
}

impl RunState {
    pub fn new() -> Box<RunState> {
        let mut st = Box::new(RunState {
            vm: VmCtx::default(),
            stack: StackBuf([0; STACK_TOTAL]),
        });
        let start = st.stack.0.as_ptr() as u64;
        st.vm.regions[REGION_STACK].set(start, STACK_TOTAL);
        st
    }

    /// The eBPF stack (frame k is `[STACK_TOTAL - (k+1)*512, STACK_TOTAL - k*512)`).
    pub fn stack_mut(&mut self) -> &mut [u8; STACK_TOTAL] {
        &mut self.stack.0
    }
}

/// The packet window of an [`EntryArg::Ctx`] run, checked by the caller
/// to lie in the packet buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtxWindow {
    pub fields: WindowFields,
    /// Offset of the window in the buffer, and its length.
    pub start: usize,
    pub len: usize,
}

/// What r1 holds at entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryArg {
    /// r1 = packet start, r2 = packet length.
    MemLen,
    /// r1 = context start, r2 = 0; the Packet region is this window of
    /// the packet buffer.
    Ctx(CtxWindow),
}

/// Everything one run needs besides the code and the [`RunState`].
pub struct EnterArgs<'a> {
    pub pkt: &'a mut [u8],
    pub ctx: &'a mut [u8],
    pub entry: EntryArg,
    pub budget: u64,
    /// Store the context's bounds (a `MemLen` program that calls helpers or
    /// has guarded context accesses); `Ctx` programs always get them.
    pub ctx_bounds: bool,
    /// For the helpers.
    pub state: Option<&'a mut dyn Any>,
    /// The program's maps, for the helpers.
    pub maps: &'a Maps,
}

/// How a run that did not return normally ended, as the generated code and
/// the trampoline reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawError {
    /// One of [`status`], not `OK`.
    pub status: u64,
    pub err_pc: u64,
    pub err_a: u64,
    pub err_b: u64,
    pub fault: Option<String>,
}

/// Runs a compiled program to completion and returns r0.
///
/// `entry` comes from the JIT, which is the only code able to create an
/// [`ExecEntry`]: its body follows the contract in the module documentation.
#[inline]
pub fn enter(entry: &ExecEntry, st: &mut RunState, args: EnterArgs<'_>) -> Result<u64, RawError> {
    let ctx_start = args.ctx.as_mut_ptr() as u64;
    let pkt_start = args.pkt.as_mut_ptr() as u64;
    let (r1, r2) = match args.entry {
        EntryArg::MemLen => {
            st.vm.window = None;
            if args.ctx_bounds {
                st.vm.regions[REGION_CTX].set(ctx_start, args.ctx.len());
            }
            (pkt_start, args.pkt.len() as u64)
        }
        EntryArg::Ctx(w) => {
            // Within the buffer: checked by the caller.
            let win_start = pkt_start.wrapping_add(w.start as u64);
            st.vm.regions[REGION_PACKET].set(win_start, w.len.min(args.pkt.len()));
            let mut buf = RegionBounds::default();
            buf.set(pkt_start, args.pkt.len());
            st.vm.window = Some((w.fields, buf));
            st.vm.regions[REGION_CTX].set(ctx_start, args.ctx.len());
            (ctx_start, 0)
        }
    };
    st.vm.state = args.state.map(|s| StatePtr(s as *mut dyn Any));
    st.vm.maps = args.maps as *const Maps as usize;
    let r = call(entry.body_addr(), st, r1, r2, args.budget);
    st.vm.state = None;
    r
}

/// [`enter`] for a [`EntryArg::MemLen`] program that does not need the
/// context's bounds: the fast path.
#[inline]
pub fn enter_mem(
    entry: &ExecEntry,
    st: &mut RunState,
    pkt: &mut [u8],
    budget: u64,
) -> Result<u64, RawError> {
    call(
        entry.body_addr(),
        st,
        pkt.as_mut_ptr() as u64,
        pkt.len() as u64,
        budget,
    )
}

/// [`enter`] for an [`EntryArg::Ctx`] program whose code never reads or
/// writes the `VmCtx` (the JIT found no helper call, guarded access, back
/// edge or local call in it): r1 = the context, nothing stored. The caller
/// has checked that `ctx` is as large as the program's context layout and
/// that the window it describes lies in `pkt`; both stay borrowed for the
/// run.
#[inline]
pub fn enter_ctx_lean(
    entry: &ExecEntry,
    st: &mut RunState,
    pkt: &mut [u8],
    ctx: &mut [u8],
    budget: u64,
) -> Result<u64, RawError> {
    let _ = pkt;
    call(entry.body_addr(), st, ctx.as_mut_ptr() as u64, 0, budget)
}

/// [`enter_ctx_lean`] for a body of a [`CodeTable`](super::exec::CodeTable) (the same contract:
/// the caller has checked the context's size and its packet window against
/// that program's layout).
#[inline(always)]
pub fn enter_ref_ctx_lean(
    code: CodeRef<'_>,
    st: &mut RunState,
    pkt: &mut [u8],
    ctx: &mut [u8],
    budget: u64,
) -> Result<u64, RawError> {
    let _ = pkt;
    call(code.body_addr(), st, ctx.as_mut_ptr() as u64, 0, budget)
}

/// Calls the body at `body`, which the caller's borrowed [`ExecEntry`] or
/// [`CodeTable`](super::exec::CodeTable) keeps alive.
#[inline(always)]
fn call(body: usize, st: &mut RunState, r1: u64, r2: u64, budget: u64) -> Result<u64, RawError> {
    let fp = st.stack.0.as_mut_ptr() as u64 + STACK_TOTAL as u64;
    let vm = &mut st.vm;
    type BodyFn = extern "sysv64" fn(u64, u64, *mut VmCtx, u64, u64) -> u64;
    // `body` is the start of a program body inside a sealed read+execute
    // arena that the caller's `ExecEntry`, or the `CodeTable` (only made
    // from `ExecEntry`s) its `CodeRef` borrows, keeps alive for this call;
    // the JIT generated it with exactly this signature and calling
    // convention.
    // SAFETY: by the reasons just given.
    let f: BodyFn = unsafe { std::mem::transmute::<usize, BodyFn>(body) };
    // The generated code touches only: the VmCtx (through the pointer passed
    // here), the stack, packet and context buffers (through addresses derived
    // from the exclusively borrowed slices the callers of `call` hold and
    // from `st`, every access either proven in bounds by the verifier or
    // checked against `vm.regions`), and its own native stack frames. It
    // reaches Rust only through `helper_trampoline`.
    let r0 = f(r1, r2, std::ptr::addr_of_mut!(*vm), fp, budget);
    if vm.status != status::OK {
        return Err(take_error(vm));
    }
    Ok(r0)
}

/// Takes the error the code reported and resets `status` for the next run.
#[cold]
#[inline(never)]
fn take_error(vm: &mut VmCtx) -> RawError {
    let e = RawError {
        status: vm.status,
        err_pc: vm.err_pc,
        err_a: vm.err_a,
        err_b: vm.err_b,
        fault: vm.fault.take(),
    };
    vm.status = status::OK;
    e
}

/// The bytes of a region as a slice.
///
/// # Safety
/// `r.start` must point to `r.len` bytes, valid and otherwise unreferenced
/// for the returned lifetime, unless `r.len` is 0.
unsafe fn region_slice<'a>(r: RegionBounds) -> &'a mut [u8] {
    if r.len == 0 {
        return &mut [];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts_mut(r.start as *mut u8, r.len as usize) }
}

/// Address of the helper trampoline, for the code generator.
pub fn helper_trampoline_addr() -> u64 {
    helper_trampoline as *const () as usize as u64
}

/// Called by generated code for every helper call: r1..r5 arrive as the
/// first five arguments, the `VmCtx` pointer (r12) as the sixth. Returns r0.
/// Failures are reported through `status`; the generated code checks it
/// right after the call.
extern "sysv64" fn helper_trampoline(
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    vm: *mut VmCtx,
) -> u64 {
    // Generated code passes the pointer `enter` handed to it; that
    // VmCtx is borrowed mutably by `enter`, which is below us on the stack,
    // and nothing else references it while this function runs (the
    // generated code is suspended in the call).
    // SAFETY: by the reasons just given.
    let vm = unsafe { &mut *vm };
    let found = if vm.pending == PENDING_DYNAMIC {
        // For a dynamic call the code stored the address of the
        // program's `HelperRegistry`, which the `JitProgram` running (and
        // borrowed by our caller for the whole run) keeps alive.
        // SAFETY: by the reasons just given.
        let registry = unsafe { &*(vm.registry as *const HelperRegistry) };
        u32::try_from(vm.pending_id)
            .ok()
            .and_then(|id| registry.get(id))
            .map(|h| {
                vm.changes |= u64::from(h.changes_packet);
                (h.id, h.func)
            })
    } else {
        // A non-zero `pending` is always the address of a `HelperFn`
        // the JIT took from the registry at compile time and wrote into the
        // code as an immediate; `HelperFn` is a plain function pointer.
        // SAFETY: by the reasons just given.
        let func = unsafe { std::mem::transmute::<usize, HelperFn>(vm.pending as usize) };
        Some((vm.pending_id as u32, func))
    };
    let Some((id, func)) = found else {
        vm.changes = 0;
        vm.status = status::UNKNOWN_HELPER;
        vm.err_a = vm.pending_id;
        return 0;
    };
    vm.err_a = u64::from(id);
    let changes = std::mem::take(&mut vm.changes) != 0;
    // The helpers' `pkt` is the whole buffer: the packet region for
    // `MemLen` runs, the buffer around the window for `Ctx` runs.
    let buf = match vm.window {
        Some((_, buf)) => buf,
        None => vm.regions[REGION_PACKET],
    };
    let ctx = vm.regions[REGION_CTX];
    // The buffer's and the context's bounds were stored for this
    // run (the packet's by the program's prologue from r1/r2 or by `enter`,
    // the rest by `enter`) from exclusively borrowed slices, pointer and
    // length, that outlive this call; the generated code is suspended, so
    // these are the only live references to the buffers, and they are
    // dropped before we return to it. Empty regions become empty slices
    // without touching their start.
    // SAFETY: by the reasons just given.
    let (pkt, ctx) = unsafe { (region_slice(buf), region_slice(ctx)) };
    let before = vm.window.map(|(w, _)| w.raw(ctx));
    // `enter` stored the exclusively borrowed `RunInput.state` of
    // this run (and clears it when the run ends); nothing else references
    // it while the generated code is suspended in this call.
    // SAFETY: by the reasons just given.
    let state = vm.state.map(|p| unsafe { &mut *p.0 });
    static NO_MAPS: Maps = Maps::empty();
    let maps = if vm.maps == 0 {
        &NO_MAPS
    } else {
        // SAFETY: `enter` stored the address of the running program's
        // `Maps`, borrowed for the whole of `enter`.
        unsafe { &*(vm.maps as *const Maps) }
    };
    // The stack's bounds are fixed when the `RunState` is made and
    // describe its own stack buffer; the generated code is suspended, so
    // nothing writes it while the helper reads it.
    // SAFETY: by the reasons just given.
    let stack = unsafe { region_slice(vm.regions[REGION_STACK]) };
    let mut hctx = HelperCtx {
        pkt,
        ctx,
        state,
        stack,
        maps,
    };
    // A panic must not unwind into generated code (it has no unwind tables):
    // it becomes a helper fault.
    let result = catch_unwind(AssertUnwindSafe(|| func(&mut hctx, [a1, a2, a3, a4, a5])));
    if let (Some((w, buf)), Some(before)) = (vm.window, before) {
        let reason = if changes {
            match w.read_window(buf.start, buf.len as usize, hctx.ctx) {
                Ok((start, len)) => {
                    vm.regions[REGION_PACKET].set(buf.start.wrapping_add(start as u64), len);
                    None
                }
                Err((data, data_end)) => Some(window_fault(data, data_end, buf.len as usize)),
            }
        } else if w.raw(hctx.ctx) != before {
            Some(UNFLAGGED_WINDOW_CHANGE.to_string())
        } else {
            None
        };
        if let Some(reason) = reason {
            vm.status = status::HELPER_FAULT;
            vm.fault = Some(reason);
            return 0;
        }
    }
    match result {
        Ok(Ok(v)) => v,
        Ok(Err(HelperExit::Exit(v))) => {
            vm.status = status::HELPER_EXIT;
            vm.err_a = v;
            v
        }
        Ok(Err(HelperExit::Fault(reason))) => {
            vm.status = status::HELPER_FAULT;
            vm.fault = Some(reason);
            0
        }
        Err(_) => {
            vm.status = status::HELPER_FAULT;
            vm.fault = Some("helper panicked".to_string());
            0
        }
    }
}
