//! The virtio-net header: the offload metadata a TAP device with
//! `IFF_VNET_HDR` puts in front of every frame it hands over, and expects
//! in front of every frame it is given.
//!
//! # What?
//!
//! Ten little-endian bytes (twelve with `num_buffers`, which TAP devices
//! ignore on write and set to 0 on read):
//!
//! | offset | field | meaning |
//! |---|---|---|
//! | 0 | `flags` | [`F_NEEDS_CSUM`]: the L4 checksum is not complete; [`F_DATA_VALID`]: it was checked |
//! | 1 | `gso_type` | [`Gso`]: none, TCPv4, UDP, TCPv6, UDP L4; bit 0x80 = ECN |
//! | 2 | `hdr_len` | bytes of headers in front of the payload (a hint) |
//! | 4 | `gso_size` | payload bytes per segment (the MSS) |
//! | 6 | `csum_start` | where checksumming starts (the L4 header) |
//! | 8 | `csum_offset` | where, from `csum_start`, the checksum goes |
//!
//! With `F_NEEDS_CSUM`, the checksum field holds the pseudo-header's
//! folded sum, not complemented; the sum of everything from `csum_start` to
//! the end, complemented, is the checksum ([`super::gso::complete_csum`]).
//! A GSO super-frame is one TCP segment of up to 64 KiB that the receiver
//! cuts into `gso_size` pieces ([`super::gso::segment`]).
//!
//! [`VnetHdr::parse`] takes untrusted bytes and never panics; offsets are
//! checked against the frame only where they are used.

use thiserror::Error;

/// `flags`: the checksum from `csum_start` is to be completed.
pub const F_NEEDS_CSUM: u8 = 1;
/// `flags`: the checksum has been verified.
pub const F_DATA_VALID: u8 = 2;
/// `gso_type` bit: the sender may set ECN CWR on segments.
pub const GSO_ECN: u8 = 0x80;

/// Bytes of the header without `num_buffers`.
pub const VNET_HDR_MIN: usize = 10;

/// A header that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VnetError {
    /// Fewer bytes than a header.
    #[error("virtio-net header truncated: {len} bytes, 10 needed")]
    Truncated { len: usize },
    /// A `gso_type` this switch does not know.
    #[error("unknown virtio-net gso_type {gso_type}")]
    UnknownGso { gso_type: u8 },
}

/// The segmentation a frame asks for (`gso_type` without the ECN bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Gso {
    #[default]
    None,
    Tcp4,
    /// UDP fragmentation offload (UFO, obsolete).
    Udp,
    Tcp6,
    /// UDP segmentation (USO).
    UdpL4,
}

impl Gso {
    fn from_code(code: u8) -> Result<Self, VnetError> {
        match code & !GSO_ECN {
            0 => Ok(Gso::None),
            1 => Ok(Gso::Tcp4),
            3 => Ok(Gso::Udp),
            4 => Ok(Gso::Tcp6),
            5 => Ok(Gso::UdpL4),
            _ => Err(VnetError::UnknownGso { gso_type: code }),
        }
    }

    fn code(self) -> u8 {
        match self {
            Gso::None => 0,
            Gso::Tcp4 => 1,
            Gso::Udp => 3,
            Gso::Tcp6 => 4,
            Gso::UdpL4 => 5,
        }
    }
}

/// A frame's offload metadata; the default is a complete frame (no
/// checksum to finish, no segmentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso: Gso,
    /// The ECN bit of `gso_type`.
    pub ecn: bool,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Parses the first [`VNET_HDR_MIN`] bytes of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, VnetError> {
        let Some(b) = bytes.first_chunk::<VNET_HDR_MIN>() else {
            return Err(VnetError::Truncated { len: bytes.len() });
        };
        let le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Ok(VnetHdr {
            flags: b[0],
            gso: Gso::from_code(b[1])?,
            ecn: b[1] & GSO_ECN != 0,
            hdr_len: le(2),
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
        })
    }

    /// Writes the header into `out` (10 bytes, and zeros after them up to
    /// `out.len()`, i.e. `num_buffers` = 0); false if `out` is shorter
    /// than [`VNET_HDR_MIN`].
    pub fn write(&self, out: &mut [u8]) -> bool {
        let Some((b, rest)) = out.split_first_chunk_mut::<VNET_HDR_MIN>() else {
            return false;
        };
        let gso = self.gso.code() | if self.ecn { GSO_ECN } else { 0 };
        b[0] = self.flags;
        b[1] = gso;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        rest.fill(0);
        true
    }

    /// Whether the L4 checksum still has to be completed.
    #[inline]
    pub fn needs_csum(&self) -> bool {
        self.flags & F_NEEDS_CSUM != 0
    }

    /// Whether the frame is complete as it is: no checksum to finish and
    /// no segmentation (what a plain port can take).
    #[inline]
    pub fn is_complete(&self) -> bool {
        !self.needs_csum() && self.gso == Gso::None
    }

    /// Follows the headers moving by `delta` bytes (+4 after a VLAN tag is
    /// pushed, -4 after one is popped): `csum_start` and a non-zero
    /// `hdr_len` move with them. Offsets that would leave 0..=65535 are
    /// clamped (the frame then fails the checks where they are used).
    pub fn shift(&mut self, delta: i32) {
        let mv = |v: u16| (i32::from(v) + delta).clamp(0, 0xffff) as u16;
        if self.needs_csum() {
            self.csum_start = mv(self.csum_start);
        }
        if self.hdr_len != 0 {
            self.hdr_len = mv(self.hdr_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TSO4 super-frame's header as a TAP hands it over: NEEDS_CSUM,
    /// TCPv4, 66 bytes of headers, MSS 1448, checksum at 34 + 16.
    const TSO4: [u8; 12] = [1, 1, 66, 0, 0xa8, 0x05, 34, 0, 16, 0, 0, 0];

    #[test]
    fn parses_and_writes_back() {
        let h = VnetHdr::parse(&TSO4).unwrap();
        assert_eq!(
            h,
            VnetHdr {
                flags: F_NEEDS_CSUM,
                gso: Gso::Tcp4,
                ecn: false,
                hdr_len: 66,
                gso_size: 1448,
                csum_start: 34,
                csum_offset: 16,
            }
        );
        assert!(h.needs_csum() && !h.is_complete());
        let mut out = [0xffu8; 12];
        assert!(h.write(&mut out));
        assert_eq!(out, TSO4);
        assert!(!h.write(&mut [0; 9]));
    }

    #[test]
    fn ecn_and_types() {
        let mut b = TSO4;
        b[1] = 4 | GSO_ECN;
        let h = VnetHdr::parse(&b).unwrap();
        assert_eq!((h.gso, h.ecn), (Gso::Tcp6, true));
        let mut out = [0u8; 10];
        h.write(&mut out);
        assert_eq!(out[1], 0x84);
        b[1] = 2;
        assert_eq!(
            VnetHdr::parse(&b),
            Err(VnetError::UnknownGso { gso_type: 2 })
        );
        assert_eq!(
            VnetHdr::parse(&b[..9]),
            Err(VnetError::Truncated { len: 9 })
        );
        assert!(VnetHdr::parse(&[0; 10]).unwrap().is_complete());
    }

    #[test]
    fn shift_follows_a_tag() {
        let mut h = VnetHdr::parse(&TSO4).unwrap();
        h.shift(4);
        assert_eq!((h.csum_start, h.hdr_len, h.csum_offset), (38, 70, 16));
        h.shift(-4);
        assert_eq!((h.csum_start, h.hdr_len), (34, 66));
        let mut plain = VnetHdr::default();
        plain.shift(4);
        assert_eq!(plain, VnetHdr::default());
        h.shift(-100);
        assert_eq!(h.csum_start, 0);
    }

    #[test]
    fn never_panics_on_any_bytes() {
        for a in 0..=255u8 {
            for len in 0..14 {
                let b: Vec<u8> = (0..len).map(|i| a.wrapping_mul(i as u8 + 1)).collect();
                let _ = VnetHdr::parse(&b);
            }
        }
    }
}
