//! Packets: flow-key extraction, checksums, VLAN tags, and a frame builder.
//!
//! # What?
//!
//! [`extract()`] reads a frame once, front to back, and fills a [`FlowKey`]
//! (plus the offsets of the L3 and L4 headers, [`Parsed`]) for the classifier
//! and the flow programs. Header views come from smoltcp's `wire` module,
//! opened with `new_checked()`; the 802.1Q tag is read here. Nothing is
//! allocated and nothing is counted: the caller counts drops by
//! [`ParseError::kind`].
//!
//! The other files serve actions, ports and tests: [`csum`] (the Internet
//! checksum, RFC 1624 incremental updates, whole-frame checksum
//! verification), [`vlan`] (push, pop and rewrite an 802.1Q tag), [`vnet`]
//! (the virtio-net offload header of TAP frames), [`gso`] (software
//! checksum completion and TCP segmentation) and [`build`] (test frames
//! with correct checksums).
//!
//! # What is parsed
//!
//! | layer | key fields | notes |
//! |---|---|---|
//! | Ethernet II | `eth_dst`, `eth_src`, `eth_type` | an EtherType below 0x0600 (an 802.3 length) is kept as it is, and nothing after it is parsed |
//! | 802.1Q | `vlan_tci` = `pcp<<13 \| VLAN_PRESENT \| vid` | one tag, TPID 0x8100 only; DEI is not kept (its bit is `VLAN_PRESENT`) |
//! | ARP | `arp_op`, `nw_src` (SPA), `nw_dst` (TPA) | only Ethernet/IPv4 ARP (htype 1, ptype 0x0800, hlen 6, plen 4); other ARP leaves them 0 |
//! | IPv4 | `nw_src`, `nw_dst`, `ip_proto`, `ip_tos`, `ip_ttl`, `ip_frag` | options skipped |
//! | IPv6 | `ipv6_src`, `ipv6_dst`, `ip_proto` (the upper-layer header), `ip_tos` (traffic class), `ip_ttl`, `ip_frag` | hop-by-hop, routing, fragment and destination-options headers skipped, at most [`MAX_IPV6_EXT_HEADERS`] |
//! | TCP | `tp_src`, `tp_dst`, `tcp_flags` (low 12 bits) | |
//! | UDP | `tp_src`, `tp_dst` | |
//! | ICMP / ICMPv6 | `tp_src` = type, `tp_dst` = code | ICMP only over IPv4, ICMPv6 only over IPv6 |
//!
//! Fragments: any IPv4 fragment (MF set or offset non-zero) or IPv6 packet
//! with a fragment header has [`FRAG_ANY`]; a non-first one (offset non-zero)
//! also has [`FRAG_LATER`] and no L4 fields (`l4` is 0). A first fragment's
//! L4 header is parsed like any other.
//!
//! 802.1ad (TPID 0x88a8) and other tag types are not parsed as tags: such a
//! frame has `eth_type` 0x88a8, no `vlan_tci` and no L3 fields, and is
//! switched on its MAC addresses alone. The reason: the key has no TPID
//! field, so treating an S-tag as a VLAN would make `vlan_vid: 10` match
//! S-VLAN 10 and C-VLAN 10 alike and merge the two in MAC learning. A
//! double-tagged 0x8100/0x8100 frame keeps its outer tag in the key and has
//! `eth_type` 0x8100 (the inner tag is not parsed).
//!
//! # What counts as malformed
//!
//! A frame is dropped ([`ParseError`]) when a header the switch must read is
//! not all there, or when a length field contradicts the frame:
//!
//! - the frame is shorter than 14 bytes, or longer than [`MAX_FRAME_LEN`];
//! - TPID 0x8100 with fewer than 4 bytes of tag after it;
//! - ARP: the 8-byte fixed part and the four addresses of the declared lengths
//!   are not all present;
//! - IPv4: fewer than 20 bytes; version not 4; IHL < 5; the header longer than
//!   the bytes left; total length < IHL × 4 or longer than the bytes left;
//! - IPv6: fewer than 40 bytes; version not 6; payload length longer than the
//!   bytes left (jumbograms are not supported); an extension header (8 bytes
//!   for a fragment header, `8 × (len + 1)` for the others) running past the
//!   datagram; more than [`MAX_IPV6_EXT_HEADERS`] extension headers;
//! - TCP (unfragmented or first fragment): fewer than 20 bytes; data offset
//!   < 5; the header longer than the datagram;
//! - UDP: fewer than 8 bytes; when unfragmented, a length field below 8 or
//!   beyond the datagram (a first fragment's length field covers the whole
//!   datagram and is not checked);
//! - ICMP: fewer than 8 bytes (every ICMPv4 message has the 8-byte header);
//! - ICMPv6: fewer than 4 bytes (type, code, checksum: RFC 4443's general
//!   format; smoltcp's stricter per-type check would drop valid messages, such
//!   as 24-byte MLDv1 queries and types it does not know).
//!
//! "Bytes left" for headers inside an IP datagram ends at the datagram's end
//! (IPv4 total length, IPv6 40 + payload length), not the frame's: Ethernet
//! padding after the datagram is ignored.
//!
//! Not checked (the switch forwards what it cannot fix): checksums, the IPv4
//! header's reserved flag, TCP flag combinations, the position of hop-by-hop
//! headers, the UDP length of an IPv6 jumbogram.
//! Unknown EtherTypes and IP protocols are not errors: their fields are 0.
//!
//! # Cost
//!
//! Extraction runs once per packet, so the parsers are always inlined into
//! [`extract()`] and fill a local of scalar key words that stays in registers;
//! the key is written once at the end. Length checks are smoltcp's
//! `new_checked()` and nothing else: the messages of [`ParseError`] are worked
//! out afterwards, in cold functions that run only for dropped frames.
//! `benches/extract.rs` measures it (about 10 ns of CPU time for a 64-byte
//! TCP/IPv4 frame on the development machine through the general parser).
//! The commonest shape, untagged TCP or UDP over IPv4 without options and
//! not fragmented, first goes through `fast.rs`: fixed offsets, a few wide
//! loads, the same checks; it declines anything else, and the general
//! parser, the reference, handles it.
//!
//! # Panics
//!
//! None, for any input: every header is opened with a length check before its
//! fields are read (a property test and a fuzz target,
//! `fuzz/fuzz_targets/packet_extract.rs`, feed arbitrary bytes).

mod arp;
pub mod build;
pub mod csum;
mod error;
mod extract;
mod fast;
pub mod gso;
mod ipv4;
mod ipv6;
mod l4;
pub mod vlan;
pub mod vnet;

pub use error::{ErrorKind, ParseError};
pub use extract::{extract, extract_general, extract_into, Parsed};

#[cfg(doc)]
use crate::flow::key::{FlowKey, FRAG_ANY, FRAG_LATER};

/// Longest frame accepted: a 65,535-byte IP datagram behind an Ethernet header
/// and one tag (what a TAP device with segmentation offload can deliver),
/// rounded up.
pub const MAX_FRAME_LEN: usize = 65_600;

/// Most IPv6 extension headers skipped in one packet before it is dropped.
pub const MAX_IPV6_EXT_HEADERS: usize = 8;

/// EtherType of IPv4.
pub const ETH_TYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETH_TYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETH_TYPE_IPV6: u16 = 0x86dd;
/// TPID of an 802.1Q tag.
pub const ETH_TYPE_VLAN: u16 = 0x8100;
/// TPID of an 802.1ad service tag (not parsed as a tag; see the module docs).
pub const ETH_TYPE_QINQ: u16 = 0x88a8;

/// IP protocol numbers used here.
pub mod proto {
    pub const HOPOPTS: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ICMPV6: u8 = 58;
    pub const NONE: u8 = 59;
    pub const DSTOPTS: u8 = 60;
}
