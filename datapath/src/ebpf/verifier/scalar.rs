//! Abstract scalar values: unsigned and signed bounds plus known bits, and
//! the transfer functions for every ALU operation.
//!
//! A [`Scalar`] stands for the set of 64-bit values `v` with
//! `umin <= v <= umax`, `smin <= v as i64 <= smax` and `bits.contains(v)`.
//! Every operation returns a superset of the concrete results (soundness is
//! checked against [`eval_alu`] by property tests). When both operands are
//! constants the concrete semantics are used directly.

use super::tnum::Tnum;
use crate::ebpf::insn::{AluOp, EndKind};

/// Abstract value of a scalar register or stack slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scalar {
    pub umin: u64,
    pub umax: u64,
    pub smin: i64,
    pub smax: i64,
    pub bits: Tnum,
    /// The value is exactly the packet length ([`crate::ebpf::Entry::MemLen`]'s
    /// r2 and unmodified copies of it). Comparisons on it prove packet bounds.
    pub pkt_len: bool,
}

impl Scalar {
    /// Any 64-bit value.
    pub const UNKNOWN: Scalar = Scalar {
        umin: 0,
        umax: u64::MAX,
        smin: i64::MIN,
        smax: i64::MAX,
        bits: Tnum::UNKNOWN,
        pkt_len: false,
    };

    pub const fn constant(v: u64) -> Scalar {
        Scalar {
            umin: v,
            umax: v,
            smin: v as i64,
            smax: v as i64,
            bits: Tnum::constant(v),
            pkt_len: false,
        }
    }

    /// Values in `[lo, hi]` (unsigned).
    pub fn urange(lo: u64, hi: u64) -> Scalar {
        Scalar {
            umin: lo,
            umax: hi,
            ..Scalar::UNKNOWN
        }
        .normalized()
    }

    /// Values in `[lo, hi]` (signed).
    pub fn srange(lo: i64, hi: i64) -> Scalar {
        Scalar {
            smin: lo,
            smax: hi,
            ..Scalar::UNKNOWN
        }
        .normalized()
    }

    /// What a load of `size` bytes yields: zero-extended, or sign-extended
    /// when `signed`.
    pub fn loaded(size: u8, signed: bool) -> Scalar {
        let bits = u32::from(size) * 8;
        if bits >= 64 {
            Scalar::UNKNOWN
        } else if signed {
            let half = 1i64 << (bits - 1);
            Scalar {
                umin: 0,
                umax: u64::MAX,
                smin: -half,
                smax: half - 1,
                bits: Tnum::UNKNOWN,
                pkt_len: false,
            }
        } else {
            let max = (1u64 << bits) - 1;
            Scalar {
                umin: 0,
                umax: max,
                smin: 0,
                smax: max as i64,
                bits: Tnum {
                    value: 0,
                    mask: max,
                },
                pkt_len: false,
            }
        }
    }

    pub fn as_const(&self) -> Option<u64> {
        (self.umin == self.umax).then_some(self.umin)
    }

    /// Does the set contain `v`?
    #[cfg(test)]
    pub fn contains(&self, v: u64) -> bool {
        self.umin <= v
            && v <= self.umax
            && self.smin <= v as i64
            && v as i64 <= self.smax
            && self.bits.contains(v)
    }

    fn from_bits(bits: Tnum) -> Scalar {
        Scalar {
            umin: bits.umin(),
            umax: bits.umax(),
            smin: bits.smin(),
            smax: bits.smax(),
            bits,
            pkt_len: false,
        }
    }

    /// Tightens every bound from the others; `None` if the set is empty.
    pub fn normalize(mut self) -> Option<Scalar> {
        if let Some(v) = self.as_const() {
            // A single value: every other bound must allow it.
            let ok = self.smin <= v as i64 && v as i64 <= self.smax && self.bits.contains(v);
            return ok.then_some(Scalar {
                pkt_len: self.pkt_len,
                ..Scalar::constant(v)
            });
        }
        // Each round only tightens; a few rounds reach the fixed point in
        // practice, and stopping earlier is still sound.
        for _ in 0..4 {
            let before = self;
            self.umin = self.umin.max(self.bits.umin());
            self.umax = self.umax.min(self.bits.umax());
            self.smin = self.smin.max(self.bits.smin());
            self.smax = self.smax.min(self.bits.smax());
            if self.umin > self.umax || self.smin > self.smax {
                return None;
            }
            // An unsigned range within one sign half is also a signed range.
            if (self.umin ^ self.umax) >> 63 == 0 {
                self.smin = self.smin.max(self.umin as i64);
                self.smax = self.smax.min(self.umax as i64);
            }
            // A signed range of one sign is also an unsigned range.
            if (self.smin ^ self.smax) >= 0 {
                self.umin = self.umin.max(self.smin as u64);
                self.umax = self.umax.min(self.smax as u64);
            }
            if self.umin > self.umax || self.smin > self.smax {
                return None;
            }
            self.bits = self
                .bits
                .intersect(Tnum::from_range(self.umin, self.umax))?;
            if self == before {
                break;
            }
        }
        Some(self)
    }

    /// [`Scalar::normalize`] for results of sound operations on non-empty
    /// inputs, which cannot be empty; falls back to "unknown" regardless.
    fn normalized(self) -> Scalar {
        self.normalize().unwrap_or(Scalar::UNKNOWN)
    }

    /// Smallest scalar holding both.
    pub fn join(&self, o: &Scalar) -> Scalar {
        Scalar {
            umin: self.umin.min(o.umin),
            umax: self.umax.max(o.umax),
            smin: self.smin.min(o.smin),
            smax: self.smax.max(o.smax),
            bits: self.bits.union(o.bits),
            pkt_len: self.pkt_len && o.pkt_len,
        }
    }

    /// Widening: every bound of `joined` that moved past `old` jumps to the
    /// next threshold (or its extreme), so repeated joins at a loop head
    /// stabilise in a few steps.
    pub fn widen(old: &Scalar, joined: &Scalar, th: &Thresholds) -> Scalar {
        let mut w = *joined;
        if w.umin < old.umin {
            w.umin = th.down_u(w.umin);
        }
        if w.umax > old.umax {
            w.umax = th.up_u(w.umax);
        }
        if w.smin < old.smin {
            w.smin = th.down_s(w.smin);
        }
        if w.smax > old.smax {
            w.smax = th.up_s(w.smax);
        }
        if w.bits != old.bits {
            w.bits = Tnum::UNKNOWN;
        }
        w.normalized()
    }

    /// Values in both, or `None` if there are none.
    pub fn intersect(&self, o: &Scalar) -> Option<Scalar> {
        Scalar {
            umin: self.umin.max(o.umin),
            umax: self.umax.min(o.umax),
            smin: self.smin.max(o.smin),
            smax: self.smax.min(o.smax),
            bits: self.bits.intersect(o.bits)?,
            pkt_len: self.pkt_len,
        }
        .normalize()
    }

    /// The low `bits` bits, zero-extended.
    pub fn truncate(&self, bits: u32) -> Scalar {
        if bits >= 64 || self.umax >> bits == 0 {
            return *self;
        }
        let keep = (1u64 << bits) - 1;
        let t = self.bits.truncate(bits);
        if self.umin >> bits == self.umax >> bits {
            // All values share the high part: the low parts keep their order.
            return Scalar {
                umin: self.umin & keep,
                umax: self.umax & keep,
                bits: t,
                ..Scalar::UNKNOWN
            }
            .normalized();
        }
        Scalar {
            umin: 0,
            umax: keep,
            bits: t,
            ..Scalar::UNKNOWN
        }
        .normalized()
    }

    /// The low `bits` bits, sign-extended to 64.
    pub fn sign_extend(&self, bits: u32) -> Scalar {
        if bits >= 64 {
            return *self;
        }
        let t = self.truncate(bits);
        let half = 1u64 << (bits - 1);
        let tn = t.bits.shl(64 - bits).sar(64 - bits);
        if t.umax < half {
            return t;
        }
        let (lo, hi) = if t.umin >= half {
            let span = 1i128 << bits;
            (
                (i128::from(t.umin) - span) as i64,
                (i128::from(t.umax) - span) as i64,
            )
        } else {
            (-(half as i64), half as i64 - 1)
        };
        Scalar {
            smin: lo,
            smax: hi,
            bits: tn,
            ..Scalar::UNKNOWN
        }
        .normalized()
    }
}

/// Values widening may stop at instead of jumping to an extreme: the
/// constants the program compares against, and their neighbours. Loop
/// counters then widen to the loop bound.
#[derive(Debug, Clone, Default)]
pub struct Thresholds {
    u: Vec<u64>,
    s: Vec<i64>,
}

impl Thresholds {
    pub fn new(consts: impl IntoIterator<Item = i64>) -> Thresholds {
        let mut t = Thresholds::default();
        for c in consts {
            for v in [c.wrapping_sub(1), c, c.wrapping_add(1)] {
                t.s.push(v);
                t.u.push(v as u64);
            }
        }
        t.s.sort_unstable();
        t.s.dedup();
        t.u.sort_unstable();
        t.u.dedup();
        t
    }

    fn up_u(&self, v: u64) -> u64 {
        let i = self.u.partition_point(|&t| t < v);
        self.u.get(i).copied().unwrap_or(u64::MAX)
    }

    fn down_u(&self, v: u64) -> u64 {
        let i = self.u.partition_point(|&t| t <= v);
        i.checked_sub(1)
            .and_then(|i| self.u.get(i))
            .copied()
            .unwrap_or(0)
    }

    fn up_s(&self, v: i64) -> i64 {
        let i = self.s.partition_point(|&t| t < v);
        self.s.get(i).copied().unwrap_or(i64::MAX)
    }

    fn down_s(&self, v: i64) -> i64 {
        let i = self.s.partition_point(|&t| t <= v);
        i.checked_sub(1)
            .and_then(|i| self.s.get(i))
            .copied()
            .unwrap_or(i64::MIN)
    }
}

/// Concrete result of `dst = dst OP src` (the engines' semantics).
pub fn eval_alu(op: AluOp, wide: bool, x: u64, y: u64) -> u64 {
    if wide {
        match op {
            AluOp::Add => x.wrapping_add(y),
            AluOp::Sub => x.wrapping_sub(y),
            AluOp::Mul => x.wrapping_mul(y),
            AluOp::Div => x.checked_div(y).unwrap_or(0),
            AluOp::SDiv if y == 0 => 0,
            AluOp::SDiv => (x as i64).wrapping_div(y as i64) as u64,
            AluOp::Or => x | y,
            AluOp::And => x & y,
            AluOp::Lsh => x << (y & 63),
            AluOp::Rsh => x >> (y & 63),
            AluOp::Mod => x.checked_rem(y).unwrap_or(x),
            AluOp::SMod if y == 0 => x,
            AluOp::SMod => (x as i64).wrapping_rem(y as i64) as u64,
            AluOp::Xor => x ^ y,
            AluOp::Mov => y,
            AluOp::Arsh => ((x as i64) >> (y & 63)) as u64,
            AluOp::MovSx(n) => sext(y, u32::from(n)),
        }
    } else {
        let (a, b) = (x as u32, y as u32);
        let r = match op {
            AluOp::Add => a.wrapping_add(b),
            AluOp::Sub => a.wrapping_sub(b),
            AluOp::Mul => a.wrapping_mul(b),
            AluOp::Div => a.checked_div(b).unwrap_or(0),
            AluOp::SDiv if b == 0 => 0,
            AluOp::SDiv => (a as i32).wrapping_div(b as i32) as u32,
            AluOp::Or => a | b,
            AluOp::And => a & b,
            AluOp::Lsh => a << (b & 31),
            AluOp::Rsh => a >> (b & 31),
            AluOp::Mod => a.checked_rem(b).unwrap_or(a),
            AluOp::SMod if b == 0 => a,
            AluOp::SMod => (a as i32).wrapping_rem(b as i32) as u32,
            AluOp::Xor => a ^ b,
            AluOp::Mov => b,
            AluOp::Arsh => ((a as i32) >> (b & 31)) as u32,
            AluOp::MovSx(n) => sext(y, u32::from(n)) as u32,
        };
        u64::from(r)
    }
}

/// Concrete `neg`.
pub fn eval_neg(wide: bool, x: u64) -> u64 {
    if wide {
        x.wrapping_neg()
    } else {
        u64::from((x as u32).wrapping_neg())
    }
}

/// Concrete byte-order conversion.
pub fn eval_end(kind: EndKind, bits: u8, x: u64) -> u64 {
    match (kind, bits) {
        (EndKind::Le, 16) => x & 0xffff,
        (EndKind::Le, 32) => x & 0xffff_ffff,
        (EndKind::Le, _) => x,
        (_, 16) => u64::from((x as u16).swap_bytes()),
        (_, 32) => u64::from((x as u32).swap_bytes()),
        _ => x.swap_bytes(),
    }
}

fn sext(v: u64, bits: u32) -> u64 {
    if bits >= 64 {
        return v;
    }
    let s = 64 - bits;
    (((v << s) as i64) >> s) as u64
}

/// Abstract `dst = dst OP src`.
pub fn alu(op: AluOp, wide: bool, a: &Scalar, b: &Scalar) -> Scalar {
    if let (Some(x), Some(y)) = (a.as_const(), b.as_const()) {
        return Scalar::constant(eval_alu(op, wide, x, y));
    }
    if wide {
        return alu64(op, a, b, 63);
    }
    match op {
        AluOp::Mov => b.truncate(32),
        AluOp::MovSx(n) => b.sign_extend(u32::from(n)).truncate(32),
        AluOp::Arsh | AluOp::SDiv | AluOp::SMod => {
            alu64(op, &a.sign_extend(32), &b.sign_extend(32), 31).truncate(32)
        }
        _ => alu64(op, &a.truncate(32), &b.truncate(32), 31).truncate(32),
    }
}

/// A 64-bit operation; `count_mask` is 63 or 31 (shift counts are masked).
fn alu64(op: AluOp, a: &Scalar, b: &Scalar, count_mask: u64) -> Scalar {
    match op {
        AluOp::Add => add(a, b),
        AluOp::Sub => sub(a, b),
        AluOp::Mul => mul(a, b),
        AluOp::Div => div(a, b),
        AluOp::Mod => rem(a, b),
        AluOp::SDiv | AluOp::SMod => Scalar::UNKNOWN,
        AluOp::And => {
            let mut r = Scalar::from_bits(a.bits.and(b.bits));
            r.umax = r.umax.min(a.umax).min(b.umax);
            r.normalized()
        }
        AluOp::Or => {
            let mut r = Scalar::from_bits(a.bits.or(b.bits));
            r.umin = r.umin.max(a.umin).max(b.umin);
            r.normalized()
        }
        AluOp::Xor => Scalar::from_bits(a.bits.xor(b.bits)).normalized(),
        AluOp::Lsh | AluOp::Rsh | AluOp::Arsh => {
            let count = alu64(AluOp::And, b, &Scalar::constant(count_mask), count_mask);
            shift(op, a, &count)
        }
        AluOp::Mov => Scalar {
            pkt_len: b.pkt_len,
            ..*b
        },
        AluOp::MovSx(n) => b.sign_extend(u32::from(n)),
    }
}

fn add(a: &Scalar, b: &Scalar) -> Scalar {
    let mut r = Scalar::from_bits(a.bits.add(b.bits));
    let (lo, o1) = a.umin.overflowing_add(b.umin);
    let (hi, o2) = a.umax.overflowing_add(b.umax);
    if o1 == o2 {
        r.umin = r.umin.max(lo);
        r.umax = r.umax.min(hi);
    }
    if let (Some(lo), Some(hi)) = (a.smin.checked_add(b.smin), a.smax.checked_add(b.smax)) {
        r.smin = r.smin.max(lo);
        r.smax = r.smax.min(hi);
    }
    r.normalized()
}

fn sub(a: &Scalar, b: &Scalar) -> Scalar {
    let mut r = Scalar::from_bits(a.bits.sub(b.bits));
    let (lo, o1) = a.umin.overflowing_sub(b.umax);
    let (hi, o2) = a.umax.overflowing_sub(b.umin);
    if o1 == o2 {
        r.umin = r.umin.max(lo);
        r.umax = r.umax.min(hi);
    }
    if let (Some(lo), Some(hi)) = (a.smin.checked_sub(b.smax), a.smax.checked_sub(b.smin)) {
        r.smin = r.smin.max(lo);
        r.smax = r.smax.min(hi);
    }
    r.normalized()
}

fn mul(a: &Scalar, b: &Scalar) -> Scalar {
    const SMALL: u64 = u32::MAX as u64;
    if a.umax <= SMALL && b.umax <= SMALL {
        return Scalar::urange(a.umin * b.umin, a.umax * b.umax);
    }
    let small = |s: &Scalar| s.smin >= i64::from(i32::MIN) && s.smax <= i64::from(i32::MAX);
    if small(a) && small(b) {
        let c = [
            a.smin * b.smin,
            a.smin * b.smax,
            a.smax * b.smin,
            a.smax * b.smax,
        ];
        let lo = c.iter().copied().min().unwrap_or(i64::MIN);
        let hi = c.iter().copied().max().unwrap_or(i64::MAX);
        return Scalar::srange(lo, hi);
    }
    Scalar::UNKNOWN
}

fn div(a: &Scalar, b: &Scalar) -> Scalar {
    if let (Some(hi), Some(lo)) = (a.umax.checked_div(b.umin), a.umin.checked_div(b.umax)) {
        // No zero divisor possible (b.umax >= b.umin > 0).
        Scalar::urange(lo, hi)
    } else if b.umax == 0 {
        Scalar::constant(0)
    } else {
        // Division by zero gives 0; any other quotient is at most dst.
        Scalar::urange(0, a.umax)
    }
}

fn rem(a: &Scalar, b: &Scalar) -> Scalar {
    let plain = Scalar {
        pkt_len: false,
        ..*a
    };
    if b.umax == 0 {
        // Modulo by zero leaves dst.
        return plain;
    }
    if b.umin > 0 {
        if a.umax < b.umin {
            return plain;
        }
        return Scalar::urange(0, a.umax.min(b.umax - 1));
    }
    Scalar::urange(0, a.umax)
}

/// Shift by a count already masked to 0..=63.
fn shift(op: AluOp, a: &Scalar, count: &Scalar) -> Scalar {
    let (lo, hi) = (count.umin as u32, count.umax.min(63) as u32);
    match op {
        AluOp::Lsh => {
            if lo == hi {
                let mut r = Scalar::from_bits(a.bits.shl(lo));
                if a.umax.leading_zeros() >= lo {
                    r.umin = r.umin.max(a.umin << lo);
                    r.umax = r.umax.min(a.umax << lo);
                }
                r.normalized()
            } else if a.umax.leading_zeros() >= hi {
                Scalar::urange(a.umin << lo, a.umax << hi)
            } else {
                Scalar::UNKNOWN
            }
        }
        AluOp::Rsh => {
            let mut r = if lo == hi {
                Scalar::from_bits(a.bits.shr(lo))
            } else {
                Scalar::UNKNOWN
            };
            r.umin = r.umin.max(a.umin >> hi);
            r.umax = r.umax.min(a.umax >> lo);
            r.normalized()
        }
        _ => {
            let mut r = if lo == hi {
                Scalar::from_bits(a.bits.sar(lo))
            } else {
                Scalar::UNKNOWN
            };
            let c = [a.smin >> lo, a.smin >> hi, a.smax >> lo, a.smax >> hi];
            r.smin = r.smin.max(c.iter().copied().min().unwrap_or(i64::MIN));
            r.smax = r.smax.min(c.iter().copied().max().unwrap_or(i64::MAX));
            r.normalized()
        }
    }
}

/// Abstract `dst = -dst`.
pub fn neg(wide: bool, a: &Scalar) -> Scalar {
    if let Some(x) = a.as_const() {
        return Scalar::constant(eval_neg(wide, x));
    }
    if wide {
        sub(&Scalar::constant(0), a)
    } else {
        sub(&Scalar::constant(0), &a.truncate(32)).truncate(32)
    }
}

/// Abstract byte-order conversion.
pub fn end(kind: EndKind, bits: u8, a: &Scalar) -> Scalar {
    if let Some(x) = a.as_const() {
        return Scalar::constant(eval_end(kind, bits, x));
    }
    match kind {
        EndKind::Le => Scalar {
            pkt_len: false,
            ..a.truncate(u32::from(bits))
        },
        _ if bits >= 64 => Scalar::UNKNOWN,
        _ => Scalar::urange(0, (1u64 << bits) - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An abstract value containing `x`, built from `x` and a second value
    /// `y` and some extra known-bit loss.
    fn around(x: u64, y: u64, shape: u8) -> Scalar {
        let base = Scalar::constant(x).join(&Scalar::constant(y));
        match shape % 4 {
            0 => Scalar::constant(x),
            1 => base,
            2 => Scalar::urange(x.min(y), x.max(y)),
            _ => Scalar::srange((x as i64).min(y as i64), (x as i64).max(y as i64)),
        }
    }

    fn small() -> impl Strategy<Value = u64> {
        prop_oneof![
            any::<u64>(),
            0u64..70,
            (0u64..70).prop_map(|v| v.wrapping_neg()),
            (0u64..0x1_0000_0000),
            Just(1u64 << 63),
            Just(0x8000_0000u64),
        ]
    }

    #[test]
    fn and_then_shift_is_zero_or_eight() {
        let r = alu(AluOp::And, true, &Scalar::UNKNOWN, &Scalar::constant(1));
        let r = alu(AluOp::Lsh, true, &r, &Scalar::constant(3));
        assert_eq!((r.umin, r.umax), (0, 8));
        assert!(r.contains(0) && r.contains(8) && !r.contains(4));
    }

    #[test]
    fn loads_have_sized_ranges() {
        assert_eq!(Scalar::loaded(1, false).umax, 255);
        let s = Scalar::loaded(2, true);
        assert_eq!((s.smin, s.smax), (-32768, 32767));
        assert_eq!(Scalar::loaded(8, false), Scalar::UNKNOWN);
    }

    #[test]
    fn normalize_detects_empty_sets() {
        let s = Scalar {
            umin: 5,
            umax: 3,
            ..Scalar::UNKNOWN
        };
        assert_eq!(s.normalize(), None);
    }

    proptest! {
        #[test]
        fn alu_is_sound(x in small(), x2 in small(), y in small(), y2 in small(),
                        sa in any::<u8>(), sb in any::<u8>(), opi in 0usize..17, wide in any::<bool>()) {
            let ops = AluOp::all(true);
            let op = ops[opi];
            prop_assume!(wide || op != AluOp::MovSx(32));
            let a = around(x, x2, sa);
            let b = around(y, y2, sb);
            prop_assert!(a.contains(x) && b.contains(y));
            let r = alu(op, wide, &a, &b);
            let c = eval_alu(op, wide, x, y);
            prop_assert!(r.contains(c), "{op:?} wide={wide} {x:#x} {y:#x} -> {c:#x} not in {r:?} (a={a:?} b={b:?})");
            let n = neg(wide, &a);
            prop_assert!(n.contains(eval_neg(wide, x)));
            for (kind, bits) in [(EndKind::Le, 16), (EndKind::Le, 32), (EndKind::Be, 16), (EndKind::Swap, 64)] {
                prop_assert!(end(kind, bits, &a).contains(eval_end(kind, bits, x)));
            }
            let j = a.join(&b);
            prop_assert!(j.contains(x) && j.contains(y));
            for th in [Thresholds::default(), Thresholds::new([x as i64, 3, -7, y2 as i64])] {
                let w = Scalar::widen(&a, &j, &th);
                prop_assert!(w.contains(x) && w.contains(y));
            }
        }

        #[test]
        fn truncation_and_extension_are_sound(x in small(), x2 in small(), s in any::<u8>(), bits in prop_oneof![Just(8u32), Just(16), Just(32)]) {
            let a = around(x, x2, s);
            prop_assert!(a.truncate(bits).contains(x & ((1u64 << bits) - 1)));
            prop_assert!(a.sign_extend(bits).contains(sext(x, bits)));
        }
    }
}
