//! The abstract interpretation: a worklist over (call context, block start)
//! pairs. States are stored only where blocks start and are joined there;
//! after a few changes at the same place they are widened, so loops converge
//! quickly. `call local` is analysed per call site: every call chain is its
//! own context, at most [`MAX_CALL_DEPTH`] deep.

use std::collections::{BTreeSet, HashMap};

use super::cfg::{at, Cfg};
use super::error::{Reason, VerifyError};
use super::mem::{self, read, set};
use super::scalar::Scalar;
use super::state::{Frame, Ptr, PtrKind, Reg, State};
use super::step;
use crate::ebpf::insn::{Insn, Op};
use crate::ebpf::vm::{Entry, MemAccess, MAX_CALL_DEPTH};
use crate::ebpf::ProgEnv;

/// Joins at one place before its state is widened.
const WIDEN_AFTER: u32 = 3;

/// A chain of `call local` sites.
struct Context {
    /// Context of the caller (`None` for the entry function).
    parent: Option<u32>,
    /// Slot of the `call local` that entered this context.
    call_pc: usize,
    /// First slot of the function this context runs.
    entry: usize,
}

/// A stored block-entry state.
struct Slot {
    state: State,
    changes: u32,
}

/// How control leaves an instruction.
enum Flow {
    Next,
    Jump(usize),
    Branch(Option<State>, Option<State>),
    Stop,
}

pub struct Analyzer<'a> {
    cfg: &'a Cfg,
    env: &'a ProgEnv,
    contexts: Vec<Context>,
    context_ids: HashMap<(u32, usize), u32>,
    slots: HashMap<(u32, usize), Slot>,
    /// Pending (slot, context) pairs, lowest slot first.
    work: BTreeSet<(usize, u32)>,
    pub access: Vec<Option<MemAccess>>,
    pub callx: Vec<Option<u32>>,
    steps: usize,
    max_steps: usize,
}

impl<'a> Analyzer<'a> {
    pub fn new(insns: &[Insn], cfg: &'a Cfg, env: &'a ProgEnv, max_steps: usize) -> Self {
        Analyzer {
            cfg,
            env,
            contexts: vec![Context {
                parent: None,
                call_pc: 0,
                entry: 0,
            }],
            context_ids: HashMap::new(),
            slots: HashMap::new(),
            work: BTreeSet::new(),
            access: vec![None; insns.len()],
            callx: vec![None; insns.len()],
            steps: 0,
            max_steps,
        }
    }

    fn entry_state(&self) -> State {
        let mut f = Frame::new(0);
        match &self.env.entry {
            Entry::MemLen => {
                f.regs[1] = Reg::Ptr(Ptr::at(PtrKind::Packet, 0));
                f.regs[2] = Reg::Scalar(Scalar {
                    pkt_len: true,
                    ..Scalar::urange(0, i64::MAX as u64)
                });
            }
            Entry::Ctx(_) => f.regs[1] = Reg::Ptr(Ptr::at(PtrKind::Ctx, 0)),
        }
        State {
            frames: vec![f],
            pkt_min: 0,
        }
    }

    /// Runs the analysis to a fixed point.
    pub fn run(&mut self) -> Result<(), VerifyError> {
        let init = self.entry_state();
        self.propagate(0, 0, init);
        while let Some((pc, ctx)) = self.work.pop_first() {
            let Some(state) = self.slots.get(&(ctx, pc)).map(|s| s.state.clone()) else {
                continue;
            };
            self.run_block(ctx, pc, state)?;
        }
        Ok(())
    }

    /// Joins `st` into the state stored at (`ctx`, `pc`) and queues the
    /// block if that changed anything.
    fn propagate(&mut self, ctx: u32, pc: usize, st: State) {
        use std::collections::hash_map::Entry as E;
        match self.slots.entry((ctx, pc)) {
            E::Vacant(v) => {
                v.insert(Slot {
                    state: st,
                    changes: 0,
                });
            }
            E::Occupied(mut o) => {
                let slot = o.get_mut();
                let joined = slot.state.join(&st, slot.changes >= WIDEN_AFTER);
                if joined == slot.state {
                    return;
                }
                slot.state = joined;
                slot.changes += 1;
            }
        }
        self.work.insert((pc, ctx));
    }

    fn run_block(&mut self, ctx: u32, start: usize, mut st: State) -> Result<(), VerifyError> {
        let mut pc = start;
        loop {
            let op = self
                .cfg
                .ops
                .get(pc)
                .copied()
                .flatten()
                .ok_or(VerifyError::At {
                    pc,
                    insn: String::new(),
                    reason: Reason::JumpIntoLddw { target: pc },
                })?;
            self.steps += 1;
            if self.steps > self.max_steps {
                return Err(at(
                    pc,
                    &op,
                    Reason::TooComplex {
                        steps: self.max_steps,
                    },
                ));
            }
            let flow = self
                .step(ctx, pc, &op, &mut st)
                .map_err(|r| at(pc, &op, r))?;
            match flow {
                Flow::Next => {
                    pc += op.slots();
                    if self.cfg.leader.get(pc).copied().unwrap_or(true) {
                        self.propagate(ctx, pc, st);
                        return Ok(());
                    }
                }
                Flow::Jump(t) => {
                    self.propagate(ctx, t, st);
                    return Ok(());
                }
                Flow::Branch(taken, fall) => {
                    let t = jump_target(pc, &op);
                    if let Some(s) = fall {
                        self.propagate(ctx, pc + 1, s);
                    }
                    if let Some(s) = taken {
                        self.propagate(ctx, t, s);
                    }
                    return Ok(());
                }
                Flow::Stop => return Ok(()),
            }
        }
    }

    fn record(&mut self, pc: usize, reg: u8, acc: MemAccess) -> Result<(), Reason> {
        match self.access.get_mut(pc) {
            Some(Some(prev)) => {
                if prev.region != acc.region {
                    return Err(Reason::RegionConflict {
                        reg,
                        region: acc.region,
                        other: prev.region,
                    });
                }
                prev.guard |= acc.guard;
            }
            Some(slot) => *slot = Some(acc),
            None => {}
        }
        Ok(())
    }

    fn layout(&self) -> Option<&'a crate::ebpf::vm::CtxLayout> {
        match &self.env.entry {
            Entry::Ctx(l) => Some(l),
            Entry::MemLen => None,
        }
    }

    fn step(&mut self, ctx: u32, pc: usize, op: &Op, st: &mut State) -> Result<Flow, Reason> {
        match *op {
            Op::Alu { wide, op, dst, src } => step::alu(st, wide, op, dst, src)?,
            Op::Neg { wide, dst } => step::neg(st, wide, dst)?,
            Op::End { kind, bits, dst } => step::end(st, kind, bits, dst)?,
            Op::Lddw { dst, imm, .. } => set(st, dst, Reg::Scalar(Scalar::constant(imm))),
            Op::Ja { .. } => return Ok(Flow::Jump(jump_target(pc, op))),
            Op::Jmp {
                wide,
                cond,
                dst,
                src,
                ..
            } => {
                let (t, f) = step::jump(std::mem::take(st), wide, cond, dst, src)?;
                return Ok(Flow::Branch(t, f));
            }
            Op::Ldx {
                size,
                signed,
                dst,
                src,
                off,
            } => {
                let acc = mem::load(st, self.layout(), size, signed, dst, src, off)?;
                self.record(pc, src, acc)?;
            }
            Op::St {
                size,
                dst,
                off,
                imm,
            } => {
                let v = Reg::Scalar(Scalar::constant(i64::from(imm) as u64));
                let acc = mem::store(st, self.layout(), size, dst, off, v, None)?;
                self.record(pc, dst, acc)?;
            }
            Op::Stx {
                size,
                dst,
                src,
                off,
            } => {
                let v = read(st, src)?;
                let acc = mem::store(st, self.layout(), size, dst, off, v, Some(src))?;
                self.record(pc, dst, acc)?;
            }
            Op::Atomic {
                size,
                op,
                fetch,
                dst,
                src,
                off,
            } => {
                let acc = mem::atomic(st, self.layout(), size, (op, fetch), dst, src, off)?;
                self.record(pc, dst, acc)?;
            }
            Op::Call { helper } => {
                let h = u32::try_from(helper)
                    .ok()
                    .and_then(|id| self.env.helpers.get(id))
                    .ok_or(Reason::UnknownHelper {
                        id: i64::from(helper),
                    })?;
                step::helper_call(st, h)?;
            }
            Op::CallX { reg } => {
                let h = step::callx_target(st, &self.env.helpers, reg)?;
                match self.callx.get_mut(pc) {
                    Some(Some(prev)) if *prev != h.id => {
                        return Err(Reason::CallxAmbiguous {
                            reg,
                            a: *prev,
                            b: h.id,
                        })
                    }
                    Some(slot) => *slot = Some(h.id),
                    None => {}
                }
                step::helper_call(st, h)?;
            }
            Op::CallLocal { .. } => {
                self.call_local(ctx, pc, jump_target(pc, op), std::mem::take(st))?;
                return Ok(Flow::Stop);
            }
            Op::Exit => {
                self.exit(ctx, std::mem::take(st))?;
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Next)
    }

    /// Is `entry` already running somewhere in the chain of `ctx`?
    fn recursive(&self, mut ctx: u32, entry: usize) -> bool {
        loop {
            let Some(c) = self.contexts.get(ctx as usize) else {
                return false;
            };
            if c.entry == entry {
                return true;
            }
            match c.parent {
                Some(p) => ctx = p,
                None => return false,
            }
        }
    }

    fn call_local(
        &mut self,
        ctx: u32,
        pc: usize,
        target: usize,
        mut st: State,
    ) -> Result<(), Reason> {
        let depth = st.frames.len();
        if depth + 1 > MAX_CALL_DEPTH {
            if self.recursive(ctx, target) {
                // Recursion: at run time this call fails with CallDepth, so
                // the path ends here.
                return Ok(());
            }
            return Err(Reason::CallDepth { depth: depth + 1 });
        }
        let mut callee = Frame::new(depth as u8);
        if let Some(caller) = st.cur() {
            callee.regs[1..=5].copy_from_slice(&caller.regs[1..=5]);
        }
        st.frames.push(callee);
        let id = match self.context_ids.get(&(ctx, pc)) {
            Some(&id) => id,
            None => {
                let id = self.contexts.len() as u32;
                self.contexts.push(Context {
                    parent: Some(ctx),
                    call_pc: pc,
                    entry: target,
                });
                self.context_ids.insert((ctx, pc), id);
                id
            }
        };
        self.propagate(id, target, st);
        Ok(())
    }

    fn exit(&mut self, ctx: u32, mut st: State) -> Result<(), Reason> {
        let r0 = read(&st, 0)?;
        let (parent, call_pc) = match self.contexts.get(ctx as usize) {
            Some(Context {
                parent: Some(p),
                call_pc,
                ..
            }) => (*p, *call_pc),
            _ => {
                if let Reg::Ptr(p) = r0 {
                    return Err(Reason::PointerReturned { kind: p.kind });
                }
                return Ok(());
            }
        };
        let own = st.frames.len().saturating_sub(1);
        if let Reg::Ptr(Ptr {
            kind: PtrKind::Stack { frame },
            ..
        }) = r0
        {
            if usize::from(frame) >= own {
                return Err(Reason::ReturnsOwnStack);
            }
        }
        st.frames.pop();
        for f in &mut st.frames {
            f.stack.forget_ptrs(
                |p| matches!(p.kind, PtrKind::Stack { frame } if usize::from(frame) >= own),
            );
        }
        set(&mut st, 0, r0);
        for r in 1..=5 {
            set(&mut st, r, Reg::Uninit);
        }
        self.propagate(parent, call_pc + 1, st);
        Ok(())
    }
}

/// Target slot of a jump or `call local` at `pc` (checked by [`super::cfg`]).
fn jump_target(pc: usize, op: &Op) -> usize {
    let off = match *op {
        Op::Ja { off } | Op::CallLocal { off } => i64::from(off),
        Op::Jmp { off, .. } => i64::from(off),
        _ => 0,
    };
    (pc as i64 + 1 + off) as usize
}
