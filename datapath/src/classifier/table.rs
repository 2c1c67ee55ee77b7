//! [`ClassifierTable`]: one OpenFlow table as a tuple-space index (see the
//! module docs of [`crate::classifier`] for the design).

use std::collections::HashMap;

use rayon::prelude::*;

use super::overlap;
use super::subtable::{Added, Rule, Rules, Subtable};
use super::{validate, ClassifierError, Entry};
use crate::flow::key::{FlowKey, KEY_WORDS};
use crate::flow::spec::Match;

type AHashMap<K, V> = HashMap<K, V, ahash::RandomState>;

/// A mask and the rules (with their matches) that use it.
type MaskRules<'a> = (FlowKey, Vec<(Rule, &'a Match)>);

/// A subtable and the location of each rule added to it, by flow.
type BuiltSubtable = (Subtable, Vec<(Rule, Loc)>);

/// Batches of `insert_many` from this size may rebuild the table.
const BULK_INSERT: usize = 64;

/// Rules per table above which `build` hashes in parallel.
const PARALLEL_RULES: usize = 4096;

/// Where one rule of a flow lives: the subtable (by id) and the hash of its
/// group (the group itself is found as the one holding the flow).
#[derive(Debug, Clone, Copy)]
struct Loc {
    subtable: u32,
    hash: u64,
}

/// The rules of a flow: usually one, kept inline.
#[derive(Debug, Clone)]
enum Locs {
    One(Loc),
    Many(Vec<Loc>),
}

impl Locs {
    fn as_slice(&self) -> &[Loc] {
        match self {
            Locs::One(l) => std::slice::from_ref(l),
            Locs::Many(v) => v,
        }
    }

    fn push(&mut self, loc: Loc) {
        match self {
            Locs::One(first) => *self = Locs::Many(vec![*first, loc]),
            Locs::Many(v) => v.push(loc),
        }
    }

    fn from_vec(mut v: Vec<Loc>) -> Self {
        match v.as_slice() {
            [one] => Locs::One(*one),
            _ => {
                v.shrink_to_fit();
                Locs::Many(v)
            }
        }
    }
}

#[derive(Debug, Clone)]
struct FlowRec {
    priority: u16,
    locs: Locs,
}

/// Sizes of a table, for statistics and memory accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableStats {
    pub flows: usize,
    pub rules: usize,
    pub subtables: usize,
    /// Approximate heap bytes of the index (allocator overhead aside).
    pub heap_bytes: usize,
}

/// One OpenFlow table: flows (by index into the caller's flow vector) with
/// priorities and alternative matches, indexed for lookup by flow key.
#[derive(Debug, Clone, Default)]
pub struct ClassifierTable {
    /// Lookup order: descending highest priority (ties by ascending id).
    subtables: Vec<Subtable>,
    /// Subtable id -> position in `subtables`.
    pos: AHashMap<u32, usize>,
    /// Mask -> subtable id.
    by_mask: AHashMap<FlowKey, u32>,
    flows: AHashMap<u32, FlowRec>,
    next_id: u32,
}

impl ClassifierTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a table from `entries` in one go, refusing overlapping flows of
    /// equal priority, duplicate flow indices and matches that can never
    /// match. Large tables are hashed in parallel.
    pub fn build<'a>(
        entries: impl IntoIterator<Item = Entry<'a>>,
    ) -> Result<Self, ClassifierError> {
        Self::build_with(entries, None)
    }

    /// [`ClassifierTable::build`], in parallel or not as `parallel` says
    /// (`None`: by size). The result is the same either way.
    pub(crate) fn build_with<'a>(
        entries: impl IntoIterator<Item = Entry<'a>>,
        parallel: Option<bool>,
    ) -> Result<Self, ClassifierError> {
        let entries: Vec<Entry<'a>> = entries.into_iter().collect();
        // Validation, and the rules grouped by mask (masks in order of first
        // appearance, so that errors are reproducible).
        let mut seen: AHashMap<u32, ()> = AHashMap::default();
        seen.reserve(entries.len());
        let mut mask_ids: AHashMap<FlowKey, usize> = AHashMap::default();
        let mut per_mask: Vec<MaskRules<'a>> = Vec::new();
        let mut total = 0usize;
        for e in &entries {
            validate(e)?;
            if seen.insert(e.flow, ()).is_some() {
                return Err(ClassifierError::DuplicateFlow { flow: e.flow });
            }
            for m in e.matches {
                let i = *mask_ids.entry(m.mask).or_insert_with(|| {
                    per_mask.push((m.mask, Vec::new()));
                    per_mask.len() - 1
                });
                if let Some((_, list)) = per_mask.get_mut(i) {
                    list.push((
                        Rule {
                            priority: e.priority,
                            flow: e.flow,
                        },
                        m,
                    ));
                    total += 1;
                }
            }
        }
        let parallel = parallel.unwrap_or(total >= PARALLEL_RULES);
        let build_one = |(id, (mask, rules)): (usize, &MaskRules<'a>)| {
            make_subtable(id as u32, mask, rules, parallel)
        };
        let built: Vec<Result<BuiltSubtable, ClassifierError>> = if parallel {
            per_mask.par_iter().enumerate().map(build_one).collect()
        } else {
            per_mask.iter().enumerate().map(build_one).collect()
        };
        let mut table = ClassifierTable {
            next_id: per_mask.len() as u32,
            ..Default::default()
        };
        table.flows.reserve(entries.len());
        for r in built {
            let (st, rule_locs) = r?;
            for (rule, loc) in rule_locs {
                table
                    .flows
                    .entry(rule.flow)
                    .and_modify(|rec| rec.locs.push(loc))
                    .or_insert(FlowRec {
                        priority: rule.priority,
                        locs: Locs::One(loc),
                    });
            }
            table.by_mask.insert(*st.mask(), st.id);
            table.subtables.push(st);
        }
        overlap::check_all(&table.subtables, parallel)?;
        table.reorder();
        Ok(table)
    }

    /// Adds one flow. On error (overlap with a flow of the same priority,
    /// index already present, a match that can never match) the table is
    /// unchanged.
    pub fn insert(
        &mut self,
        flow: u32,
        priority: u16,
        matches: &[Match],
    ) -> Result<(), ClassifierError> {
        let e = Entry::new(flow, priority, matches);
        validate(&e)?;
        if self.flows.contains_key(&flow) {
            return Err(ClassifierError::DuplicateFlow { flow });
        }
        let mut uniq: Vec<&Match> = Vec::with_capacity(matches.len());
        let mut seen: AHashMap<&Match, ()> = AHashMap::default();
        for m in matches {
            if seen.insert(m, ()).is_none() {
                uniq.push(m);
            }
        }
        overlap::check_insert(&self.subtables, flow, priority, &uniq)?;
        let rule = Rule { priority, flow };
        let mut locs = Vec::with_capacity(uniq.len());
        for m in uniq {
            let id = match self.by_mask.get(&m.mask) {
                Some(&id) => id,
                None => {
                    let id = self.next_id;
                    self.next_id = self.next_id.wrapping_add(1);
                    self.by_mask.insert(m.mask, id);
                    self.pos.insert(id, self.subtables.len());
                    self.subtables.push(Subtable::new(id, m.mask));
                    id
                }
            };
            let Some(st) = self.pos.get(&id).and_then(|&p| self.subtables.get_mut(p)) else {
                continue;
            };
            let mut buf = [0u64; KEY_WORDS];
            let hash = st.project(&m.key, &mut buf);
            let words = buf.get(..st.active().len()).unwrap_or(&[]);
            match st.add(hash, words, rule) {
                Added::New => locs.push(Loc { subtable: id, hash }),
                // Alternatives of one flow never conflict with each other
                // (their priorities are equal only to themselves), and
                // `check_insert` cleared the others.
                Added::Duplicate | Added::Conflict(_) => {}
            }
        }
        self.flows.insert(
            flow,
            FlowRec {
                priority,
                locs: Locs::from_vec(locs),
            },
        );
        self.reorder();
        Ok(())
    }

    /// Adds several flows, all or none. A batch that is large next to the
    /// table rebuilds it in bulk (one overlap pass instead of one scan per
    /// flow); a small one inserts flow by flow and undoes on error.
    pub fn insert_many<'a>(
        &mut self,
        entries: impl IntoIterator<Item = Entry<'a>>,
    ) -> Result<(), ClassifierError> {
        let new: Vec<Entry<'a>> = entries.into_iter().collect();
        if new.len() >= BULK_INSERT && new.len() * 4 >= self.len() {
            let existing = self.entries();
            let all = existing
                .iter()
                .map(|(f, p, ms)| Entry::new(*f, *p, ms))
                .chain(new.iter().copied());
            *self = Self::build(all)?;
            return Ok(());
        }
        let mut done = Vec::with_capacity(new.len());
        for e in &new {
            if let Err(err) = self.insert(e.flow, e.priority, e.matches) {
                for f in done {
                    self.remove(f);
                }
                return Err(err);
            }
            done.push(e.flow);
        }
        Ok(())
    }

    /// Removes a flow; returns whether it was there.
    pub fn remove(&mut self, flow: u32) -> bool {
        let Some(rec) = self.flows.remove(&flow) else {
            return false;
        };
        let mut emptied = false;
        for loc in rec.locs.as_slice() {
            if let Some(st) = self
                .pos
                .get(&loc.subtable)
                .and_then(|&p| self.subtables.get_mut(p))
            {
                st.remove(loc.hash, flow);
                emptied |= st.is_empty();
            }
        }
        if emptied {
            let by_mask = &mut self.by_mask;
            self.subtables.retain(|st| {
                if st.is_empty() {
                    by_mask.remove(st.mask());
                }
                !st.is_empty()
            });
        }
        self.reorder();
        true
    }

    /// Restores the lookup order and the id -> position map.
    fn reorder(&mut self) {
        self.subtables
            .sort_by_key(|st| (std::cmp::Reverse(st.max_priority()), st.id));
        self.pos.clear();
        for (p, st) in self.subtables.iter().enumerate() {
            self.pos.insert(st.id, p);
        }
    }

    /// The highest-priority flow matching `key`.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<u32> {
        let mut best: Option<Rule> = None;
        for st in &self.subtables {
            if let Some(b) = best {
                if b.priority >= st.max_priority() {
                    break;
                }
            }
            if let Some(r) = st.lookup(key).and_then(Rules::first) {
                if best.is_none_or(|b| r.priority > b.priority) {
                    best = Some(r);
                }
            }
        }
        best.map(|r| r.flow)
    }

    /// The highest-priority flow matching `key` that `accept` accepts.
    /// Matching flows are offered in descending priority, each once, until
    /// one is accepted.
    pub fn lookup_filtered(
        &self,
        key: &FlowKey,
        mut accept: impl FnMut(u32) -> bool,
    ) -> Option<u32> {
        let mut pending = Pending::new();
        let mut declined: Option<Rule> = None;
        let mut next = self.subtables.iter().peekable();
        loop {
            let bound = next.peek().map(|st| st.max_priority());
            match (pending.top(), bound) {
                // The best pending rule beats (or, being the same flow,
                // ties) everything in the subtables not probed yet.
                (Some(top), b) if b.is_none_or(|b| top.priority >= b) => {
                    pending.pop();
                    if declined == Some(top) {
                        continue;
                    }
                    if accept(top.flow) {
                        return Some(top.flow);
                    }
                    declined = Some(top);
                }
                (_, None) => return None,
                (_, Some(_)) => {
                    if let Some(rules) = next.next().and_then(|st| st.lookup(key)) {
                        for &r in rules.as_slice() {
                            pending.push(r);
                        }
                    }
                }
            }
        }
    }

    /// Whether flow `flow` is in the table.
    pub fn contains(&self, flow: u32) -> bool {
        self.flows.contains_key(&flow)
    }

    /// The priority of flow `flow`, if present.
    pub fn priority_of(&self, flow: u32) -> Option<u16> {
        self.flows.get(&flow).map(|r| r.priority)
    }

    /// Number of flows.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The subtables in lookup order.
    pub fn subtables(&self) -> &[Subtable] {
        &self.subtables
    }

    /// Sizes and approximate heap use.
    pub fn stats(&self) -> TableStats {
        let locs: usize = self
            .flows
            .values()
            .map(|r| match &r.locs {
                Locs::One(_) => 0,
                Locs::Many(v) => v.capacity() * std::mem::size_of::<Loc>(),
            })
            .sum();
        let map_slot = std::mem::size_of::<(u32, FlowRec)>() + 1;
        TableStats {
            flows: self.flows.len(),
            rules: self.subtables.iter().map(Subtable::rules).sum(),
            subtables: self.subtables.len(),
            heap_bytes: self
                .subtables
                .iter()
                .map(Subtable::heap_bytes)
                .sum::<usize>()
                + locs
                + self.flows.capacity() * map_slot,
        }
    }

    /// The flows as `(flow, priority, matches)`, sorted by flow index
    /// (matches as stored: duplicates removed, in subtable order).
    pub fn entries(&self) -> Vec<(u32, u16, Vec<Match>)> {
        let mut out: AHashMap<u32, (u16, Vec<Match>)> = AHashMap::default();
        for st in &self.subtables {
            for (g, rules) in st.iter_groups() {
                let key = st.group_key(g);
                for r in rules.as_slice() {
                    out.entry(r.flow)
                        .or_insert_with(|| (r.priority, Vec::new()))
                        .1
                        .push(Match {
                            key,
                            mask: *st.mask(),
                        });
                }
            }
        }
        let mut v: Vec<(u32, u16, Vec<Match>)> =
            out.into_iter().map(|(f, (p, m))| (f, p, m)).collect();
        v.sort_by_key(|e| e.0);
        v
    }
}

/// Builds the subtable of one mask from its rules; returns it with the
/// location of every rule added.
fn make_subtable(
    id: u32,
    mask: &FlowKey,
    rules: &[(Rule, &Match)],
    parallel: bool,
) -> Result<BuiltSubtable, ClassifierError> {
    let mut st = Subtable::new(id, *mask);
    let project = |(_, m): &(Rule, &Match)| {
        let mut buf = [0u64; KEY_WORDS];
        let h = st.project(&m.key, &mut buf);
        (h, buf)
    };
    let hashed: Vec<(u64, [u64; KEY_WORDS])> = if parallel && rules.len() >= PARALLEL_RULES / 4 {
        rules.par_iter().map(project).collect()
    } else {
        rules.iter().map(project).collect()
    };
    st.reserve(rules.len());
    let n = st.active().len();
    let mut locs = Vec::with_capacity(rules.len());
    for ((rule, _), (hash, buf)) in rules.iter().zip(hashed) {
        let words = buf.get(..n).unwrap_or(&[]);
        match st.add(hash, words, *rule) {
            Added::New => locs.push((*rule, Loc { subtable: id, hash })),
            Added::Duplicate => {}
            Added::Conflict(other) => {
                return Err(ClassifierError::overlap(other, rule.flow, rule.priority))
            }
        }
    }
    Ok((st, locs))
}

/// Candidates of `lookup_filtered`, kept sorted by ascending priority so the
/// best is at the end; inline up to 16, then on the heap.
struct Pending {
    inline: [Rule; 16],
    len: usize,
    spilled: bool,
    spill: Vec<Rule>,
}

impl Pending {
    fn new() -> Self {
        Pending {
            inline: [Rule {
                priority: 0,
                flow: 0,
            }; 16],
            len: 0,
            spilled: false,
            spill: Vec::new(),
        }
    }

    fn slice(&self) -> &[Rule] {
        if !self.spilled {
            self.inline.get(..self.len).unwrap_or(&[])
        } else {
            &self.spill
        }
    }

    fn top(&self) -> Option<Rule> {
        self.slice().last().copied()
    }

    fn pop(&mut self) {
        if !self.spilled {
            self.len = self.len.saturating_sub(1);
        } else {
            self.spill.pop();
        }
    }

    fn push(&mut self, r: Rule) {
        // After equal priorities: the ones already there are offered first.
        let at = self.slice().partition_point(|x| x.priority < r.priority);
        if !self.spilled && self.len < self.inline.len() {
            if let Some(tail) = self.inline.get_mut(at..=self.len) {
                tail.rotate_right(1);
                if let Some(first) = tail.first_mut() {
                    *first = r;
                }
            }
            self.len += 1;
        } else {
            if !self.spilled {
                self.spill
                    .extend_from_slice(self.inline.get(..self.len).unwrap_or(&[]));
                self.spilled = true;
            }
            self.spill.insert(at, r);
        }
    }
}
