//! What both execution engines share: the program environment (what r1 and r2
//! hold at entry), the memory regions a program may touch, run-time limits and
//! the run-time error type.
//!
//! The interpreter and the JIT must agree exactly on everything here: the
//! differential tests compare `Result<u64, RunError>` from both engines with
//! `==`, so errors carry only engine-independent facts (instruction index,
//! region and offset into it), never host addresses.

use thiserror::Error;

use super::insn::STACK_SIZE;

/// Deepest nesting of bpf-to-bpf calls, the entry frame included.
pub const MAX_CALL_DEPTH: usize = 8;
/// Bytes of eBPF stack an engine reserves: one frame per call level.
pub const STACK_TOTAL: usize = STACK_SIZE * MAX_CALL_DEPTH;
/// Default run-time budget: taken backward jumps plus local calls.
pub const DEFAULT_BUDGET: u64 = 1 << 24;

/// Memory regions a pointer can refer to. The verifier gives every load,
/// store and atomic the region its base register points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Region {
    /// The eBPF stack (all frames; `r10` points at the top of the current one).
    Stack,
    /// The context structure r1 points to (see [`CtxLayout`]).
    Ctx,
    /// Packet or plain memory: `[start, start + len)` known only at run time.
    Packet,
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Region::Stack => "stack",
            Region::Ctx => "ctx",
            Region::Packet => "packet",
        })
    }
}

/// What the verifier concluded about one memory access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemAccess {
    pub region: Region,
    /// `true`: the access could not be proven in bounds, so engines must check
    /// it at run time against the region's bounds. `false`: proven; the JIT
    /// emits no check (the interpreter checks every access regardless).
    pub guard: bool,
}

/// The kind of a field of the context structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtxField {
    /// A read-only number.
    Scalar,
    /// A number the program may also write.
    ScalarRw,
    /// 8 bytes: address of the first packet byte (read-only).
    PacketStart,
    /// 8 bytes: address one past the last packet byte (read-only).
    PacketEnd,
}

/// Layout of the context structure: `(offset, size, kind)` for each field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CtxLayout {
    pub size: usize,
    pub fields: Vec<(usize, usize, CtxField)>,
}

/// What a program receives at entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// r1 = start of the packet/memory region, r2 = its length
    /// (the bpf_conformance convention).
    MemLen,
    /// r1 = pointer to a context structure with this layout.
    Ctx(CtxLayout),
}

/// Errors that stop a running program. Both engines produce identical values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RunError {
    #[error("insn {pc}: {size}-byte access at {region}{offset:+} is out of bounds")]
    OutOfBounds {
        pc: usize,
        region: Region,
        /// Address minus the region's start.
        offset: i64,
        size: u8,
    },
    #[error("insn {pc}: instruction budget exhausted (loop or call limit)")]
    Budget { pc: usize },
    #[error("insn {pc}: call depth exceeds {MAX_CALL_DEPTH} frames")]
    CallDepth { pc: usize },
    #[error("insn {pc}: callx to unknown helper {id}")]
    UnknownHelper { pc: usize, id: u64 },
    #[error("insn {pc}: helper {id} failed: {reason}")]
    HelperFault { pc: usize, id: u32, reason: String },
    /// The program breaks an invariant the verifier guarantees (a jump or
    /// call outside the program, a missing access fact, a register number
    /// above r10, ...). Never happens for a [`super::Program`] the verifier
    /// built; engines report it instead of misbehaving.
    #[error("insn {pc}: invalid program: {reason}")]
    InvalidProgram { pc: usize, reason: &'static str },
}

/// Memory a program runs against. `pkt` is the Packet region; `ctx` is the
/// context structure for [`Entry::Ctx`] programs (empty for [`Entry::MemLen`]).
pub struct RunInput<'a> {
    pub pkt: &'a mut [u8],
    pub ctx: &'a mut [u8],
}

impl<'a> RunInput<'a> {
    /// Input for a [`Entry::MemLen`] program.
    pub fn mem(pkt: &'a mut [u8]) -> Self {
        RunInput { pkt, ctx: &mut [] }
    }
}

/// Writes the packet's start and end addresses into the context fields the
/// layout marks as [`CtxField::PacketStart`] / [`CtxField::PacketEnd`]. Both
/// engines call this before a run, so the program sees real addresses.
pub fn fill_ctx_pointers(layout: &CtxLayout, input: &mut RunInput<'_>) {
    let start = input.pkt.as_ptr() as u64;
    let end = start + input.pkt.len() as u64;
    for &(off, size, kind) in &layout.fields {
        let v = match kind {
            CtxField::PacketStart => start,
            CtxField::PacketEnd => end,
            _ => continue,
        };
        if size == 8 {
            if let Some(dst) = input.ctx.get_mut(off..off + 8) {
                dst.copy_from_slice(&v.to_le_bytes());
            }
        }
    }
}
