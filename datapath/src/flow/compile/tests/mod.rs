//! Compiler tests. Every program is verified by the real verifier for the
//! flow environment, must have no guarded access, and runs on both the
//! interpreter and the JIT, which must agree exactly (r0, frame, ctx,
//! helper calls).
//!
//! The helpers record their calls in a thread-local list (both engines call
//! them on the running thread), with a snapshot of the packet and key at
//! the time of the call.

mod actions;
mod clang;
mod frames;
mod matching;
mod perf;
mod setfield;

use std::cell::{Cell, RefCell};
use std::sync::{Arc, OnceLock};

use super::*;
use crate::ebpf::helpers::{HelperCtx, HelperExit, HelperRegistry};
use crate::ebpf::jit::{self, JitProgram};
use crate::ebpf::vm::{RunError, RunInput};
use crate::ebpf::{interp, verifier, ProgEnv, Program};
use crate::flow::key::{FlowKey, OFF_VLAN_TCI, VLAN_PRESENT};

/// One recorded helper call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub id: u32,
    /// r2 and r3.
    pub args: [u64; 2],
    /// The packet when the helper ran.
    pub pkt: Vec<u8>,
    /// The ctx key when the helper ran.
    pub key: FlowKey,
}

thread_local! {
    static CALLS: RefCell<Vec<Call>> = const { RefCell::new(Vec::new()) };
    /// Meters (index < 64) whose bit is set drop.
    static METER_DROPS: Cell<u64> = const { Cell::new(0) };
}

/// Records a call; `nargs` is how many of r2, r3 the helper reads (the
/// others hold whatever the engine left there, which differs between
/// engines).
fn record(id: u32, h: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    let nargs = match id {
        helper_id::OUTPUT => 2,
        helper_id::POP_VLAN => 0,
        _ => 1,
    };
    let key = FlowCtx {
        bytes: {
            let mut b = [0u8; CTX_SIZE];
            if let Some(src) = h.ctx.get(..CTX_SIZE) {
                b.copy_from_slice(src);
            }
            b
        },
    }
    .key();
    CALLS.with(|c| {
        c.borrow_mut().push(Call {
            id,
            args: [
                if nargs >= 1 { a[1] } else { 0 },
                if nargs >= 2 { a[2] } else { 0 },
            ],
            pkt: h.pkt.to_vec(),
            key,
        })
    });
    Ok(0)
}

fn t_output(h: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    record(helper_id::OUTPUT, h, a)
}
fn t_flood(h: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    record(helper_id::FLOOD, h, a)
}
fn t_normal(h: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    record(helper_id::NORMAL, h, a)
}
fn t_meter(h: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    record(helper_id::METER, h, a)?;
    let drops = METER_DROPS.with(Cell::get);
    Ok(u64::from(a[1] >= 64 || drops >> a[1] & 1 == 0))
}
/// Sets the key's TCI (the packet is left alone: the engines do not let
/// helpers move `data`/`data_end` yet).
fn set_key_tci(h: &mut HelperCtx<'_>, tci: u16) {
    if let Some(b) = h.ctx.get_mut(OFF_VLAN_TCI..OFF_VLAN_TCI + 2) {
        b.copy_from_slice(&tci.to_le_bytes());
    }
}
fn t_push(h: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    record(helper_id::PUSH_VLAN, h, a)?;
    set_key_tci(h, VLAN_PRESENT | a[1] as u16);
    Ok(0)
}
fn t_pop(h: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    record(helper_id::POP_VLAN, h, a)?;
    set_key_tci(h, 0);
    Ok(0)
}

/// The flow environment with the recording helpers.
pub fn env() -> Arc<ProgEnv> {
    static ENV: OnceLock<Arc<ProgEnv>> = OnceLock::new();
    ENV.get_or_init(|| {
        let fns = FlowHelperFns {
            output: t_output,
            flood: t_flood,
            normal: t_normal,
            meter: t_meter,
            push_vlan: t_push,
            pop_vlan: t_pop,
        };
        let reg: Arc<HelperRegistry> = Arc::new(flow_helpers(&fns));
        flow_env(reg, Default::default())
    })
    .clone()
}

pub fn set_meter_drops(mask: u64) {
    METER_DROPS.with(|m| m.set(mask));
}

/// Verifies a compiled program and checks that no access needs a guard.
pub fn verify(insns: &[Insn]) -> Program {
    let p = verifier::verify(insns, &env())
        .unwrap_or_else(|e| panic!("rejected: {e}\n{}", crate::ebpf::disasm::disassemble(insns)));
    assert_unguarded(&p, insns.len());
    p
}

/// Every access in the first `upto` slots (the compiler's own code, not
/// appended custom programs) is proven.
pub fn assert_unguarded(p: &Program, upto: usize) {
    for (pc, a) in p.access.iter().enumerate().take(upto) {
        if let Some(a) = a {
            assert!(
                !a.guard,
                "insn {pc} needs a guard ({:?}):\n{}",
                a.region,
                crate::ebpf::disasm::disassemble(&p.insns)
            );
        }
    }
}

/// Compiles, verifies and JITs a flow.
pub fn build(spec: &FlowSpec, opts: &CompileOptions<'_>) -> (Program, JitProgram) {
    let insns = compile_flow(spec, opts).unwrap_or_else(|e| panic!("{e}"));
    let own = insns.len()
        - opts.filters.iter().map(Vec::len).sum::<usize>()
        - opts.actions.iter().map(Vec::len).sum::<usize>();
    let p = verifier::verify(&insns, &env()).unwrap_or_else(|e| {
        panic!(
            "rejected: {e}\n{}",
            crate::ebpf::disasm::disassemble(&insns)
        )
    });
    // Custom programs may need guards; the compiler's code never does.
    assert_unguarded(&p, own.min(insns.len()));
    let j = jit::compile(&p).unwrap_or_else(|e| panic!("jit: {e}"));
    (p, j)
}

/// What one run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub r0: Result<u64, RunError>,
    pub frame: Vec<u8>,
    pub ctx: Vec<u8>,
    pub calls: Vec<Call>,
}

impl Outcome {
    pub fn key(&self) -> FlowKey {
        let mut c = FlowCtx {
            bytes: [0; CTX_SIZE],
        };
        c.bytes.copy_from_slice(&self.ctx);
        c.key()
    }

    pub fn verdict(&self) -> Option<Verdict> {
        self.r0.clone().ok().and_then(Verdict::from_code)
    }
}

fn run_one(
    f: impl FnOnce(RunInput<'_>) -> Result<u64, RunError>,
    frame: &[u8],
    ctx: &FlowCtx,
) -> Outcome {
    CALLS.with(|c| c.borrow_mut().clear());
    let mut pkt = frame.to_vec();
    let mut c = ctx.clone();
    let mut input = RunInput::ctx(&mut pkt, &mut c.bytes);
    crate::ebpf::vm::fill_ctx_pointers(&FLOW_CTX, &mut input);
    let r0 = f(input);
    // The packet pointers differ between runs; compare everything else.
    c.bytes[ctx::CTX_DATA..ctx::CTX_DATA_END + 8].fill(0);
    Outcome {
        r0,
        frame: pkt,
        ctx: c.bytes.to_vec(),
        calls: CALLS.with(|c| std::mem::take(&mut *c.borrow_mut())),
    }
}

/// Runs on both engines, checks they agree, returns the outcome as
/// helper calls and a verdict ([`as_calls`]).
pub fn run_both(p: &Program, j: &JitProgram, frame: &[u8], ctx: &FlowCtx) -> Outcome {
    as_calls(run_both_raw(p, j, frame, ctx))
}

/// Runs on both engines, checks they agree, returns the outcome as the
/// program left it.
pub fn run_both_raw(p: &Program, j: &JitProgram, frame: &[u8], ctx: &FlowCtx) -> Outcome {
    let a = run_one(|i| interp::run(p, i), frame, ctx);
    let b = run_one(|i| j.run(i), frame, ctx);
    assert_eq!(a, b, "interpreter and JIT disagree");
    a
}

/// The outcome with an OUTPUT return code written as what it stands for
/// (`docs/ebpf-abi.md`): a FINAL `fs_output` call on the packet and key as
/// the program left them, then DONE.
pub fn as_calls(mut out: Outcome) -> Outcome {
    if let Some(Verdict::Output(port)) = out.verdict() {
        let key = out.key();
        out.calls.push(Call {
            id: helper_id::OUTPUT,
            args: [u64::from(port), FLAG_FINAL],
            pkt: out.frame.clone(),
            key,
        });
        out.r0 = Ok(Verdict::Done.code());
    }
    out
}

/// A ctx for `frame` (parsed), on `in_port`, in table 0.
pub fn ctx_for(frame: &[u8], in_port: u32) -> FlowCtx {
    let p = crate::packet::extract(frame, in_port).expect("test frame parses");
    FlowCtx::new(&p.key, p.l3, p.l4, frame.len() as u32, 0)
}

/// A flow named "t" with these parts.
pub fn spec(matches: Vec<Match>, actions: Vec<Action>) -> FlowSpec {
    FlowSpec {
        name: "t".into(),
        table: 0,
        priority: 1,
        matches,
        filter: None,
        actions,
        idle_timeout: 0,
        hard_timeout: 0,
    }
}

use crate::flow::spec::Match;
