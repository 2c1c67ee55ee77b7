//! Running one flow program against a worker's frame, flow context and
//! [`PacketState`]: the glue between the pipeline and the eBPF engines.
//!
//! The program gets the frame's whole buffer (headroom included, so that
//! `push_vlan` can grow the packet in place) as its packet memory, the
//! context whose `data` / `data_end` give the packet's window in it
//! ([`abi::write_packet`] before the packet's first program), and the
//! worker's [`PacketState`] as the helpers' per-run state
//! ([`abi::flow_registry`]). After the run the frame's window follows
//! whatever the VLAN helpers did ([`abi::frame_window`]).

use std::sync::Arc;

use crate::dp::actions::{abi, PacketState};
use crate::dp::port::Frame;
use crate::ebpf::engine::Loaded;
use crate::ebpf::interp;
use crate::ebpf::jit::JitScratch;
use crate::ebpf::maps::Maps;
use crate::ebpf::vm::{RunError, RunInput};
use crate::ebpf::ProgEnv;
use crate::flow::compile::ctx::CTX_TABLE;
use crate::flow::compile::{self, FlowCtx};
use crate::packet::Parsed;

/// The flow-program environment with the datapath's helpers and the
/// switch's `maps`.
pub fn flow_env(maps: Arc<Maps>) -> Arc<ProgEnv> {
    compile::flow_env(abi::flow_registry(), maps)
}

/// Describes a new packet in the context: its key, offsets, length and
/// window in `frame`'s buffer; table 0; mark and scratch zero.
#[inline]
pub fn begin_ctx(ctx: &mut FlowCtx, frame: &Frame, parsed: &Parsed) {
    let base = frame.buffer().as_ptr() as u64;
    abi::write_packet(&mut ctx.bytes, base, frame.start(), frame.len(), parsed);
    // table, mark and scratch: the rest of the context.
    const _: () = assert!(
        compile::ctx::CTX_MARK == CTX_TABLE + 4
            && compile::ctx::CTX_SCRATCH == CTX_TABLE + 8
            && compile::ctx::CTX_SCRATCH + compile::ctx::CTX_SCRATCH_LEN == compile::CTX_SIZE
    );
    if let Some(rest) = ctx.bytes.get_mut(CTX_TABLE..) {
        rest.fill(0);
    }
}

/// Runs `prog` on `frame` with `ctx` (set up by [`begin_ctx`], table set)
/// and the worker's `state`; returns r0. The frame's window follows any
/// change a helper made to it.
#[inline(always)]
pub fn run(
    prog: &Loaded,
    scratch: &mut JitScratch,
    frame: &mut Frame,
    ctx: &mut FlowCtx,
    state: &mut PacketState,
) -> Result<u64, RunError> {
    let input = RunInput::ctx(frame.buffer_mut(), &mut ctx.bytes).with_state(state);
    let r = match prog {
        Loaded::Interp(p) => interp::run(p, input),
        Loaded::Jit(j) => j.run_with(scratch, input),
    };
    // Only helpers move the window. The engines accepted it (or refused to
    // run), so this only fails if a program ended with a window they would
    // not have entered with; the frame is then left as it was.
    if prog.may_call_helpers() {
        let _ = abi::frame_window(&ctx.bytes, frame);
    }
    r
}
