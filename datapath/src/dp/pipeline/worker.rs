//! A worker: runs packets through a [`Generation`] (the fast path).
//!
//! Per packet ([`Worker::process`]):
//! 1. `extract` the flow key; a malformed frame is dropped and counted by
//!    its [`ErrorKind`](crate::packet::ErrorKind).
//! 2. Look the key up in the worker's exact-match cache: a hit gives the
//!    *path*, the flow chosen in each table visited (or "no match"). The
//!    cache holds paths of the worker's generation only: switching to a
//!    new one empties it.
//! 3. Table by table from table 0: take the cached flow and run its
//!    program; without one (a miss, or the program declined), ask the
//!    table's classifier, whose `accept` callback runs the candidate's
//!    program (a custom filter may decline, and the next candidate is
//!    tried). The program's return code says done, output to port P (the
//!    worker sends the frame itself), goto table N, or dropped. A table
//!    with no matching flow applies the miss policy.
//! 4. The path goes into the cache when a classifier was asked and the
//!    path is one the same key will always take (no filter declined, no
//!    key change the key itself does not determine before a goto).
//! 5. [`PacketState::finish`] queues the packet (moving it for a final
//!    output) and counts a drop.
//!
//! Steps 1 and 2 run here, over a whole batch at a time: every key and a
//! prefetch of its cache bucket, then every probe. Steps 3 to 5 are the
//! general path, in the `pipeline::general` module.
//!
//! Within a batch ([`Worker::process_frames`]) a cache hit whose first
//! flow has a lean program (no helpers: most flows that end in an output
//! or a drop) skips steps 3 to 5's general machinery: see
//! the `pipeline::hit` module, which gives the same results and counts.
//!
//! Counters: per table lookups / matched / missed and drops by reason in
//! the worker's [`WorkerCounters`]; per flow packets, bytes, last used in
//! the generation's [`FlowStats`](crate::dp::stats::FlowStats).
//!
//! Nothing here allocates per packet once the frame pool and the output
//! queues have grown to the traffic (tracing aside).

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::general::Parts;
use super::generation::Generation;
use super::hit::{HitCx, Tally};
use crate::classifier::{Emc, EMC_DEFAULT_ENTRIES};
use crate::dp::actions::{Outcome, PacketState, TraceOutput};
use crate::dp::mac::MacTable;
use crate::dp::meter::Meters;
use crate::dp::port::{Flushed, Frame, PortError, PortId, PortSet};
use crate::dp::stats::{DropReason, FlowCounters, WorkerCounters};
use crate::ebpf::engine::Loaded;
use crate::ebpf::jit::JitScratch;
use crate::flow::compile::FlowCtx;
use crate::flow::key::FlowKey;
use crate::packet::{extract_into, Parsed};
use crate::sys::prefetch::prefetch;

/// Most tables a cached path records; longer paths are not cached.
pub const PATH_MAX: usize = 6;

/// A cached path: the flow chosen in each table visited, in order
/// ([`NO_FLOW`] for a table where nothing matched). Paths of the worker's
/// generation only: a new generation empties the cache. 32 bytes, so that
/// a cache entry's key and path share two cache lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct CachedPath {
    pub(super) flows: [u32; PATH_MAX],
    /// The code the first flow's program returns for this key, as
    /// `first_kind | first_arg << 8`, when `reuse`.
    first_arg: u32,
    first_kind: u8,
    pub(super) len: u8,
    /// The first flow is [key-determined](super::FlowInfo::key_determined):
    /// its code is reused instead of running it.
    pub(super) reuse: bool,
}

const _: () = assert!(std::mem::size_of::<CachedPath>() <= 32);

impl CachedPath {
    /// A path whose first flow's code is `first_code` (reused when
    /// `key_determined` and the code fits).
    pub(super) fn new(
        flows: [u32; PATH_MAX],
        len: u8,
        key_determined: bool,
        first_code: u64,
    ) -> Self {
        let arg = u32::try_from(first_code >> 8).ok();
        CachedPath {
            flows,
            first_arg: arg.unwrap_or(0),
            first_kind: first_code as u8,
            len,
            reuse: key_determined && arg.is_some(),
        }
    }

    /// The reused code.
    #[inline]
    fn first_code(&self) -> u64 {
        u64::from(self.first_kind) | u64::from(self.first_arg) << 8
    }
}

/// Worker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Exact-match cache entries; 0 = no cache (every packet through the
    /// classifiers).
    pub emc_entries: usize,
    /// Batches end cache hits on lean programs on the fast path
    /// (module `pipeline::hit`); `false` sends every packet through the
    /// general path (the same results: for comparisons).
    pub fast_hits: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            emc_entries: EMC_DEFAULT_ENTRIES,
            fast_hits: true,
        }
    }
}

/// One table's part of a packet's path, as a trace shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub table: u8,
    /// The flow chosen; `None`: no flow matched (miss policy applied).
    pub flow: Option<u32>,
}

/// What happened to one traced packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketTrace {
    /// The tables visited, in order (empty for a frame that did not parse).
    pub steps: Vec<Step>,
    /// Every frame sent, in order.
    pub outputs: Vec<TraceOutput>,
    /// Why the packet was dropped (always set when nothing was sent).
    pub drop: Option<DropReason>,
}

/// Cache and path figures of one worker (plain counts, its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkerStats {
    pub packets: u64,
    /// Packets whose path came from the exact-match cache.
    pub emc_hits: u64,
    /// Packets that needed at least one classifier lookup.
    pub emc_misses: u64,
    /// Paths inserted into the cache.
    pub emc_inserts: u64,
    /// Cache hits that ended on the fast path (see
    /// [`WorkerConfig::fast_hits`]).
    pub fast_hits: u64,
}

/// A worker's state; see the [module docs](self).
pub struct Worker {
    index: usize,
    generation: Arc<Generation>,
    emc: Option<Emc<CachedPath>>,
    state: PacketState,
    ctx: FlowCtx,
    scratch: JitScratch,
    counters: Arc<WorkerCounters>,
    trace: Option<Vec<Step>>,
    stats: WorkerStats,
    rx: Vec<Frame>,
    /// Where a new generation is published (see [`Worker::follow`]).
    source: Option<Arc<ArcSwap<Generation>>>,
    /// Scratch of [`Worker::process_frames`].
    pre: Vec<Prepared>,
    /// [`WorkerConfig::fast_hits`].
    fast_hits: bool,
}

/// A packet's key and cached path, or why it cannot be parsed: a batch
/// keeps one per packet, written in place by [`Worker::extract_slot`] and
/// [`Worker::probe`].
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Prepared {
    /// The key and offsets (when `drop` is `None`).
    pub(super) parsed: Parsed,
    /// The key's cache hash (when it parsed and there is a cache).
    hash: u64,
    /// The cached path, if the packet parsed and hit the cache.
    cached: Option<CachedPath>,
    /// Why the frame cannot be parsed.
    pub(super) drop: Option<DropReason>,
}

impl Prepared {
    /// The cached path, if the packet parsed and hit the cache.
    #[inline]
    pub(super) fn cached(&self) -> Option<&CachedPath> {
        self.cached.as_ref()
    }

    /// The first flow of the cached path, if its program is to run (its
    /// code is not reused).
    #[inline]
    fn flow_to_run(&self) -> Option<u32> {
        self.cached()
            .filter(|c| c.len > 0 && !c.reuse)
            .map(|c| c.flows[0])
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .field("generation", &self.generation.id())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Worker number `index` of a switch with these ports, MAC table and
    /// meters; `counters` must have been made for `ports`.
    pub fn new(
        index: usize,
        generation: Arc<Generation>,
        ports: Arc<PortSet>,
        mac: Arc<MacTable>,
        meters: Arc<Meters>,
        counters: Arc<WorkerCounters>,
        config: WorkerConfig,
    ) -> Self {
        Worker {
            index,
            generation,
            emc: (config.emc_entries > 0).then(|| Emc::with_capacity(config.emc_entries)),
            state: PacketState::new(index, ports, mac, meters, Arc::clone(&counters)),
            ctx: FlowCtx::new(&FlowKey::default(), 0, 0, 0, 0),
            scratch: JitScratch::new(),
            counters,
            trace: None,
            stats: WorkerStats::default(),
            rx: Vec::new(),
            source: None,
            pre: Vec::new(),
            fast_hits: config.fast_hits,
        }
    }

    /// Makes [`poll`](Self::poll) switch to the generation published in
    /// `source` before each batch.
    pub fn follow(&mut self, source: Arc<ArcSwap<Generation>>) {
        self.source = Some(source);
    }

    /// Switches to the published generation if it changed.
    #[inline]
    pub fn refresh(&mut self) {
        if let Some(src) = &self.source {
            let g = src.load();
            if g.id() != self.generation.id() {
                self.set_generation(arc_swap::Guard::into_inner(g));
            }
        }
    }

    /// The generation packets run through.
    pub fn generation(&self) -> &Arc<Generation> {
        &self.generation
    }

    /// Switches to another generation (between packets), emptying the
    /// cache: its paths name the old one's flows.
    pub fn set_generation(&mut self, generation: Arc<Generation>) {
        self.generation = generation;
        if let Some(emc) = &mut self.emc {
            emc.clear();
        }
    }

    /// The worker's action state (ports, output queues).
    pub fn state(&mut self) -> &mut PacketState {
        &mut self.state
    }

    pub fn stats(&self) -> WorkerStats {
        self.stats
    }

    pub fn counters(&self) -> &Arc<WorkerCounters> {
        &self.counters
    }

    /// Switches to a new port set (ports added or removed) with
    /// `counters`, made for it: the worker's own counts (receive, tables,
    /// drops) and its action state's (outputs) both move to them.
    pub fn set_ports(&mut self, ports: Arc<PortSet>, counters: Arc<WorkerCounters>) {
        self.state.set_ports(ports, Arc::clone(&counters));
        self.counters = counters;
    }

    /// Sends the queued outputs (see [`PacketState::flush`]).
    pub fn flush(&mut self) -> Flushed {
        self.state.flush()
    }

    /// Runs `frames`, all received on `in_port` at `now_ns`, then sends
    /// the outputs. The frames go back to the worker's pool (`frames` is
    /// left empty).
    pub fn process_batch(
        &mut self,
        frames: &mut Vec<Frame>,
        in_port: PortId,
        now_ns: u64,
    ) -> Flushed {
        self.process_frames(frames, in_port, now_ns);
        let done = self.state.flush();
        self.state.tx().pool().put_all(frames);
        done
    }

    /// Receives up to `max` frames from every port (the queue this worker
    /// serves), runs them at `now_ns` and sends the outputs. Returns the
    /// number of frames received.
    pub fn poll(&mut self, max: usize, now_ns: u64) -> Result<usize, PortError> {
        self.refresh();
        let ports = Arc::clone(self.state.ports());
        let mut total = 0;
        let mut first_error = None;
        for idx in 0..ports.len() {
            let Some(port) = ports.get(idx) else {
                continue;
            };
            let queue = (self.index % usize::from(port.queues().max(1))) as u16;
            match self.receive(&ports, idx, queue, max, now_ns) {
                Ok(n) => total += n,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let flushed = self.state.flush();
        match first_error.or(flushed.error) {
            Some(e) if total == 0 => Err(e),
            _ => Ok(total),
        }
    }

    /// Receives up to `max` frames from `queue` of the port at index `idx`
    /// of `ports`, counts them on that port, runs them at `now_ns` and
    /// recycles their buffers. Outputs stay queued ([`flush`](Self::flush)
    /// sends them). Returns the number of frames received.
    pub fn receive(
        &mut self,
        ports: &PortSet,
        idx: usize,
        queue: u16,
        max: usize,
        now_ns: u64,
    ) -> Result<usize, PortError> {
        let (Some(port), Some(id)) = (ports.get(idx), ports.id(idx)) else {
            return Ok(0);
        };
        let mut rx = std::mem::take(&mut self.rx);
        let got = port.recv(queue, self.state.tx().pool(), &mut rx, max);
        if let Ok(n @ 1..) = got {
            if let Some(c) = self.counters.port(idx) {
                c.rx_packets.add(n as u64);
                c.rx_bytes
                    .add(rx.iter().map(|f| f.len() as u64).sum::<u64>());
            }
            self.process_frames(&mut rx, id, now_ns);
        }
        self.state.tx().pool().put_all(&mut rx);
        self.rx = rx;
        got
    }

    /// Runs one packet like [`process`](Self::process), sends its outputs,
    /// and says which flow each table chose, what was sent and why the
    /// packet was dropped.
    pub fn trace(&mut self, frame: &mut Frame, in_port: PortId, now_ns: u64) -> PacketTrace {
        self.trace = Some(Vec::new());
        self.state.record_outputs(true);
        let outcome = self.process(frame, in_port, now_ns);
        let outputs = self.state.take_outputs();
        self.state.record_outputs(false);
        self.state.flush();
        PacketTrace {
            steps: self.trace.take().unwrap_or_default(),
            outputs,
            drop: outcome.drop,
        }
    }

    /// Runs one packet received on `in_port` at `now_ns`. `frame` may be
    /// left empty (its buffer queued for a port); the caller recycles it.
    /// Outputs are queued: [`flush`](Self::flush) sends them.
    #[inline]
    pub fn process(&mut self, frame: &mut Frame, in_port: PortId, now_ns: u64) -> Outcome {
        let pre = self.prepare(frame, in_port);
        self.parts().run(frame, in_port, now_ns, &pre, None)
    }

    /// Runs `frames`, all received on `in_port` at `now_ns`, like
    /// [`process`](Self::process) one after the other, but extracts every
    /// key and looks every one up in the cache first, so that the cache's
    /// memory accesses overlap. Outputs are queued.
    ///
    /// A packet whose cached path starts with a flow that has a lean
    /// program takes the fast path (module `pipeline::hit`), which ends it
    /// exactly as the general path would unless the program's result needs
    /// the general path (then it carries on from there).
    pub fn process_frames(&mut self, frames: &mut [Frame], in_port: PortId, now_ns: u64) {
        let mut pre = std::mem::take(&mut self.pre);
        // Slots written in place (the first `frames.len()` are this batch's).
        if pre.len() < frames.len() {
            pre.resize(frames.len(), Prepared::default());
        }
        // Two passes, so that the cache probes' misses overlap: every key
        // and its bucket's prefetch, then every probe.
        for (slot, f) in pre.iter_mut().zip(frames.iter()) {
            self.extract_slot(f, in_port, slot);
        }
        let flows = self.generation.flow_stats().worker(self.index);
        for slot in pre.iter_mut().take(frames.len()) {
            self.probe(slot, flows);
        }
        let mut parts = self.parts();
        let gen = parts.gen;
        // The programs' entries were prefetched by `probe`; now their code.
        for p in pre.iter().take(frames.len()) {
            let Some(f) = p.flow_to_run() else { continue };
            let addr = match gen.lean(f) {
                Some(l) => Some(l.code_addr()),
                None => gen.program(f).and_then(Loaded::code_addr),
            };
            if let Some(addr) = addr {
                prefetch(addr as *const u8);
            }
        }
        // Without tracing (which only `trace` turns on, for one packet).
        let fast = parts.fast_hits && parts.trace.is_none() && !parts.state.recording();
        let mut tally = Tally::default();
        let flows = gen.flow_stats().worker(parts.index);
        let now_ms = now_ns / 1_000_000;
        for (f, p) in frames.iter_mut().zip(pre.iter()) {
            // A reused code, or else the first flow's lean program (NO_FLOW
            // has none).
            let start = match (fast, p.cached()) {
                (true, Some(c)) if c.reuse => Some((c, None)),
                (true, Some(c)) if c.len > 0 => gen.lean(c.flows[0]).map(|l| (c, Some(l))),
                _ => None,
            };
            let mut first = None;
            if let Some((c, lean)) = start {
                let flow = c.flows[0];
                let mut hc = HitCx {
                    ctx: parts.ctx,
                    scratch: parts.scratch,
                    state: parts.state,
                    counters: parts.counters,
                    flows,
                    now_ms,
                    tally,
                };
                let r = match lean {
                    Some(code) => hc.run(code, flow, f, &p.parsed),
                    None => hc.reuse(c.first_code(), flow, f, &p.parsed),
                };
                tally = hc.tally;
                match r {
                    None => continue,
                    Some(r) => first = Some(r),
                }
            }
            parts.run(f, in_port, now_ns, p, first);
        }
        tally.commit(parts.counters, parts.stats);
        self.pre = pre;
    }

    /// The first half of a packet: its key, and its cached path if any
    /// (whose first flow's program entry and counters it prefetches).
    #[inline]
    fn prepare(&self, frame: &Frame, in_port: PortId) -> Prepared {
        let mut p = Prepared::default();
        self.extract_slot(frame, in_port, &mut p);
        self.probe(&mut p, self.generation.flow_stats().worker(self.index));
        p
    }

    /// The first step of [`prepare`](Self::prepare), into `out` (a batch's
    /// slot, written in place): the key, its cache hash, and a prefetch of
    /// its cache bucket, which [`probe`](Self::probe) reads once the whole
    /// batch is extracted.
    #[inline]
    fn extract_slot(&self, frame: &Frame, in_port: PortId, out: &mut Prepared) {
        match extract_into(frame.data(), in_port, &mut out.parsed) {
            Ok(()) => {
                out.drop = None;
                if let Some(emc) = &self.emc {
                    out.hash = Emc::<CachedPath>::hash(&out.parsed.key);
                    emc.prefetch(out.hash);
                }
            }
            Err(e) => out.drop = Some(DropReason::Parse(e.kind())),
        }
    }

    /// The second step: looks the key up in the cache and, on a hit,
    /// prefetches the first flow's program entry and its counters among
    /// `flows` (this worker's, looked up once per batch).
    #[inline]
    fn probe(&self, out: &mut Prepared, flows: Option<&[FlowCounters]>) {
        out.cached = None;
        if out.drop.is_some() {
            return;
        }
        let gen = &self.generation;
        let cached = self
            .emc
            .as_ref()
            .and_then(|e| e.get_hashed(&out.parsed.key, out.hash));
        let Some(c) = cached else { return };
        out.cached = Some(c);
        if c.len == 0 {
            return;
        }
        let f = c.flows[0];
        // Only addresses: neither entry is read here. A reused code needs
        // neither.
        if let (false, Some(l)) = (c.reuse, gen.lean_slot(f)) {
            prefetch(l);
        }
        if !c.reuse && !gen.all_lean() {
            if let Some(p) = gen.program(f) {
                prefetch(p);
            }
        }
        if let Some(c) = flows.and_then(|c| c.get(f as usize)) {
            prefetch(c);
        }
    }

    /// The worker's parts, borrowed apart.
    #[inline]
    fn parts(&mut self) -> Parts<'_> {
        Parts {
            index: self.index,
            gen: &self.generation,
            emc: &mut self.emc,
            state: &mut self.state,
            ctx: &mut self.ctx,
            scratch: &mut self.scratch,
            counters: &self.counters,
            trace: &mut self.trace,
            stats: &mut self.stats,
            fast_hits: self.fast_hits,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::generation::NO_FLOW;
    use super::super::hit::RUN_ERROR;
    use super::*;
    use crate::flow::compile::Verdict;

    #[test]
    fn a_cached_path_keeps_every_verdict_code_and_runs_what_does_not_fit() {
        let flows = [7, NO_FLOW, 0, 0, 0, 0];
        for v in [
            Verdict::Output(u32::MAX),
            Verdict::Output(2),
            Verdict::Goto(255),
            Verdict::Drop(crate::flow::compile::DropReason::Ttl),
            Verdict::Done,
        ] {
            let c = CachedPath::new(flows, 2, true, v.code());
            assert!(c.reuse, "{v:?}");
            assert_eq!(c.first_code(), v.code(), "{v:?}");
            assert_eq!(Verdict::from_code(c.first_code()), Some(v));
        }
        // A code no verdict has, too wide for the entry: run, not reused.
        let c = CachedPath::new(flows, 2, true, RUN_ERROR);
        assert!(!c.reuse);
        // Not key-determined: never reused.
        assert!(!CachedPath::new(flows, 2, false, Verdict::Done.code()).reuse);
    }
}
