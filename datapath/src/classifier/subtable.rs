//! One subtable of the tuple-space search: all the rules whose match has one
//! particular mask, in a hash table keyed by the masked key.
//!
//! Layout, chosen to stay small at 100,000 rules:
//! - `words`: the masked key of every group, only the words the mask
//!   touches, `n` words per group, one flat vector;
//! - `groups`: per group, its rules (usually one, inline), sorted by
//!   descending priority;
//! - `table`: hashbrown's `HashTable<u32>` of group indices, hashed with
//!   ahash over the group's words.
//!
//! A group leaving swaps the last group into its place, so the vectors stay
//! dense.

use std::collections::BTreeMap;

use hashbrown::HashTable;

use crate::flow::key::{FlowKey, KEY_WORDS};

/// The hasher of masked keys (fixed seeds: tables hash the same way in every
/// process, which keeps builds reproducible).
static HASH: ahash::RandomState = ahash::RandomState::with_seeds(
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
);

/// Hash of a group's words (the same as [`Subtable::project`] computes).
#[inline]
pub(crate) fn hash_words(words: &[u64]) -> u64 {
    super::hash::hash_words(&HASH, words)
}

/// One flow's presence in a group: its priority and index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub priority: u16,
    pub flow: u32,
}

/// The rules of one group, by descending priority. `Many` has at least two.
#[derive(Debug, Clone)]
pub(crate) enum Rules {
    One(Rule),
    Many(Vec<Rule>),
}

impl Rules {
    #[inline]
    pub(crate) fn as_slice(&self) -> &[Rule] {
        match self {
            Rules::One(r) => std::slice::from_ref(r),
            Rules::Many(v) => v,
        }
    }

    /// The highest-priority rule.
    #[inline]
    pub(crate) fn first(&self) -> Option<Rule> {
        match self {
            Rules::One(r) => Some(*r),
            Rules::Many(v) => v.first().copied(),
        }
    }

    /// The flow at `priority` in this group, if any (a valid table has at
    /// most one).
    pub(crate) fn at(&self, priority: u16) -> Option<u32> {
        self.as_slice()
            .iter()
            .find(|r| r.priority == priority)
            .map(|r| r.flow)
    }

    fn contains(&self, r: Rule) -> bool {
        self.as_slice().contains(&r)
    }

    fn add(&mut self, r: Rule) {
        match self {
            Rules::One(old) => {
                let old = *old;
                *self = Rules::Many(if old.priority >= r.priority {
                    vec![old, r]
                } else {
                    vec![r, old]
                });
            }
            Rules::Many(v) => {
                let at = v.partition_point(|x| x.priority >= r.priority);
                v.insert(at, r);
            }
        }
    }

    /// Removes one rule of `flow`; returns it and whether the group is now
    /// empty.
    fn remove(&mut self, flow: u32) -> Option<(Rule, bool)> {
        match self {
            Rules::One(r) => (r.flow == flow).then_some((*r, true)),
            Rules::Many(v) => {
                let at = v.iter().position(|r| r.flow == flow)?;
                let r = v.remove(at);
                if let [only] = v.as_slice() {
                    *self = Rules::One(*only);
                }
                Some((r, false))
            }
        }
    }
}

/// What [`Subtable::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Added {
    /// A new rule.
    New,
    /// The flow already had this very rule (a duplicate alternative).
    Duplicate,
    /// Another flow of the same priority has the same masked key.
    Conflict(u32),
}

/// The rules of one mask.
#[derive(Debug, Clone)]
pub struct Subtable {
    /// Stable id within its table (positions change when the order does).
    pub(crate) id: u32,
    mask: FlowKey,
    /// Indices of the words the mask touches, ascending; `n` of them.
    active: [u8; KEY_WORDS],
    n: usize,
    max_priority: u16,
    /// Number of rules per priority.
    prio_counts: BTreeMap<u16, u32>,
    table: HashTable<u32>,
    words: Vec<u64>,
    groups: Vec<Rules>,
}

impl Subtable {
    pub(crate) fn new(id: u32, mask: FlowKey) -> Self {
        let mut active = [0u8; KEY_WORDS];
        let mut n = 0;
        for (i, w) in mask.words.iter().enumerate() {
            if *w != 0 {
                active[n] = i as u8;
                n += 1;
            }
        }
        Subtable {
            id,
            mask,
            active,
            n,
            max_priority: 0,
            prio_counts: BTreeMap::new(),
            table: HashTable::new(),
            words: Vec::new(),
            groups: Vec::new(),
        }
    }

    pub fn mask(&self) -> &FlowKey {
        &self.mask
    }

    /// The highest priority of its rules (0 when empty).
    pub fn max_priority(&self) -> u16 {
        self.max_priority
    }

    /// Number of distinct masked keys.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Number of rules.
    pub fn rules(&self) -> usize {
        self.prio_counts.values().map(|&c| c as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Whether some rule has this priority.
    pub(crate) fn has_priority(&self, priority: u16) -> bool {
        self.prio_counts.contains_key(&priority)
    }

    /// The priorities of its rules, ascending.
    pub(crate) fn priorities(&self) -> impl Iterator<Item = u16> + '_ {
        self.prio_counts.keys().copied()
    }

    /// The words of the mask this subtable reads.
    pub(crate) fn active(&self) -> &[u8] {
        self.active.get(..self.n).unwrap_or(&[])
    }

    /// Writes `key`'s masked active words to `out` and returns their hash.
    #[inline]
    pub(crate) fn project(&self, key: &FlowKey, out: &mut [u64; KEY_WORDS]) -> u64 {
        for (o, &i) in out.iter_mut().zip(self.active()) {
            let i = usize::from(i);
            *o = key.words.get(i).copied().unwrap_or(0)
                & self.mask.words.get(i).copied().unwrap_or(0);
        }
        hash_words(out.get(..self.n).unwrap_or(&[]))
    }

    #[inline]
    fn group_words(&self, g: u32) -> &[u64] {
        let start = g as usize * self.n;
        self.words.get(start..start + self.n).unwrap_or(&[])
    }

    /// The group whose words are `words` (hash `hash`).
    #[inline]
    pub(crate) fn find(&self, hash: u64, words: &[u64]) -> Option<u32> {
        self.table
            .find(hash, |&g| self.group_words(g) == words)
            .copied()
    }

    /// The rules whose masked key equals `key & mask`.
    #[inline]
    pub(crate) fn lookup(&self, key: &FlowKey) -> Option<&Rules> {
        let mut buf = [0u64; KEY_WORDS];
        let hash = self.project(key, &mut buf);
        let words = buf.get(..self.n)?;
        let g = self.find(hash, words)?;
        self.groups.get(g as usize)
    }

    /// The masked key of group `g` as a full key.
    pub(crate) fn group_key(&self, g: u32) -> FlowKey {
        let mut k = FlowKey::default();
        for (&i, &w) in self.active().iter().zip(self.group_words(g)) {
            if let Some(slot) = k.words.get_mut(usize::from(i)) {
                *slot = w;
            }
        }
        k
    }

    /// A flow other than `flow` with a rule at `priority` whose key agrees
    /// with `key` on `mask` (a scan of every group: for masks the index
    /// cannot probe).
    pub(crate) fn scan_overlap(
        &self,
        priority: u16,
        flow: u32,
        key: &FlowKey,
        mask: &FlowKey,
    ) -> Option<u32> {
        // The comparison restricted to the words this subtable stores.
        let mut want = [0u64; KEY_WORDS];
        let mut care = [0u64; KEY_WORDS];
        for ((w, c), &i) in want.iter_mut().zip(care.iter_mut()).zip(self.active()) {
            let i = usize::from(i);
            let m = mask.words.get(i).copied().unwrap_or(0)
                & self.mask.words.get(i).copied().unwrap_or(0);
            *c = m;
            *w = key.words.get(i).copied().unwrap_or(0) & m;
        }
        let (want, care) = (want.get(..self.n)?, care.get(..self.n)?);
        let n = self.n.max(1);
        self.groups
            .iter()
            .zip(self.words.chunks(n).chain(std::iter::repeat(&[][..])))
            .find_map(|(rules, words)| {
                let other = rules.at(priority).filter(|&a| a != flow)?;
                let agree = words
                    .iter()
                    .zip(care)
                    .zip(want)
                    .all(|((w, c), v)| w & c == *v);
                agree.then_some(other)
            })
    }

    /// Every group with its rules.
    pub(crate) fn iter_groups(&self) -> impl Iterator<Item = (u32, &Rules)> {
        self.groups.iter().enumerate().map(|(g, r)| (g as u32, r))
    }

    /// Adds `rule` for `key` (masked by this subtable's mask), whose hash is
    /// `hash` (from [`Subtable::project`]). On `Conflict` nothing changes.
    pub(crate) fn add(&mut self, hash: u64, words: &[u64], rule: Rule) -> Added {
        if let Some(g) = self.find(hash, words) {
            let Some(rules) = self.groups.get_mut(g as usize) else {
                return Added::Duplicate;
            };
            if rules.contains(rule) {
                return Added::Duplicate;
            }
            if let Some(other) = rules.at(rule.priority) {
                return Added::Conflict(other);
            }
            rules.add(rule);
        } else {
            let g = self.groups.len() as u32;
            self.words.extend_from_slice(words);
            self.groups.push(Rules::One(rule));
            let (n, all) = (self.n, &self.words);
            self.table.insert_unique(hash, g, |&x| {
                let start = x as usize * n;
                hash_words(all.get(start..start + n).unwrap_or(&[]))
            });
        }
        *self.prio_counts.entry(rule.priority).or_insert(0) += 1;
        self.max_priority = self.max_priority.max(rule.priority);
        Added::New
    }

    /// Removes one rule of `flow` from the group with hash `hash` holding
    /// it. Returns whether a rule was removed.
    pub(crate) fn remove(&mut self, hash: u64, flow: u32) -> bool {
        let groups = &self.groups;
        let Ok(entry) = self.table.find_entry(hash, |&g| {
            groups
                .get(g as usize)
                .is_some_and(|r| r.as_slice().iter().any(|r| r.flow == flow))
        }) else {
            return false;
        };
        let g = *entry.get();
        let Some((rule, emptied)) = self.groups.get_mut(g as usize).and_then(|r| r.remove(flow))
        else {
            return false;
        };
        if emptied {
            entry.remove();
            self.drop_group(g);
        }
        if let Some(c) = self.prio_counts.get_mut(&rule.priority) {
            *c -= 1;
            if *c == 0 {
                self.prio_counts.remove(&rule.priority);
            }
        }
        self.max_priority = self.prio_counts.keys().next_back().copied().unwrap_or(0);
        true
    }

    /// Removes group `g` (already out of the hash table) by moving the last
    /// group into its place.
    fn drop_group(&mut self, g: u32) {
        let last = self.groups.len().saturating_sub(1) as u32;
        if g != last {
            let hash_last = hash_words(self.group_words(last));
            if let Some(slot) = self.table.find_mut(hash_last, |&x| x == last) {
                *slot = g;
            }
            let n = self.n;
            let (dst, src) = (g as usize * n, last as usize * n);
            self.words.copy_within(src..src + n, dst);
        }
        self.groups.swap_remove(g as usize);
        self.words.truncate(self.groups.len() * self.n);
    }

    /// Prepares for `additional` more groups.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.words.reserve(additional * self.n);
        self.groups.reserve(additional);
        let (n, all) = (self.n, &self.words);
        self.table.reserve(additional, |&x| {
            let start = x as usize * n;
            hash_words(all.get(start..start + n).unwrap_or(&[]))
        });
    }

    /// Bytes allocated on the heap (approximate: allocator overhead aside).
    pub fn heap_bytes(&self) -> usize {
        let many: usize = self
            .groups
            .iter()
            .map(|r| match r {
                Rules::One(_) => 0,
                Rules::Many(v) => v.capacity() * std::mem::size_of::<Rule>(),
            })
            .sum();
        self.table.allocation_size()
            + self.words.capacity() * 8
            + self.groups.capacity() * std::mem::size_of::<Rules>()
            + many
            + self.prio_counts.len() * 16
    }
}
