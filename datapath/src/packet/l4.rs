//! The upper-layer header of an IP packet: TCP and UDP ports and TCP flags,
//! ICMP and ICMPv6 type and code. Other protocols add nothing to the key.

use smoltcp::wire::{
    Icmpv4Packet, Icmpv6Packet, TcpPacket, UdpPacket, TCP_HEADER_LEN, UDP_HEADER_LEN,
};

use super::error::{ErrorKind, ParseError};
use super::extract::Fields;
use super::proto;

/// Bytes of the ICMP header every ICMPv4 message has.
const ICMP_HEADER_LEN: usize = 8;
/// Bytes of ICMPv6's general format: type, code, checksum.
const ICMPV6_HEADER_LEN: usize = 4;
/// The TCP flags in the key: the low 12 bits of header bytes 12-13.
const TCP_FLAGS_MASK: u16 = 0x0fff;

/// Parses the `proto` header at the start of `seg` (the rest of the IP
/// datagram, at frame offset `off`). `fragment`: the datagram is a first
/// fragment (later ones never get here). `v6`: carried by IPv6.
#[inline(always)]
pub(super) fn parse(
    f: &mut Fields,
    proto: u8,
    seg: &[u8],
    off: usize,
    fragment: bool,
    v6: bool,
) -> Result<(), ParseError> {
    match proto {
        proto::TCP => tcp(f, seg, off),
        proto::UDP => udp(f, seg, off, fragment),
        proto::ICMP if !v6 => icmp(f, seg, off),
        proto::ICMPV6 if v6 => icmpv6(f, seg, off),
        _ => Ok(()),
    }
}

#[inline(always)]
fn tcp(f: &mut Fields, seg: &[u8], off: usize) -> Result<(), ParseError> {
    let tcp = TcpPacket::new_checked(seg).map_err(|_| tcp_diagnose(seg, off))?;
    f.set_tp(tcp.src_port(), tcp.dst_port());
    if let Some(h) = seg.first_chunk::<TCP_HEADER_LEN>() {
        f.set_tcp_flags(u16::from_be_bytes([h[12], h[13]]) & TCP_FLAGS_MASK);
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn tcp_diagnose(seg: &[u8], off: usize) -> ParseError {
    let have = seg.len();
    let Some(h) = seg.first_chunk::<TCP_HEADER_LEN>() else {
        return ParseError::truncated(ErrorKind::Tcp, off, have, TCP_HEADER_LEN);
    };
    let words = h[12] >> 4;
    if words < 5 {
        return ParseError::TcpDataOffset { off, words };
    }
    ParseError::truncated(ErrorKind::Tcp, off, have, usize::from(words) * 4)
}

#[inline(always)]
fn udp(f: &mut Fields, seg: &[u8], off: usize, fragment: bool) -> Result<(), ParseError> {
    let udp = if fragment {
        // The length field covers the whole datagram, not this fragment.
        if seg.len() < UDP_HEADER_LEN {
            return Err(ParseError::truncated(
                ErrorKind::Udp,
                off,
                seg.len(),
                UDP_HEADER_LEN,
            ));
        }
        UdpPacket::new_unchecked(seg)
    } else {
        UdpPacket::new_checked(seg).map_err(|_| udp_diagnose(seg, off))?
    };
    f.set_tp(udp.src_port(), udp.dst_port());
    Ok(())
}

#[cold]
#[inline(never)]
fn udp_diagnose(seg: &[u8], off: usize) -> ParseError {
    let have = seg.len();
    match seg.first_chunk::<UDP_HEADER_LEN>() {
        None => ParseError::truncated(ErrorKind::Udp, off, have, UDP_HEADER_LEN),
        Some(h) => ParseError::UdpLength {
            off,
            len: u16::from_be_bytes([h[4], h[5]]),
            have,
        },
    }
}

#[inline(always)]
fn icmp(f: &mut Fields, seg: &[u8], off: usize) -> Result<(), ParseError> {
    let icmp = Icmpv4Packet::new_checked(seg)
        .map_err(|_| ParseError::truncated(ErrorKind::Icmp, off, seg.len(), ICMP_HEADER_LEN))?;
    f.set_tp(
        u16::from(u8::from(icmp.msg_type())),
        u16::from(icmp.msg_code()),
    );
    Ok(())
}

#[inline(always)]
fn icmpv6(f: &mut Fields, seg: &[u8], off: usize) -> Result<(), ParseError> {
    // Not new_checked: it refuses types smoltcp does not know and 24-byte
    // MLDv1 queries. Type and code are all that is read.
    if seg.len() < ICMPV6_HEADER_LEN {
        return Err(ParseError::truncated(
            ErrorKind::Icmpv6,
            off,
            seg.len(),
            ICMPV6_HEADER_LEN,
        ));
    }
    let icmp = Icmpv6Packet::new_unchecked(seg);
    f.set_tp(
        u16::from(u8::from(icmp.msg_type())),
        u16::from(icmp.msg_code()),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::{tcp_flag, FlowKey};

    fn key(proto: u8, seg: &[u8], fragment: bool, v6: bool) -> Result<FlowKey, ParseError> {
        let mut f = Fields::default();
        parse(&mut f, proto, seg, 34, fragment, v6)?;
        Ok(f.key())
    }

    #[test]
    fn tcp_fixture_with_options() {
        let k = key(proto::TCP, &TCP_SYNACK_MSS, false, false).unwrap();
        assert_eq!((k.tp_src(), k.tp_dst()), (443, 51000));
        assert_eq!(k.tcp_flags(), tcp_flag::SYN | tcp_flag::ACK | tcp_flag::ECE);
    }

    #[test]
    fn tcp_flags_keep_ns_and_reserved_bits_only_from_the_low_12() {
        let mut seg = TCP_SYNACK_MSS;
        seg[12] = 0x6f; // data offset 6, reserved 3 bits set, NS
        seg[13] = 0xff;
        let k = key(proto::TCP, &seg, false, false).unwrap();
        assert_eq!(k.tcp_flags(), 0x0fff);
    }

    #[test]
    fn tcp_errors() {
        let e = key(proto::TCP, &TCP_SYNACK_MSS[..19], false, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "tcp header truncated at offset 34: 19 bytes left, 20 needed"
        );
        // Data offset 6 words: the option must be there.
        let e = key(proto::TCP, &TCP_SYNACK_MSS[..23], false, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "tcp header truncated at offset 34: 23 bytes left, 24 needed"
        );
        let mut seg = TCP_SYNACK_MSS;
        seg[12] = 0x40;
        let e = key(proto::TCP, &seg, false, false).unwrap_err();
        assert_eq!(e.to_string(), "tcp data offset 4 words < 5 at offset 34");
        assert_eq!(e.kind(), ErrorKind::Tcp);
        // A first fragment needs the header just the same.
        assert!(key(proto::TCP, &TCP_SYNACK_MSS[..20], true, false).is_err());
    }

    #[test]
    fn udp_fixture_and_length_policy() {
        let k = key(proto::UDP, &UDP_DNS, false, true).unwrap();
        assert_eq!((k.tp_src(), k.tp_dst()), (33333, 53));
        assert_eq!(k.tcp_flags(), 0);
        // Trailing bytes after the UDP length are allowed.
        let mut long = UDP_DNS.to_vec();
        long.extend_from_slice(&[0; 5]);
        assert!(key(proto::UDP, &long, false, false).is_ok());
        // A length beyond the datagram is not, unless this is a first fragment.
        let e = key(proto::UDP, &UDP_DNS[..10], false, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "udp length field 12 at offset 34 is outside 8..=10"
        );
        assert!(key(proto::UDP, &UDP_DNS[..10], true, false).is_ok());
        let mut short = UDP_DNS;
        short[5] = 7;
        let e = key(proto::UDP, &short, false, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "udp length field 7 at offset 34 is outside 8..=12"
        );
        for frag in [false, true] {
            let e = key(proto::UDP, &UDP_DNS[..7], frag, false).unwrap_err();
            assert_eq!(
                e.to_string(),
                "udp header truncated at offset 34: 7 bytes left, 8 needed"
            );
        }
    }

    #[test]
    fn icmp_fixture() {
        let k = key(proto::ICMP, &ICMP_PORT_UNREACHABLE, false, false).unwrap();
        assert_eq!((k.tp_src(), k.tp_dst()), (3, 3));
        let e = key(proto::ICMP, &ICMP_PORT_UNREACHABLE[..7], false, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "icmp header truncated at offset 34: 7 bytes left, 8 needed"
        );
        // ICMP over IPv6 is just another protocol.
        assert_eq!(
            key(proto::ICMP, &[], false, true).unwrap(),
            FlowKey::default()
        );
    }

    #[test]
    fn icmpv6_fixture_and_lenient_length() {
        let k = key(proto::ICMPV6, &ICMP6_NEIGHBOR_SOLICIT, false, true).unwrap();
        assert_eq!((k.tp_src(), k.tp_dst()), (135, 0));
        // An MLDv1 query (type 130) is 24 bytes, which smoltcp's check refuses.
        let mut mld = [0u8; 24];
        mld[0] = 130;
        assert!(Icmpv6Packet::new_checked(&mld[..]).is_err());
        assert_eq!(key(proto::ICMPV6, &mld, false, true).unwrap().tp_src(), 130);
        // A type nobody knows, 4 bytes long.
        let k = key(proto::ICMPV6, &[200, 7, 0, 0], false, true).unwrap();
        assert_eq!((k.tp_src(), k.tp_dst()), (200, 7));
        let e = key(proto::ICMPV6, &[200, 7, 0], false, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "icmpv6 header truncated at offset 34: 3 bytes left, 4 needed"
        );
        assert_eq!(e.kind(), ErrorKind::Icmpv6);
        // ICMPv6 over IPv4 is just another protocol.
        assert_eq!(
            key(proto::ICMPV6, &[], false, false).unwrap(),
            FlowKey::default()
        );
    }

    #[test]
    fn other_protocols_add_nothing() {
        for p in [0u8, 2, 47, 50, 51, 132, 255] {
            assert_eq!(
                key(p, &[1, 2, 3, 4, 5, 6, 7, 8], false, false).unwrap(),
                FlowKey::default()
            );
            assert_eq!(key(p, &[], false, true).unwrap(), FlowKey::default());
        }
    }

    // Fixtures: upper-layer headers alone (checksums are not read here).

    /// TCP 443 -> 51000, SYN|ACK|ECE, data offset 6 with an MSS option.
    const TCP_SYNACK_MSS: [u8; 24] = [
        0x01, 0xbb, 0xc7, 0x38, // ports
        0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x01, // seq, ack
        0x60, 0x52, 0x72, 0x10, // offset 6, ECE|ACK|SYN, window
        0x00, 0x00, 0x00, 0x00, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
    ];

    /// UDP 33333 -> 53, length 12, 4 payload bytes.
    const UDP_DNS: [u8; 12] = [
        0x82, 0x35, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, 0xab, 0xcd, 0x01, 0x00,
    ];

    /// ICMP destination unreachable (port unreachable), start of the quote.
    const ICMP_PORT_UNREACHABLE: [u8; 12] = [
        0x03, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x45, 0x00, 0x00, 0x1c,
    ];

    /// ICMPv6 neighbour solicitation for fe80::2.
    const ICMP6_NEIGHBOR_SOLICIT: [u8; 24] = [
        0x87, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // type, code, checksum, reserved
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
    ];
}
