//! IPv4: addresses, protocol, TOS, TTL and fragment bits into the key, then
//! the L4 header of unfragmented packets and first fragments.

use smoltcp::wire::{Ipv4Packet, IPV4_HEADER_LEN};

use super::error::{ErrorKind, ParseError};
use super::extract::Fields;
use super::l4;
use crate::flow::key::{FRAG_ANY, FRAG_LATER};

/// Parses the IPv4 packet at the start of `buf` (frame offset `off`).
#[inline(always)]
pub(super) fn parse(f: &mut Fields, buf: &[u8], off: usize) -> Result<(), ParseError> {
    let ip = match Ipv4Packet::new_checked(buf) {
        Ok(ip) if ip.version() == 4 => ip,
        _ => return Err(diagnose(buf, off)),
    };
    // new_checked: 20 <= header_len <= total_len <= buf.len().
    let header_len = usize::from(ip.header_len());
    let total_len = usize::from(ip.total_len());
    let proto = u8::from(ip.next_header());
    f.set_nw(u32::from(ip.src_addr()), u32::from(ip.dst_addr()));
    f.set_ip_proto(proto);
    f.set_ip_tos((ip.dscp() << 2) | ip.ecn());
    f.set_ip_ttl(ip.hop_limit());
    // off <= 18 and total_len < 2^16.
    f.end = (off + total_len) as u32;
    let fragment = ip.more_frags() || ip.frag_offset() != 0;
    if fragment {
        if ip.frag_offset() != 0 {
            f.set_ip_frag(FRAG_ANY | FRAG_LATER);
            return Ok(());
        }
        f.set_ip_frag(FRAG_ANY);
    }
    let l4_off = off + header_len;
    // At most 18 + 60.
    f.l4 = l4_off as u16;
    let seg = buf.get(header_len..total_len).unwrap_or_default();
    // Here a fragment is a first fragment.
    l4::parse(f, proto, seg, l4_off, fragment, false)
}

/// Why `buf` is not an IPv4 packet that [`parse`] accepts (the checks of
/// smoltcp's `check_len` and the version, in header order). Cold: runs only
/// on frames about to be dropped.
#[cold]
#[inline(never)]
pub(super) fn diagnose(buf: &[u8], off: usize) -> ParseError {
    let have = buf.len();
    let Some(h) = buf.first_chunk::<IPV4_HEADER_LEN>() else {
        return ParseError::truncated(ErrorKind::Ipv4, off, have, IPV4_HEADER_LEN);
    };
    let version = h[0] >> 4;
    if version != 4 {
        return ParseError::Version {
            kind: ErrorKind::Ipv4,
            off,
            version,
        };
    }
    let words = h[0] & 0x0f;
    if words < 5 {
        return ParseError::Ipv4HeaderLen { off, words };
    }
    let header = usize::from(words) * 4;
    if have < header {
        return ParseError::truncated(ErrorKind::Ipv4, off, have, header);
    }
    let total = u16::from_be_bytes([h[2], h[3]]);
    if usize::from(total) < header {
        return ParseError::Ipv4TotalLen { off, total, header };
    }
    ParseError::Ipv4BeyondFrame { off, total, have }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::packet::{extract, proto};
    use proptest::prelude::*;

    #[test]
    fn tcp_fixture() {
        let p = extract(&TCP_SYN, 5).unwrap();
        let k = p.key;
        assert_eq!(k.eth_type(), 0x0800);
        assert_eq!(k.nw_src(), 0xc0a8_0001);
        assert_eq!(k.nw_dst(), 0xc0a8_0002);
        assert_eq!(k.ip_proto(), proto::TCP);
        assert_eq!(k.ip_tos(), 0x2e << 2 | 1);
        assert_eq!(k.ip_ttl(), 64);
        assert_eq!(k.ip_frag(), 0);
        assert_eq!((k.tp_src(), k.tp_dst()), (0xc000, 80));
        assert_eq!(k.tcp_flags(), 0x002);
        assert_eq!((p.l3, p.l4, p.end), (14, 34, 54));
    }

    #[test]
    fn options_are_skipped() {
        let p = extract(&UDP_WITH_OPTIONS, 0).unwrap();
        assert_eq!(p.l4, 14 + 24);
        assert_eq!(p.key.ip_proto(), proto::UDP);
        assert_eq!((p.key.tp_src(), p.key.tp_dst()), (68, 67));
        assert_eq!(p.key.nw_dst(), 0xffff_ffff);
    }

    #[test]
    fn padding_after_total_length_is_ignored() {
        let mut f = TCP_SYN.to_vec();
        f.resize(60, 0);
        let p = extract(&f, 0).unwrap();
        assert_eq!(p.end, 54);
        assert_eq!(p.key, extract(&TCP_SYN, 0).unwrap().key);
    }

    fn with(f: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
        let mut v = f.to_vec();
        v[at..at + bytes.len()].copy_from_slice(bytes);
        v
    }

    #[test]
    fn malformed_headers_name_the_field() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                with(&TCP_SYN, 14, &[0x65]),
                "ipv4 version field 6 != 4 at offset 14",
            ),
            (
                with(&TCP_SYN, 14, &[0x43]),
                "ipv4 header length 3 words < 5 at offset 14",
            ),
            (
                with(&TCP_SYN, 14, &[0x4f]),
                "ipv4 header truncated at offset 14: 40 bytes left, 60 needed",
            ),
            (
                with(&TCP_SYN, 16, &[0, 19]),
                "ipv4 total length 19 < header length 20 at offset 14",
            ),
            (
                with(&TCP_SYN, 16, &[0, 41]),
                "ipv4 total length 41 > 40 bytes left in the frame at offset 14",
            ),
            (
                TCP_SYN[..30].to_vec(),
                "ipv4 header truncated at offset 14: 16 bytes left, 20 needed",
            ),
        ];
        for (f, msg) in cases {
            let e = extract(&f, 0).unwrap_err();
            assert_eq!(e.to_string(), msg);
            assert_eq!(e.kind(), ErrorKind::Ipv4);
        }
    }

    #[test]
    fn fragments() {
        // MF set, offset 0: a first fragment, L4 parsed.
        let first = with(&TCP_SYN, 20, &[0x20, 0x00]);
        let p = extract(&first, 0).unwrap();
        assert_eq!(p.key.ip_frag(), FRAG_ANY);
        assert_eq!(p.key.tp_dst(), 80);
        assert_eq!(p.l4, 34);
        // Offset 8 (raw 1), MF clear: the last fragment, no L4.
        let last = with(&TCP_SYN, 20, &[0x00, 0x01]);
        let p = extract(&last, 0).unwrap();
        assert_eq!(p.key.ip_frag(), FRAG_ANY | FRAG_LATER);
        assert_eq!(
            (p.key.ip_proto(), p.key.tp_dst(), p.key.tcp_flags(), p.l4),
            (proto::TCP, 0, 0, 0)
        );
        // A later fragment too short for a TCP header is still fine.
        let mut short = last[..34 + 4].to_vec();
        short[16..18].copy_from_slice(&24u16.to_be_bytes());
        assert!(extract(&short, 0).is_ok());
        // DF alone is not a fragment.
        let df = with(&TCP_SYN, 20, &[0x40, 0x00]);
        assert_eq!(extract(&df, 0).unwrap().key.ip_frag(), 0);
    }

    proptest! {
        /// The cold diagnosis blames exactly the packets smoltcp refuses.
        #[test]
        fn diagnose_agrees_with_smoltcp(h in proptest::collection::vec(any::<u8>(), 0..80), vhl in any::<u8>(), total in 0u16..100) {
            let mut h = h;
            if h.len() >= 4 {
                h[0] = vhl;
                h[2..4].copy_from_slice(&total.to_be_bytes());
            }
            let ok = matches!(Ipv4Packet::new_checked(&h[..]), Ok(ip) if ip.version() == 4);
            let mut f = Fields::default();
            let r = parse(&mut f, &h, 14);
            if ok {
                // Any error now is from the L4 header.
                prop_assert!(r.as_ref().map_or_else(|e| e.kind() != ErrorKind::Ipv4, |_| true), "{:?}", r);
            } else {
                let e = r.unwrap_err();
                prop_assert_eq!(e.kind(), ErrorKind::Ipv4);
                prop_assert_eq!(e, diagnose(&h, 14));
            }
        }
    }

    // Fixtures.

    /// 192.168.0.1:49152 -> 192.168.0.2:80 TCP SYN, DSCP 46 ECN 1, TTL 64,
    /// no payload; checksums correct.
    pub(crate) const TCP_SYN: [u8; 54] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08,
        0x00, // eth
        0x45, 0xb9, 0x00, 0x28, 0x12, 0x34, 0x00, 0x00, 0x40, 0x06, 0xe6, 0x8f, // ip
        0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0x02, //
        0xc0, 0x00, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // tcp
        0x50, 0x02, 0xff, 0xff, 0x6e, 0x3d, 0x00, 0x00,
    ];

    /// 0.0.0.0:68 -> 255.255.255.255:67 UDP with a 4-byte IP option (router
    /// alert) and 4 bytes of payload; checksums correct.
    pub(crate) const UDP_WITH_OPTIONS: [u8; 50] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08,
        0x00, // eth
        0x46, 0x00, 0x00, 0x24, 0x00, 0x01, 0x00, 0x00, 0x01, 0x11, 0x24, 0xc5, // ip
        0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, //
        0x94, 0x04, 0x00, 0x00, // router alert option
        0x00, 0x44, 0x00, 0x43, 0x00, 0x0c, 0xfb, 0x49, // udp
        0x01, 0x02, 0x03, 0x04,
    ];
}
