//! Engine tests that run every program on both engines and require the
//! same outcome (r0 or error, packet buffer, context, per-run state):
//! packet windows and packet-moving helpers, per-run state, maps.

mod maps;
mod window;

use std::any::Any;
use std::sync::Arc;

use super::asm::assemble;
use super::vm::{RunError, RunInput};
use super::{interp, jit, verifier, ProgEnv, Program};

/// Verifies `src` for `env` (panics if it is rejected).
pub fn load(src: &str, env: &Arc<ProgEnv>) -> Program {
    let insns = assemble(src).unwrap_or_else(|e| panic!("bad test program: {e}\n{src}"));
    verifier::verify(&insns, env).unwrap_or_else(|e| panic!("rejected: {e}\n{src}"))
}

/// What one run left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run<S> {
    pub r0: Result<u64, RunError>,
    pub pkt: Vec<u8>,
    /// The context, with `window` fields turned into buffer offsets.
    pub ctx: Vec<u8>,
    pub state: Option<S>,
}

/// Runs `p` on both engines, each over its own copy of `pkt`, `ctx` and
/// `state`; `prepare` writes the context's window fields for the copy
/// (`ctx`, the copy's buffer address). Checks they agree and returns the
/// outcome. `ptr_fields` are 8-byte context fields holding buffer
/// addresses, turned into offsets before comparing.
pub fn run_both<S: Any + Clone + PartialEq + std::fmt::Debug>(
    p: &Program,
    pkt: &[u8],
    ctx: &[u8],
    state: Option<&S>,
    prepare: impl Fn(&mut [u8], u64),
    ptr_fields: &[usize],
) -> Run<S> {
    let compiled = jit::compile(p).unwrap_or_else(|e| panic!("jit: {e}"));
    let one = |jit: bool| {
        let mut pkt = pkt.to_vec();
        let mut ctx = ctx.to_vec();
        let mut state = state.cloned();
        let base = pkt.as_ptr() as u64;
        prepare(&mut ctx, base);
        let mut input = RunInput::ctx(&mut pkt, &mut ctx);
        if let Some(s) = state.as_mut() {
            input = input.with_state(s);
        }
        let r0 = if jit {
            compiled.run(input)
        } else {
            interp::run(p, input)
        };
        for &f in ptr_fields {
            if let Some(b) = ctx.get_mut(f..f + 8) {
                let v = u64::from_le_bytes(b.try_into().unwrap_or_default());
                b.copy_from_slice(&v.wrapping_sub(base).to_le_bytes());
            }
        }
        Run {
            r0,
            pkt,
            ctx,
            state,
        }
    };
    let a = one(false);
    let b = one(true);
    assert_eq!(a, b, "interpreter and JIT disagree");
    a
}
