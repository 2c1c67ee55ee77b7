//! The flow key: every field a flow can match on, extracted from a frame in
//! one pass, in a fixed layout of ten 64-bit words.
//!
//! The same bytes serve three readers:
//! - the classifier masks and hashes the words ([`FlowKey::masked`]);
//! - the exact-match cache uses the whole key as its hash key;
//! - flow programs read the fields from the eBPF context, which begins with
//!   these 80 bytes (offsets [`OFF_IN_PORT`] and so on, `docs/ebpf-abi.md`).
//!
//! Fields are numbers in host order: a MAC address is the 48-bit number whose
//! big-endian bytes are the address (`02:00:00:00:00:01` = `0x0200_0000_0001`),
//! an IPv4 address the 32-bit number (`10.0.0.2` = `0x0a00_0002`), an IPv6
//! address two 64-bit halves. Prefixes and masks are therefore high bits.
//! A field a frame does not have is zero.

/// Bytes in a flow key.
pub const KEY_BYTES: usize = 80;
/// 64-bit words in a flow key.
pub const KEY_WORDS: usize = KEY_BYTES / 8;

// Byte offsets of the fields (all naturally aligned).
/// u32: ingress port id.
pub const OFF_IN_PORT: usize = 0;
/// u16: EtherType after any 802.1Q tag.
pub const OFF_ETH_TYPE: usize = 4;
/// u16: 802.1Q TCI with [`VLAN_PRESENT`] set when the frame is tagged
/// (vid = bits 0-11, pcp = bits 13-15); 0 when untagged.
pub const OFF_VLAN_TCI: usize = 6;
/// u64 (48 bits used): destination MAC.
pub const OFF_ETH_DST: usize = 8;
/// u64 (48 bits used): source MAC.
pub const OFF_ETH_SRC: usize = 16;
/// u32: IPv4 source, or ARP sender protocol address.
pub const OFF_NW_SRC: usize = 24;
/// u32: IPv4 destination, or ARP target protocol address.
pub const OFF_NW_DST: usize = 28;
/// 2 x u64: IPv6 source (high half first).
pub const OFF_IPV6_SRC: usize = 32;
/// 2 x u64: IPv6 destination (high half first).
pub const OFF_IPV6_DST: usize = 48;
/// u8: IP protocol / IPv6 next header (upper-layer).
pub const OFF_IP_PROTO: usize = 64;
/// u8: IP TOS / traffic class: DSCP in bits 2-7, ECN in bits 0-1.
pub const OFF_IP_TOS: usize = 65;
/// u16: ARP opcode.
pub const OFF_ARP_OP: usize = 66;
/// u16: TCP/UDP source port, or ICMP/ICMPv6 type.
pub const OFF_TP_SRC: usize = 68;
/// u16: TCP/UDP destination port, or ICMP/ICMPv6 code.
pub const OFF_TP_DST: usize = 70;
/// u16: TCP flags (the low 12 bits of the TCP header's flags field).
pub const OFF_TCP_FLAGS: usize = 72;
/// u8: IPv4 TTL / IPv6 hop limit (not matchable; actions read it).
pub const OFF_IP_TTL: usize = 74;
/// u8: [`FRAG_ANY`] / [`FRAG_LATER`] bits.
pub const OFF_IP_FRAG: usize = 75;

/// Set in the TCI field when the frame carries an 802.1Q tag.
pub const VLAN_PRESENT: u16 = 0x1000;
/// The packet is an IP fragment.
pub const FRAG_ANY: u8 = 1;
/// The packet is a non-first fragment (no L4 header).
pub const FRAG_LATER: u8 = 2;

/// TCP flag bits as they appear in [`OFF_TCP_FLAGS`].
pub mod tcp_flag {
    pub const FIN: u16 = 0x001;
    pub const SYN: u16 = 0x002;
    pub const RST: u16 = 0x004;
    pub const PSH: u16 = 0x008;
    pub const ACK: u16 = 0x010;
    pub const URG: u16 = 0x020;
    pub const ECE: u16 = 0x040;
    pub const CWR: u16 = 0x080;
}

/// Ten words of flow fields; see the module docs for the layout.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    pub words: [u64; KEY_WORDS],
}

macro_rules! field {
    ($get:ident, $set:ident, $ty:ty, $off:expr) => {
        #[inline]
        pub fn $get(&self) -> $ty {
            self.get::<{ std::mem::size_of::<$ty>() }>($off) as $ty
        }
        #[inline]
        pub fn $set(&mut self, v: $ty) {
            self.put::<{ std::mem::size_of::<$ty>() }>($off, v as u64)
        }
    };
}

impl FlowKey {
    /// Reads `N` bytes (1, 2, 4 or 8) at byte offset `off` as a number.
    #[inline]
    pub fn get<const N: usize>(&self, off: usize) -> u64 {
        let w = self.words[off / 8];
        let shift = (off % 8) * 8;
        let mask = if N == 8 {
            u64::MAX
        } else {
            (1u64 << (N * 8)) - 1
        };
        (w >> shift) & mask
    }

    /// Writes `N` bytes (1, 2, 4 or 8) at byte offset `off`.
    #[inline]
    pub fn put<const N: usize>(&mut self, off: usize, v: u64) {
        let shift = (off % 8) * 8;
        let mask = if N == 8 {
            u64::MAX
        } else {
            ((1u64 << (N * 8)) - 1) << shift
        };
        let w = &mut self.words[off / 8];
        *w = (*w & !mask) | ((v << shift) & mask);
    }

    field!(in_port, set_in_port, u32, OFF_IN_PORT);
    field!(eth_type, set_eth_type, u16, OFF_ETH_TYPE);
    field!(vlan_tci, set_vlan_tci, u16, OFF_VLAN_TCI);
    field!(eth_dst, set_eth_dst, u64, OFF_ETH_DST);
    field!(eth_src, set_eth_src, u64, OFF_ETH_SRC);
    field!(nw_src, set_nw_src, u32, OFF_NW_SRC);
    field!(nw_dst, set_nw_dst, u32, OFF_NW_DST);
    field!(ip_proto, set_ip_proto, u8, OFF_IP_PROTO);
    field!(ip_tos, set_ip_tos, u8, OFF_IP_TOS);
    field!(arp_op, set_arp_op, u16, OFF_ARP_OP);
    field!(tp_src, set_tp_src, u16, OFF_TP_SRC);
    field!(tp_dst, set_tp_dst, u16, OFF_TP_DST);
    field!(tcp_flags, set_tcp_flags, u16, OFF_TCP_FLAGS);
    field!(ip_ttl, set_ip_ttl, u8, OFF_IP_TTL);
    field!(ip_frag, set_ip_frag, u8, OFF_IP_FRAG);

    pub fn ipv6_src(&self) -> u128 {
        ((self.words[OFF_IPV6_SRC / 8] as u128) << 64) | self.words[OFF_IPV6_SRC / 8 + 1] as u128
    }
    pub fn set_ipv6_src(&mut self, v: u128) {
        self.words[OFF_IPV6_SRC / 8] = (v >> 64) as u64;
        self.words[OFF_IPV6_SRC / 8 + 1] = v as u64;
    }
    pub fn ipv6_dst(&self) -> u128 {
        ((self.words[OFF_IPV6_DST / 8] as u128) << 64) | self.words[OFF_IPV6_DST / 8 + 1] as u128
    }
    pub fn set_ipv6_dst(&mut self, v: u128) {
        self.words[OFF_IPV6_DST / 8] = (v >> 64) as u64;
        self.words[OFF_IPV6_DST / 8 + 1] = v as u64;
    }

    /// `self & mask`, word by word.
    #[inline]
    pub fn masked(&self, mask: &FlowKey) -> FlowKey {
        let mut out = FlowKey::default();
        for i in 0..KEY_WORDS {
            out.words[i] = self.words[i] & mask.words[i];
        }
        out
    }

    /// The key as 80 little-endian bytes (the eBPF context's first bytes).
    pub fn to_bytes(&self) -> [u8; KEY_BYTES] {
        let mut b = [0u8; KEY_BYTES];
        for (i, w) in self.words.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        b
    }

    /// The VLAN id when tagged.
    pub fn vlan_vid(&self) -> Option<u16> {
        let tci = self.vlan_tci();
        (tci & VLAN_PRESENT != 0).then_some(tci & 0x0fff)
    }
}

impl std::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FlowKey(")?;
        for (i, w) in self.words.iter().enumerate() {
            if i > 0 {
                write!(f, " ")?;
            }
            write!(f, "{w:016x}")?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_without_touching_neighbours() {
        let mut k = FlowKey::default();
        k.set_in_port(7);
        k.set_eth_type(0x0800);
        k.set_vlan_tci(VLAN_PRESENT | 10);
        k.set_eth_dst(0x0200_0000_0002);
        k.set_nw_dst(0x0a00_0002);
        k.set_ip_proto(6);
        k.set_ip_tos(0xb8);
        k.set_tp_dst(80);
        k.set_tcp_flags(tcp_flag::SYN);
        k.set_ipv6_src(u128::MAX - 1);
        assert_eq!(k.in_port(), 7);
        assert_eq!(k.eth_type(), 0x0800);
        assert_eq!(k.vlan_vid(), Some(10));
        assert_eq!(k.eth_dst(), 0x0200_0000_0002);
        assert_eq!(k.nw_dst(), 0x0a00_0002);
        assert_eq!(k.nw_src(), 0);
        assert_eq!(k.ip_proto(), 6);
        assert_eq!(k.ip_tos(), 0xb8);
        assert_eq!(k.tp_dst(), 80);
        assert_eq!(k.tp_src(), 0);
        assert_eq!(k.tcp_flags(), tcp_flag::SYN);
        assert_eq!(k.ipv6_src(), u128::MAX - 1);
        let b = k.to_bytes();
        assert_eq!(&b[OFF_TP_DST..OFF_TP_DST + 2], &80u16.to_le_bytes());
        assert_eq!(
            &b[OFF_NW_DST..OFF_NW_DST + 4],
            &0x0a00_0002u32.to_le_bytes()
        );
    }
}
