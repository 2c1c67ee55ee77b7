//! Branch conditions: what a taken or not-taken conditional jump proves about
//! its scalar operands, and whether a branch can be taken at all.

use super::scalar::Scalar;
use super::tnum::Tnum;
use crate::ebpf::insn::Cond;

/// A relation between the two operands, closed under negation
/// (`jset` negates to "no common bit").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rel {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Sgt,
    Sge,
    Slt,
    Sle,
    Set,
    NotSet,
}

impl Rel {
    pub fn of(c: Cond) -> Rel {
        match c {
            Cond::Eq => Rel::Eq,
            Cond::Ne => Rel::Ne,
            Cond::Gt => Rel::Gt,
            Cond::Ge => Rel::Ge,
            Cond::Lt => Rel::Lt,
            Cond::Le => Rel::Le,
            Cond::Sgt => Rel::Sgt,
            Cond::Sge => Rel::Sge,
            Cond::Slt => Rel::Slt,
            Cond::Sle => Rel::Sle,
            Cond::Set => Rel::Set,
        }
    }

    /// The relation that holds when this one does not.
    pub fn negate(self) -> Rel {
        match self {
            Rel::Eq => Rel::Ne,
            Rel::Ne => Rel::Eq,
            Rel::Gt => Rel::Le,
            Rel::Ge => Rel::Lt,
            Rel::Lt => Rel::Ge,
            Rel::Le => Rel::Gt,
            Rel::Sgt => Rel::Sle,
            Rel::Sge => Rel::Slt,
            Rel::Slt => Rel::Sge,
            Rel::Sle => Rel::Sgt,
            Rel::Set => Rel::NotSet,
            Rel::NotSet => Rel::Set,
        }
    }

    /// The same relation with the operands exchanged.
    pub fn swap(self) -> Rel {
        match self {
            Rel::Gt => Rel::Lt,
            Rel::Ge => Rel::Le,
            Rel::Lt => Rel::Gt,
            Rel::Le => Rel::Ge,
            Rel::Sgt => Rel::Slt,
            Rel::Sge => Rel::Sle,
            Rel::Slt => Rel::Sgt,
            Rel::Sle => Rel::Sge,
            r => r,
        }
    }

    fn is_signed(self) -> bool {
        matches!(self, Rel::Sgt | Rel::Sge | Rel::Slt | Rel::Sle)
    }
}

/// Narrows `a` and `b` to the values for which `a REL b` can hold; `None`
/// if it never holds.
pub fn refine(rel: Rel, a: &Scalar, b: &Scalar) -> Option<(Scalar, Scalar)> {
    let (mut a, mut b) = (*a, *b);
    match rel {
        Rel::Eq => {
            let both = a.intersect(&b)?;
            a = Scalar {
                pkt_len: a.pkt_len,
                ..both
            };
            b = Scalar {
                pkt_len: b.pkt_len,
                ..both
            };
        }
        Rel::Ne => {
            if let Some(c) = b.as_const() {
                a = exclude(&a, c)?;
            }
            if let Some(c) = a.as_const() {
                b = exclude(&b, c)?;
            }
        }
        Rel::Gt => {
            a.umin = a.umin.max(b.umin.checked_add(1)?);
            b.umax = b.umax.min(a.umax.checked_sub(1)?);
        }
        Rel::Ge => {
            a.umin = a.umin.max(b.umin);
            b.umax = b.umax.min(a.umax);
        }
        Rel::Sgt => {
            a.smin = a.smin.max(b.smin.checked_add(1)?);
            b.smax = b.smax.min(a.smax.checked_sub(1)?);
        }
        Rel::Sge => {
            a.smin = a.smin.max(b.smin);
            b.smax = b.smax.min(a.smax);
        }
        Rel::Lt | Rel::Le | Rel::Slt | Rel::Sle => {
            let (rb, ra) = refine(rel.swap(), &b, &a)?;
            return Some((ra, rb));
        }
        Rel::Set => {
            if a.bits.umax() & b.bits.umax() == 0 {
                return None;
            }
            if let Some(c) = b.as_const().filter(|c| c.is_power_of_two()) {
                a.bits = a.bits.intersect(Tnum { value: c, mask: !c })?;
            }
            if let Some(c) = a.as_const().filter(|c| c.is_power_of_two()) {
                b.bits = b.bits.intersect(Tnum { value: c, mask: !c })?;
            }
        }
        Rel::NotSet => {
            if a.bits.value & b.bits.value != 0 {
                return None;
            }
            if let Some(c) = b.as_const() {
                a.bits = a.bits.intersect(Tnum { value: 0, mask: !c })?;
            }
            if let Some(c) = a.as_const() {
                b.bits = b.bits.intersect(Tnum { value: 0, mask: !c })?;
            }
        }
    }
    Some((a.normalize()?, b.normalize()?))
}

/// `a` without the value `c` (only shrinks bounds that sit on `c`).
fn exclude(a: &Scalar, c: u64) -> Option<Scalar> {
    let mut r = *a;
    if r.as_const() == Some(c) {
        return None;
    }
    if r.umin == c {
        r.umin += 1;
    }
    if r.umax == c {
        r.umax -= 1;
    }
    if r.smin == c as i64 {
        r.smin += 1;
    }
    if r.smax == c as i64 {
        r.smax -= 1;
    }
    Some(r)
}

/// The low 32 bits of a value as a 32-bit comparison sees them: zero-extended
/// for unsigned relations, sign-extended for signed ones.
fn project32(s: &Scalar, signed: bool) -> Scalar {
    if signed {
        s.sign_extend(32)
    } else {
        s.truncate(32)
    }
}

/// Is the 64-bit value set unchanged by [`project32`]?
fn fits32(s: &Scalar, signed: bool) -> bool {
    if signed {
        s.smin >= i64::from(i32::MIN) && s.smax <= i64::from(i32::MAX)
    } else {
        s.umax <= u64::from(u32::MAX)
    }
}

/// `a REL b` on 64 bits (`wide`) or on the low 32 bits. For 32-bit
/// comparisons an operand is narrowed only when its 64-bit value equals
/// what the comparison sees; feasibility is always decided.
pub fn refine_width(rel: Rel, wide: bool, a: &Scalar, b: &Scalar) -> Option<(Scalar, Scalar)> {
    if wide {
        return refine(rel, a, b);
    }
    let signed = rel.is_signed();
    let (pa, pb) = (project32(a, signed), project32(b, signed));
    let (ra, rb) = refine(rel, &pa, &pb)?;
    let na = if fits32(a, signed) {
        Scalar {
            pkt_len: a.pkt_len,
            ..ra
        }
    } else {
        *a
    };
    let nb = if fits32(b, signed) {
        Scalar {
            pkt_len: b.pkt_len,
            ..rb
        }
    } else {
        *b
    };
    Some((na, nb))
}

/// Operand sets on the taken and the fall-through edge of
/// `if a COND b goto`; `None` for an edge that is never followed.
pub type Edges = (Option<(Scalar, Scalar)>, Option<(Scalar, Scalar)>);

pub fn branch(cond: Cond, wide: bool, a: &Scalar, b: &Scalar) -> Edges {
    let rel = Rel::of(cond);
    (
        refine_width(rel, wide, a, b),
        refine_width(rel.negate(), wide, a, b),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn holds(rel: Rel, wide: bool, x: u64, y: u64) -> bool {
        let (x, y) = if wide {
            (x, y)
        } else if rel.is_signed() {
            (x as i32 as i64 as u64, y as i32 as i64 as u64)
        } else {
            (x as u32 as u64, y as u32 as u64)
        };
        match rel {
            Rel::Eq => x == y,
            Rel::Ne => x != y,
            Rel::Gt => x > y,
            Rel::Ge => x >= y,
            Rel::Lt => x < y,
            Rel::Le => x <= y,
            Rel::Sgt => (x as i64) > (y as i64),
            Rel::Sge => (x as i64) >= (y as i64),
            Rel::Slt => (x as i64) < (y as i64),
            Rel::Sle => (x as i64) <= (y as i64),
            Rel::Set => x & y != 0,
            Rel::NotSet => x & y == 0,
        }
    }

    const RELS: [Rel; 12] = [
        Rel::Eq,
        Rel::Ne,
        Rel::Gt,
        Rel::Ge,
        Rel::Lt,
        Rel::Le,
        Rel::Sgt,
        Rel::Sge,
        Rel::Slt,
        Rel::Sle,
        Rel::Set,
        Rel::NotSet,
    ];

    #[test]
    fn constant_conditions_decide_the_branch() {
        let (t, f) = branch(Cond::Gt, true, &Scalar::constant(5), &Scalar::constant(3));
        assert!(t.is_some() && f.is_none());
        let (t, f) = branch(
            Cond::Eq,
            false,
            &Scalar::constant(1 << 32),
            &Scalar::constant(0),
        );
        assert!(t.is_some() && f.is_none());
    }

    #[test]
    fn less_than_bounds_the_register() {
        let (t, f) = branch(Cond::Lt, true, &Scalar::UNKNOWN, &Scalar::constant(100));
        assert_eq!(t.map(|(a, _)| (a.umin, a.umax)), Some((0, 99)));
        assert_eq!(f.map(|(a, _)| (a.umin, a.umax)), Some((100, u64::MAX)));
    }

    proptest! {
        #[test]
        fn refinement_keeps_every_satisfying_pair(x in any::<u64>(), x2 in any::<u64>(), y in prop_oneof![any::<u64>(), 0u64..8],
                                                  y2 in any::<u64>(), r in 0usize..12, wide in any::<bool>(), cst in any::<bool>()) {
            let rel = RELS[r];
            let a = Scalar::urange(x.min(x2), x.max(x2));
            let b = if cst { Scalar::constant(y) } else { Scalar::constant(y).join(&Scalar::constant(y2)) };
            let res = refine_width(rel, wide, &a, &b);
            if holds(rel, wide, x, y) {
                let (ra, rb) = res.expect("feasible pair dropped");
                prop_assert!(ra.contains(x), "{rel:?} {wide} {x:#x} {y:#x}: {ra:?}");
                prop_assert!(rb.contains(y));
            }
        }
    }
}
