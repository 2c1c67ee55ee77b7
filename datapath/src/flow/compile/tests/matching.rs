//! The match check against `Match::matches`: per field, and on thousands
//! of random flows (random fields and raw word masks, several
//! alternatives, port ranges as prefixes) against keys built to match,
//! to just miss, and at random.

use super::*;
use crate::classifier::testgen::{pool_key, Rng};
use crate::flow::key::*;
use crate::flow::spec::range_to_prefixes;

/// A random mask of one of several shapes over the low `bits` bits.
fn mask_of(rng: &mut Rng, bits: u32) -> u64 {
    let full = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let prefix = |n: u32| {
        if n == 0 {
            0
        } else {
            full & !((1u64 << (bits - n.min(bits))) - 1)
        }
    };
    match rng.below(7) {
        0 | 1 => full,
        2 => prefix(rng.below(u64::from(bits) + 1) as u32),
        3 => rng.next_u64() & full,
        4 => rng.next_u64() & rng.next_u64() & full,
        5 => (1u64 << rng.below(u64::from(bits))) & full,
        _ => (rng.next_u64() | rng.next_u64()) & full,
    }
}

/// Adds a random constraint on `N` bytes at `off`.
fn field<const N: usize>(rng: &mut Rng, m: &mut Match, off: usize, pool: &[u64]) {
    let bits = N as u32 * 8;
    let mask = mask_of(rng, bits);
    let value = match rng.pick(pool) {
        Some(v) if rng.below(2) == 0 => v,
        _ => rng.next_u64(),
    };
    m.require::<N>(off, value, mask);
}

/// A match over the named key fields.
fn field_match(rng: &mut Rng) -> Match {
    let mut m = Match::any();
    let p = |rng: &mut Rng| rng.below(10) < 3;
    if p(rng) {
        field::<4>(rng, &mut m, OFF_IN_PORT, &[1, 2, 3, 0xffff_ffff]);
    }
    if p(rng) {
        field::<2>(rng, &mut m, OFF_ETH_TYPE, &[0x0800, 0x86dd, 0x0806, 0x8100]);
    }
    if p(rng) {
        let present = u64::from(VLAN_PRESENT);
        match rng.below(4) {
            0 => m.require::<2>(OFF_VLAN_TCI, present * rng.below(2), present),
            1 => m.require::<2>(OFF_VLAN_TCI, present | rng.below(4096), 0x1fff),
            2 => m.require::<2>(OFF_VLAN_TCI, present | rng.below(8) << 13, 0xf000),
            _ => m.require::<2>(OFF_VLAN_TCI, 0, 0xffff),
        };
    }
    for off in [OFF_ETH_DST, OFF_ETH_SRC] {
        if p(rng) {
            let mask = match rng.below(4) {
                0 => 0xffff_ff00_0000,
                1 => 0x0100_0000_0000,
                _ => mask_of(rng, 48),
            };
            m.require::<8>(off, rng.next_u64(), mask);
        }
    }
    for off in [OFF_NW_SRC, OFF_NW_DST] {
        if p(rng) {
            field::<4>(rng, &mut m, off, &[0x0a00_0001, 0xc0a8_0000]);
        }
    }
    for off in [OFF_IPV6_SRC, OFF_IPV6_DST] {
        if p(rng) {
            let len = rng.below(129) as u32;
            let (hi, lo) = (rng.next_u64(), rng.next_u64());
            let hm = if len >= 64 {
                u64::MAX
            } else if len == 0 {
                0
            } else {
                !((1u64 << (64 - len)) - 1)
            };
            let lm = if len <= 64 {
                0
            } else if len == 128 {
                u64::MAX
            } else {
                !((1u64 << (128 - len)) - 1)
            };
            m.require::<8>(off, hi, hm);
            m.require::<8>(off + 8, lo, lm);
        }
    }
    if p(rng) {
        field::<1>(rng, &mut m, OFF_IP_PROTO, &[1, 6, 17, 58]);
    }
    if p(rng) {
        let mask = [0xfc, 0x03, 0xff][rng.below(3) as usize];
        m.require::<1>(OFF_IP_TOS, rng.next_u64(), mask);
    }
    if p(rng) {
        field::<2>(rng, &mut m, OFF_ARP_OP, &[1, 2]);
    }
    for off in [OFF_TP_SRC, OFF_TP_DST] {
        if p(rng) {
            field::<2>(rng, &mut m, off, &[0, 22, 80, 443, 0xffff]);
        }
    }
    if p(rng) {
        m.require::<2>(OFF_TCP_FLAGS, rng.next_u64(), rng.next_u64() & 0x0fff);
    }
    if p(rng) {
        m.require::<1>(OFF_IP_FRAG, rng.next_u64(), rng.below(4));
    }
    m
}

/// A match with arbitrary masks on a few whole words.
fn raw_match(rng: &mut Rng) -> Match {
    let mut m = Match::any();
    for w in 0..KEY_WORDS {
        if rng.below(10) < 3 {
            let mask = match rng.below(6) {
                0 => u64::MAX,
                1 => 0xffff_ffff_0000_0000,
                2 => 0x0000_0000_ffff_ffff,
                3 => 0xffff_ffff_ffff_ff00,
                _ => mask_of(rng, 64),
            };
            m.mask.words[w] = mask;
            m.key.words[w] = rng.next_u64() & mask;
        }
    }
    m
}

fn random_matches(rng: &mut Rng) -> Vec<Match> {
    let one = |rng: &mut Rng| {
        if rng.below(3) == 0 {
            raw_match(rng)
        } else {
            field_match(rng)
        }
    };
    match rng.below(10) {
        0..=5 => vec![one(rng)],
        6..=8 => (0..2 + rng.below(3)).map(|_| one(rng)).collect(),
        _ => {
            let base = one(rng);
            let lo = rng.below(65536);
            let hi = (lo + rng.below(3000)).min(65535);
            let alts: Vec<Match> = range_to_prefixes(lo, hi, 16)
                .into_iter()
                .filter_map(|(v, mask)| {
                    let mut a = base;
                    a.require::<2>(OFF_TP_DST, v, mask).then_some(a)
                })
                .collect();
            if alts.is_empty() {
                vec![base]
            } else {
                alts
            }
        }
    }
}

/// Keys that match an alternative, keys one bit away, random keys.
fn keys_for(rng: &mut Rng, matches: &[Match], n: usize) -> Vec<FlowKey> {
    (0..n)
        .map(|i| {
            let mut k = FlowKey::default();
            for w in &mut k.words {
                *w = rng.next_u64();
            }
            if i % 3 == 2 {
                return if rng.below(2) == 0 { k } else { pool_key(rng) };
            }
            let Some(alt) = matches.get(rng.below(matches.len() as u64) as usize) else {
                return k;
            };
            for w in 0..KEY_WORDS {
                k.words[w] = alt.key.words[w] | (k.words[w] & !alt.mask.words[w]);
            }
            if i % 3 == 1 {
                let words: Vec<usize> =
                    (0..KEY_WORDS).filter(|&w| alt.mask.words[w] != 0).collect();
                if let Some(w) = rng.pick(&words) {
                    let bits: Vec<u32> = (0..64)
                        .filter(|b| alt.mask.words[w] >> b & 1 == 1)
                        .collect();
                    if let Some(b) = rng.pick(&bits) {
                        k.words[w] ^= 1 << b;
                    }
                }
            }
            k
        })
        .collect()
}

const FRAME: [u8; 64] = [0x5a; 64];

fn check_flow(s: &FlowSpec, p: &Program, j: &JitProgram, keys: &[FlowKey]) -> (usize, usize) {
    let mut hits = 0;
    for k in keys {
        let want = s.matches.iter().any(|m| m.matches(k));
        let ctx = FlowCtx::new(k, 14, 34, 64, 0);
        let out = run_both(p, j, &FRAME, &ctx);
        let v = out.verdict();
        assert_eq!(
            v,
            Some(if want {
                Verdict::Done
            } else {
                Verdict::NoMatch
            }),
            "key {k:?}\nmatches {:?}\n{}",
            s.matches,
            crate::ebpf::disasm::disassemble(&p.insns)
        );
        assert_eq!(out.calls.len(), usize::from(want));
        if want {
            assert_eq!(out.calls[0].args, [1, FLAG_FINAL]);
            hits += 1;
        }
        assert_eq!(out.key(), *k, "the match check changes nothing");
    }
    (hits, keys.len() - hits)
}

#[test]
fn every_field_alone_matches_exactly_like_match_matches() {
    let mut rng = Rng::new(11);
    let fields: [(usize, usize); 18] = [
        (OFF_IN_PORT, 4),
        (OFF_ETH_TYPE, 2),
        (OFF_VLAN_TCI, 2),
        (OFF_ETH_DST, 8),
        (OFF_ETH_SRC, 8),
        (OFF_NW_SRC, 4),
        (OFF_NW_DST, 4),
        (OFF_IPV6_SRC, 8),
        (OFF_IPV6_SRC + 8, 8),
        (OFF_IPV6_DST, 8),
        (OFF_IPV6_DST + 8, 8),
        (OFF_IP_PROTO, 1),
        (OFF_IP_TOS, 1),
        (OFF_ARP_OP, 2),
        (OFF_TP_SRC, 2),
        (OFF_TP_DST, 2),
        (OFF_TCP_FLAGS, 2),
        (OFF_IP_FRAG, 1),
    ];
    let mut total = (0, 0);
    for (off, size) in fields {
        for _ in 0..12 {
            let mut m = Match::any();
            let bits = size as u32 * 8;
            let mask = mask_of(&mut rng, bits);
            let v = rng.next_u64();
            match size {
                1 => m.require::<1>(off, v, mask),
                2 => m.require::<2>(off, v, mask),
                4 => m.require::<4>(off, v, mask),
                _ => m.require::<8>(off, v, mask),
            };
            let s = spec(vec![m], vec![Action::Output(vec![1])]);
            let (p, j) = build(&s, &CompileOptions::default());
            let keys = keys_for(&mut rng, &s.matches, 30);
            let (h, n) = check_flow(&s, &p, &j, &keys);
            total = (total.0 + h, total.1 + n);
        }
    }
    assert!(total.0 > 2000 && total.1 > 1000, "{total:?}");
}

#[test]
fn random_flows_match_exactly_like_match_matches() {
    let mut rng = Rng::new(12);
    let flows = std::env::var("COMPILE_MATCH_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let (mut hits, mut misses) = (0, 0);
    for _ in 0..flows {
        let s = spec(random_matches(&mut rng), vec![Action::Output(vec![1])]);
        let (p, j) = build(&s, &CompileOptions::default());
        let keys = keys_for(&mut rng, &s.matches, 24);
        let (h, n) = check_flow(&s, &p, &j, &keys);
        hits += h;
        misses += n;
    }
    // Both outcomes are well represented.
    assert!(hits > flows * 8 && misses > flows * 8, "{hits} {misses}");
}

#[test]
fn wildcards_and_empty_lists() {
    let any = spec(vec![Match::any()], vec![Action::Output(vec![1])]);
    let insns = compile_flow(&any, &CompileOptions::default()).expect("compiles");
    assert!(insns.len() <= 8, "{}", insns.len());
    let (p, j) = build(&any, &CompileOptions::default());
    let mut rng = Rng::new(3);
    let keys = keys_for(&mut rng, &any.matches, 10);
    assert_eq!(check_flow(&any, &p, &j, &keys), (10, 0));
    // One wildcard alternative makes the others irrelevant.
    let mut a = Match::any();
    a.require::<4>(OFF_IN_PORT, 5, u64::MAX);
    let s = spec(vec![a, Match::any()], vec![Action::Output(vec![1])]);
    let (p, j) = build(&s, &CompileOptions::default());
    assert_eq!(check_flow(&s, &p, &j, &keys), (10, 0));
    let err = compile_flow(&spec(vec![], vec![]), &CompileOptions::default());
    assert_eq!(err, Err(CompileError::NoMatches { flow: "t".into() }));
}

#[test]
fn typical_matches_compile_to_few_instructions() {
    let mut m = Match::any();
    m.require::<4>(OFF_IN_PORT, 1, u64::MAX);
    m.require::<2>(OFF_ETH_TYPE, 0x0800, u64::MAX);
    m.require::<1>(OFF_IP_PROTO, 6, u64::MAX);
    m.require::<4>(OFF_NW_SRC, 0x0a00_0001, u64::MAX);
    m.require::<4>(OFF_NW_DST, 0x0a00_0002, u64::MAX);
    m.require::<2>(OFF_TP_SRC, 40000, u64::MAX);
    m.require::<2>(OFF_TP_DST, 80, u64::MAX);
    let s = spec(vec![m], vec![Action::Output(vec![1])]);
    let insns = compile_flow(&s, &CompileOptions::default()).expect("compiles");
    // in_port+eth_type 4, addresses 3 (one 64-bit constant: lddw), proto 2,
    // ports 2; mov r6 + output 5 + done 2 + nomatch 2.
    assert!(insns.len() <= 26, "{} slots", insns.len());
    let (p, j) = build(&s, &CompileOptions::default());
    let mut k = FlowKey::default();
    k.set_in_port(1);
    k.set_eth_type(0x0800);
    k.set_ip_proto(6);
    k.set_nw_src(0x0a00_0001);
    k.set_nw_dst(0x0a00_0002);
    k.set_tp_src(40000);
    k.set_tp_dst(80);
    let mut miss = k;
    miss.set_tp_dst(81);
    assert_eq!(check_flow(&s, &p, &j, &[k, miss]), (1, 1));
}
