//! The extraction driver: the Ethernet header and the 802.1Q tag, then the
//! L3 parser for the EtherType found ([`super::arp`], [`super::ipv4`],
//! [`super::ipv6`]), which in turn calls the L4 parser ([`super::l4`]).

use smoltcp::wire::{EthernetFrame, ETHERNET_HEADER_LEN};

use super::error::{ErrorKind, ParseError};
use super::{arp, ipv4, ipv6};
use super::{ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_IPV6, ETH_TYPE_VLAN, MAX_FRAME_LEN};
use crate::flow::key::{
    FlowKey, OFF_ARP_OP, OFF_ETH_DST, OFF_ETH_SRC, OFF_ETH_TYPE, OFF_IN_PORT, OFF_IPV6_DST,
    OFF_IPV6_SRC, OFF_IP_FRAG, OFF_IP_PROTO, OFF_IP_TOS, OFF_IP_TTL, OFF_NW_DST, OFF_NW_SRC,
    OFF_TCP_FLAGS, OFF_TP_DST, OFF_TP_SRC, OFF_VLAN_TCI, VLAN_PRESENT,
};

/// Bytes of an 802.1Q tag (TCI and the inner EtherType).
pub(super) const VLAN_TAG_LEN: usize = 4;

/// What [`extract`] found in a frame: the flow key and where the headers are.
///
/// Offsets are from the start of the frame. They fit in 16 bits: the L4
/// header is at most 18 + 40 + 8 × 2,048 bytes in (IPv6 with the maximum
/// number of the largest extension headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Parsed {
    /// The flow key (`in_port` included).
    pub key: FlowKey,
    /// Offset of the L3 header: 14, or 18 behind an 802.1Q tag.
    pub l3: u16,
    /// Offset of an IP packet's upper-layer header (after IPv4 options and
    /// IPv6 extension headers), whatever its protocol; 0 when there is none:
    /// non-IP frames, non-first fragments, IPv6 "no next header".
    pub l4: u16,
    /// End of the L3 packet: `l3` + IPv4 total length, or `l3` + 40 + IPv6
    /// payload length; the frame length for other frames. Bytes after it are
    /// link padding.
    pub end: u32,
}

impl Parsed {
    /// Bytes from the upper-layer header to the end of the IP packet; 0 when
    /// there is no upper-layer header.
    #[inline]
    pub fn l4_len(&self) -> usize {
        if self.l4 == 0 {
            0
        } else {
            (self.end as usize).saturating_sub(usize::from(self.l4))
        }
    }
}

/// Parses `frame`, received on `in_port`, into a flow key and header offsets
/// in one pass. See the [module docs](super) for the fields and for what is
/// malformed. Never panics.
///
/// Untagged TCP or UDP over IPv4 without options goes through the
/// straight-line parser of `fast.rs`; every other frame (and any
/// the fast parser has doubts about) through [`extract_general`].
#[inline]
pub fn extract(frame: &[u8], in_port: u32) -> Result<Parsed, ParseError> {
    match super::fast::parse(frame, in_port) {
        Some(p) => Ok(p),
        None => extract_general(frame, in_port),
    }
}

/// [`extract`] into `out` (unchanged on error), for callers that keep
/// parsed keys in place: the fast path's key goes straight from registers
/// into `out`.
#[inline]
pub fn extract_into(frame: &[u8], in_port: u32, out: &mut Parsed) -> Result<(), ParseError> {
    *out = match super::fast::parse(frame, in_port) {
        Some(p) => p,
        None => extract_general(frame, in_port)?,
    };
    Ok(())
}

/// The general parser: every frame shape, and the error of a malformed
/// frame. [`extract`] gives the same result for every frame; this is the
/// reference its fast path is tested (and fuzzed) against.
#[inline]
pub fn extract_general(frame: &[u8], in_port: u32) -> Result<Parsed, ParseError> {
    let len = frame.len();
    if len > MAX_FRAME_LEN {
        return Err(ParseError::TooLong { len });
    }
    let eth = EthernetFrame::new_checked(frame)
        .map_err(|_| ParseError::truncated(ErrorKind::Ethernet, 0, len, ETHERNET_HEADER_LEN))?;
    // The addresses straight from the bytes: smoltcp's `Address::from_bytes`
    // is an out-of-line call.
    let (dst, src) = match frame.first_chunk::<ETHERNET_HEADER_LEN>() {
        Some(h) => (
            mac([h[0], h[1], h[2], h[3], h[4], h[5]]),
            mac([h[6], h[7], h[8], h[9], h[10], h[11]]),
        ),
        None => (0, 0),
    };
    let mut eth_type = u16::from(eth.ethertype());
    let mut l3 = ETHERNET_HEADER_LEN;
    let mut tci = 0;
    if eth_type == ETH_TYPE_VLAN {
        let tag = frame
            .get(l3..)
            .and_then(|rest| rest.first_chunk::<VLAN_TAG_LEN>())
            .ok_or_else(|| ParseError::truncated(ErrorKind::Vlan, l3, len - l3, VLAN_TAG_LEN))?;
        // The DEI bit's place holds VLAN_PRESENT.
        tci = u16::from_be_bytes([tag[0], tag[1]]) | VLAN_PRESENT;
        eth_type = u16::from_be_bytes([tag[2], tag[3]]);
        l3 += VLAN_TAG_LEN;
    }
    let rest = frame.get(l3..).unwrap_or_default();
    let mut f = Fields::default();
    match eth_type {
        ETH_TYPE_IPV4 => ipv4::parse(&mut f, rest, l3)?,
        ETH_TYPE_IPV6 => ipv6::parse(&mut f, rest, l3)?,
        ETH_TYPE_ARP => {
            arp::parse(&mut f, rest, l3)?;
            f.end = len as u32;
        }
        // len <= MAX_FRAME_LEN < 2^32.
        _ => f.end = len as u32,
    }
    let w0 = put(0, OFF_IN_PORT, 4, u64::from(in_port));
    let w0 = put(w0, OFF_ETH_TYPE, 2, u64::from(eth_type));
    let w0 = put(w0, OFF_VLAN_TCI, 2, u64::from(tci));
    Ok(Parsed {
        key: FlowKey {
            words: [
                w0,
                dst,
                src,
                f.nw,
                (f.ipv6_src >> 64) as u64,
                f.ipv6_src as u64,
                (f.ipv6_dst >> 64) as u64,
                f.ipv6_dst as u64,
                f.w8,
                f.w9,
            ],
        },
        // l3 <= 18.
        l3: l3 as u16,
        l4: f.l4,
        end: f.end,
    })
}

/// A MAC address as the 48-bit number whose big-endian bytes it is.
#[inline(always)]
fn mac(b: [u8; 6]) -> u64 {
    u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
}

// The hot path builds the key's words in registers rather than through the
// `FlowKey` setters; these pin the word each field lives in.
const _: () = {
    assert!(OFF_IN_PORT / 8 == 0 && OFF_ETH_TYPE / 8 == 0 && OFF_VLAN_TCI / 8 == 0);
    assert!(OFF_ETH_DST == 8 && OFF_ETH_SRC == 16);
    assert!(OFF_NW_SRC / 8 == 3 && OFF_NW_DST / 8 == 3);
    assert!(OFF_IPV6_SRC == 32 && OFF_IPV6_DST == 48);
    assert!(OFF_IP_PROTO / 8 == 8 && OFF_IP_TOS / 8 == 8 && OFF_ARP_OP / 8 == 8);
    assert!(OFF_TP_SRC / 8 == 8 && OFF_TP_DST / 8 == 8);
    assert!(OFF_TCP_FLAGS / 8 == 9 && OFF_IP_TTL / 8 == 9 && OFF_IP_FRAG / 8 == 9);
};

/// `word` with the `size`-byte field at key offset `off` set to `v`.
#[inline(always)]
const fn put(word: u64, off: usize, size: usize, v: u64) -> u64 {
    let shift = (off % 8) * 8;
    let mask = if size == 8 {
        u64::MAX
    } else {
        ((1u64 << (size * 8)) - 1) << shift
    };
    (word & !mask) | ((v << shift) & mask)
}

/// What the L3 and L4 parsers find: key words 3 to 9 and the offsets.
/// A local of [`extract`] that the (always inlined) parsers fill, so that it
/// lives in registers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Fields {
    /// Word 3: `nw_src`, `nw_dst`.
    pub nw: u64,
    /// Words 4-5.
    pub ipv6_src: u128,
    /// Words 6-7.
    pub ipv6_dst: u128,
    /// Word 8: `ip_proto`, `ip_tos`, `arp_op`, `tp_src`, `tp_dst`.
    pub w8: u64,
    /// Word 9: `tcp_flags`, `ip_ttl`, `ip_frag`.
    pub w9: u64,
    /// [`Parsed::l4`].
    pub l4: u16,
    /// [`Parsed::end`].
    pub end: u32,
}

impl Fields {
    #[inline(always)]
    pub fn set_nw(&mut self, src: u32, dst: u32) {
        self.nw = put(
            put(self.nw, OFF_NW_SRC, 4, u64::from(src)),
            OFF_NW_DST,
            4,
            u64::from(dst),
        );
    }
    #[inline(always)]
    pub fn set_ip_proto(&mut self, v: u8) {
        self.w8 = put(self.w8, OFF_IP_PROTO, 1, u64::from(v));
    }
    #[inline(always)]
    pub fn set_ip_tos(&mut self, v: u8) {
        self.w8 = put(self.w8, OFF_IP_TOS, 1, u64::from(v));
    }
    #[inline(always)]
    pub fn set_arp_op(&mut self, v: u16) {
        self.w8 = put(self.w8, OFF_ARP_OP, 2, u64::from(v));
    }
    #[inline(always)]
    pub fn set_tp(&mut self, src: u16, dst: u16) {
        self.w8 = put(
            put(self.w8, OFF_TP_SRC, 2, u64::from(src)),
            OFF_TP_DST,
            2,
            u64::from(dst),
        );
    }
    #[inline(always)]
    pub fn set_tcp_flags(&mut self, v: u16) {
        self.w9 = put(self.w9, OFF_TCP_FLAGS, 2, u64::from(v));
    }
    #[inline(always)]
    pub fn set_ip_ttl(&mut self, v: u8) {
        self.w9 = put(self.w9, OFF_IP_TTL, 1, u64::from(v));
    }
    #[inline(always)]
    pub fn set_ip_frag(&mut self, v: u8) {
        self.w9 = put(self.w9, OFF_IP_FRAG, 1, u64::from(v));
    }

    /// The key these fields make on their own (for the parsers' tests).
    #[cfg(test)]
    pub fn key(&self) -> FlowKey {
        let mut k = FlowKey {
            words: [0; crate::flow::key::KEY_WORDS],
        };
        k.words[3] = self.nw;
        k.set_ipv6_src(self.ipv6_src);
        k.set_ipv6_dst(self.ipv6_dst);
        k.words[8] = self.w8;
        k.words[9] = self.w9;
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::{FRAG_ANY, FRAG_LATER};
    use crate::packet::build::{self, Builder, Icmp, Ipv4, Ipv6, Ipv6Ext, Tcp, Udp};
    use crate::packet::proto;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

    #[test]
    fn ethernet_fixture() {
        let p = extract(&ETH_UNKNOWN_TYPE, 3).unwrap();
        assert_eq!(p.key.in_port(), 3);
        assert_eq!(p.key.eth_dst(), 0xffff_ffff_ffff);
        assert_eq!(p.key.eth_src(), 0x0200_0000_0001);
        assert_eq!(p.key.eth_type(), 0x88b5);
        assert_eq!(p.key.vlan_tci(), 0);
        assert_eq!((p.l3, p.l4, p.end), (14, 0, ETH_UNKNOWN_TYPE.len() as u32));
        // Every other field is zero.
        let mut want = FlowKey::default();
        want.set_in_port(3);
        want.set_eth_dst(0xffff_ffff_ffff);
        want.set_eth_src(0x0200_0000_0001);
        want.set_eth_type(0x88b5);
        assert_eq!(p.key, want);
    }

    #[test]
    fn extract_into_writes_what_extract_returns_and_nothing_on_error() {
        let tcp = build::tcp4(
            A,
            B,
            [10, 0, 0, 1].into(),
            [10, 0, 0, 2].into(),
            1,
            2,
            0,
            b"x",
        );
        let mut out = Parsed::default();
        for (f, port) in [
            (&tcp[..], 7),
            (&ETH_UNKNOWN_TYPE[..], 3),
            (&VLAN_TAGGED_UNKNOWN[..], 1),
        ] {
            assert_eq!(extract_into(f, port, &mut out), Ok(()));
            assert_eq!(Ok(out), extract(f, port));
        }
        let before = out;
        let bad = &ETH_UNKNOWN_TYPE[..5];
        assert_eq!(extract_into(bad, 1, &mut out), extract(bad, 1).map(|_| ()));
        assert_eq!(out, before);
    }

    #[test]
    fn vlan_fixture_keeps_pcp_and_vid_and_drops_dei() {
        let p = extract(&VLAN_TAGGED_UNKNOWN, 1).unwrap();
        // TCI 0xb00a: pcp 5, DEI 1, vid 10.
        assert_eq!(p.key.vlan_tci(), (5 << 13) | VLAN_PRESENT | 10);
        assert_eq!(p.key.vlan_vid(), Some(10));
        assert_eq!(p.key.eth_type(), 0x88b5);
        assert_eq!(p.l3, 18);
    }

    #[test]
    fn qinq_keeps_outer_tag_only() {
        let p = extract(&VLAN_QINQ, 1).unwrap();
        assert_eq!(p.key.vlan_tci(), VLAN_PRESENT | 100);
        assert_eq!(p.key.eth_type(), ETH_TYPE_VLAN);
        assert_eq!((p.l3, p.l4), (18, 0));
        assert_eq!(p.key.nw_src(), 0);
    }

    #[test]
    fn service_tag_is_not_parsed_as_a_tag() {
        let mut f = VLAN_TAGGED_UNKNOWN;
        f[12..14].copy_from_slice(&0x88a8u16.to_be_bytes());
        let p = extract(&f, 1).unwrap();
        assert_eq!(p.key.vlan_tci(), 0);
        assert_eq!(p.key.eth_type(), 0x88a8);
        assert_eq!(p.l3, 14);
    }

    #[test]
    fn ethernet_and_tag_truncation() {
        for n in 0..14 {
            let e = extract(&ETH_UNKNOWN_TYPE[..n], 0).unwrap_err();
            assert_eq!(
                e,
                ParseError::Truncated {
                    kind: ErrorKind::Ethernet,
                    off: 0,
                    have: n,
                    need: 14
                }
            );
        }
        for n in 14..18 {
            let e = extract(&VLAN_TAGGED_UNKNOWN[..n], 0).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Vlan);
            assert_eq!(
                e.to_string(),
                format!(
                    "802.1q header truncated at offset 14: {} bytes left, 4 needed",
                    n - 14
                )
            );
        }
        // A bare header is a valid frame with nothing after it.
        assert!(extract(&ETH_UNKNOWN_TYPE[..14], 0).is_ok());
        assert!(extract(&VLAN_TAGGED_UNKNOWN[..18], 0).is_ok());
    }

    #[test]
    fn too_long_frames_are_refused() {
        let big = vec![0u8; MAX_FRAME_LEN + 1];
        assert_eq!(
            extract(&big, 0),
            Err(ParseError::TooLong {
                len: MAX_FRAME_LEN + 1
            })
        );
        assert!(extract(&big[..MAX_FRAME_LEN], 0).is_ok());
    }

    /// One valid frame of every kind the parser knows, with the layer that
    /// a truncation inside its L3 packet is blamed on.
    fn corpus() -> Vec<(&'static str, Vec<u8>)> {
        let ip4 = || Ipv4::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let ip6 = || {
            Ipv6::new(
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            )
        };
        let eth = || Builder::new(A, B);
        vec![
            (
                "arp",
                build::arp_request(A, Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)),
            ),
            (
                "arp-vlan",
                eth()
                    .vlan(7, 1)
                    .arp_reply(B, Ipv4Addr::new(1, 1, 1, 1), A, Ipv4Addr::new(2, 2, 2, 2))
                    .build(),
            ),
            (
                "tcp4",
                build::tcp4(
                    A,
                    B,
                    Ipv4Addr::new(10, 0, 0, 1),
                    Ipv4Addr::new(10, 0, 0, 2),
                    1234,
                    80,
                    0x12,
                    b"hello",
                ),
            ),
            (
                "tcp4-opts",
                eth()
                    .ipv4(ip4().options(&[1, 1, 1, 1]))
                    .tcp(Tcp::new(1, 2).options(&[2, 4, 5, 0xb4]))
                    .payload(b"xyz")
                    .build(),
            ),
            (
                "udp4-vlan",
                eth()
                    .vlan(4095, 7)
                    .ipv4(ip4())
                    .udp(Udp::new(53, 5353))
                    .payload(&[0; 30])
                    .build(),
            ),
            (
                "icmp4",
                build::icmp4_echo(
                    A,
                    B,
                    Ipv4Addr::new(10, 0, 0, 1),
                    Ipv4Addr::new(10, 0, 0, 2),
                    true,
                    7,
                    1,
                    b"ping",
                ),
            ),
            (
                "ip4-other",
                eth().ipv4(ip4().protocol(47)).payload(&[9; 12]).build(),
            ),
            (
                "ip4-frag1",
                eth()
                    .ipv4(ip4().fragment(0, true))
                    .udp(Udp::new(1, 2))
                    .payload(&[1; 16])
                    .build(),
            ),
            (
                "ip4-frag2",
                eth()
                    .ipv4(ip4().fragment(3, false).protocol(proto::UDP))
                    .payload(&[1; 16])
                    .build(),
            ),
            (
                "tcp6",
                build::tcp6(
                    A,
                    B,
                    "fe80::1".parse().unwrap(),
                    "fe80::2".parse().unwrap(),
                    40000,
                    443,
                    0x10,
                    b"data",
                ),
            ),
            (
                "udp6-ext",
                eth()
                    .ipv6(
                        ip6()
                            .ext(Ipv6Ext::HopByHop(vec![0; 6]))
                            .ext(Ipv6Ext::DestOpts(vec![
                                1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                            ])),
                    )
                    .udp(Udp::new(546, 547))
                    .payload(b"dhcp")
                    .build(),
            ),
            (
                "icmp6",
                build::icmp6_echo(
                    A,
                    B,
                    "::1".parse().unwrap(),
                    "::2".parse().unwrap(),
                    false,
                    1,
                    2,
                    b"",
                ),
            ),
            (
                "ip6-frag1",
                eth()
                    .ipv6(ip6().ext(Ipv6Ext::Fragment {
                        offset: 0,
                        more: true,
                        ident: 9,
                    }))
                    .tcp(Tcp::new(5, 6))
                    .payload(&[0; 8])
                    .build(),
            ),
            (
                "ip6-frag2",
                eth()
                    .ipv6(
                        ip6()
                            .ext(Ipv6Ext::Fragment {
                                offset: 100,
                                more: false,
                                ident: 9,
                            })
                            .next_header(proto::TCP),
                    )
                    .payload(&[0; 8])
                    .build(),
            ),
            (
                "ip6-routing-none",
                eth()
                    .vlan(1, 0)
                    .ipv6(
                        ip6()
                            .ext(Ipv6Ext::Routing(vec![0, 0, 0, 0, 0, 0]))
                            .next_header(proto::NONE),
                    )
                    .build(),
            ),
        ]
    }

    #[test]
    fn every_prefix_of_every_frame_is_an_error_blamed_on_its_layer() {
        for (name, frame) in corpus() {
            let full = extract(&frame, 9).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(full.end as usize, frame.len(), "{name}");
            for n in 0..frame.len() {
                match extract(&frame[..n], 9) {
                    // Every frame here ends with its L3 packet, so a shorter
                    // one is always missing bytes that a header or length
                    // field asks for.
                    Ok(p) => panic!("{name}: prefix {n} parsed: {p:?}"),
                    Err(e) => {
                        let want = if n < 14 {
                            ErrorKind::Ethernet
                        } else if n < usize::from(full.l3) {
                            ErrorKind::Vlan
                        } else {
                            match full.key.eth_type() {
                                ETH_TYPE_ARP => ErrorKind::Arp,
                                ETH_TYPE_IPV4 => ErrorKind::Ipv4,
                                _ => ErrorKind::Ipv6,
                            }
                        };
                        assert_eq!(e.kind(), want, "{name}: prefix {n}: {e}");
                        assert!(e.offset() <= n, "{name}: prefix {n}: {e}");
                    }
                }
            }
            // Link padding after the packet changes nothing.
            let mut padded = frame.clone();
            padded.extend_from_slice(&[0xee; 17]);
            let p = extract(&padded, 9).unwrap();
            assert_eq!(p.key, full.key, "{name}: padded");
            assert_eq!((p.l3, p.l4), (full.l3, full.l4), "{name}: padded");
            if full.key.eth_type() == ETH_TYPE_IPV4 || full.key.eth_type() == ETH_TYPE_IPV6 {
                assert_eq!(p.end, full.end, "{name}: padded");
            }
        }
    }

    #[test]
    fn corpus_keys() {
        let frames: std::collections::HashMap<_, _> = corpus().into_iter().collect();
        let k = |n: &str| extract(&frames[n], 2).unwrap();

        let p = k("tcp4-opts");
        assert_eq!((p.l3, p.l4), (14, 14 + 24));
        assert_eq!(p.key.ip_proto(), proto::TCP);
        assert_eq!((p.key.tp_src(), p.key.tp_dst()), (1, 2));

        let p = k("udp4-vlan");
        assert_eq!(p.key.vlan_tci(), (7 << 13) | VLAN_PRESENT | 4095);
        assert_eq!((p.l3, p.l4), (18, 38));
        assert_eq!((p.key.tp_src(), p.key.tp_dst()), (53, 5353));

        let p = k("ip4-other");
        assert_eq!(p.key.ip_proto(), 47);
        assert_eq!(p.l4, 34);
        assert_eq!((p.key.tp_src(), p.key.tp_dst()), (0, 0));

        let p = k("ip4-frag1");
        assert_eq!(p.key.ip_frag(), FRAG_ANY);
        assert_eq!((p.key.tp_src(), p.key.tp_dst()), (1, 2));
        let p = k("ip4-frag2");
        assert_eq!(p.key.ip_frag(), FRAG_ANY | FRAG_LATER);
        assert_eq!(p.key.ip_proto(), proto::UDP);
        assert_eq!((p.l4, p.key.tp_src()), (0, 0));

        let p = k("udp6-ext");
        assert_eq!(p.key.ip_proto(), proto::UDP);
        assert_eq!(p.l4, 14 + 40 + 8 + 16);
        assert_eq!((p.key.tp_src(), p.key.tp_dst()), (546, 547));

        let p = k("ip6-frag1");
        assert_eq!(p.key.ip_frag(), FRAG_ANY);
        assert_eq!((p.key.ip_proto(), p.key.tp_dst()), (proto::TCP, 6));
        let p = k("ip6-frag2");
        assert_eq!(p.key.ip_frag(), FRAG_ANY | FRAG_LATER);
        assert_eq!((p.key.ip_proto(), p.l4, p.key.tp_dst()), (proto::TCP, 0, 0));

        let p = k("ip6-routing-none");
        assert_eq!((p.key.ip_proto(), p.l4), (proto::NONE, 0));
        assert_eq!(p.key.vlan_vid(), Some(1));

        let p = k("icmp6");
        assert_eq!((p.key.tp_src(), p.key.tp_dst()), (129, 0));
        let p = k("icmp4");
        assert_eq!((p.key.tp_src(), p.key.tp_dst()), (8, 0));
    }

    fn check_invariants(frame: &[u8], p: &Parsed) {
        assert!(usize::from(p.l3) <= frame.len());
        assert!(p.end as usize <= frame.len());
        assert!(usize::from(p.l3) <= p.end as usize);
        if p.l4 != 0 {
            assert!(p.l3 < p.l4);
            assert!(usize::from(p.l4) <= p.end as usize);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), ty in 0usize..5) {
            // Steer a third of the inputs past the Ethernet header.
            let mut f = bytes;
            if f.len() >= 14 && ty < 4 {
                let t = [ETH_TYPE_IPV4, ETH_TYPE_IPV6, ETH_TYPE_ARP, ETH_TYPE_VLAN][ty];
                f[12..14].copy_from_slice(&t.to_be_bytes());
            }
            if let Ok(p) = extract(&f, 1) {
                check_invariants(&f, &p);
            }
        }

        #[test]
        fn mutated_valid_frames_never_panic(
            which in 0usize..15,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let corpus = corpus();
            let mut f = corpus[which % corpus.len()].1.clone();
            for (i, v) in edits {
                let i = i.index(f.len());
                f[i] = v;
            }
            let n = cut.index(f.len() + 1);
            let _ = extract(&f[..n], 1).map(|p| check_invariants(&f[..n], &p));
            if let Ok(p) = extract(&f, 1) {
                check_invariants(&f, &p);
            }
        }
    }

    #[test]
    fn builder_addresses_land_in_the_key() {
        let f = build::tcp6(
            A,
            B,
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
            1,
            2,
            0x02,
            b"",
        );
        let p = extract(&f, 0).unwrap();
        assert_eq!(p.key.ipv6_src(), 0x2001_0db8_0000_0000_0000_0000_0000_0001);
        assert_eq!(p.key.eth_src(), 0x0200_0000_0001);
        assert_eq!(p.key.eth_dst(), 0x0200_0000_0002);
        let f = Builder::new(A, B)
            .ipv4(Ipv4::new(
                Ipv4Addr::new(1, 2, 3, 4),
                Ipv4Addr::new(5, 6, 7, 8),
            ))
            .icmp(Icmp::new(3, 4))
            .build();
        let p = extract(&f, 0).unwrap();
        assert_eq!((p.key.nw_src(), p.key.nw_dst()), (0x0102_0304, 0x0506_0708));
        assert_eq!((p.key.tp_src(), p.key.tp_dst()), (3, 4));
    }

    // Fixtures.

    /// Broadcast from 02:00:00:00:00:01, EtherType 0x88b5 (local experimental).
    const ETH_UNKNOWN_TYPE: [u8; 20] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x88, 0xb5, // type
        0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, // payload
    ];

    /// The same behind a tag with TCI 0xb00a (pcp 5, DEI 1, vid 10).
    const VLAN_TAGGED_UNKNOWN: [u8; 22] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x81, 0x00, 0xb0, 0x0a, // tag
        0x88, 0xb5, // type
        0xde, 0xad, 0xbe, 0xef,
    ];

    /// Two 802.1Q tags (vid 100 outside, vid 200 inside) around IPv4 bytes.
    const VLAN_QINQ: [u8; 26] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x81, 0x00, 0x00, 0x64, // outer tag
        0x81, 0x00, 0x00, 0xc8, // inner tag
        0x08, 0x00, // type
        0x45, 0x00, 0x00, 0x14,
    ];
}
