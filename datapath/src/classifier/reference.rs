//! The reference semantics of a table: a linear scan of its flows in
//! priority order. Slow and obviously right; the differential tests hold the
//! classifier to it.

use super::Entry;
use crate::flow::key::FlowKey;

/// The highest-priority entry any of whose matches matches `key`
/// (`Match::matches`). Among equal priorities, which a valid table only has
/// for non-overlapping flows, the first entry wins.
pub fn linear_lookup<'a>(
    entries: impl IntoIterator<Item = Entry<'a>>,
    key: &FlowKey,
) -> Option<u32> {
    linear_lookup_filtered(entries, key, |_| true)
}

/// Like [`linear_lookup`], but tries the matching entries in priority order
/// and returns the first for which `accept` returns true. `accept` is called
/// at most once per flow.
pub fn linear_lookup_filtered<'a>(
    entries: impl IntoIterator<Item = Entry<'a>>,
    key: &FlowKey,
    mut accept: impl FnMut(u32) -> bool,
) -> Option<u32> {
    let mut hits: Vec<(u16, u32)> = entries
        .into_iter()
        .filter(|e| e.matches.iter().any(|m| m.matches(key)))
        .map(|e| (e.priority, e.flow))
        .collect();
    // Stable: equal priorities keep their order.
    hits.sort_by_key(|&(p, _)| std::cmp::Reverse(p));
    let mut tried: Vec<u32> = Vec::new();
    for (_, flow) in hits {
        if tried.contains(&flow) {
            continue;
        }
        if accept(flow) {
            return Some(flow);
        }
        tried.push(flow);
    }
    None
}
