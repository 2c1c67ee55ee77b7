//! Helper functions: the registry maps a helper id to a Rust function and to
//! the signature the verifier checks calls against.
//!
//! Both engines call the same [`HelperFn`]: the interpreter directly, the JIT
//! through a trampoline in `sys/`. A helper sees the program's memory only
//! through [`HelperCtx`], as bounds-checked slices.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// What a helper may see of the running program.
pub struct HelperCtx<'a> {
    /// `RunInput.pkt`: for `Entry::MemLen` programs the Packet region; for
    /// `Entry::Ctx` programs the whole packet buffer, of which the context's
    /// `data` / `data_end` give the Packet region as addresses.
    pub pkt: &'a mut [u8],
    /// The context structure (empty for `Entry::MemLen` programs).
    pub ctx: &'a mut [u8],
    /// `RunInput.state`: the caller's per-run state (the datapath's
    /// per-packet state), if any.
    pub state: Option<&'a mut dyn Any>,
}

impl HelperCtx<'_> {
    /// The per-run state, if there is one of type `T`.
    pub fn state_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.state.as_deref_mut()?.downcast_mut::<T>()
    }
}

/// How a helper call ends when it does not simply return a value in r0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelperExit {
    /// Stop the program at once with this r0 (used by "unwind").
    Exit(u64),
    /// Stop the program with a run-time error.
    Fault(String),
}

/// A helper: arguments r1..r5, result r0.
pub type HelperFn = fn(&mut HelperCtx<'_>, [u64; 5]) -> Result<u64, HelperExit>;

/// What the verifier requires of one argument register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// Not read by the helper (may be uninitialised).
    Unused,
    /// Any initialised scalar.
    Scalar,
    /// Any initialised value, pointer or scalar (the helper does not dereference it).
    Any,
    /// The context pointer itself (r1 at entry, offset 0): the helper reaches
    /// the context through [`HelperCtx::ctx`].
    Ctx,
}

/// A registered helper.
#[derive(Debug, Clone)]
pub struct Helper {
    pub id: u32,
    pub name: &'static str,
    pub args: [ArgKind; 5],
    pub func: HelperFn,
    /// The helper may move the packet window (the context's `data` /
    /// `data_end`) and rewrite packet bytes: the verifier forgets every
    /// packet pointer at the call, and the engines re-read the window after
    /// it (and check that it still lies in the packet buffer). A helper
    /// without this flag must leave `data` / `data_end` alone: the engines
    /// stop the program with `RunError::HelperFault` if it does not.
    pub changes_packet: bool,
}

/// Helper id → helper.
#[derive(Debug, Clone, Default)]
pub struct HelperRegistry {
    by_id: HashMap<u32, Helper>,
}

impl HelperRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a helper.
    pub fn register(&mut self, helper: Helper) {
        self.by_id.insert(helper.id, helper);
    }

    pub fn get(&self, id: u32) -> Option<&Helper> {
        self.by_id.get(&id)
    }

    /// The helpers every program environment starts with.
    pub fn standard() -> Arc<HelperRegistry> {
        static STD: OnceLock<Arc<HelperRegistry>> = OnceLock::new();
        STD.get_or_init(|| {
            let mut r = HelperRegistry::new();
            r.register(Helper {
                id: UNWIND,
                name: "unwind",
                args: [
                    ArgKind::Scalar,
                    ArgKind::Unused,
                    ArgKind::Unused,
                    ArgKind::Unused,
                    ArgKind::Unused,
                ],
                func: unwind,
                changes_packet: false,
            });
            Arc::new(r)
        })
        .clone()
    }
}

/// Helper 5, as bpf_conformance defines it: returns r1; if r1 is 0 the
/// program stops at once with r0 = 0.
pub const UNWIND: u32 = 5;

fn unwind(_: &mut HelperCtx<'_>, args: [u64; 5]) -> Result<u64, HelperExit> {
    if args[0] == 0 {
        Err(HelperExit::Exit(0))
    } else {
        Ok(args[0])
    }
}
