//! Refusing overlapping flows of equal priority in one table: whichever one
//! a packet got would depend on the order of the file.
//!
//! Comparing every pair is quadratic, which a table of 100,000 flows cannot
//! afford. Instead the alternatives of one (table, priority) group are
//! grouped by mask, as a tuple-space classifier does: two matches with masks
//! `m1` and `m2` overlap exactly when their keys agree on `m1 & m2`, so for
//! each pair of mask groups one hash lookup per alternative finds every
//! overlapping pair. The cost is (mask groups)² × alternatives, small for
//! real tables, which use few distinct masks.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use datapath::flow::key::FlowKey;
use datapath::flow::spec::FlowSpec;

use super::error::{Location, ModelError};

/// Pushes one error per overlapping pair of flows (same table, same
/// priority); the error is placed at the later flow and names both.
pub(crate) fn check_overlaps(flows: &[FlowSpec], at: &[Location], errors: &mut Vec<ModelError>) {
    let mut groups: BTreeMap<(u8, u16), Vec<usize>> = BTreeMap::new();
    for (i, f) in flows.iter().enumerate() {
        groups.entry((f.table, f.priority)).or_default().push(i);
    }
    for ((table, priority), members) in groups {
        if members.len() < 2 {
            continue;
        }
        for (a, b) in overlapping_pairs(flows, &members) {
            let (Some(fa), Some(fb), Some(a_at), Some(b_at)) =
                (flows.get(a), flows.get(b), at.get(a), at.get(b))
            else {
                continue;
            };
            errors.push(ModelError::Overlap {
                at: b_at.clone(),
                table,
                priority,
                a: fa.name.clone(),
                a_at: a_at.clone(),
                b: fb.name.clone(),
            });
        }
    }
}

/// The pairs `(a, b)`, `a < b`, of flows among `members` that overlap.
fn overlapping_pairs(flows: &[FlowSpec], members: &[usize]) -> BTreeSet<(usize, usize)> {
    // Alternatives grouped by mask.
    let mut by_mask: HashMap<FlowKey, Vec<(usize, FlowKey)>> = HashMap::new();
    for &f in members {
        for m in flows.get(f).map_or(&[][..], |fl| &fl.matches) {
            by_mask.entry(m.mask).or_default().push((f, m.key));
        }
    }
    let groups: Vec<(FlowKey, Vec<(usize, FlowKey)>)> = by_mask.into_iter().collect();
    let mut pairs = BTreeSet::new();
    for (i, (mi, gi)) in groups.iter().enumerate() {
        for (mj, gj) in groups.iter().skip(i) {
            let common = mi.masked(mj);
            let mut index: HashMap<FlowKey, Vec<usize>> = HashMap::new();
            for (f, k) in gj {
                index.entry(k.masked(&common)).or_default().push(*f);
            }
            for (f, k) in gi {
                if let Some(others) = index.get(&k.masked(&common)) {
                    for &g in others {
                        if g != *f {
                            pairs.insert((g.min(*f), g.max(*f)));
                        }
                    }
                }
            }
        }
    }
    debug_assert!(pairs.iter().all(|(a, b)| flows
        .get(*a)
        .zip(flows.get(*b))
        .is_some_and(|(x, y)| x.overlaps(y))));
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use datapath::flow::key::{OFF_NW_DST, OFF_TP_DST};
    use datapath::flow::spec::Match;

    fn flow(name: &str, matches: Vec<Match>) -> FlowSpec {
        FlowSpec {
            name: name.into(),
            table: 0,
            priority: 10,
            matches,
            filter: None,
            actions: vec![],
            idle_timeout: 0,
            hard_timeout: 0,
        }
    }

    fn dst(v: u32, mask: u32) -> Match {
        let mut m = Match::any();
        assert!(m.require::<4>(OFF_NW_DST, v.into(), mask.into()));
        m
    }

    /// The indexed search finds exactly the pairs a quadratic scan finds.
    #[test]
    fn agrees_with_pairwise_overlaps() {
        let mut flows = Vec::new();
        let mut seed = 0x1234_5678u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for i in 0..300 {
            let r = next();
            let len = [32u32, 24, 16, 8][(r % 4) as usize];
            let mask = if len == 32 {
                u32::MAX
            } else {
                !(u32::MAX >> len)
            };
            let addr = (0x0a00_0000 | (next() as u32 & 0x3_ffff)) & mask;
            let mut m = dst(addr, mask);
            if r & 0x10 != 0 {
                assert!(m.require::<2>(OFF_TP_DST, next() % 4, 0xffff));
            }
            let mut alts = vec![m];
            if r & 0x20 != 0 {
                alts.push(dst(0x0b00_0000 | (next() as u32 & 0xff), u32::MAX));
            }
            flows.push(flow(&format!("f{i}"), alts));
        }
        let members: Vec<usize> = (0..flows.len()).collect();
        let fast = overlapping_pairs(&flows, &members);
        let mut slow = BTreeSet::new();
        for a in 0..flows.len() {
            for b in a + 1..flows.len() {
                if flows[a].overlaps(&flows[b]) {
                    slow.insert((a, b));
                }
            }
        }
        assert!(!slow.is_empty());
        assert_eq!(fast, slow);
    }

    #[test]
    fn many_disjoint_exact_flows_are_fast() {
        let flows: Vec<FlowSpec> = (0..100_000u32)
            .map(|i| flow(&format!("f{i}"), vec![dst(0x0a00_0000 + i, u32::MAX)]))
            .collect();
        let members: Vec<usize> = (0..flows.len()).collect();
        let t = std::time::Instant::now();
        assert!(overlapping_pairs(&flows, &members).is_empty());
        assert!(t.elapsed().as_secs() < 10);
    }
}
