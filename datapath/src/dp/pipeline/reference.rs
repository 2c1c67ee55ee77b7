//! The reference semantics of the pipeline: what the fast path (cache,
//! classifier, JIT) must reproduce byte for byte.
//!
//! For table 0, then each table a `goto_table` names: scan the table's
//! flows in descending priority (ties never overlap), run each flow's
//! program with the interpreter, and take the first that does not return
//! NOMATCH. Its return code ends the packet (done, output, dropped) or names the
//! next table; a table where no flow accepts applies the miss policy. The
//! flow context, the helpers and the action state are the same as the fast
//! path's; only the choice of flows (a linear scan, no cache, no
//! classifier) and the engine (always the interpreter) differ.

use std::sync::Arc;

use thiserror::Error;

use super::drop_reason;
use super::exec;
use super::generation::{Generation, MissPolicy};
use super::worker::{PacketTrace, Step};
use crate::dp::actions::{PacketState, FINAL};
use crate::dp::port::{Frame, PortId};
use crate::dp::stats::DropReason;
use crate::ebpf::engine::{Engine, Loaded};
use crate::ebpf::jit::JitScratch;
use crate::flow::compile::{FlowCtx, Verdict};
use crate::packet::extract;

/// Why a reference runner cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReferenceError {
    #[error(
        "the reference runs the interpreter: build the generation with engine interp, not {0}"
    )]
    NotInterp(&'static str),
}

/// Runs packets by the reference semantics; see the [module docs](self).
pub struct Reference {
    generation: Arc<Generation>,
    state: PacketState,
    ctx: FlowCtx,
    /// Unused by the interpreter; the run function takes one.
    scratch: JitScratch,
}

impl std::fmt::Debug for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reference")
            .field("generation", &self.generation.id())
            .finish_non_exhaustive()
    }
}

impl Reference {
    /// A runner over `generation` (built for the interpreter) with its own
    /// action state (ports, MAC table, meters of its own switch).
    pub fn new(generation: Arc<Generation>, state: PacketState) -> Result<Self, ReferenceError> {
        if generation.engine() != Engine::Interp {
            return Err(ReferenceError::NotInterp(generation.engine().name()));
        }
        Ok(Reference {
            generation,
            state,
            ctx: FlowCtx::new(&Default::default(), 0, 0, 0, 0),
            scratch: JitScratch::new(),
        })
    }

    /// The action state (ports, output queues).
    pub fn state(&mut self) -> &mut PacketState {
        &mut self.state
    }

    /// Runs one packet received on `in_port` at `now_ns`, sends its
    /// outputs, and reports its path, outputs and drop reason.
    pub fn trace(&mut self, frame: &mut Frame, in_port: PortId, now_ns: u64) -> PacketTrace {
        let parsed = match extract(frame.data(), in_port) {
            Ok(p) => p,
            Err(e) => {
                let r = DropReason::Parse(e.kind());
                self.state.counters().count_drop(r);
                return PacketTrace {
                    steps: Vec::new(),
                    outputs: Vec::new(),
                    drop: Some(r),
                };
            }
        };
        self.state.record_outputs(true);
        self.state.begin(in_port, now_ns);
        exec::begin_ctx(&mut self.ctx, frame, &parsed);
        let gen = Arc::clone(&self.generation);
        let mut steps = Vec::new();
        let mut table = 0u8;
        let verdict = loop {
            self.ctx.set_table(u32::from(table));
            let mut chosen = None;
            for &f in gen.table(table).map_or(&[][..], |t| &t.by_priority[..]) {
                let Some(prog) = gen.program(f) else { continue };
                let r = self.run(prog, frame);
                if r != Ok(Verdict::NoMatch.code()) {
                    chosen = Some((f, r));
                    break;
                }
            }
            let Some((f, r)) = chosen else {
                steps.push(Step { table, flow: None });
                break match gen.miss() {
                    MissPolicy::Drop => Some(DropReason::NoMatch),
                    MissPolicy::Normal => {
                        self.state.normal(frame.data(), FINAL);
                        None
                    }
                    MissPolicy::Flood => {
                        self.state.flood(frame.data(), FINAL);
                        None
                    }
                };
            };
            steps.push(Step {
                table,
                flow: Some(f),
            });
            match r.ok().and_then(Verdict::from_code) {
                Some(Verdict::Done) => break None,
                Some(Verdict::Output(p)) => {
                    self.state.output(frame.data(), p, FINAL);
                    break None;
                }
                Some(Verdict::Drop(r)) => break Some(drop_reason(r)),
                Some(Verdict::Goto(n)) if n > table => table = n,
                _ => break Some(DropReason::Error),
            }
        };
        let outcome = self.state.finish(frame, verdict);
        let outputs = self.state.take_outputs();
        self.state.record_outputs(false);
        self.state.flush();
        PacketTrace {
            steps,
            outputs,
            drop: outcome.drop,
        }
    }

    fn run(&mut self, prog: &Loaded, frame: &mut Frame) -> Result<u64, crate::ebpf::vm::RunError> {
        exec::run(
            prog,
            &mut self.scratch,
            frame,
            &mut self.ctx,
            &mut self.state,
        )
    }
}
