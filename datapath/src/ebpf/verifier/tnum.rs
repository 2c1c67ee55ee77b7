//! Known-bits ("tristate number") abstraction of a 64-bit value.
//!
//! A [`Tnum`] says, for every bit, whether it is known 0, known 1 or unknown:
//! bits set in `mask` are unknown, the other bits equal the bits of `value`
//! (`value & mask == 0` always holds). It complements interval bounds: after
//! `and r1, 1; lsh r1, 3` the interval is `[0, 8]` but the known bits say the
//! value is 0 or 8.

/// Known bits of a value: `mask` bits are unknown, the rest are `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tnum {
    pub value: u64,
    pub mask: u64,
}

impl Tnum {
    /// Every bit unknown.
    pub const UNKNOWN: Tnum = Tnum {
        value: 0,
        mask: u64::MAX,
    };

    pub const fn constant(v: u64) -> Tnum {
        Tnum { value: v, mask: 0 }
    }

    /// Does the set this tnum describes contain `v`?
    pub fn contains(self, v: u64) -> bool {
        (v & !self.mask) == self.value
    }

    /// Smallest tnum holding every value in `[min, max]` (unsigned).
    pub fn from_range(min: u64, max: u64) -> Tnum {
        let differing = min ^ max;
        let bits = 64 - differing.leading_zeros();
        if bits >= 64 {
            return Tnum::UNKNOWN;
        }
        let low = (1u64 << bits) - 1;
        Tnum {
            value: min & !low,
            mask: low,
        }
    }

    /// Smallest unsigned value the tnum allows.
    pub fn umin(self) -> u64 {
        self.value
    }

    /// Largest unsigned value the tnum allows.
    pub fn umax(self) -> u64 {
        self.value | self.mask
    }

    /// Smallest signed value the tnum allows.
    pub fn smin(self) -> i64 {
        const SIGN: u64 = 1 << 63;
        (self.value | (self.mask & SIGN)) as i64
    }

    /// Largest signed value the tnum allows.
    pub fn smax(self) -> i64 {
        const SIGN: u64 = 1 << 63;
        (self.value | (self.mask & !SIGN)) as i64
    }

    pub fn and(self, o: Tnum) -> Tnum {
        let maybe_a = self.value | self.mask;
        let maybe_b = o.value | o.mask;
        let value = self.value & o.value;
        Tnum {
            value,
            mask: maybe_a & maybe_b & !value,
        }
    }

    pub fn or(self, o: Tnum) -> Tnum {
        let value = self.value | o.value;
        Tnum {
            value,
            mask: (self.mask | o.mask) & !value,
        }
    }

    pub fn xor(self, o: Tnum) -> Tnum {
        let mask = self.mask | o.mask;
        Tnum {
            value: (self.value ^ o.value) & !mask,
            mask,
        }
    }

    pub fn shl(self, s: u32) -> Tnum {
        Tnum {
            value: self.value.wrapping_shl(s),
            mask: self.mask.wrapping_shl(s),
        }
    }

    pub fn shr(self, s: u32) -> Tnum {
        Tnum {
            value: self.value.wrapping_shr(s),
            mask: self.mask.wrapping_shr(s),
        }
    }

    /// Arithmetic shift right: the sign bit (known or not) is replicated.
    pub fn sar(self, s: u32) -> Tnum {
        Tnum {
            value: ((self.value as i64).wrapping_shr(s)) as u64,
            mask: ((self.mask as i64).wrapping_shr(s)) as u64,
        }
    }

    /// Wrapping addition. A carry can only start at an unknown bit, so the
    /// bits that can differ between the smallest and largest sums, plus the
    /// operands' unknown bits, are unknown.
    pub fn add(self, o: Tnum) -> Tnum {
        let masks = self.mask.wrapping_add(o.mask);
        let values = self.value.wrapping_add(o.value);
        let carries = masks.wrapping_add(values) ^ values;
        let mask = carries | self.mask | o.mask;
        Tnum {
            value: values & !mask,
            mask,
        }
    }

    /// Wrapping subtraction, the mirror of [`Tnum::add`] with borrows.
    pub fn sub(self, o: Tnum) -> Tnum {
        let diff = self.value.wrapping_sub(o.value);
        let hi = diff.wrapping_add(self.mask);
        let lo = diff.wrapping_sub(o.mask);
        let mask = (hi ^ lo) | self.mask | o.mask;
        Tnum {
            value: diff & !mask,
            mask,
        }
    }

    /// Keeps the low `bits` bits (zero-extension of a truncation).
    pub fn truncate(self, bits: u32) -> Tnum {
        if bits >= 64 {
            return self;
        }
        let keep = (1u64 << bits) - 1;
        Tnum {
            value: self.value & keep,
            mask: self.mask & keep,
        }
    }

    /// Values in both tnums, or `None` if a bit is known differently in each.
    pub fn intersect(self, o: Tnum) -> Option<Tnum> {
        if (self.value ^ o.value) & !self.mask & !o.mask != 0 {
            return None;
        }
        let mask = self.mask & o.mask;
        Some(Tnum {
            value: (self.value | o.value) & !mask,
            mask,
        })
    }

    /// Smallest tnum holding the values of both.
    pub fn union(self, o: Tnum) -> Tnum {
        let mask = self.mask | o.mask | (self.value ^ o.value);
        Tnum {
            value: self.value & !mask,
            mask,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A tnum and a value it contains: `v` fixes the unknown bits.
    fn member(value: u64, mask: u64, fill: u64) -> (Tnum, u64) {
        let t = Tnum {
            value: value & !mask,
            mask,
        };
        (t, t.value | (fill & mask))
    }

    #[test]
    fn range_of_two_values() {
        let t = Tnum::from_range(0, 8);
        assert!(t.contains(0) && t.contains(8) && t.contains(5));
        assert_eq!(Tnum::from_range(7, 7), Tnum::constant(7));
        assert_eq!(Tnum::from_range(0, u64::MAX), Tnum::UNKNOWN);
    }

    #[test]
    fn and_then_shift_gives_zero_or_eight() {
        let t = Tnum::UNKNOWN.and(Tnum::constant(1)).shl(3);
        assert_eq!(t, Tnum { value: 0, mask: 8 });
        assert_eq!((t.umin(), t.umax()), (0, 8));
    }

    proptest! {
        #[test]
        fn ops_are_sound(av in any::<u64>(), am in any::<u64>(), af in any::<u64>(),
                         bv in any::<u64>(), bm in any::<u64>(), bf in any::<u64>(), s in 0u32..64) {
            let (a, x) = member(av, am, af);
            let (b, y) = member(bv, bm, bf);
            prop_assert!(a.add(b).contains(x.wrapping_add(y)));
            prop_assert!(a.sub(b).contains(x.wrapping_sub(y)));
            prop_assert!(a.and(b).contains(x & y));
            prop_assert!(a.or(b).contains(x | y));
            prop_assert!(a.xor(b).contains(x ^ y));
            prop_assert!(a.shl(s).contains(x << s));
            prop_assert!(a.shr(s).contains(x >> s));
            prop_assert!(a.sar(s).contains(((x as i64) >> s) as u64));
            prop_assert!(a.union(b).contains(x) && a.union(b).contains(y));
            prop_assert!(a.truncate(32).contains(x as u32 as u64));
            prop_assert!(a.umin() <= x && x <= a.umax());
            prop_assert!(a.smin() <= x as i64 && x as i64 <= a.smax());
            if let Some(i) = a.intersect(Tnum::constant(x)) {
                prop_assert!(i.contains(x));
            } else {
                prop_assert!(false, "intersection with a member is empty");
            }
        }

        #[test]
        fn from_range_is_sound(a in any::<u64>(), b in any::<u64>(), f in any::<u64>()) {
            let (lo, hi) = (a.min(b), a.max(b));
            let t = Tnum::from_range(lo, hi);
            prop_assert!(t.contains(lo) && t.contains(hi));
            let mid = lo + (f % (hi - lo).saturating_add(1)).min(hi - lo);
            prop_assert!(t.contains(mid));
        }
    }
}
