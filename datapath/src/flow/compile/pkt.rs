//! Building blocks of the inline packet code: packet pointers whose bounds
//! the verifier proves (kernel-style `p + N > data_end` checks), constant
//! stores, protocol guards and RFC 1624 checksum arithmetic.
//!
//! Registers: r6 holds the ctx for the whole program. Inline blocks (which
//! call nothing) use r1..r5 and r7..r9 freely: r7 = the header pointer,
//! r8 = `data_end`, r9 = the pseudo-header checksum delta shared by the L3
//! and L4 parts of a `set_field`.
//!
//! # Checksums without byte swaps
//!
//! The ones'-complement sum is byte-order independent: summing 16-bit words
//! loaded little-endian gives the byte-swapped sum of the big-endian words.
//! So the code loads old checksums and fields with plain (little-endian)
//! loads, adds the new values in the same byte order (constants converted at
//! compile time), and stores the result with a plain store: no `be16`
//! anywhere. A 32-bit field loaded as one word counts as its two 16-bit
//! halves, since 2^16 = 1 (mod 2^16 - 1).
//!
//! An update is `HC' = ~(~HC + ~m + m')` (RFC 1624, eqn. 3), as in
//! [`crate::packet::csum::update16`]: variable terms are summed exactly in a
//! 64-bit register, compile-time constants are reduced with [`reduce`]
//! (which keeps "the sum is zero" exact), and the sum is folded to 16 bits.

use super::emit::{Emitter, Label};
use super::matchgen::Facts;
use crate::ebpf::insn::{AluOp, Cond};
use crate::flow::compile::ctx::{CTX_DATA, CTX_DATA_END, CTX_L3_OFF};
use crate::flow::key::OFF_ETH_TYPE;

/// The register that holds the ctx pointer.
pub const R_CTX: u8 = 6;
/// Header pointer of an inline block.
pub const R_HDR: u8 = 7;
/// `data_end` in an inline block.
pub const R_END: u8 = 8;
/// Pseudo-header delta (addresses) carried from the L3 to the L4 update.
pub const R_PSEUDO: u8 = 9;

/// A ctx offset as an instruction offset (all are below 128).
pub fn off(o: usize) -> i16 {
    o as i16
}

/// `r7 = data`, `r8 = data_end`; continues only if the frame has `need`
/// bytes, else jumps to `skip`.
pub fn frame(e: &mut Emitter, need: i32, skip: Label) {
    e.ldx(8, R_HDR, R_CTX, off(CTX_DATA));
    e.ldx(8, R_END, R_CTX, off(CTX_DATA_END));
    check(e, need, skip);
}

/// `r7 = data + l3_off`, `r8 = data_end`; continues only if `need` bytes
/// follow the L3 offset.
pub fn l3(e: &mut Emitter, need: i32, skip: Label) {
    e.ldx(8, R_HDR, R_CTX, off(CTX_DATA));
    e.ldx(8, R_END, R_CTX, off(CTX_DATA_END));
    e.ldx(2, 1, R_CTX, off(CTX_L3_OFF));
    e.alu64_reg(AluOp::Add, R_HDR, 1);
    check(e, need, skip);
}

/// `r7 = data + r<off_reg>`, `r8 = data_end`; continues only if `need`
/// bytes follow.
pub fn at(e: &mut Emitter, off_reg: u8, need: i32, skip: Label) {
    e.ldx(8, R_HDR, R_CTX, off(CTX_DATA));
    e.ldx(8, R_END, R_CTX, off(CTX_DATA_END));
    e.alu64_reg(AluOp::Add, R_HDR, off_reg);
    check(e, need, skip);
}

/// `if r7 + need > r8 goto skip` (r1 is clobbered).
fn check(e: &mut Emitter, need: i32, skip: Label) {
    e.mov_reg(1, R_HDR);
    e.alu64_imm(AluOp::Add, 1, need);
    e.jmp_reg(Cond::Gt, 1, R_END, skip);
}

/// Stores the constant `bytes` at `base + off`, widest stores first.
pub fn store_bytes(e: &mut Emitter, base: u8, mut at: i16, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let (size, imm) = match bytes {
            [a, b, c, d, ..] => (4, i32::from_le_bytes([*a, *b, *c, *d])),
            [a, b, ..] => (2, i32::from(u16::from_le_bytes([*a, *b]))),
            [a, ..] => (1, i32::from(*a)),
            [] => break,
        };
        e.st(size, base, at, imm);
        at += i16::from(size);
        bytes = bytes.get(usize::from(size)..).unwrap_or_default();
    }
}

/// What a guard on the key's EtherType does.
pub enum Guard {
    /// The match pins another EtherType: the block can never run.
    Never,
    /// The match pins this EtherType: no run-time check.
    Always,
    /// A run-time check was emitted (jumps to `skip` on other types).
    Checked,
}

/// Guards a block on the key's EtherType being `ty`.
pub fn eth_type_guard(e: &mut Emitter, facts: &Facts, ty: u16, skip: Label) -> Guard {
    match facts.eth_type {
        Some(t) if t == ty => Guard::Always,
        Some(_) => Guard::Never,
        None => {
            e.ldx(2, 1, R_CTX, off(OFF_ETH_TYPE));
            e.jmp_imm(true, Cond::Ne, 1, i32::from(ty), skip);
            Guard::Checked
        }
    }
}

/// Whether a block for EtherType `ty` can run under `facts`.
pub fn eth_possible(facts: &Facts, ty: u16) -> bool {
    facts.eth_type.is_none_or(|t| t == ty)
}

/// Whether a block for IP protocol `p` can run under `facts`.
pub fn proto_possible(facts: &Facts, p: u8) -> bool {
    facts.ip_proto.is_none_or(|x| x == p)
}

/// A compile-time constant term reduced below 2^16 with the same value
/// modulo 0xffff and zero only when `c` is zero, so that adding it instead
/// of `c` changes neither the folded checksum nor whether the sum is zero.
pub fn reduce(c: u64) -> u64 {
    if c == 0 {
        0
    } else {
        (c - 1) % 0xffff + 1
    }
}

/// The largest value of `(s & 0xffff) + (s >> 16)` for `s <= bound`.
fn fold_bound(bound: u64) -> u64 {
    let h = bound >> 16;
    if h == 0 {
        bound
    } else {
        ((bound & 0xffff) + h).max(0xffff + h - 1)
    }
}

/// Folds `acc` (known to be at most `bound`) to 16 bits with end-around
/// carries, as many times as the bound requires (`tmp` is clobbered).
pub fn fold(e: &mut Emitter, acc: u8, tmp: u8, mut bound: u64) {
    while bound > 0xffff {
        e.mov_reg(tmp, acc);
        e.alu64_imm(AluOp::Rsh, tmp, 16);
        e.alu64_imm(AluOp::And, acc, 0xffff);
        e.alu64_reg(AluOp::Add, acc, tmp);
        bound = fold_bound(bound);
    }
}

/// `acc += ~(*(u16 *)(r7 + at))`: adds the complement of an old 16-bit
/// word (`tmp` keeps the old word).
pub fn add_old16(e: &mut Emitter, acc: u8, tmp: u8, at: i16) {
    e.ldx(2, tmp, R_HDR, at);
    e.alu64_imm(AluOp::Xor, tmp, 0xffff);
    e.alu64_reg(AluOp::Add, acc, tmp);
}

/// `acc += ~(*(u32 *)(r7 + at))` (two 16-bit words).
pub fn add_old32(e: &mut Emitter, acc: u8, tmp: u8, at: i16) {
    e.ldx(4, tmp, R_HDR, at);
    e.alu32_imm(AluOp::Xor, tmp, -1);
    e.alu64_reg(AluOp::Add, acc, tmp);
}

/// Ends a checksum update: `acc += ~HC` for the checksum at `r7 + at`,
/// fold, complement, store.
pub fn finish_csum(e: &mut Emitter, acc: u8, tmp: u8, at: i16, bound: u64) {
    add_old16(e, acc, tmp, at);
    fold(e, acc, tmp, bound + 0xffff);
    e.alu64_imm(AluOp::Xor, acc, 0xffff);
    e.stx(2, R_HDR, acc, at);
}

/// The sum of a constant's 16-bit words as little-endian loads see them.
pub fn le_words(bytes: &[u8]) -> u64 {
    bytes
        .chunks(2)
        .map(|c| {
            let lo = c.first().copied().unwrap_or(0);
            let hi = c.get(1).copied().unwrap_or(0);
            u64::from(u16::from_le_bytes([lo, hi]))
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::csum::Sum;

    #[test]
    fn reduced_constants_fold_like_the_originals() {
        for c in [
            0u64,
            1,
            0xfffe,
            0xffff,
            0x1_0000,
            0x1_fffe,
            0x2_0000,
            u32::MAX as u64 * 3,
        ] {
            let r = reduce(c);
            assert!(r <= 0xffff);
            assert_eq!(r == 0, c == 0);
            for var in [0u64, 1, 0xffff, 0x1234_5678] {
                let a = Sum::new()
                    .u32(var as u32)
                    .u32((c >> 32) as u32)
                    .u32(c as u32);
                let b = Sum::new().u32(var as u32).u16(r as u16);
                assert_eq!(a.fold(), b.fold(), "c={c:#x} var={var:#x}");
            }
        }
    }

    #[test]
    fn fold_bounds_are_tight_enough() {
        // Exhaustive below 2^20, and the bound never under-estimates.
        for bound in [0xffffu64, 0x1_0000, 0x1_fffd, 0x1_fffe, 0x2_0000, 0xf_ffff] {
            let worst = (0..=bound).map(|s| (s & 0xffff) + (s >> 16)).max();
            assert_eq!(Some(fold_bound(bound)), worst, "{bound:#x}");
        }
        assert_eq!(fold_bound(0x1_fffd), 0xffff, "dec_ttl folds once");
    }
}
