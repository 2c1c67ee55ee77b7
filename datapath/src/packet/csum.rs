//! The Internet checksum (RFC 1071): full computation, the IPv4 and IPv6
//! pseudo-headers, incremental updates after a field changes (RFC 1624), and
//! verification of every checksum in a frame (for tests and traces).
//!
//! # Incremental updates
//!
//! When a 16-bit word `m` covered by checksum `HC` becomes `m'`, RFC 1624
//! (eqn. 3) gives the new checksum without reading the rest of the data:
//! `HC' = ~(~HC + ~m + m')`. [`update16`], [`update32`] and [`update128`]
//! apply it to one, two and eight words (an IPv4 address, an IPv6 address).
//! The result equals a full recomputation whenever the data after the change
//! is not all zeros, which always holds for an IPv4 header (its version
//! nibble) and for TCP, UDP and ICMPv6 (the pseudo-header's protocol number).
//!
//! Fields are passed as the 16-bit big-endian words they occupy in the
//! checksummed data, aligned on even offsets: for the IPv4 TTL (byte 8)
//! pass `ttl << 8 | protocol`, for the TOS byte (byte 1) `ver_ihl << 8 | tos`.
//!
//! UDP over IPv4 may carry no checksum (field 0), and a computed 0 is sent
//! as 0xffff: wrap updates of a UDP checksum in [`udp_field`].

use thiserror::Error;

use super::{extract, proto, ParseError, ETH_TYPE_IPV4, ETH_TYPE_IPV6};

/// A running ones'-complement sum of big-endian 16-bit words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sum(u64);

impl Sum {
    /// The empty sum.
    #[inline]
    pub const fn new() -> Self {
        Sum(0)
    }

    /// Adds `data`, which starts at an even offset of the checksummed data;
    /// an odd last byte is padded with a zero byte.
    #[inline]
    pub fn bytes(self, data: &[u8]) -> Self {
        let mut acc = self.0;
        let mut words = data.chunks_exact(4);
        for w in &mut words {
            if let Ok(w) = <[u8; 4]>::try_from(w) {
                acc += u64::from(u32::from_be_bytes(w));
            }
        }
        let mut rest = words.remainder().chunks_exact(2);
        for w in &mut rest {
            if let Ok(w) = <[u8; 2]>::try_from(w) {
                acc += u64::from(u16::from_be_bytes(w));
            }
        }
        if let Some(&last) = rest.remainder().first() {
            acc += u64::from(last) << 8;
        }
        Sum(acc)
    }

    /// Adds one word.
    #[inline]
    pub const fn u16(self, v: u16) -> Self {
        Sum(self.0 + v as u64)
    }

    /// Adds two words (`v`'s big-endian bytes).
    #[inline]
    pub const fn u32(self, v: u32) -> Self {
        Sum(self.0 + v as u64)
    }

    /// Adds eight words (`v`'s big-endian bytes).
    #[inline]
    pub const fn u128(self, v: u128) -> Self {
        Sum(self.0
            + (v >> 96) as u32 as u64
            + (v >> 64) as u32 as u64
            + (v >> 32) as u32 as u64
            + v as u32 as u64)
    }

    /// The sum folded to 16 bits (end-around carry).
    #[inline]
    pub const fn fold(self) -> u16 {
        // Branch-free: < 2^64 -> < 2^33 -> < 2^17 + 2^16 -> < 2^16 + 2 -> <= 0xffff.
        let s = (self.0 & 0xffff_ffff) + (self.0 >> 32);
        let s = (s & 0xffff) + (s >> 16);
        let s = (s & 0xffff) + (s >> 16);
        let s = (s & 0xffff) + (s >> 16);
        s as u16
    }

    /// The checksum: the complement of the folded sum.
    #[inline]
    pub const fn finish(self) -> u16 {
        !self.fold()
    }
}

/// The Internet checksum of `data`.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    Sum::new().bytes(data).finish()
}

/// The IPv4 pseudo-header sum: addresses, protocol, upper-layer length.
#[inline]
pub const fn pseudo_ipv4(src: u32, dst: u32, proto: u8, len: u16) -> Sum {
    Sum::new().u32(src).u32(dst).u16(proto as u16).u16(len)
}

/// The IPv6 pseudo-header sum: addresses, upper-layer length, next header.
#[inline]
pub const fn pseudo_ipv6(src: u128, dst: u128, proto: u8, len: u32) -> Sum {
    Sum::new().u128(src).u128(dst).u32(len).u16(proto as u16)
}

/// The checksum after word `old` became `new` (RFC 1624 eqn. 3).
#[inline]
pub const fn update16(csum: u16, old: u16, new: u16) -> u16 {
    Sum::new().u16(!csum).u16(!old).u16(new).finish()
}

/// The checksum after the two words `old` became `new`.
#[inline]
pub const fn update32(csum: u16, old: u32, new: u32) -> u16 {
    Sum::new().u16(!csum).u32(!old).u32(new).finish()
}

/// The checksum after the eight words `old` became `new`.
#[inline]
pub const fn update128(csum: u16, old: u128, new: u128) -> u16 {
    Sum::new().u16(!csum).u128(!old).u128(new).finish()
}

/// The checksum after the bytes `old` became `new` (equal lengths, starting
/// at an even offset); for fields that are not 2, 4 or 16 bytes.
#[inline]
pub fn update_bytes(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    let removed = Sum::new().bytes(old).fold();
    Sum::new().u16(!csum).u16(!removed).bytes(new).finish()
}

/// What to store in a UDP checksum field that held `old` when `update` maps
/// the old checksum to the new: 0 (no checksum, IPv4) stays 0, and a computed
/// 0 becomes 0xffff.
#[inline]
pub fn udp_field(old: u16, update: impl FnOnce(u16) -> u16) -> u16 {
    if old == 0 {
        return 0;
    }
    match update(old) {
        0 => 0xffff,
        c => c,
    }
}

/// A checksum in a frame that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CsumError {
    /// The frame does not parse, so its checksums cannot be found.
    #[error("frame does not parse: {0}")]
    Parse(#[from] ParseError),
    /// A checksum field holds `found`; the data needs `want`.
    #[error("{what} checksum 0x{found:04x} at offset {off} should be 0x{want:04x}")]
    Bad {
        what: &'static str,
        off: usize,
        found: u16,
        want: u16,
    },
}

/// Checks every checksum the frame carries: the IPv4 header's, and for
/// unfragmented packets TCP, UDP (a zero UDP checksum over IPv4 means none)
/// and ICMPv6 with their pseudo-header and ICMP without. For IPv6 the
/// pseudo-header uses the destination in the IPv6 header (no routing-header
/// lookup). Frames without checksums pass.
pub fn verify(frame: &[u8]) -> Result<(), CsumError> {
    let p = extract(frame, 0)?;
    let k = &p.key;
    let v6 = match k.eth_type() {
        ETH_TYPE_IPV4 => {
            let l3 = usize::from(p.l3);
            let ihl = frame.get(l3).map_or(0, |b| usize::from(b & 0x0f) * 4);
            let hdr = frame.get(l3..l3 + ihl).unwrap_or_default();
            check(Sum::new(), hdr, 10, l3, "ipv4 header", Field::Plain)?;
            false
        }
        ETH_TYPE_IPV6 => true,
        _ => return Ok(()),
    };
    if k.ip_frag() != 0 || p.l4 == 0 {
        return Ok(());
    }
    let l4 = usize::from(p.l4);
    let seg = frame.get(l4..p.end as usize).unwrap_or_default();
    let pseudo = if v6 {
        pseudo_ipv6(k.ipv6_src(), k.ipv6_dst(), k.ip_proto(), seg.len() as u32)
    } else {
        // An IPv4 datagram is at most 65,535 bytes.
        pseudo_ipv4(k.nw_src(), k.nw_dst(), k.ip_proto(), seg.len() as u16)
    };
    match k.ip_proto() {
        proto::TCP => check(pseudo, seg, 16, l4, "tcp", Field::Plain),
        proto::UDP => check(pseudo, seg, 6, l4, "udp", Field::Udp { optional: !v6 }),
        proto::ICMP if !v6 => check(Sum::new(), seg, 2, l4, "icmp", Field::Plain),
        proto::ICMPV6 if v6 => check(pseudo, seg, 2, l4, "icmpv6", Field::Plain),
        _ => Ok(()),
    }
}

/// Whether every checksum in `frame` is right (see [`verify`]).
pub fn verify_l3_l4(frame: &[u8]) -> bool {
    verify(frame).is_ok()
}

/// How a checksum field is encoded.
#[derive(Clone, Copy)]
enum Field {
    Plain,
    /// A computed 0 is sent as 0xffff; `optional`: 0 means no checksum.
    Udp {
        optional: bool,
    },
}

/// Checks the checksum field at `at` in `data` (frame offset `off`), over
/// `init` + `data`.
fn check(
    init: Sum,
    data: &[u8],
    at: usize,
    off: usize,
    what: &'static str,
    field: Field,
) -> Result<(), CsumError> {
    let head = data.get(..at).unwrap_or_default();
    let (found, tail) = match data.get(at..) {
        Some([a, b, tail @ ..]) => (u16::from_be_bytes([*a, *b]), tail),
        _ => (0, &[][..]),
    };
    let mut want = init.bytes(head).bytes(tail).finish();
    if let Field::Udp { optional } = field {
        if optional && found == 0 {
            return Ok(());
        }
        if want == 0 {
            want = 0xffff;
        }
    }
    if found == want {
        Ok(())
    } else {
        Err(CsumError::Bad {
            what,
            off: off + at,
            found,
            want,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::build;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(Sum::new().bytes(&data).fold(), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
        // Odd length pads with a zero byte.
        assert_eq!(checksum(&[0x12]), !0x1200);
        assert_eq!(checksum(&[0x12, 0x34, 0x56]), !(0x1234u16 + 0x5600));
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn fold_handles_the_extremes() {
        assert_eq!(Sum(0).fold(), 0);
        assert_eq!(Sum(0xffff).fold(), 0xffff);
        assert_eq!(Sum(0x1_0000).fold(), 1);
        assert_eq!(Sum(0x1_fffe).fold(), 0xffff);
        assert_eq!(Sum(0xffff_ffff).fold(), 0xffff);
        assert_eq!(Sum(u64::MAX).fold(), 0xffff);
        assert_eq!(Sum(0x0001_0000_0000).fold(), 1);
        // Against the iterative definition.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..10_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut s = x;
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            assert_eq!(Sum(x).fold(), s as u16, "{x:#x}");
        }
    }

    #[test]
    fn known_ipv4_header() {
        // A classic example header with checksum 0xb861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
    }

    #[test]
    fn bytes_split_at_even_offsets_is_the_same_sum() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1001).collect();
        let whole = Sum::new().bytes(&data).fold();
        for cut in (0..data.len()).step_by(2) {
            assert_eq!(
                Sum::new().bytes(&data[..cut]).bytes(&data[cut..]).fold(),
                whole
            );
        }
        assert_eq!(
            Sum::new().u32(0x1234_5678).fold(),
            Sum::new().bytes(&[0x12, 0x34, 0x56, 0x78]).fold()
        );
        let v6: u128 = 0x2001_0db8_0000_0000_0000_ff00_0042_8329;
        assert_eq!(
            Sum::new().u128(v6).fold(),
            Sum::new().bytes(&v6.to_be_bytes()).fold()
        );
    }

    #[test]
    fn fixtures_verify_and_a_flipped_bit_is_named() {
        use crate::packet::ipv4::tests::{TCP_SYN, UDP_WITH_OPTIONS};
        use crate::packet::ipv6::tests::UDP6;
        for f in [&TCP_SYN[..], &UDP_WITH_OPTIONS[..], &UDP6[..]] {
            assert_eq!(verify(f), Ok(()));
        }
        let mut bad = TCP_SYN;
        bad[14 + 8] = 63; // TTL: IPv4 header checksum now wrong, TCP still right.
        let e = verify(&bad).unwrap_err();
        assert!(
            matches!(
                e,
                CsumError::Bad {
                    what: "ipv4 header",
                    off: 24,
                    ..
                }
            ),
            "{e}"
        );
        let mut bad = TCP_SYN;
        bad[53] ^= 1; // urgent pointer
        let e = verify(&bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "tcp checksum 0x6e3d at offset 50 should be 0x6e3c"
        );
        assert!(!verify_l3_l4(&bad));
        let mut bad = UDP6;
        bad[62] ^= 0x80;
        assert!(matches!(
            verify(&bad),
            Err(CsumError::Bad {
                what: "udp",
                off: 60,
                ..
            })
        ));
    }

    #[test]
    fn udp_zero_checksum() {
        use crate::packet::ipv4::tests::UDP_WITH_OPTIONS;
        use crate::packet::ipv6::tests::UDP6;
        let mut f = UDP_WITH_OPTIONS;
        f[44] = 0;
        f[45] = 0;
        assert_eq!(verify(&f), Ok(()), "no checksum over IPv4");
        let mut f = UDP6;
        f[60] = 0;
        f[61] = 0;
        assert!(verify(&f).is_err(), "IPv6 requires a UDP checksum");
        assert_eq!(udp_field(0, |c| update16(c, 1, 2)), 0);
        // 0xfffe + 1 more in the data: the checksum would be 0, sent as 0xffff.
        assert_eq!(update16(0x0001, 0, 1), 0x0000);
        assert_eq!(udp_field(0x0001, |c| update16(c, 0, 1)), 0xffff);
    }

    #[test]
    fn builder_frames_verify() {
        for (name, f) in build::tests::samples() {
            assert_eq!(verify(&f), Ok(()), "{name}");
        }
    }

    #[test]
    fn smoltcp_agrees_on_builder_frames() {
        use smoltcp::wire::{IpAddress, Ipv4Packet, TcpPacket, UdpPacket};
        let f = build::tcp4(
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            [10, 1, 2, 3].into(),
            [10, 3, 2, 1].into(),
            999,
            80,
            0x18,
            b"GET / HTTP/1.0\r\n\r\n",
        );
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert!(ip.verify_checksum());
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(
            &IpAddress::from(ip.src_addr()),
            &IpAddress::from(ip.dst_addr())
        ));
        let f = build::udp6(
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            5000,
            6000,
            b"odd",
        );
        let ip = smoltcp::wire::Ipv6Packet::new_checked(&f[14..]).unwrap();
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert!(udp.verify_checksum(
            &IpAddress::from(ip.src_addr()),
            &IpAddress::from(ip.dst_addr())
        ));
    }

    /// Even-length data that is not all zeros, with its checksum.
    fn data_strategy() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 1..40)
            .prop_map(|mut v| {
                if v.len() % 2 == 1 {
                    v.push(0);
                }
                v
            })
            .prop_filter("not all zeros", |v| v.iter().any(|&b| b != 0))
    }

    proptest! {
        #[test]
        fn update16_equals_full_recompute(mut data in data_strategy(), at in any::<prop::sample::Index>(), new in any::<u16>()) {
            let i = at.index(data.len() / 2) * 2;
            let c0 = checksum(&data);
            let old = u16::from_be_bytes([data[i], data[i + 1]]);
            data[i..i + 2].copy_from_slice(&new.to_be_bytes());
            prop_assume!(data.iter().any(|&b| b != 0));
            prop_assert_eq!(update16(c0, old, new), checksum(&data));
        }

        #[test]
        fn update32_and_128_equal_full_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 16..48),
            at in any::<prop::sample::Index>(),
            new32 in any::<u32>(),
            new128 in any::<u128>(),
        ) {
            if data.len() % 2 == 1 { data.push(1); }
            data[0] |= 0x40;
            let i = at.index((data.len() - 16) / 2 + 1) * 2;
            // A 32-bit field at i.
            let c0 = checksum(&data);
            let old = u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
            data[i..i + 4].copy_from_slice(&new32.to_be_bytes());
            prop_assume!(data.iter().any(|&b| b != 0));
            prop_assert_eq!(update32(c0, old, new32), checksum(&data));
            // A 128-bit field at i.
            let c1 = checksum(&data);
            let mut oldb = [0u8; 16];
            oldb.copy_from_slice(&data[i..i + 16]);
            data[i..i + 16].copy_from_slice(&new128.to_be_bytes());
            prop_assume!(data.iter().any(|&b| b != 0));
            prop_assert_eq!(update128(c1, u128::from_be_bytes(oldb), new128), checksum(&data));
            // The same through update_bytes.
            let c2 = checksum(&data);
            let old6: Vec<u8> = data[i..i + 6].to_vec();
            data[i..i + 6].copy_from_slice(&[1, 2, 3, 4, 5, 6]);
            prop_assert_eq!(update_bytes(c2, &old6, &data[i..i + 6]), checksum(&data));
        }

        /// Incremental updates of real headers: rewrite the IPv4 source and
        /// the TCP destination port of a TCP frame and its checksums stay right.
        #[test]
        fn incremental_rewrite_of_a_frame_verifies(src in any::<u32>(), port in any::<u16>(), ttl in 1u8..=255) {
            let mut f = build::tcp4([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [10, 0, 0, 1].into(), [10, 0, 0, 2].into(), 1, 2, 0x10, b"abc");
            let be = |f: &[u8], i: usize| u16::from_be_bytes([f[i], f[i + 1]]);
            let old_src = u32::from_be_bytes([f[26], f[27], f[28], f[29]]);
            f[26..30].copy_from_slice(&src.to_be_bytes());
            let ipc = update32(be(&f, 24), old_src, src);
            f[24..26].copy_from_slice(&ipc.to_be_bytes());
            let tcpc = update32(be(&f, 50), old_src, src);
            let tcpc = update16(tcpc, be(&f, 36), port);
            f[36..38].copy_from_slice(&port.to_be_bytes());
            f[50..52].copy_from_slice(&tcpc.to_be_bytes());
            let old_word = be(&f, 22);
            f[22] = ttl;
            let ipc = update16(be(&f, 24), old_word, be(&f, 22));
            f[24..26].copy_from_slice(&ipc.to_be_bytes());
            prop_assert_eq!(verify(&f), Ok(()));
        }
    }
}
