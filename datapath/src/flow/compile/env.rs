//! The environment flow programs run in: the flow context as entry, the
//! flow helpers with their ids and signatures, and the return codes.
//!
//! The helper *functions* belong to the datapath (they reach its per-packet
//! state); this module fixes their ids and the signatures the verifier
//! checks, and builds a registry from whatever functions the caller plugs
//! in ([`FlowHelperFns`]).

use std::sync::Arc;

use super::ctx::FLOW_CTX;
use crate::ebpf::helpers::{ArgKind, Helper, HelperFn, HelperRegistry, UNWIND};
use crate::ebpf::maps::{self, Maps};
use crate::ebpf::vm::{Entry, DEFAULT_BUDGET};
use crate::ebpf::ProgEnv;

/// Helper ids of flow programs (`docs/ebpf-abi.md`).
pub mod helper_id {
    /// `map_lookup_elem(map, key)`: pointer to the value, or 0.
    pub const MAP_LOOKUP_ELEM: u32 = crate::ebpf::maps::helpers::MAP_LOOKUP_ELEM;
    /// `map_update_elem(map, key, value, flags)`: 0 or a negative errno.
    pub const MAP_UPDATE_ELEM: u32 = crate::ebpf::maps::helpers::MAP_UPDATE_ELEM;
    /// `map_delete_elem(map, key)`: 0 or a negative errno.
    pub const MAP_DELETE_ELEM: u32 = crate::ebpf::maps::helpers::MAP_DELETE_ELEM;
    /// `unwind(v)`: returns v; v == 0 ends the program with r0 = 0.
    pub const UNWIND: u32 = crate::ebpf::helpers::UNWIND;
    /// `fs_output(ctx, port, flags)`.
    pub const OUTPUT: u32 = 16;
    /// `fs_flood(ctx, flags)`.
    pub const FLOOD: u32 = 17;
    /// `fs_normal(ctx, flags)`.
    pub const NORMAL: u32 = 18;
    /// `fs_meter(ctx, meter)`: 1 pass, 0 drop.
    pub const METER: u32 = 19;
    /// `fs_push_vlan(ctx, tci)`: changes the packet.
    pub const PUSH_VLAN: u32 = 20;
    /// `fs_pop_vlan(ctx)`: changes the packet.
    pub const POP_VLAN: u32 = 21;
}

/// `flags` bit of output/flood/normal: nothing after this call reads or
/// changes the packet, so the datapath may move it instead of copying.
pub const FLAG_FINAL: u64 = 1;

/// Return codes (r0) of a flow program.
pub mod ret {
    /// The flow does not match (only before any action ran).
    pub const NOMATCH: u64 = 0;
    /// Matched; the action list ended.
    pub const DONE: u64 = 1;
    /// `GOTO | (table << 8)`: continue in that table.
    pub const GOTO: u64 = 2;
    /// `DROP | (reason << 8)`: dropped.
    pub const DROP: u64 = 3;
    /// `OUTPUT | (port << 8)`: matched; send the packet as it is now to
    /// `port` and end, exactly as `fs_output(ctx, port, FS_F_FINAL)`
    /// followed by `return DONE` (the compiler's form of a final `output`
    /// or `in_port`: the switch moves the frame without a helper call).
    pub const OUTPUT: u64 = 4;
}

/// Why a flow program dropped the packet (`ret::DROP | reason << 8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// An explicit `drop` action.
    Explicit = 1,
    /// A meter was over its rate.
    Meter = 2,
    /// `dec_ttl` on a TTL / hop limit of 0 or 1.
    Ttl = 3,
    /// A custom action program returned non-zero.
    Custom = 4,
}

impl DropReason {
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Explicit => "drop",
            DropReason::Meter => "meter",
            DropReason::Ttl => "ttl",
            DropReason::Custom => "ebpf",
        }
    }
}

/// A flow program's result, decoded from r0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    NoMatch,
    Done,
    Goto(u8),
    Drop(DropReason),
    /// Output to this port as the last action ([`ret::OUTPUT`]).
    Output(u32),
}

impl Verdict {
    /// r0 for this verdict.
    pub fn code(self) -> u64 {
        match self {
            Verdict::NoMatch => ret::NOMATCH,
            Verdict::Done => ret::DONE,
            Verdict::Goto(t) => ret::GOTO | u64::from(t) << 8,
            Verdict::Drop(r) => ret::DROP | (r as u64) << 8,
            Verdict::Output(p) => ret::OUTPUT | u64::from(p) << 8,
        }
    }

    /// The verdict r0 encodes, `None` for a value no compiled program returns.
    pub fn from_code(r0: u64) -> Option<Verdict> {
        let arg = r0 >> 8;
        match (r0 & 0xff, arg) {
            (ret::NOMATCH, 0) => Some(Verdict::NoMatch),
            (ret::DONE, 0) => Some(Verdict::Done),
            (ret::GOTO, t) => u8::try_from(t).ok().map(Verdict::Goto),
            (ret::DROP, 1) => Some(Verdict::Drop(DropReason::Explicit)),
            (ret::DROP, 2) => Some(Verdict::Drop(DropReason::Meter)),
            (ret::DROP, 3) => Some(Verdict::Drop(DropReason::Ttl)),
            (ret::DROP, 4) => Some(Verdict::Drop(DropReason::Custom)),
            (ret::OUTPUT, p) => u32::try_from(p).ok().map(Verdict::Output),
            _ => None,
        }
    }
}

/// The functions behind the flow helpers, supplied by the datapath (or by
/// tests). Each receives the arguments of the signature in
/// [`FLOW_HELPERS`]; r1 is always the ctx pointer, which the function
/// reaches through [`crate::ebpf::helpers::HelperCtx::ctx`] rather than by
/// address.
#[derive(Debug, Clone, Copy)]
pub struct FlowHelperFns {
    pub output: HelperFn,
    pub flood: HelperFn,
    pub normal: HelperFn,
    pub meter: HelperFn,
    pub push_vlan: HelperFn,
    pub pop_vlan: HelperFn,
}

const U: ArgKind = ArgKind::Unused;
const S: ArgKind = ArgKind::Scalar;
/// The ctx argument (r1): the ctx pointer itself.
const C: ArgKind = ArgKind::Ctx;

/// What the verifier and the datapath need to know of one flow helper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowHelperSig {
    pub id: u32,
    pub name: &'static str,
    /// r1..r5; r1 is always the ctx.
    pub args: [ArgKind; 5],
    /// Moves `data` / `data_end` (and rewrites the packet): packet
    /// pointers die at the call.
    pub changes_packet: bool,
}

const fn sig(
    id: u32,
    name: &'static str,
    args: [ArgKind; 5],
    changes_packet: bool,
) -> FlowHelperSig {
    FlowHelperSig {
        id,
        name,
        args,
        changes_packet,
    }
}

/// Id, name, argument kinds and packet effect of each flow helper.
pub const FLOW_HELPERS: [FlowHelperSig; 6] = [
    sig(helper_id::OUTPUT, "fs_output", [C, S, S, U, U], false),
    sig(helper_id::FLOOD, "fs_flood", [C, S, U, U, U], false),
    sig(helper_id::NORMAL, "fs_normal", [C, S, U, U, U], false),
    sig(helper_id::METER, "fs_meter", [C, S, U, U, U], false),
    sig(helper_id::PUSH_VLAN, "fs_push_vlan", [C, S, U, U, U], true),
    sig(helper_id::POP_VLAN, "fs_pop_vlan", [C, U, U, U, U], true),
];

/// A registry with the standard helpers (`unwind`), the map helpers and
/// the flow helpers backed by `fns`.
pub fn flow_helpers(fns: &FlowHelperFns) -> HelperRegistry {
    let mut r = HelperRegistry::new();
    if let Some(h) = HelperRegistry::standard().get(UNWIND) {
        r.register(h.clone());
    }
    maps::helpers::register(&mut r);
    for FlowHelperSig {
        id,
        name,
        args,
        changes_packet,
    } in FLOW_HELPERS
    {
        let func = match id {
            helper_id::OUTPUT => fns.output,
            helper_id::FLOOD => fns.flood,
            helper_id::NORMAL => fns.normal,
            helper_id::METER => fns.meter,
            helper_id::PUSH_VLAN => fns.push_vlan,
            _ => fns.pop_vlan,
        };
        r.register(Helper {
            id,
            name,
            args,
            func,
            changes_packet,
            ret: Default::default(),
        });
    }
    r
}

/// The environment of flow programs (and of custom filters and actions,
/// which run as their subprograms): r1 = the flow context, these helpers,
/// the switch's maps, the default budget.
pub fn flow_env(helpers: Arc<HelperRegistry>, maps: Arc<Maps>) -> Arc<ProgEnv> {
    Arc::new(ProgEnv {
        entry: Entry::Ctx(FLOW_CTX.clone()),
        helpers,
        budget: DEFAULT_BUDGET,
        maps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_round_trip_through_r0() {
        let all = [
            Verdict::NoMatch,
            Verdict::Done,
            Verdict::Goto(0),
            Verdict::Goto(255),
            Verdict::Drop(DropReason::Explicit),
            Verdict::Drop(DropReason::Meter),
            Verdict::Drop(DropReason::Ttl),
            Verdict::Drop(DropReason::Custom),
            Verdict::Output(0),
            Verdict::Output(3),
            Verdict::Output(u32::MAX),
        ];
        for v in all {
            assert_eq!(Verdict::from_code(v.code()), Some(v));
        }
        assert_eq!(Verdict::Goto(3).code(), 0x302);
        assert_eq!(Verdict::Drop(DropReason::Ttl).code(), 0x303);
        assert_eq!(Verdict::Output(7).code(), 0x704);
        assert_eq!(Verdict::from_code(4), Some(Verdict::Output(0)));
        for bad in [5, 0x100, 0x101, 0x503, 0x10002, (1 << 40) | 4, u64::MAX] {
            assert_eq!(Verdict::from_code(bad), None, "{bad:#x}");
        }
    }
}
