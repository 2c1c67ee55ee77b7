//! Hashing of key words with ahash, two words at a time: ahash's 128-bit
//! update multiplies each block independently of the running state, so the
//! blocks of a key hash in parallel instead of as one chain of multiplies.

use std::hash::{BuildHasher, Hasher};

/// Hashes `words` with `state`.
#[inline]
pub(crate) fn hash_words(state: &ahash::RandomState, words: &[u64]) -> u64 {
    let mut h = state.build_hasher();
    let mut pairs = words.chunks_exact(2);
    for p in pairs.by_ref() {
        if let [a, b] = p {
            h.write_u128((u128::from(*b) << 64) | u128::from(*a));
        }
    }
    if let [last] = pairs.remainder() {
        h.write_u64(*last);
    }
    h.finish()
}

/// Whether two keys are equal: a branch-free comparison of all the words
/// (no call to `memcmp`).
#[inline]
pub(crate) fn same_words(
    a: &[u64; crate::flow::key::KEY_WORDS],
    b: &[u64; crate::flow::key::KEY_WORDS],
) -> bool {
    a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}
