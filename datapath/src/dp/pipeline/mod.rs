//! The packet pipeline: compiled table generations and the workers that run
//! packets through them.
//!
//! # What?
//!
//! A switch file becomes a [`Generation`]: every flow's program compiled,
//! verified and (for the JIT) translated in parallel, one
//! [`ClassifierTable`](crate::classifier::ClassifierTable) per table, the
//! miss policy, per-flow counters. It never changes; a reload builds a new
//! one and [`Datapath::publish`] swaps it in atomically, and workers pick it
//! up between batches, so a packet is always handled by one generation.
//!
//! A [`Worker`] runs packets through the current generation:
//!
//! ```text
//! frame ─extract─▶ key ─EMC─▶ cached path? ──yes──▶ run each cached flow's program
//!   │ malformed         │ no (or a cached flow declines)        │
//!   ▼                   ▼                                       ▼
//! drop, counted    per table: classifier.lookup(_filtered),  verdict: done | goto N |
//! by ErrorKind     accept = the candidate's program          drop(reason); no flow in
//!                  (NOMATCH = declined)                      a table: miss policy
//! ```
//!
//! The flow context (`flow::compile::ctx`) carries the packet's key,
//! rewritten in place by `set_field`, so a later table matches the packet as
//! it now is; the programs call the [`PacketState`](crate::dp::actions::PacketState)
//! actions (output, flood, normal, meters, VLAN tags) through the helpers,
//! which reach the worker's state as the run's per-run state.
//!
//! # The exact-match cache
//!
//! Keyed by the packet's original key, a cache entry is the *path*: the
//! flow chosen in each table visited ([`NO_FLOW`] for a miss), of the
//! worker's generation (a new one empties the cache). A hit runs the same
//! programs without asking any classifier. That is only right if the same key always takes the same
//! path, so a path is not cached when
//! - a custom filter declined the packet somewhere (filters may look at
//!   more than the key: the length, the payload, the mark);
//! - a flow changed the key in a way the key does not determine (a VLAN
//!   push or pop, a custom action) and then went to another table;
//! - a program failed, or the path is longer than [`PATH_MAX`] tables.
//!
//! Each cached flow's program still checks its own match and filter; if
//! it declines, the rest of the cached path is dropped and the classifier
//! takes over from that table. The one exception is a first flow whose
//! return code the key alone determines, without any other effect
//! ([`FlowInfo::key_determined`]: no filter, only a final output, a drop
//! or a goto): the entry keeps the code its program returned, and a hit
//! reuses it instead of running the program. Within a batch
//! ([`Worker::process_frames`]) every key is extracted and looked up
//! before the first packet runs, so the cache's memory accesses overlap.
//!
//! # The reference
//!
//! [`Reference`] is the semantics the fast path must reproduce: each
//! table's flows scanned in priority order, each program run by the
//! interpreter, the first that does not decline wins. The differential
//! tests (`tests/diff.rs`) run random switches of 1,400 flows (every
//! action, custom filters and actions) and random, mutated, repeated frames
//! through both, with their own ports, MAC tables and meters, and require
//! identical paths, frames sent (port and bytes) and drop reasons, on both
//! engines.
//!
//! # Cost
//!
//! Per packet on a cache hit: extraction, one cache probe, one program run
//! per table, the counters (table lookups and matches, flow packets, bytes
//! and last use), and queueing the frame (moved, not copied, for a final
//! output). A flow whose actions end in an output returns the OUTPUT code
//! instead of calling the output helper, and a program without helper
//! calls, guards or loops is entered without setting up the JIT's run
//! state, so the common flow costs no trip through the helper trampoline.
//! Within a batch the worker prefetches each cached packet's program
//! entry (8 bytes in the generation's lean table for lean programs), code
//! and counters before running any, so the cache and TLB misses of a large
//! table overlap. A hit whose first flow has a lean program (no helpers)
//! takes the batch's fast path (module `hit`): no per-table loop, path record or
//! action-state bookkeeping, table and cache counts added once per batch,
//! the same results and counts as the general path. Nothing is allocated per packet once
//! the frame pool and output queues have grown to the traffic.
//! `flowswitch bench pipeline` ([`mod@bench`]) measures it;
//! `examples/pipeline_hits.rs` is a driver for `valgrind --tool=callgrind`.

pub mod bench;
pub mod datapath;
mod exec;
mod general;
pub mod generation;
mod hit;
pub mod reference;
pub mod worker;

pub use datapath::{Datapath, DatapathError};
pub use exec::flow_env;
pub use generation::{
    BuildError, BuildStats, FlowInfo, Generation, GenerationSpec, MissPolicy, Table, MAX_FLOWS,
    NO_FLOW,
};
pub use reference::{Reference, ReferenceError};
pub use worker::{PacketTrace, Step, Worker, WorkerConfig, WorkerStats, PATH_MAX};

use crate::dp::stats::DropReason;
use crate::flow::compile::DropReason as ProgDrop;

/// The switch's drop reason for a program's DROP return code.
fn drop_reason(r: ProgDrop) -> DropReason {
    match r {
        ProgDrop::Explicit => DropReason::Explicit,
        ProgDrop::Meter => DropReason::Meter,
        ProgDrop::Ttl => DropReason::Ttl,
        ProgDrop::Custom => DropReason::Custom,
    }
}

#[cfg(test)]
mod tests;
