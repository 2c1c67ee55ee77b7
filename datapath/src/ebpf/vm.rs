//! What both execution engines share: the program environment (what r1 and r2
//! hold at entry), the memory regions a program may touch, run-time limits and
//! the run-time error type.
//!
//! The interpreter and the JIT must agree exactly on everything here: the
//! differential tests compare `Result<u64, RunError>` from both engines with
//! `==`, so errors carry only engine-independent facts (instruction index,
//! region and offset into it), never host addresses.

use std::any::Any;

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
    /// For [`Entry::Ctx`] programs, the window `[data, data_end)` of the
    /// packet buffer that the context describes.
    Packet,
    /// The values of map `n` of the program's environment: the map's whole
    /// value storage ([`super::maps::Slab`]); offsets are from its start.
    Map(u32),
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Region::Stack => f.write_str("stack"),
            Region::Ctx => f.write_str("ctx"),
            Region::Packet => f.write_str("packet"),
            Region::Map(n) => write!(f, "map {n}"),
        }
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
///
/// The first 8-byte [`CtxField::PacketStart`] field and the first 8-byte
/// [`CtxField::PacketEnd`] field give the packet window (see
/// [`RunInput`]); further fields of those kinds are not accessible.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CtxLayout {
    pub size: usize,
    pub fields: Vec<(usize, usize, CtxField)>,
}

impl CtxLayout {
    /// Offsets of the fields holding the packet window's start and end
    /// addresses (the first 8-byte field of each kind), if present.
    pub fn window_fields(&self) -> WindowFields {
        let first = |kind| {
            self.fields
                .iter()
                .find(|&&(_, size, k)| k == kind && size == 8)
                .map(|&(off, _, _)| off)
        };
        WindowFields {
            start: first(CtxField::PacketStart),
            end: first(CtxField::PacketEnd),
        }
    }
}

/// Where the packet window's bounds live in a context ([`CtxLayout::window_fields`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowFields {
    pub start: Option<usize>,
    pub end: Option<usize>,
}

/// Reads the u64 at `off` of `ctx`.
#[inline]
fn ctx_u64(ctx: &[u8], off: usize) -> Option<u64> {
    ctx.get(off..)?
        .first_chunk::<8>()
        .map(|b| u64::from_le_bytes(*b))
}

impl WindowFields {
    /// The raw `(data, data_end)` values of `ctx` (0 for a missing field;
    /// [`read_window`] gives missing fields their defaults).
    #[inline]
    pub fn raw(&self, ctx: &[u8]) -> (u64, u64) {
        let get = |f: Option<usize>| f.and_then(|o| ctx_u64(ctx, o)).unwrap_or(0);
        (get(self.start), get(self.end))
    }

    /// The packet window `(start, len)` inside `buf` (at address `base`,
    /// `len` bytes) that `ctx` describes: `data` (the buffer start if the
    /// layout has no such field) to `data_end` (the buffer end if it has
    /// none). `Err((data, data_end))` as offsets from the buffer start when
    /// they do not describe a window of the buffer.
    #[inline]
    pub fn read_window(
        &self,
        base: u64,
        len: usize,
        ctx: &[u8],
    ) -> Result<(usize, usize), (i64, i64)> {
        let (raw_start, raw_end) = self.raw(ctx);
        let start = if self.start.is_some() {
            raw_start
        } else {
            base
        };
        let end = if self.end.is_some() {
            raw_end
        } else {
            base.wrapping_add(len as u64)
        };
        let (s, e) = (start.wrapping_sub(base), end.wrapping_sub(base));
        if s <= e && e <= len as u64 {
            Ok((s as usize, (e - s) as usize))
        } else {
            Err((s as i64, e as i64))
        }
    }
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
    /// At entry, the context's `data` / `data_end` (offsets from the start
    /// of the packet buffer) do not describe a window of the buffer.
    #[error("ctx data/data_end at buffer offsets {data}..{data_end} lie outside the {len}-byte packet buffer")]
    PacketWindow {
        data: i64,
        data_end: i64,
        len: usize,
    },
    /// The context is smaller than the layout the program was verified for.
    #[error("ctx of {len} bytes is smaller than its {need}-byte layout")]
    CtxTooSmall { len: usize, need: usize },
}

/// The [`RunError::HelperFault`] reason when a helper flagged
/// `changes_packet` leaves `data` / `data_end` (offsets from the buffer
/// start) outside the packet buffer of `len` bytes.
pub fn window_fault(data: i64, data_end: i64, len: usize) -> String {
    format!("left ctx data/data_end at buffer offsets {data}..{data_end}, outside the {len}-byte packet buffer")
}

/// The [`RunError::HelperFault`] reason when a helper not flagged
/// `changes_packet` changes `data` / `data_end`.
pub const UNFLAGGED_WINDOW_CHANGE: &str =
    "changed ctx data/data_end but is not flagged changes_packet";

/// Memory a program runs against, and the caller's per-run state.
///
/// - [`Entry::MemLen`]: `pkt` is the Packet region (r1 = its start, r2 =
///   its length); `ctx` is unused.
/// - [`Entry::Ctx`]: `ctx` is the context structure (r1), at least the
///   layout's size. `pkt` is the whole packet buffer (headroom included);
///   the Packet region is the window `[data, data_end)` the context's
///   packet fields give ([`CtxLayout::window_fields`]), which must lie
///   inside `pkt`. Both engines read it at entry and again after every
///   helper flagged [`changes_packet`](super::helpers::Helper::changes_packet).
///   [`fill_ctx_pointers`] makes the window the whole buffer.
///
/// `state` is handed to every helper ([`super::helpers::HelperCtx::state`]):
/// the datapath passes its per-packet state this way.
pub struct RunInput<'a> {
    pub pkt: &'a mut [u8],
    pub ctx: &'a mut [u8],
    pub state: Option<&'a mut dyn Any>,
}

impl<'a> RunInput<'a> {
    /// Input for a [`Entry::MemLen`] program.
    pub fn mem(pkt: &'a mut [u8]) -> Self {
        RunInput {
            pkt,
            ctx: &mut [],
            state: None,
        }
    }

    /// Input for a [`Entry::Ctx`] program: the packet buffer and the context
    /// (whose packet fields must already describe the window).
    pub fn ctx(pkt: &'a mut [u8], ctx: &'a mut [u8]) -> Self {
        RunInput {
            pkt,
            ctx,
            state: None,
        }
    }

    /// The same input with per-run state for the helpers.
    pub fn with_state(self, state: &'a mut dyn Any) -> Self {
        RunInput {
            state: Some(state),
            ..self
        }
    }
}

/// Writes the packet buffer's start and end addresses into the context
/// fields the layout marks as [`CtxField::PacketStart`] /
/// [`CtxField::PacketEnd`]: the window becomes the whole buffer. For callers
/// whose packet is the whole of `input.pkt`.
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
