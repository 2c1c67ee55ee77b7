//! The exact-match cache: one per worker, keyed by the whole flow key.
//!
//! A fixed power-of-two array of buckets, [`EMC_WAYS`] slots each. A key's
//! bucket and 32-bit tag come from a multiply hash of its ten words; `get`
//! compares the whole key only in a way whose tag matches (almost always
//! just the right one) and never allocates; `insert` puts the new entry in
//! the bucket's first way and shifts the others down, so the least
//! recently inserted entry of a full bucket is the one replaced. Four ways
//! keep a few keys that share a bucket from evicting each other in turn.
//!
//! The cache knows nothing of tables: the caller stores what it needs in `V`
//! (flow handles, say) and empties the cache when what `V` names changes
//! (a worker does when it switches to a new table generation).

use super::hash::same_words;
use crate::flow::key::{FlowKey, KEY_WORDS};
use crate::sys::prefetch::prefetch;

/// Default number of entries.
pub const EMC_DEFAULT_ENTRIES: usize = 8192;
/// Slots per bucket.
pub const EMC_WAYS: usize = 4;

/// Odd constants (from the fractional digits of pi) that spread each key
/// word before the multiplies.
const SEEDS: [u64; KEY_WORDS + 1] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d1,
    0x082e_fa98_ec4e_6c89,
    0x4528_21e6_38d0_1377,
    0xbe54_66cf_34e9_0c6d,
    0xc0ac_29b7_c97c_50dd,
    0x3f84_d5b5_b547_0917,
    0x9216_d5d9_8979_fb1b,
    0xd131_0ba6_98df_b5ad,
    0xb8e1_afed_6a26_7e97,
];

/// The high and low halves of the 128-bit product, folded together.
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// The hash of a whole key: one independent multiply per pair of words
/// (they run in parallel), summed and mixed once more. Keys come from
/// packets, but the cache holds only what the classifier chose for them,
/// so a crafted collision costs the sender a classifier lookup, nothing
/// more: speed matters more here than resistance to chosen keys.
#[inline]
fn key_hash(key: &FlowKey) -> u64 {
    let w = &key.words;
    let mut h = 0u64;
    for i in (0..KEY_WORDS).step_by(2) {
        h = h.wrapping_add(fold(w[i] ^ SEEDS[i], w[i + 1] ^ SEEDS[i + 1]));
    }
    fold(h, SEEDS[KEY_WORDS])
}

/// One bucket: the ways' tags (a hash's high bits, never 0; 0 = empty),
/// then each way's key with its value right after it. A probe reads the
/// tags, then the key and value of the way whose tag matches; for way 0
/// (the newest entry) with a value of up to 32 bytes, all of that lies in
/// the bucket's first two cache lines, which [`Emc::prefetch`] asks for.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Bucket<V: Copy> {
    tags: [u32; EMC_WAYS],
    ways: [Way<V>; EMC_WAYS],
}

/// A key and its value.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Way<V: Copy> {
    key: FlowKey,
    value: V,
}

/// A fixed-size exact-match cache from flow keys to `V`.
#[derive(Debug, Clone)]
pub struct Emc<V: Copy + Default> {
    buckets: Box<[Bucket<V>]>,
    bucket_mask: usize,
}

impl<V: Copy + Default> Default for Emc<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// The tag of a hash (its high 32 bits, 0 made 1).
#[inline]
fn tag_of(h: u64) -> u32 {
    ((h >> 32) as u32).max(1)
}

impl<V: Copy + Default> Emc<V> {
    /// A cache of [`EMC_DEFAULT_ENTRIES`] entries.
    pub fn new() -> Self {
        Self::with_capacity(EMC_DEFAULT_ENTRIES)
    }

    /// A cache of at least `entries` entries (rounded up to a power of two,
    /// at least one bucket).
    pub fn with_capacity(entries: usize) -> Self {
        let n = entries.max(EMC_WAYS).next_power_of_two();
        let buckets = n / EMC_WAYS;
        let empty = Bucket {
            tags: [0; EMC_WAYS],
            ways: [Way {
                key: FlowKey::default(),
                value: V::default(),
            }; EMC_WAYS],
        };
        Emc {
            buckets: vec![empty; buckets].into_boxed_slice(),
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
        self.get_hashed(key, key_hash(key))
    }

    /// The hash [`get_hashed`](Self::get_hashed) and
    /// [`prefetch`](Self::prefetch) take for `key`.
    #[inline]
    pub fn hash(key: &FlowKey) -> u64 {
        key_hash(key)
    }

    /// Asks for the first two cache lines of the bucket of the key whose
    /// [`hash`](Self::hash) is `h` (its tags and way 0): a batch hashes
    /// every key and prefetches, then probes, so that the probes' misses
    /// overlap.
    #[inline]
    pub fn prefetch(&self, h: u64) {
        if let Some(b) = self.buckets.get(h as usize & self.bucket_mask) {
            prefetch(&b.tags);
            prefetch(&b.ways[0].value);
        }
    }

    /// [`get`](Self::get) with the key's [`hash`](Self::hash) `h`
    /// already computed. With another `h` a cached key may be missed, but
    /// never another key's value returned: the whole key is compared.
    #[inline]
    pub fn get_hashed(&self, key: &FlowKey, h: u64) -> Option<V> {
        let b = self.buckets.get(h as usize & self.bucket_mask)?;
        let tag = tag_of(h);
        (0..EMC_WAYS)
            .filter(|&i| b.tags[i] == tag)
            .find(|&i| same_words(&b.ways[i].key.words, &key.words))
            .map(|i| b.ways[i].value)
    }

    /// Caches `value` for `key`: updates the key's entry if present, else
    /// takes the bucket's first way, evicting its last.
    #[inline]
    pub fn insert(&mut self, key: FlowKey, value: V) {
        let h = key_hash(&key);
        let tag = tag_of(h);
        let Some(b) = self.buckets.get_mut(h as usize & self.bucket_mask) else {
            return;
        };
        if let Some(i) = (0..EMC_WAYS)
            .find(|&i| b.tags[i] == tag && same_words(&b.ways[i].key.words, &key.words))
        {
            b.ways[i].value = value;
            return;
        }
        b.tags.rotate_right(1);
        b.ways.rotate_right(1);
        b.tags[0] = tag;
        b.ways[0] = Way { key, value };
    }

    /// Forgets every entry.
    pub fn clear(&mut self) {
        for b in self.buckets.iter_mut() {
            b.tags = [0; EMC_WAYS];
        }
    }

    /// Number of entries held (a full scan: for statistics and tests).
    pub fn len(&self) -> usize {
        self.buckets
            .iter()
            .flat_map(|b| b.tags.iter())
            .filter(|&&t| t != 0)
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
