//! Scalar values of the YAML files, each parsed in its own `Deserialize` so
//! that serde_yaml attaches the value's line and column to any error.
//!
//! Numbers may be written in any YAML integer form (`2048`, `0x0800`); names
//! (`arp`, `tcp`, `request`, `none`) are case-sensitive and lower-case.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Deserialises a value that may be a number or a string through one
/// function of both forms. The function runs inside the visitor, while the
/// deserialiser still knows where the value is, so its error is placed at
/// the value rather than at the enclosing mapping.
pub(crate) fn number_or_str<'de, D, T, F>(
    d: D,
    expecting: &'static str,
    parse: F,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    F: FnOnce(NumOrStr<'_>) -> Result<T, String>,
{
    struct V<F>(&'static str, F);
    impl<'de, T, F: FnOnce(NumOrStr<'_>) -> Result<T, String>> Visitor<'de> for V<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            (self.1)(NumOrStr::Num(v)).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            if v < 0 {
                Err(E::custom(format!("{v} is negative; expected {}", self.0)))
            } else {
                self.visit_u64(v as u64)
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.1)(NumOrStr::Str(v)).map_err(E::custom)
        }
    }
    d.deserialize_any(V(expecting, parse))
}

/// A number in `min..=max` (no names), for counts like threads and queues.
pub(crate) fn bounded_u64<'de, D: Deserializer<'de>>(
    d: D,
    what: &'static str,
    min: u64,
    max: u64,
) -> Result<u64, D::Error> {
    number_or_str(d, what, |v| match v {
        NumOrStr::Num(n) if n < min || n > max => {
            Err(format!("{what} {n} is out of range {min}..={max}"))
        }
        NumOrStr::Num(n) => Ok(n),
        NumOrStr::Str(s) => Err(format!("`{s}` is not a number; expected {what}")),
    })
}

/// A scalar as written: a number or a string.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NumOrStr<'a> {
    Num(u64),
    Str(&'a str),
}

/// Parses a decimal or `0x` hexadecimal number written in a string.
fn parse_num(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

fn in_range(what: &str, v: u64, max: u64) -> Result<u64, String> {
    if v > max {
        Err(format!("{what} {v} is out of range 0..={max}"))
    } else {
        Ok(v)
    }
}

/// A number in `0..=MAX`, with an error that names the field's range.
macro_rules! bounded {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $max:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $ty);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                number_or_str(d, concat!($what, " (a number)"), |v| match v {
                    NumOrStr::Num(n) => Ok($name(in_range($what, n, $max)? as $ty)),
                    NumOrStr::Str(s) => match parse_num(s) {
                        Some(n) => Ok($name(in_range($what, n, $max)? as $ty)),
                        None => Err(format!("`{s}` is not a number; expected {}", $what)),
                    },
                })
            }
        }
    };
}

bounded!(
    /// A flow priority, 0..=65535.
    Priority, u16, 65535, "priority"
);
bounded!(
    /// An 802.1Q VLAN id, 0..=4095.
    Vid, u16, 4095, "vlan id"
);
bounded!(
    /// An 802.1Q priority code point, 0..=7.
    Pcp, u8, 7, "vlan_pcp"
);
bounded!(
    /// A DSCP value, 0..=63.
    Dscp, u8, 63, "ip_dscp"
);
bounded!(
    /// An ECN value, 0..=3.
    Ecn, u8, 3, "ip_ecn"
);
bounded!(
    /// An ICMP or ICMPv6 type or code, 0..=255.
    IcmpNum, u8, 255, "icmp type/code"
);
bounded!(
    /// A TCP or UDP port number, 0..=65535.
    L4Port, u16, 65535, "port number"
);

/// A MAC address with a mask (all ones when none is written), both as
/// 48-bit numbers (`02:00:00:00:00:01` = `0x0200_0000_0001`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacMatch {
    pub addr: u64,
    pub mask: u64,
}

/// A plain MAC address (no mask), as a 48-bit number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub u64);

pub const MAC_MASK: u64 = 0xffff_ffff_ffff;

fn parse_mac(s: &str) -> Result<u64, String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!(
            "`{s}` is not a MAC address; expected six hex bytes like 02:00:00:00:00:01"
        ));
    }
    let mut v = 0u64;
    for p in parts {
        if p.is_empty() || p.len() > 2 {
            return Err(format!("`{s}` is not a MAC address: bad byte `{p}`"));
        }
        let b = u8::from_str_radix(p, 16)
            .map_err(|_| format!("`{s}` is not a MAC address: bad byte `{p}`"))?;
        v = (v << 8) | u64::from(b);
    }
    Ok(v)
}

impl MacMatch {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.split_once('/') {
            None => Ok(MacMatch {
                addr: parse_mac(s)?,
                mask: MAC_MASK,
            }),
            Some((a, m)) => {
                let addr = parse_mac(a)?;
                let mask = parse_mac(m).map_err(|e| format!("mask: {e}"))?;
                if addr & !mask != 0 {
                    return Err(format!("`{s}`: the address has bits set outside the mask"));
                }
                Ok(MacMatch { addr, mask })
            }
        }
    }
}

fn str_only<'de, D, T>(
    d: D,
    expecting: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    number_or_str(d, expecting, |v| match v {
        NumOrStr::Str(s) => parse(s),
        NumOrStr::Num(n) => Err(format!("`{n}` is a number; expected {expecting}")),
    })
}

impl<'de> Deserialize<'de> for MacMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_only(
            d,
            "a MAC address, optionally with /mask (quote it)",
            MacMatch::parse,
        )
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_only(d, "a MAC address (quote it)", |s| parse_mac(s).map(Mac))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0.to_be_bytes();
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[2], b[3], b[4], b[5], b[6], b[7]
        )
    }
}

/// Parses a prefix length or a dotted/colon mask after `/`.
fn prefix_len(s: &str, bits: u32) -> Result<u32, String> {
    let n: u32 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a prefix length"))?;
    if n > bits {
        return Err(format!("prefix length {n} is longer than {bits}"));
    }
    Ok(n)
}

fn prefix_mask_u32(len: u32) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len)
    }
}

fn prefix_mask_u128(len: u32) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    }
}

/// An IPv4 address or network for a match: `10.0.0.2` (a /32) or
/// `10.0.0.0/24`. Host bits beyond the prefix are an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    pub addr: u32,
    pub mask: u32,
}

impl Ipv4Net {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, len) = match s.split_once('/') {
            None => (s, 32),
            Some((a, l)) => (a, prefix_len(l, 32).map_err(|e| format!("`{s}`: {e}"))?),
        };
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("`{s}` is not an IPv4 address or CIDR"))?;
        let addr = u32::from(addr);
        let mask = prefix_mask_u32(len);
        if addr & !mask != 0 {
            return Err(format!(
                "`{s}` has bits set past the /{len} prefix (did you mean {}/{len}?)",
                Ipv4Addr::from(addr & mask)
            ));
        }
        Ok(Ipv4Net { addr, mask })
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_only(d, "an IPv4 address or CIDR", Ipv4Net::parse)
    }
}

/// An IPv6 address or network for a match, like [`Ipv4Net`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Net {
    pub addr: u128,
    pub mask: u128,
}

impl Ipv6Net {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, len) = match s.split_once('/') {
            None => (s, 128),
            Some((a, l)) => (a, prefix_len(l, 128).map_err(|e| format!("`{s}`: {e}"))?),
        };
        let addr: Ipv6Addr = a
            .parse()
            .map_err(|_| format!("`{s}` is not an IPv6 address or CIDR"))?;
        let addr = u128::from(addr);
        let mask = prefix_mask_u128(len);
        if addr & !mask != 0 {
            return Err(format!(
                "`{s}` has bits set past the /{len} prefix (did you mean {}/{len}?)",
                Ipv6Addr::from(addr & mask)
            ));
        }
        Ok(Ipv6Net { addr, mask })
    }
}

impl<'de> Deserialize<'de> for Ipv6Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_only(d, "an IPv6 address or CIDR (quote it)", Ipv6Net::parse)
    }
}

/// A plain IPv4 address (for `set_field`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4(pub Ipv4Addr);

impl<'de> Deserialize<'de> for Ipv4 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_only(d, "an IPv4 address", |s| {
            s.parse()
                .map(Ipv4)
                .map_err(|_| format!("`{s}` is not an IPv4 address"))
        })
    }
}

/// A plain IPv6 address (for `set_field`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6(pub Ipv6Addr);

impl<'de> Deserialize<'de> for Ipv6 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_only(d, "an IPv6 address (quote it)", |s| {
            s.parse()
                .map(Ipv6)
                .map_err(|_| format!("`{s}` is not an IPv6 address"))
        })
    }
}

/// An interface address with its prefix length (a host's `ip:`),
/// IPv4 (`10.0.0.1/24`) or IPv6 (`fd00::1/64`). Host bits are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IfaceAddr {
    V4 { addr: Ipv4Addr, prefix: u8 },
    V6 { addr: Ipv6Addr, prefix: u8 },
}

impl IfaceAddr {
    pub fn parse(s: &str) -> Result<Self, String> {
        let Some((a, l)) = s.split_once('/') else {
            return Err(format!("`{s}` needs a prefix length, like 10.0.0.1/24"));
        };
        if let Ok(v4) = a.parse::<Ipv4Addr>() {
            let prefix = prefix_len(l, 32).map_err(|e| format!("`{s}`: {e}"))?;
            return Ok(IfaceAddr::V4 {
                addr: v4,
                prefix: prefix as u8,
            });
        }
        if let Ok(v6) = a.parse::<Ipv6Addr>() {
            let prefix = prefix_len(l, 128).map_err(|e| format!("`{s}`: {e}"))?;
            return Ok(IfaceAddr::V6 {
                addr: v6,
                prefix: prefix as u8,
            });
        }
        Err(format!(
            "`{s}` is not an IPv4 or IPv6 address with a prefix"
        ))
    }

    /// The address without the prefix.
    pub fn ip(&self) -> std::net::IpAddr {
        match self {
            IfaceAddr::V4 { addr, .. } => (*addr).into(),
            IfaceAddr::V6 { addr, .. } => (*addr).into(),
        }
    }
}

impl fmt::Display for IfaceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IfaceAddr::V4 { addr, prefix } => write!(f, "{addr}/{prefix}"),
            IfaceAddr::V6 { addr, prefix } => write!(f, "{addr}/{prefix}"),
        }
    }
}

impl<'de> Deserialize<'de> for IfaceAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_only(
            d,
            "an address with a prefix, like 10.0.0.1/24",
            IfaceAddr::parse,
        )
    }
}

/// A TCP/UDP port or an inclusive range `"8000-8100"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn parse(s: &str) -> Result<Self, String> {
        let one = |p: &str| -> Result<u16, String> {
            let p = p.trim();
            let n: u64 = p
                .parse()
                .map_err(|_| format!("`{s}` is not a port or a range like 8000-8100"))?;
            Ok(in_range("port", n, 65535)? as u16)
        };
        match s.split_once('-') {
            None => {
                let p = one(s)?;
                Ok(PortRange { lo: p, hi: p })
            }
            Some((a, b)) => {
                let (lo, hi) = (one(a)?, one(b)?);
                if lo > hi {
                    return Err(format!("range `{s}` is empty: {lo} > {hi}"));
                }
                Ok(PortRange { lo, hi })
            }
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_str(d, "a port or a range like \"8000-8100\"", |v| match v {
            NumOrStr::Num(n) => {
                let p = in_range("port", n, 65535)? as u16;
                Ok(PortRange { lo: p, hi: p })
            }
            NumOrStr::Str(s) => PortRange::parse(s),
        })
    }
}

/// A `vlan_vid` match: an id, `none` (untagged only) or `any` (tagged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VlanMatch {
    Vid(u16),
    None,
    Any,
}

impl<'de> Deserialize<'de> for VlanMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_str(d, "a vlan id 0..=4095, `none` or `any`", |v| match v {
            NumOrStr::Num(n) => Ok(VlanMatch::Vid(in_range("vlan_vid", n, 4095)? as u16)),
            NumOrStr::Str("none") => Ok(VlanMatch::None),
            NumOrStr::Str("any") => Ok(VlanMatch::Any),
            NumOrStr::Str(s) => match parse_num(s) {
                Some(n) => Ok(VlanMatch::Vid(in_range("vlan_vid", n, 4095)? as u16)),
                None => Err(format!(
                    "`{s}` is not a vlan_vid; expected 0..=4095, `none` or `any`"
                )),
            },
        })
    }
}

/// Named numbers: `(name, value)` tables for the fields that take names.
fn named(what: &str, names: &[(&str, u64)], max: u64, v: NumOrStr<'_>) -> Result<u64, String> {
    let n = match v {
        NumOrStr::Num(n) => n,
        NumOrStr::Str(s) => match names.iter().find(|(k, _)| *k == s) {
            Some((_, n)) => *n,
            None => match parse_num(s) {
                Some(n) => n,
                None => {
                    let list: Vec<String> = names.iter().map(|(k, _)| format!("`{k}`")).collect();
                    return Err(format!(
                        "unknown {what} `{s}`; expected a number or one of {}",
                        list.join(", ")
                    ));
                }
            },
        },
    };
    in_range(what, n, max)
}

pub const ETH_TYPE_IPV4: u16 = 0x0800;
pub const ETH_TYPE_ARP: u16 = 0x0806;
pub const ETH_TYPE_IPV6: u16 = 0x86dd;

pub const IP_PROTO_ICMP: u8 = 1;
pub const IP_PROTO_TCP: u8 = 6;
pub const IP_PROTO_UDP: u8 = 17;
pub const IP_PROTO_ICMPV6: u8 = 58;

/// An EtherType: a number or `arp`, `ipv4`, `ipv6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthType(pub u16);

impl<'de> Deserialize<'de> for EthType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_str(d, "an EtherType: a number, `arp`, `ipv4` or `ipv6`", |v| {
            named(
                "eth_type",
                &[
                    ("arp", ETH_TYPE_ARP.into()),
                    ("ipv4", ETH_TYPE_IPV4.into()),
                    ("ipv6", ETH_TYPE_IPV6.into()),
                ],
                0xffff,
                v,
            )
            .map(|n| EthType(n as u16))
        })
    }
}

/// An IP protocol: a number or `tcp`, `udp`, `icmp`, `icmpv6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpProto(pub u8);

impl<'de> Deserialize<'de> for IpProto {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_str(
            d,
            "an IP protocol: a number, `tcp`, `udp`, `icmp` or `icmpv6`",
            |v| {
                named(
                    "ip_proto",
                    &[
                        ("tcp", IP_PROTO_TCP.into()),
                        ("udp", IP_PROTO_UDP.into()),
                        ("icmp", IP_PROTO_ICMP.into()),
                        ("icmpv6", IP_PROTO_ICMPV6.into()),
                    ],
                    255,
                    v,
                )
                .map(|n| IpProto(n as u8))
            },
        )
    }
}

/// An ARP opcode: a number or `request` (1), `reply` (2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpOp(pub u16);

impl<'de> Deserialize<'de> for ArpOp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_str(d, "an ARP opcode: a number, `request` or `reply`", |v| {
            named("arp_op", &[("request", 1), ("reply", 2)], 0xffff, v).map(|n| ArpOp(n as u16))
        })
    }
}

/// `tcp_flags: "+syn-ack"`: `value` holds the flags that must be set,
/// `mask` every flag named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpFlags {
    pub value: u16,
    pub mask: u16,
}

const TCP_FLAG_NAMES: [(&str, u16); 8] = [
    ("fin", 0x001),
    ("syn", 0x002),
    ("rst", 0x004),
    ("psh", 0x008),
    ("ack", 0x010),
    ("urg", 0x020),
    ("ece", 0x040),
    ("cwr", 0x080),
];

impl TcpFlags {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut out = TcpFlags { value: 0, mask: 0 };
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err("empty tcp_flags; expected like `+syn-ack`".to_string());
        }
        while !rest.is_empty() {
            let (set, after) = if let Some(r) = rest.strip_prefix('+') {
                (true, r)
            } else if let Some(r) = rest.strip_prefix('-') {
                (false, r)
            } else {
                return Err(format!(
                    "tcp_flags `{s}`: each flag needs + (set) or - (clear) before it"
                ));
            };
            rest = after;
            let end = rest.find(['+', '-']).unwrap_or(rest.len());
            let name = &rest[..end];
            rest = &rest[end..];
            let Some((_, bit)) = TCP_FLAG_NAMES.iter().find(|(n, _)| *n == name) else {
                return Err(format!(
                    "tcp_flags `{s}`: unknown flag `{name}`; expected fin, syn, rst, psh, ack, urg, ece or cwr"
                ));
            };
            if out.mask & bit != 0 {
                return Err(format!("tcp_flags `{s}`: `{name}` appears twice"));
            }
            out.mask |= bit;
            if set {
                out.value |= bit;
            }
        }
        Ok(out)
    }
}

impl<'de> Deserialize<'de> for TcpFlags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_only(d, "TCP flags like \"+syn-ack\"", TcpFlags::parse)
    }
}

/// A port named by id or by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortRef {
    Id(u32),
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Id(n) => write!(f, "{n}"),
            PortRef::Name(s) => f.write_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for PortRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_str(d, "a port id or port name", |v| match v {
            NumOrStr::Num(n) => Ok(PortRef::Id(port_id(n)?)),
            NumOrStr::Str(s) => match parse_num(s) {
                Some(n) => Ok(PortRef::Id(port_id(n)?)),
                None if s.is_empty() => Err("empty port name".to_string()),
                None => Ok(PortRef::Name(s.to_string())),
            },
        })
    }
}

fn port_id(n: u64) -> Result<u32, String> {
    if n == 0 || n > u64::from(u32::MAX) {
        Err(format!("port id {n} is out of range 1..={}", u32::MAX))
    } else {
        Ok(n as u32)
    }
}

/// A port id in a `ports:` or `hosts:` entry: 1..=4294967295.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u32);

impl<'de> Deserialize<'de> for PortId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_str(d, "a port id (a number)", |v| match v {
            NumOrStr::Num(n) => port_id(n).map(PortId),
            NumOrStr::Str(s) => Err(format!("`{s}` is not a port id; expected a number")),
        })
    }
}

/// A handle such as a meter name: non-empty, without whitespace or control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(pub String);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_str(d, "a name", |v| {
            let s = match v {
                NumOrStr::Num(n) => n.to_string(),
                NumOrStr::Str(s) => s.to_string(),
            };
            if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err(format!(
                    "`{s}` is not a valid name: non-empty, without spaces or control characters"
                ))
            } else {
                Ok(Name(s))
            }
        })
    }
}

/// A name used as an interface, namespace or socket name: 1 to `MAX`
/// characters from `A-Z a-z 0-9 _ . -`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfName<const MAX: usize>(pub String);

impl<const MAX: usize> IfName<MAX> {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn check(s: &str) -> Result<(), String> {
        let ok_chars = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        let starts = s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic());
        if !ok_chars || !starts || s.len() > MAX {
            Err(format!(
                "`{s}` is not a valid name: 1 to {MAX} characters from A-Z a-z 0-9 _ . -, starting with a letter"
            ))
        } else {
            Ok(())
        }
    }
}

impl<const MAX: usize> fmt::Display for IfName<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for IfName<MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        str_only(d, "a name", |s| {
            IfName::<MAX>::check(s)?;
            Ok(IfName(s.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_and_masks() {
        assert_eq!(
            MacMatch::parse("02:00:00:00:00:01").unwrap(),
            MacMatch {
                addr: 0x0200_0000_0001,
                mask: MAC_MASK
            }
        );
        assert_eq!(
            MacMatch::parse("02:00:00:00:00:00/ff:ff:ff:00:00:00").unwrap(),
            MacMatch {
                addr: 0x0200_0000_0000,
                mask: 0xffff_ff00_0000
            }
        );
        assert!(MacMatch::parse("02:00:00:00:00").is_err());
        assert!(MacMatch::parse("02:00:00:00:00:0g").is_err());
        assert!(MacMatch::parse("02:00:00:00:00:01/ff:ff:ff:00:00:00").is_err());
        assert_eq!(Mac(0x0200_0000_00ab).to_string(), "02:00:00:00:00:ab");
    }

    #[test]
    fn cidrs() {
        assert_eq!(
            Ipv4Net::parse("10.0.0.0/8").unwrap(),
            Ipv4Net {
                addr: 0x0a00_0000,
                mask: 0xff00_0000
            }
        );
        assert_eq!(Ipv4Net::parse("10.0.0.2").unwrap().mask, u32::MAX);
        assert_eq!(Ipv4Net::parse("0.0.0.0/0").unwrap().mask, 0);
        let e = Ipv4Net::parse("10.0.0.5/24").unwrap_err();
        assert!(e.contains("10.0.0.0/24"), "{e}");
        assert!(Ipv4Net::parse("10.0.0/24").is_err());
        assert!(Ipv4Net::parse("10.0.0.0/33").is_err());
        let v6 = Ipv6Net::parse("fd00::/16").unwrap();
        assert_eq!(v6.mask, 0xffffu128 << 112);
        assert!(Ipv6Net::parse("fd00::1/16").is_err());
    }

    #[test]
    fn ranges_flags_and_names() {
        assert_eq!(
            PortRange::parse("8000-8100").unwrap(),
            PortRange { lo: 8000, hi: 8100 }
        );
        assert!(PortRange::parse("8100-8000").is_err());
        assert!(PortRange::parse("8000-70000").is_err());
        assert!(PortRange::parse("http").is_err());
        let f = TcpFlags::parse("+syn-ack").unwrap();
        assert_eq!((f.value, f.mask), (0x002, 0x012));
        assert!(TcpFlags::parse("syn").is_err());
        assert!(TcpFlags::parse("+syn+syn").is_err());
        assert!(TcpFlags::parse("+foo").is_err());
        assert!(IfName::<15>::check("fs-h1").is_ok());
        assert!(IfName::<15>::check("1abc").is_err());
        assert!(IfName::<15>::check("a-very-long-name-indeed").is_err());
        assert!(IfaceAddr::parse("10.0.0.1").is_err());
        assert_eq!(
            IfaceAddr::parse("10.0.0.1/24").unwrap().to_string(),
            "10.0.0.1/24"
        );
    }
}
