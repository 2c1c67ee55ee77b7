//! The flow-program side of the actions: adapters from a helper call (the
//! engine's packet memory, the context, r1..r5) to the [`PacketState`]
//! methods.
//!
//! The ABI itself (the flow context layout, helper ids and signatures) has
//! one home, the flow compiler: [`crate::flow::compile::ctx`] and
//! [`crate::flow::compile::env`] (`FLOW_HELPERS`, `helper_id`).
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
//! `|h, a| abi::fs_output(abi::state(h.state.as_deref_mut())?, h.pkt, h.ctx, a)`,
//! and likewise for the others ([`FLOW_HELPERS`] lists ids, names,
//! signatures and which change the packet); [`flow_registry`] is the
//! registry of all of them that flow programs run with.
//!
//! Running a flow program on a packet (the pipeline's part):
//! [`PacketState::begin`]; [`write_packet`] into the context with the
//! frame's buffer address ([`Frame::buffer_mut`]); run with
//! `RunInput::ctx(frame.buffer_mut(), ctx).with_state(state)`, once per
//! table; [`frame_window`] to move the frame's window to where the
//! programs left it; [`PacketState::finish`]. After `fs_push_vlan` / `fs_pop_vlan` the context holds the
//! new `data`, `data_end`, `pkt_len`, `l3_off`, `l4_off` and flow key; the
//! engine reloads its packet bounds from it (`changes_packet`), and after
//! the run the pipeline moves the frame's window to match
//! ([`read_window`], [`Frame::set_window`]) before
//! [`PacketState::finish`].
//!
//! [`Frame::buffer_mut`]: crate::dp::port::Frame::buffer_mut
//! [`Frame::set_window`]: crate::dp::port::Frame::set_window

use std::any::Any;
use std::sync::{Arc, OnceLock};

use super::{ActionError, PacketState};
use crate::dp::port::{Frame, FrameError, FrameWindow};
use crate::ebpf::helpers::{HelperExit, HelperRegistry};
use crate::flow::compile::ctx::{
    CTX_DATA, CTX_DATA_END, CTX_KEY, CTX_L3_OFF, CTX_L4_OFF, CTX_PKT_LEN,
};
#[cfg(doc)]
use crate::flow::compile::FLOW_HELPERS;
use crate::flow::compile::{flow_helpers, helper_id, FlowHelperFns};
use crate::packet::Parsed;

#[cold]
fn fault(msg: String) -> HelperExit {
    HelperExit::Fault(msg)
}

/// The worker's [`PacketState`] behind a helper's state
/// (`HelperCtx::state`, i.e. `RunInput::state`).
#[inline]
pub fn state(s: Option<&mut dyn Any>) -> Result<&mut PacketState, HelperExit> {
    s.and_then(|s| s.downcast_mut::<PacketState>())
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

/// Moves `frame`'s window to the packet the context describes (after the
/// programs ran: VLAN helpers may have moved it). `ctx` must describe a
/// window of `frame`'s buffer (as it does when the engines accepted it).
#[inline]
pub fn frame_window(ctx: &[u8], frame: &mut Frame) -> Result<(), FrameError> {
    let base = frame.buffer().as_ptr() as u64;
    let data = get_u64(ctx, CTX_DATA).unwrap_or(0);
    let end = get_u64(ctx, CTX_DATA_END).unwrap_or(0);
    // Out-of-range values wrap to huge offsets, which `set_window` refuses.
    frame.set_window(
        data.wrapping_sub(base) as usize,
        end.wrapping_sub(data) as usize,
    )
}

/// Writes a packet's description into the context: the flow key,
/// `data` / `data_end` (the window `start..start + len` of the buffer at
/// address `base`), `pkt_len`, `l3_off` and `l4_off`. The pipeline calls it
/// before a packet's first program; the VLAN helpers after changing it.
#[inline]
pub fn write_packet(ctx: &mut [u8], base: u64, start: usize, len: usize, parsed: &Parsed) {
    // The key, data, data_end, the offsets and the length are adjacent
    // (bytes 0..104): build them in one array and store it at once.
    const END: usize = CTX_PKT_LEN + 4;
    const _: () = assert!(CTX_KEY == 0);
    let mut b = [0u8; END];
    for (dst, w) in b.chunks_exact_mut(8).zip(parsed.key.words.iter()) {
        dst.copy_from_slice(&w.to_le_bytes());
    }
    let data = base.wrapping_add(start as u64);
    put(&mut b, CTX_DATA, &data.to_le_bytes());
    put(
        &mut b,
        CTX_DATA_END,
        &data.wrapping_add(len as u64).to_le_bytes(),
    );
    put(&mut b, CTX_L3_OFF, &parsed.l3.to_le_bytes());
    put(&mut b, CTX_L4_OFF, &parsed.l4.to_le_bytes());
    put(&mut b, CTX_PKT_LEN, &(len as u32).to_le_bytes());
    put(ctx, CTX_KEY, &b);
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
        helper_id::OUTPUT => fs_output,
        helper_id::FLOOD => fs_flood,
        helper_id::NORMAL => fs_normal,
        helper_id::METER => fs_meter,
        helper_id::PUSH_VLAN => fs_push_vlan,
        helper_id::POP_VLAN => fs_pop_vlan,
        _ => return None,
    })
}

/// The flow helpers backed by the adapters, with the standard ones: the
/// registry flow programs run with in the datapath (the environment is
/// [`crate::flow::compile::flow_env`] of it). Every run must pass the
/// worker's [`PacketState`] as `RunInput::state`.
pub fn flow_registry() -> Arc<HelperRegistry> {
    static REG: OnceLock<Arc<HelperRegistry>> = OnceLock::new();
    REG.get_or_init(|| {
        Arc::new(flow_helpers(&FlowHelperFns {
            output: |h, a| fs_output(state(h.state.as_deref_mut())?, h.pkt, h.ctx, a),
            flood: |h, a| fs_flood(state(h.state.as_deref_mut())?, h.pkt, h.ctx, a),
            normal: |h, a| fs_normal(state(h.state.as_deref_mut())?, h.pkt, h.ctx, a),
            meter: |h, a| fs_meter(state(h.state.as_deref_mut())?, h.pkt, h.ctx, a),
            push_vlan: |h, a| fs_push_vlan(state(h.state.as_deref_mut())?, h.pkt, h.ctx, a),
            pop_vlan: |h, a| fs_pop_vlan(state(h.state.as_deref_mut())?, h.pkt, h.ctx, a),
        }))
    })
    .clone()
}
