//! Random switches and frames for the differential tests: tables from
//! [`testgen::random_table`] with random action lists (every action kind),
//! custom filter and action programs, and frames built with
//! [`packet::build`](crate::packet::build) to realise random keys, then
//! sometimes mutated (truncated, a byte flipped, padded).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::classifier::testgen::{self, Rng};
use crate::ebpf::asm::assemble;
use crate::ebpf::insn::Insn;
use crate::flow::key::FlowKey;
use crate::flow::spec::{Action, FlowSpec, SetField};
use crate::packet::build::{Builder, Icmp, Ipv4, Ipv6, Tcp, Udp};

/// Port ids of the test switches; 9 is not a port.
pub const PORTS: [u32; 4] = [1, 2, 3, 4];

/// Custom filter 0: matches when tp_src + pkt_len + mark is odd. The
/// length is not in the flow key: frames of one key may be accepted or
/// declined.
pub const FILTER_ODD_SPORT: &str = "
    ldxh %r0, [%r1+68]
    ldxw %r2, [%r1+100]
    add %r0, %r2
    ldxw %r2, [%r1+108]
    add %r0, %r2
    and %r0, 1
    exit
";

/// Custom action 0: writes the mark, flips the low bit of the key's
/// tp_dst when the frame length is odd (a key change the key does not
/// determine), rewrites the first byte of the frame's destination MAC to
/// 0x0a (when there is one), and drops when the TTL in the key is odd.
pub const ACTION_TTL_PARITY: &str = "
    mov %r6, %r1
    stw [%r6+108], 7
    ldxw %r2, [%r6+100]
    and %r2, 1
    ldxh %r3, [%r6+70]
    xor %r3, %r2
    stxh [%r6+70], %r3
    ldxdw %r2, [%r6+80]
    ldxdw %r3, [%r6+88]
    mov %r4, %r2
    add %r4, 1
    jgt %r4, %r3, skip
    stb [%r2], 0x0a
skip:
    ldxb %r0, [%r6+74]
    and %r0, 1
    exit
";

/// The custom programs: (filters, actions); none unless `wanted`.
pub fn customs(wanted: bool) -> (Vec<Vec<Insn>>, Vec<Vec<Insn>>) {
    if !wanted {
        return (Vec::new(), Vec::new());
    }
    (
        vec![assemble(FILTER_ODD_SPORT).unwrap()],
        vec![assemble(ACTION_TTL_PARITY).unwrap()],
    )
}

fn mac(rng: &mut Rng) -> u64 {
    match rng.below(4) {
        0 => 0xffff_ffff_ffff,
        1 => 0x0100_5e00_0001,
        _ => 0x0200_0000_0000 | (1 + rng.below(4)),
    }
}

fn port(rng: &mut Rng) -> u32 {
    if rng.below(16) == 0 {
        9
    } else {
        1 + rng.below(4) as u32
    }
}

fn set_fields(rng: &mut Rng) -> Vec<SetField> {
    let n = 1 + rng.below(3);
    (0..n)
        .map(|_| match rng.below(13) {
            0 => SetField::EthSrc(mac(rng) & !0x0100_0000_0000),
            1 => SetField::EthDst(mac(rng)),
            2 => SetField::Ipv4Src(0x0a00_0000 | rng.below(1 << 10) as u32),
            3 => SetField::Ipv4Dst(0x0a00_0000 | rng.below(1 << 10) as u32),
            4 => SetField::Ipv6Src(0x2001_0db8 << 96 | u128::from(rng.next_u64())),
            5 => SetField::Ipv6Dst(0x2001_0db8 << 96 | u128::from(rng.below(8))),
            6 => SetField::IpDscp(rng.below(64) as u8),
            7 => SetField::TcpSrc(rng.below(65536) as u16),
            8 => SetField::TcpDst([80, 443, 22][rng.below(3) as usize]),
            9 => SetField::UdpSrc(rng.below(65536) as u16),
            10 => SetField::UdpDst([53, 1000][rng.below(2) as usize]),
            11 => SetField::VlanVid(rng.below(4096) as u16),
            _ => SetField::VlanPcp(rng.below(8) as u8),
        })
        .collect()
}

/// A random action list for a flow of table `table` in a switch whose
/// tables are `0..tables`; `custom` allows the custom action.
pub fn actions(rng: &mut Rng, table: u8, tables: u8, custom: bool) -> Vec<Action> {
    let n = rng.below(4);
    let mut out = Vec::new();
    for _ in 0..n {
        let a = match rng.below(12) {
            0 | 1 => {
                let k = 1 + rng.below(2);
                let mut ps: Vec<u32> = (0..k).map(|_| port(rng)).collect();
                ps.sort_unstable();
                ps.dedup();
                Action::Output(ps)
            }
            2 => Action::InPort,
            3 => Action::Flood,
            4 => Action::Normal,
            5 => Action::Mirror(port(rng)),
            6 | 7 => Action::SetField(set_fields(rng)),
            8 => Action::DecTtl,
            9 => match rng.below(2) {
                0 => Action::PushVlan {
                    vid: rng.below(4096) as u16,
                    pcp: rng.below(8) as u8,
                },
                _ => Action::PopVlan,
            },
            10 => Action::Meter(rng.below(2) as u32),
            _ if custom => Action::Ebpf(0),
            _ => Action::DecTtl,
        };
        out.push(a);
    }
    // A table beyond the last one exists in no generation: a miss.
    match rng.below(6) {
        0 | 1 if table < tables => {
            let to = table + 1 + rng.below(u64::from(tables - table)) as u8;
            out.push(Action::GotoTable(to));
        }
        2 => out.push(Action::Drop),
        _ => {}
    }
    out
}

/// A random switch: `sizes[t]` flows (at most) in table `t`. With
/// `custom`, some flows have the custom filter and some the custom action.
pub fn switch(rng: &mut Rng, sizes: &[usize], custom: bool) -> Vec<FlowSpec> {
    let tables = sizes.len() as u8;
    let mut flows = Vec::new();
    for (t, &n) in sizes.iter().enumerate() {
        let t = t as u8;
        for (i, g) in testgen::random_table(rng, n, 200).into_iter().enumerate() {
            let filter = (custom && rng.below(8) == 0).then_some(0);
            flows.push(FlowSpec {
                name: format!("t{t}f{i}"),
                table: t,
                priority: g.priority,
                matches: g.matches,
                filter,
                actions: actions(rng, t, tables, custom),
                idle_timeout: 0,
                hard_timeout: 0,
            });
        }
    }
    flows
}

fn v4(n: u64) -> Ipv4Addr {
    Ipv4Addr::from(n as u32)
}

fn mac_bytes(m: u64) -> [u8; 6] {
    let b = m.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// A frame with (most of) `k`'s fields and TTL `ttl`, received on
/// `k.in_port`; the payload length is random.
pub fn frame_for_key(rng: &mut Rng, k: &FlowKey, ttl: u8) -> Vec<u8> {
    let mut b = Builder::new(mac_bytes(k.eth_src()), mac_bytes(k.eth_dst()));
    if let Some(vid) = k.vlan_vid() {
        b = b.vlan(vid, (k.vlan_tci() >> 13) as u8);
    }
    let tos = k.ip_tos();
    let (sp, dp) = (k.tp_src(), k.tp_dst());
    let b = match k.eth_type() {
        0x0800 => {
            let ip = Ipv4::new(v4(u64::from(k.nw_src())), v4(u64::from(k.nw_dst())))
                .ttl(ttl)
                .tos(tos);
            let ip = if rng.below(16) == 0 {
                ip.fragment(rng.below(3) as u16, rng.below(2) == 0)
            } else {
                ip
            };
            let b = b.ipv4(ip);
            match k.ip_proto() {
                6 => b.tcp(Tcp::new(sp, dp).flags(rng.below(64) as u16)),
                17 => b.udp(Udp::new(sp, dp)),
                _ => b.icmp(Icmp::new(sp as u8, dp as u8)),
            }
        }
        0x86dd => {
            let ip = Ipv6::new(
                Ipv6Addr::from(0x2001_0db8u128 << 96 | u128::from(k.nw_src())),
                Ipv6Addr::from(0x2001_0db8u128 << 96 | u128::from(rng.below(8))),
            )
            .hop_limit(ttl)
            .traffic_class(tos);
            let b = b.ipv6(ip);
            match k.ip_proto() {
                6 => b.tcp(Tcp::new(sp, dp)),
                17 => b.udp(Udp::new(sp, dp)),
                _ => b.icmp(Icmp::new(128 + (sp as u8 & 1), 0)),
            }
        }
        0x0806 => b.arp(
            1 + rng.below(2) as u16,
            mac_bytes(k.eth_src()),
            v4(u64::from(k.nw_src())),
            [0; 6],
            v4(u64::from(k.nw_dst())),
        ),
        other => b.eth_type(other),
    };
    let b = b.payload(&vec![0x5a; rng.below(40) as usize]);
    let b = if rng.below(4) == 0 { b.pad_to(60) } else { b };
    b.build()
}

/// Mutates `f` now and then: truncation, a flipped byte, trailing bytes.
pub fn mutate(rng: &mut Rng, mut f: Vec<u8>) -> Vec<u8> {
    match rng.below(12) {
        0 if !f.is_empty() => {
            let n = rng.below(f.len() as u64) as usize;
            f.truncate(n);
        }
        1 if !f.is_empty() => {
            let i = rng.below(f.len() as u64) as usize;
            f[i] ^= 1 << rng.below(8);
        }
        2 => f.extend((0..rng.below(8)).map(|i| i as u8)),
        // An outer tag in front of whatever the frame had (a double-tagged
        // frame when it was tagged already).
        3 | 4 if f.len() >= 14 => {
            let tci = rng.below(1 << 16) as u16 & !0x1000;
            let [a, b] = tci.to_be_bytes();
            f.splice(12..12, [0x81, 0x00, a, b]);
        }
        _ => {}
    }
    f
}

/// About `count` frames for a switch of `flows`, with their ingress port:
/// keys that hit flows half the time, one to three frames per key that
/// differ in their payload only (one key, different lengths), mutated now
/// and then.
pub fn frames(rng: &mut Rng, flows: &[FlowSpec], count: usize) -> Vec<(u32, Vec<u8>)> {
    let gens: Vec<testgen::GenFlow> = flows
        .iter()
        .filter(|f| f.table == 0)
        .map(|f| testgen::GenFlow {
            priority: f.priority,
            matches: f.matches.clone(),
        })
        .collect();
    let mut out = Vec::with_capacity(count + 2);
    while out.len() < count {
        let mut k = testgen::random_key(rng, &gens);
        if !(1..=4).contains(&k.in_port()) {
            k.set_in_port(1 + rng.below(4) as u32);
        }
        let ttl = [0u8, 1, 2, 64, 255][rng.below(5) as usize];
        let variants = 1 + rng.below(3);
        let mutation = rng.next_u64();
        for _ in 0..variants {
            let f = frame_for_key(rng, &k, ttl);
            // The same mutation for every variant of the key.
            let mut m = Rng::new(mutation);
            let mut f = mutate(&mut m, f);
            // Double-tagged: the inner tag is not in the key, so variants
            // of one key may differ in it.
            if f.get(12..14) == Some(&[0x81, 0]) && f.get(16..18) == Some(&[0x81, 0]) {
                if let Some(vid) = f.get_mut(19) {
                    *vid = rng.below(4) as u8;
                }
            }
            out.push((k.in_port(), f));
        }
    }
    out
}
