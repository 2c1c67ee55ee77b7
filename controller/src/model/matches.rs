//! Lowering a flow's `match:` to masked matches over the flow key.
//!
//! A field that needs a protocol implies it, as OpenFlow prerequisites do
//! without making the user spell them out: `tcp_dst` implies `ip_proto: tcp`
//! and `eth_type: ipv4` or `ipv6`. When the IP family is left open, the flow
//! gets one alternative per family; a port range becomes one alternative per
//! aligned prefix (`range_to_prefixes`), and alternatives multiply across
//! fields. Fields whose prerequisites cannot hold together (`eth_type: arp`
//! with `tcp_dst`) are an error that names both fields and both places.

use datapath::flow::key::{self, VLAN_PRESENT};
use datapath::flow::spec::{range_to_prefixes, Match};

use super::error::ModelError;
use super::pos::PosIndex;
use super::switch::MatchSpec;
use super::value::{
    PortRange, VlanMatch, ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_IPV6, IP_PROTO_ICMP,
    IP_PROTO_ICMPV6, IP_PROTO_TCP, IP_PROTO_UDP,
};

const IP: &[u16] = &[ETH_TYPE_IPV4, ETH_TYPE_IPV6];
const V4: &[u16] = &[ETH_TYPE_IPV4];
const V6: &[u16] = &[ETH_TYPE_IPV6];
const ARP: &[u16] = &[ETH_TYPE_ARP];

/// What one present field requires of the packet.
struct Prereq {
    field: &'static str,
    /// The EtherTypes the field can appear under.
    eth: Option<Vec<u16>>,
    proto: Option<u8>,
    /// Whether the frame must be tagged (`Some(true)`) or untagged.
    tagged: Option<bool>,
}

fn eth_name(t: u16) -> String {
    match t {
        ETH_TYPE_IPV4 => "ipv4".into(),
        ETH_TYPE_IPV6 => "ipv6".into(),
        ETH_TYPE_ARP => "arp".into(),
        other => format!("{other:#06x}"),
    }
}

fn proto_name(p: u8) -> String {
    match p {
        IP_PROTO_TCP => "tcp".into(),
        IP_PROTO_UDP => "udp".into(),
        IP_PROTO_ICMP => "icmp".into(),
        IP_PROTO_ICMPV6 => "icmpv6".into(),
        other => other.to_string(),
    }
}

fn eth_set_name(s: &[u16]) -> String {
    let names: Vec<String> = s.iter().map(|t| eth_name(*t)).collect();
    format!("eth_type {}", names.join(" or "))
}

/// The prerequisites of the present fields, explicit ones first.
fn prereqs(m: &MatchSpec) -> Vec<Prereq> {
    let mut out = Vec::new();
    let mut add = |field, eth: Option<&[u16]>, proto, tagged, present: bool| {
        if present {
            out.push(Prereq {
                field,
                eth: eth.map(<[u16]>::to_vec),
                proto,
                tagged,
            });
        }
    };
    if let Some(t) = m.eth_type {
        add("eth_type", Some(&[t.0][..]), None, None, true);
    }
    if let Some(p) = m.ip_proto {
        add("ip_proto", Some(IP), Some(p.0), None, true);
    }
    if let Some(v) = m.vlan_vid {
        add("vlan_vid", None, None, Some(v != VlanMatch::None), true);
    }
    add("vlan_pcp", None, None, Some(true), m.vlan_pcp.is_some());
    add("ipv4_src", Some(V4), None, None, m.ipv4_src.is_some());
    add("ipv4_dst", Some(V4), None, None, m.ipv4_dst.is_some());
    add("arp_spa", Some(ARP), None, None, m.arp_spa.is_some());
    add("arp_tpa", Some(ARP), None, None, m.arp_tpa.is_some());
    add("arp_op", Some(ARP), None, None, m.arp_op.is_some());
    add("ipv6_src", Some(V6), None, None, m.ipv6_src.is_some());
    add("ipv6_dst", Some(V6), None, None, m.ipv6_dst.is_some());
    add("ip_dscp", Some(IP), None, None, m.ip_dscp.is_some());
    add("ip_ecn", Some(IP), None, None, m.ip_ecn.is_some());
    let tcp = Some(IP_PROTO_TCP);
    let udp = Some(IP_PROTO_UDP);
    add("tcp_src", Some(IP), tcp, None, m.tcp_src.is_some());
    add("tcp_dst", Some(IP), tcp, None, m.tcp_dst.is_some());
    add("tcp_flags", Some(IP), tcp, None, m.tcp_flags.is_some());
    add("udp_src", Some(IP), udp, None, m.udp_src.is_some());
    add("udp_dst", Some(IP), udp, None, m.udp_dst.is_some());
    let icmp = Some(IP_PROTO_ICMP);
    let icmp6 = Some(IP_PROTO_ICMPV6);
    add("icmp_type", Some(V4), icmp, None, m.icmp_type.is_some());
    add("icmp_code", Some(V4), icmp, None, m.icmp_code.is_some());
    add(
        "icmpv6_type",
        Some(V6),
        icmp6,
        None,
        m.icmpv6_type.is_some(),
    );
    add(
        "icmpv6_code",
        Some(V6),
        icmp6,
        None,
        m.icmpv6_code.is_some(),
    );
    out
}

/// The folded prerequisites of a whole match.
#[derive(Debug, Default)]
struct Needs {
    eth: Option<Vec<u16>>,
    proto: Option<u8>,
    tagged: Option<bool>,
}

/// Who set a requirement, and what that field needs.
#[derive(Clone, Copy)]
struct By<'f> {
    field: &'f str,
    need: &'f str,
}

/// Folds the prerequisites. On a contradiction between two fields, the
/// error goes to whichever of them comes later in the file and names the
/// other one. Returns `None` after an error.
fn fold(m: &MatchSpec, base: &str, pos: &PosIndex, errors: &mut Vec<ModelError>) -> Option<Needs> {
    let mut needs = Needs::default();
    let none = By {
        field: "",
        need: "",
    };
    let (mut eth_by, mut proto_by, mut tag_by) = (none, none, none);
    let at = |f: &str| pos.key(&format!("{base}.{f}"));
    let mut contradiction = |a: By, b: By| {
        let (later, earlier) = if at(a.field) >= at(b.field) {
            (a, b)
        } else {
            (b, a)
        };
        errors.push(ModelError::Contradiction {
            at: at(later.field),
            field: later.field.to_string(),
            need: later.need.to_string(),
            other: earlier.field.to_string(),
            other_at: at(earlier.field),
        });
    };
    let mut ok = true;
    let prereqs = prereqs(m);
    let descs: Vec<(String, String, &str)> = prereqs
        .iter()
        .map(|p| {
            let eth = p.eth.as_deref().map(eth_set_name).unwrap_or_default();
            let proto = p
                .proto
                .map(|x| format!("ip_proto {}", proto_name(x)))
                .unwrap_or_default();
            let tag = match p.tagged {
                Some(true) => "a VLAN tag",
                Some(false) => "an untagged frame",
                None => "",
            };
            (eth, proto, tag)
        })
        .collect();
    for (p, (eth_need, proto_need, tag_need)) in prereqs.iter().zip(&descs) {
        if let Some(want) = &p.eth {
            let me = By {
                field: p.field,
                need: eth_need,
            };
            match &needs.eth {
                None => {
                    needs.eth = Some(want.clone());
                    eth_by = me;
                }
                Some(have) => {
                    let both: Vec<u16> =
                        have.iter().copied().filter(|t| want.contains(t)).collect();
                    if both.is_empty() {
                        contradiction(me, eth_by);
                        ok = false;
                        continue;
                    }
                    if both.len() < have.len() {
                        eth_by = me;
                    }
                    needs.eth = Some(both);
                }
            }
        }
        if let Some(want) = p.proto {
            let me = By {
                field: p.field,
                need: proto_need,
            };
            match needs.proto {
                Some(have) if have != want => {
                    contradiction(me, proto_by);
                    ok = false;
                    continue;
                }
                Some(_) => {}
                None => {
                    needs.proto = Some(want);
                    proto_by = me;
                }
            }
        }
        if let Some(want) = p.tagged {
            let me = By {
                field: p.field,
                need: tag_need,
            };
            match needs.tagged {
                Some(have) if have != want => {
                    contradiction(me, tag_by);
                    ok = false;
                }
                Some(_) => {}
                None => {
                    needs.tagged = Some(want);
                    tag_by = me;
                }
            }
        }
    }
    ok.then_some(needs)
}

/// The match being built, with what is needed to report a failure.
struct Builder<'a> {
    m: Match,
    base: &'a str,
    pos: &'a PosIndex,
    errors: &'a mut Vec<ModelError>,
}

impl Builder<'_> {
    /// Adds one requirement. `require` only fails on contradicting bits,
    /// which `fold` has ruled out, but a failure is still reported.
    fn req<const N: usize>(&mut self, off: usize, value: u64, mask: u64, field: &str) {
        if !self.m.require::<N>(off, value, mask) {
            self.errors.push(ModelError::Invalid {
                at: self.pos.key(&format!("{}.{field}", self.base)),
                msg: format!("`{field}` contradicts another field of this match"),
            });
        }
    }
}

/// The prefixes of a port range, as (value, mask) pairs.
fn prefixes(r: &PortRange) -> Vec<(u64, u64)> {
    range_to_prefixes(u64::from(r.lo), u64::from(r.hi), 16)
}

/// Lowers `m` (found at path `base`) with `in_port` already resolved.
/// Returns the alternatives (never empty), or `None` after reporting errors.
pub(crate) fn lower_match(
    m: &MatchSpec,
    in_port: Option<u32>,
    base: &str,
    pos: &PosIndex,
    errors: &mut Vec<ModelError>,
) -> Option<Vec<Match>> {
    let needs = fold(m, base, pos, errors)?;
    let before = errors.len();
    let mut bld = Builder {
        m: Match::any(),
        base,
        pos,
        errors,
    };
    macro_rules! r {
        ($n:literal, $off:expr, $v:expr, $mask:expr, $field:literal) => {
            bld.req::<$n>($off, $v, $mask, $field)
        };
    }
    if let Some(p) = in_port {
        r!(4, key::OFF_IN_PORT, u64::from(p), 0xffff_ffff, "in_port");
    }
    if let Some(mac) = m.eth_src {
        r!(8, key::OFF_ETH_SRC, mac.addr, mac.mask, "eth_src");
    }
    if let Some(mac) = m.eth_dst {
        r!(8, key::OFF_ETH_DST, mac.addr, mac.mask, "eth_dst");
    }
    let present = u64::from(VLAN_PRESENT);
    match m.vlan_vid {
        Some(VlanMatch::Vid(v)) => {
            r!(
                2,
                key::OFF_VLAN_TCI,
                present | u64::from(v),
                present | 0x0fff,
                "vlan_vid"
            )
        }
        Some(VlanMatch::Any) => r!(2, key::OFF_VLAN_TCI, present, present, "vlan_vid"),
        Some(VlanMatch::None) => r!(2, key::OFF_VLAN_TCI, 0, present, "vlan_vid"),
        None => {}
    }
    if let Some(p) = m.vlan_pcp {
        r!(
            2,
            key::OFF_VLAN_TCI,
            present | (u64::from(p.0) << 13),
            present | 0xe000,
            "vlan_pcp"
        );
    }
    for (net, off, field) in [
        (m.ipv4_src, key::OFF_NW_SRC, "ipv4_src"),
        (m.ipv4_dst, key::OFF_NW_DST, "ipv4_dst"),
        (m.arp_spa, key::OFF_NW_SRC, "arp_spa"),
        (m.arp_tpa, key::OFF_NW_DST, "arp_tpa"),
    ] {
        if let Some(n) = net {
            bld.req::<4>(off, u64::from(n.addr), u64::from(n.mask), field);
        }
    }
    for (net, off, field) in [
        (m.ipv6_src, key::OFF_IPV6_SRC, "ipv6_src"),
        (m.ipv6_dst, key::OFF_IPV6_DST, "ipv6_dst"),
    ] {
        if let Some(n) = net {
            let (hi, lo) = ((n.addr >> 64) as u64, n.addr as u64);
            let (mhi, mlo) = ((n.mask >> 64) as u64, n.mask as u64);
            bld.req::<8>(off, hi, mhi, field);
            bld.req::<8>(off + 8, lo, mlo, field);
        }
    }
    if let Some(p) = needs.proto {
        r!(1, key::OFF_IP_PROTO, u64::from(p), 0xff, "ip_proto");
    }
    if let Some(d) = m.ip_dscp {
        r!(1, key::OFF_IP_TOS, u64::from(d.0) << 2, 0xfc, "ip_dscp");
    }
    if let Some(e) = m.ip_ecn {
        r!(1, key::OFF_IP_TOS, u64::from(e.0), 0x03, "ip_ecn");
    }
    if let Some(f) = m.tcp_flags {
        r!(
            2,
            key::OFF_TCP_FLAGS,
            u64::from(f.value),
            u64::from(f.mask),
            "tcp_flags"
        );
    }
    for (v, off, field) in [
        (m.icmp_type, key::OFF_TP_SRC, "icmp_type"),
        (m.icmp_code, key::OFF_TP_DST, "icmp_code"),
        (m.icmpv6_type, key::OFF_TP_SRC, "icmpv6_type"),
        (m.icmpv6_code, key::OFF_TP_DST, "icmpv6_code"),
    ] {
        if let Some(n) = v {
            bld.req::<2>(off, u64::from(n.0), 0xffff, field);
        }
    }
    if let Some(op) = m.arp_op {
        r!(2, key::OFF_ARP_OP, u64::from(op.0), 0xffff, "arp_op");
    }
    let b = bld.m;
    if errors.len() > before {
        return None;
    }

    // Alternatives: EtherType x source-port prefixes x destination-port prefixes.
    let eth_alts: Vec<Option<u16>> = match &needs.eth {
        None => vec![None],
        Some(ts) => ts.iter().map(|t| Some(*t)).collect(),
    };
    let src = m.tcp_src.or(m.udp_src).map(|r| prefixes(&r));
    let dst = m.tcp_dst.or(m.udp_dst).map(|r| prefixes(&r));
    let any = vec![(0u64, 0u64)];
    let mut out = Vec::new();
    for t in &eth_alts {
        for (sv, sm) in src.as_ref().unwrap_or(&any) {
            for (dv, dm) in dst.as_ref().unwrap_or(&any) {
                let mut a = b;
                let mut ok = true;
                if let Some(t) = t {
                    ok &= a.require::<2>(key::OFF_ETH_TYPE, u64::from(*t), 0xffff);
                }
                ok &= a.require::<2>(key::OFF_TP_SRC, *sv, *sm);
                ok &= a.require::<2>(key::OFF_TP_DST, *dv, *dm);
                if ok {
                    out.push(a);
                }
            }
        }
    }
    if out.is_empty() {
        errors.push(ModelError::Invalid {
            at: pos.value(base),
            msg: "this match can never match a packet".to_string(),
        });
        return None;
    }
    Some(out)
}
