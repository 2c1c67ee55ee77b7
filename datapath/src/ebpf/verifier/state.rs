//! The abstract machine state: register types, stack frames and what is
//! known about the packet, with the join and widening used at control-flow
//! merges.

use std::rc::Rc;

use super::scalar::{Scalar, Thresholds};
use crate::ebpf::insn::{NREGS, STACK_SIZE};
use crate::ebpf::vm::Region;

/// Pointer offsets beyond this magnitude are treated as unknown.
pub const OFF_LIMIT: i64 = 1 << 40;

/// What a pointer points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PtrKind {
    /// The context structure ([`crate::ebpf::Entry::Ctx`]).
    Ctx,
    /// Stack frame `frame` (0 = the entry frame); offsets are from its top.
    Stack { frame: u8 },
    /// The packet; offsets are from its first byte.
    Packet,
    /// One past the packet's last byte. No arithmetic, no dereference.
    PacketEnd,
    /// A map handle (`lddw rX, map N`): only map helpers take it. No
    /// arithmetic, no dereference, no comparison.
    MapHandle { map: u32 },
    /// A pointer into one value of map `map`; offsets are from the value's
    /// first byte.
    MapValue { map: u32 },
    /// A map lookup's result: a value pointer or 0, to be compared with 0
    /// before anything else. Copies share `id` (non-zero; 0 = none), so a
    /// null check refines them all.
    MapValueOrNull { map: u32, id: u32 },
}

impl PtrKind {
    pub fn region(self) -> Option<Region> {
        match self {
            PtrKind::Ctx => Some(Region::Ctx),
            PtrKind::Stack { .. } => Some(Region::Stack),
            PtrKind::Packet => Some(Region::Packet),
            PtrKind::MapValue { map } => Some(Region::Map(map)),
            PtrKind::PacketEnd | PtrKind::MapHandle { .. } | PtrKind::MapValueOrNull { .. } => None,
        }
    }

    /// A pointer to or into a map (their bases differ between values and
    /// maps, so they are never subtracted or ordered).
    pub fn is_map(self) -> bool {
        matches!(
            self,
            PtrKind::MapHandle { .. } | PtrKind::MapValue { .. } | PtrKind::MapValueOrNull { .. }
        )
    }
}

impl std::fmt::Display for PtrKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PtrKind::Ctx => f.write_str("ctx pointer"),
            PtrKind::Stack { frame } => write!(f, "stack pointer (frame {frame})"),
            PtrKind::Packet => f.write_str("packet pointer"),
            PtrKind::PacketEnd => f.write_str("packet-end pointer"),
            PtrKind::MapHandle { map } => write!(f, "handle of map {map}"),
            PtrKind::MapValue { map } => write!(f, "pointer into a value of map {map}"),
            PtrKind::MapValueOrNull { map, .. } => {
                write!(f, "unchecked lookup result of map {map} (may be null)")
            }
        }
    }
}

/// A pointer with its offset range `[lo, hi]` from the region base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ptr {
    pub kind: PtrKind,
    pub lo: i64,
    pub hi: i64,
    /// For packet pointers with a variable offset: the variable part they
    /// share with other pointers (see [`VarOff`]).
    pub var: Option<VarOff>,
}

/// Kernel-style tracking of a variable packet offset (`pkt + x` for an
/// unknown `x`): the pointer is `pkt + V + off`, where `V` is one unknown
/// value shared by every pointer of the state with the same `id`, and
/// `V + range <= packet length` has been proven by a comparison with the
/// packet end. So after `p = pkt + x; if p + 20 > end goto out`, accesses
/// through `p` up to 20 bytes are proven although `x` is unknown.
///
/// Invariant: within one abstract state, pointers with the same `id` have
/// the same `V` on every concrete path. An `id` is the slot of the `add`
/// that created it (plus one); executing that `add` again first removes the
/// `id` from every other holder, and a join keeps an `id` only in registers
/// that hold it on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VarOff {
    pub id: u32,
    /// Constant offset from `V`.
    pub off: i64,
    /// `V + range` bytes are proven to exist; [`VarOff::NOTHING`] until a
    /// comparison proves more.
    pub range: i64,
}

impl VarOff {
    /// `range` when nothing is proven (`V + i64::MIN <= len` holds trivially).
    pub const NOTHING: i64 = i64::MIN;

    /// Does the range prove `size` bytes at `off` from `V` (the start being
    /// non-negative is checked separately)?
    pub fn proves(&self, size: u8) -> bool {
        self.range != Self::NOTHING && self.off.saturating_add(i64::from(size)) <= self.range
    }
}

impl Ptr {
    pub fn at(kind: PtrKind, off: i64) -> Ptr {
        Ptr {
            kind,
            lo: off,
            hi: off,
            var: None,
        }
    }

    /// Is the offset range meaningful (not collapsed to "unknown")?
    pub fn bounded(&self) -> bool {
        self.lo > -OFF_LIMIT && self.hi < OFF_LIMIT
    }

    /// The pointer moved by an offset in `[dlo, dhi]`. A constant move keeps
    /// the variable part (shifting its offset); any other loses it.
    pub fn moved(&self, dlo: i128, dhi: i128) -> Ptr {
        let lo = i128::from(self.lo) + dlo;
        let hi = i128::from(self.hi) + dhi;
        let limit = i128::from(OFF_LIMIT);
        if !self.bounded() || lo <= -limit || hi >= limit {
            Ptr {
                kind: self.kind,
                lo: -OFF_LIMIT,
                hi: OFF_LIMIT,
                var: None,
            }
        } else {
            let var = self.var.filter(|_| dlo == dhi).and_then(|v| {
                Some(VarOff {
                    off: i64::try_from(i128::from(v.off) + dlo).ok()?,
                    ..v
                })
            });
            Ptr {
                kind: self.kind,
                lo: lo as i64,
                hi: hi as i64,
                var,
            }
        }
    }
}

/// The abstract value of a register or a spilled stack slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reg {
    /// Never written on some path: reading it is an error.
    Uninit,
    /// Different, incompatible types on different paths: reading it is an error.
    Conflict,
    Scalar(Scalar),
    Ptr(Ptr),
}

impl Reg {
    /// Joins `o` into `self`; returns whether `self` changed.
    fn join_from(&mut self, o: &Reg, widen: Option<&Thresholds>) -> bool {
        if self == o {
            return false;
        }
        let j = self.join(o, widen);
        if j == *self {
            return false;
        }
        *self = j;
        true
    }

    fn join(&self, o: &Reg, widen: Option<&Thresholds>) -> Reg {
        match (self, o) {
            (Reg::Uninit, _) | (_, Reg::Uninit) => Reg::Uninit,
            (Reg::Conflict, _) | (_, Reg::Conflict) => Reg::Conflict,
            (Reg::Scalar(a), Reg::Scalar(b)) => {
                let j = a.join(b);
                Reg::Scalar(match widen {
                    Some(th) if j != *a => Scalar::widen(a, &j, th),
                    _ => j,
                })
            }
            // Lookup results of the same map from different calls: still a
            // value pointer or null, no longer tied to either call's copies.
            (
                Reg::Ptr(Ptr {
                    kind: PtrKind::MapValueOrNull { map: m, id: i },
                    ..
                }),
                Reg::Ptr(Ptr {
                    kind: PtrKind::MapValueOrNull { map: n, id: j },
                    ..
                }),
            ) if m == n && i != j => {
                Reg::Ptr(Ptr::at(PtrKind::MapValueOrNull { map: *m, id: 0 }, 0))
            }
            (Reg::Ptr(a), Reg::Ptr(b)) if a.kind == b.kind => {
                let var = match (a.var, b.var) {
                    (Some(x), Some(y)) if x.id == y.id && x.off == y.off => {
                        let range = x.range.min(y.range);
                        Some(VarOff {
                            range: if widen.is_some() && range != x.range {
                                VarOff::NOTHING
                            } else {
                                range
                            },
                            ..x
                        })
                    }
                    _ => None,
                };
                let mut p = Ptr {
                    kind: a.kind,
                    lo: a.lo.min(b.lo),
                    hi: a.hi.max(b.hi),
                    var,
                };
                if widen.is_some() && (p.lo != a.lo || p.hi != a.hi) {
                    p.lo = -OFF_LIMIT;
                    p.hi = OFF_LIMIT;
                    p.var = None;
                }
                Reg::Ptr(p)
            }
            _ => Reg::Conflict,
        }
    }
}

/// Slots of 8 bytes in one frame.
pub const SLOTS: usize = STACK_SIZE / 8;
const FRAME: i64 = STACK_SIZE as i64;

/// One stack frame: which bytes are initialised, and registers spilled to
/// 8-aligned slots (kept with their full type).
///
/// Invariant: the bytes of a pointer are readable only as a whole spill.
/// When a pointer spill is partly overwritten or lost in a join, its other
/// bytes become uninitialised, so a program can never read address bits
/// (which differ between engines and runs) as a number.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stack {
    /// Bit `i` = byte at offset `i - 512` from the frame top is initialised.
    init: [u64; SLOTS / 8],
    /// `(slot, value)` sorted by slot; slot `s` covers offsets
    /// `[s*8 - 512, s*8 - 504)`.
    /// Shared between clones until one of them changes it.
    spills: Rc<Vec<(u8, Reg)>>,
}

/// Word and bit of the init bitmap for a frame offset (`None` outside the frame).
fn bit_of(off: i64) -> Option<(usize, u32)> {
    let i = usize::try_from(off + FRAME)
        .ok()
        .filter(|&i| i < STACK_SIZE)?;
    Some((i / 64, (i % 64) as u32))
}

impl Stack {
    fn is_init(&self, off: i64) -> bool {
        bit_of(off)
            .and_then(|(w, b)| self.init.get(w).map(|word| word >> b & 1 == 1))
            .unwrap_or(false)
    }

    /// First uninitialised byte offset in `[lo, hi)`, if any. Offsets must lie
    /// within the frame.
    pub fn first_uninit(&self, lo: i64, hi: i64) -> Option<i64> {
        (lo..hi).find(|&o| !self.is_init(o))
    }

    fn clear_init(&mut self, lo: i64, hi: i64) {
        for o in lo..hi {
            if let Some(word) = bit_of(o).and_then(|(w, b)| Some((self.init.get_mut(w)?, b))) {
                *word.0 &= !(1 << word.1);
            }
        }
    }

    /// Makes the bytes of the slots in `mask` (bit `s` = slot `s`) uninitialised.
    fn clear_slots(&mut self, mut mask: u64) {
        while mask != 0 {
            let s = i64::from(mask.trailing_zeros());
            mask &= mask - 1;
            let start = s * 8 - FRAME;
            self.clear_init(start, start + 8);
        }
    }

    /// Slots holding spilled pointers, as a bit mask.
    fn ptr_slots(&self) -> u64 {
        self.spills
            .iter()
            .filter(|(_, r)| matches!(r, Reg::Ptr(_)))
            .fold(0, |m, &(s, _)| {
                m | 1u64.checked_shl(u32::from(s)).unwrap_or(0)
            })
    }

    /// Offset of the first spilled pointer overlapping `[lo, hi)`, if any.
    pub fn ptr_overlap(&self, lo: i64, hi: i64) -> Option<i64> {
        self.spills.iter().find_map(|&(s, r)| {
            let start = i64::from(s) * 8 - FRAME;
            (matches!(r, Reg::Ptr(_)) && start < hi && lo < start + 8).then_some(start)
        })
    }

    pub fn mark_init(&mut self, lo: i64, hi: i64) {
        for o in lo..hi {
            if let Some(word) = bit_of(o).and_then(|(w, b)| Some((self.init.get_mut(w)?, b))) {
                *word.0 |= 1 << word.1;
            }
        }
    }

    /// Forgets spilled types overlapping `[lo, hi)`. Scalar bytes keep their
    /// initialisation state; a pointer's bytes become uninitialised.
    pub fn clobber(&mut self, lo: i64, hi: i64) {
        let outside = |&(s, _): &(u8, Reg)| {
            let start = i64::from(s) * 8 - FRAME;
            start + 8 <= lo || start >= hi
        };
        if !self.spills.iter().all(outside) {
            let before = self.ptr_slots();
            Rc::make_mut(&mut self.spills).retain(outside);
            self.clear_slots(before & !self.ptr_slots());
        }
    }

    /// Records an 8-byte register spill at the 8-aligned offset `off`.
    pub fn spill(&mut self, off: i64, v: Reg) {
        self.clobber(off, off + 8);
        self.mark_init(off, off + 8);
        let slot = ((off + FRAME) / 8) as u8;
        let at = self.spills.partition_point(|&(s, _)| s < slot);
        Rc::make_mut(&mut self.spills).insert(at, (slot, v));
    }

    /// The register spilled at the 8-aligned offset `off`, if any.
    pub fn spilled(&self, off: i64) -> Option<Reg> {
        let slot = u8::try_from((off + FRAME) / 8).ok()?;
        self.spills
            .binary_search_by_key(&slot, |&(s, _)| s)
            .ok()
            .and_then(|i| self.spills.get(i))
            .map(|&(_, r)| r)
    }

    /// Applies `f` to every spilled pointer (copying the list only if `f`
    /// changes one).
    pub fn update_ptrs(&mut self, f: impl Fn(&Ptr) -> Ptr) {
        let changes = |(_, r): &(u8, Reg)| matches!(r, Reg::Ptr(p) if f(p) != *p);
        if self.spills.iter().any(changes) {
            for (_, r) in Rc::make_mut(&mut self.spills).iter_mut() {
                if let Reg::Ptr(p) = r {
                    *p = f(p);
                }
            }
        }
    }

    /// Drops spilled pointers that `stale` says no longer point anywhere
    /// valid; their bytes become uninitialised.
    pub fn forget_ptrs(&mut self, stale: impl Fn(&Ptr) -> bool) {
        let keep = |(_, r): &(u8, Reg)| !matches!(r, Reg::Ptr(p) if stale(p));
        if !self.spills.iter().all(keep) {
            let before = self.ptr_slots();
            Rc::make_mut(&mut self.spills).retain(keep);
            self.clear_slots(before & !self.ptr_slots());
        }
    }

    /// Joins `o` into `self`; returns whether `self` changed.
    fn join_from(&mut self, o: &Stack, widen: Option<&Thresholds>) -> bool {
        let init_before = self.init;
        for (w, b) in self.init.iter_mut().zip(&o.init) {
            *w &= b;
        }
        let mut changed = false;
        if !(Rc::ptr_eq(&self.spills, &o.spills) || self.spills == o.spills) {
            let ptrs = self.ptr_slots() | o.ptr_slots();
            // Both lists are sorted by slot: walk them together.
            let mut theirs = o.spills.iter().peekable();
            Rc::make_mut(&mut self.spills).retain_mut(|(slot, mine)| {
                while theirs.next_if(|(t, _)| t < slot).is_some() {}
                match theirs.peek() {
                    Some((t, other)) if t == slot => {
                        changed |= mine.join_from(other, widen);
                        matches!(mine, Reg::Scalar(_) | Reg::Ptr(_))
                    }
                    _ => {
                        changed = true;
                        false
                    }
                }
            });
            // A pointer on either side that did not survive as a pointer:
            // its bytes must not be readable as a number.
            self.clear_slots(ptrs & !self.ptr_slots());
        }
        changed || self.init != init_before
    }
}

/// One call level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub regs: [Reg; NREGS],
    pub stack: Stack,
}

impl Frame {
    /// A frame at call depth `depth` (0 = entry) with only r10 set.
    pub fn new(depth: u8) -> Frame {
        let mut regs = [Reg::Uninit; NREGS];
        regs[10] = Reg::Ptr(Ptr::at(PtrKind::Stack { frame: depth }, 0));
        Frame {
            regs,
            stack: Stack::default(),
        }
    }
}

/// The whole abstract state at one program point.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    /// Call frames, outermost first; the last one is executing.
    pub frames: Vec<Frame>,
    /// The packet is proven to be at least this many bytes long.
    pub pkt_min: u64,
}

impl State {
    pub fn cur(&self) -> Option<&Frame> {
        self.frames.last()
    }

    pub fn cur_mut(&mut self) -> Option<&mut Frame> {
        self.frames.last_mut()
    }

    /// Applies `f` to every pointer in registers and spill slots of every
    /// frame.
    pub fn update_ptrs(&mut self, f: impl Fn(&Ptr) -> Ptr) {
        for fr in &mut self.frames {
            for r in &mut fr.regs {
                if let Reg::Ptr(p) = r {
                    *p = f(p);
                }
            }
            fr.stack.update_ptrs(&f);
        }
    }

    /// Before a lookup at the call site owning `id` produces a new result:
    /// copies of the previous one keep their type but lose the id (a null
    /// check of the new one says nothing about them).
    pub fn drop_lookup_id(&mut self, id: u32) {
        self.update_ptrs(|p| match p.kind {
            PtrKind::MapValueOrNull { map, id: i } if i == id => Ptr {
                kind: PtrKind::MapValueOrNull { map, id: 0 },
                ..*p
            },
            _ => *p,
        });
    }

    /// The edge of a null check where register `reg` (of the executing
    /// frame), holding the lookup result `kind`, is (`null`) or is not 0:
    /// it and every copy with the same id become the constant 0 (registers;
    /// spilled copies stay unchecked) or a pointer to the value's start.
    pub fn null_checked(&mut self, reg: u8, kind: PtrKind, null: bool) {
        let PtrKind::MapValueOrNull { map, id } = kind else {
            return;
        };
        let same = |p: &Ptr| id != 0 && p.kind == kind;
        let checked = if null {
            Reg::Scalar(Scalar::constant(0))
        } else {
            Reg::Ptr(Ptr::at(PtrKind::MapValue { map }, 0))
        };
        if let Some(slot) = self
            .cur_mut()
            .and_then(|f| f.regs.get_mut(usize::from(reg)))
        {
            *slot = checked;
        }
        for fr in &mut self.frames {
            for r in &mut fr.regs {
                if matches!(r, Reg::Ptr(p) if same(p)) {
                    *r = checked;
                }
            }
            if !null {
                fr.stack.update_ptrs(|p| {
                    if same(p) {
                        Ptr::at(PtrKind::MapValue { map }, 0)
                    } else {
                        *p
                    }
                });
            }
        }
    }

    /// Removes the variable part `id` from every pointer holding it (before
    /// the `add` that owns `id` creates a new value for it).
    pub fn drop_var(&mut self, id: u32) {
        self.update_ptrs(|p| match p.var {
            Some(v) if v.id == id => Ptr { var: None, ..*p },
            _ => *p,
        });
    }

    /// After a helper that moves the packet window: every packet and
    /// packet-end pointer, in registers (which become uninitialised) and
    /// spills (whose bytes do), is gone, and nothing is known of the
    /// packet's length.
    pub fn forget_packet(&mut self) {
        let stale = |p: &Ptr| matches!(p.kind, PtrKind::Packet | PtrKind::PacketEnd);
        for fr in &mut self.frames {
            for r in &mut fr.regs {
                if matches!(r, Reg::Ptr(p) if stale(p)) {
                    *r = Reg::Uninit;
                }
            }
            fr.stack.forget_ptrs(stale);
        }
        self.pkt_min = 0;
    }

    /// Records `V + range <= len` for the variable part `id`.
    pub fn prove_var(&mut self, id: u32, range: i64) {
        self.update_ptrs(|p| match p.var {
            Some(v) if v.id == id && range > v.range => Ptr {
                var: Some(VarOff { range, ..v }),
                ..*p
            },
            _ => *p,
        });
    }

    /// Joins `o` (a state of the same call context) into `self`, widening
    /// (bounds that moved jump to a threshold or their extreme) when `widen`
    /// is given. Returns whether `self` changed.
    pub fn join_from(&mut self, o: &State, widen: Option<&Thresholds>) -> bool {
        let mut changed = false;
        for (a, b) in self.frames.iter_mut().zip(&o.frames) {
            for (r, rb) in a.regs.iter_mut().zip(&b.regs) {
                changed |= r.join_from(rb, widen);
            }
            changed |= a.stack.join_from(&b.stack, widen);
        }
        let mut pkt_min = self.pkt_min.min(o.pkt_min);
        if widen.is_some() && pkt_min != self.pkt_min {
            pkt_min = 0;
        }
        changed |= pkt_min != self.pkt_min;
        self.pkt_min = pkt_min;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spill_and_fill_keep_the_type() {
        let mut s = Stack::default();
        let p = Reg::Ptr(Ptr::at(PtrKind::Packet, 4));
        s.spill(-16, p);
        assert_eq!(s.spilled(-16), Some(p));
        assert_eq!(s.first_uninit(-16, -8), None);
        assert_eq!(s.first_uninit(-17, -8), Some(-17));
        // Overwriting part of a pointer leaves its other bytes unreadable.
        s.clobber(-12, -11);
        assert_eq!(s.spilled(-16), None);
        assert_eq!(s.first_uninit(-16, -8), Some(-16));
        // A scalar's bytes stay readable.
        s.spill(-24, Reg::Scalar(Scalar::constant(3)));
        s.clobber(-20, -19);
        assert_eq!(s.first_uninit(-24, -16), None);
    }

    #[test]
    fn join_keeps_only_common_facts() {
        let mut a = State {
            frames: vec![Frame::new(0)],
            pkt_min: 20,
        };
        let mut b = a.clone();
        b.pkt_min = 14;
        a.frames[0].regs[1] = Reg::Scalar(Scalar::constant(0));
        b.frames[0].regs[1] = Reg::Scalar(Scalar::constant(8));
        a.frames[0].regs[2] = Reg::Scalar(Scalar::constant(0));
        b.frames[0].regs[2] = Reg::Ptr(Ptr::at(PtrKind::Packet, 0));
        a.frames[0].stack.mark_init(-8, 0);
        let mut j = a.clone();
        assert!(j.join_from(&b, None));
        assert!(!j.clone().join_from(&j, None));
        assert_eq!(j.pkt_min, 14);
        match j.frames[0].regs[1] {
            Reg::Scalar(s) => assert!(s.contains(0) && s.contains(8) && !s.contains(4)),
            r => panic!("{r:?}"),
        }
        assert_eq!(j.frames[0].regs[2], Reg::Conflict);
        assert_eq!(j.frames[0].stack.first_uninit(-8, 0), Some(-8));
    }

    #[test]
    fn a_new_lookup_unties_the_copies_of_the_previous_one() {
        let kind = PtrKind::MapValueOrNull { map: 1, id: 5 };
        let mut st = State {
            frames: vec![Frame::new(0), Frame::new(1)],
            pkt_min: 0,
        };
        st.frames[0].regs[7] = Reg::Ptr(Ptr::at(kind, 0));
        st.frames[0].stack.spill(-8, Reg::Ptr(Ptr::at(kind, 0)));
        st.frames[1].regs[0] = Reg::Ptr(Ptr::at(kind, 0));
        // A check of frame 1's r0 reaches every copy...
        let mut valid = st.clone();
        valid.null_checked(0, kind, false);
        let value = Reg::Ptr(Ptr::at(PtrKind::MapValue { map: 1 }, 0));
        assert_eq!(valid.frames[0].regs[7], value);
        assert_eq!(valid.frames[0].stack.spilled(-8), Some(value));
        let mut null = st.clone();
        null.null_checked(0, kind, true);
        assert_eq!(null.frames[0].regs[7], Reg::Scalar(Scalar::constant(0)));
        assert_eq!(null.frames[1].regs[0], Reg::Scalar(Scalar::constant(0)));
        // ... until the call site runs again.
        st.drop_lookup_id(5);
        st.null_checked(0, kind, false);
        let untied = Reg::Ptr(Ptr::at(PtrKind::MapValueOrNull { map: 1, id: 0 }, 0));
        assert_eq!(st.frames[0].regs[7], untied);
        assert_eq!(st.frames[0].stack.spilled(-8), Some(untied));
        assert_eq!(st.frames[1].regs[0], value);
    }
}
