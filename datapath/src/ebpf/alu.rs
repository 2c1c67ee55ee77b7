//! Pure semantics of eBPF arithmetic, byte-order, jump-condition, load
//! extension and atomic operations, as total functions on `u64` values.
//!
//! The interpreter executes programs with these functions; the JIT may use
//! them to fold constants and the differential-test generator to predict
//! results. None of them panics for any input, including operand widths the
//! codec never produces (documented per function).
//!
//! Conventions: register values are `u64`. A 32-bit (ALU class) operation
//! reads the low 32 bits of its operands and returns its result zero-extended
//! to 64 bits. An immediate operand is first widened with [`imm64`]
//! (sign extension), so the same value serves both widths.

use super::insn::{AluOp, AtomicOp, Cond, EndKind};

/// Widens an instruction immediate to a 64-bit operand (sign extension).
/// 32-bit operations use its low 32 bits, which are the immediate itself.
#[inline]
pub fn imm64(imm: i32) -> u64 {
    imm as i64 as u64
}

/// `dst OP src` on 64 bits (ALU64 class).
///
/// Division by zero gives 0, modulo by zero leaves `dst`, signed
/// `i64::MIN / -1` is `i64::MIN` and `i64::MIN % -1` is 0, shift counts are
/// masked to 6 bits. `MovSx(n)` sign-extends the low `n` (8, 16 or 32) bits of
/// `src`; any other `n` acts as a plain move.
#[inline]
pub fn alu64(op: AluOp, dst: u64, src: u64) -> u64 {
    match op {
        AluOp::Add => dst.wrapping_add(src),
        AluOp::Sub => dst.wrapping_sub(src),
        AluOp::Mul => dst.wrapping_mul(src),
        AluOp::Div => dst.checked_div(src).unwrap_or(0),
        AluOp::SDiv => {
            if src == 0 {
                0
            } else {
                (dst as i64).wrapping_div(src as i64) as u64
            }
        }
        AluOp::Mod => dst.checked_rem(src).unwrap_or(dst),
        AluOp::SMod => {
            if src == 0 {
                dst
            } else {
                (dst as i64).wrapping_rem(src as i64) as u64
            }
        }
        AluOp::Or => dst | src,
        AluOp::And => dst & src,
        AluOp::Xor => dst ^ src,
        AluOp::Lsh => dst << (src & 63),
        AluOp::Rsh => dst >> (src & 63),
        AluOp::Arsh => ((dst as i64) >> (src & 63)) as u64,
        AluOp::Mov => src,
        AluOp::MovSx(bits) => sign_extend(bits, src),
    }
}

/// `dst OP src` on the low 32 bits (ALU class); the result is zero-extended.
///
/// Division by zero gives 0, modulo by zero leaves the low 32 bits of `dst`,
/// signed `i32::MIN / -1` is `i32::MIN` and `i32::MIN % -1` is 0, shift counts
/// are masked to 5 bits. `MovSx(n)` sign-extends the low `n` (8 or 16) bits of
/// `src` to 32 bits; `MovSx(32)` and any other `n` act as a plain move.
#[inline]
pub fn alu32(op: AluOp, dst: u64, src: u64) -> u64 {
    let a = dst as u32;
    let b = src as u32;
    let r: u32 = match op {
        AluOp::Add => a.wrapping_add(b),
        AluOp::Sub => a.wrapping_sub(b),
        AluOp::Mul => a.wrapping_mul(b),
        AluOp::Div => a.checked_div(b).unwrap_or(0),
        AluOp::SDiv => {
            if b == 0 {
                0
            } else {
                (a as i32).wrapping_div(b as i32) as u32
            }
        }
        AluOp::Mod => a.checked_rem(b).unwrap_or(a),
        AluOp::SMod => {
            if b == 0 {
                a
            } else {
                (a as i32).wrapping_rem(b as i32) as u32
            }
        }
        AluOp::Or => a | b,
        AluOp::And => a & b,
        AluOp::Xor => a ^ b,
        AluOp::Lsh => a << (b & 31),
        AluOp::Rsh => a >> (b & 31),
        AluOp::Arsh => ((a as i32) >> (b & 31)) as u32,
        AluOp::Mov => b,
        AluOp::MovSx(bits) => sign_extend(bits, src) as u32,
    };
    r as u64
}

/// [`alu64`] when `wide`, else [`alu32`].
#[inline]
pub fn alu(wide: bool, op: AluOp, dst: u64, src: u64) -> u64 {
    if wide {
        alu64(op, dst, src)
    } else {
        alu32(op, dst, src)
    }
}

/// `-dst` (two's complement, wrapping); the 32-bit form is zero-extended.
#[inline]
pub fn neg(wide: bool, dst: u64) -> u64 {
    if wide {
        dst.wrapping_neg()
    } else {
        (dst as u32).wrapping_neg() as u64
    }
}

/// Sign-extends the low `bits` (8, 16 or 32) bits of `v` to 64 bits. Any
/// other width returns `v` unchanged.
#[inline]
pub fn sign_extend(bits: u8, v: u64) -> u64 {
    match bits {
        8 => v as i8 as i64 as u64,
        16 => v as i16 as i64 as u64,
        32 => v as i32 as i64 as u64,
        _ => v,
    }
}

/// Keeps the low `bits` (16, 32 or 64) bits of `v`; any other width keeps
/// all 64.
#[inline]
fn truncate_bits(bits: u8, v: u64) -> u64 {
    match bits {
        8 => v as u8 as u64,
        16 => v as u16 as u64,
        32 => v as u32 as u64,
        _ => v,
    }
}

/// Byte-order operation on `v`. `Le`: truncate to `bits` (zero-extend);
/// `Be` and `Swap`: byte-swap the low `bits` and zero-extend (this is the
/// meaning on a little-endian host, the only kind the engine targets).
/// `bits` other than 16, 32, 64 (never decoded) act as 64.
#[inline]
pub fn end(kind: EndKind, bits: u8, v: u64) -> u64 {
    match kind {
        EndKind::Le => truncate_bits(bits, v),
        EndKind::Be | EndKind::Swap => match bits {
            16 => (v as u16).swap_bytes() as u64,
            32 => (v as u32).swap_bytes() as u64,
            _ => v.swap_bytes(),
        },
    }
}

/// Whether a conditional jump is taken. `wide` compares all 64 bits,
/// otherwise the low 32 bits (signed conditions then use `i32`).
/// `b` is the second operand: a register value or [`imm64`] of the immediate.
#[inline]
pub fn cond(c: Cond, wide: bool, a: u64, b: u64) -> bool {
    if wide {
        cmp(c, a, b, a as i64, b as i64)
    } else {
        cmp(
            c,
            a as u32 as u64,
            b as u32 as u64,
            a as i32 as i64,
            b as i32 as i64,
        )
    }
}

#[inline]
fn cmp(c: Cond, ua: u64, ub: u64, sa: i64, sb: i64) -> bool {
    match c {
        Cond::Eq => ua == ub,
        Cond::Ne => ua != ub,
        Cond::Gt => ua > ub,
        Cond::Ge => ua >= ub,
        Cond::Lt => ua < ub,
        Cond::Le => ua <= ub,
        Cond::Set => ua & ub != 0,
        Cond::Sgt => sa > sb,
        Cond::Sge => sa >= sb,
        Cond::Slt => sa < sb,
        Cond::Sle => sa <= sb,
    }
}

/// Keeps the low `size` bytes (1, 2, 4 or 8) of `v`; other sizes keep all
/// eight.
#[inline]
pub fn truncate(size: u8, v: u64) -> u64 {
    truncate_bits(size.saturating_mul(8), v)
}

/// The register value of a `size`-byte load whose little-endian bytes,
/// zero-extended, are `raw`: `signed` (the `ldxs*` forms) sign-extends from
/// `size` bytes, otherwise the value is zero-extended.
#[inline]
pub fn load_extend(size: u8, signed: bool, raw: u64) -> u64 {
    let raw = truncate(size, raw);
    if signed {
        sign_extend(size.saturating_mul(8), raw)
    } else {
        raw
    }
}

/// What an atomic instruction does, given the memory operand's old value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtomicEffect {
    /// Value to store back (already truncated to the access size), or `None`
    /// when memory is left as it was (a failed compare-and-exchange).
    pub store: Option<u64>,
    /// New value of the `src` register (the fetched old value), if it changes.
    pub src: Option<u64>,
    /// New value of r0 (compare-and-exchange only).
    pub r0: Option<u64>,
}

/// Semantics of `lock` instructions on a `size`-byte (4 or 8) operand.
///
/// `old` is the memory operand (zero-extended), `src` and `r0` the register
/// values. add/or/and/xor store `old OP src`, and with `fetch` put `old` in
/// `src`. `Xchg` stores `src` and puts `old` in `src`. `CmpXchg` compares
/// `r0` (its low 32 bits for the 4-byte form) with `old`, stores `src` if
/// they are equal, and always puts `old` in r0. Fetched values are
/// zero-extended. Sizes other than 4 act as 8.
#[inline]
pub fn atomic(op: AtomicOp, fetch: bool, size: u8, old: u64, src: u64, r0: u64) -> AtomicEffect {
    let size = if size == 4 { 4 } else { 8 };
    let old = truncate(size, old);
    let fetched = if fetch { Some(old) } else { None };
    let rmw = |v: u64| AtomicEffect {
        store: Some(truncate(size, v)),
        src: fetched,
        r0: None,
    };
    match op {
        AtomicOp::Add => rmw(old.wrapping_add(src)),
        AtomicOp::Or => rmw(old | src),
        AtomicOp::And => rmw(old & src),
        AtomicOp::Xor => rmw(old ^ src),
        AtomicOp::Xchg => AtomicEffect {
            store: Some(truncate(size, src)),
            src: Some(old),
            r0: None,
        },
        AtomicOp::CmpXchg => AtomicEffect {
            store: (truncate(size, r0) == old).then(|| truncate(size, src)),
            src: None,
            r0: Some(old),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN32: u64 = 0x8000_0000;
    const NEG1: u64 = u64::MAX;

    #[test]
    fn imm_is_sign_extended() {
        assert_eq!(imm64(-1), u64::MAX);
        assert_eq!(imm64(i32::MIN), 0xffff_ffff_8000_0000);
        assert_eq!(imm64(7), 7);
    }

    #[test]
    fn division_by_zero_is_zero() {
        for op in [AluOp::Div, AluOp::SDiv] {
            assert_eq!(alu64(op, 1234, 0), 0);
            assert_eq!(alu32(op, 1234, 0), 0);
            // Only the low 32 bits of the divisor count for the 32-bit form.
            assert_eq!(alu32(op, 1234, 1 << 32), 0);
        }
    }

    #[test]
    fn modulo_by_zero_leaves_dst() {
        let d = 0xdead_beef_1234_5678u64;
        assert_eq!(alu64(AluOp::Mod, d, 0), d);
        assert_eq!(alu64(AluOp::SMod, d, 0), d);
        // 32-bit forms keep dst but zero-extend it.
        assert_eq!(alu32(AluOp::Mod, d, 0), 0x1234_5678);
        assert_eq!(alu32(AluOp::SMod, d, 0), 0x1234_5678);
        assert_eq!(alu32(AluOp::SMod, d, 0xffff_ffff_0000_0000), 0x1234_5678);
    }

    #[test]
    fn int_min_by_minus_one() {
        let min64 = i64::MIN as u64;
        assert_eq!(alu64(AluOp::SDiv, min64, NEG1), min64);
        assert_eq!(alu64(AluOp::SMod, min64, NEG1), 0);
        assert_eq!(alu32(AluOp::SDiv, MIN32, NEG1), MIN32);
        assert_eq!(alu32(AluOp::SMod, MIN32, NEG1), 0);
        assert_eq!(alu64(AluOp::Mul, min64, NEG1), min64);
        assert_eq!(alu32(AluOp::Mul, MIN32, NEG1), MIN32);
    }

    #[test]
    fn signed_division_truncates_toward_zero() {
        assert_eq!(alu64(AluOp::SDiv, imm64(-7), 2), imm64(-3));
        assert_eq!(alu64(AluOp::SMod, imm64(-7), 2), imm64(-1));
        assert_eq!(alu64(AluOp::SMod, 7, imm64(-2)), 1);
        assert_eq!(alu64(AluOp::SMod, imm64(-7), imm64(-2)), imm64(-1));
        assert_eq!(alu32(AluOp::SDiv, imm64(-7), 2), 0xffff_fffd);
        assert_eq!(alu32(AluOp::SMod, imm64(-7), 2), 0xffff_ffff);
        // Unsigned forms treat the same bits as large numbers.
        assert_eq!(alu64(AluOp::Div, imm64(-2), 2), u64::MAX / 2);
        assert_eq!(alu32(AluOp::Div, imm64(-2), 2), 0x7fff_ffff);
        assert_eq!(alu64(AluOp::Mod, 17, 5), 2);
    }

    #[test]
    fn shift_counts_are_masked() {
        assert_eq!(alu64(AluOp::Lsh, 1, 64), 1);
        assert_eq!(alu64(AluOp::Lsh, 1, 65), 2);
        assert_eq!(alu64(AluOp::Rsh, 4, 66), 1);
        assert_eq!(alu64(AluOp::Arsh, imm64(-8), 65), imm64(-4));
        assert_eq!(alu64(AluOp::Lsh, 1, NEG1), 1 << 63);
        assert_eq!(alu32(AluOp::Lsh, 1, 32), 1);
        assert_eq!(alu32(AluOp::Lsh, 1, 33), 2);
        assert_eq!(alu32(AluOp::Lsh, 1, NEG1), 0x8000_0000);
        assert_eq!(alu32(AluOp::Rsh, 0xffff_ffff_0000_0004, 34), 1);
        // Arithmetic shift of the low 32 bits, then zero-extension.
        assert_eq!(alu32(AluOp::Arsh, 0x8000_0000, 4), 0xf800_0000);
        assert_eq!(alu32(AluOp::Arsh, 0x8000_0000, 36), 0xf800_0000);
        assert_eq!(alu64(AluOp::Arsh, 0x8000_0000, 4), 0x0800_0000);
    }

    #[test]
    fn alu32_zeroes_upper_half() {
        let hi = 0xffff_ffff_0000_0000u64;
        for op in AluOp::BOTH_WIDTHS {
            for (a, b) in [(hi | 5, hi | 3), (NEG1, NEG1), (hi, 1), (0x8000_0000, NEG1)] {
                assert_eq!(alu32(op, a, b) >> 32, 0, "{op:?} {a:#x} {b:#x}");
            }
        }
        assert_eq!(alu32(AluOp::Add, 0xffff_ffff, 1), 0);
        assert_eq!(alu32(AluOp::Sub, 0, 1), 0xffff_ffff);
        assert_eq!(alu32(AluOp::Mov, 0, NEG1), 0xffff_ffff);
        assert_eq!(alu32(AluOp::Or, hi, 1), 1);
        assert_eq!(neg(false, 1), 0xffff_ffff);
        assert_eq!(neg(false, MIN32), MIN32);
        assert_eq!(neg(false, hi), 0);
    }

    #[test]
    fn alu64_basic_ops() {
        assert_eq!(alu64(AluOp::Add, NEG1, 2), 1);
        assert_eq!(alu64(AluOp::Sub, 0, 1), NEG1);
        assert_eq!(alu64(AluOp::Mul, 1 << 32, 1 << 32), 0);
        assert_eq!(alu64(AluOp::Or, 0xf0, 0x0f), 0xff);
        assert_eq!(alu64(AluOp::And, 0xf0, 0x3c), 0x30);
        assert_eq!(alu64(AluOp::Xor, 0xff, 0x0f), 0xf0);
        assert_eq!(alu64(AluOp::Mov, 1, 2), 2);
        assert_eq!(alu(true, AluOp::Add, 1 << 32, 1), (1 << 32) + 1);
        assert_eq!(alu(false, AluOp::Add, 1 << 32, 1), 1);
        assert_eq!(neg(true, 1), NEG1);
        assert_eq!(neg(true, i64::MIN as u64), i64::MIN as u64);
    }

    #[test]
    fn movsx() {
        let v = 0x0123_4567_89ab_cdefu64;
        assert_eq!(alu64(AluOp::MovSx(8), 0, v), 0xffff_ffff_ffff_ffef);
        assert_eq!(alu64(AluOp::MovSx(16), 0, v), 0xffff_ffff_ffff_cdef);
        assert_eq!(alu64(AluOp::MovSx(32), 0, v), 0xffff_ffff_89ab_cdef);
        assert_eq!(alu32(AluOp::MovSx(8), 0, v), 0xffff_ffef);
        assert_eq!(alu32(AluOp::MovSx(16), 0, v), 0xffff_cdef);
        assert_eq!(alu64(AluOp::MovSx(8), 0, 0x7f), 0x7f);
        assert_eq!(alu32(AluOp::MovSx(16), 0, 0x7fff), 0x7fff);
        // Widths the codec never produces act as a plain move.
        assert_eq!(alu64(AluOp::MovSx(64), 0, v), v);
        assert_eq!(alu32(AluOp::MovSx(32), 0, v), 0x89ab_cdef);
    }

    #[test]
    fn byte_order() {
        let v = 0x0123_4567_89ab_cdefu64;
        assert_eq!(end(EndKind::Le, 16, v), 0xcdef);
        assert_eq!(end(EndKind::Le, 32, v), 0x89ab_cdef);
        assert_eq!(end(EndKind::Le, 64, v), v);
        assert_eq!(end(EndKind::Be, 16, v), 0xefcd);
        assert_eq!(end(EndKind::Be, 32, v), 0xefcd_ab89);
        assert_eq!(end(EndKind::Be, 64, v), 0xefcd_ab89_6745_2301);
        for bits in [16, 32, 64] {
            assert_eq!(end(EndKind::Swap, bits, v), end(EndKind::Be, bits, v));
        }
    }

    #[test]
    fn conditions_64() {
        let m1 = NEG1;
        assert!(cond(Cond::Eq, true, 5, 5));
        assert!(!cond(Cond::Eq, true, 5 | 1 << 32, 5));
        assert!(cond(Cond::Ne, true, 5 | 1 << 32, 5));
        assert!(cond(Cond::Gt, true, m1, 1));
        assert!(!cond(Cond::Sgt, true, m1, 1));
        assert!(cond(Cond::Slt, true, m1, 1));
        assert!(cond(Cond::Ge, true, 3, 3));
        assert!(cond(Cond::Le, true, 3, 3));
        assert!(!cond(Cond::Lt, true, 3, 3));
        assert!(cond(Cond::Sge, true, 0, m1));
        assert!(cond(Cond::Sle, true, m1, m1));
        assert!(cond(Cond::Set, true, 0b1010, 0b0010));
        assert!(!cond(Cond::Set, true, 0b1010, 0b0101));
        assert!(cond(Cond::Set, true, 1 << 40, 1 << 40));
        // Immediates are sign-extended before a 64-bit compare.
        assert!(cond(Cond::Eq, true, m1, imm64(-1)));
        assert!(!cond(Cond::Eq, true, 0xffff_ffff, imm64(-1)));
    }

    #[test]
    fn conditions_32_use_low_half() {
        let hi = 0x7777_0000_0000_0000u64;
        assert!(cond(Cond::Eq, false, hi | 5, 5));
        assert!(cond(Cond::Eq, false, 0xffff_ffff, imm64(-1)));
        assert!(cond(Cond::Slt, false, 0xffff_ffff, 0));
        assert!(!cond(Cond::Slt, true, 0xffff_ffff, 0));
        assert!(cond(Cond::Gt, false, 0xffff_ffff, 1));
        assert!(!cond(Cond::Gt, false, 1 << 32, 1));
        assert!(cond(Cond::Sgt, false, 0, 0x8000_0000));
        assert!(!cond(Cond::Set, false, 1 << 32, 1 << 32));
        assert!(cond(Cond::Sge, false, hi | 0x7fff_ffff, 0x7fff_ffff));
        assert!(cond(Cond::Sle, false, 0x8000_0000, 0));
        assert!(cond(Cond::Lt, false, 0, 0x8000_0000));
        assert!(cond(Cond::Le, false, 1 << 32, 0));
        assert!(!cond(Cond::Ne, false, 1 << 32, 0));
        assert!(cond(Cond::Ge, false, 1, 1 << 32));
    }

    #[test]
    fn loads_extend() {
        assert_eq!(load_extend(1, false, 0x80), 0x80);
        assert_eq!(load_extend(1, true, 0x80), 0xffff_ffff_ffff_ff80);
        assert_eq!(load_extend(2, true, 0x8000), 0xffff_ffff_ffff_8000);
        assert_eq!(load_extend(4, true, 0x8000_0000), 0xffff_ffff_8000_0000);
        assert_eq!(load_extend(4, false, 0x1_8000_0000), 0x8000_0000);
        assert_eq!(load_extend(2, true, 0x7fff), 0x7fff);
        assert_eq!(load_extend(8, true, NEG1), NEG1);
        assert_eq!(truncate(1, 0x1234), 0x34);
        assert_eq!(truncate(8, NEG1), NEG1);
    }

    #[test]
    fn atomic_arith() {
        let e = atomic(AtomicOp::Add, false, 8, 10, 5, 99);
        assert_eq!(
            e,
            AtomicEffect {
                store: Some(15),
                src: None,
                r0: None
            }
        );
        let e = atomic(AtomicOp::Add, true, 4, 0xffff_ffff, 2, 99);
        assert_eq!(e.store, Some(1));
        assert_eq!(e.src, Some(0xffff_ffff));
        assert_eq!(
            atomic(AtomicOp::Or, true, 8, 0xf0, 0x0f, 0).store,
            Some(0xff)
        );
        assert_eq!(
            atomic(AtomicOp::And, false, 8, 0xf0, 0x3c, 0).store,
            Some(0x30)
        );
        assert_eq!(
            atomic(AtomicOp::Xor, true, 4, 0xff, NEG1, 0).store,
            Some(0xffff_ff00)
        );
        assert_eq!(
            atomic(AtomicOp::Xor, true, 4, 0xff, NEG1, 0).src,
            Some(0xff)
        );
    }

    #[test]
    fn atomic_xchg() {
        let e = atomic(
            AtomicOp::Xchg,
            true,
            4,
            0x1111_1111,
            0xaaaa_bbbb_cccc_dddd,
            7,
        );
        assert_eq!(e.store, Some(0xcccc_dddd));
        assert_eq!(e.src, Some(0x1111_1111));
        assert_eq!(e.r0, None);
        let e = atomic(AtomicOp::Xchg, true, 8, 1, NEG1, 7);
        assert_eq!(e.store, Some(NEG1));
        assert_eq!(e.src, Some(1));
    }

    #[test]
    fn atomic_cmpxchg() {
        // 64-bit: equal stores src, r0 always gets old.
        let e = atomic(AtomicOp::CmpXchg, true, 8, 42, 7, 42);
        assert_eq!(
            e,
            AtomicEffect {
                store: Some(7),
                src: None,
                r0: Some(42)
            }
        );
        let e = atomic(AtomicOp::CmpXchg, true, 8, 42, 7, 42 | 1 << 32);
        assert_eq!(e.store, None);
        assert_eq!(e.r0, Some(42));
        // 32-bit: only the low half of r0 is compared; stored value truncated.
        let e = atomic(AtomicOp::CmpXchg, true, 4, 42, NEG1, 42 | 1 << 32);
        assert_eq!(e.store, Some(0xffff_ffff));
        assert_eq!(e.r0, Some(42));
        let e = atomic(AtomicOp::CmpXchg, true, 4, 43, 1, 42);
        assert_eq!(e.store, None);
        assert_eq!(e.r0, Some(43));
    }
}
