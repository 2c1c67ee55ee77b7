//! A straight-line parser for the most common frame: untagged Ethernet,
//! IPv4 without options and not fragmented, then TCP or UDP.
//!
//! Why: [`extract`](super::extract()) runs once per packet, and the general
//! parser (smoltcp views, one match per layer, a check per field read)
//! costs about 170 instructions for a 64-byte TCP frame. Nearly all of the
//! switch's traffic has this one shape, whose headers sit at fixed offsets
//! (Ethernet 0, IPv4 14, L4 34), so it can be read with a few wide loads
//! and a handful of compares, and the key built in registers.
//!
//! Design: [`parse`] accepts a frame only when every check the general
//! parser would make on it holds (the same length rules, see the
//! [module docs](super)), and then fills exactly the fields the general
//! parser would. For anything else (a tag, IPv6, ARP, options, a fragment,
//! another protocol, a length the general parser refuses) it returns
//! `None`, and the caller runs the general parser, which also words the
//! error. So the fast parser never decides to drop a frame, and the general
//! one stays the reference: the tests compare the two on fixtures, on
//! mutated frames and on arbitrary bytes.

use super::extract::Parsed;
use super::{proto, ETH_TYPE_IPV4, MAX_FRAME_LEN};
use crate::flow::key::FlowKey;

/// Ethernet (14) + IPv4 without options (20).
const L4_OFF: usize = 34;
/// Bytes of a TCP header without options.
const TCP_MIN: usize = 20;
/// Bytes of a UDP header.
const UDP_MIN: usize = 8;

/// The flow key and offsets of `frame` received on `in_port` when it is an
/// untagged, unfragmented IPv4 packet without options carrying TCP or UDP
/// that the general parser accepts; `None` for anything else.
#[inline(always)]
pub(super) fn parse(frame: &[u8], in_port: u32) -> Option<Parsed> {
    let h = frame.first_chunk::<L4_OFF>()?;
    let len = frame.len();
    // The IPv4 header: version 4 and IHL 5 (no options); total length
    // covering the header and within the frame; no fragment (MF clear,
    // offset 0; the reserved and DF bits are not looked at).
    let eth_type = u16::from_be_bytes([h[12], h[13]]);
    let total = usize::from(u16::from_be_bytes([h[16], h[17]]));
    let frag = u16::from_be_bytes([h[20], h[21]]) & 0x3fff;
    if eth_type != ETH_TYPE_IPV4
        || h[14] != 0x45
        || frag != 0
        || total < 20
        || 14 + total > len
        || len > MAX_FRAME_LEN
    {
        return None;
    }
    let ip_proto = h[23];
    // The L4 header must lie within the datagram (not the frame's padding).
    let seg = frame.get(L4_OFF..14 + total)?;
    let (ports, flags) = match ip_proto {
        proto::TCP => {
            let t = seg.first_chunk::<TCP_MIN>()?;
            let header = usize::from(t[12] >> 4) * 4;
            if header < TCP_MIN || header > seg.len() {
                return None;
            }
            (
                u32::from_be_bytes([t[0], t[1], t[2], t[3]]),
                u16::from_be_bytes([t[12], t[13]]) & 0x0fff,
            )
        }
        proto::UDP => {
            let u = seg.first_chunk::<UDP_MIN>()?;
            let udp_len = usize::from(u16::from_be_bytes([u[4], u[5]]));
            if udp_len < UDP_MIN || udp_len > seg.len() {
                return None;
            }
            (u32::from_be_bytes([u[0], u[1], u[2], u[3]]), 0)
        }
        _ => return None,
    };
    let be48 = |b: &[u8; L4_OFF], at: usize| {
        u64::from_be_bytes([
            0,
            0,
            b[at],
            b[at + 1],
            b[at + 2],
            b[at + 3],
            b[at + 4],
            b[at + 5],
        ])
    };
    let src = u32::from_be_bytes([h[26], h[27], h[28], h[29]]);
    let dst = u32::from_be_bytes([h[30], h[31], h[32], h[33]]);
    let (tp_src, tp_dst) = (ports >> 16, ports & 0xffff);
    // The words as `extract`'s `put` lays them out (its layout asserts pin
    // the offsets): in_port | eth_type << 32 (no tag); nw_src | nw_dst <<
    // 32; ip_proto | ip_tos << 8 | tp_src << 32 | tp_dst << 48; tcp_flags |
    // ip_ttl << 16 (no fragment bits).
    Some(Parsed {
        key: FlowKey {
            words: [
                u64::from(in_port) | u64::from(ETH_TYPE_IPV4) << 32,
                be48(h, 0),
                be48(h, 6),
                u64::from(src) | u64::from(dst) << 32,
                0,
                0,
                0,
                0,
                u64::from(ip_proto)
                    | u64::from(h[15]) << 8
                    | u64::from(tp_src) << 32
                    | u64::from(tp_dst) << 48,
                u64::from(flags) | u64::from(h[22]) << 16,
            ],
        },
        l3: 14,
        l4: L4_OFF as u16,
        // total < 2^16.
        end: (14 + total) as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::{
        OFF_ETH_TYPE, OFF_IN_PORT, OFF_IP_FRAG, OFF_IP_PROTO, OFF_IP_TOS, OFF_IP_TTL, OFF_NW_DST,
        OFF_NW_SRC, OFF_TCP_FLAGS, OFF_TP_DST, OFF_TP_SRC,
    };
    use crate::packet::build::{self, Builder, Icmp, Ipv4, Tcp, Udp};
    use crate::packet::extract::extract_general;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

    /// The fast parser either declines or agrees with the general one.
    fn agrees(frame: &[u8], in_port: u32) -> bool {
        match parse(frame, in_port) {
            None => true,
            Some(p) => extract_general(frame, in_port) == Ok(p),
        }
    }

    fn tcp64() -> Vec<u8> {
        build::tcp4(
            A,
            B,
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            40000,
            80,
            0x18,
            &[0; 10],
        )
    }

    fn udp() -> Vec<u8> {
        Builder::new(A, B)
            .ipv4(Ipv4::new(
                Ipv4Addr::new(192, 168, 1, 1),
                Ipv4Addr::new(192, 168, 1, 2),
            ))
            .udp(Udp::new(5353, 53))
            .payload(&[1, 2, 3])
            .build()
    }

    #[test]
    fn the_layout_the_words_assume() {
        // The shifts in `parse` are these offsets.
        assert_eq!((OFF_IN_PORT, OFF_ETH_TYPE), (0, 4));
        assert_eq!((OFF_NW_SRC, OFF_NW_DST), (24, 28));
        assert_eq!(
            (OFF_IP_PROTO, OFF_IP_TOS, OFF_TP_SRC, OFF_TP_DST),
            (64, 65, 68, 70)
        );
        assert_eq!((OFF_TCP_FLAGS, OFF_IP_TTL, OFF_IP_FRAG), (72, 74, 75));
    }

    #[test]
    fn tcp_and_udp_take_the_fast_path_and_agree() {
        for (f, port) in [(tcp64(), 7), (udp(), 0), (tcp64(), u32::MAX)] {
            let p = parse(&f, port).expect("fast path");
            assert_eq!(Ok(p), extract_general(&f, port));
        }
        let p = parse(&tcp64(), 3).expect("fast path");
        assert_eq!((p.key.tp_src(), p.key.tp_dst()), (40000, 80));
        assert_eq!(p.key.tcp_flags(), 0x18);
        assert_eq!((p.l3, p.l4, p.end), (14, 34, 64));
    }

    #[test]
    fn other_shapes_are_left_to_the_general_parser() {
        let mut tagged = tcp64();
        crate::packet::vlan::push(&mut tagged, 10).unwrap();
        let icmp = Builder::new(A, B)
            .ipv4(Ipv4::new(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST))
            .icmp(Icmp::new(8, 0))
            .build();
        let tcp6 = build::tcp6(A, B, 1.into(), 2.into(), 1, 2, 0x02, b"");
        let options = Builder::new(A, B)
            .ipv4(Ipv4::new(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST).options(&[1, 1, 1, 1]))
            .tcp(Tcp::new(1, 2))
            .build();
        let mut fragment = tcp64();
        fragment[20] = 0x20; // MF
        let mut later = tcp64();
        later[21] = 1; // offset 8
        for f in [tagged, icmp, tcp6, options, fragment, later] {
            assert_eq!(parse(&f, 1), None, "{f:02x?}");
            assert!(extract_general(&f, 1).is_ok());
        }
    }

    #[test]
    fn frames_the_general_parser_refuses_are_declined() {
        let mut cases = Vec::new();
        let mut long_total = tcp64();
        long_total[17] = 51; // 14 + 51 > 64
        cases.push(long_total);
        let mut short_total = tcp64();
        short_total[16..18].copy_from_slice(&19u16.to_be_bytes());
        cases.push(short_total);
        let mut doff = tcp64();
        doff[34 + 12] = 0x40;
        cases.push(doff);
        let mut tcp_past_datagram = tcp64();
        tcp_past_datagram[34 + 12] = 0xf0; // 60-byte header, 30 bytes left
        cases.push(tcp_past_datagram);
        let mut udp_len = udp();
        udp_len[34 + 4..34 + 6].copy_from_slice(&7u16.to_be_bytes());
        cases.push(udp_len);
        let mut udp_long = udp();
        udp_long[34 + 4..34 + 6].copy_from_slice(&200u16.to_be_bytes());
        cases.push(udp_long);
        cases.push(tcp64()[..53].to_vec());
        for f in cases {
            assert_eq!(parse(&f, 1), None, "{f:02x?}");
            assert!(extract_general(&f, 1).is_err(), "{f:02x?}");
        }
        // Truncated below the fixed headers.
        for n in 0..L4_OFF {
            assert_eq!(parse(&tcp64()[..n], 1), None);
        }
        let big = {
            let mut f = tcp64();
            f.resize(MAX_FRAME_LEN + 1, 0);
            f
        };
        assert_eq!(parse(&big, 1), None);
    }

    #[test]
    fn padding_reserved_bits_and_tcp_options_match_the_general_parser() {
        let mut padded = udp();
        padded.resize(80, 0xee);
        let mut df = tcp64();
        df[20] = 0x40; // DF
        let mut reserved = tcp64();
        reserved[20] = 0x80;
        let mut flags = tcp64();
        flags[34 + 12] = 0x5f;
        flags[34 + 13] = 0xff;
        // TCP options are no reason to decline: the ports are at the start.
        let mut tcp_options = tcp64();
        tcp_options[34 + 12] = 0x60; // data offset 6: 24 of the 30 bytes left
        for f in [padded, df, reserved, flags, tcp_options] {
            assert!(parse(&f, 2).is_some(), "{f:02x?}");
            assert!(agrees(&f, 2));
        }
    }

    /// Frames near the fast path's shape: the TCP or UDP frame with some
    /// bytes of the headers set to interesting values, then cut.
    fn near_miss() -> impl Strategy<Value = Vec<u8>> {
        let header_byte = 0usize..60;
        let value = prop_oneof![
            any::<u8>(),
            Just(0u8),
            Just(0x45),
            Just(0x08),
            Just(0x20),
            Just(0x40),
            Just(0x50),
            Just(6),
            Just(17)
        ];
        (
            any::<bool>(),
            proptest::collection::vec((header_byte, value), 0..5),
            0usize..90,
            any::<prop::sample::Index>(),
        )
            .prop_map(|(is_tcp, edits, pad, cut)| {
                let mut f = if is_tcp {
                    Builder::new(A, B)
                        .ipv4(Ipv4::new(
                            Ipv4Addr::new(10, 1, 2, 3),
                            Ipv4Addr::new(10, 4, 5, 6),
                        ))
                        .tcp(Tcp::new(1234, 443))
                        .payload(&[9; 12])
                        .build()
                } else {
                    udp()
                };
                f.resize(f.len() + pad, 0xaa);
                for (i, v) in edits {
                    if let Some(b) = f.get_mut(i) {
                        *b = v;
                    }
                }
                let n = cut.index(f.len() + 1).max(f.len().saturating_sub(pad + 40));
                f.truncate(n);
                f
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn fast_agrees_with_general_near_the_common_shape(f in near_miss(), port in any::<u32>()) {
            prop_assert!(agrees(&f, port), "{:02x?}", f);
        }

        #[test]
        fn fast_agrees_with_general_on_arbitrary_bytes(
            mut f in proptest::collection::vec(any::<u8>(), 0..120),
            port in any::<u32>(),
        ) {
            // Most inputs get the common prefix, so that the later checks
            // are reached.
            if f.len() >= 24 {
                f[12] = 0x08;
                f[13] = 0x00;
                f[14] = 0x45;
                f[20] &= 0x80;
                f[21] = 0;
                f[23] = if f[0] & 1 == 0 { 6 } else { 17 };
                // Half of them with a total length near the frame's.
                if f[1] & 1 == 0 {
                    let total = (f.len() - 14).saturating_sub(usize::from(f[2] % 8)) as u16;
                    f[16..18].copy_from_slice(&total.to_be_bytes());
                }
            }
            prop_assert!(agrees(&f, port), "{:02x?}", f);
        }
    }
}
