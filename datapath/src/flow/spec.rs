//! A flow as the datapath sees it, after the controller has parsed and
//! validated the YAML: masked matches over the [`FlowKey`], a priority, and an
//! ordered action list.

use super::key::FlowKey;

/// A port id (`ports[].id` in the YAML).
pub type PortId = u32;

/// One masked match: a key `k` matches when `k & mask == key`.
/// `key` has no bits outside `mask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Match {
    pub key: FlowKey,
    pub mask: FlowKey,
}

impl Match {
    /// The match-everything wildcard.
    pub fn any() -> Self {
        Match::default()
    }

    /// Builds a match, clearing key bits outside the mask.
    pub fn new(key: FlowKey, mask: FlowKey) -> Self {
        Match {
            key: key.masked(&mask),
            mask,
        }
    }

    /// Whether `k` matches.
    #[inline]
    pub fn matches(&self, k: &FlowKey) -> bool {
        self.key
            .words
            .iter()
            .zip(k.words.iter().zip(self.mask.words.iter()))
            .all(|(want, (have, m))| have & m == *want)
    }

    /// Whether some key matches both.
    pub fn overlaps(&self, other: &Match) -> bool {
        (0..self.key.words.len()).all(|i| {
            (self.key.words[i] ^ other.key.words[i]) & self.mask.words[i] & other.mask.words[i] == 0
        })
    }

    /// Requires the `N`-byte field at `off` to equal `value` under `mask`.
    /// Returns false (and changes nothing) if this contradicts an existing
    /// requirement on the same bits.
    pub fn require<const N: usize>(&mut self, off: usize, value: u64, mask: u64) -> bool {
        let old_m = self.mask.get::<N>(off);
        let old_v = self.key.get::<N>(off);
        if (old_v ^ value) & old_m & mask != 0 {
            return false;
        }
        self.mask.put::<N>(off, old_m | mask);
        self.key.put::<N>(off, (old_v & old_m) | (value & mask));
        true
    }
}

/// A field `set_field` can rewrite, with its new value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetField {
    EthSrc(u64),
    EthDst(u64),
    Ipv4Src(u32),
    Ipv4Dst(u32),
    Ipv6Src(u128),
    Ipv6Dst(u128),
    IpDscp(u8),
    TcpSrc(u16),
    TcpDst(u16),
    UdpSrc(u16),
    UdpDst(u16),
    VlanVid(u16),
    VlanPcp(u8),
}

/// One action of a flow's ordered action list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    Output(Vec<PortId>),
    InPort,
    Flood,
    Normal,
    /// Explicit drop: stops the list.
    Drop,
    SetField(Vec<SetField>),
    PushVlan {
        vid: u16,
        pcp: u8,
    },
    PopVlan,
    DecTtl,
    /// Index into the switch's meters.
    Meter(u32),
    Mirror(PortId),
    GotoTable(u8),
    /// Index into the switch's custom eBPF action programs.
    Ebpf(u32),
}

/// A flow ready to compile.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowSpec {
    pub name: String,
    pub table: u8,
    pub priority: u16,
    /// Alternatives (a port range becomes several prefix matches); the flow
    /// matches when any alternative does. Never empty.
    pub matches: Vec<Match>,
    /// Index into the switch's custom eBPF filter programs: it must also
    /// return non-zero for the flow to match.
    pub filter: Option<u32>,
    pub actions: Vec<Action>,
    /// Seconds; 0 = never.
    pub idle_timeout: u32,
    pub hard_timeout: u32,
}

impl FlowSpec {
    /// Whether the structured matches of two flows can both match one key.
    pub fn overlaps(&self, other: &FlowSpec) -> bool {
        self.matches
            .iter()
            .any(|a| other.matches.iter().any(|b| a.overlaps(b)))
    }
}

/// The value/mask pairs that cover the inclusive range `lo..=hi` of a
/// `bits`-wide field exactly (at most `2 * bits` of them).
pub fn range_to_prefixes(lo: u64, hi: u64, bits: u32) -> Vec<(u64, u64)> {
    let full = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let mut out = Vec::new();
    if lo > hi || hi > full {
        return out;
    }
    let mut cur = lo;
    loop {
        // The largest aligned block starting at `cur` that stays within `hi`.
        let mut size_log = if cur == 0 {
            bits
        } else {
            cur.trailing_zeros().min(bits)
        };
        while size_log > 0 {
            let last = cur.checked_add((1u64 << size_log) - 1);
            match last {
                Some(l) if l <= hi => break,
                _ => size_log -= 1,
            }
        }
        let block_mask = if size_log >= 64 {
            0
        } else {
            full & !((1u64 << size_log) - 1)
        };
        out.push((cur, block_mask));
        let next = if size_log >= 64 {
            None
        } else {
            cur.checked_add(1u64 << size_log)
        };
        match next {
            Some(n) if n <= hi && n != 0 => cur = n,
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::{OFF_NW_DST, OFF_TP_DST};

    #[test]
    fn prefixes_cover_exactly_the_range() {
        for (lo, hi) in [
            (0u64, 65535u64),
            (80, 80),
            (8000, 8100),
            (1, 65534),
            (0, 0),
            (1024, 2047),
        ] {
            let ps = range_to_prefixes(lo, hi, 16);
            for v in 0..=65535u64 {
                let inside = ps.iter().filter(|(val, m)| v & m == *val).count();
                assert_eq!(
                    inside,
                    usize::from((lo..=hi).contains(&v)),
                    "{lo}-{hi} at {v}"
                );
            }
            assert!(ps.len() <= 32);
        }
        assert_eq!(range_to_prefixes(0, 65535, 16), vec![(0, 0)]);
        assert!(range_to_prefixes(5, 4, 16).is_empty());
    }

    #[test]
    fn require_detects_contradictions_and_overlap_works() {
        let mut a = Match::any();
        assert!(a.require::<4>(OFF_NW_DST, 0x0a00_0000, 0xffff_ff00));
        assert!(a.require::<4>(OFF_NW_DST, 0x0a00_0002, 0xffff_ffff));
        assert!(!a.require::<4>(OFF_NW_DST, 0x0b00_0002, 0xff00_0000));
        let mut b = Match::any();
        assert!(b.require::<2>(OFF_TP_DST, 80, 0xffff));
        assert!(a.overlaps(&b));
        let mut c = Match::any();
        assert!(c.require::<4>(OFF_NW_DST, 0x0a00_0003, 0xffff_ffff));
        assert!(!a.overlaps(&c));
        let mut k = FlowKey::default();
        k.set_nw_dst(0x0a00_0002);
        assert!(a.matches(&k));
        assert!(!c.matches(&k));
    }
}
