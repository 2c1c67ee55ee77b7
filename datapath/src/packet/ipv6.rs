//! IPv6: addresses, traffic class and hop limit into the key, then the
//! extension-header chain (hop-by-hop, routing, fragment, destination
//! options) up to the upper-layer header, whose protocol becomes `ip_proto`.

use smoltcp::wire::{Ipv6ExtHeader, Ipv6FragmentHeader, Ipv6Packet, IPV6_HEADER_LEN};

use super::error::{ErrorKind, ParseError};
use super::extract::Fields;
use super::{l4, proto, MAX_IPV6_EXT_HEADERS};
use crate::flow::key::{FRAG_ANY, FRAG_LATER};

/// Bytes of a fragment header.
const FRAG_HEADER_LEN: usize = 8;

/// Parses the IPv6 packet at the start of `buf` (frame offset `off`).
#[inline(always)]
pub(super) fn parse(f: &mut Fields, buf: &[u8], off: usize) -> Result<(), ParseError> {
    let ip = match Ipv6Packet::new_checked(buf) {
        Ok(ip) if ip.version() == 6 => ip,
        _ => return Err(diagnose(buf, off)),
    };
    // new_checked: 40 + payload length <= buf.len().
    let total_len = ip.total_len();
    f.ipv6_src = u128::from(ip.src_addr());
    f.ipv6_dst = u128::from(ip.dst_addr());
    f.set_ip_tos(ip.traffic_class());
    f.set_ip_ttl(ip.hop_limit());
    // off <= 18 and total_len <= 40 + 65535.
    f.end = (off + total_len) as u32;
    let dgram = buf.get(..total_len).unwrap_or_default();

    let mut next = u8::from(ip.next_header());
    let mut pos = IPV6_HEADER_LEN;
    let mut fragment = false;
    let mut seen = 0;
    while matches!(
        next,
        proto::HOPOPTS | proto::ROUTING | proto::DSTOPTS | proto::FRAGMENT
    ) {
        if seen == MAX_IPV6_EXT_HEADERS {
            return Err(ParseError::Ipv6ExtChain {
                off: off + pos,
                next,
            });
        }
        seen += 1;
        let rest = dgram.get(pos..).unwrap_or_default();
        if next == proto::FRAGMENT {
            // Its second byte is reserved, not a length: always 8 bytes.
            let Some(h) = rest.first_chunk::<FRAG_HEADER_LEN>() else {
                return Err(ParseError::truncated(
                    ErrorKind::Ipv6Ext,
                    off + pos,
                    rest.len(),
                    FRAG_HEADER_LEN,
                ));
            };
            let [nh, _reserved, ref body @ ..] = *h;
            // `body` is 6 bytes: all the view reads.
            let frag = Ipv6FragmentHeader::new_unchecked(body.as_slice());
            next = nh;
            fragment = true;
            if frag.frag_offset() != 0 {
                f.set_ip_frag(FRAG_ANY | FRAG_LATER);
                f.set_ip_proto(next);
                return Ok(());
            }
            f.set_ip_frag(FRAG_ANY);
            pos += FRAG_HEADER_LEN;
        } else {
            let ext =
                Ipv6ExtHeader::new_checked(rest).map_err(|_| ext_truncated(rest, off + pos))?;
            next = u8::from(ext.next_header());
            pos += 8 + 8 * usize::from(ext.header_len());
        }
    }
    f.set_ip_proto(next);
    if next == proto::NONE {
        return Ok(());
    }
    let l4_off = off + pos;
    // At most 18 + 40 + 8 headers of at most 2,048 bytes.
    f.l4 = l4_off as u16;
    let seg = dgram.get(pos..).unwrap_or_default();
    l4::parse(f, next, seg, l4_off, fragment, true)
}

/// The error for an extension header (not a fragment header) that does not
/// fit in `rest`.
#[cold]
#[inline(never)]
fn ext_truncated(rest: &[u8], off: usize) -> ParseError {
    let need = match rest.get(1) {
        Some(&len) => 8 + 8 * usize::from(len),
        None => 8,
    };
    ParseError::truncated(ErrorKind::Ipv6Ext, off, rest.len(), need.max(8))
}

/// Why `buf` is not an IPv6 packet that [`parse`] accepts. Cold.
#[cold]
#[inline(never)]
pub(super) fn diagnose(buf: &[u8], off: usize) -> ParseError {
    let have = buf.len();
    let Some(h) = buf.first_chunk::<IPV6_HEADER_LEN>() else {
        return ParseError::truncated(ErrorKind::Ipv6, off, have, IPV6_HEADER_LEN);
    };
    let version = h[0] >> 4;
    if version != 6 {
        return ParseError::Version {
            kind: ErrorKind::Ipv6,
            off,
            version,
        };
    }
    ParseError::Ipv6BeyondFrame {
        off,
        payload: u16::from_be_bytes([h[4], h[5]]),
        have: have - IPV6_HEADER_LEN,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::packet::extract;
    use proptest::prelude::*;

    #[test]
    fn udp_fixture() {
        let p = extract(&UDP6, 4).unwrap();
        let k = p.key;
        assert_eq!(k.eth_type(), 0x86dd);
        assert_eq!(k.ipv6_src(), 0xfe80_0000_0000_0000_0000_0000_0000_0001);
        assert_eq!(k.ipv6_dst(), 0xff02_0000_0000_0000_0000_0000_0001_0002);
        assert_eq!(k.ip_tos(), 0xb8);
        assert_eq!(k.ip_ttl(), 1);
        assert_eq!(k.ip_proto(), proto::UDP);
        assert_eq!((k.tp_src(), k.tp_dst()), (546, 547));
        assert_eq!(k.ip_frag(), 0);
        assert_eq!((p.l3, p.l4, p.end), (14, 54, 66));
    }

    #[test]
    fn extension_chain_fixture() {
        let p = extract(&ICMP6_EXT_CHAIN, 0).unwrap();
        // hop-by-hop (8) + routing (24) + fragment (8) + destination options (16)
        assert_eq!(p.l4, 14 + 40 + 8 + 24 + 8 + 16);
        assert_eq!(p.key.ip_proto(), proto::ICMPV6);
        assert_eq!(p.key.ip_frag(), FRAG_ANY);
        assert_eq!((p.key.tp_src(), p.key.tp_dst()), (128, 0));
        assert_eq!(p.end as usize, ICMP6_EXT_CHAIN.len());
    }

    #[test]
    fn malformed_headers_name_the_field() {
        let mut v = UDP6.to_vec();
        v[14] = 0x40;
        assert_eq!(
            extract(&v, 0).unwrap_err().to_string(),
            "ipv6 version field 4 != 6 at offset 14"
        );
        let mut v = UDP6.to_vec();
        v[19] = 13;
        assert_eq!(
            extract(&v, 0).unwrap_err().to_string(),
            "ipv6 payload length 13 > 12 bytes left after the header at offset 14"
        );
        assert_eq!(
            extract(&UDP6[..50], 0).unwrap_err().to_string(),
            "ipv6 header truncated at offset 14: 36 bytes left, 40 needed"
        );
    }

    #[test]
    fn extension_header_running_past_the_datagram() {
        // The hop-by-hop header claims 16 bytes; shrink the payload length so
        // that only 8 of them are in the datagram.
        let mut v = ICMP6_EXT_CHAIN[..14 + 40 + 8].to_vec();
        v[19] = 8;
        v[14 + 41] = 1;
        let e = extract(&v, 0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Ipv6Ext);
        assert_eq!(
            e.to_string(),
            "ipv6 extension header truncated at offset 54: 8 bytes left, 16 needed"
        );
        // A fragment header cut short.
        let mut v = ICMP6_EXT_CHAIN.to_vec();
        let frag_at = 14 + 40 + 8 + 24;
        v.truncate(frag_at + 5);
        let plen = (v.len() - 54) as u16;
        v[18..20].copy_from_slice(&plen.to_be_bytes());
        let e = extract(&v, 0).unwrap_err();
        assert_eq!(
            e,
            ParseError::Truncated {
                kind: ErrorKind::Ipv6Ext,
                off: frag_at,
                have: 5,
                need: 8
            }
        );
    }

    #[test]
    fn later_fragment_stops_the_chain() {
        let mut v = ICMP6_EXT_CHAIN.to_vec();
        let frag_at = 14 + 40 + 8 + 24;
        v[frag_at + 2..frag_at + 4].copy_from_slice(&(3u16 << 3).to_be_bytes());
        let p = extract(&v, 0).unwrap();
        assert_eq!(p.key.ip_frag(), FRAG_ANY | FRAG_LATER);
        // The fragment header's next header: destination options.
        assert_eq!(p.key.ip_proto(), proto::DSTOPTS);
        assert_eq!((p.l4, p.key.tp_src()), (0, 0));
    }

    #[test]
    fn chain_length_is_bounded() {
        fn chain(n: usize) -> Vec<u8> {
            let mut v = UDP6[..54].to_vec();
            v[20] = proto::DSTOPTS;
            for i in 0..n {
                let nh = if i + 1 == n {
                    proto::NONE
                } else {
                    proto::DSTOPTS
                };
                v.extend_from_slice(&[nh, 0, 1, 4, 0, 0, 0, 0]);
            }
            let plen = (v.len() - 54) as u16;
            v[18..20].copy_from_slice(&plen.to_be_bytes());
            v
        }
        let p = extract(&chain(MAX_IPV6_EXT_HEADERS), 0).unwrap();
        assert_eq!(p.key.ip_proto(), proto::NONE);
        let e = extract(&chain(MAX_IPV6_EXT_HEADERS + 1), 0).unwrap_err();
        assert_eq!(
            e,
            ParseError::Ipv6ExtChain {
                off: 54 + 8 * MAX_IPV6_EXT_HEADERS,
                next: proto::DSTOPTS
            }
        );
    }

    proptest! {
        #[test]
        fn diagnose_agrees_with_smoltcp(h in proptest::collection::vec(any::<u8>(), 0..70), v in any::<u8>(), plen in 0u16..40) {
            let mut h = h;
            if h.len() >= 6 {
                h[0] = v;
                h[4..6].copy_from_slice(&plen.to_be_bytes());
            }
            let ok = matches!(Ipv6Packet::new_checked(&h[..]), Ok(ip) if ip.version() == 6);
            let mut f = Fields::default();
            let r = parse(&mut f, &h, 14);
            if ok {
                prop_assert!(r.as_ref().map_or_else(|e| e.kind() != ErrorKind::Ipv6, |_| true), "{:?}", r);
            } else {
                let e = r.unwrap_err();
                prop_assert_eq!(&e, &diagnose(&h, 14));
                prop_assert_eq!(e.kind(), ErrorKind::Ipv6);
            }
        }
    }

    // Fixtures.

    /// fe80::1:546 -> ff02::1:2:547 UDP (DHCPv6 solicit-like, 4 payload
    /// bytes), traffic class 0xb8, hop limit 1; checksum correct.
    pub(crate) const UDP6: [u8; 66] = [
        0x33, 0x33, 0x00, 0x01, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86,
        0xdd, // eth
        0x6b, 0x80, 0x00, 0x00, 0x00, 0x0c, 0x11, 0x01, // ip6: tc 0xb8, plen 12, udp, hlim 1
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, //
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0x02, //
        0x02, 0x22, 0x02, 0x23, 0x00, 0x0c, 0xfd, 0x09, // udp
        0x01, 0x00, 0x00, 0x00,
    ];

    /// 2001:db8::1 -> 2001:db8::2 ICMPv6 echo request behind hop-by-hop (8
    /// bytes, PadN), routing (24 bytes, type 0, one address), fragment
    /// (offset 0, M set) and destination options (16 bytes, PadN) headers.
    pub(crate) const ICMP6_EXT_CHAIN: [u8; 14 + 40 + 8 + 24 + 8 + 16 + 12] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86,
        0xdd, // eth
        0x60, 0x00, 0x00, 0x00, 0x00, 0x44, 0x00, 0x40, // ip6: plen 68, hop-by-hop, hlim 64
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, //
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, //
        0x2b, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, // hop-by-hop -> routing
        0x2c, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // routing -> fragment, 24 bytes
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x03, //
        0x3c, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x2a, // fragment -> dst opts, M, id 42
        0x3a, 0x01, 0x01, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // dst opts -> icmpv6
        0x80, 0x00, 0x4d, 0x48, 0x12, 0x34, 0x00, 0x01, 0x61, 0x62, 0x63,
        0x64, // echo request
    ];
}
