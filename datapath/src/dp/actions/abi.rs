//! The flow-program side of the actions: helper ids, the flow context
//! layout, and adapters from a helper call (the engine's packet memory, the
//! context, r1..r5) to the [`PacketState`] methods.
//!
//! An adapter needs from the engine what `HelperCtx` will carry once it
//! gains per-packet state (design, "Engine extensions" 1 and 2):
//!
//! - `state`: the worker's [`PacketState`] as `&mut dyn Any`
//!   ([`state`] downcasts it);
//! - `pkt`: the whole packet buffer the program runs on, headroom included
//!   (the worker's [`Frame::buffer_mut`]);
//! - `ctx`: the flow context, whose `data` / `data_end` give the packet
//!   window inside `pkt` as addresses.
//!
//! The engine's `HelperFn` for helper 16 is then one line:
//! `|h, a| abi::fs_output(abi::state(h.state)?, h.pkt, h.ctx, a)`, and
//! likewise for the others ([`HELPERS`] lists ids, names and which change
//! the packet). After `fs_push_vlan` / `fs_pop_vlan` the context holds the
//! new `data`, `data_end`, `pkt_len`, `l3_off`, `l4_off` and flow key; the
//! engine reloads its packet bounds from it (`changes_packet`), and after
//! the run the pipeline moves the frame's window to match
//! ([`read_window`], [`Frame::set_window`]) before
//! [`PacketState::finish`].
//!
//! [`Frame::buffer_mut`]: crate::dp::port::Frame::buffer_mut
//! [`Frame::set_window`]: crate::dp::port::Frame::set_window

use std::any::Any;

use super::{ActionError, PacketState};
use crate::dp::port::FrameWindow;
use crate::ebpf::helpers::HelperExit;
#[cfg(doc)]
use crate::flow::key::KEY_BYTES;
use crate::packet::Parsed;

/// Helper ids (`docs/ebpf-abi.md`).
pub const FS_OUTPUT: u32 = 16;
pub const FS_FLOOD: u32 = 17;
pub const FS_NORMAL: u32 = 18;
pub const FS_METER: u32 = 19;
pub const FS_PUSH_VLAN: u32 = 20;
pub const FS_POP_VLAN: u32 = 21;

// The flow context (`Entry::Ctx` layout of flow programs).
/// The flow key, [`KEY_BYTES`] bytes, words little-endian.
pub const CTX_KEY: usize = 0;
/// u64: address of the first packet byte.
pub const CTX_DATA: usize = 80;
/// u64: address one past the last packet byte.
pub const CTX_DATA_END: usize = 88;
/// u16: offset of the L3 header in the packet.
pub const CTX_L3_OFF: usize = 96;
/// u16: offset of the L4 header, 0 if none.
pub const CTX_L4_OFF: usize = 98;
/// u32: packet length.
pub const CTX_PKT_LEN: usize = 100;
/// u32: current table id.
pub const CTX_TABLE: usize = 104;
/// u32: scratch metadata for custom programs.
pub const CTX_MARK: usize = 108;
/// 16 bytes of scratch.
pub const CTX_SCRATCH: usize = 112;
/// Size of the context.
pub const CTX_SIZE: usize = 128;

/// A flow helper as the registry and the verifier need to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelperSpec {
    pub id: u32,
    pub name: &'static str,
    /// Arguments after r1 (= ctx).
    pub scalar_args: usize,
    /// Moves `data` / `data_end`: packet pointers die at the call.
    pub changes_packet: bool,
}

/// The flow helpers, ids 16..=21.
pub const HELPERS: [HelperSpec; 6] = [
    HelperSpec {
        id: FS_OUTPUT,
        name: "fs_output",
        scalar_args: 2,
        changes_packet: false,
    },
    HelperSpec {
        id: FS_FLOOD,
        name: "fs_flood",
        scalar_args: 1,
        changes_packet: false,
    },
    HelperSpec {
        id: FS_NORMAL,
        name: "fs_normal",
        scalar_args: 1,
        changes_packet: false,
    },
    HelperSpec {
        id: FS_METER,
        name: "fs_meter",
        scalar_args: 1,
        changes_packet: false,
    },
    HelperSpec {
        id: FS_PUSH_VLAN,
        name: "fs_push_vlan",
        scalar_args: 1,
        changes_packet: true,
    },
    HelperSpec {
        id: FS_POP_VLAN,
        name: "fs_pop_vlan",
        scalar_args: 0,
        changes_packet: true,
    },
];

#[cold]
fn fault(msg: String) -> HelperExit {
    HelperExit::Fault(msg)
}

/// The worker's [`PacketState`] behind a helper's `&mut dyn Any`.
#[inline]
pub fn state(s: &mut dyn Any) -> Result<&mut PacketState, HelperExit> {
    s.downcast_mut::<PacketState>()
        .ok_or_else(|| fault("flow helper called without the datapath's packet state".into()))
}

#[inline]
fn get_u64(ctx: &[u8], off: usize) -> Option<u64> {
    ctx.get(off..)?
        .first_chunk::<8>()
        .map(|b| u64::from_le_bytes(*b))
}

#[inline]
fn put(ctx: &mut [u8], off: usize, bytes: &[u8]) {
    if let Some(dst) = ctx.get_mut(off..off + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// The packet window `(start, len)` inside a buffer at address `base` of
/// `cap` bytes, from the context's `data` / `data_end`.
#[inline]
pub fn read_window(ctx: &[u8], base: u64, cap: usize) -> Option<(usize, usize)> {
    let data = get_u64(ctx, CTX_DATA)?;
    let end = get_u64(ctx, CTX_DATA_END)?;
    let start = usize::try_from(data.checked_sub(base)?).ok()?;
    let len = usize::try_from(end.checked_sub(data)?).ok()?;
    (start.checked_add(len)? <= cap).then_some((start, len))
}

/// Writes a packet's description into the context: the flow key,
/// `data` / `data_end` (the window `start..start + len` of the buffer at
/// address `base`), `pkt_len`, `l3_off` and `l4_off`. The pipeline calls it
/// before a packet's first program; the VLAN helpers after changing it.
pub fn write_packet(ctx: &mut [u8], base: u64, start: usize, len: usize, parsed: &Parsed) {
    for (i, w) in parsed.key.words.iter().enumerate() {
        put(ctx, CTX_KEY + i * 8, &w.to_le_bytes());
    }
    let data = base.wrapping_add(start as u64);
    put(ctx, CTX_DATA, &data.to_le_bytes());
    put(
        ctx,
        CTX_DATA_END,
        &data.wrapping_add(len as u64).to_le_bytes(),
    );
    put(ctx, CTX_L3_OFF, &parsed.l3.to_le_bytes());
    put(ctx, CTX_L4_OFF, &parsed.l4.to_le_bytes());
    put(ctx, CTX_PKT_LEN, &(len as u32).to_le_bytes());
}

/// The packet window of a helper call.
#[inline]
fn window<'a>(pkt: &'a mut [u8], ctx: &[u8]) -> Result<FrameWindow<'a>, HelperExit> {
    let base = pkt.as_ptr() as u64;
    let (start, len) = read_window(ctx, base, pkt.len())
        .ok_or_else(|| fault("flow context data/data_end outside the packet buffer".into()))?;
    FrameWindow::new(pkt, start, len).map_err(|e| fault(e.to_string()))
}

/// The packet bytes of a helper call.
#[inline]
fn bytes<'a>(pkt: &'a [u8], ctx: &[u8]) -> Result<&'a [u8], HelperExit> {
    let base = pkt.as_ptr() as u64;
    read_window(ctx, base, pkt.len())
        .and_then(|(start, len)| pkt.get(start..start + len))
        .ok_or_else(|| fault("flow context data/data_end outside the packet buffer".into()))
}

/// Helper 16: `fs_output(ctx, port, flags)` → 0. A port number that is
/// not a port id (above `u32::MAX`) is an unknown port.
pub fn fs_output(
    st: &mut PacketState,
    pkt: &mut [u8],
    ctx: &mut [u8],
    args: [u64; 5],
) -> Result<u64, HelperExit> {
    let data = bytes(pkt, ctx)?;
    let port = u32::try_from(args[1]).unwrap_or(u32::MAX);
    st.output(data, port, args[2]);
    Ok(0)
}

/// Helper 17: `fs_flood(ctx, flags)` → 0.
pub fn fs_flood(
    st: &mut PacketState,
    pkt: &mut [u8],
    ctx: &mut [u8],
    args: [u64; 5],
) -> Result<u64, HelperExit> {
    st.flood(bytes(pkt, ctx)?, args[1]);
    Ok(0)
}

/// Helper 18: `fs_normal(ctx, flags)` → 0.
pub fn fs_normal(
    st: &mut PacketState,
    pkt: &mut [u8],
    ctx: &mut [u8],
    args: [u64; 5],
) -> Result<u64, HelperExit> {
    st.normal(bytes(pkt, ctx)?, args[1]);
    Ok(0)
}

/// Helper 19: `fs_meter(ctx, index)` → 1 pass, 0 drop. An index beyond
/// the switch's meters stops the program (a fault: the compiler never
/// emits one, so only a custom program can).
pub fn fs_meter(
    st: &mut PacketState,
    pkt: &mut [u8],
    ctx: &mut [u8],
    args: [u64; 5],
) -> Result<u64, HelperExit> {
    let len = bytes(pkt, ctx)?.len();
    let index = u32::try_from(args[1]).unwrap_or(u32::MAX);
    match st.meter(index, len) {
        Ok(pass) => Ok(u64::from(pass)),
        Err(e) => Err(fault(e.to_string())),
    }
}

/// Writes the outcome of a VLAN change into the context.
fn vlan_result(
    base: u64,
    ctx: &mut [u8],
    window: (usize, usize),
    r: Result<Option<Parsed>, ActionError>,
) -> Result<u64, HelperExit> {
    match r {
        Ok(Some(parsed)) => {
            write_packet(ctx, base, window.0, window.1, &parsed);
            Ok(0)
        }
        Ok(None) => Ok(0),
        // The frame changed but its key cannot be rebuilt: stop.
        Err(e @ ActionError::Reparse(_)) => Err(fault(e.to_string())),
        Err(e) => Ok(e.code() as u64),
    }
}

/// Helper 20: `fs_push_vlan(ctx, tci)` → 0, or a negative
/// [`ActionError::code`] with the packet unchanged.
pub fn fs_push_vlan(
    st: &mut PacketState,
    pkt: &mut [u8],
    ctx: &mut [u8],
    args: [u64; 5],
) -> Result<u64, HelperExit> {
    let base = pkt.as_ptr() as u64;
    let mut w = window(pkt, ctx)?;
    let r = st.push_vlan(&mut w, args[1] as u16).map(Some);
    vlan_result(base, ctx, (w.start(), w.len()), r)
}

/// Helper 21: `fs_pop_vlan(ctx)` → 0 (also when untagged), or a negative
/// [`ActionError::code`] with the packet unchanged.
pub fn fs_pop_vlan(
    st: &mut PacketState,
    pkt: &mut [u8],
    ctx: &mut [u8],
    _args: [u64; 5],
) -> Result<u64, HelperExit> {
    let base = pkt.as_ptr() as u64;
    let mut w = window(pkt, ctx)?;
    let r = st.pop_vlan(&mut w);
    vlan_result(base, ctx, (w.start(), w.len()), r)
}

/// An adapter: what a flow helper does given the packet state, the
/// engine's packet memory, the flow context and r1..r5.
pub type FlowHelperFn =
    fn(&mut PacketState, &mut [u8], &mut [u8], [u64; 5]) -> Result<u64, HelperExit>;

/// The adapter of helper `id`, if it is a flow helper.
pub fn adapter(id: u32) -> Option<FlowHelperFn> {
    Some(match id {
        FS_OUTPUT => fs_output,
        FS_FLOOD => fs_flood,
        FS_NORMAL => fs_normal,
        FS_METER => fs_meter,
        FS_PUSH_VLAN => fs_push_vlan,
        FS_POP_VLAN => fs_pop_vlan,
        _ => return None,
    })
}
