//! Running one flow program against a worker's packet, flow context and
//! [`PacketState`]: the glue between the pipeline and the eBPF engines.
//!
//! The flow helpers (ids 16..=21) are the [`abi`] adapters; they reach the
//! worker's [`PacketState`] through the helper context.
//!
//! Until the engine passes per-packet state to helpers, the state is handed
//! over through a thread-local slot for the duration of a run: the worker's
//! state is swapped into the slot before the run and back after it (a swap
//! of two values, no allocation), and the helpers borrow it from there.
//! Likewise the engines still take the packet region to be the whole
//! `RunInput::pkt`, so a program runs on the frame's data window only, and
//! a tag push (which needs headroom) fails with its error code.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use crate::dp::actions::{abi, PacketState};
use crate::dp::port::Frame;
use crate::ebpf::engine::Loaded;
use crate::ebpf::helpers::{HelperCtx, HelperExit, HelperRegistry};
use crate::ebpf::interp;
use crate::ebpf::jit::JitScratch;
use crate::ebpf::vm::{RunError, RunInput};
use crate::ebpf::ProgEnv;
use crate::flow::compile::{self, FlowCtx, FlowHelperFns};

thread_local! {
    /// The running worker's packet state while a program runs; a spare
    /// state otherwise.
    static SLOT: RefCell<Option<PacketState>> = const { RefCell::new(None) };
}

/// Calls `f` with the packet state of the program running on this thread.
#[inline]
fn with_state(
    f: impl FnOnce(&mut PacketState) -> Result<u64, HelperExit>,
) -> Result<u64, HelperExit> {
    SLOT.with(|slot| match slot.try_borrow_mut() {
        Ok(mut s) => match s.as_mut() {
            Some(st) => f(st),
            None => Err(HelperExit::Fault(
                "flow helper called outside the datapath".into(),
            )),
        },
        Err(_) => Err(HelperExit::Fault("flow helper re-entered".into())),
    })
}

fn h_output(h: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    with_state(|st| abi::fs_output(st, h.pkt, h.ctx, a))
}
fn h_flood(h: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    with_state(|st| abi::fs_flood(st, h.pkt, h.ctx, a))
}
fn h_normal(h: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    with_state(|st| abi::fs_normal(st, h.pkt, h.ctx, a))
}
fn h_meter(h: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    with_state(|st| abi::fs_meter(st, h.pkt, h.ctx, a))
}
fn h_push_vlan(h: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    with_state(|st| abi::fs_push_vlan(st, h.pkt, h.ctx, a))
}
fn h_pop_vlan(h: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    with_state(|st| abi::fs_pop_vlan(st, h.pkt, h.ctx, a))
}

/// The helper functions of flow programs run by the datapath.
pub const DATAPATH_HELPERS: FlowHelperFns = FlowHelperFns {
    output: h_output,
    flood: h_flood,
    normal: h_normal,
    meter: h_meter,
    push_vlan: h_push_vlan,
    pop_vlan: h_pop_vlan,
};

/// The flow-program environment with the datapath's helpers (one shared
/// instance).
pub fn flow_env() -> Arc<ProgEnv> {
    static ENV: OnceLock<Arc<ProgEnv>> = OnceLock::new();
    ENV.get_or_init(|| {
        let reg: Arc<HelperRegistry> = Arc::new(compile::flow_helpers(&DATAPATH_HELPERS));
        compile::flow_env(reg)
    })
    .clone()
}

/// A state to park in the slot while the worker's own is lent out.
fn spare_like(st: &PacketState) -> PacketState {
    PacketState::new(
        0,
        Arc::clone(st.ports()),
        Arc::clone(st.mac_table()),
        Arc::clone(st.meters()),
        Arc::clone(st.counters()),
    )
}

/// Runs `prog` on `frame` with `ctx` (key, offsets, table already set) and
/// the worker's `state`; returns r0. The frame's window follows any change
/// a helper made to it.
#[inline]
pub fn run(
    prog: &Loaded,
    scratch: &mut JitScratch,
    frame: &mut Frame,
    ctx: &mut FlowCtx,
    state: &mut PacketState,
) -> Result<u64, RunError> {
    SLOT.with(|slot| {
        if let Ok(mut s) = slot.try_borrow_mut() {
            let spare = s.get_or_insert_with(|| spare_like(state));
            std::mem::swap(spare, state);
        }
    });
    let pkt = frame.data_mut();
    let (base, cap) = (pkt.as_ptr() as u64, pkt.len());
    let input = RunInput {
        pkt,
        ctx: &mut ctx.bytes,
    };
    let r = match prog {
        Loaded::Interp(p) => interp::run(p, input),
        Loaded::Jit(j) => j.run_with(scratch, input),
    };
    // A VLAN helper moved the packet inside the region it was given.
    if let Some((start, len)) = abi::read_window(&ctx.bytes, base, cap) {
        if (start, len) != (0, cap) {
            let _ = frame.set_window(frame.start() + start, len);
        }
    }
    SLOT.with(|slot| {
        if let Ok(mut s) = slot.try_borrow_mut() {
            if let Some(mine) = s.as_mut() {
                std::mem::swap(mine, state);
            }
        }
    });
    r
}
