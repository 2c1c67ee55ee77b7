//! The abstract interpretation: a worklist over (call context, block start)
//! pairs. States are stored only where blocks start and are joined there;
//! after a few changes at the same place they are widened, so loops converge
//! quickly. `call local` is analysed per call site: every call chain is its
//! own context, at most [`MAX_CALL_DEPTH`] deep.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use super::cfg::{at, Cfg};
use super::error::{Reason, VerifyError};
use super::mem::{self, read, set};
use super::scalar::{Scalar, Thresholds};
use super::state::{Frame, Ptr, PtrKind, Reg, State};
use super::step;
use crate::ebpf::insn::{Insn, Op, Src, LDDW_MAP};
use crate::ebpf::vm::{Entry, MemAccess, MAX_CALL_DEPTH};
use crate::ebpf::ProgEnv;

/// Joins at one place before its state is widened.
const WIDEN_AFTER: u32 = 3;
/// Widenings at one place that may stop at thresholds; later ones go
/// straight to the extremes (a loop over many compared constants would
/// otherwise step through them one at a time).
const THRESHOLD_WIDENINGS: u32 = 4;
/// Analysis steps charged per call frame each time a state is joined or
/// stored, so that the step cap also bounds time spent on large states.
const STEPS_PER_FRAME_JOIN: usize = 8;

/// Cap on call frames held in stored block states (about 800 bytes each),
/// which bounds the analysis' memory for call-heavy programs.
pub const MAX_STORED_FRAMES: usize = 1 << 14;

/// Hasher for the small integer keys of the analysis' maps (SipHash's
/// flooding resistance is not needed: keys are slot and context numbers,
/// bounded by the analysis caps).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(26) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }

    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

type Map<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

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
    /// In the worklist already.
    queued: bool,
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
    context_ids: Map<(u32, usize), u32>,
    /// States of the entry function's blocks, by slot.
    root_slots: Vec<Option<Slot>>,
    /// States of blocks in called contexts.
    call_slots: Map<(u32, usize), Slot>,
    /// Pending (slot, context) pairs, lowest slot first.
    work: BinaryHeap<Reverse<(usize, u32)>>,
    pub access: Vec<Option<MemAccess>>,
    pub callx: Vec<Option<u32>>,
    /// Built on first use: most programs never widen.
    thresholds: Option<Thresholds>,
    /// No thresholds: widening to the extremes.
    extremes: Thresholds,
    stored_frames: usize,
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
            context_ids: Map::default(),
            root_slots: std::iter::repeat_with(|| None).take(insns.len()).collect(),
            call_slots: Map::default(),
            work: BinaryHeap::new(),
            access: vec![None; insns.len()],
            callx: vec![None; insns.len()],
            thresholds: None,
            extremes: Thresholds::default(),
            stored_frames: 0,
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
        self.propagate(0, 0, init).map_err(|r| VerifyError::At {
            pc: 0,
            insn: String::new(),
            reason: r,
        })?;
        while let Some(Reverse((pc, ctx))) = self.work.pop() {
            let slot = if ctx == 0 {
                self.root_slots.get_mut(pc).and_then(Option::as_mut)
            } else {
                self.call_slots.get_mut(&(ctx, pc))
            };
            let Some(slot) = slot else { continue };
            slot.queued = false;
            let state = slot.state.clone();
            self.run_block(ctx, pc, state)?;
        }
        Ok(())
    }

    /// Joins `st` into the state stored at (`ctx`, `pc`) and queues the
    /// block if that changed anything.
    fn propagate(&mut self, ctx: u32, pc: usize, st: State) -> Result<(), Reason> {
        self.steps += st.frames.len() * STEPS_PER_FRAME_JOIN;
        let existing = if ctx == 0 {
            self.root_slots.get_mut(pc).and_then(Option::as_mut)
        } else {
            self.call_slots.get_mut(&(ctx, pc))
        };
        match existing {
            Some(slot) => {
                let widen = if slot.changes >= WIDEN_AFTER + THRESHOLD_WIDENINGS {
                    Some(&self.extremes)
                } else if slot.changes >= WIDEN_AFTER {
                    Some(&*self.thresholds.get_or_insert_with(|| thresholds(self.cfg)))
                } else {
                    None
                };
                if !slot.state.join_from(&st, widen) {
                    return Ok(());
                }
                slot.changes += 1;
                if slot.queued {
                    return Ok(());
                }
                slot.queued = true;
            }
            None => {
                self.stored_frames += st.frames.len();
                if self.stored_frames > MAX_STORED_FRAMES {
                    return Err(Reason::TooManyStates {
                        frames: MAX_STORED_FRAMES,
                    });
                }
                let slot = Slot {
                    state: st,
                    changes: 0,
                    queued: true,
                };
                if ctx == 0 {
                    if let Some(s) = self.root_slots.get_mut(pc) {
                        *s = Some(slot);
                    }
                } else {
                    self.call_slots.insert((ctx, pc), slot);
                }
            }
        }
        self.work.push(Reverse((pc, ctx)));
        Ok(())
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
                    let next = pc + op.slots();
                    if self.cfg.leader.get(next).copied().unwrap_or(true) {
                        return self.propagate(ctx, next, st).map_err(|r| at(pc, &op, r));
                    }
                    pc = next;
                }
                Flow::Jump(t) => {
                    return self.propagate(ctx, t, st).map_err(|r| at(pc, &op, r));
                }
                Flow::Branch(taken, fall) => {
                    let t = jump_target(pc, &op);
                    let back_edge = taken.is_some() && t <= pc;
                    if let Some(s) = taken {
                        self.propagate(ctx, t, s).map_err(|r| at(pc, &op, r))?;
                    }
                    let next = pc + 1;
                    let joins = self.cfg.leader.get(next).copied().unwrap_or(true);
                    match fall {
                        // Nothing else arrives there and no loop iteration is
                        // pending before it: keep going in this block. (After
                        // a back edge the loop runs to its fixed point first,
                        // and the code after it is analysed once.)
                        Some(s) if !joins && !back_edge => {
                            st = s;
                            pc = next;
                        }
                        Some(s) => return self.propagate(ctx, next, s).map_err(|r| at(pc, &op, r)),
                        None => return Ok(()),
                    }
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

    fn mem_env(&self) -> mem::MemEnv<'a> {
        mem::MemEnv {
            layout: match &self.env.entry {
                Entry::Ctx(l) => Some(l),
                Entry::MemLen => None,
            },
            maps: &self.env.maps,
        }
    }

    fn step(&mut self, ctx: u32, pc: usize, op: &Op, st: &mut State) -> Result<Flow, Reason> {
        match *op {
            Op::Alu { wide, op, dst, src } => step::alu(st, pc, wide, op, dst, src)?,
            Op::Neg { wide, dst } => step::neg(st, wide, dst)?,
            Op::End { kind, bits, dst } => step::end(st, kind, bits, dst)?,
            Op::Lddw {
                dst,
                imm,
                kind: LDDW_MAP,
            } => {
                let map = u32::try_from(imm).map_err(|_| Reason::UnknownMap { index: imm })?;
                set(st, dst, Reg::Ptr(Ptr::at(PtrKind::MapHandle { map }, 0)));
            }
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
                let acc = mem::load(st, &self.mem_env(), size, signed, dst, src, off)?;
                self.record(pc, src, acc)?;
            }
            Op::St {
                size,
                dst,
                off,
                imm,
            } => {
                let v = Reg::Scalar(Scalar::constant(i64::from(imm) as u64));
                let acc = mem::store(st, &self.mem_env(), size, dst, off, v, None)?;
                self.record(pc, dst, acc)?;
            }
            Op::Stx {
                size,
                dst,
                src,
                off,
            } => {
                let v = read(st, src)?;
                let acc = mem::store(st, &self.mem_env(), size, dst, off, v, Some(src))?;
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
                let acc = mem::atomic(st, &self.mem_env(), size, (op, fetch), dst, src, off)?;
                self.record(pc, dst, acc)?;
            }
            Op::Call { helper } => {
                let h = u32::try_from(helper)
                    .ok()
                    .and_then(|id| self.env.helpers.get(id))
                    .ok_or(Reason::UnknownHelper {
                        id: i64::from(helper),
                    })?;
                step::helper_call(st, h, &self.env.maps, pc)?;
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
                step::helper_call(st, h, &self.env.maps, pc)?;
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
        self.propagate(id, target, st)
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
        self.propagate(parent, call_pc + 1, st)
    }
}

/// Widening thresholds: every immediate a conditional jump compares with,
/// as a 64-bit value and as its low 32 bits.
fn thresholds(cfg: &Cfg) -> Thresholds {
    Thresholds::new(
        cfg.ops
            .iter()
            .flatten()
            .filter_map(|op| match *op {
                Op::Jmp {
                    src: Src::Imm(c), ..
                } => Some([i64::from(c), i64::from(c as u32)]),
                _ => None,
            })
            .flatten(),
    )
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
