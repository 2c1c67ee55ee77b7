//! The map helpers (ids 1..=3), shared by every program environment that
//! declares maps.

use super::{Map, MAX_KEY_SIZE};
use crate::ebpf::helpers::{ArgKind, Helper, HelperCtx, HelperExit, HelperRegistry, RetKind};

/// `map_lookup_elem(map, key)` → pointer to the value or 0.
pub const MAP_LOOKUP_ELEM: u32 = 1;
/// `map_update_elem(map, key, value, flags)` → 0 or a negative errno.
pub const MAP_UPDATE_ELEM: u32 = 2;
/// `map_delete_elem(map, key)` → 0 or a negative errno.
pub const MAP_DELETE_ELEM: u32 = 3;

/// Bytes of value copied through the native stack; larger values go
/// through a heap buffer.
const INLINE_VALUE: usize = 512;

#[cold]
fn fault(msg: String) -> HelperExit {
    HelperExit::Fault(msg)
}

/// The map a handle names.
fn map<'m>(h: &HelperCtx<'m>, handle: u64) -> Result<&'m Map, HelperExit> {
    let maps = h.maps;
    u32::try_from(handle)
        .ok()
        .and_then(|i| maps.get(i))
        .ok_or_else(|| fault(format!("no map {handle} ({} declared)", maps.len())))
}

/// Runs `f` on the `len` bytes at `addr`, copied out of the program's memory.
fn with_bytes<T>(
    h: &HelperCtx<'_>,
    addr: u64,
    len: usize,
    f: impl FnOnce(&[u8]) -> T,
) -> Result<T, HelperExit> {
    if len <= INLINE_VALUE {
        let mut buf = [0u8; INLINE_VALUE];
        let b = buf
            .get_mut(..len)
            .ok_or_else(|| fault("argument too large".into()))?;
        h.read_mem(addr, b)?;
        Ok(f(b))
    } else {
        let mut buf = vec![0u8; len];
        h.read_mem(addr, &mut buf)?;
        Ok(f(&buf))
    }
}

/// Runs `f` on the map's key at `addr`.
fn with_key<T>(
    h: &HelperCtx<'_>,
    m: &Map,
    addr: u64,
    f: impl FnOnce(&[u8]) -> T,
) -> Result<T, HelperExit> {
    let len = m.def().key_size.min(MAX_KEY_SIZE) as usize;
    with_bytes(h, addr, len, f)
}

fn errno(r: Result<(), super::MapOpError>) -> u64 {
    match r {
        Ok(()) => 0,
        Err(e) => e.errno() as u64,
    }
}

/// Helper 1.
pub fn map_lookup_elem(h: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    let m = map(h, a[0])?;
    with_key(h, m, a[1], |k| m.lookup(k).unwrap_or(0))
}

/// Helper 2.
pub fn map_update_elem(h: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    let m = map(h, a[0])?;
    let vlen = m.def().value_size as usize;
    with_key(h, m, a[1], |k| {
        with_bytes(h, a[2], vlen, |v| errno(m.update(k, v, a[3])))
    })?
}

/// Helper 3.
pub fn map_delete_elem(h: &mut HelperCtx<'_>, a: [u64; 5]) -> Result<u64, HelperExit> {
    let m = map(h, a[0])?;
    with_key(h, m, a[1], |k| errno(m.delete(k)))
}

/// Adds the map helpers to `reg`.
pub fn register(reg: &mut HelperRegistry) {
    use ArgKind::{MapHandle, MapKey, MapValue, Scalar, Unused};
    for (id, name, args, func, ret) in [
        (
            MAP_LOOKUP_ELEM,
            "map_lookup_elem",
            [MapHandle, MapKey, Unused, Unused, Unused],
            map_lookup_elem as crate::ebpf::helpers::HelperFn,
            RetKind::MapValueOrNull,
        ),
        (
            MAP_UPDATE_ELEM,
            "map_update_elem",
            [MapHandle, MapKey, MapValue, Scalar, Unused],
            map_update_elem,
            RetKind::Scalar,
        ),
        (
            MAP_DELETE_ELEM,
            "map_delete_elem",
            [MapHandle, MapKey, Unused, Unused, Unused],
            map_delete_elem,
            RetKind::Scalar,
        ),
    ] {
        reg.register(Helper {
            id,
            name,
            args,
            func,
            changes_packet: false,
            ret,
        });
    }
}
