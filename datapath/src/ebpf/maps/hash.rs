//! Hash maps: a lock-striped index from keys to slots of a preallocated
//! value slab (see the concurrency notes in the module docs of
//! [`super`]).

use ahash::RandomState;
use hashbrown::HashTable;
use parking_lot::{Mutex, RwLock};

use super::{MapOpError, Slab, BPF_EXIST, BPF_NOEXIST, STRIPES};

struct Entry {
    hash: u64,
    key: Box<[u8]>,
    slot: u32,
}

pub struct HashMap {
    slab: Slab,
    hasher: RandomState,
    stripes: [RwLock<HashTable<Entry>>; STRIPES],
    /// Free slots; popped from the end, so a fresh map hands out 0, 1, 2...
    free: Mutex<Vec<u32>>,
}

impl HashMap {
    pub fn new(slots: usize, value_size: usize) -> Self {
        HashMap {
            slab: Slab::new(slots, value_size),
            hasher: RandomState::new(),
            stripes: std::array::from_fn(|_| RwLock::new(HashTable::new())),
            free: Mutex::new(Self::all_slots(slots)),
        }
    }

    fn all_slots(slots: usize) -> Vec<u32> {
        (0..slots as u32).rev().collect()
    }

    pub fn slab(&self) -> &Slab {
        &self.slab
    }

    /// The key's hash and stripe.
    #[inline]
    fn locate(&self, key: &[u8]) -> (u64, &RwLock<HashTable<Entry>>) {
        let h = self.hasher.hash_one(key);
        // hashbrown uses the low bits for buckets and the top 7 for tags.
        let stripe = (h >> 32) as usize % STRIPES;
        (h, &self.stripes[stripe])
    }

    #[inline]
    pub fn slot(&self, key: &[u8]) -> Option<usize> {
        let (h, stripe) = self.locate(key);
        let table = stripe.read();
        table.find(h, |e| *e.key == *key).map(|e| e.slot as usize)
    }

    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapOpError> {
        let (h, stripe) = self.locate(key);
        let mut table = stripe.write();
        if let Some(e) = table.find(h, |e| *e.key == *key) {
            if flags == BPF_NOEXIST {
                return Err(MapOpError::Exists);
            }
            return self
                .slab
                .set_slot(e.slot as usize, value)
                .ok_or(MapOpError::Invalid);
        }
        if flags == BPF_EXIST {
            return Err(MapOpError::NotFound);
        }
        let slot = self.free.lock().pop().ok_or(MapOpError::Full)?;
        self.slab
            .set_slot(slot as usize, value)
            .ok_or(MapOpError::Invalid)?;
        table.insert_unique(
            h,
            Entry {
                hash: h,
                key: key.into(),
                slot,
            },
            |e| e.hash,
        );
        Ok(())
    }

    pub fn delete(&self, key: &[u8]) -> Result<(), MapOpError> {
        let (h, stripe) = self.locate(key);
        let mut table = stripe.write();
        let entry = table
            .find_entry(h, |e| *e.key == *key)
            .map_err(|_| MapOpError::NotFound)?;
        let (e, _) = entry.remove();
        self.free.lock().push(e.slot);
        Ok(())
    }

    pub fn keys(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for s in self.stripes.iter() {
            out.extend(s.read().iter().map(|e| e.key.to_vec()));
        }
        out
    }

    /// Empties the map (taking every stripe's write lock in order).
    pub fn clear(&self) {
        let mut guards: Vec<_> = self.stripes.iter().map(|s| s.write()).collect();
        for g in &mut guards {
            g.clear();
        }
        *self.free.lock() = Self::all_slots(self.slab.slots());
        self.slab.zero();
        drop(guards);
    }
}
