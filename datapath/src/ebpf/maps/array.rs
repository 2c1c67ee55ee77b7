//! Array maps: `max_entries` values, all present, keyed by a 4-byte
//! little-endian index.

use super::{MapOpError, Slab, BPF_NOEXIST};

pub struct ArrayMap {
    pub slab: Slab,
}

impl ArrayMap {
    pub fn new(slots: usize, value_size: usize) -> Self {
        ArrayMap {
            slab: Slab::new(slots, value_size),
        }
    }

    /// The slot of the index `key` (4 bytes), if in range.
    #[inline]
    pub fn slot(&self, key: &[u8]) -> Option<usize> {
        let idx = u32::from_le_bytes(*key.first_chunk::<4>()?) as usize;
        (idx < self.slab.slots()).then_some(idx)
    }

    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapOpError> {
        let slot = self.slot(key).ok_or(MapOpError::Full)?;
        if flags == BPF_NOEXIST {
            // Every element of an array exists.
            return Err(MapOpError::Exists);
        }
        self.slab.set_slot(slot, value).ok_or(MapOpError::Invalid)
    }

    pub fn keys(&self) -> Vec<Vec<u8>> {
        (0..self.slab.slots() as u32)
            .map(|i| i.to_le_bytes().to_vec())
            .collect()
    }
}
