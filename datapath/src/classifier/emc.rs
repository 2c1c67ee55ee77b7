//! The exact-match cache: one per worker, keyed by the whole flow key.
//!
//! A fixed power-of-two array of buckets, [`EMC_WAYS`] slots each. A key's
//! bucket comes from an ahash of its ten words. `get` compares at most
//! `EMC_WAYS` keys and never allocates; `insert` puts the new entry in the
//! bucket's first way and shifts the others down, so the least recently
//! inserted entry of a full bucket is the one replaced.
//!
//! The cache knows nothing of tables: the caller stores what it needs in `V`
//! (flow handles and a table generation, say) and treats an entry of an old
//! generation as a miss.

use super::hash::same_words;
use crate::flow::key::FlowKey;

/// Default number of entries.
pub const EMC_DEFAULT_ENTRIES: usize = 8192;
/// Slots per bucket.
pub const EMC_WAYS: usize = 2;

static HASH: ahash::RandomState = ahash::RandomState::with_seeds(
    0x9e37_79b9_7f4a_7c15,
    0xbf58_476d_1ce4_e5b9,
    0x94d0_49bb_1331_11eb,
    0x2545_f491_4f6c_dd1d,
);

/// The bucket hash of a whole key.
#[inline]
fn key_hash(key: &FlowKey) -> u64 {
    super::hash::hash_words(&HASH, &key.words)
}

#[derive(Debug, Clone, Copy)]
struct Slot<V: Copy> {
    key: FlowKey,
    value: Option<V>,
}

/// One bucket, cache-line aligned so that it spans as few lines as
/// possible.
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
struct Bucket<V: Copy> {
    ways: [Slot<V>; EMC_WAYS],
}

/// A fixed-size exact-match cache from flow keys to `V`.
#[derive(Debug, Clone)]
pub struct Emc<V: Copy> {
    buckets: Box<[Bucket<V>]>,
    bucket_mask: usize,
}

impl<V: Copy> Default for Emc<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Copy> Emc<V> {
    /// A cache of [`EMC_DEFAULT_ENTRIES`] entries.
    pub fn new() -> Self {
        Self::with_capacity(EMC_DEFAULT_ENTRIES)
    }

    /// A cache of at least `entries` entries (rounded up to a power of two,
    /// at least one bucket).
    pub fn with_capacity(entries: usize) -> Self {
        let n = entries.max(EMC_WAYS).next_power_of_two();
        let empty = Slot {
            key: FlowKey::default(),
            value: None,
        };
        let buckets = n / EMC_WAYS;
        Emc {
            buckets: vec![
                Bucket {
                    ways: [empty; EMC_WAYS]
                };
                buckets
            ]
            .into_boxed_slice(),
            bucket_mask: buckets - 1,
        }
    }

    /// Number of entries it can hold.
    pub fn capacity(&self) -> usize {
        self.buckets.len() * EMC_WAYS
    }

    #[inline]
    fn bucket(&self, key: &FlowKey) -> usize {
        key_hash(key) as usize & self.bucket_mask
    }

    /// The value cached for `key`.
    #[inline]
    pub fn get(&self, key: &FlowKey) -> Option<V> {
        let ways = &self.buckets.get(self.bucket(key))?.ways;
        ways.iter()
            .find(|s| s.value.is_some() && same_words(&s.key.words, &key.words))
            .and_then(|s| s.value)
    }

    /// Caches `value` for `key`: updates the key's entry if present, else
    /// takes the bucket's first way, evicting its last.
    #[inline]
    pub fn insert(&mut self, key: FlowKey, value: V) {
        let b = self.bucket(&key);
        let Some(Bucket { ways }) = self.buckets.get_mut(b) else {
            return;
        };
        if let Some(s) = ways
            .iter_mut()
            .find(|s| s.value.is_some() && same_words(&s.key.words, &key.words))
        {
            s.value = Some(value);
            return;
        }
        ways.rotate_right(1);
        if let Some(first) = ways.first_mut() {
            *first = Slot {
                key,
                value: Some(value),
            };
        }
    }

    /// Forgets every entry.
    pub fn clear(&mut self) {
        for s in self.buckets.iter_mut().flat_map(|b| b.ways.iter_mut()) {
            s.value = None;
        }
    }

    /// Number of entries held (a full scan: for statistics and tests).
    pub fn len(&self) -> usize {
        self.buckets
            .iter()
            .flat_map(|b| b.ways.iter())
            .filter(|s| s.value.is_some())
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bucket of `key` (for tests that need colliding keys).
    pub fn bucket_of(&self, key: &FlowKey) -> usize {
        self.bucket(key)
    }
}
