//! Value storage shared between threads: `slots` values of `value_size`
//! bytes, each padded to a multiple of 8 (so every value starts 8-aligned),
//! in one allocation that never moves or shrinks while the map lives.
//!
//! Programs reach the bytes directly by address (the JIT with plain or
//! `lock`-prefixed instructions); Rust code (the interpreter, the helpers,
//! the control plane) reaches them only through this type, as atomic
//! operations on the 8-byte words that hold them, so concurrent access from
//! several workers is never a data race. An access of up to 8 bytes that
//! lies within one word (any naturally aligned one) is single-copy atomic;
//! a wider or misaligned one is done byte by byte.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Values in 8-byte words; see the module docs.
pub struct Slab {
    words: Box<[AtomicU64]>,
    stride: usize,
    slots: usize,
}

impl std::fmt::Debug for Slab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slab")
            .field("slots", &self.slots)
            .field("stride", &self.stride)
            .finish_non_exhaustive()
    }
}

/// Replaces bytes `k..k + n` (n <= 8 - k) of the word `w` (in memory order)
/// with the low `n` bytes of `v`, little-endian.
#[inline]
fn put_bytes(w: u64, k: usize, n: usize, v: u64) -> u64 {
    let mut b = w.to_ne_bytes();
    if let (Some(dst), Some(src)) = (b.get_mut(k..k + n), v.to_le_bytes().get(..n)) {
        dst.copy_from_slice(src);
    }
    u64::from_ne_bytes(b)
}

/// Bytes `k..k + n` of the word `w` (in memory order), as a little-endian
/// number.
#[inline]
fn get_bytes(w: u64, k: usize, n: usize) -> u64 {
    let b = w.to_ne_bytes();
    let mut out = [0u8; 8];
    if let (Some(dst), Some(src)) = (out.get_mut(..n), b.get(k..k + n)) {
        dst.copy_from_slice(src);
    }
    u64::from_le_bytes(out)
}

impl Slab {
    /// Storage for `slots` values of `value_size` bytes, zeroed. The caller
    /// bounds the total size.
    pub fn new(slots: usize, value_size: usize) -> Slab {
        let stride = value_size.div_ceil(8) * 8;
        let words = (0..slots * stride / 8).map(|_| AtomicU64::new(0)).collect();
        Slab {
            words,
            stride,
            slots,
        }
    }

    /// Address of the first byte.
    #[inline]
    pub fn base(&self) -> u64 {
        self.words.as_ptr() as u64
    }

    /// Bytes of storage.
    #[inline]
    pub fn len(&self) -> usize {
        self.words.len() * 8
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Bytes from one value's start to the next.
    #[inline]
    pub fn stride(&self) -> usize {
        self.stride
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Offset of slot `slot`'s value.
    #[inline]
    pub fn slot_offset(&self, slot: usize) -> usize {
        slot * self.stride
    }

    /// The offset of `addr` when `[addr, addr + size)` lies in the storage.
    #[inline]
    pub fn offset(&self, addr: u64, size: usize) -> Option<usize> {
        let off = usize::try_from(addr.wrapping_sub(self.base())).ok()?;
        (off.checked_add(size)? <= self.len()).then_some(off)
    }

    #[inline]
    fn word(&self, off: usize) -> Option<&AtomicU64> {
        self.words.get(off / 8)
    }

    /// Loads `size` (1..=8) bytes at `off`, little-endian, zero-extended.
    /// `None` outside the storage.
    #[inline]
    pub fn load(&self, off: usize, size: usize) -> Option<u64> {
        let k = off % 8;
        if size <= 8 && k + size <= 8 {
            return Some(get_bytes(self.word(off)?.load(Relaxed), k, size));
        }
        let mut b = [0u8; 8];
        self.read(off, b.get_mut(..size)?)?;
        Some(u64::from_le_bytes(b))
    }

    /// Stores the low `size` (1..=8) bytes of `v` at `off`, little-endian.
    /// `None` (nothing written) outside the storage.
    #[inline]
    pub fn store(&self, off: usize, size: usize, v: u64) -> Option<()> {
        let k = off % 8;
        if size == 8 && k == 0 {
            self.word(off)?
                .store(u64::from_ne_bytes(v.to_le_bytes()), Relaxed);
            return Some(());
        }
        if size <= 8 && k + size <= 8 {
            let w = self.word(off)?;
            // A failed update (impossible: the closure always returns Some)
            // would leave the word unchanged.
            let _ = w.fetch_update(Relaxed, Relaxed, |old| Some(put_bytes(old, k, size, v)));
            return Some(());
        }
        self.write(off, v.to_le_bytes().get(..size)?)
    }

    /// Atomically replaces the `size` (4 or 8) bytes at `off`, which must lie
    /// within one word, with `f(old)`, and returns the old value
    /// (zero-extended). `None` outside the storage or across words.
    #[inline]
    pub fn update(&self, off: usize, size: usize, f: impl Fn(u64) -> u64) -> Option<u64> {
        let k = off % 8;
        if size > 8 || k + size > 8 {
            return None;
        }
        let w = self.word(off)?;
        let old = w
            .fetch_update(Relaxed, Relaxed, |old| {
                Some(put_bytes(old, k, size, f(get_bytes(old, k, size))))
            })
            .unwrap_or_else(|v| v);
        Some(get_bytes(old, k, size))
    }

    /// Copies `out.len()` bytes at `off` into `out`. `None` (nothing read)
    /// outside the storage.
    pub fn read(&self, off: usize, out: &mut [u8]) -> Option<()> {
        if off.checked_add(out.len())? > self.len() {
            return None;
        }
        let mut i = 0;
        while i < out.len() {
            let at = off + i;
            let k = at % 8;
            let n = (8 - k).min(out.len() - i);
            let v = get_bytes(self.word(at)?.load(Relaxed), k, n).to_le_bytes();
            out.get_mut(i..i + n)?.copy_from_slice(v.get(..n)?);
            i += n;
        }
        Some(())
    }

    /// Copies `src` to `off`, word by word (whole words with plain atomic
    /// stores, partial ones with an atomic read-modify-write). `None`
    /// (nothing written) outside the storage.
    pub fn write(&self, off: usize, src: &[u8]) -> Option<()> {
        if off.checked_add(src.len())? > self.len() {
            return None;
        }
        let mut i = 0;
        while i < src.len() {
            let at = off + i;
            let k = at % 8;
            let n = (8 - k).min(src.len() - i);
            let mut b = [0u8; 8];
            b.get_mut(..n)?.copy_from_slice(src.get(i..i + n)?);
            let v = u64::from_le_bytes(b);
            let w = self.word(at)?;
            if n == 8 {
                w.store(u64::from_ne_bytes(v.to_le_bytes()), Relaxed);
            } else {
                let _ = w.fetch_update(Relaxed, Relaxed, |old| Some(put_bytes(old, k, n, v)));
            }
            i += n;
        }
        Some(())
    }

    /// Sets slot `slot`'s value to `value` and its padding to zero.
    pub fn set_slot(&self, slot: usize, value: &[u8]) -> Option<()> {
        let off = self.slot_offset(slot);
        self.write(off, value)?;
        let pad = self.stride.checked_sub(value.len())?;
        self.write(off + value.len(), &[0u8; 8][..pad.min(8)])
    }

    /// Zeroes everything.
    pub fn zero(&self) {
        for w in self.words.iter() {
            w.store(0, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_aligned_and_padded() {
        let s = Slab::new(3, 13);
        assert_eq!((s.stride(), s.len(), s.slots()), (16, 48, 3));
        assert_eq!(s.base() % 8, 0);
        assert_eq!(s.offset(s.base() + 40, 8), Some(40));
        assert_eq!(s.offset(s.base() + 41, 8), None);
        assert_eq!(s.offset(s.base() - 1, 1), None);
    }

    #[test]
    fn loads_and_stores_of_every_size_and_alignment_agree_with_bytes() {
        let s = Slab::new(1, 24);
        let mut model = [0u8; 24];
        let mut x = 0x1234_5678_9abc_def0u64;
        for round in 0..2000 {
            x = x.rotate_left(13).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ round;
            let size = [1, 2, 4, 8][(x % 4) as usize];
            let off = (x >> 8) as usize % (24 - size + 1);
            if x >> 40 & 1 == 0 {
                s.store(off, size, x).unwrap();
                model[off..off + size].copy_from_slice(&x.to_le_bytes()[..size]);
            }
            let mut want = [0u8; 8];
            want[..size].copy_from_slice(&model[off..off + size]);
            assert_eq!(s.load(off, size), Some(u64::from_le_bytes(want)));
            let mut all = [0u8; 24];
            s.read(0, &mut all).unwrap();
            assert_eq!(all, model);
        }
        assert_eq!(s.load(20, 8), None);
        assert_eq!(s.store(17, 8, 1), None);
    }

    #[test]
    fn updates_are_atomic_read_modify_writes() {
        let s = Slab::new(1, 8);
        s.store(0, 8, u64::MAX).unwrap();
        assert_eq!(s.update(4, 4, |v| v.wrapping_add(1)), Some(0xffff_ffff));
        assert_eq!(s.load(0, 8), Some(0xffff_ffff));
        assert_eq!(s.update(6, 4, |v| v), None);
        let s = std::sync::Arc::new(Slab::new(1, 8));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        s.update(0, 4, |v| v + 1).unwrap();
                        s.update(4, 4, |v| v + 2).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.load(0, 4), Some(40_000));
        assert_eq!(s.load(4, 4), Some(80_000));
    }

    #[test]
    fn slot_values_zero_their_padding() {
        let s = Slab::new(2, 5);
        s.write(0, &[9; 16]).unwrap();
        s.set_slot(0, &[1, 2, 3, 4, 5]).unwrap();
        let mut b = [0u8; 16];
        s.read(0, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4, 5, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9]);
        s.zero();
        s.read(0, &mut b).unwrap();
        assert_eq!(b, [0; 16]);
    }
}
