//! The general path of a packet: table by table, the cached flow or a
//! classifier lookup (whose candidates' programs decide), the actions, the
//! miss policy, and the cache update. Every packet the fast path
//! (`pipeline::hit`) does not end comes here, and every packet when
//! tracing.

use super::drop_reason;
use super::exec;
use super::generation::{Generation, MissPolicy, NO_FLOW};
use super::hit::RUN_ERROR;
use super::worker::{CachedPath, Prepared, Step, WorkerStats, PATH_MAX};
use crate::classifier::Emc;
use crate::dp::actions::{Outcome, PacketState, FINAL};
use crate::dp::port::{Frame, PortId};
use crate::dp::stats::{DropReason, WorkerCounters};
use crate::ebpf::jit::JitScratch;
use crate::flow::compile::{FlowCtx, Verdict};

/// The path of the packet being processed.
#[derive(Debug, Clone, Copy)]
struct PathRec {
    len: usize,
    flows: [u32; PATH_MAX],
    cacheable: bool,
    /// The return code of the first table's flow.
    first_code: u64,
}

impl PathRec {
    #[inline]
    fn push(&mut self, flow: u32) {
        match self.flows.get_mut(self.len) {
            Some(slot) => *slot = flow,
            None => self.cacheable = false,
        }
        self.len += 1;
    }
}

/// What choosing a flow in one table gave.
enum Choice {
    /// The flow and its program's r0 ([`RUN_ERROR`] if it failed).
    Flow(u32, u64),
    /// No flow matched: the miss policy applies.
    Miss,
}

/// A worker's parts, borrowed apart: the generation shared, the rest
/// mutable (what a packet works on).
pub(super) struct Parts<'a> {
    pub(super) index: usize,
    pub(super) gen: &'a Generation,
    pub(super) emc: &'a mut Option<Emc<CachedPath>>,
    pub(super) state: &'a mut PacketState,
    pub(super) ctx: &'a mut FlowCtx,
    pub(super) scratch: &'a mut JitScratch,
    pub(super) counters: &'a WorkerCounters,
    pub(super) trace: &'a mut Option<Vec<Step>>,
    pub(super) stats: &'a mut WorkerStats,
    pub(super) fast_hits: bool,
}

impl Parts<'_> {
    /// The second half: the tables, the actions, the cache update. With
    /// `first`, the fast path has set up the context and run the first
    /// cached flow's program, which returned `first`.
    #[inline(always)]
    pub(super) fn run(
        &mut self,
        frame: &mut Frame,
        in_port: PortId,
        now_ns: u64,
        pre: &Prepared,
        mut first: Option<u64>,
    ) -> Outcome {
        self.stats.packets += 1;
        if let Some(r) = pre.drop {
            self.counters.count_drop(r);
            return Outcome {
                sent: 0,
                drop: Some(r),
            };
        }
        let parsed = &pre.parsed;
        let mut cached = pre.cached().copied();
        let Parts {
            index,
            gen,
            emc,
            state,
            ctx,
            scratch,
            counters,
            trace,
            stats,
            ..
        } = self;
        let gen: &Generation = gen;
        state.begin(in_port, now_ns);
        state.set_offload(frame.offload());
        if first.is_none() {
            exec::begin_ctx(ctx, frame, parsed);
        }
        let mut path = PathRec {
            len: 0,
            flows: [NO_FLOW; PATH_MAX],
            cacheable: true,
            first_code: 0,
        };
        let mut asked = false;
        let now_ms = state.now_ms();
        let flow_counters = gen.flow_stats().worker(*index);
        let mut cx = Cx {
            gen,
            scratch,
            ctx,
            state,
            frame,
        };
        let mut table = 0u8;
        let verdict = loop {
            cx.ctx.set_table(u32::from(table));
            let tc = counters.table(table);
            tc.lookups.inc();
            let from_cache = cached
                .filter(|c| path.len < usize::from(c.len))
                .and_then(|c| c.flows.get(path.len).copied());
            let choice = match from_cache {
                Some(NO_FLOW) => Choice::Miss,
                Some(f) => match first.take().map_or_else(|| cx.run(f), declined) {
                    Some(r) => Choice::Flow(f, r),
                    None => {
                        // The cached flow declined (its filter): the rest
                        // of the cached path no longer applies.
                        cached = None;
                        asked = true;
                        cx.lookup(table, &mut path)
                    }
                },
                None => {
                    asked = true;
                    cx.lookup(table, &mut path)
                }
            };
            match choice {
                Choice::Miss => {
                    tc.missed.inc();
                    path.push(NO_FLOW);
                    if let Some(t) = trace {
                        t.push(Step { table, flow: None });
                    }
                    break cx.miss();
                }
                Choice::Flow(f, r) => {
                    tc.matched.inc();
                    if path.len == 0 {
                        path.first_code = r;
                    }
                    path.push(f);
                    if let Some(t) = trace {
                        t.push(Step {
                            table,
                            flow: Some(f),
                        });
                    }
                    if let Some(c) = flow_counters.and_then(|c| c.get(f as usize)) {
                        c.hit(cx.frame.len() as u64, now_ms);
                    }
                    match Verdict::from_code(r) {
                        Some(Verdict::Done) => break None,
                        Some(Verdict::Output(p)) => {
                            cx.state.output(cx.frame.data(), p, FINAL);
                            break None;
                        }
                        Some(Verdict::Drop(r)) => break Some(drop_reason(r)),
                        Some(Verdict::Goto(n)) if n > table => {
                            if gen.flow(f).is_some_and(|i| i.unstable) {
                                path.cacheable = false;
                            }
                            table = n;
                        }
                        // A backward goto, NOMATCH after actions, or a code
                        // no compiled program returns.
                        _ => {
                            path.cacheable = false;
                            break Some(DropReason::Error);
                        }
                    }
                }
            }
        };
        if asked {
            stats.emc_misses += 1;
            if path.cacheable && path.len <= PATH_MAX {
                if let Some(emc) = emc {
                    let first = path.flows[0];
                    emc.insert(
                        // The packet's original key (the context's may
                        // have been rewritten).
                        parsed.key,
                        CachedPath::new(
                            path.flows,
                            path.len as u8,
                            gen.flow(first).is_some_and(|i| i.key_determined),
                            path.first_code,
                        ),
                    );
                    stats.emc_inserts += 1;
                }
            }
        } else {
            stats.emc_hits += 1;
        }
        cx.state.finish(cx.frame, verdict)
    }
}

/// A program's r0 as [`Cx::run`] gives it: `None` when it declined.
#[inline]
fn declined(r: u64) -> Option<u64> {
    (r != Verdict::NoMatch.code()).then_some(r)
}

/// What one packet's processing works on.
struct Cx<'a> {
    gen: &'a Generation,
    scratch: &'a mut JitScratch,
    ctx: &'a mut FlowCtx,
    state: &'a mut PacketState,
    frame: &'a mut Frame,
}

impl Cx<'_> {
    /// Runs flow `f`'s program; `None` when it does not match (NOMATCH).
    #[inline]
    fn run(&mut self, f: u32) -> Option<u64> {
        let prog = self.gen.program(f)?;
        match exec::run(prog, self.scratch, self.frame, self.ctx, self.state) {
            Ok(code) if code == Verdict::NoMatch.code() => None,
            Ok(code) => Some(code),
            Err(_) => Some(RUN_ERROR),
        }
    }

    /// Asks table `table`'s classifier, running candidates' programs.
    #[inline]
    fn lookup(&mut self, table: u8, path: &mut PathRec) -> Choice {
        let gen = self.gen;
        let Some(t) = gen.table(table) else {
            return Choice::Miss;
        };
        let key = self.ctx.key();
        if !t.has_filters {
            if let Some(f) = t.classifier.lookup(&key) {
                if let Some(r) = self.run(f) {
                    return Choice::Flow(f, r);
                }
                // The program disagrees with the classifier; let the
                // filtered lookup sort it out.
                path.cacheable = false;
            } else {
                return Choice::Miss;
            }
        }
        let mut chosen = None;
        let found = t.classifier.lookup_filtered(&key, |f| match self.run(f) {
            Some(r) => {
                chosen = Some(r);
                true
            }
            None => {
                // A filter declined: the next packet with this key may
                // be accepted.
                path.cacheable = false;
                false
            }
        });
        match (found, chosen) {
            (Some(f), Some(r)) => Choice::Flow(f, r),
            _ => Choice::Miss,
        }
    }

    /// The miss policy, applied to the packet as it is now.
    fn miss(&mut self) -> Option<DropReason> {
        match self.gen.miss() {
            MissPolicy::Drop => Some(DropReason::NoMatch),
            MissPolicy::Normal => {
                self.state.normal(self.frame.data(), FINAL);
                None
            }
            MissPolicy::Flood => {
                self.state.flood(self.frame.data(), FINAL);
                None
            }
        }
    }
}
