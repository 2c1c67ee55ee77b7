//! Why a frame could not be parsed: [`ParseError`], whose message names the
//! field and offset at fault, and [`ErrorKind`], the layer at fault, which the
//! caller uses as an index into its drop counters.
//!
//! Offsets in messages are byte offsets from the start of the frame.

use thiserror::Error;

use super::MAX_FRAME_LEN;
use super::MAX_IPV6_EXT_HEADERS;

/// The layer whose header was malformed: a small dense enum, so that
/// `kind as usize` (or [`ErrorKind::index`]) indexes an array of
/// [`ErrorKind::COUNT`] drop counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ErrorKind {
    /// The Ethernet header, or the frame as a whole (too short or too long).
    Ethernet,
    /// The 802.1Q tag.
    Vlan,
    /// The ARP packet.
    Arp,
    /// The IPv4 header or total length.
    Ipv4,
    /// The IPv6 fixed header or payload length.
    Ipv6,
    /// An IPv6 extension header (hop-by-hop, routing, fragment, destination
    /// options), or too many of them.
    Ipv6Ext,
    /// The TCP header.
    Tcp,
    /// The UDP header.
    Udp,
    /// The ICMP header.
    Icmp,
    /// The ICMPv6 header.
    Icmpv6,
}

impl ErrorKind {
    /// Number of kinds: the size of a drop-counter array.
    pub const COUNT: usize = 10;

    /// Every kind, in index order.
    pub const ALL: [ErrorKind; ErrorKind::COUNT] = [
        ErrorKind::Ethernet,
        ErrorKind::Vlan,
        ErrorKind::Arp,
        ErrorKind::Ipv4,
        ErrorKind::Ipv6,
        ErrorKind::Ipv6Ext,
        ErrorKind::Tcp,
        ErrorKind::Udp,
        ErrorKind::Icmp,
        ErrorKind::Icmpv6,
    ];

    /// The counter index, `0..COUNT`.
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }

    /// A short lowercase name, as used in messages and counter names.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Ethernet => "ethernet",
            ErrorKind::Vlan => "802.1q",
            ErrorKind::Arp => "arp",
            ErrorKind::Ipv4 => "ipv4",
            ErrorKind::Ipv6 => "ipv6",
            ErrorKind::Ipv6Ext => "ipv6 extension",
            ErrorKind::Tcp => "tcp",
            ErrorKind::Udp => "udp",
            ErrorKind::Icmp => "icmp",
            ErrorKind::Icmpv6 => "icmpv6",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A malformed or truncated frame. See the [module docs](super) for the
/// policy on what counts as malformed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The frame is longer than [`MAX_FRAME_LEN`].
    #[error("frame of {len} bytes is longer than the {max} byte limit", max = MAX_FRAME_LEN)]
    TooLong { len: usize },
    /// A header does not fit in the bytes left: those to the end of the
    /// frame, or for headers inside an IP datagram to the end of the datagram.
    #[error("{kind} header truncated at offset {off}: {have} bytes left, {need} needed")]
    Truncated {
        kind: ErrorKind,
        off: usize,
        have: usize,
        need: usize,
    },
    /// The IP version nibble disagrees with the EtherType.
    #[error("{kind} version field {version} != {want} at offset {off}", want = if *kind == ErrorKind::Ipv4 { 4 } else { 6 })]
    Version {
        kind: ErrorKind,
        off: usize,
        version: u8,
    },
    /// IPv4 IHL below the 5-word minimum.
    #[error("ipv4 header length {words} words < 5 at offset {off}")]
    Ipv4HeaderLen { off: usize, words: u8 },
    /// IPv4 total length smaller than the header it must contain.
    #[error("ipv4 total length {total} < header length {header} at offset {off}")]
    Ipv4TotalLen {
        off: usize,
        total: u16,
        header: usize,
    },
    /// IPv4 total length runs past the end of the frame.
    #[error("ipv4 total length {total} > {have} bytes left in the frame at offset {off}")]
    Ipv4BeyondFrame { off: usize, total: u16, have: usize },
    /// IPv6 payload length runs past the end of the frame.
    #[error("ipv6 payload length {payload} > {have} bytes left after the header at offset {off}")]
    Ipv6BeyondFrame {
        off: usize,
        payload: u16,
        have: usize,
    },
    /// More IPv6 extension headers than [`MAX_IPV6_EXT_HEADERS`].
    #[error("ipv6 extension header {next} at offset {off} is beyond the limit of {max} per packet", max = MAX_IPV6_EXT_HEADERS)]
    Ipv6ExtChain { off: usize, next: u8 },
    /// TCP data offset below the 5-word minimum.
    #[error("tcp data offset {words} words < 5 at offset {off}")]
    TcpDataOffset { off: usize, words: u8 },
    /// UDP length field outside `8..=` the IP payload length.
    #[error("udp length field {len} at offset {off} is outside 8..={have}")]
    UdpLength { off: usize, len: u16, have: usize },
}

impl ParseError {
    /// The layer at fault, for counting drops.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ParseError::TooLong { .. } => ErrorKind::Ethernet,
            ParseError::Truncated { kind, .. } | ParseError::Version { kind, .. } => *kind,
            ParseError::Ipv4HeaderLen { .. }
            | ParseError::Ipv4TotalLen { .. }
            | ParseError::Ipv4BeyondFrame { .. } => ErrorKind::Ipv4,
            ParseError::Ipv6BeyondFrame { .. } => ErrorKind::Ipv6,
            ParseError::Ipv6ExtChain { .. } => ErrorKind::Ipv6Ext,
            ParseError::TcpDataOffset { .. } => ErrorKind::Tcp,
            ParseError::UdpLength { .. } => ErrorKind::Udp,
        }
    }

    /// The frame offset of the header at fault (0 for [`ParseError::TooLong`]).
    pub fn offset(&self) -> usize {
        match self {
            ParseError::TooLong { .. } => 0,
            ParseError::Truncated { off, .. }
            | ParseError::Version { off, .. }
            | ParseError::Ipv4HeaderLen { off, .. }
            | ParseError::Ipv4TotalLen { off, .. }
            | ParseError::Ipv4BeyondFrame { off, .. }
            | ParseError::Ipv6BeyondFrame { off, .. }
            | ParseError::Ipv6ExtChain { off, .. }
            | ParseError::TcpDataOffset { off, .. }
            | ParseError::UdpLength { off, .. } => *off,
        }
    }

    /// A [`ParseError::Truncated`].
    #[cold]
    pub(super) fn truncated(kind: ErrorKind, off: usize, have: usize, need: usize) -> Self {
        ParseError::Truncated {
            kind,
            off,
            have,
            need,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_dense_indices() {
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
        let names: std::collections::HashSet<_> = ErrorKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), ErrorKind::COUNT);
    }

    #[test]
    fn messages_carry_the_values_at_fault() {
        let e = ParseError::Ipv4HeaderLen { off: 14, words: 3 };
        assert_eq!(e.to_string(), "ipv4 header length 3 words < 5 at offset 14");
        assert_eq!(e.kind(), ErrorKind::Ipv4);
        let e = ParseError::truncated(ErrorKind::Tcp, 34, 12, 20);
        assert_eq!(
            e.to_string(),
            "tcp header truncated at offset 34: 12 bytes left, 20 needed"
        );
        assert_eq!(e.kind(), ErrorKind::Tcp);
        assert_eq!(e.offset(), 34);
        let e = ParseError::Version {
            kind: ErrorKind::Ipv6,
            off: 18,
            version: 4,
        };
        assert_eq!(e.to_string(), "ipv6 version field 4 != 6 at offset 18");
        let e = ParseError::Ipv6ExtChain { off: 118, next: 60 };
        assert_eq!(
            e.to_string(),
            format!(
                "ipv6 extension header 60 at offset 118 is beyond the limit of {MAX_IPV6_EXT_HEADERS} per packet"
            )
        );
        assert_eq!(e.kind(), ErrorKind::Ipv6Ext);
        let e = ParseError::TooLong { len: 70000 };
        assert_eq!(e.kind(), ErrorKind::Ethernet);
        assert!(e.to_string().contains("70000"));
    }
}
