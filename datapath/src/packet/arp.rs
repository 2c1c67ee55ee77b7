//! ARP: the opcode and the sender and target protocol addresses of
//! Ethernet/IPv4 ARP into the key.

use smoltcp::wire::{ArpHardware, ArpPacket, EthernetProtocol};

use super::error::{ErrorKind, ParseError};
use super::extract::Fields;

/// Bytes of ARP's fixed part (htype, ptype, hlen, plen, oper).
const ARP_FIXED_LEN: usize = 8;

/// Parses the ARP packet at the start of `buf` (frame offset `off`). ARP for
/// other hardware or protocol types leaves the key's ARP fields 0.
#[inline(always)]
pub(super) fn parse(f: &mut Fields, buf: &[u8], off: usize) -> Result<(), ParseError> {
    let arp = ArpPacket::new_checked(buf).map_err(|_| truncated(buf, off))?;
    if arp.hardware_type() == ArpHardware::Ethernet
        && arp.protocol_type() == EthernetProtocol::Ipv4
        && arp.hardware_len() == 6
        && arp.protocol_len() == 4
    {
        f.set_arp_op(u16::from(arp.operation()));
        f.set_nw(
            ipv4(arp.source_protocol_addr()),
            ipv4(arp.target_protocol_addr()),
        );
    }
    Ok(())
}

/// A 4-byte protocol address as a number (0 if not 4 bytes, which the
/// caller has ruled out).
#[inline]
fn ipv4(b: &[u8]) -> u32 {
    b.first_chunk::<4>().map_or(0, |a| u32::from_be_bytes(*a))
}

#[cold]
#[inline(never)]
fn truncated(buf: &[u8], off: usize) -> ParseError {
    let need = match buf.get(4..6) {
        Some(&[hlen, plen]) => ARP_FIXED_LEN + 2 * (usize::from(hlen) + usize::from(plen)),
        _ => ARP_FIXED_LEN,
    };
    ParseError::truncated(ErrorKind::Arp, off, buf.len(), need)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::extract;

    #[test]
    fn request_fixture() {
        let p = extract(&ARP_REQUEST, 1).unwrap();
        assert_eq!(p.key.eth_type(), 0x0806);
        assert_eq!(p.key.arp_op(), 1);
        assert_eq!(p.key.nw_src(), 0x0a00_0001);
        assert_eq!(p.key.nw_dst(), 0x0a00_0002);
        assert_eq!(p.key.ip_proto(), 0);
        assert_eq!((p.l3, p.l4, p.end), (14, 0, 60));
    }

    #[test]
    fn truncation_names_the_length_needed() {
        let e = extract(&ARP_REQUEST[..14 + 5], 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "arp header truncated at offset 14: 5 bytes left, 8 needed"
        );
        // Once the address lengths are readable, the need includes the addresses.
        let e = extract(&ARP_REQUEST[..14 + 7], 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "arp header truncated at offset 14: 7 bytes left, 28 needed"
        );
        let e = extract(&ARP_REQUEST[..14 + 27], 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "arp header truncated at offset 14: 27 bytes left, 28 needed"
        );
        assert_eq!(e.kind(), ErrorKind::Arp);
        assert!(extract(&ARP_REQUEST[..14 + 28], 0).is_ok());
    }

    #[test]
    fn non_ethernet_ipv4_arp_has_no_fields() {
        // Protocol length 16 (as if for IPv6 addresses): 8 + 2*(6+16) bytes.
        let mut f = ARP_REQUEST[..14 + 8].to_vec();
        f[14 + 5] = 16;
        f.resize(14 + 52, 0x11);
        let p = extract(&f, 0).unwrap();
        assert_eq!((p.key.arp_op(), p.key.nw_src(), p.key.nw_dst()), (0, 0, 0));
        f.pop();
        assert_eq!(
            extract(&f, 0).unwrap_err().to_string(),
            "arp header truncated at offset 14: 51 bytes left, 52 needed"
        );
        // Hardware type 6 (IEEE 802).
        let mut f = ARP_REQUEST;
        f[15] = 6;
        assert_eq!(extract(&f, 0).unwrap().key.arp_op(), 0);
    }

    // Fixtures.

    /// Who has 10.0.0.2? Tell 10.0.0.1 (02:00:00:00:00:01), padded to 60.
    pub(crate) const ARP_REQUEST: [u8; 60] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08,
        0x06, // eth
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // ethernet, ipv4, 6, 4, request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x01, // sha, spa
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x02, // tha, tpa
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // padding
    ];
}
