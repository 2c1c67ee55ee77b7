//! The flow compiler: a [`FlowSpec`] becomes one eBPF program for the flow
//! environment ([`flow_env`]): r1 = the flow context ([`ctx`]), the flow
//! helpers ([`env::helper_id`]), return codes [`env::ret`]
//! (`docs/ebpf-abi.md`).
//!
//! # Program shape
//!
//! ```text
//!   r6 = r1                          ; the ctx, kept across calls
//!   match check (matchgen)           ; per alternative, jne -> next / nomatch
//!   [r1 = r6; call local FILTER; if r0 == 0 goto nomatch]
//!   actions, in order:
//!     output P      r1 = r6; r2 = P; r3 = 0; call fs_output
//!     in_port       same with r2 = ctx.in_port
//!     last action output P / in_port:
//!                   return OUTPUT | P << 8 (the switch sends the packet
//!                   to P itself: no helper call)
//!     flood/normal  r1 = r6; r2 = flags; call fs_flood / fs_normal
//!     mirror P      fs_output with flags 0
//!     meter M       r1 = r6; r2 = M; call fs_meter; if r0 == 0 goto drop_meter
//!     push/pop_vlan helper calls (they move data/data_end; inline code
//!                   reloads the packet pointers from the ctx every time)
//!     set_field     inline stores + checksum updates (setfield)
//!     dec_ttl       inline (ttl); TTL <= 1 -> drop_ttl
//!     ebpf A        r1 = r6; call local ACTION; if r0 != 0 goto drop_custom
//!     goto_table N  return GOTO | N << 8
//!     drop          return DROP | 1 << 8
//!   return DONE
//! nomatch: return NOMATCH   (and the drop exits, shared)
//! FILTER / ACTION subprograms: the user's code, appended unchanged
//! ```
//!
//! `flags` is [`env::FLAG_FINAL`] on a flood or normal that ends the list
//! (no later action, no goto_table), so the datapath may hand over the
//! packet instead of copying it. An output that ends the list becomes the
//! [`ret::OUTPUT`] return code, which means the same as a FINAL
//! `fs_output` followed by DONE.
//!
//! Every packet access is proven by the verifier from comparisons against
//! `data_end` (kernel style), so the JIT emits no bounds checks for the
//! compiled code; protocol-specific code runs only when the key says the
//! packet has that protocol (checked at run time unless the match pins it).
//!
//! # Cost
//!
//! One pass over the spec into one preallocated instruction vector; no
//! other allocation for flows without custom programs. A typical flow
//! (a 5-tuple match and an output) is about 20 instructions.

pub mod ctx;
pub mod emit;
pub mod env;
pub mod load;
pub mod matchgen;
mod pkt;
pub mod setfield;
mod ttl;

#[cfg(test)]
mod tests;

use thiserror::Error;

pub use ctx::{FlowCtx, CTX_SIZE, FLOW_CTX};
pub use env::{
    flow_env, flow_helpers, helper_id, ret, DropReason, FlowHelperFns, FlowHelperSig, Verdict,
    FLAG_FINAL, FLOW_HELPERS,
};
pub use load::{load_flows, load_flows_counted, FlowLoadError};

use crate::ebpf::insn::{decode_all, AluOp, Cond, Insn, Op};
use crate::flow::key::OFF_IN_PORT;
use crate::flow::spec::{Action, FlowSpec, PortId};
use emit::{EmitError, Emitter, Label};
use matchgen::Facts;
use pkt::{off, R_CTX};

/// Custom programs a flow may refer to, by index
/// ([`FlowSpec::filter`], [`Action::Ebpf`]). Each is a complete function
/// (it ends in `exit`; jumps and calls stay inside it); it is appended to
/// the flow's program unchanged and called with `call local`, r1 = ctx.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompileOptions<'a> {
    /// Filter programs: return non-zero for the flow to match.
    pub filters: &'a [Vec<Insn>],
    /// Action programs: return 0 to continue, non-zero to drop.
    pub actions: &'a [Vec<Insn>],
}

/// Why a flow could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CompileError {
    #[error("flow {flow}: no match alternatives")]
    NoMatches { flow: String },
    #[error("flow {flow}: custom {kind} program {index} does not exist ({count} loaded)")]
    NoCustom {
        flow: String,
        kind: &'static str,
        index: u32,
        count: usize,
    },
    #[error("flow {flow}: custom {kind} program {index}: {reason}")]
    BadCustom {
        flow: String,
        kind: &'static str,
        index: u32,
        reason: String,
    },
    #[error("flow {flow}: {source}")]
    BadValue {
        flow: String,
        source: setfield::BadValue,
    },
    #[error("flow {flow}: program too large: {source}")]
    TooLarge { flow: String, source: EmitError },
}

/// Which custom program a subprogram is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Custom {
    Filter(u32),
    Action(u32),
}

/// Shared exits, created on first use.
#[derive(Default)]
struct Exits {
    nomatch: Option<Label>,
    drops: [Option<Label>; 4],
}

impl Exits {
    fn drop(&mut self, e: &mut Emitter, r: DropReason) -> Label {
        let slot = &mut self.drops[r as usize - 1];
        *slot.get_or_insert_with(|| e.label())
    }

    fn emit(&self, e: &mut Emitter) {
        if let Some(l) = self.nomatch.filter(|&l| e.is_used(l)) {
            e.bind(l);
            e.ret(ret::NOMATCH);
        }
        let reasons = [
            DropReason::Explicit,
            DropReason::Meter,
            DropReason::Ttl,
            DropReason::Custom,
        ];
        for (slot, r) in self.drops.iter().zip(reasons) {
            if let Some(l) = slot {
                e.bind(*l);
                e.ret(Verdict::Drop(r).code());
            }
        }
    }
}

struct Compiler<'a> {
    e: Emitter,
    spec: &'a FlowSpec,
    opts: &'a CompileOptions<'a>,
    exits: Exits,
    subs: Vec<(Custom, Label)>,
}

/// Checks that `insns` is a self-contained function: it decodes, it cannot
/// run past its end, and every jump and call stays inside it.
fn check_custom(insns: &[Insn]) -> Result<(), String> {
    if insns.is_empty() {
        return Err("empty program".into());
    }
    let ops = decode_all(insns).map_err(|(pc, e)| format!("insn {pc}: {e}"))?;
    match ops.last() {
        Some((_, Op::Exit | Op::Ja { .. })) => {}
        _ => return Err("the last instruction can fall through (not exit or ja)".into()),
    }
    for (pc, op) in ops {
        let rel = match op {
            Op::Ja { off } | Op::CallLocal { off } => i64::from(off),
            Op::Jmp { off, .. } => i64::from(off),
            _ => continue,
        };
        let target = pc as i64 + 1 + rel;
        if target < 0 || target >= insns.len() as i64 {
            return Err(format!(
                "insn {pc}: jump or call to {target} leaves the program"
            ));
        }
    }
    Ok(())
}

impl<'a> Compiler<'a> {
    fn name(&self) -> String {
        self.spec.name.clone()
    }

    /// The label of a custom program's subprogram (appended at the end).
    fn custom(&mut self, which: Custom) -> Result<Label, CompileError> {
        if let Some(&(_, l)) = self.subs.iter().find(|(c, _)| *c == which) {
            return Ok(l);
        }
        let (kind, index, list) = match which {
            Custom::Filter(i) => ("filter", i, self.opts.filters),
            Custom::Action(i) => ("action", i, self.opts.actions),
        };
        let insns = list
            .get(index as usize)
            .ok_or_else(|| CompileError::NoCustom {
                flow: self.name(),
                kind,
                index,
                count: list.len(),
            })?;
        check_custom(insns).map_err(|reason| CompileError::BadCustom {
            flow: self.name(),
            kind,
            index,
            reason,
        })?;
        let l = self.e.label();
        self.subs.push((which, l));
        Ok(l)
    }

    fn nomatch(&mut self) -> Label {
        let e = &mut self.e;
        *self.exits.nomatch.get_or_insert_with(|| e.label())
    }

    /// `helper(ctx, a2, a3)` with constant arguments (`None` = unused).
    fn call(&mut self, helper: u32, a2: Option<u64>, a3: Option<u64>) {
        self.e.mov_reg(1, R_CTX);
        if let Some(v) = a2 {
            self.e.mov_const(2, v);
        }
        if let Some(v) = a3 {
            self.e.mov_const(3, v);
        }
        self.e.call(helper);
    }

    fn output(&mut self, port: PortId, flags: u64) {
        self.call(helper_id::OUTPUT, Some(u64::from(port)), Some(flags));
    }

    fn compile(mut self) -> Result<Vec<Insn>, CompileError> {
        let spec = self.spec;
        if spec.matches.is_empty() {
            return Err(CompileError::NoMatches { flow: self.name() });
        }
        self.e.mov_reg(R_CTX, 1);
        let nomatch = self.nomatch();
        matchgen::emit(&mut self.e, &spec.matches, nomatch);
        if let Some(i) = spec.filter {
            let l = self.custom(Custom::Filter(i))?;
            self.e.mov_reg(1, R_CTX);
            self.e.call_local(l);
            self.e.jmp_imm(true, Cond::Eq, 0, 0, nomatch);
        }
        let mut facts = Facts::of(&spec.matches);
        let n = spec.actions.len();
        let mut finished = false;
        for (i, a) in spec.actions.iter().enumerate() {
            let last = i + 1 == n;
            let final_flag = if last { FLAG_FINAL } else { 0 };
            match a {
                Action::Output(ports) => {
                    for (j, &p) in ports.iter().enumerate() {
                        if last && j + 1 == ports.len() {
                            self.e.ret(Verdict::Output(p).code());
                            finished = true;
                        } else {
                            self.output(p, 0);
                        }
                    }
                }
                Action::InPort if last => {
                    // r0 = OUTPUT | in_port << 8
                    self.e.ldx(4, 0, R_CTX, off(OFF_IN_PORT));
                    self.e.alu64_imm(AluOp::Lsh, 0, 8);
                    self.e.alu64_imm(AluOp::Or, 0, ret::OUTPUT as i32);
                    self.e.exit();
                    finished = true;
                }
                Action::InPort => {
                    self.e.ldx(4, 2, R_CTX, off(OFF_IN_PORT));
                    self.call(helper_id::OUTPUT, None, Some(0));
                }
                Action::Flood => self.call(helper_id::FLOOD, Some(final_flag), None),
                Action::Normal => self.call(helper_id::NORMAL, Some(final_flag), None),
                Action::Mirror(p) => self.output(*p, 0),
                Action::Drop => {
                    self.e.ret(Verdict::Drop(DropReason::Explicit).code());
                    finished = true;
                }
                Action::GotoTable(t) => {
                    self.e.ret(Verdict::Goto(*t).code());
                    finished = true;
                }
                Action::Meter(m) => {
                    self.call(helper_id::METER, Some(u64::from(*m)), None);
                    let l = self.exits.drop(&mut self.e, DropReason::Meter);
                    self.e.jmp_imm(true, Cond::Eq, 0, 0, l);
                }
                Action::PushVlan { vid, pcp } => {
                    let tci = (u64::from(*pcp & 7) << 13) | u64::from(*vid & 0x0fff);
                    self.call(helper_id::PUSH_VLAN, Some(tci), None);
                    facts.vlan_tagged = None;
                }
                Action::PopVlan => {
                    self.call(helper_id::POP_VLAN, None, None);
                    facts.vlan_tagged = None;
                }
                Action::SetField(fields) => {
                    setfield::emit(&mut self.e, &facts, fields).map_err(|source| {
                        CompileError::BadValue {
                            flow: self.name(),
                            source,
                        }
                    })?
                }
                Action::DecTtl => {
                    let l = self.exits.drop(&mut self.e, DropReason::Ttl);
                    ttl::emit(&mut self.e, &facts, l);
                }
                Action::Ebpf(i) => {
                    let l = self.custom(Custom::Action(*i))?;
                    self.e.mov_reg(1, R_CTX);
                    self.e.call_local(l);
                    let d = self.exits.drop(&mut self.e, DropReason::Custom);
                    self.e.jmp_imm(true, Cond::Ne, 0, 0, d);
                    // The program may have rewritten the key.
                    facts = Facts::NONE;
                }
            }
            if finished {
                break;
            }
        }
        if !finished {
            self.e.ret(ret::DONE);
        }
        self.exits.emit(&mut self.e);
        for &(which, l) in &self.subs {
            let code = match which {
                Custom::Filter(i) => self.opts.filters.get(i as usize),
                Custom::Action(i) => self.opts.actions.get(i as usize),
            };
            self.e.bind(l);
            if let Some(code) = code {
                self.e.raw(code);
            }
        }
        let flow = &spec.name;
        self.e.finish().map_err(|source| CompileError::TooLarge {
            flow: flow.clone(),
            source,
        })
    }
}

/// Slots to reserve for a flow's program.
fn size_hint(spec: &FlowSpec) -> usize {
    let m: usize = spec
        .matches
        .iter()
        .map(|m| matchgen::alt_cost(m) as usize + 1)
        .sum();
    let a: usize = spec
        .actions
        .iter()
        .map(|a| match a {
            Action::SetField(f) => 40 + 12 * f.len(),
            Action::DecTtl => 40,
            Action::Output(p) => 4 * p.len(),
            _ => 6,
        })
        .sum();
    12 + m + a
}

/// Whether `spec`'s program returns what its flow key alone determines,
/// and does nothing else: no filter, and actions that only end the program
/// with a return code (`drop`, `goto_table`, a last `output` to one port, a
/// last `in_port`) or none at all. Such a program loads only key words from
/// the context (the match, `in_port`), stores nothing and calls no helper
/// (the tests check the compiled code), so every packet with the same key
/// gets the same return code and nothing else: the pipeline may reuse the
/// code it returned for a key instead of running the program again.
pub fn key_determined(spec: &FlowSpec) -> bool {
    let n = spec.actions.len();
    spec.filter.is_none()
        && spec.actions.iter().enumerate().all(|(i, a)| match a {
            Action::Output(ports) => i + 1 == n && ports.len() == 1,
            Action::InPort => i + 1 == n,
            Action::Drop | Action::GotoTable(_) => true,
            _ => false,
        })
}

/// Compiles one flow to an eBPF program for [`flow_env`].
pub fn compile_flow(spec: &FlowSpec, opts: &CompileOptions<'_>) -> Result<Vec<Insn>, CompileError> {
    Compiler {
        e: Emitter::with_capacity(size_hint(spec)),
        spec,
        opts,
        exits: Exits::default(),
        subs: Vec::new(),
    }
    .compile()
}
