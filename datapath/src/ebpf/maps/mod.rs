//! eBPF maps: state that custom programs keep across runs, shared by all
//! workers of a switch.
//!
//! # ABI
//!
//! A program names map `n` of its environment ([`crate::ebpf::ProgEnv::maps`])
//! with `lddw rX, map n` (an `lddw` whose source field is `LDDW_MAP`); the
//! register holds a handle that only the map helpers accept (its value is
//! `n`; the verifier lets the program neither compute with it nor store it
//! anywhere but a stack spill). The helpers (ids in [`helpers`]):
//!
//! | id | helper | returns |
//! |---|---|---|
//! | 1 | `map_lookup_elem(map, key)` | pointer to the value, or 0 |
//! | 2 | `map_update_elem(map, key, value, flags)` | 0 or a negative errno |
//! | 3 | `map_delete_elem(map, key)` | 0 or a negative errno |
//!
//! `key` and `value` point to `key_size` / `value_size` bytes of initialised
//! stack or of a map value. The lookup's result must be compared with 0
//! before use; after that the verifier proves every access to the value
//! within `value_size` bytes, so neither engine checks them at run time.
//! `flags`: [`BPF_ANY`], [`BPF_NOEXIST`], [`BPF_EXIST`]. Errors:
//! [`MapOpError::errno`].
//!
//! # Kinds
//!
//! - [`MapKind::Array`]: `max_entries` values, all present (zero at
//!   creation), keyed by a 4-byte little-endian index; delete is refused.
//! - [`MapKind::Hash`]: up to `max_entries` keys of `key_size` bytes.
//!
//! # Concurrency
//!
//! One [`Maps`] set belongs to the switch; every worker's programs use it at
//! once (`Arc<Maps>` in their environment).
//!
//! - Values live in a [`Slab`] allocated when the map is made and never
//!   moved or freed before the map, so a value pointer is always valid
//!   memory of the right size. Programs load and store map values directly,
//!   without locks: a naturally aligned access of up to 8 bytes is
//!   single-copy atomic; eBPF atomic instructions (`lock xadd` and friends
//!   in the JIT, compare-and-swap loops in the interpreter) are the way to
//!   update shared counters. The verifier requires atomics on map values to
//!   be naturally aligned.
//! - Rust code (the interpreter, the helpers, the control plane) accesses
//!   value bytes only as atomic operations on their 8-byte words, so a
//!   concurrent program is never a data race.
//! - Array update copies the value in place, word by word: a concurrent
//!   reader may see a mix of old and new words, as in the kernel.
//! - Hash maps keep their key → slot index in [`STRIPES`] lock stripes
//!   (a `parking_lot::RwLock` around a hash table each, chosen by the key's
//!   hash); a lookup takes one stripe's read lock for the probe only, update
//!   and delete its write lock. Slots come from a free list (a mutex taken
//!   only to insert a new key or delete one). Updating an existing key
//!   writes its value in place. A deleted key's slot may be reused by a
//!   later insert while a program still holds a pointer from an earlier
//!   lookup: that program then sees the new key's value (memory-safe; the
//!   kernel's preallocated hash maps behave the same).

mod array;
mod hash;
pub mod helpers;
pub mod slab;

use thiserror::Error;

pub use slab::Slab;

use array::ArrayMap;
use hash::HashMap;

/// Lock stripes of a hash map.
pub const STRIPES: usize = 16;
/// Largest key, in bytes (a key must fit the program's stack frame).
pub const MAX_KEY_SIZE: u32 = 512;
/// Largest value, in bytes.
pub const MAX_VALUE_SIZE: u32 = 1 << 16;
/// Largest total value storage of one map, in bytes.
pub const MAX_MAP_BYTES: u64 = 1 << 30;
/// Most maps in one set.
pub const MAX_MAPS: usize = 256;

/// `map_update_elem` flags: create or replace.
pub const BPF_ANY: u64 = 0;
/// Create only: the key must not exist.
pub const BPF_NOEXIST: u64 = 1;
/// Replace only: the key must exist.
pub const BPF_EXIST: u64 = 2;

/// The kind of a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapKind {
    Array,
    Hash,
}

impl std::fmt::Display for MapKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MapKind::Array => "array",
            MapKind::Hash => "hash",
        })
    }
}

/// A map declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MapDef {
    pub kind: MapKind,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

/// A map declaration that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MapDefError {
    #[error("map {index}: key_size {key_size} must be 1..={MAX_KEY_SIZE}")]
    KeySize { index: usize, key_size: u32 },
    #[error("map {index}: an array map's key_size must be 4, not {key_size}")]
    ArrayKey { index: usize, key_size: u32 },
    #[error("map {index}: value_size {value_size} must be 1..={MAX_VALUE_SIZE}")]
    ValueSize { index: usize, value_size: u32 },
    #[error("map {index}: max_entries must be at least 1")]
    NoEntries { index: usize },
    #[error("map {index}: {bytes} bytes of values exceed the {MAX_MAP_BYTES}-byte limit")]
    TooBig { index: usize, bytes: u64 },
    #[error("{count} maps exceed the limit of {MAX_MAPS}")]
    TooMany { count: usize },
}

/// Why `map_update_elem` / `map_delete_elem` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MapOpError {
    #[error("no such key")]
    NotFound,
    #[error("key already exists")]
    Exists,
    #[error("map is full (or array index out of range)")]
    Full,
    #[error("invalid flags or operation")]
    Invalid,
}

impl MapOpError {
    /// The negative errno a helper returns: -ENOENT (-2), -EEXIST (-17),
    /// -E2BIG (-7), -EINVAL (-22).
    pub fn errno(self) -> i64 {
        match self {
            MapOpError::NotFound => -2,
            MapOpError::Exists => -17,
            MapOpError::Full => -7,
            MapOpError::Invalid => -22,
        }
    }
}

enum Store {
    Array(ArrayMap),
    Hash(Box<HashMap>),
}

/// One map: its declaration and its storage.
pub struct Map {
    def: MapDef,
    store: Store,
}

impl std::fmt::Debug for Map {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map").field("def", &self.def).finish()
    }
}

impl Map {
    /// Makes map number `index` (for error messages) from its declaration.
    pub fn new(index: usize, def: MapDef) -> Result<Map, MapDefError> {
        if def.key_size == 0 || def.key_size > MAX_KEY_SIZE {
            return Err(MapDefError::KeySize {
                index,
                key_size: def.key_size,
            });
        }
        if def.kind == MapKind::Array && def.key_size != 4 {
            return Err(MapDefError::ArrayKey {
                index,
                key_size: def.key_size,
            });
        }
        if def.value_size == 0 || def.value_size > MAX_VALUE_SIZE {
            return Err(MapDefError::ValueSize {
                index,
                value_size: def.value_size,
            });
        }
        if def.max_entries == 0 {
            return Err(MapDefError::NoEntries { index });
        }
        let stride = u64::from(def.value_size).div_ceil(8) * 8;
        let bytes = stride * u64::from(def.max_entries);
        if bytes > MAX_MAP_BYTES {
            return Err(MapDefError::TooBig { index, bytes });
        }
        let slots = def.max_entries as usize;
        let value_size = def.value_size as usize;
        let store = match def.kind {
            MapKind::Array => Store::Array(ArrayMap::new(slots, value_size)),
            MapKind::Hash => Store::Hash(Box::new(HashMap::new(slots, value_size))),
        };
        Ok(Map { def, store })
    }

    pub fn def(&self) -> &MapDef {
        &self.def
    }

    /// The value storage.
    pub fn slab(&self) -> &Slab {
        match &self.store {
            Store::Array(a) => &a.slab,
            Store::Hash(h) => h.slab(),
        }
    }

    /// The address of `key`'s value, if present (`key` must be `key_size`
    /// bytes; any other length is never present).
    #[inline]
    pub fn lookup(&self, key: &[u8]) -> Option<u64> {
        if key.len() != self.def.key_size as usize {
            return None;
        }
        let slot = match &self.store {
            Store::Array(a) => a.slot(key),
            Store::Hash(h) => h.slot(key),
        }?;
        Some(self.slab().base() + self.slab().slot_offset(slot) as u64)
    }

    /// Sets `key`'s value (`value_size` bytes) according to `flags`.
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapOpError> {
        if key.len() != self.def.key_size as usize
            || value.len() != self.def.value_size as usize
            || flags > BPF_EXIST
        {
            return Err(MapOpError::Invalid);
        }
        match &self.store {
            Store::Array(a) => a.update(key, value, flags),
            Store::Hash(h) => h.update(key, value, flags),
        }
    }

    /// Removes `key` (hash maps only).
    pub fn delete(&self, key: &[u8]) -> Result<(), MapOpError> {
        match &self.store {
            Store::Array(_) => Err(MapOpError::Invalid),
            Store::Hash(h) if key.len() == self.def.key_size as usize => h.delete(key),
            Store::Hash(_) => Err(MapOpError::NotFound),
        }
    }

    /// A copy of `key`'s value, if present.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let addr = self.lookup(key)?;
        let off = self.slab().offset(addr, self.def.value_size as usize)?;
        let mut out = vec![0u8; self.def.value_size as usize];
        self.slab().read(off, &mut out)?;
        Some(out)
    }

    /// Every `(key, value)`, sorted by key.
    pub fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let keys = match &self.store {
            Store::Array(a) => a.keys(),
            Store::Hash(h) => h.keys(),
        };
        let mut out: Vec<_> = keys
            .into_iter()
            .filter_map(|k| self.get(&k).map(|v| (k, v)))
            .collect();
        out.sort();
        out
    }

    /// Back to the state at creation: array values zero, hash maps empty.
    pub fn clear(&self) {
        match &self.store {
            Store::Array(a) => a.slab.zero(),
            Store::Hash(h) => h.clear(),
        }
    }
}

/// The maps of a switch (or of a program environment), by index.
#[derive(Debug, Default)]
pub struct Maps {
    maps: Vec<Map>,
}

impl Maps {
    /// No maps.
    pub const fn empty() -> Maps {
        Maps { maps: Vec::new() }
    }

    /// Makes the declared maps, in order (map `n` is the `n`th).
    pub fn new(defs: impl IntoIterator<Item = MapDef>) -> Result<Maps, MapDefError> {
        let maps = defs
            .into_iter()
            .enumerate()
            .map(|(i, d)| Map::new(i, d))
            .collect::<Result<Vec<_>, _>>()?;
        if maps.len() > MAX_MAPS {
            return Err(MapDefError::TooMany { count: maps.len() });
        }
        Ok(Maps { maps })
    }

    #[inline]
    pub fn get(&self, index: u32) -> Option<&Map> {
        self.maps.get(index as usize)
    }

    pub fn len(&self) -> usize {
        self.maps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// The declaration of map `index`.
    pub fn def(&self, index: u32) -> Option<&MapDef> {
        self.get(index).map(Map::def)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Map> {
        self.maps.iter()
    }

    /// The map whose value storage holds `[addr, addr + len)`, with the
    /// offset of `addr` in it.
    pub fn find(&self, addr: u64, len: usize) -> Option<(&Map, usize)> {
        self.maps
            .iter()
            .find_map(|m| m.slab().offset(addr, len).map(|off| (m, off)))
    }

    /// Every map's entries ([`Map::entries`]).
    pub fn snapshot(&self) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        self.maps.iter().map(Map::entries).collect()
    }

    /// Clears every map ([`Map::clear`]).
    pub fn clear(&self) {
        for m in &self.maps {
            m.clear();
        }
    }
}

#[cfg(test)]
mod tests;
