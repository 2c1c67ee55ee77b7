//! The match check: for each alternative, every constrained key word is
//! loaded from the ctx, masked and compared with a constant; a mismatch
//! jumps to the next alternative (the last one's to "no match").
//!
//! A word is checked as one 8-byte chunk or split into aligned halves,
//! recursively, whichever needs fewer instructions: an in_port + eth_type
//! word becomes `ldxw` + `jne32` and `ldxh` + `jne32` rather than an `and`
//! and a compare with two 64-bit constants. Chunks of at most 4 bytes use
//! 32-bit ALU and jumps (their immediates need no sign-extension care);
//! 8-byte chunks use an immediate when it survives sign extension, `lddw`
//! otherwise. A zero value is checked with a single `jset`.

use super::emit::{fits_imm, Emitter, Label};
use super::pkt::R_CTX;
use crate::ebpf::insn::{AluOp, Cond};
use crate::flow::key::{
    FlowKey, KEY_WORDS, OFF_ETH_TYPE, OFF_IP_PROTO, OFF_VLAN_TCI, VLAN_PRESENT,
};
use crate::flow::spec::Match;

/// What every alternative of a match pins, so that actions can skip
/// run-time protocol checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Facts {
    pub eth_type: Option<u16>,
    pub ip_proto: Option<u8>,
    /// Whether the frame carries an 802.1Q tag.
    pub vlan_tagged: Option<bool>,
}

/// `Some(value)` when every alternative fully constrains the `N`-byte field
/// at `off` (under `mask`) to the same value.
fn pinned<const N: usize>(matches: &[Match], off: usize, mask: u64) -> Option<u64> {
    let first = matches.first()?;
    let v = first.key.get::<N>(off) & mask;
    matches
        .iter()
        .all(|m| m.mask.get::<N>(off) & mask == mask && m.key.get::<N>(off) & mask == v)
        .then_some(v)
}

impl Facts {
    /// Nothing known.
    pub const NONE: Facts = Facts {
        eth_type: None,
        ip_proto: None,
        vlan_tagged: None,
    };

    pub fn of(matches: &[Match]) -> Facts {
        Facts {
            eth_type: pinned::<2>(matches, OFF_ETH_TYPE, 0xffff).map(|v| v as u16),
            ip_proto: pinned::<1>(matches, OFF_IP_PROTO, 0xff).map(|v| v as u8),
            vlan_tagged: pinned::<2>(matches, OFF_VLAN_TCI, u64::from(VLAN_PRESENT))
                .map(|v| v != 0),
        }
    }
}

fn full(size: u8) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    }
}

/// Slots to load a constant into a register.
fn const_cost(v: u64) -> u32 {
    if fits_imm(v) || v <= u64::from(u32::MAX) {
        1
    } else {
        2
    }
}

/// Slots to check one chunk of `size` bytes (mask and value shifted down).
fn chunk_cost(mask: u64, value: u64, size: u8) -> u32 {
    if mask == 0 {
        return 0;
    }
    let narrow = size <= 4;
    if value == 0 && (narrow || fits_imm(mask)) {
        return 2; // load + jset
    }
    let and = if mask == full(size) {
        0
    } else if narrow || fits_imm(mask) {
        1
    } else {
        const_cost(mask) + 1
    };
    let cmp = if narrow || fits_imm(value) {
        1
    } else {
        const_cost(value) + 1
    };
    1 + and + cmp
}

/// Cheapest cost of checking the chunk of `size` bytes at byte `at` of a
/// word, and whether splitting it beats checking it whole.
fn best(mask: u64, value: u64, at: u8, size: u8) -> (u32, bool) {
    let shift = u32::from(at) * 8;
    let m = (mask >> shift) & full(size);
    if m == 0 {
        return (0, false);
    }
    let whole = chunk_cost(m, (value >> shift) & full(size), size);
    if size == 1 {
        return (whole, false);
    }
    let half = size / 2;
    let split = best(mask, value, at, half).0 + best(mask, value, at + half, half).0;
    if split < whole {
        (split, true)
    } else {
        (whole, false)
    }
}

/// Emits the check of the chunk (or its best split) of word `w`.
fn emit_chunk(e: &mut Emitter, w: usize, mask: u64, value: u64, at: u8, size: u8, fail: Label) {
    let (cost, split) = best(mask, value, at, size);
    if cost == 0 {
        return;
    }
    if split {
        let half = size / 2;
        emit_chunk(e, w, mask, value, at, half, fail);
        emit_chunk(e, w, mask, value, at + half, half, fail);
        return;
    }
    let shift = u32::from(at) * 8;
    let m = (mask >> shift) & full(size);
    let v = (value >> shift) & full(size);
    let narrow = size <= 4;
    e.ldx(size, 2, R_CTX, (w * 8) as i16 + i16::from(at));
    if v == 0 && (narrow || fits_imm(m)) {
        e.jmp_imm(!narrow, Cond::Set, 2, m as i32, fail);
        return;
    }
    if m != full(size) {
        if narrow {
            e.alu32_imm(AluOp::And, 2, m as u32 as i32);
        } else {
            e.alu64_const(AluOp::And, 2, m, 3);
        }
    }
    if narrow {
        e.jmp_imm(false, Cond::Ne, 2, v as u32 as i32, fail);
    } else if fits_imm(v) {
        e.jmp_imm(true, Cond::Ne, 2, v as i32, fail);
    } else {
        e.mov_const(3, v);
        e.jmp_reg(Cond::Ne, 2, 3, fail);
    }
}

/// Emits the checks of one alternative; any mismatch jumps to `fail`.
fn emit_alt(e: &mut Emitter, m: &Match, fail: Label) {
    for w in 0..KEY_WORDS {
        let (mask, value) = (m.mask.words[w], m.key.words[w] & m.mask.words[w]);
        emit_chunk(e, w, mask, value, 0, 8, fail);
    }
}

/// Emits the match check of `matches` (the flow matches when some
/// alternative does); falls through on a match, jumps to `nomatch`
/// otherwise. An empty list never matches.
pub fn emit(e: &mut Emitter, matches: &[Match], nomatch: Label) {
    if matches.is_empty() {
        e.ja(nomatch);
        return;
    }
    if matches.iter().any(|m| m.mask == FlowKey::default()) {
        return;
    }
    // Bits every alternative requires with the same value are checked once.
    let common = common_part(matches);
    emit_alt(e, &common, nomatch);
    let rest = |m: &Match| {
        let mut r = *m;
        for w in 0..KEY_WORDS {
            r.mask.words[w] &= !common.mask.words[w];
            r.key.words[w] &= r.mask.words[w];
        }
        r
    };
    if matches.iter().any(|m| rest(m).mask == FlowKey::default()) {
        return;
    }
    let matched = e.label();
    let last = matches.len() - 1;
    for (i, m) in matches.iter().enumerate() {
        let r = rest(m);
        if i == last {
            emit_alt(e, &r, nomatch);
        } else {
            let next = e.label();
            emit_alt(e, &r, next);
            e.ja(matched);
            e.bind(next);
        }
    }
    e.bind(matched);
}

/// The constraints all alternatives share: bits every mask has, with the
/// same value in every alternative. A key matches some alternative iff it
/// matches this part and some alternative's remaining bits.
fn common_part(matches: &[Match]) -> Match {
    let mut c = Match::any();
    let Some(first) = matches.first() else {
        return c;
    };
    for w in 0..KEY_WORDS {
        let v0 = first.key.words[w] & first.mask.words[w];
        let mut mask = u64::MAX;
        for m in matches {
            mask &= m.mask.words[w] & !((m.key.words[w] & m.mask.words[w]) ^ v0);
        }
        c.mask.words[w] = mask;
        c.key.words[w] = v0 & mask;
    }
    c
}

/// Slots the match check of one alternative takes (for tests and sizing).
pub fn alt_cost(m: &Match) -> u32 {
    (0..KEY_WORDS)
        .map(|w| best(m.mask.words[w], m.key.words[w] & m.mask.words[w], 0, 8).0)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::*;

    fn exact<const N: usize>(off: usize, v: u64) -> Match {
        let mut m = Match::any();
        assert!(m.require::<N>(off, v, full(N as u8)));
        m
    }

    #[test]
    fn common_fields_take_two_or_three_slots() {
        assert_eq!(alt_cost(&exact::<4>(OFF_IN_PORT, 1)), 2);
        assert_eq!(alt_cost(&exact::<2>(OFF_ETH_TYPE, 0x0800)), 2);
        assert_eq!(alt_cost(&exact::<8>(OFF_ETH_DST, 0x0200_0000_0001)), 4);
        assert_eq!(alt_cost(&exact::<1>(OFF_IP_PROTO, 6)), 2);
        let mut m = exact::<4>(OFF_NW_DST, 0x0a00_0002);
        m.require::<4>(OFF_NW_SRC, 0x0a00_0000, 0xffff_ff00);
        assert_eq!(alt_cost(&m), 5);
        // A zero value is one jset.
        assert_eq!(alt_cost(&exact::<2>(OFF_TP_DST, 0)), 2);
        // A /64 IPv6 prefix: one word, value beyond an immediate.
        let mut m = Match::any();
        m.words_require(OFF_IPV6_DST, 0x2001_0db8_0000_0001, u64::MAX);
        assert_eq!(alt_cost(&m), 4);
    }

    trait WordsRequire {
        fn words_require(&mut self, off: usize, v: u64, mask: u64);
    }
    impl WordsRequire for Match {
        fn words_require(&mut self, off: usize, v: u64, mask: u64) {
            assert!(self.require::<8>(off, v, mask));
        }
    }

    #[test]
    fn facts_need_every_alternative() {
        let mut a = exact::<2>(OFF_ETH_TYPE, 0x0800);
        a.require::<1>(OFF_IP_PROTO, 6, 0xff);
        let mut b = exact::<2>(OFF_ETH_TYPE, 0x0800);
        b.require::<1>(OFF_IP_PROTO, 17, 0xff);
        let f = Facts::of(&[a, b]);
        assert_eq!(f.eth_type, Some(0x0800));
        assert_eq!(f.ip_proto, None);
        assert_eq!(Facts::of(&[a]).ip_proto, Some(6));
        assert_eq!(Facts::of(&[a, Match::any()]), Facts::NONE);
        let mut v = Match::any();
        v.require::<2>(OFF_VLAN_TCI, u64::from(VLAN_PRESENT | 10), 0x1fff);
        assert_eq!(Facts::of(&[v]).vlan_tagged, Some(true));
        let mut u = Match::any();
        u.require::<2>(OFF_VLAN_TCI, 0, 0xffff);
        assert_eq!(Facts::of(&[u]).vlan_tagged, Some(false));
        // A partial mask on eth_type pins nothing.
        let mut p = Match::any();
        p.require::<2>(OFF_ETH_TYPE, 0x0800, 0xff00);
        assert_eq!(Facts::of(&[p]).eth_type, None);
    }
}
