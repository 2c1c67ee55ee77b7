//! Helper functions: the registry maps a helper id to a Rust function and to
//! the signature the verifier checks calls against.
//!
//! Both engines call the same [`HelperFn`]: the interpreter directly, the JIT
//! through a trampoline in `sys/`. A helper sees the program's memory only
//! through [`HelperCtx`], as bounds-checked slices.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use super::maps::Maps;

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
    /// The program's stack (all frames), for pointer arguments into it.
    pub stack: &'a [u8],
    /// The maps of the program's environment.
    pub maps: &'a Maps,
}

impl HelperCtx<'_> {
    /// The per-run state, if there is one of type `T`.
    pub fn state_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.state.as_deref_mut()?.downcast_mut::<T>()
    }

    /// Copies the `out.len()` bytes at `addr` (a pointer argument the
    /// verifier proved to point into the stack or a map value) into `out`.
    pub fn read_mem(&self, addr: u64, out: &mut [u8]) -> Result<(), HelperExit> {
        let off = addr.wrapping_sub(self.stack.as_ptr() as u64);
        let in_stack = usize::try_from(off)
            .ok()
            .and_then(|o| self.stack.get(o..o.checked_add(out.len())?));
        if let Some(src) = in_stack {
            out.copy_from_slice(src);
            return Ok(());
        }
        self.maps
            .find(addr, out.len())
            .and_then(|(m, off)| m.slab().read(off, out))
            .ok_or_else(|| {
                HelperExit::Fault(format!(
                    "{}-byte argument at {addr:#x} is neither on the stack nor in a map",
                    out.len()
                ))
            })
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
    /// A map handle (`lddw rX, map N`). The map's key and value sizes apply
    /// to the `MapKey` / `MapValue` arguments of the same call.
    MapHandle,
    /// A pointer to the map's `key_size` bytes of initialised stack or of a
    /// map value.
    MapKey,
    /// A pointer to the map's `value_size` bytes of initialised stack or of
    /// a map value.
    MapValue,
}

/// What a helper returns in r0, as the verifier types it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetKind {
    /// A number.
    #[default]
    Scalar,
    /// A pointer to a value of the call's `MapHandle` map, or 0: the program
    /// must compare it with 0 before using it.
    MapValueOrNull,
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
    /// What r0 holds after the call.
    pub ret: RetKind,
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
                ret: RetKind::Scalar,
            });
            Arc::new(r)
        })
        .clone()
    }

    /// The standard helpers and the map helpers
    /// ([`crate::ebpf::maps::helpers`]).
    pub fn with_maps() -> Arc<HelperRegistry> {
        static REG: OnceLock<Arc<HelperRegistry>> = OnceLock::new();
        REG.get_or_init(|| {
            let mut r = (*HelperRegistry::standard()).clone();
            super::maps::helpers::register(&mut r);
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
