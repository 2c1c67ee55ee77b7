//! Overlap detection: two flows of the same priority must never be able to
//! match the same key. No pass compares all pairs of flows:
//! - within one mask, overlapping means an equal masked key, i.e. the same
//!   subtable group (caught by [`Subtable`] when the rule is added);
//! - across masks `m1` and `m2`, it means keys equal on `m1 & m2`. The bulk
//!   check works per priority and per pair of masks present at it: when
//!   `m1 & m2 == m1` it probes `m1`'s subtable with each `m2` key; otherwise
//!   it hashes one side's keys projected onto `m1 & m2` and probes with the
//!   other side's.
//!
//! So the bulk cost is about (rules) x (masks sharing a priority) hash
//! operations. A single insert probes each subtable whose mask is within
//! the new match's mask, and scans the others that hold its priority.

use std::collections::HashMap;

use rayon::prelude::*;

use super::subtable::Subtable;
use super::ClassifierError;
use crate::flow::key::FlowKey;
use crate::flow::spec::Match;

type AHashMap<K, V> = HashMap<K, V, ahash::RandomState>;

/// Below this many comparisons a pair of rule lists is checked directly.
const DIRECT_PAIRS: usize = 64;

/// `a & b`, and whether that equals `a`.
fn meet(a: &FlowKey, b: &FlowKey) -> (FlowKey, bool) {
    let c = a.masked(b);
    let sub = c == *a;
    (c, sub)
}

/// The flows of one priority in one subtable: (group, flow).
type RuleList = Vec<(u32, u32)>;

/// Checks every pair of subtables for overlapping rules of equal priority.
/// (Within a subtable `Subtable::add` already refused them.) Reports the
/// first overlap in a fixed order (priority, then subtable positions).
pub(crate) fn check_all(subtables: &[Subtable], parallel: bool) -> Result<(), ClassifierError> {
    // Priority -> the subtables holding it, kept when two or more do.
    let mut holders: AHashMap<u16, Vec<usize>> = AHashMap::default();
    for (i, st) in subtables.iter().enumerate() {
        for p in st.priorities() {
            holders.entry(p).or_default().push(i);
        }
    }
    holders.retain(|_, v| v.len() >= 2);
    if holders.is_empty() {
        return Ok(());
    }
    let collect = |st: &Subtable| {
        let mut lists: AHashMap<u16, RuleList> = AHashMap::default();
        for (g, rules) in st.iter_groups() {
            for r in rules.as_slice() {
                if holders.contains_key(&r.priority) {
                    lists.entry(r.priority).or_default().push((g, r.flow));
                }
            }
        }
        lists
    };
    let lists: Vec<AHashMap<u16, RuleList>> = if parallel {
        subtables.par_iter().map(collect).collect()
    } else {
        subtables.iter().map(collect).collect()
    };
    let mut tasks: Vec<(u16, usize, usize)> = Vec::new();
    for (&p, v) in &holders {
        for (x, &i) in v.iter().enumerate() {
            for &j in v.iter().skip(x + 1) {
                tasks.push((p, i, j));
            }
        }
    }
    tasks.sort_unstable();
    let empty = RuleList::new();
    let run = |&(p, i, j): &(u16, usize, usize)| -> Option<ClassifierError> {
        let (si, sj) = (subtables.get(i)?, subtables.get(j)?);
        let li = lists.get(i).and_then(|l| l.get(&p)).unwrap_or(&empty);
        let lj = lists.get(j).and_then(|l| l.get(&p)).unwrap_or(&empty);
        check_pair(p, si, li, sj, lj).err()
    };
    let found: Vec<Option<ClassifierError>> = if parallel {
        tasks.par_iter().map(run).collect()
    } else {
        tasks.iter().map(run).collect()
    };
    match found.into_iter().flatten().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Overlaps between the priority-`p` rules `li` of `si` and `lj` of `sj`.
fn check_pair(
    p: u16,
    si: &Subtable,
    li: &RuleList,
    sj: &Subtable,
    lj: &RuleList,
) -> Result<(), ClassifierError> {
    let (c, i_within_j) = meet(si.mask(), sj.mask());
    if i_within_j {
        return probe(p, si, sj, lj);
    }
    if c == *sj.mask() {
        return probe(p, sj, si, li);
    }
    if li.len().saturating_mul(lj.len()) <= DIRECT_PAIRS {
        for &(gi, fi) in li {
            let ki = si.group_key(gi).masked(&c);
            for &(gj, fj) in lj {
                if fi != fj && sj.group_key(gj).masked(&c) == ki {
                    return Err(ClassifierError::overlap(fi, fj, p));
                }
            }
        }
        return Ok(());
    }
    // Hash the smaller side's projections, probe with the larger.
    let ((ss, sl), (bs, bl)) = if li.len() <= lj.len() {
        ((si, li), (sj, lj))
    } else {
        ((sj, lj), (si, li))
    };
    // Projection -> a flow with it, and another distinct flow if any.
    let mut seen: AHashMap<FlowKey, (u32, Option<u32>)> = AHashMap::default();
    seen.reserve(sl.len());
    for &(g, f) in sl {
        let e = seen.entry(ss.group_key(g).masked(&c)).or_insert((f, None));
        if e.0 != f && e.1.is_none() {
            e.1 = Some(f);
        }
    }
    for &(g, f) in bl {
        if let Some(&(a, other)) = seen.get(&bs.group_key(g).masked(&c)) {
            if a != f {
                return Err(ClassifierError::overlap(a, f, p));
            }
            if let Some(o) = other {
                return Err(ClassifierError::overlap(o, f, p));
            }
        }
    }
    Ok(())
}

/// `small`'s mask is within `big`'s: each `big` key, masked down, names the
/// one `small` group it overlaps.
fn probe(p: u16, small: &Subtable, big: &Subtable, bl: &RuleList) -> Result<(), ClassifierError> {
    for &(g, f) in bl {
        if let Some(a) = small.lookup(&big.group_key(g)).and_then(|r| r.at(p)) {
            if a != f {
                return Err(ClassifierError::overlap(a, f, p));
            }
        }
    }
    Ok(())
}

/// Checks the alternatives of a new flow against the rules already in
/// `subtables`.
pub(crate) fn check_insert(
    subtables: &[Subtable],
    flow: u32,
    priority: u16,
    matches: &[&Match],
) -> Result<(), ClassifierError> {
    for m in matches {
        for st in subtables.iter().filter(|st| st.has_priority(priority)) {
            let (c, st_within_m) = meet(st.mask(), &m.mask);
            if st_within_m {
                if let Some(a) = st.lookup(&m.key).and_then(|r| r.at(priority)) {
                    if a != flow {
                        return Err(ClassifierError::overlap(a, flow, priority));
                    }
                }
                continue;
            }
            if let Some(a) = st.scan_overlap(priority, flow, &m.key, &c) {
                return Err(ClassifierError::overlap(a, flow, priority));
            }
        }
    }
    Ok(())
}
