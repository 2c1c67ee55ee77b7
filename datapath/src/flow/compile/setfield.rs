//! `set_field`: inline stores into the packet with incremental checksum
//! updates, and the same new values stored into the ctx key (only when the
//! packet was actually rewritten, so the key keeps describing the packet).
//!
//! Blocks, each run only for the protocol the packet has (checked on the
//! key at run time unless the match pins it):
//! - Ethernet addresses: always.
//! - VLAN id / priority: the tag's TCI rewritten in place when the frame is
//!   tagged; nothing otherwise.
//! - IPv4 (addresses, DSCP): header checksum updated; the address change is
//!   kept in r9 for the L4 pseudo-header.
//! - IPv6 (addresses, DSCP): no header checksum; addresses go to r9.
//! - L4 (when the packet has an L4 header): TCP and UDP ports and checksum
//!   (pseudo-header delta from r9 plus the ports), ICMPv6 checksum for IPv6
//!   address changes. A UDP checksum of zero (none, over IPv4) stays zero;
//!   a computed zero is stored as 0xffff. ICMP over IPv4 has no
//!   pseudo-header and is left alone.
//!
//! A field given twice takes its last value.

use thiserror::Error;

use super::emit::{Emitter, Label};
use super::matchgen::Facts;
use super::pkt::{
    add_old16, add_old32, eth_possible, eth_type_guard, finish_csum, frame, l3, le_words,
    proto_possible, reduce, store_bytes, Guard, R_CTX, R_HDR, R_PSEUDO,
};
use crate::ebpf::insn::{AluOp, Cond};
use crate::flow::compile::ctx::CTX_L4_OFF;
use crate::flow::key::*;
use crate::flow::spec::SetField;
use crate::packet::{proto, ETH_TYPE_IPV4, ETH_TYPE_IPV6};

/// A `set_field` value outside its field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("set_field {field}: value {value:#x} does not fit the field")]
pub struct BadValue {
    pub field: &'static str,
    pub value: u128,
}

/// The new values of one `set_field` action.
#[derive(Debug, Default, Clone, Copy)]
struct New {
    eth_src: Option<u64>,
    eth_dst: Option<u64>,
    ipv4_src: Option<u32>,
    ipv4_dst: Option<u32>,
    ipv6_src: Option<u128>,
    ipv6_dst: Option<u128>,
    dscp: Option<u8>,
    tcp_src: Option<u16>,
    tcp_dst: Option<u16>,
    udp_src: Option<u16>,
    udp_dst: Option<u16>,
    vid: Option<u16>,
    pcp: Option<u8>,
}

fn limit(field: &'static str, v: u64, max: u64) -> Result<(), BadValue> {
    if v > max {
        Err(BadValue {
            field,
            value: u128::from(v),
        })
    } else {
        Ok(())
    }
}

impl New {
    fn of(fields: &[SetField]) -> Result<New, BadValue> {
        let mut n = New::default();
        for f in fields {
            match *f {
                SetField::EthSrc(v) => {
                    limit("eth_src", v, (1 << 48) - 1)?;
                    n.eth_src = Some(v);
                }
                SetField::EthDst(v) => {
                    limit("eth_dst", v, (1 << 48) - 1)?;
                    n.eth_dst = Some(v);
                }
                SetField::Ipv4Src(v) => n.ipv4_src = Some(v),
                SetField::Ipv4Dst(v) => n.ipv4_dst = Some(v),
                SetField::Ipv6Src(v) => n.ipv6_src = Some(v),
                SetField::Ipv6Dst(v) => n.ipv6_dst = Some(v),
                SetField::IpDscp(v) => {
                    limit("ip_dscp", u64::from(v), 63)?;
                    n.dscp = Some(v);
                }
                SetField::TcpSrc(v) => n.tcp_src = Some(v),
                SetField::TcpDst(v) => n.tcp_dst = Some(v),
                SetField::UdpSrc(v) => n.udp_src = Some(v),
                SetField::UdpDst(v) => n.udp_dst = Some(v),
                SetField::VlanVid(v) => {
                    limit("vlan_vid", u64::from(v), 0x0fff)?;
                    n.vid = Some(v);
                }
                SetField::VlanPcp(v) => {
                    limit("vlan_pcp", u64::from(v), 7)?;
                    n.pcp = Some(v);
                }
            }
        }
        Ok(n)
    }
}

/// Emits one `set_field` action.
pub fn emit(e: &mut Emitter, facts: &Facts, fields: &[SetField]) -> Result<(), BadValue> {
    let n = New::of(fields)?;
    ethernet(e, &n);
    vlan(e, facts, &n);
    ip(e, facts, &n);
    Ok(())
}

/// The 6 bytes of a MAC held as a 48-bit number.
fn mac_bytes(v: u64) -> [u8; 6] {
    let b = v.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

fn ethernet(e: &mut Emitter, n: &New) {
    if n.eth_src.is_none() && n.eth_dst.is_none() {
        return;
    }
    let end = e.label();
    frame(e, 12, end);
    for (v, at, key_off) in [(n.eth_dst, 0, OFF_ETH_DST), (n.eth_src, 6, OFF_ETH_SRC)] {
        if let Some(v) = v {
            store_bytes(e, R_HDR, at, &mac_bytes(v));
            store_bytes(e, R_CTX, key_off as i16, &v.to_le_bytes());
        }
    }
    e.bind(end);
}

fn vlan(e: &mut Emitter, facts: &Facts, n: &New) {
    if (n.vid.is_none() && n.pcp.is_none()) || facts.vlan_tagged == Some(false) {
        return;
    }
    // TCI bits to keep and to set, as the key holds them (host order).
    let (mut keep, mut set) = (0xffffu16, 0u16);
    if let Some(vid) = n.vid {
        keep &= !0x0fff;
        set |= vid;
    }
    if let Some(pcp) = n.pcp {
        keep &= !0xe000;
        set |= u16::from(pcp) << 13;
    }
    let end = e.label();
    if facts.vlan_tagged != Some(true) {
        e.ldx(2, 1, R_CTX, OFF_VLAN_TCI as i16);
        e.alu64_imm(AluOp::And, 1, i32::from(VLAN_PRESENT));
        e.jmp_imm(true, Cond::Eq, 1, 0, end);
    }
    frame(e, 16, end);
    // The tag's TCI (bytes 14-15, big-endian) as a little-endian load sees it.
    e.ldx(2, 1, R_HDR, 14);
    e.alu64_imm(AluOp::And, 1, i32::from(keep.swap_bytes()));
    e.alu64_imm(AluOp::Or, 1, i32::from(set.swap_bytes()));
    e.stx(2, R_HDR, 1, 14);
    // The key keeps VLAN_PRESENT where the tag has its DEI bit.
    e.ldx(2, 1, R_CTX, OFF_VLAN_TCI as i16);
    e.alu64_imm(AluOp::And, 1, i32::from(keep));
    e.alu64_imm(AluOp::Or, 1, i32::from(set));
    e.stx(2, R_CTX, 1, OFF_VLAN_TCI as i16);
    e.bind(end);
}

/// Which L4 updates the action needs.
struct L4Plan {
    tcp: bool,
    udp: bool,
    icmp6: bool,
    /// An L3 block leaves an address delta in r9.
    pseudo: bool,
}

fn ip(e: &mut Emitter, facts: &Facts, n: &New) {
    let v4 = eth_possible(facts, ETH_TYPE_IPV4);
    let v6 = eth_possible(facts, ETH_TYPE_IPV6);
    let addr4 = v4 && (n.ipv4_src.is_some() || n.ipv4_dst.is_some());
    let addr6 = v6 && (n.ipv6_src.is_some() || n.ipv6_dst.is_some());
    let ip_any = v4 || v6;
    let tcp_ports = n.tcp_src.is_some() || n.tcp_dst.is_some();
    let udp_ports = n.udp_src.is_some() || n.udp_dst.is_some();
    let plan = L4Plan {
        tcp: ip_any && proto_possible(facts, proto::TCP) && (tcp_ports || addr4 || addr6),
        udp: ip_any && proto_possible(facts, proto::UDP) && (udp_ports || addr4 || addr6),
        icmp6: proto_possible(facts, proto::ICMPV6) && addr6,
        pseudo: addr4 || addr6,
    };
    let any_l4 = plan.tcp || plan.udp || plan.icmp6;
    let pseudo = plan.pseudo && any_l4;
    if pseudo {
        e.mov_const(R_PSEUDO, 0);
    }
    if v4 && (addr4 || n.dscp.is_some()) {
        ipv4(e, facts, n, pseudo);
    }
    if v6 && (addr6 || n.dscp.is_some()) {
        ipv6(e, facts, n, pseudo);
    }
    if any_l4 {
        l4(e, facts, n, &plan);
    }
}

fn ipv4(e: &mut Emitter, facts: &Facts, n: &New, pseudo: bool) {
    let end = e.label();
    if let Guard::Never = eth_type_guard(e, facts, ETH_TYPE_IPV4, end) {
        return;
    }
    l3(e, 20, end);
    let addrs = [(n.ipv4_src, 12, OFF_NW_SRC), (n.ipv4_dst, 16, OFF_NW_DST)];
    // r2: the header checksum sum; r9 (when the L4 needs it) the addresses'.
    let acc = if pseudo { R_PSEUDO } else { 2 };
    let c: u64 = addrs
        .iter()
        .filter_map(|a| a.0)
        .map(|v| le_words(&v.to_be_bytes()))
        .sum();
    e.mov_const(acc, reduce(c));
    let mut bound = 0xffffu64;
    for (v, at, key_off) in addrs {
        if let Some(v) = v {
            add_old32(e, acc, 1, at);
            store_bytes(e, R_HDR, at, &v.to_be_bytes());
            store_bytes(e, R_CTX, key_off as i16, &v.to_le_bytes());
            bound += 0xffff_ffff;
        }
    }
    if pseudo {
        e.mov_reg(2, R_PSEUDO);
    }
    if let Some(dscp) = n.dscp {
        // Word 0 is version/IHL (low byte as loaded) and TOS (high byte).
        add_old16(e, 2, 1, 0);
        e.ldx(2, 1, R_HDR, 0);
        e.alu64_imm(AluOp::And, 1, 0x03ff);
        e.alu64_imm(AluOp::Or, 1, i32::from(dscp) << 10);
        e.stx(2, R_HDR, 1, 0);
        e.alu64_reg(AluOp::Add, 2, 1);
        bound += 2 * 0xffff;
        set_key_dscp(e, dscp);
    }
    finish_csum(e, 2, 1, 10, bound);
    e.bind(end);
}

fn set_key_dscp(e: &mut Emitter, dscp: u8) {
    e.ldx(1, 1, R_CTX, OFF_IP_TOS as i16);
    e.alu64_imm(AluOp::And, 1, 3);
    e.alu64_imm(AluOp::Or, 1, i32::from(dscp) << 2);
    e.stx(1, R_CTX, 1, OFF_IP_TOS as i16);
}

/// The key's bytes for an IPv6 address (two words, high half first).
fn ipv6_key_bytes(v: u128) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&((v >> 64) as u64).to_le_bytes());
    b[8..].copy_from_slice(&(v as u64).to_le_bytes());
    b
}

fn ipv6(e: &mut Emitter, facts: &Facts, n: &New, pseudo: bool) {
    let end = e.label();
    if let Guard::Never = eth_type_guard(e, facts, ETH_TYPE_IPV6, end) {
        return;
    }
    l3(e, 40, end);
    let addrs = [
        (n.ipv6_src, 8, OFF_IPV6_SRC),
        (n.ipv6_dst, 24, OFF_IPV6_DST),
    ];
    if pseudo {
        let c: u64 = addrs
            .iter()
            .filter_map(|a| a.0)
            .map(|v| le_words(&v.to_be_bytes()))
            .sum();
        e.mov_const(R_PSEUDO, reduce(c));
    }
    for (v, at, key_off) in addrs {
        if let Some(v) = v {
            if pseudo {
                for k in 0..4 {
                    add_old32(e, R_PSEUDO, 1, at + 4 * k);
                }
            }
            store_bytes(e, R_HDR, at, &v.to_be_bytes());
            store_bytes(e, R_CTX, key_off as i16, &ipv6_key_bytes(v));
        }
    }
    if let Some(dscp) = n.dscp {
        // Traffic class = DSCP << 2 | ECN spans byte 0 (low nibble: DSCP's
        // top 4 bits) and byte 1 (top 2 bits: DSCP's low 2 bits).
        e.ldx(2, 1, R_HDR, 0);
        e.alu64_imm(AluOp::And, 1, !0xc00f & 0xffff);
        e.alu64_imm(
            AluOp::Or,
            1,
            i32::from(dscp >> 2) | (i32::from(dscp & 3) << 14),
        );
        e.stx(2, R_HDR, 1, 0);
        set_key_dscp(e, dscp);
    }
    e.bind(end);
}

/// Max of r9 after the L3 blocks: the larger of the IPv4 and IPv6 sums.
fn pseudo_bound(n: &New) -> u64 {
    let v4 = u64::from(n.ipv4_src.is_some()) + u64::from(n.ipv4_dst.is_some());
    let v6 = 4 * (u64::from(n.ipv6_src.is_some()) + u64::from(n.ipv6_dst.is_some()));
    0xffff + v4.max(v6) * 0xffff_ffff
}

fn l4(e: &mut Emitter, facts: &Facts, n: &New, plan: &L4Plan) {
    let end = e.label();
    // r2 = l4_off; no L4 header (non-IP, later fragment) skips it all.
    e.ldx(2, 2, R_CTX, CTX_L4_OFF as i16);
    e.jmp_imm(true, Cond::Eq, 2, 0, end);
    let blocks = [
        (plan.tcp, proto::TCP, e.label()),
        (plan.udp, proto::UDP, e.label()),
        (plan.icmp6, proto::ICMPV6, e.label()),
    ];
    if facts.ip_proto.is_none() {
        e.ldx(1, 1, R_CTX, OFF_IP_PROTO as i16);
        for &(_, p, l) in blocks.iter().filter(|b| b.0) {
            e.jmp_imm(true, Cond::Eq, 1, i32::from(p), l);
        }
        e.ja(end);
    }
    let base = if plan.pseudo { pseudo_bound(n) } else { 0 };
    let mut left = blocks.iter().filter(|b| b.0).count();
    for &(_, p, l) in blocks.iter().filter(|b| b.0) {
        e.bind(l);
        match p {
            proto::TCP => {
                let tcp = Ports {
                    src: n.tcp_src,
                    dst: n.tcp_dst,
                    need: 20,
                    csum: 16,
                    udp: false,
                };
                ports(e, &tcp, plan.pseudo, base, end)
            }
            proto::UDP => {
                let udp = Ports {
                    src: n.udp_src,
                    dst: n.udp_dst,
                    need: 8,
                    csum: 6,
                    udp: true,
                };
                ports(e, &udp, plan.pseudo, base, end)
            }
            _ => {
                // ICMPv6 (over IPv6 only): only the pseudo-header changes.
                if let Guard::Never = eth_type_guard(e, facts, ETH_TYPE_IPV6, end) {
                    continue;
                }
                super::pkt::at(e, 2, 4, end);
                e.mov_reg(3, R_PSEUDO);
                finish_csum(e, 3, 1, 2, base);
            }
        }
        left -= 1;
        if left > 0 {
            e.ja(end);
        }
    }
    e.bind(end);
}

/// The TCP or UDP header as `set_field` sees it.
#[derive(Clone, Copy)]
struct Ports {
    src: Option<u16>,
    dst: Option<u16>,
    /// Header bytes that must be present.
    need: i32,
    /// Offset of the checksum.
    csum: i16,
    /// UDP checksum rules (zero = none; a computed zero is sent as 0xffff).
    udp: bool,
}

/// TCP or UDP: rewrite the ports (and the key's), then update the checksum
/// with the ports and, when `pseudo`, the pseudo-header delta in r9 (whose
/// largest value is `base`).
fn ports(e: &mut Emitter, h: &Ports, pseudo: bool, base: u64, end: Label) {
    let Ports {
        src,
        dst,
        need,
        csum,
        udp,
    } = *h;
    super::pkt::at(e, 2, need, end);
    let c: u64 = [src, dst]
        .iter()
        .flatten()
        .map(|v| le_words(&v.to_be_bytes()))
        .sum();
    if pseudo {
        e.mov_reg(3, R_PSEUDO);
        if c != 0 {
            e.alu64_imm(AluOp::Add, 3, reduce(c) as i32);
        }
    } else {
        e.mov_const(3, reduce(c));
    }
    let mut bound = base + 0xffff;
    for (v, at, key_off) in [(src, 0, OFF_TP_SRC), (dst, 2, OFF_TP_DST)] {
        if let Some(v) = v {
            add_old16(e, 3, 1, at);
            store_bytes(e, R_HDR, at, &v.to_be_bytes());
            e.st(2, R_CTX, key_off as i16, i32::from(v));
            bound += 0xffff;
        }
    }
    if !udp {
        finish_csum(e, 3, 1, csum, bound);
        return;
    }
    // UDP: a zero checksum (none) stays zero; a computed zero is 0xffff.
    let store = e.label();
    e.ldx(2, 1, R_HDR, csum);
    e.jmp_imm(true, Cond::Eq, 1, 0, end);
    e.alu64_imm(AluOp::Xor, 1, 0xffff);
    e.alu64_reg(AluOp::Add, 3, 1);
    super::pkt::fold(e, 3, 1, bound + 0xffff);
    e.alu64_imm(AluOp::Xor, 3, 0xffff);
    e.jmp_imm(true, Cond::Ne, 3, 0, store);
    e.mov_const(3, 0xffff);
    e.bind(store);
    e.stx(2, R_HDR, 3, csum);
}
