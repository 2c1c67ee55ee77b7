//! Flow counters across table generations.
//!
//! Counters live in each generation ([`FlowStats`](datapath::dp::stats::FlowStats)),
//! where the workers bump them without atomics of their own. A reload makes
//! a new generation with zeroed counters; a flow whose definition did not
//! change must keep counting from where it was.
//!
//! # Design: nothing counted is lost
//!
//! After the swap, a worker may still be finishing a batch in the old
//! generation and counting into it, so its counters cannot be read once
//! and forgotten. Instead the old generation is *retired*: kept, with a map
//! from its flows to the flows of the current generation they continue.
//! A flow's total is its counters in the current generation, plus a folded
//! base, plus the live counters of every retired generation that maps to
//! it. A retired generation that no worker holds any more (this `Arc` is
//! the last one: [`Arc::get_mut`], whose acquire pairs with the workers'
//! releases of their references) can count no more, so it is folded into
//! the base and dropped, which also frees its code.
//!
//! Each further change composes the retired maps with the new one: a flow
//! that is changed or deleted maps to nothing and so starts from zero, and
//! if it comes back later it does not get the old counts either.

use std::sync::Arc;

use datapath::dp::pipeline::Generation;
use datapath::dp::stats::FlowTotals;

/// A replaced generation a worker may still count into.
#[derive(Debug)]
struct Retired {
    generation: Arc<Generation>,
    /// Its flow `i` continues as current flow `to_current[i]`.
    to_current: Vec<Option<u32>>,
}

/// See the [module docs](self).
#[derive(Debug, Default)]
pub struct Carry {
    /// Per current flow: counts folded in from generations now gone.
    base: Vec<FlowTotals>,
    retired: Vec<Retired>,
}

fn add(t: &mut FlowTotals, o: &FlowTotals) {
    t.packets = t.packets.wrapping_add(o.packets);
    t.bytes = t.bytes.wrapping_add(o.bytes);
    t.last_used = t.last_used.max(o.last_used);
}

impl Carry {
    /// Nothing carried, for a first generation of `flows` flows.
    pub fn new(flows: usize) -> Self {
        Carry {
            base: vec![FlowTotals::default(); flows],
            retired: Vec::new(),
        }
    }

    /// `old` (the generation this carry described) was replaced by one of
    /// `flows` flows where old flow `i` continues as `map[i]`.
    pub fn advance(&mut self, old: Arc<Generation>, map: &[Option<u32>], flows: usize) {
        let follow = |c: Option<u32>| c.and_then(|c| map.get(c as usize).copied().flatten());
        let mut base = vec![FlowTotals::default(); flows];
        for (i, t) in self.base.iter().enumerate() {
            if let Some(n) = follow(Some(i as u32)) {
                if let Some(b) = base.get_mut(n as usize) {
                    *b = *t;
                }
            }
        }
        self.base = base;
        for r in &mut self.retired {
            for c in &mut r.to_current {
                *c = follow(*c);
            }
        }
        self.retired
            .retain(|r| r.to_current.iter().any(Option::is_some));
        if map.iter().any(Option::is_some) {
            self.retired.push(Retired {
                generation: old,
                to_current: map.to_vec(),
            });
        }
        self.fold();
    }

    /// Folds every retired generation that no worker holds any more.
    pub fn fold(&mut self) {
        let base = &mut self.base;
        self.retired.retain_mut(|r| {
            if Arc::get_mut(&mut r.generation).is_none() {
                return true;
            }
            let stats = r.generation.flow_stats();
            for (i, c) in r.to_current.iter().enumerate() {
                if let Some(b) = c.and_then(|c| base.get_mut(c as usize)) {
                    add(b, &stats.flow(i));
                }
            }
            false
        });
    }

    /// Retired generations still held by a worker.
    pub fn retired(&self) -> usize {
        self.retired.len()
    }

    /// Every flow's totals: `current`'s counters plus what was carried.
    pub fn totals(&mut self, current: &Generation) -> Vec<FlowTotals> {
        self.fold();
        let mut out = current.flow_stats().totals();
        for (t, b) in out.iter_mut().zip(&self.base) {
            add(t, b);
        }
        for r in &self.retired {
            let stats = r.generation.flow_stats();
            for (i, c) in r.to_current.iter().enumerate() {
                if let Some(t) = c.and_then(|c| out.get_mut(c as usize)) {
                    add(t, &stats.flow(i));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datapath::dp::pipeline::{GenerationSpec, MissPolicy};
    use datapath::ebpf::engine::Engine;
    use datapath::flow::spec::{Action, FlowSpec, Match};

    fn generation(names: &[&str]) -> Arc<Generation> {
        let flows: Vec<FlowSpec> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut m = Match::any();
                m.key.set_in_port(i as u32 + 1);
                m.mask.set_in_port(u32::MAX);
                FlowSpec {
                    name: (*n).into(),
                    table: 0,
                    priority: 1,
                    matches: vec![m],
                    filter: None,
                    actions: vec![Action::Drop],
                    idle_timeout: 0,
                    hard_timeout: 0,
                }
            })
            .collect();
        Generation::build_arc(&GenerationSpec {
            flows: &flows,
            filters: &[],
            actions: &[],
            miss: MissPolicy::Drop,
            engine: Engine::Interp,
            workers: 1,
            maps: None,
        })
        .unwrap()
    }

    fn hit(g: &Generation, flow: usize, n: u64, at: u64) {
        for _ in 0..n {
            g.flow_stats().counters(0, flow).unwrap().hit(100, at);
        }
    }

    #[test]
    fn counts_of_a_held_generation_keep_arriving_and_are_folded_once_released() {
        let g1 = generation(&["a", "b"]);
        let mut c = Carry::new(2);
        hit(&g1, 0, 3, 10);
        hit(&g1, 1, 5, 11);
        // A worker still holds g1 after the swap.
        let worker = Arc::clone(&g1);
        let g2 = generation(&["b2", "a"]);
        // a (old 0) continues as new 1; b (old 1) changed.
        c.advance(g1, &[Some(1), None], 2);
        assert_eq!(c.retired(), 1);
        hit(&worker, 0, 2, 20); // counted in the old generation after the swap
        hit(&g2, 1, 1, 30);
        let t = c.totals(&g2);
        assert_eq!(t[1].packets, 3 + 2 + 1);
        assert_eq!(t[1].bytes, 600);
        assert_eq!(t[1].last_used, 30);
        assert_eq!(t[0].packets, 0, "a changed flow starts from zero");
        drop(worker);
        let t = c.totals(&g2);
        assert_eq!(c.retired(), 0);
        assert_eq!(t[1].packets, 6);
        assert_eq!(t[0], FlowTotals::default());
    }

    #[test]
    fn maps_compose_and_a_flow_that_comes_back_starts_from_zero() {
        let g1 = generation(&["a"]);
        let held = Arc::clone(&g1);
        hit(&g1, 0, 4, 1);
        let mut c = Carry::new(1);
        let g2 = generation(&["x", "a"]);
        c.advance(g1, &[Some(1)], 2);
        hit(&g2, 1, 1, 2);
        let g2_held = Arc::clone(&g2);
        // Third generation keeps a as flow 0 and drops x.
        let g3 = generation(&["a"]);
        c.advance(g2, &[None, Some(0)], 1);
        assert_eq!(c.totals(&g3)[0].packets, 5);
        // A fourth deletes a; a fifth brings it back: nothing carried.
        let g4 = generation(&["y"]);
        c.advance(g3, &[None], 1);
        assert_eq!(c.retired(), 0, "{c:?}");
        let g5 = generation(&["y", "a"]);
        c.advance(g4, &[Some(0)], 2);
        hit(&held, 0, 10, 3);
        assert_eq!(c.totals(&g5)[1].packets, 0);
        drop((held, g2_held));
        assert_eq!(c.totals(&g5)[1].packets, 0);
    }
}
