//! The cache-hit fast path of a batch: a packet whose cached path starts
//! with a flow that has a lean program ([`LeanRef`]: no helpers, so the
//! program cannot output, learn, meter or retag by itself) is run here
//! without the general per-table loop of [`Worker::process_frames`]'s
//! `run`.
//!
//! Why: nearly all traffic of a busy switch is cache hits on flows whose
//! actions end in an output or a drop. For those the general path's
//! bookkeeping (the path record, the cache state, the action state's
//! per-packet reset and its pending output, trace checks, a counter
//! update per table lookup) is most of the cost.
//!
//! A flow whose program's code the key alone determines
//! ([`FlowInfo::key_determined`](super::FlowInfo::key_determined): no
//! filter, only a final output or a drop or goto) is not even run: the
//! code it returned when the path was cached is reused (`HitCx::reuse`).
//!
//! Design: `HitCx::run` sets up the flow context and runs the program. When it
//! returns OUTPUT, DROP or DONE, or fails, the packet ends here, with
//! exactly what the general path would do and count: the frame is moved
//! to the port's queue (or counted as a tx drop of a port that is down or
//! unknown, and as [`DropReason::PortDown`]), a drop is counted by
//! reason (DONE without output: [`DropReason::NoOutput`]; a run-time
//! error: [`DropReason::Error`]), and the flow's counters are bumped. The
//! per-table and per-worker counts of these packets are kept in a
//! [`Tally`] and added once per batch. Any other result (NOMATCH, a goto)
//! is returned, and the general path carries on from it with the context
//! and frame as the program left them: it never runs a program twice.
//!
//! [`Worker::process_frames`]: super::Worker::process_frames

use super::drop_reason;
use super::exec;
use super::worker::WorkerStats;
use crate::dp::actions::PacketState;
use crate::dp::port::Frame;
use crate::dp::stats::{DropReason, FlowCounters, WorkerCounters};
use crate::ebpf::jit::{JitScratch, LeanRef};
use crate::flow::compile::{FlowCtx, Verdict};
use crate::packet::Parsed;

/// The r0 that stands for a run-time error of a flow program (no program
/// returns it: it decodes to no verdict, and the packet is dropped as
/// [`DropReason::Error`]).
pub(super) const RUN_ERROR: u64 = u64::MAX;

/// Counts of the packets a batch ended on the fast path, added to the
/// worker's counters once per batch ([`Tally::commit`]).
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Packets: each one table-0 lookup that matched, and a cache hit.
    packets: u64,
}

impl Tally {
    /// Adds the batch's counts: table 0's lookups and matches, the
    /// worker's packets and cache hits.
    #[inline]
    pub(super) fn commit(self, counters: &WorkerCounters, stats: &mut WorkerStats) {
        if self.packets == 0 {
            return;
        }
        let t = counters.table(0);
        t.lookups.add(self.packets);
        t.matched.add(self.packets);
        stats.packets += self.packets;
        stats.emc_hits += self.packets;
        stats.fast_hits += self.packets;
    }
}

/// What a fast-path packet works on (the worker's parts it borrows).
pub(super) struct HitCx<'a> {
    pub ctx: &'a mut FlowCtx,
    pub scratch: &'a mut JitScratch,
    pub state: &'a mut PacketState,
    pub counters: &'a WorkerCounters,
    /// The worker's counters of the generation's flows.
    pub flows: Option<&'a [FlowCounters]>,
    /// The batch's clock in ms.
    pub now_ms: u64,
    pub tally: Tally,
}

impl HitCx<'_> {
    /// Runs `flow`'s lean program `code` (the first flow of the packet's
    /// cached path) on `frame` parsed as `parsed`. `None`: the packet is
    /// done. `Some(r0)`: the program returned something the general path
    /// must carry on from (see the [module docs](self)).
    #[inline(always)]
    pub(super) fn run(
        &mut self,
        code: LeanRef<'_>,
        flow: u32,
        frame: &mut Frame,
        parsed: &Parsed,
    ) -> Option<u64> {
        exec::begin_ctx(self.ctx, frame, parsed);
        let r = code
            .run(self.scratch, frame.buffer_mut(), &mut self.ctx.bytes)
            .unwrap_or(RUN_ERROR);
        self.end(flow, r, frame)
    }

    /// Ends a packet whose first flow `flow` is
    /// [key-determined](super::FlowInfo::key_determined) with the code
    /// `r` its program returned for this key (cached with the path),
    /// without running it; like [`run`](Self::run) otherwise.
    #[inline(always)]
    pub(super) fn reuse(
        &mut self,
        r: u64,
        flow: u32,
        frame: &mut Frame,
        parsed: &Parsed,
    ) -> Option<u64> {
        let more = self.end(flow, r, frame)?;
        // The general path carries on from a context the program could
        // have left: it writes nothing.
        exec::begin_ctx(self.ctx, frame, parsed);
        Some(more)
    }

    /// Ends the packet after `flow`'s program returned `r`, or hands `r`
    /// back for the general path.
    #[inline(always)]
    fn end(&mut self, flow: u32, r: u64, frame: &mut Frame) -> Option<u64> {
        let drop = match Verdict::from_code(r) {
            Some(Verdict::Output(p)) => {
                self.hit(flow, frame);
                match self.state.move_out(p, frame) {
                    Ok(()) => return None,
                    Err(d) => d,
                }
            }
            Some(Verdict::Drop(d)) => {
                self.hit(flow, frame);
                drop_reason(d)
            }
            Some(Verdict::Done) => {
                self.hit(flow, frame);
                DropReason::NoOutput
            }
            None => {
                self.hit(flow, frame);
                DropReason::Error
            }
            Some(Verdict::NoMatch | Verdict::Goto(_)) => return Some(r),
        };
        self.counters.count_drop(drop);
        None
    }

    /// Counts a packet the flow ended.
    #[inline(always)]
    fn hit(&mut self, flow: u32, frame: &Frame) {
        self.tally.packets += 1;
        if let Some(c) = self.flows.and_then(|c| c.get(flow as usize)) {
            c.hit(frame.len() as u64, self.now_ms);
        }
    }
}
