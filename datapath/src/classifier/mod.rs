//! The classifier: which flow of a table a packet's [`FlowKey`](crate::flow::FlowKey) selects,
//! and the per-worker exact-match cache in front of it.
//!
//! # What?
//!
//! An OpenFlow table is a set of flows, each with a priority and one or more
//! alternative masked matches ([`Match`]: a key `k` matches when
//! `k & mask == key`). A packet selects the highest-priority flow any of whose
//! alternatives matches its key. Two flows of the same priority may never
//! overlap (some key matching both), so the answer is always unique and never
//! depends on the order flows were loaded in. The reference semantics is a
//! linear scan in priority order, [`linear_lookup`]; the structures here must
//! give the same answer on every key.
//!
//! # Basic classifier design: tuple-space search
//!
//! Real tables use few distinct masks: "exact 5-tuple", "destination /24",
//! "in_port only", "wildcard". All alternatives with the same mask go into
//! one [`subtable`] keyed by the masked key: a hash table (ahash
//! over the words the mask touches, hashbrown's raw `HashTable` of group
//! indices) whose groups hold the rules with exactly that masked key, sorted
//! by priority. Looking a key up in a subtable costs one masking, one hash and
//! one probe, whatever the number of rules in it, so a lookup costs
//! `O(number of masks)`, not `O(number of flows)`.
//!
//! Masking is word-wise: a subtable remembers which of the key's ten 64-bit
//! words its mask touches and masks, hashes and compares only those (an
//! `in_port`-only subtable reads one word, an exact 5-tuple one four).
//!
//! # Priorities and early exit
//!
//! Each subtable knows the highest priority among its rules, and the table
//! keeps its subtables sorted by it. A lookup walks them in that order and
//! stops as soon as the best match found so far is at least the next
//! subtable's highest priority: nothing further can beat it. (An equal
//! priority cannot belong to another flow, since that flow would overlap the
//! one found.) With the catch-all rules at low priorities the usual lookup
//! probes only the first few subtables.
//!
//! [`ClassifierTable::lookup_filtered`] serves flows whose custom eBPF filter
//! may decline a packet: it yields the matching flows one by one in priority
//! order, merging lazily across subtables, until the caller accepts one.
//!
//! # Overlap detection
//!
//! Checked when a table is built and when a flow is inserted
//! (`overlap.rs`), without comparing every pair of flows:
//! - two alternatives with the same mask overlap iff their masked keys are
//!   equal: they land in the same subtable group, which then holds two flows
//!   of one priority;
//! - alternatives with masks `m1`, `m2` overlap iff their keys agree on
//!   `m1 & m2`. The bulk check projects, per priority and per pair of masks
//!   present at that priority, one side's keys onto `m1 & m2` into a hash set
//!   and probes it with the other side: linear in the number of rules times
//!   the (small) number of masks. When `m1 & m2 == m1` the projection is
//!   just a probe of `m1`'s subtable.
//!
//! # Changes at run time
//!
//! [`ClassifierTable::insert`] and [`ClassifierTable::remove`] keep all of
//! this consistent one flow at a time (a removed group is swap-removed and
//! the moved group re-pointed; empty subtables disappear; the order by
//! priority is restored). The datapath publishes tables as immutable
//! generations, so these run on a copy that is then swapped in.
//! [`ClassifierTable::build`] is the bulk path: it groups rules by mask and,
//! for large tables, hashes the subtables in parallel with rayon.
//!
//! [`ClassifierTable::insert_many`] adds a batch all or nothing, rebuilding
//! in bulk when the batch is large next to the table.
//!
//! # The exact-match cache
//!
//! In front of the classifier each worker keeps an [`Emc`]: a fixed array of
//! buckets with two ways each, keyed by the whole flow key, so a hit costs one
//! hash and at most two 80-byte comparisons and never allocates. The value is
//! the caller's (typically flow handles plus a table generation, so that a new
//! generation invalidates old entries without clearing).
//!
//! # Cost
//!
//! Measured on the 2-core development VM (release build, best of repeated
//! batches of 4,096 keys while other builds shared the cores; `cargo bench
//! --bench classifier` measures the same) with [`testgen::bench_table`],
//! nine masks at every size:
//! - exact-match cache hit: about 10 ns;
//! - lookup: about 35 ns at 10 flows, 26 ns at 1,000, 46 ns at 100,000
//!   (the larger hash tables miss the caches more); filtered lookups about
//!   twice that;
//! - building 100,000 flows (115,000 rules): 40-50 ms; inserting one flow
//!   into it: under 1 us, or about 0.2 ms when its priority is shared with
//!   a subtable the index cannot probe (a scan of that subtable);
//! - memory: about 115 bytes per flow of index (11 MB at 100,000 flows).

mod emc;
mod hash;
mod overlap;
mod reference;
pub mod subtable;
mod table;
pub mod testgen;
#[cfg(test)]
mod tests;

pub use emc::{Emc, EMC_DEFAULT_ENTRIES, EMC_WAYS};
pub use reference::{linear_lookup, linear_lookup_filtered};
pub use table::{ClassifierTable, TableStats};

use crate::flow::spec::{FlowSpec, Match};

/// One flow as the classifier sees it: its index in the caller's flow
/// vector, its priority and its alternative matches.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub flow: u32,
    pub priority: u16,
    pub matches: &'a [Match],
}

impl<'a> Entry<'a> {
    pub fn new(flow: u32, priority: u16, matches: &'a [Match]) -> Self {
        Entry {
            flow,
            priority,
            matches,
        }
    }
}

/// The entries of table `table` among `flows`, each identified by its index
/// in `flows`.
pub fn entries_of_table(flows: &[FlowSpec], table: u8) -> impl Iterator<Item = Entry<'_>> {
    flows
        .iter()
        .enumerate()
        .filter(move |(_, f)| f.table == table)
        .map(|(i, f)| Entry::new(i as u32, f.priority, &f.matches))
}

/// Why a table cannot be built or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifierError {
    /// Two flows of the same priority can match the same key.
    #[error(
        "flows {first} and {second} have the same priority {priority} and overlapping matches"
    )]
    Overlap {
        first: u32,
        second: u32,
        priority: u16,
    },
    /// The flow index is already in the table.
    #[error("flow {flow} is already in the table")]
    DuplicateFlow { flow: u32 },
    /// The flow has no alternative match (it could never match).
    #[error("flow {flow} has no match")]
    NoMatch { flow: u32 },
    /// A match's key has bits outside its mask (it could never match).
    #[error("flow {flow}: match key word {word} is {key:#018x}, with bits outside its mask {mask:#018x}")]
    KeyOutsideMask {
        flow: u32,
        word: usize,
        key: u64,
        mask: u64,
    },
}

impl ClassifierError {
    /// An overlap error naming the two flows in ascending order.
    pub(crate) fn overlap(a: u32, b: u32, priority: u16) -> Self {
        ClassifierError::Overlap {
            first: a.min(b),
            second: a.max(b),
            priority,
        }
    }
}

/// Checks what every entry must satisfy on its own.
pub(crate) fn validate(e: &Entry<'_>) -> Result<(), ClassifierError> {
    if e.matches.is_empty() {
        return Err(ClassifierError::NoMatch { flow: e.flow });
    }
    for m in e.matches {
        let words = m.key.words.iter().zip(m.mask.words.iter()).enumerate();
        if let Some((word, (&key, &mask))) = words.into_iter().find(|(_, (k, m))| *k & !*m != 0) {
            return Err(ClassifierError::KeyOutsideMask {
                flow: e.flow,
                word,
                key,
                mask,
            });
        }
    }
    Ok(())
}
