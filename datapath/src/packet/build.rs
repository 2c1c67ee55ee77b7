//! Test frames with correct checksums, for tests, traces and benchmarks.
//!
//! One-liners for the common cases ([`tcp4`], [`udp6`], [`arp_request`], ...)
//! and a [`Builder`] for the rest: an optional 802.1Q tag, IPv4 options and
//! fragment fields, IPv6 extension headers, TCP options and any flags.
//!
//! ```
//! use datapath::packet::build::{Builder, Ipv4, Tcp};
//! use datapath::flow::key::tcp_flag;
//! let frame = Builder::new([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
//!     .vlan(10, 0)
//!     .ipv4(Ipv4::new([10, 0, 0, 1].into(), [10, 0, 0, 2].into()).ttl(3))
//!     .tcp(Tcp::new(40000, 80).flags(tcp_flag::SYN))
//!     .payload(b"hello")
//!     .build();
//! assert!(datapath::packet::csum::verify_l3_l4(&frame));
//! ```
//!
//! Headers are written through smoltcp's `wire` views and `Repr::emit`, and
//! checksums are filled by smoltcp, independently of [`super::csum`] (whose
//! verifier the tests run over these frames). A checksum covers the bytes of
//! this frame, also for a fragment. A length that overflows its field (an
//! IPv4 packet over 65,535 bytes) is saturated, giving a malformed frame.

use std::net::{Ipv4Addr, Ipv6Addr};

use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv4Message, Icmpv4Packet, Icmpv6Message, Icmpv6Packet, IpAddress, IpProtocol,
    Ipv4Packet, Ipv6Packet, Ipv6Repr, TcpPacket, TcpSeqNumber, UdpPacket, ETHERNET_HEADER_LEN,
    IPV4_HEADER_LEN, IPV6_HEADER_LEN, TCP_HEADER_LEN, UDP_HEADER_LEN,
};

use super::{proto, ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_IPV6, ETH_TYPE_VLAN};

/// A MAC address.
pub type Mac = [u8; 6];

/// The broadcast MAC address.
pub const BROADCAST: Mac = [0xff; 6];

/// A frame under construction. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Builder {
    src: Mac,
    dst: Mac,
    tci: Option<u16>,
    l3: L3,
    l4: L4,
    payload: Vec<u8>,
    pad_to: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum L3 {
    /// No L3 header: the payload follows the EtherType.
    Raw(u16),
    Arp {
        op: u16,
        sha: Mac,
        spa: Ipv4Addr,
        tha: Mac,
        tpa: Ipv4Addr,
    },
    Ipv4(Ipv4),
    Ipv6(Ipv6),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum L4 {
    None,
    Tcp(Tcp),
    Udp(Udp),
    Icmp(Icmp),
    /// An echo request or reply: ICMP or ICMPv6 types by the L3 header.
    Echo {
        request: bool,
        ident: u16,
        seq: u16,
    },
}

/// IPv4 header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// DSCP << 2 | ECN.
    pub tos: u8,
    pub ttl: u8,
    pub ident: u16,
    pub dont_frag: bool,
    pub more_frags: bool,
    /// Fragment offset in 8-byte units.
    pub frag_offset: u16,
    /// Option bytes, padded with zeros (end-of-options) to a multiple of 4.
    pub options: Vec<u8>,
    /// The protocol field when there is no L4 header (default 253,
    /// experimental); with one, its protocol.
    pub protocol: u8,
}

impl Ipv4 {
    /// TTL 64, DF clear, no options.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr) -> Self {
        Ipv4 {
            src,
            dst,
            tos: 0,
            ttl: 64,
            ident: 0,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
            options: Vec::new(),
            protocol: 253,
        }
    }
    pub fn tos(mut self, tos: u8) -> Self {
        self.tos = tos;
        self
    }
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }
    pub fn ident(mut self, ident: u16) -> Self {
        self.ident = ident;
        self
    }
    pub fn dont_frag(mut self) -> Self {
        self.dont_frag = true;
        self
    }
    /// Fragment offset (8-byte units) and the MF flag.
    pub fn fragment(mut self, offset: u16, more: bool) -> Self {
        self.frag_offset = offset;
        self.more_frags = more;
        self
    }
    pub fn options(mut self, options: &[u8]) -> Self {
        self.options = options.to_vec();
        self
    }
    pub fn protocol(mut self, protocol: u8) -> Self {
        self.protocol = protocol;
        self
    }
}

/// IPv6 header fields and extension headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub traffic_class: u8,
    pub flow_label: u32,
    pub hop_limit: u8,
    /// Extension headers, in order.
    pub ext: Vec<Ipv6Ext>,
    /// The last next-header field when there is no L4 header (default 59,
    /// no next header); with one, its protocol.
    pub next_header: u8,
}

/// An IPv6 extension header. The bodies are the bytes after the next-header
/// and length bytes, padded with zeros (Pad1 options) to a multiple of 8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ipv6Ext {
    HopByHop(Vec<u8>),
    Routing(Vec<u8>),
    /// Offset in 8-byte units, the M flag, the identification.
    Fragment {
        offset: u16,
        more: bool,
        ident: u32,
    },
    DestOpts(Vec<u8>),
}

impl Ipv6Ext {
    fn protocol(&self) -> u8 {
        match self {
            Ipv6Ext::HopByHop(_) => proto::HOPOPTS,
            Ipv6Ext::Routing(_) => proto::ROUTING,
            Ipv6Ext::Fragment { .. } => proto::FRAGMENT,
            Ipv6Ext::DestOpts(_) => proto::DSTOPTS,
        }
    }

    /// The header's bytes with `next` as its next header.
    fn bytes(&self, next: u8) -> Vec<u8> {
        match self {
            Ipv6Ext::Fragment {
                offset,
                more,
                ident,
            } => {
                let fo = (offset << 3) | u16::from(*more);
                let mut v = vec![next, 0];
                v.extend_from_slice(&fo.to_be_bytes());
                v.extend_from_slice(&ident.to_be_bytes());
                v
            }
            Ipv6Ext::HopByHop(body) | Ipv6Ext::Routing(body) | Ipv6Ext::DestOpts(body) => {
                let len = (2 + body.len()).div_ceil(8) * 8;
                let mut v = Vec::with_capacity(len);
                v.push(next);
                v.push(u8::try_from(len / 8 - 1).unwrap_or(u8::MAX));
                v.extend_from_slice(body);
                v.resize(len, 0);
                v
            }
        }
    }
}

impl Ipv6 {
    /// Hop limit 64, no extension headers.
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr) -> Self {
        Ipv6 {
            src,
            dst,
            traffic_class: 0,
            flow_label: 0,
            hop_limit: 64,
            ext: Vec::new(),
            next_header: proto::NONE,
        }
    }
    pub fn traffic_class(mut self, tc: u8) -> Self {
        self.traffic_class = tc;
        self
    }
    pub fn flow_label(mut self, label: u32) -> Self {
        self.flow_label = label;
        self
    }
    pub fn hop_limit(mut self, hop_limit: u8) -> Self {
        self.hop_limit = hop_limit;
        self
    }
    /// Appends an extension header.
    pub fn ext(mut self, ext: Ipv6Ext) -> Self {
        self.ext.push(ext);
        self
    }
    pub fn next_header(mut self, next: u8) -> Self {
        self.next_header = next;
        self
    }
}

/// TCP header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcp {
    pub src: u16,
    pub dst: u16,
    /// The low 12 bits of bytes 12-13 ([`crate::flow::key::tcp_flag`]).
    pub flags: u16,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    /// Option bytes, padded with zeros (end-of-options) to a multiple of 4.
    pub options: Vec<u8>,
}

impl Tcp {
    /// No flags, sequence 1, window 65535.
    pub fn new(src: u16, dst: u16) -> Self {
        Tcp {
            src,
            dst,
            flags: 0,
            seq: 1,
            ack: 0,
            window: 0xffff,
            options: Vec::new(),
        }
    }
    pub fn flags(mut self, flags: u16) -> Self {
        self.flags = flags;
        self
    }
    pub fn seq(mut self, seq: u32) -> Self {
        self.seq = seq;
        self
    }
    pub fn ack(mut self, ack: u32) -> Self {
        self.ack = ack;
        self
    }
    pub fn window(mut self, window: u16) -> Self {
        self.window = window;
        self
    }
    pub fn options(mut self, options: &[u8]) -> Self {
        self.options = options.to_vec();
        self
    }
}

/// UDP ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp {
    pub src: u16,
    pub dst: u16,
}

impl Udp {
    pub fn new(src: u16, dst: u16) -> Self {
        Udp { src, dst }
    }
}

/// An ICMP or ICMPv6 header (which one follows from the L3 header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmp {
    pub ty: u8,
    pub code: u8,
    /// Header bytes 4-7 (identifier and sequence for echo, MTU, pointer...).
    pub rest: [u8; 4],
}

impl Icmp {
    pub fn new(ty: u8, code: u8) -> Self {
        Icmp {
            ty,
            code,
            rest: [0; 4],
        }
    }
    pub fn rest(mut self, rest: [u8; 4]) -> Self {
        self.rest = rest;
        self
    }
}

impl Builder {
    /// An Ethernet frame from `src` to `dst` with no L3 header (EtherType
    /// 0x88b5, local experimental) until one is chosen.
    pub fn new(src: Mac, dst: Mac) -> Self {
        Builder {
            src,
            dst,
            tci: None,
            l3: L3::Raw(0x88b5),
            l4: L4::None,
            payload: Vec::new(),
            pad_to: 0,
        }
    }

    /// Adds an 802.1Q tag with this VLAN id (12 bits used) and priority (3).
    pub fn vlan(self, vid: u16, pcp: u8) -> Self {
        self.tci((u16::from(pcp & 7) << 13) | (vid & 0x0fff))
    }

    /// Adds an 802.1Q tag with this raw TCI.
    pub fn tci(mut self, tci: u16) -> Self {
        self.tci = Some(tci);
        self
    }

    /// No L3 header: the payload follows EtherType `eth_type`.
    pub fn eth_type(mut self, eth_type: u16) -> Self {
        self.l3 = L3::Raw(eth_type);
        self
    }

    /// An Ethernet/IPv4 ARP packet.
    pub fn arp(mut self, op: u16, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) -> Self {
        self.l3 = L3::Arp {
            op,
            sha,
            spa,
            tha,
            tpa,
        };
        self
    }

    /// "Who has `tpa`? Tell `spa` (`sha`)."
    pub fn arp_request(self, sha: Mac, spa: Ipv4Addr, tpa: Ipv4Addr) -> Self {
        self.arp(1, sha, spa, [0; 6], tpa)
    }

    /// "`spa` is at `sha`", to `tha`/`tpa`.
    pub fn arp_reply(self, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) -> Self {
        self.arp(2, sha, spa, tha, tpa)
    }

    pub fn ipv4(mut self, ip: Ipv4) -> Self {
        self.l3 = L3::Ipv4(ip);
        self
    }

    pub fn ipv6(mut self, ip: Ipv6) -> Self {
        self.l3 = L3::Ipv6(ip);
        self
    }

    pub fn tcp(mut self, tcp: Tcp) -> Self {
        self.l4 = L4::Tcp(tcp);
        self
    }

    pub fn udp(mut self, udp: Udp) -> Self {
        self.l4 = L4::Udp(udp);
        self
    }

    /// An ICMP header over IPv4, ICMPv6 over IPv6.
    pub fn icmp(mut self, icmp: Icmp) -> Self {
        self.l4 = L4::Icmp(icmp);
        self
    }

    /// An echo request or reply (ICMP types 8/0, ICMPv6 128/129).
    pub fn icmp_echo(mut self, request: bool, ident: u16, seq: u16) -> Self {
        self.l4 = L4::Echo {
            request,
            ident,
            seq,
        };
        self
    }

    /// The bytes after the innermost header.
    pub fn payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }

    /// Pads the frame with zeros to at least `len` bytes (link padding,
    /// outside any IP length: 60 makes a minimum Ethernet frame without FCS).
    pub fn pad_to(mut self, len: usize) -> Self {
        self.pad_to = len;
        self
    }

    /// The frame.
    pub fn build(&self) -> Vec<u8> {
        let mut f = vec![0u8; ETHERNET_HEADER_LEN];
        let eth_type = match &self.l3 {
            L3::Raw(t) => *t,
            L3::Arp { .. } => ETH_TYPE_ARP,
            L3::Ipv4(_) => ETH_TYPE_IPV4,
            L3::Ipv6(_) => ETH_TYPE_IPV6,
        };
        let outer = if self.tci.is_some() {
            ETH_TYPE_VLAN
        } else {
            eth_type
        };
        EthernetRepr {
            src_addr: EthernetAddress(self.src),
            dst_addr: EthernetAddress(self.dst),
            ethertype: EthernetProtocol::from(outer),
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
        if let Some(tci) = self.tci {
            f.extend_from_slice(&tci.to_be_bytes());
            f.extend_from_slice(&eth_type.to_be_bytes());
        }
        match &self.l3 {
            L3::Raw(_) => f.extend_from_slice(&self.payload),
            L3::Arp {
                op,
                sha,
                spa,
                tha,
                tpa,
            } => {
                let at = f.len();
                let repr = ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::from(*op),
                    source_hardware_addr: EthernetAddress(*sha),
                    source_protocol_addr: *spa,
                    target_hardware_addr: EthernetAddress(*tha),
                    target_protocol_addr: *tpa,
                };
                f.resize(at + repr.buffer_len(), 0);
                repr.emit(&mut ArpPacket::new_unchecked(&mut f[at..]));
                f.extend_from_slice(&self.payload);
            }
            L3::Ipv4(ip) => self.ipv4_packet(&mut f, ip),
            L3::Ipv6(ip) => self.ipv6_packet(&mut f, ip),
        }
        if f.len() < self.pad_to {
            f.resize(self.pad_to, 0);
        }
        f
    }

    /// The L4 protocol number, or `none` without an L4 header.
    fn l4_protocol(&self, v6: bool, none: u8) -> u8 {
        match self.l4 {
            L4::None => none,
            L4::Tcp(_) => proto::TCP,
            L4::Udp(_) => proto::UDP,
            L4::Icmp(_) | L4::Echo { .. } if v6 => proto::ICMPV6,
            L4::Icmp(_) | L4::Echo { .. } => proto::ICMP,
        }
    }

    /// The L4 header and payload, checksum field zero.
    fn segment(&self, v6: bool) -> Vec<u8> {
        let mut s = match &self.l4 {
            L4::None => Vec::new(),
            L4::Tcp(t) => {
                let opt_len = t.options.len().div_ceil(4) * 4;
                let hl = TCP_HEADER_LEN + opt_len;
                let mut s = vec![0u8; hl];
                let mut v = TcpPacket::new_unchecked(&mut s[..]);
                v.set_src_port(t.src);
                v.set_dst_port(t.dst);
                v.set_seq_number(TcpSeqNumber(t.seq as i32));
                v.set_ack_number(TcpSeqNumber(t.ack as i32));
                v.set_window_len(t.window);
                // Data offset and flags by hand: smoltcp has no setter for the
                // three reserved bits.
                let word = ((hl as u16 / 4) << 12) | (t.flags & 0x0fff);
                s[12..14].copy_from_slice(&word.to_be_bytes());
                s[TCP_HEADER_LEN..TCP_HEADER_LEN + t.options.len()].copy_from_slice(&t.options);
                s
            }
            L4::Udp(u) => {
                let mut s = vec![0u8; UDP_HEADER_LEN];
                let mut v = UdpPacket::new_unchecked(&mut s[..]);
                v.set_src_port(u.src);
                v.set_dst_port(u.dst);
                s
            }
            L4::Icmp(i) => {
                let mut s = vec![i.ty, i.code, 0, 0];
                s.extend_from_slice(&i.rest);
                s
            }
            L4::Echo {
                request,
                ident,
                seq,
            } => {
                let ty = match (v6, request) {
                    (false, true) => u8::from(Icmpv4Message::EchoRequest),
                    (false, false) => u8::from(Icmpv4Message::EchoReply),
                    (true, true) => u8::from(Icmpv6Message::EchoRequest),
                    (true, false) => u8::from(Icmpv6Message::EchoReply),
                };
                let mut s = vec![ty, 0, 0, 0];
                s.extend_from_slice(&ident.to_be_bytes());
                s.extend_from_slice(&seq.to_be_bytes());
                s
            }
        };
        s.extend_from_slice(&self.payload);
        if let L4::Udp(_) = self.l4 {
            let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
            UdpPacket::new_unchecked(&mut s[..]).set_len(len);
        }
        s
    }

    /// Fills the checksum of an L4 segment (smoltcp's computation).
    fn fill_l4_checksum(&self, s: &mut [u8], src: IpAddress, dst: IpAddress, v6: bool) {
        match self.l4 {
            L4::None => {}
            L4::Tcp(_) => TcpPacket::new_unchecked(s).fill_checksum(&src, &dst),
            L4::Udp(_) => UdpPacket::new_unchecked(s).fill_checksum(&src, &dst),
            L4::Icmp(_) | L4::Echo { .. } => match (src, dst) {
                (IpAddress::Ipv6(s6), IpAddress::Ipv6(d6)) if v6 => {
                    Icmpv6Packet::new_unchecked(s).fill_checksum(&s6, &d6)
                }
                _ => Icmpv4Packet::new_unchecked(s).fill_checksum(),
            },
        }
    }

    fn ipv4_packet(&self, f: &mut Vec<u8>, ip: &Ipv4) {
        let mut seg = self.segment(false);
        // Checksums of later fragments are over these bytes too.
        self.fill_l4_checksum(&mut seg, ip.src.into(), ip.dst.into(), false);
        let opt_len = ip.options.len().div_ceil(4) * 4;
        let hl = IPV4_HEADER_LEN + opt_len;
        let at = f.len();
        f.resize(at + hl, 0);
        f[at + IPV4_HEADER_LEN..at + IPV4_HEADER_LEN + ip.options.len()]
            .copy_from_slice(&ip.options);
        f.extend_from_slice(&seg);
        let total = u16::try_from(hl + seg.len()).unwrap_or(u16::MAX);
        let mut v = Ipv4Packet::new_unchecked(&mut f[at..]);
        v.set_version(4);
        v.set_header_len(hl as u8);
        v.set_dscp(ip.tos >> 2);
        v.set_ecn(ip.tos & 3);
        v.set_total_len(total);
        v.set_ident(ip.ident);
        v.clear_flags();
        v.set_dont_frag(ip.dont_frag);
        v.set_more_frags(ip.more_frags);
        v.set_frag_offset(ip.frag_offset << 3);
        v.set_hop_limit(ip.ttl);
        v.set_next_header(IpProtocol::from(self.l4_protocol(false, ip.protocol)));
        v.set_src_addr(ip.src);
        v.set_dst_addr(ip.dst);
        v.fill_checksum();
    }

    fn ipv6_packet(&self, f: &mut Vec<u8>, ip: &Ipv6) {
        let upper = self.l4_protocol(true, ip.next_header);
        let mut seg = self.segment(true);
        self.fill_l4_checksum(&mut seg, ip.src.into(), ip.dst.into(), true);
        let mut exts = Vec::new();
        for (i, e) in ip.ext.iter().enumerate() {
            let next = ip.ext.get(i + 1).map_or(upper, Ipv6Ext::protocol);
            exts.extend_from_slice(&e.bytes(next));
        }
        let first = ip.ext.first().map_or(upper, Ipv6Ext::protocol);
        let at = f.len();
        f.resize(at + IPV6_HEADER_LEN, 0);
        f.extend_from_slice(&exts);
        f.extend_from_slice(&seg);
        let mut v = Ipv6Packet::new_unchecked(&mut f[at..]);
        Ipv6Repr {
            src_addr: ip.src,
            dst_addr: ip.dst,
            next_header: IpProtocol::from(first),
            payload_len: exts.len() + seg.len(),
            hop_limit: ip.hop_limit,
        }
        .emit(&mut v);
        v.set_payload_len(u16::try_from(exts.len() + seg.len()).unwrap_or(u16::MAX));
        v.set_traffic_class(ip.traffic_class);
        v.set_flow_label(ip.flow_label);
    }
}

/// Ethernet + IPv4 + TCP with `flags` (see [`crate::flow::key::tcp_flag`]).
#[allow(clippy::too_many_arguments)]
pub fn tcp4(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u16,
    payload: &[u8],
) -> Vec<u8> {
    Builder::new(src_mac, dst_mac)
        .ipv4(Ipv4::new(src, dst))
        .tcp(Tcp::new(sport, dport).flags(flags))
        .payload(payload)
        .build()
}

/// Ethernet + IPv4 + UDP.
pub fn udp4(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    Builder::new(src_mac, dst_mac)
        .ipv4(Ipv4::new(src, dst))
        .udp(Udp::new(sport, dport))
        .payload(payload)
        .build()
}

/// Ethernet + IPv4 + ICMP echo request (or reply).
#[allow(clippy::too_many_arguments)]
pub fn icmp4_echo(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    request: bool,
    ident: u16,
    seq: u16,
    payload: &[u8],
) -> Vec<u8> {
    Builder::new(src_mac, dst_mac)
        .ipv4(Ipv4::new(src, dst))
        .icmp_echo(request, ident, seq)
        .payload(payload)
        .build()
}

/// Ethernet + IPv6 + TCP with `flags`.
#[allow(clippy::too_many_arguments)]
pub fn tcp6(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    sport: u16,
    dport: u16,
    flags: u16,
    payload: &[u8],
) -> Vec<u8> {
    Builder::new(src_mac, dst_mac)
        .ipv6(Ipv6::new(src, dst))
        .tcp(Tcp::new(sport, dport).flags(flags))
        .payload(payload)
        .build()
}

/// Ethernet + IPv6 + UDP.
pub fn udp6(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    Builder::new(src_mac, dst_mac)
        .ipv6(Ipv6::new(src, dst))
        .udp(Udp::new(sport, dport))
        .payload(payload)
        .build()
}

/// Ethernet + IPv6 + ICMPv6 echo request (or reply).
#[allow(clippy::too_many_arguments)]
pub fn icmp6_echo(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    request: bool,
    ident: u16,
    seq: u16,
    payload: &[u8],
) -> Vec<u8> {
    Builder::new(src_mac, dst_mac)
        .ipv6(Ipv6::new(src, dst))
        .icmp_echo(request, ident, seq)
        .payload(payload)
        .build()
}

/// A broadcast ARP request from `src_mac`/`spa` for `tpa`.
pub fn arp_request(src_mac: Mac, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    Builder::new(src_mac, BROADCAST)
        .arp_request(src_mac, spa, tpa)
        .build()
}

/// An ARP reply from `src_mac`/`spa` to `dst_mac`/`tpa`.
pub fn arp_reply(src_mac: Mac, spa: Ipv4Addr, dst_mac: Mac, tpa: Ipv4Addr) -> Vec<u8> {
    Builder::new(src_mac, dst_mac)
        .arp_reply(src_mac, spa, dst_mac, tpa)
        .build()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::flow::key::{tcp_flag, VLAN_PRESENT};
    use crate::packet::ipv4::tests::TCP_SYN;
    use crate::packet::ipv6::tests::{ICMP6_EXT_CHAIN, UDP6};
    use crate::packet::{csum, extract};

    const A: Mac = [2, 0, 0, 0, 0, 1];
    const B: Mac = [2, 0, 0, 0, 0, 2];

    /// Frames of every kind the builder makes, for checksum tests.
    pub(crate) fn samples() -> Vec<(&'static str, Vec<u8>)> {
        let v4 = |a, b| Ipv4::new(Ipv4Addr::new(10, 0, 0, a), Ipv4Addr::new(10, 0, 0, b));
        let v6 = || {
            Ipv6::new(
                "2001:db8::a".parse().unwrap(),
                "2001:db8::b".parse().unwrap(),
            )
        };
        vec![
            (
                "tcp4",
                tcp4(
                    A,
                    B,
                    [1, 2, 3, 4].into(),
                    [5, 6, 7, 8].into(),
                    1,
                    2,
                    tcp_flag::SYN,
                    b"",
                ),
            ),
            (
                "tcp4-odd",
                tcp4(
                    A,
                    B,
                    [1, 2, 3, 4].into(),
                    [5, 6, 7, 8].into(),
                    1,
                    2,
                    0xfff,
                    b"odd",
                ),
            ),
            (
                "udp4",
                udp4(
                    A,
                    B,
                    [10, 0, 0, 1].into(),
                    [224, 0, 0, 251].into(),
                    5353,
                    5353,
                    &[7; 33],
                ),
            ),
            (
                "udp4-empty",
                udp4(A, B, [0, 0, 0, 0].into(), [0, 0, 0, 0].into(), 0, 0, b""),
            ),
            (
                "icmp4",
                icmp4_echo(
                    A,
                    B,
                    [10, 0, 0, 1].into(),
                    [10, 0, 0, 2].into(),
                    true,
                    1,
                    1,
                    b"abcdefg",
                ),
            ),
            (
                "icmp4-raw",
                Builder::new(A, B)
                    .ipv4(v4(1, 2))
                    .icmp(Icmp::new(11, 0))
                    .payload(&[0x45; 28])
                    .build(),
            ),
            (
                "tcp6",
                tcp6(
                    A,
                    B,
                    "::1".parse().unwrap(),
                    "::2".parse().unwrap(),
                    80,
                    8080,
                    tcp_flag::ACK | tcp_flag::PSH,
                    b"x",
                ),
            ),
            (
                "udp6",
                udp6(
                    A,
                    B,
                    "fe80::1".parse().unwrap(),
                    "ff02::1".parse().unwrap(),
                    1,
                    2,
                    b"yz",
                ),
            ),
            (
                "icmp6",
                icmp6_echo(
                    A,
                    B,
                    "fe80::1".parse().unwrap(),
                    "fe80::2".parse().unwrap(),
                    false,
                    3,
                    4,
                    b"pong",
                ),
            ),
            (
                "tcp4-vlan-opts",
                Builder::new(A, B)
                    .vlan(100, 3)
                    .ipv4(v4(1, 2).tos(0xb8).options(&[1, 1, 1]))
                    .tcp(Tcp::new(3, 4).options(&[1, 1, 1, 1, 4, 2]))
                    .payload(b"p")
                    .build(),
            ),
            (
                "udp6-ext",
                Builder::new(A, B)
                    .ipv6(
                        v6().ext(Ipv6Ext::HopByHop(vec![]))
                            .ext(Ipv6Ext::Routing(vec![0, 0, 0, 0, 0, 0]))
                            .ext(Ipv6Ext::DestOpts(vec![1, 0])),
                    )
                    .udp(Udp::new(9, 10))
                    .payload(b"ext")
                    .build(),
            ),
            (
                "icmp6-ext",
                Builder::new(A, B)
                    .vlan(5, 0)
                    .ipv6(v6().ext(Ipv6Ext::DestOpts(vec![])))
                    .icmp(Icmp::new(135, 0))
                    .payload(&[0; 16])
                    .build(),
            ),
            (
                "arp",
                arp_request(A, [10, 0, 0, 1].into(), [10, 0, 0, 2].into()),
            ),
            (
                "raw",
                Builder::new(A, B)
                    .eth_type(0x88cc)
                    .payload(&[1, 2, 3])
                    .pad_to(60)
                    .build(),
            ),
            (
                "ip4-frag-later",
                Builder::new(A, B)
                    .ipv4(v4(1, 2).fragment(10, true).protocol(proto::TCP))
                    .payload(&[3; 40])
                    .build(),
            ),
            ("ip6-none", Builder::new(A, B).ipv6(v6()).build()),
        ]
    }

    #[test]
    fn tcp4_matches_the_fixture_byte_for_byte() {
        let f = Builder::new(A, B)
            .ipv4(
                Ipv4::new([192, 168, 0, 1].into(), [192, 168, 0, 2].into())
                    .tos((0x2e << 2) | 1)
                    .ident(0x1234),
            )
            .tcp(Tcp::new(0xc000, 80).flags(tcp_flag::SYN))
            .build();
        assert_eq!(f, TCP_SYN);
    }

    #[test]
    fn udp6_matches_the_fixture_byte_for_byte() {
        let f = Builder::new(A, [0x33, 0x33, 0, 1, 0, 2])
            .ipv6(
                Ipv6::new("fe80::1".parse().unwrap(), "ff02::1:2".parse().unwrap())
                    .traffic_class(0xb8)
                    .hop_limit(1),
            )
            .udp(Udp::new(546, 547))
            .payload(&[1, 0, 0, 0])
            .build();
        assert_eq!(f, UDP6);
    }

    #[test]
    fn extension_chain_matches_the_fixture_layout() {
        let mut routing = vec![0, 0, 0, 0, 0, 0];
        routing.extend_from_slice(&"2001:db8::3".parse::<Ipv6Addr>().unwrap().octets());
        let f = Builder::new(A, B)
            .ipv6(
                Ipv6::new(
                    "2001:db8::1".parse().unwrap(),
                    "2001:db8::2".parse().unwrap(),
                )
                .ext(Ipv6Ext::HopByHop(vec![1, 4, 0, 0, 0, 0]))
                .ext(Ipv6Ext::Routing(routing))
                .ext(Ipv6Ext::Fragment {
                    offset: 0,
                    more: true,
                    ident: 42,
                })
                .ext(Ipv6Ext::DestOpts([&[1, 12][..], &[0; 12]].concat())),
            )
            .icmp_echo(true, 0x1234, 1)
            .payload(b"abcd")
            .build();
        assert_eq!(f, ICMP6_EXT_CHAIN);
    }

    #[test]
    fn every_sample_parses_and_verifies() {
        for (name, f) in samples() {
            let p = extract(&f, 0).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(csum::verify(&f), Ok(()), "{name}");
            if name != "raw" {
                assert_eq!(p.end as usize, f.len(), "{name}");
            }
        }
    }

    #[test]
    fn fields_land_where_the_parser_finds_them() {
        let f = Builder::new(A, B)
            .vlan(0xabc, 6)
            .ipv4(
                Ipv4::new([1, 1, 1, 1].into(), [2, 2, 2, 2].into())
                    .ttl(7)
                    .tos(0x11)
                    .dont_frag(),
            )
            .tcp(
                Tcp::new(1000, 2000)
                    .flags(tcp_flag::FIN | tcp_flag::URG)
                    .seq(5)
                    .ack(6)
                    .window(7),
            )
            .build();
        let p = extract(&f, 0).unwrap();
        assert_eq!(p.key.vlan_tci(), (6 << 13) | VLAN_PRESENT | 0xabc);
        assert_eq!(p.key.ip_ttl(), 7);
        assert_eq!(p.key.ip_tos(), 0x11);
        assert_eq!(p.key.ip_frag(), 0);
        assert_eq!(p.key.tcp_flags(), tcp_flag::FIN | tcp_flag::URG);
        assert_eq!(&f[18 + 6..18 + 8], &[0x40, 0]);
        let tcp = TcpPacket::new_checked(&f[38..]).unwrap();
        assert_eq!(
            (tcp.seq_number(), tcp.ack_number(), tcp.window_len()),
            (TcpSeqNumber(5), TcpSeqNumber(6), 7)
        );

        let f = arp_reply(A, [10, 0, 0, 1].into(), B, [10, 0, 0, 2].into());
        let p = extract(&f, 0).unwrap();
        assert_eq!(
            (p.key.arp_op(), p.key.nw_src(), p.key.nw_dst()),
            (2, 0x0a00_0001, 0x0a00_0002)
        );
        assert_eq!(&f[..6], &B);
        assert_eq!(&f[32..38], &B);
        let f = arp_request(A, [10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        assert_eq!(&f[..6], &BROADCAST);
        assert_eq!(f.len(), 42);

        let f = Builder::new(A, B)
            .eth_type(0x1234)
            .payload(&[9])
            .pad_to(60)
            .build();
        assert_eq!(f.len(), 60);
        assert_eq!(&f[12..15], &[0x12, 0x34, 9]);
    }

    #[test]
    fn oversized_packets_get_saturated_lengths_not_panics() {
        let f = Builder::new(A, B)
            .ipv4(Ipv4::new([1, 1, 1, 1].into(), [2, 2, 2, 2].into()))
            .udp(Udp::new(1, 2))
            .payload(&vec![0; 70_000])
            .build();
        assert_eq!(&f[16..18], &[0xff, 0xff]);
        assert!(extract(&f, 0).is_err());
    }
}
