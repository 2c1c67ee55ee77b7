//! Counters: per flow, per table, drops by reason, per port and queue.
//!
//! # Design
//!
//! Every counter has one writer, the worker that owns it, and any number of
//! readers. A [`Counter`] is an `AtomicU64` that its owner bumps with a
//! relaxed load and store (a plain `mov` pair on x86: no locked instruction,
//! no cache line shared between workers); readers load it. The blocks of
//! different workers are separate, cache-line aligned allocations, so
//! workers never write the same line. A reader sums the workers' blocks
//! ([`SwitchStats::snapshot`], [`FlowStats::flow`]); the sum is not an
//! atomic snapshot across counters, which is fine for statistics.
//!
//! If two threads did bump one counter, updates could be lost, nothing
//! worse: still no undefined behaviour and no panic.
//!
//! - [`WorkerCounters`] (one per worker, for the switch's lifetime): per
//!   table lookups / matched / missed, drops by [`DropReason`], and per
//!   port rx / tx / drops. A worker serves queue `worker % queues` of each
//!   port, which is how [`SwitchStats::snapshot`] reports per queue.
//! - [`FlowStats`] (one per table generation, since flows are numbered per
//!   generation): per flow packets, bytes and last-used time, one array per
//!   worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::flow::spec::PortId;
use crate::packet::ErrorKind;

/// A statistics counter with a single writer; see the [module docs](self).
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n` (wrapping). Only the owning worker calls this.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Stores `v` (for times such as "last used").
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// The frame could not be parsed; the layer at fault.
    Parse(ErrorKind),
    /// No flow matched in a table whose miss behaviour is `drop`.
    NoMatch,
    /// An explicit `drop` action (or an empty action list).
    Explicit,
    /// Over a meter's rate.
    Meter,
    /// `dec_ttl` on a packet whose TTL / hop limit was 0 or 1.
    Ttl,
    /// A custom eBPF action asked to drop.
    Custom,
    /// Every output went to ports that are down or unknown.
    PortDown,
    /// The actions ended without sending anything (for instance `normal`
    /// to an address learned on the ingress port).
    NoOutput,
    /// A flow program stopped with a run-time error (a helper fault, the
    /// instruction budget).
    Error,
}

/// Drop reasons after the parse errors, in index order.
const OTHER_REASONS: [DropReason; 8] = [
    DropReason::NoMatch,
    DropReason::Explicit,
    DropReason::Meter,
    DropReason::Ttl,
    DropReason::Custom,
    DropReason::PortDown,
    DropReason::NoOutput,
    DropReason::Error,
];

impl DropReason {
    /// Number of reasons: the size of a drop-counter array.
    pub const COUNT: usize = ErrorKind::COUNT + OTHER_REASONS.len();

    /// The DROP return code's reason byte for an explicit drop.
    pub const CODE_EXPLICIT: u8 = 1;
    /// … for a meter.
    pub const CODE_METER: u8 = 2;
    /// … for an expired TTL.
    pub const CODE_TTL: u8 = 3;
    /// … for a custom action.
    pub const CODE_CUSTOM: u8 = 4;

    /// The counter index, `0..COUNT`: parse errors first.
    #[inline]
    pub fn index(self) -> usize {
        match self {
            DropReason::Parse(k) => k.index(),
            DropReason::NoMatch => ErrorKind::COUNT,
            DropReason::Explicit => ErrorKind::COUNT + 1,
            DropReason::Meter => ErrorKind::COUNT + 2,
            DropReason::Ttl => ErrorKind::COUNT + 3,
            DropReason::Custom => ErrorKind::COUNT + 4,
            DropReason::PortDown => ErrorKind::COUNT + 5,
            DropReason::NoOutput => ErrorKind::COUNT + 6,
            DropReason::Error => ErrorKind::COUNT + 7,
        }
    }

    /// The reason with counter index `i`.
    pub fn from_index(i: usize) -> Option<DropReason> {
        match ErrorKind::ALL.get(i) {
            Some(k) => Some(DropReason::Parse(*k)),
            None => OTHER_REASONS.get(i - ErrorKind::COUNT).copied(),
        }
    }

    /// Every reason, in index order.
    pub fn all() -> impl Iterator<Item = DropReason> {
        (0..Self::COUNT).filter_map(Self::from_index)
    }

    /// The reason of a flow program's DROP return code (`3 | reason << 8`).
    pub fn from_code(reason: u8) -> Option<DropReason> {
        match reason {
            Self::CODE_EXPLICIT => Some(DropReason::Explicit),
            Self::CODE_METER => Some(DropReason::Meter),
            Self::CODE_TTL => Some(DropReason::Ttl),
            Self::CODE_CUSTOM => Some(DropReason::Custom),
            _ => None,
        }
    }

    /// A short snake_case name, for counters, `trace --json` and logs.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Parse(k) => match k {
                ErrorKind::Ethernet => "parse_ethernet",
                ErrorKind::Vlan => "parse_vlan",
                ErrorKind::Arp => "parse_arp",
                ErrorKind::Ipv4 => "parse_ipv4",
                ErrorKind::Ipv6 => "parse_ipv6",
                ErrorKind::Ipv6Ext => "parse_ipv6_ext",
                ErrorKind::Tcp => "parse_tcp",
                ErrorKind::Udp => "parse_udp",
                ErrorKind::Icmp => "parse_icmp",
                ErrorKind::Icmpv6 => "parse_icmpv6",
            },
            DropReason::NoMatch => "no_match",
            DropReason::Explicit => "drop",
            DropReason::Meter => "meter",
            DropReason::Ttl => "ttl",
            DropReason::Custom => "ebpf",
            DropReason::PortDown => "port_down",
            DropReason::NoOutput => "no_output",
            DropReason::Error => "error",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Tables a switch can have (ids are `u8`).
pub const TABLES: usize = 256;

/// One table's counters.
#[derive(Debug, Default)]
pub struct TableCounters {
    /// Packets looked up in the table.
    pub lookups: Counter,
    /// … that found a flow.
    pub matched: Counter,
    /// … that found none.
    pub missed: Counter,
}

/// One port's counters (for the queue the worker serves).
#[derive(Debug, Default)]
pub struct PortCounters {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    /// Received but not handled (errors reading the device).
    pub rx_drops: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    /// Meant for this port but not sent: the port was down, or the device
    /// refused the frame.
    pub tx_drops: Counter,
}

/// One worker's long-lived counters; see the [module docs](self).
#[derive(Debug)]
#[repr(align(64))]
pub struct WorkerCounters {
    tables: Box<[TableCounters]>,
    drops: [Counter; DropReason::COUNT],
    ports: Box<[PortCounters]>,
}

impl WorkerCounters {
    /// Counters for `ports` ports (indexed like the worker's port set).
    pub fn new(ports: usize) -> Self {
        WorkerCounters {
            tables: (0..TABLES).map(|_| TableCounters::default()).collect(),
            drops: std::array::from_fn(|_| Counter::default()),
            ports: (0..ports).map(|_| PortCounters::default()).collect(),
        }
    }

    /// The counters of table `id`.
    #[inline]
    pub fn table(&self, id: u8) -> &TableCounters {
        // In range: there is a block for every u8.
        &self.tables[usize::from(id)]
    }

    /// Counts one dropped packet.
    #[inline]
    pub fn count_drop(&self, reason: DropReason) {
        // In range: `index` is below COUNT by construction.
        self.drops[reason.index()].inc();
    }

    /// Packets dropped for `reason` by this worker.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()].get()
    }

    /// The counters of the port at index `idx`, if there is one.
    #[inline]
    pub fn port(&self, idx: usize) -> Option<&PortCounters> {
        self.ports.get(idx)
    }

    /// Ports counted.
    pub fn ports(&self) -> usize {
        self.ports.len()
    }
}

/// One flow's counters in one worker.
#[derive(Debug, Default)]
pub struct FlowCounters {
    pub packets: Counter,
    pub bytes: Counter,
    /// Time of the last packet (the worker's clock, ms); 0 = never.
    pub last_used: Counter,
}

impl FlowCounters {
    /// Counts a packet of `bytes` bytes at `now_ms`.
    #[inline]
    pub fn hit(&self, bytes: u64, now_ms: u64) {
        self.packets.inc();
        self.bytes.add(bytes);
        self.last_used.set(now_ms);
    }
}

/// A flow's counters summed over the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowTotals {
    pub packets: u64,
    pub bytes: u64,
    /// The latest of the workers' last-used times; 0 = never.
    pub last_used: u64,
}

/// A block of per-flow counters of one worker (aligned so that two
/// workers' blocks never share a cache line).
#[derive(Debug)]
#[repr(align(64))]
struct FlowBlock(Box<[FlowCounters]>);

/// Per-flow counters of one table generation: an array per worker.
#[derive(Debug)]
pub struct FlowStats {
    workers: Box<[FlowBlock]>,
    flows: usize,
}

impl FlowStats {
    /// Zeroed counters for `flows` flows and `workers` workers.
    pub fn new(workers: usize, flows: usize) -> Self {
        FlowStats {
            workers: (0..workers)
                .map(|_| FlowBlock((0..flows).map(|_| FlowCounters::default()).collect()))
                .collect(),
            flows,
        }
    }

    /// Worker `w`'s counters of flow `flow`: `None` if either is out of
    /// range.
    #[inline]
    pub fn counters(&self, worker: usize, flow: usize) -> Option<&FlowCounters> {
        self.workers.get(worker)?.0.get(flow)
    }

    /// Worker `w`'s array (index it by flow).
    #[inline]
    pub fn worker(&self, worker: usize) -> Option<&[FlowCounters]> {
        self.workers.get(worker).map(|b| &*b.0)
    }

    /// Flow `flow`'s totals.
    pub fn flow(&self, flow: usize) -> FlowTotals {
        let mut t = FlowTotals::default();
        for c in self.workers.iter().filter_map(|b| b.0.get(flow)) {
            t.packets += c.packets.get();
            t.bytes += c.bytes.get();
            t.last_used = t.last_used.max(c.last_used.get());
        }
        t
    }

    /// Every flow's totals, indexed by flow.
    pub fn totals(&self) -> Vec<FlowTotals> {
        (0..self.flows).map(|f| self.flow(f)).collect()
    }

    pub fn flows(&self) -> usize {
        self.flows
    }
}

/// One table's counters summed over the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableTotals {
    pub lookups: u64,
    pub matched: u64,
    pub missed: u64,
}

/// One port's (or one queue's) counters summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortTotals {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_drops: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_drops: u64,
}

impl PortTotals {
    fn add(&mut self, c: &PortCounters) {
        self.rx_packets += c.rx_packets.get();
        self.rx_bytes += c.rx_bytes.get();
        self.rx_drops += c.rx_drops.get();
        self.tx_packets += c.tx_packets.get();
        self.tx_bytes += c.tx_bytes.get();
        self.tx_drops += c.tx_drops.get();
    }
}

/// A port's totals and its per-queue breakdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortReport {
    pub id: PortId,
    pub total: PortTotals,
    /// Indexed by queue.
    pub queues: Vec<PortTotals>,
}

/// The switch's counters summed over the workers at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Tables with at least one lookup, by id.
    pub tables: Vec<(u8, TableTotals)>,
    /// Every drop reason with a non-zero count, in index order.
    pub drops: Vec<(DropReason, u64)>,
    /// In port-set order.
    pub ports: Vec<PortReport>,
}

impl Snapshot {
    /// Packets dropped for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    /// Table `id`'s totals (zero if it had no lookups).
    pub fn table(&self, id: u8) -> TableTotals {
        self.tables
            .iter()
            .find(|(t, _)| *t == id)
            .map_or_else(TableTotals::default, |(_, c)| *c)
    }
}

/// The long-lived counters of every worker of a switch.
#[derive(Debug)]
pub struct SwitchStats {
    workers: Vec<Arc<WorkerCounters>>,
    /// Per port (in port-set order): id and number of queues.
    ports: Vec<(PortId, u16)>,
}

impl SwitchStats {
    /// Counters for `workers` workers and the ports `(id, queues)`, in the
    /// order of the port set.
    pub fn new(workers: usize, ports: &[(PortId, u16)]) -> Self {
        SwitchStats {
            workers: (0..workers)
                .map(|_| Arc::new(WorkerCounters::new(ports.len())))
                .collect(),
            ports: ports.to_vec(),
        }
    }

    /// Worker `w`'s block (to hand to that worker).
    pub fn worker(&self, w: usize) -> Option<&Arc<WorkerCounters>> {
        self.workers.get(w)
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Sums every worker's counters.
    pub fn snapshot(&self) -> Snapshot {
        let mut tables = Vec::new();
        for id in 0..=u8::MAX {
            let mut t = TableTotals::default();
            for w in &self.workers {
                let c = w.table(id);
                t.lookups += c.lookups.get();
                t.matched += c.matched.get();
                t.missed += c.missed.get();
            }
            if t.lookups != 0 || t.matched != 0 || t.missed != 0 {
                tables.push((id, t));
            }
        }
        let drops = DropReason::all()
            .map(|r| (r, self.workers.iter().map(|w| w.drops(r)).sum::<u64>()))
            .filter(|(_, n)| *n != 0)
            .collect();
        let ports = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, &(id, queues))| {
                let mut total = PortTotals::default();
                let mut per_queue = vec![PortTotals::default(); usize::from(queues.max(1))];
                for (w, counters) in self.workers.iter().enumerate() {
                    if let Some(c) = counters.port(i) {
                        total.add(c);
                        if let Some(q) = per_queue.get_mut(w % usize::from(queues.max(1))) {
                            q.add(c);
                        }
                    }
                }
                PortReport {
                    id,
                    total,
                    queues: per_queue,
                }
            })
            .collect();
        Snapshot {
            tables,
            drops,
            ports,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reasons_are_dense_and_named() {
        let all: Vec<_> = DropReason::all().collect();
        assert_eq!(all.len(), DropReason::COUNT);
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert_eq!(DropReason::from_index(i), Some(*r));
        }
        assert_eq!(DropReason::from_index(DropReason::COUNT), None);
        let names: std::collections::HashSet<_> = all.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::COUNT);
        assert_eq!(
            DropReason::Parse(ErrorKind::Ipv6Ext).to_string(),
            "parse_ipv6_ext"
        );
        assert_eq!(DropReason::from_code(1), Some(DropReason::Explicit));
        assert_eq!(DropReason::from_code(2), Some(DropReason::Meter));
        assert_eq!(DropReason::from_code(3), Some(DropReason::Ttl));
        assert_eq!(DropReason::from_code(4), Some(DropReason::Custom));
        assert_eq!(DropReason::from_code(0), None);
        assert_eq!(DropReason::from_code(5), None);
    }

    #[test]
    fn workers_sum() {
        let s = SwitchStats::new(3, &[(1, 1), (7, 2)]);
        for w in 0..3 {
            let c = s.worker(w).unwrap();
            c.table(0).lookups.add(10);
            c.table(0).matched.add(9);
            c.table(0).missed.inc();
            c.table(3).lookups.inc();
            c.count_drop(DropReason::Meter);
            c.count_drop(DropReason::Parse(ErrorKind::Tcp));
            let p = c.port(1).unwrap();
            p.tx_packets.add(w as u64 + 1);
            p.tx_bytes.add(100);
            c.port(0).unwrap().rx_packets.inc();
        }
        assert!(s.worker(3).is_none());
        let snap = s.snapshot();
        assert_eq!(
            snap.table(0),
            TableTotals {
                lookups: 30,
                matched: 27,
                missed: 3
            }
        );
        assert_eq!(snap.table(3).lookups, 3);
        assert_eq!(snap.table(1), TableTotals::default());
        assert_eq!(snap.tables.len(), 2);
        assert_eq!(snap.drops(DropReason::Meter), 3);
        assert_eq!(snap.drops(DropReason::Parse(ErrorKind::Tcp)), 3);
        assert_eq!(snap.drops(DropReason::Ttl), 0);
        assert_eq!(snap.drops.len(), 2);
        assert_eq!(snap.ports[0].id, 1);
        assert_eq!(snap.ports[0].total.rx_packets, 3);
        assert_eq!(snap.ports[0].queues.len(), 1);
        let p7 = &snap.ports[1];
        assert_eq!(p7.id, 7);
        assert_eq!(p7.total.tx_packets, 6);
        assert_eq!(p7.total.tx_bytes, 300);
        // Workers 0 and 2 serve queue 0, worker 1 queue 1.
        assert_eq!(p7.queues[0].tx_packets, 1 + 3);
        assert_eq!(p7.queues[1].tx_packets, 2);
    }

    #[test]
    fn flow_counters_sum_over_workers() {
        let f = FlowStats::new(2, 3);
        f.counters(0, 1).unwrap().hit(64, 1_000);
        f.counters(1, 1).unwrap().hit(100, 900);
        f.counters(1, 1).unwrap().hit(100, 2_000);
        f.worker(0).unwrap()[2].hit(1, 5);
        assert!(f.counters(2, 0).is_none());
        assert!(f.counters(0, 3).is_none());
        assert_eq!(f.flow(0), FlowTotals::default());
        assert_eq!(
            f.flow(1),
            FlowTotals {
                packets: 3,
                bytes: 264,
                last_used: 2_000
            }
        );
        assert_eq!(f.totals().len(), 3);
        assert_eq!(f.totals()[2].packets, 1);
        assert_eq!(f.flow(99), FlowTotals::default());
    }

    #[test]
    fn counters_are_readable_while_written() {
        let s = Arc::new(SwitchStats::new(2, &[]));
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let c = Arc::clone(s.worker(w).unwrap());
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        c.table(1).lookups.inc();
                    }
                })
            })
            .collect();
        let mut last = 0;
        for _ in 0..100 {
            let n = s.snapshot().table(1).lookups;
            assert!(n >= last && n <= 200_000);
            last = n;
        }
        for h in writers {
            h.join().unwrap();
        }
        assert_eq!(s.snapshot().table(1).lookups, 200_000);
    }
}
