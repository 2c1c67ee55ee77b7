//! What the running switch reports: the rows of `dump-flows`, `dump-ports`
//! and `stats` (serialised as the control socket's JSON and printed by
//! `flowswitch ctl`), and a flow's match as text.
//!
//! A match is shown from the compiled key and mask, field by field, so
//! file flows and flows added at run time read alike: `eth_type=0x0800,
//! ip_proto=6, tcp_dst=80`; a partial mask shows as `value/mask`, and the
//! alternatives of one flow (a port range, both IP families) are joined by
//! ` | `. The fields the model implies (`tcp_dst` implies `ip_proto`) are
//! shown, being part of the match.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use datapath::flow::key::{self, FlowKey};
use datapath::flow::spec::Match;
use serde::{Deserialize, Serialize};

/// One flow of `dump-flows`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRow {
    pub table: u8,
    pub name: String,
    pub priority: u16,
    #[serde(rename = "match")]
    pub matches: String,
    pub actions: Vec<String>,
    pub packets: u64,
    pub bytes: u64,
    /// Milliseconds since its last packet; `None`: no packet yet.
    pub idle_age_ms: Option<u64>,
    /// Added at run time (`add-flow`), not from the file.
    pub runtime: bool,
    /// Seconds, 0 = never.
    pub idle_timeout: u32,
    pub hard_timeout: u32,
}

/// One port's (or one queue's) counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortCounts {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_drops: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_drops: u64,
}

impl From<datapath::dp::stats::PortTotals> for PortCounts {
    fn from(t: datapath::dp::stats::PortTotals) -> Self {
        PortCounts {
            rx_packets: t.rx_packets,
            rx_bytes: t.rx_bytes,
            rx_drops: t.rx_drops,
            tx_packets: t.tx_packets,
            tx_bytes: t.tx_bytes,
            tx_drops: t.tx_drops,
        }
    }
}

/// One port of `dump-ports`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRow {
    pub id: u32,
    pub name: String,
    pub up: bool,
    pub total: PortCounts,
    /// Indexed by queue.
    pub queues: Vec<PortCounts>,
}

/// One table's lookups in `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRow {
    pub table: u8,
    pub lookups: u64,
    pub matched: u64,
    pub missed: u64,
}

/// `stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsReport {
    pub switch: String,
    pub file: String,
    pub generation: u32,
    pub flows: usize,
    pub runtime_flows: usize,
    pub workers: usize,
    /// Successful reloads since start.
    pub reloads: u64,
    /// Reloads refused (bad file) since start.
    pub failed_reloads: u64,
    /// The last refused reload's error.
    pub last_error: Option<String>,
    pub tables: Vec<TableRow>,
    /// Drops by reason (non-zero only).
    pub drops: Vec<(String, u64)>,
}

/// What a reload (or any table change) did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChangeReport {
    pub generation: u32,
    pub flows: usize,
    /// Flows whose definition did not change: they kept their counters.
    pub kept: usize,
    /// New or changed flows (counters from zero).
    pub fresh: usize,
    /// Flows that are gone.
    pub removed: usize,
    /// Names the change concerned (flows deleted or expired).
    pub names: Vec<String>,
    pub build_ms: u64,
}

/// How a field's value is written.
#[derive(Clone, Copy)]
enum Kind {
    Dec,
    Hex,
    Mac,
    Ipv4,
}

/// Fields of up to 8 bytes: name, offset, width in bytes, kind.
const FIELDS: [(&str, usize, usize, Kind); 14] = [
    ("in_port", key::OFF_IN_PORT, 4, Kind::Dec),
    ("eth_src", key::OFF_ETH_SRC, 8, Kind::Mac),
    ("eth_dst", key::OFF_ETH_DST, 8, Kind::Mac),
    ("eth_type", key::OFF_ETH_TYPE, 2, Kind::Hex),
    ("vlan_tci", key::OFF_VLAN_TCI, 2, Kind::Hex),
    ("nw_src", key::OFF_NW_SRC, 4, Kind::Ipv4),
    ("nw_dst", key::OFF_NW_DST, 4, Kind::Ipv4),
    ("ip_proto", key::OFF_IP_PROTO, 1, Kind::Dec),
    ("ip_tos", key::OFF_IP_TOS, 1, Kind::Hex),
    ("arp_op", key::OFF_ARP_OP, 2, Kind::Dec),
    ("tp_src", key::OFF_TP_SRC, 2, Kind::Dec),
    ("tp_dst", key::OFF_TP_DST, 2, Kind::Dec),
    ("tcp_flags", key::OFF_TCP_FLAGS, 2, Kind::Hex),
    ("ip_frag", key::OFF_IP_FRAG, 1, Kind::Hex),
];

fn get(k: &FlowKey, off: usize, width: usize) -> u64 {
    match width {
        1 => k.get::<1>(off),
        2 => k.get::<2>(off),
        4 => k.get::<4>(off),
        _ => k.get::<8>(off),
    }
}

fn value(kind: Kind, v: u64) -> String {
    match kind {
        Kind::Dec => v.to_string(),
        Kind::Hex => format!("{v:#06x}"),
        Kind::Mac => {
            let b = v.to_be_bytes();
            format!(
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                b[2], b[3], b[4], b[5], b[6], b[7]
            )
        }
        Kind::Ipv4 => Ipv4Addr::from(v as u32).to_string(),
    }
}

fn full(width: usize) -> u64 {
    if width >= 8 {
        (1u64 << 48) - 1
    } else {
        (1u64 << (8 * width)) - 1
    }
}

/// One alternative as `field=value[/mask], ...`.
fn one(m: &Match) -> String {
    let mut parts = Vec::new();
    for (name, off, width, kind) in FIELDS {
        let mask = get(&m.mask, off, width);
        if mask == 0 {
            continue;
        }
        let v = value(kind, get(&m.key, off, width));
        if mask == full(width) {
            parts.push(format!("{name}={v}"));
        } else {
            parts.push(format!("{name}={v}/{}", value(kind, mask)));
        }
    }
    for (name, v, mask) in [
        ("ipv6_src", m.key.ipv6_src(), m.mask.ipv6_src()),
        ("ipv6_dst", m.key.ipv6_dst(), m.mask.ipv6_dst()),
    ] {
        if mask == 0 {
            continue;
        }
        let mut s = format!("{name}={}", Ipv6Addr::from(v));
        if mask != u128::MAX {
            let _ = write!(s, "/{}", mask.leading_ones());
        }
        parts.push(s);
    }
    if parts.is_empty() {
        "any".into()
    } else {
        parts.join(", ")
    }
}

/// A flow's match as text; see the [module docs](self).
pub fn match_text(alternatives: &[Match]) -> String {
    let all: Vec<String> = alternatives.iter().map(one).collect();
    if all.is_empty() {
        "any".into()
    } else {
        all.join(" | ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_masks_and_alternatives() {
        assert_eq!(match_text(&[Match::any()]), "any");
        let mut m = Match::any();
        m.key.set_in_port(3);
        m.mask.set_in_port(u32::MAX);
        m.key.put::<2>(key::OFF_ETH_TYPE, 0x0800);
        m.mask.put::<2>(key::OFF_ETH_TYPE, 0xffff);
        m.key.put::<4>(key::OFF_NW_DST, 0x0a00_0000);
        m.mask.put::<4>(key::OFF_NW_DST, 0xffff_ff00);
        m.key.put::<8>(key::OFF_ETH_SRC, 0x0200_0000_0001);
        m.mask.put::<8>(key::OFF_ETH_SRC, (1 << 48) - 1);
        let mut v6 = Match::any();
        v6.key.set_ipv6_dst(1);
        v6.mask.set_ipv6_dst(u128::MAX << 64);
        assert_eq!(
            match_text(&[m, v6]),
            "in_port=3, eth_src=02:00:00:00:00:01, eth_type=0x0800, nw_dst=10.0.0.0/255.255.255.0 | ipv6_dst=::1/64"
        );
    }
}
