//! Tables and keys for tests, differential checks and benchmarks: random
//! tables over a small pool of realistic match shapes (values drawn from
//! small pools so that flows and keys collide often), and a large synthetic
//! table with a handful of masks for measuring.

use std::collections::HashMap;

use super::Entry;
use crate::flow::key::*;
use crate::flow::spec::{range_to_prefixes, Match};

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0; 0 gives 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    pub fn pick<T: Copy>(&mut self, from: &[T]) -> Option<T> {
        from.get(self.below(from.len() as u64) as usize).copied()
    }
}

/// A generated flow: the classifier's view of a [`crate::flow::FlowSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenFlow {
    pub priority: u16,
    pub matches: Vec<Match>,
}

impl GenFlow {
    pub fn overlaps(&self, other: &GenFlow) -> bool {
        self.matches
            .iter()
            .any(|a| other.matches.iter().any(|b| a.overlaps(b)))
    }
}

/// The entries of `flows`, flow `i` being `flows[i]`.
pub fn entries(flows: &[GenFlow]) -> impl Iterator<Item = Entry<'_>> {
    flows
        .iter()
        .enumerate()
        .map(|(i, f)| Entry::new(i as u32, f.priority, &f.matches))
}

/// The shapes of match the random tables draw from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// eth_type ipv4, ip_proto, both addresses and both ports exact.
    Exact5Tuple,
    /// eth_type ipv4, ipv4_dst /24.
    Dst24,
    /// eth_type ipv4, ipv4_dst /16.
    Dst16,
    InPortOnly,
    EthTypeOnly,
    /// in_port and eth_dst exact.
    InPortEthDst,
    /// eth_type ipv4, ip_proto tcp, a tcp_dst range as prefixes.
    PortRange,
    Wildcard,
}

pub const SHAPES: [Shape; 8] = [
    Shape::Exact5Tuple,
    Shape::Dst24,
    Shape::Dst16,
    Shape::InPortOnly,
    Shape::EthTypeOnly,
    Shape::InPortEthDst,
    Shape::PortRange,
    Shape::Wildcard,
];

const ETH_TYPES: [u16; 3] = [0x0800, 0x0806, 0x86dd];
const PROTOS: [u8; 3] = [6, 17, 1];
const PORTS: [u16; 8] = [22, 53, 80, 443, 1000, 1001, 1002, 8080];

fn pool_ip(rng: &mut Rng) -> u32 {
    0x0a00_0000 | ((rng.below(4) as u32) << 8) | rng.below(8) as u32
}

fn pool_port(rng: &mut Rng) -> u16 {
    if rng.below(8) == 0 {
        rng.below(65536) as u16
    } else {
        rng.pick(&PORTS).unwrap_or(80)
    }
}

fn pool_mac(rng: &mut Rng) -> u64 {
    0x0200_0000_0000 | (1 + rng.below(4))
}

/// A key with every matchable field drawn from the pools.
pub fn pool_key(rng: &mut Rng) -> FlowKey {
    let mut k = FlowKey::default();
    k.set_in_port(1 + rng.below(4) as u32);
    k.set_eth_type(rng.pick(&ETH_TYPES).unwrap_or(0x0800));
    if rng.below(4) == 0 {
        k.set_vlan_tci(VLAN_PRESENT | rng.below(4) as u16);
    }
    k.set_eth_dst(pool_mac(rng));
    k.set_eth_src(pool_mac(rng));
    k.set_nw_src(pool_ip(rng));
    k.set_nw_dst(pool_ip(rng));
    k.set_ip_proto(rng.pick(&PROTOS).unwrap_or(6));
    k.set_tp_src(pool_port(rng));
    k.set_tp_dst(pool_port(rng));
    k
}

/// The alternatives of a random flow of shape `shape`.
pub fn shape_matches(rng: &mut Rng, shape: Shape) -> Vec<Match> {
    let mut m = Match::any();
    let ipv4 = |m: &mut Match| m.require::<2>(OFF_ETH_TYPE, 0x0800, 0xffff);
    match shape {
        Shape::Exact5Tuple => {
            ipv4(&mut m);
            m.require::<1>(
                OFF_IP_PROTO,
                u64::from(rng.pick(&PROTOS[..2]).unwrap_or(6)),
                0xff,
            );
            m.require::<4>(OFF_NW_SRC, u64::from(pool_ip(rng)), 0xffff_ffff);
            m.require::<4>(OFF_NW_DST, u64::from(pool_ip(rng)), 0xffff_ffff);
            m.require::<2>(OFF_TP_SRC, u64::from(pool_port(rng)), 0xffff);
            m.require::<2>(OFF_TP_DST, u64::from(pool_port(rng)), 0xffff);
        }
        Shape::Dst24 => {
            ipv4(&mut m);
            m.require::<4>(OFF_NW_DST, u64::from(pool_ip(rng)), 0xffff_ff00);
        }
        Shape::Dst16 => {
            ipv4(&mut m);
            m.require::<4>(OFF_NW_DST, u64::from(pool_ip(rng)), 0xffff_0000);
        }
        Shape::InPortOnly => {
            m.require::<4>(OFF_IN_PORT, 1 + rng.below(4), 0xffff_ffff);
        }
        Shape::EthTypeOnly => {
            m.require::<2>(
                OFF_ETH_TYPE,
                u64::from(rng.pick(&ETH_TYPES).unwrap_or(0x0800)),
                0xffff,
            );
        }
        Shape::InPortEthDst => {
            m.require::<4>(OFF_IN_PORT, 1 + rng.below(4), 0xffff_ffff);
            m.require::<8>(OFF_ETH_DST, pool_mac(rng), 0xffff_ffff_ffff);
        }
        Shape::PortRange => {
            ipv4(&mut m);
            m.require::<1>(OFF_IP_PROTO, 6, 0xff);
            let lo = u64::from(pool_port(rng)).saturating_sub(rng.below(4));
            let hi = (lo + rng.below(40)).min(65535);
            return range_to_prefixes(lo, hi, 16)
                .into_iter()
                .map(|(v, mask)| {
                    let mut a = m;
                    a.require::<2>(OFF_TP_DST, v, mask);
                    a
                })
                .collect();
        }
        Shape::Wildcard => {}
    }
    vec![m]
}

/// Relative weights of the shapes in random flows (broad shapes are rare,
/// as in real tables, or they would crowd out everything of their priority).
const WEIGHTS: [(Shape, u64); 8] = [
    (Shape::Exact5Tuple, 30),
    (Shape::Dst24, 15),
    (Shape::Dst16, 6),
    (Shape::InPortOnly, 3),
    (Shape::EthTypeOnly, 3),
    (Shape::InPortEthDst, 20),
    (Shape::PortRange, 20),
    (Shape::Wildcard, 3),
];

/// A shape drawn with the weights above.
pub fn random_shape(rng: &mut Rng) -> Shape {
    let total: u64 = WEIGHTS.iter().map(|w| w.1).sum();
    let mut r = rng.below(total);
    for (shape, w) in WEIGHTS {
        if r < w {
            return shape;
        }
        r -= w;
    }
    Shape::Wildcard
}

/// A random flow: a random shape, and a priority below `levels`.
pub fn random_flow(rng: &mut Rng, levels: u16) -> GenFlow {
    let shape = random_shape(rng);
    GenFlow {
        priority: rng.below(u64::from(levels.max(1))) as u16,
        matches: shape_matches(rng, shape),
    }
}

/// The first flow of `flows` with `candidate`'s priority that overlaps it
/// (the quadratic reference check).
pub fn first_overlap(flows: &[GenFlow], candidate: &GenFlow) -> Option<usize> {
    flows
        .iter()
        .position(|f| f.priority == candidate.priority && f.overlaps(candidate))
}

/// A random valid table of up to `n` flows with priorities below `levels`:
/// candidates overlapping an earlier flow of their priority are dropped
/// (after `8 * n` candidates it stops).
pub fn random_table(rng: &mut Rng, n: usize, levels: u16) -> Vec<GenFlow> {
    let mut by_prio: HashMap<u16, Vec<GenFlow>> = HashMap::new();
    let mut out = Vec::with_capacity(n);
    for _ in 0..8 * n {
        if out.len() >= n {
            break;
        }
        let f = random_flow(rng, levels);
        let same = by_prio.entry(f.priority).or_default();
        if first_overlap(same, &f).is_none() {
            same.push(f.clone());
            out.push(f);
        }
    }
    out
}

/// A random key: half the time one built to match a random alternative of
/// a random flow (it may still select a higher-priority flow), else a pool
/// key.
pub fn random_key(rng: &mut Rng, flows: &[GenFlow]) -> FlowKey {
    let k = pool_key(rng);
    if flows.is_empty() || rng.below(2) == 0 {
        return k;
    }
    let f = rng.below(flows.len() as u64) as usize;
    let Some(m) = flows
        .get(f)
        .and_then(|f| f.matches.get(rng.below(f.matches.len() as u64) as usize))
    else {
        return k;
    };
    overlay(&k, m)
}

/// `k` with the bits of `m`'s mask set to `m`'s key: a key `m` matches.
pub fn overlay(k: &FlowKey, m: &Match) -> FlowKey {
    let mut out = *k;
    for ((o, mk), mm) in out.words.iter_mut().zip(&m.key.words).zip(&m.mask.words) {
        *o = (*o & !mm) | mk;
    }
    out
}

/// A synthetic table of `n` flows (n >= 10) with a handful of masks and
/// no overlaps by construction, shaped like a real one: ARP to the top,
/// per-port MAC flows, /24 routes, exact 5-tuples (the bulk), port-range
/// flows, and a catch-all. The mask mix is the same at every size.
pub fn bench_table(n: usize) -> Vec<GenFlow> {
    let n = n.max(10);
    let mut out = Vec::with_capacity(n);
    let mut arp = Match::any();
    arp.require::<2>(OFF_ETH_TYPE, 0x0806, 0xffff);
    out.push(GenFlow {
        priority: 1000,
        matches: vec![arp],
    });
    let body = n - 2;
    let n_mac = (body * 15 / 100).max(1);
    let n_route = (body * 20 / 100).max(1);
    let n_range = (body * 5 / 100).max(1);
    let n_exact = body - n_mac - n_route - n_range;
    for i in 0..n_mac as u64 {
        let mut m = Match::any();
        m.require::<4>(OFF_IN_PORT, 1 + (i & 0xff), 0xffff_ffff);
        m.require::<8>(OFF_ETH_DST, 0x0200_0000_0000 | i, 0xffff_ffff_ffff);
        out.push(GenFlow {
            priority: 300,
            matches: vec![m],
        });
    }
    for i in 0..n_route as u64 {
        let mut m = Match::any();
        m.require::<2>(OFF_ETH_TYPE, 0x0800, 0xffff);
        m.require::<4>(OFF_NW_DST, 0x0c00_0000 | (i << 8), 0xffff_ff00);
        out.push(GenFlow {
            priority: 200,
            matches: vec![m],
        });
    }
    for i in 0..n_exact as u64 {
        let mut m = Match::any();
        m.require::<2>(OFF_ETH_TYPE, 0x0800, 0xffff);
        m.require::<1>(OFF_IP_PROTO, 6 + 11 * (i & 1), 0xff);
        m.require::<4>(OFF_NW_SRC, 0x0a00_0000 | i, 0xffff_ffff);
        m.require::<4>(OFF_NW_DST, 0x0b00_0000 | ((i * 7) & 0xff_ffff), 0xffff_ffff);
        m.require::<2>(OFF_TP_SRC, 1024 + (i % 50_000), 0xffff);
        m.require::<2>(OFF_TP_DST, [80, 443, 53, 22][(i & 3) as usize], 0xffff);
        out.push(GenFlow {
            priority: 100,
            matches: vec![m],
        });
    }
    for i in 0..n_range as u64 {
        let mut base = Match::any();
        base.require::<2>(OFF_ETH_TYPE, 0x0800, 0xffff);
        base.require::<1>(OFF_IP_PROTO, 6, 0xff);
        base.require::<4>(OFF_NW_DST, 0x0d00_0000 | i, 0xffff_ffff);
        let matches = range_to_prefixes(8000, 8100, 16)
            .into_iter()
            .map(|(v, mask)| {
                let mut a = base;
                a.require::<2>(OFF_TP_DST, v, mask);
                a
            })
            .collect();
        out.push(GenFlow {
            priority: 50,
            matches,
        });
    }
    out.push(GenFlow {
        priority: 0,
        matches: vec![Match::any()],
    });
    out
}

/// `count` keys for [`bench_table`] flows, each hitting a flow chosen at
/// random (the unmasked fields filled from the pools).
pub fn bench_keys(rng: &mut Rng, flows: &[GenFlow], count: usize) -> Vec<FlowKey> {
    (0..count)
        .map(|_| {
            let mut k = pool_key(rng);
            k.set_eth_type(0x0800);
            let f = rng.below(flows.len() as u64) as usize;
            match flows.get(f).and_then(|f| f.matches.first()) {
                Some(m) => overlay(&k, m),
                None => k,
            }
        })
        .collect()
}
