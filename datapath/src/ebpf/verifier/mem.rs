//! Loads, stores and atomics: which region the base register points into,
//! whether the access is proven in bounds, and what it does to the stack's
//! initialisation and spill tracking.

use super::error::Reason;
use super::scalar::Scalar;
use super::state::{Ptr, PtrKind, Reg, Stack, State};
use crate::ebpf::insn::{AtomicOp, STACK_SIZE};
use crate::ebpf::maps::Maps;
use crate::ebpf::vm::{CtxField, CtxLayout, MemAccess, Region};

const FRAME: i64 = STACK_SIZE as i64;

/// What memory accesses are checked against besides the state: the ctx
/// layout (`Entry::Ctx`) and the maps.
pub struct MemEnv<'a> {
    pub layout: Option<&'a CtxLayout>,
    pub maps: &'a Maps,
}

/// Reads an initialised register.
pub fn read(st: &State, r: u8) -> Result<Reg, Reason> {
    let reg = st
        .cur()
        .and_then(|f| f.regs.get(usize::from(r)))
        .copied()
        .unwrap_or(Reg::Uninit);
    match reg {
        Reg::Uninit => Err(Reason::UninitRegister { reg: r }),
        Reg::Conflict => Err(Reason::ConflictingTypes { reg: r }),
        v => Ok(v),
    }
}

/// Writes a register of the executing frame.
pub fn set(st: &mut State, r: u8, v: Reg) {
    if let Some(slot) = st.cur_mut().and_then(|f| f.regs.get_mut(usize::from(r))) {
        *slot = v;
    }
}

fn stack_of(st: &State, frame: usize) -> Result<&Stack, Reason> {
    st.frames
        .get(frame)
        .map(|f| &f.stack)
        .ok_or(Reason::DeadFrame { frame: frame as u8 })
}

fn stack_of_mut(st: &mut State, frame: usize) -> Result<&mut Stack, Reason> {
    st.frames
        .get_mut(frame)
        .map(|f| &mut f.stack)
        .ok_or(Reason::DeadFrame { frame: frame as u8 })
}

/// Where an access lands.
enum Target {
    /// Stack frame `frame`, first byte at an offset in `[lo, hi]`.
    Stack {
        frame: usize,
        lo: i64,
        hi: i64,
    },
    Packet {
        guard: bool,
    },
    Ctx {
        off: i64,
        kind: CtxField,
    },
    /// A value of map `map`, first byte at an offset in `[lo, hi]`.
    Map {
        map: u32,
        lo: i64,
        hi: i64,
    },
}

impl Target {
    fn access(&self) -> MemAccess {
        match *self {
            Target::Stack { .. } => MemAccess {
                region: Region::Stack,
                guard: false,
            },
            Target::Packet { guard } => MemAccess {
                region: Region::Packet,
                guard,
            },
            Target::Ctx { .. } => MemAccess {
                region: Region::Ctx,
                guard: false,
            },
            Target::Map { map, .. } => MemAccess {
                region: Region::Map(map),
                guard: false,
            },
        }
    }
}

fn resolve(st: &State, env: &MemEnv<'_>, base: u8, off: i16, size: u8) -> Result<Target, Reason> {
    let p: Ptr = match read(st, base)? {
        Reg::Ptr(p) => p,
        _ => return Err(Reason::ScalarAsPointer { reg: base }),
    };
    let moved = p.moved(i128::from(off), i128::from(off));
    let (lo, hi) = (moved.lo, moved.hi);
    let end = hi + i64::from(size);
    match p.kind {
        PtrKind::Stack { frame } => {
            if !moved.bounded() || lo < -FRAME || end > 0 {
                return Err(Reason::StackOutOfFrame { lo, hi, size });
            }
            let frame = usize::from(frame);
            if frame >= st.frames.len() {
                return Err(Reason::DeadFrame { frame: frame as u8 });
            }
            Ok(Target::Stack { frame, lo, hi })
        }
        PtrKind::Packet => {
            // The first byte is at or after the packet start, and the last
            // within the proven length or the proven range of the variable
            // part.
            let proven = moved.bounded()
                && lo >= 0
                && (end as u64 <= st.pkt_min || moved.var.is_some_and(|v| v.proves(size)));
            Ok(Target::Packet { guard: !proven })
        }
        PtrKind::PacketEnd => Err(Reason::PacketEndAccess { reg: base }),
        PtrKind::MapHandle { .. } => Err(Reason::MapHandleAccess { reg: base }),
        PtrKind::MapValueOrNull { .. } => Err(Reason::MaybeNull { reg: base }),
        PtrKind::MapValue { map } => {
            let value_size = map_value_size(env.maps, map)?;
            if !moved.bounded() || lo < 0 || end > i64::from(value_size) {
                return Err(Reason::MapValueOutOfBounds {
                    map,
                    lo,
                    hi,
                    size: u32::from(size),
                    value_size,
                });
            }
            Ok(Target::Map { map, lo, hi })
        }
        PtrKind::Ctx => {
            if lo != hi || !moved.bounded() {
                return Err(Reason::CtxVariableOffset { reg: base, lo, hi });
            }
            // Packet-pointer fields only as a whole; number fields also in
            // part (any access that lies within one field).
            let size_us = usize::from(size);
            let window = env.layout.map(|l| l.window_fields()).unwrap_or_default();
            let field = env.layout.and_then(|l| {
                l.fields.iter().find(|&&(o, s, k)| {
                    let Ok(start) = usize::try_from(lo) else {
                        return false;
                    };
                    let whole = start == o && size_us == s;
                    let inside = start >= o && start + size_us <= o + s;
                    o + s <= l.size
                        && match k {
                            // Only the fields the engines take the window from.
                            CtxField::PacketStart => whole && window.start == Some(o),
                            CtxField::PacketEnd => whole && window.end == Some(o),
                            CtxField::Scalar | CtxField::ScalarRw => inside,
                        }
                })
            });
            match field {
                Some(&(_, _, kind)) => Ok(Target::Ctx { off: lo, kind }),
                None => Err(Reason::CtxNoField { off: lo, size }),
            }
        }
    }
}

/// A ctx write must hit a [`CtxField::ScalarRw`] field that overlaps no
/// packet-pointer field (the proofs about packet bounds trust those).
fn ctx_writable(
    layout: Option<&CtxLayout>,
    off: i64,
    size: u8,
    kind: CtxField,
) -> Result<(), Reason> {
    let end = off + i64::from(size);
    let overlaps_ptr = layout.is_some_and(|l| {
        l.fields.iter().any(|&(o, s, k)| {
            matches!(k, CtxField::PacketStart | CtxField::PacketEnd)
                && (o as i64) < end
                && off < (o + s) as i64
        })
    });
    if kind != CtxField::ScalarRw || overlaps_ptr {
        return Err(Reason::CtxReadOnly { off });
    }
    Ok(())
}

/// A narrow load from inside a spilled constant: its bytes (little-endian),
/// zero- or sign-extended.
fn spilled_bytes(stack: &Stack, off: i64, size: u8, signed: bool) -> Option<Reg> {
    let slot = off.div_euclid(8) * 8;
    let shift = u32::try_from(off - slot).ok()? * 8;
    if off - slot + i64::from(size) > 8 {
        return None;
    }
    let Some(Reg::Scalar(s)) = stack.spilled(slot) else {
        return None;
    };
    let bits = u32::from(size) * 8;
    let v = s.as_const()? >> shift;
    let v = if bits >= 64 {
        v
    } else if signed {
        (((v << (64 - bits)) as i64) >> (64 - bits)) as u64
    } else {
        v & ((1u64 << bits) - 1)
    };
    Some(Reg::Scalar(Scalar::constant(v)))
}

/// `dst = *(size *)(src + off)`.
pub fn load(
    st: &mut State,
    env: &MemEnv<'_>,
    size: u8,
    signed: bool,
    dst: u8,
    src: u8,
    off: i16,
) -> Result<MemAccess, Reason> {
    let t = resolve(st, env, src, off, size)?;
    let value = match t {
        Target::Stack { frame, lo, hi } => {
            let stack = stack_of(st, frame)?;
            let end = hi + i64::from(size);
            let spilled = (lo == hi && size == 8 && lo % 8 == 0)
                .then(|| stack.spilled(lo))
                .flatten();
            if spilled.is_none() {
                if let Some(o) = stack.ptr_overlap(lo, end) {
                    return Err(Reason::PointerBytes { off: o });
                }
            }
            if let Some(o) = stack.first_uninit(lo, end) {
                return Err(Reason::UninitStack { off: o });
            }
            spilled
                .or_else(|| {
                    (lo == hi)
                        .then(|| spilled_bytes(stack, lo, size, signed))
                        .flatten()
                })
                .unwrap_or(Reg::Scalar(Scalar::loaded(size, signed)))
        }
        Target::Packet { .. } | Target::Map { .. } => Reg::Scalar(Scalar::loaded(size, signed)),
        Target::Ctx { kind, .. } => match (kind, size) {
            (CtxField::PacketStart, 8) => Reg::Ptr(Ptr::at(PtrKind::Packet, 0)),
            (CtxField::PacketEnd, 8) => Reg::Ptr(Ptr::at(PtrKind::PacketEnd, 0)),
            _ => Reg::Scalar(Scalar::loaded(size, signed)),
        },
    };
    set(st, dst, value);
    Ok(t.access())
}

/// Rejects storing a pointer where the program could read it back as a
/// number from memory others see.
fn no_leak(value: &Reg, reg: u8, region: Region) -> Result<(), Reason> {
    match value {
        Reg::Ptr(p) => Err(Reason::PointerLeak {
            reg,
            kind: p.kind,
            region,
        }),
        _ => Ok(()),
    }
}

/// `*(size *)(dst + off) = value`; `src` names the value's register (for
/// messages; `None` for an immediate).
pub fn store(
    st: &mut State,
    env: &MemEnv<'_>,
    size: u8,
    dst: u8,
    off: i16,
    value: Reg,
    src: Option<u8>,
) -> Result<MemAccess, Reason> {
    let t = resolve(st, env, dst, off, size)?;
    let src = src.unwrap_or(dst);
    match t {
        Target::Stack { frame, lo, hi } => {
            if let Reg::Ptr(p) = value {
                if lo != hi || size != 8 || lo % 8 != 0 {
                    return Err(Reason::PartialSpill {
                        reg: src,
                        kind: p.kind,
                    });
                }
            }
            let stack = stack_of_mut(st, frame)?;
            let end = lo + i64::from(size);
            if lo != hi {
                // Which bytes are written is unknown: they keep their state.
                stack.clobber(lo, hi + i64::from(size));
            } else if size == 8 && lo % 8 == 0 {
                stack.spill(lo, value);
            } else {
                stack.clobber(lo, end);
                stack.mark_init(lo, end);
            }
        }
        Target::Packet { .. } => no_leak(&value, src, Region::Packet)?,
        Target::Map { map, .. } => no_leak(&value, src, Region::Map(map))?,
        Target::Ctx { off, kind } => {
            ctx_writable(env.layout, off, size, kind)?;
            no_leak(&value, src, Region::Ctx)?;
        }
    }
    Ok(t.access())
}

/// Atomic read-modify-write of `*(size *)(dst + off)` with `src`.
pub fn atomic(
    st: &mut State,
    env: &MemEnv<'_>,
    size: u8,
    (op, fetch): (AtomicOp, bool),
    dst: u8,
    src: u8,
    off: i16,
) -> Result<MemAccess, Reason> {
    let value = read(st, src)?;
    if op == AtomicOp::CmpXchg {
        read(st, 0)?;
    }
    let t = resolve(st, env, dst, off, size)?;
    // A misaligned locked access is a split lock, which some kernels punish
    // with SIGBUS: atomics must be provably aligned.
    let size_i = i64::from(size);
    let unaligned = |region, lo: i64, hi: i64| Reason::AtomicUnaligned {
        region,
        lo,
        hi,
        size,
    };
    match t {
        Target::Stack { lo, hi, .. } if lo != hi || lo.rem_euclid(size_i) != 0 => {
            return Err(unaligned(Region::Stack, lo, hi))
        }
        Target::Ctx { off, .. } if off.rem_euclid(size_i) != 0 => {
            return Err(unaligned(Region::Ctx, off, off))
        }
        Target::Packet { .. } => {
            return Err(unaligned(Region::Packet, i64::from(off), i64::from(off)))
        }
        Target::Map { map, lo, hi } if lo != hi || lo.rem_euclid(size_i) != 0 => {
            return Err(unaligned(Region::Map(map), lo, hi))
        }
        _ => {}
    }
    match t {
        Target::Stack { frame, lo, hi } => {
            no_leak(&value, src, Region::Stack)?;
            let stack = stack_of_mut(st, frame)?;
            let end = hi + i64::from(size);
            if let Some(o) = stack.ptr_overlap(lo, end) {
                return Err(Reason::PointerBytes { off: o });
            }
            if let Some(o) = stack.first_uninit(lo, end) {
                return Err(Reason::UninitStack { off: o });
            }
            stack.clobber(lo, end);
        }
        Target::Packet { .. } => no_leak(&value, src, Region::Packet)?,
        // Values are 8-aligned, so the alignment check above makes the
        // address aligned: the operation stays atomic for other workers.
        Target::Map { map, .. } => no_leak(&value, src, Region::Map(map))?,
        Target::Ctx { off, kind } => {
            ctx_writable(env.layout, off, size, kind)?;
            no_leak(&value, src, Region::Ctx)?;
        }
    }
    let old = Reg::Scalar(Scalar::loaded(size, false));
    match op {
        AtomicOp::CmpXchg => set(st, 0, old),
        _ if fetch => set(st, src, old),
        _ => {}
    }
    Ok(t.access())
}

/// The value size of map `map`.
fn map_value_size(maps: &Maps, map: u32) -> Result<u32, Reason> {
    maps.def(map)
        .map(|d| d.value_size)
        .ok_or(Reason::UnknownMap {
            index: u64::from(map),
        })
}

/// Checks a helper's memory argument in `r`: `size` bytes of initialised
/// stack (no spilled pointer among them) or of a map value, for every
/// offset the pointer may have.
pub fn mem_arg(st: &State, maps: &Maps, r: u8, size: u32) -> Result<(), Reason> {
    let p = match read(st, r)? {
        Reg::Ptr(p) => p,
        _ => return Err(Reason::ScalarAsPointer { reg: r }),
    };
    let end = p.hi.saturating_add(i64::from(size));
    let bad = |region| Reason::ArgMemory {
        reg: r,
        lo: p.lo,
        hi: p.hi,
        size,
        region,
    };
    match p.kind {
        PtrKind::Stack { frame } => {
            if !p.bounded() || p.lo < -FRAME || end > 0 {
                return Err(bad(Region::Stack));
            }
            let stack = stack_of(st, usize::from(frame))?;
            if let Some(o) = stack.ptr_overlap(p.lo, end) {
                return Err(Reason::PointerBytes { off: o });
            }
            if let Some(o) = stack.first_uninit(p.lo, end) {
                return Err(Reason::UninitStack { off: o });
            }
            Ok(())
        }
        PtrKind::MapValue { map } => {
            let value_size = map_value_size(maps, map)?;
            if !p.bounded() || p.lo < 0 || end > i64::from(value_size) {
                return Err(bad(Region::Map(map)));
            }
            Ok(())
        }
        PtrKind::MapValueOrNull { .. } => Err(Reason::MaybeNull { reg: r }),
        kind => Err(Reason::ArgNotMemory { reg: r, kind }),
    }
}
