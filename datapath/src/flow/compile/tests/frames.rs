//! Random frames as editable descriptions, and the reference model of
//! `set_field` and `dec_ttl` on them: the expected frame is rebuilt from
//! scratch by [`crate::packet::build`] (so its checksums are computed
//! independently of the compiler's incremental updates).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::classifier::testgen::Rng;
use crate::flow::spec::SetField;
use crate::packet::build::{Builder, Icmp, Ipv4, Ipv6, Ipv6Ext, Mac, Tcp, Udp};
use crate::packet::proto;

#[derive(Debug, Clone)]
pub enum L3 {
    Raw(u16),
    Arp(u16),
    V4(Ipv4),
    V6(Ipv6),
}

#[derive(Debug, Clone)]
pub enum L4 {
    None,
    Tcp(Tcp),
    Udp(Udp),
    Icmp(Icmp),
}

/// A frame as its header fields.
#[derive(Debug, Clone)]
pub struct Desc {
    pub src: Mac,
    pub dst: Mac,
    pub tci: Option<u16>,
    pub l3: L3,
    pub l4: L4,
    pub payload: Vec<u8>,
    /// IPv4 UDP sent without a checksum (field 0).
    pub udp_zero: bool,
}

fn mac(rng: &mut Rng) -> Mac {
    let b = rng.next_u64().to_be_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}

fn ttl(rng: &mut Rng) -> u8 {
    match rng.below(6) {
        0 => 0,
        1 => 1,
        2 => 2,
        3 => 255,
        _ => rng.below(256) as u8,
    }
}

fn bytes(rng: &mut Rng, max: u64) -> Vec<u8> {
    (0..rng.below(max + 1))
        .map(|_| rng.next_u64() as u8)
        .collect()
}

impl Desc {
    pub fn random(rng: &mut Rng) -> Desc {
        let tci = (rng.below(10) < 3).then(|| rng.next_u64() as u16);
        let mut later_fragment = false;
        let l3 = match rng.below(20) {
            0 | 1 => L3::Raw(0x88b5),
            2 | 3 => L3::Arp(1 + rng.below(2) as u16),
            4..=12 => {
                let mut ip = Ipv4::new(
                    Ipv4Addr::from(rng.next_u64() as u32),
                    Ipv4Addr::from(rng.next_u64() as u32),
                )
                .tos(rng.next_u64() as u8)
                .ttl(ttl(rng))
                .ident(rng.next_u64() as u16);
                if rng.below(5) == 0 {
                    let n = rng.below(11) as usize * 4;
                    let opts: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                    ip = ip.options(&opts);
                }
                match rng.below(8) {
                    0 => ip = ip.fragment(0, true),
                    1 => {
                        ip = ip
                            .fragment(1 + rng.below(100) as u16, rng.below(2) == 0)
                            .protocol(if rng.below(2) == 0 {
                                proto::TCP
                            } else {
                                proto::UDP
                            });
                        later_fragment = true;
                    }
                    _ => {}
                }
                L3::V4(ip)
            }
            _ => {
                let hi = u128::from(rng.next_u64()) << 64;
                let mut ip = Ipv6::new(
                    Ipv6Addr::from(hi | u128::from(rng.next_u64())),
                    Ipv6Addr::from((u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())),
                )
                .traffic_class(rng.next_u64() as u8)
                .flow_label(rng.next_u64() as u32 & 0xf_ffff)
                .hop_limit(ttl(rng));
                match rng.below(8) {
                    0 => ip = ip.ext(Ipv6Ext::HopByHop(bytes(rng, 12))),
                    1 => {
                        ip = ip
                            .ext(Ipv6Ext::DestOpts(bytes(rng, 6)))
                            .ext(Ipv6Ext::Routing(bytes(rng, 20)))
                    }
                    2 => {
                        ip = ip.ext(Ipv6Ext::Fragment {
                            offset: 0,
                            more: true,
                            ident: rng.next_u64() as u32,
                        })
                    }
                    3 => {
                        ip = ip
                            .ext(Ipv6Ext::Fragment {
                                offset: 1 + rng.below(100) as u16,
                                more: false,
                                ident: 7,
                            })
                            .next_header(proto::UDP);
                        later_fragment = true;
                    }
                    _ => {}
                }
                L3::V6(ip)
            }
        };
        let ip = matches!(l3, L3::V4(_) | L3::V6(_));
        let l4 = if !ip || later_fragment {
            L4::None
        } else {
            match rng.below(20) {
                0..=7 => L4::Tcp(
                    Tcp::new(rng.next_u64() as u16, rng.next_u64() as u16)
                        .flags(rng.next_u64() as u16 & 0x0fff)
                        .seq(rng.next_u64() as u32),
                ),
                8..=13 => L4::Udp(Udp::new(rng.next_u64() as u16, rng.next_u64() as u16)),
                14..=16 => L4::Icmp(
                    Icmp::new(rng.next_u64() as u8, rng.next_u64() as u8)
                        .rest((rng.next_u64() as u32).to_be_bytes()),
                ),
                _ => L4::None,
            }
        };
        let udp_zero = matches!((&l3, &l4), (L3::V4(_), L4::Udp(_))) && rng.below(3) == 0;
        Desc {
            src: mac(rng),
            dst: mac(rng),
            tci,
            l3,
            l4,
            payload: bytes(rng, 40),
            udp_zero,
        }
    }

    pub fn build(&self) -> Vec<u8> {
        let mut b = Builder::new(self.src, self.dst);
        if let Some(t) = self.tci {
            b = b.tci(t);
        }
        b = match &self.l3 {
            L3::Raw(t) => b.eth_type(*t),
            L3::Arp(op) => b.arp(
                *op,
                [2, 0, 0, 0, 0, 9],
                Ipv4Addr::new(10, 0, 0, 1),
                [0; 6],
                Ipv4Addr::new(10, 0, 0, 2),
            ),
            L3::V4(ip) => b.ipv4(ip.clone()),
            L3::V6(ip) => b.ipv6(ip.clone()),
        };
        b = match &self.l4 {
            L4::None => b,
            L4::Tcp(t) => b.tcp(t.clone()),
            L4::Udp(u) => b.udp(*u),
            L4::Icmp(i) => b.icmp(*i),
        };
        let mut f = b.payload(&self.payload).build();
        if self.udp_zero {
            let p = crate::packet::extract(&f, 0).expect("parses");
            let at = usize::from(p.l4) + 6;
            f[at..at + 2].fill(0);
        }
        f
    }

    /// The model of one `set_field` field.
    pub fn set(&mut self, f: &SetField) {
        let mac_of = |v: u64| {
            let b = v.to_be_bytes();
            [b[2], b[3], b[4], b[5], b[6], b[7]]
        };
        match (*f, &mut self.l3, &mut self.l4) {
            (SetField::EthSrc(v), _, _) => self.src = mac_of(v),
            (SetField::EthDst(v), _, _) => self.dst = mac_of(v),
            (SetField::VlanVid(v), _, _) => {
                if let Some(t) = &mut self.tci {
                    *t = (*t & !0x0fff) | v;
                }
            }
            (SetField::VlanPcp(p), _, _) => {
                if let Some(t) = &mut self.tci {
                    *t = (*t & 0x1fff) | u16::from(p) << 13;
                }
            }
            (SetField::Ipv4Src(v), L3::V4(ip), _) => ip.src = v.into(),
            (SetField::Ipv4Dst(v), L3::V4(ip), _) => ip.dst = v.into(),
            (SetField::Ipv6Src(v), L3::V6(ip), _) => ip.src = v.into(),
            (SetField::Ipv6Dst(v), L3::V6(ip), _) => ip.dst = v.into(),
            (SetField::IpDscp(d), L3::V4(ip), _) => ip.tos = (ip.tos & 3) | d << 2,
            (SetField::IpDscp(d), L3::V6(ip), _) => {
                ip.traffic_class = (ip.traffic_class & 3) | d << 2
            }
            (SetField::TcpSrc(v), _, L4::Tcp(t)) => t.src = v,
            (SetField::TcpDst(v), _, L4::Tcp(t)) => t.dst = v,
            (SetField::UdpSrc(v), _, L4::Udp(u)) => u.src = v,
            (SetField::UdpDst(v), _, L4::Udp(u)) => u.dst = v,
            _ => {}
        }
    }

    /// The model of `dec_ttl`: `false` when the packet is dropped.
    pub fn dec_ttl(&mut self) -> bool {
        let t = match &mut self.l3 {
            L3::V4(ip) => &mut ip.ttl,
            L3::V6(ip) => &mut ip.hop_limit,
            _ => return true,
        };
        if *t <= 1 {
            return false;
        }
        *t -= 1;
        true
    }
}

/// A random field with a random value.
pub fn random_field(rng: &mut Rng) -> SetField {
    let r = rng.next_u64();
    match rng.below(13) {
        0 => SetField::EthSrc(r & 0xffff_ffff_ffff),
        1 => SetField::EthDst(r & 0xffff_ffff_ffff),
        2 => SetField::Ipv4Src(r as u32),
        3 => SetField::Ipv4Dst(r as u32),
        4 => SetField::Ipv6Src(u128::from(r) << 64 | u128::from(rng.next_u64())),
        5 => SetField::Ipv6Dst(u128::from(rng.next_u64()) << 64 | u128::from(r)),
        6 => SetField::IpDscp(r as u8 & 63),
        7 => SetField::TcpSrc(r as u16),
        8 => SetField::TcpDst(r as u16),
        9 => SetField::UdpSrc(r as u16),
        10 => SetField::UdpDst(r as u16),
        11 => SetField::VlanVid(r as u16 & 0x0fff),
        _ => SetField::VlanPcp(r as u8 & 7),
    }
}
