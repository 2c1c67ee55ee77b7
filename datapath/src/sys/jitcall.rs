//! Entering JIT-compiled eBPF code, and the trampoline through which that
//! code calls helpers.
//!
//! The JIT (`crate::ebpf::jit`) generates, per arena, an *entry routine* and,
//! per program, a *body*. [`enter`] fills a [`VmCtx`] on its own stack and
//! calls the entry routine as `extern "sysv64" fn(*mut VmCtx, body) -> u64`.
//! The routine saves the callee-saved registers, loads the eBPF registers from
//! the `VmCtx`, records the native stack pointer (for error exits and the call
//! depth limit) and calls the body; the body's final `exit` returns r0 to it.
//! Errors are reported by the body storing a status, the instruction index and
//! details into the `VmCtx` and unwinding to the recorded stack pointer.
//!
//! Register use of the generated code: eBPF r0..r10 live in rax, rdi, rsi,
//! rdx, rcx, r8, rbx, r13, r14, r15, rbp; r12 holds the `VmCtx` pointer; r9,
//! r10 and r11 are scratch. A helper call passes r1..r5 in the SysV argument
//! registers they already occupy and the `VmCtx` in r9 (the sixth argument).
//!
//! The layout of [`VmCtx`] is shared with the code generator through the
//! offsets in [`off`].

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::exec::ExecEntry;
use crate::ebpf::helpers::{HelperCtx, HelperExit, HelperFn, HelperRegistry};
use crate::ebpf::vm::STACK_TOTAL;

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
    /// `err_a` = helper id; the reason is in `RawExit::fault`.
    pub const HELPER_FAULT: u64 = 5;
    /// A helper ended the program with `HelperExit::Exit`: r0 = `exit_value`.
    pub const HELPER_EXIT: u64 = 6;
}

/// Index of each region's bounds in `VmCtx.regions`.
pub const REGION_STACK: usize = 0;
pub const REGION_CTX: usize = 1;
pub const REGION_PACKET: usize = 2;

/// `VmCtx.pending` value meaning "look the helper id up at run time".
pub const PENDING_DYNAMIC: u64 = u64::MAX;

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
    fn new(start: u64, len: usize) -> Self {
        let len = len as u64;
        let lim = |size: u64| (len + 1).saturating_sub(size);
        RegionBounds {
            start,
            len,
            lim: [lim(1), lim(2), lim(4), lim(8)],
        }
    }
}

/// Per-run state shared between [`enter`], the generated code and the
/// helper trampoline. Lives on `enter`'s stack for one run.
#[repr(C)]
pub struct VmCtx {
    regions: [RegionBounds; 3],
    /// Remaining budget (back edges and local calls).
    budget: u64,
    /// A local call is refused when the native stack pointer is at or below this.
    call_limit: u64,
    /// Native stack pointer inside the body at depth 0 (it points at the
    /// return address into the entry routine): error exits restore it and `ret`.
    entry_rsp: u64,
    status: u64,
    err_pc: u64,
    err_a: u64,
    err_b: u64,
    /// Initial r1, r2, r10.
    r1: u64,
    r2: u64,
    fp: u64,
    /// Index into `helpers` of the helper being called, or [`PENDING_DYNAMIC`].
    pending: u64,
    /// Helper id for a dynamic call.
    pending_id: u64,
    exit_value: u64,
    helpers: *const (u32, HelperFn),
    helpers_len: usize,
    registry: *const HelperRegistry,
    fault: Option<String>,
}

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
    pub const R1: i32 = i(offset_of!(VmCtx, r1));
    pub const R2: i32 = i(offset_of!(VmCtx, r2));
    pub const FP: i32 = i(offset_of!(VmCtx, fp));
    pub const PENDING: i32 = i(offset_of!(VmCtx, pending));
    pub const PENDING_ID: i32 = i(offset_of!(VmCtx, pending_id));
}

/// What r1 holds at entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryArg {
    /// r1 = packet start, r2 = packet length.
    MemLen,
    /// r1 = context start, r2 = 0.
    Ctx,
}

/// Everything one run needs besides the code.
pub struct EnterArgs<'a> {
    /// The eBPF stack (all frames); r10 starts at its end.
    pub stack: &'a mut [u64; STACK_TOTAL / 8],
    pub pkt: &'a mut [u8],
    pub ctx: &'a mut [u8],
    pub entry: EntryArg,
    pub budget: u64,
    /// Helpers called by a fixed id, indexed by the value the code stores in
    /// `pending`.
    pub helpers: &'a [(u32, HelperFn)],
    /// For calls whose id is only known at run time.
    pub registry: &'a HelperRegistry,
}

/// How a run ended, as the generated code and trampoline reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawExit {
    /// r0 when the body returned (meaningless after an error exit).
    pub r0: u64,
    /// One of [`status`].
    pub status: u64,
    pub err_pc: u64,
    pub err_a: u64,
    pub err_b: u64,
    pub exit_value: u64,
    pub fault: Option<String>,
}

/// Runs a compiled program to completion.
///
/// `entry` comes from the JIT, which is the only code able to create an
/// [`ExecEntry`]: its entry routine and body follow the contract in the
/// module documentation.
pub fn enter(entry: &ExecEntry, args: EnterArgs<'_>) -> RawExit {
    let stack_ptr = args.stack.as_mut_ptr().cast::<u8>();
    let stack_start = stack_ptr as u64;
    let pkt_ptr = args.pkt.as_mut_ptr();
    let ctx_ptr = args.ctx.as_mut_ptr();
    let (r1, r2) = match args.entry {
        EntryArg::MemLen => (pkt_ptr as u64, args.pkt.len() as u64),
        EntryArg::Ctx => (ctx_ptr as u64, 0),
    };
    let mut vm = VmCtx {
        regions: [
            RegionBounds::new(stack_start, STACK_TOTAL),
            RegionBounds::new(ctx_ptr as u64, args.ctx.len()),
            RegionBounds::new(pkt_ptr as u64, args.pkt.len()),
        ],
        budget: args.budget,
        call_limit: 0,
        entry_rsp: 0,
        status: status::OK,
        err_pc: 0,
        err_a: 0,
        err_b: 0,
        r1,
        r2,
        fp: stack_start + STACK_TOTAL as u64,
        pending: 0,
        pending_id: 0,
        exit_value: 0,
        helpers: args.helpers.as_ptr(),
        helpers_len: args.helpers.len(),
        registry: args.registry as *const HelperRegistry,
        fault: None,
    };
    type EntryFn = extern "sysv64" fn(*mut VmCtx, u64) -> u64;
    // SAFETY: `stub_addr` is the address of the entry routine inside a sealed
    // read+execute arena that `entry` keeps alive for this call; the JIT
    // generated it with exactly this signature and calling convention.
    let f: EntryFn = unsafe { std::mem::transmute::<usize, EntryFn>(entry.stub_addr()) };
    // The generated code touches only: the VmCtx (through the pointer passed
    // here), the stack, packet and context buffers (through addresses derived
    // from the exclusively borrowed slices above, every access either proven
    // in bounds by the verifier or checked against `vm.regions`), and its own
    // native stack frames. It reaches Rust only through `helper_trampoline`.
    let r0 = f(std::ptr::addr_of_mut!(vm), entry.body_addr() as u64);
    RawExit {
        r0,
        status: vm.status,
        err_pc: vm.err_pc,
        err_a: vm.err_a,
        err_b: vm.err_b,
        exit_value: vm.exit_value,
        fault: vm.fault.take(),
    }
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
    // SAFETY: generated code passes the pointer `enter` handed to it; that
    // VmCtx lives in `enter`'s frame, which is below us on the stack, and
    // nothing else references it while this function runs (the generated
    // code is suspended in the call).
    let vm = unsafe { &mut *vm };
    let found = if vm.pending == PENDING_DYNAMIC {
        // SAFETY: `registry` comes from the `&HelperRegistry` in `EnterArgs`,
        // borrowed for the whole of `enter`.
        let registry = unsafe { &*vm.registry };
        u32::try_from(vm.pending_id)
            .ok()
            .and_then(|id| registry.get(id))
            .map(|h| (h.id, h.func))
    } else {
        // SAFETY: `helpers`/`helpers_len` come from the slice in `EnterArgs`,
        // borrowed for the whole of `enter`.
        let table = unsafe { std::slice::from_raw_parts(vm.helpers, vm.helpers_len) };
        usize::try_from(vm.pending)
            .ok()
            .and_then(|i| table.get(i))
            .copied()
    };
    let Some((id, func)) = found else {
        vm.status = status::UNKNOWN_HELPER;
        vm.err_a = if vm.pending == PENDING_DYNAMIC {
            vm.pending_id
        } else {
            vm.pending
        };
        return 0;
    };
    vm.err_a = u64::from(id);
    let pkt = &vm.regions[REGION_PACKET];
    let ctx = &vm.regions[REGION_CTX];
    // SAFETY: both regions were set by `enter` from exclusively borrowed
    // slices (pointer and length) that outlive this call; the generated code
    // is suspended, so these are the only live references to the buffers,
    // and they are dropped before we return to it.
    let mut hctx = unsafe {
        HelperCtx {
            pkt: std::slice::from_raw_parts_mut(pkt.start as *mut u8, pkt.len as usize),
            ctx: std::slice::from_raw_parts_mut(ctx.start as *mut u8, ctx.len as usize),
        }
    };
    // A panic must not unwind into generated code (it has no unwind tables):
    // it becomes a helper fault.
    let result = catch_unwind(AssertUnwindSafe(|| func(&mut hctx, [a1, a2, a3, a4, a5])));
    match result {
        Ok(Ok(v)) => v,
        Ok(Err(HelperExit::Exit(v))) => {
            vm.status = status::HELPER_EXIT;
            vm.exit_value = v;
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
