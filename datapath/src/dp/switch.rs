//! The switch runtime: worker threads that move frames between real ports
//! (TAP devices) through the pipeline, driven by epoll.
//!
//! # What?
//!
//! [`Switch::start`] spawns `threads` workers. The ports' (port, queue)
//! pairs are dealt round-robin over the workers (pair k to worker
//! k mod threads); each worker registers the receive descriptors of its
//! pairs ([`Port::rx_fd`]) in its own epoll instance and sleeps in
//! `epoll_wait` until one is readable: idle workers cost nothing and a
//! 2-core machine is left to the hosts. On a readable queue
//! the worker reads batches of up to [`SwitchConfig::batch`] frames until
//! the queue is empty (or [`MAX_ROUNDS`] batches, for fairness between
//! queues: the descriptor is level-triggered, so the rest waits for the
//! next turn), runs each batch through its [`Worker`] and flushes its own
//! output queues (each worker has its own tx path: its `TxBatch`, and
//! queue `worker mod queues` of multi-queue ports).
//!
//! Ports without a descriptor (memory ports) are polled at every wake-up.
//!
//! # Polling while traffic flows
//!
//! Waking a sleeping thread costs tens of microseconds on a VM (the vCPU
//! halts and must be woken by an interrupt), and a TCP stream through the
//! switch pays that twice per round trip, frame and ACK. So for
//! [`SwitchConfig::busy_poll_us`] after the last frame it received a
//! worker polls (`epoll_wait` with a zero timeout) instead of sleeping,
//! calling `sched_yield` between polls so that any other runnable thread
//! on its core (a host, the other worker) goes first: the poll only takes
//! time that would otherwise be idle. Once the budget passes without a
//! frame it sleeps as above; a switch without traffic never polls. 0
//! turns polling off.
//!
//! # What changes at run time
//!
//! - The table generation: workers follow the published one
//!   ([`Worker::follow`]) and switch between batches.
//! - The ports: [`Switch::add_port`] and [`Switch::remove_port`] publish a
//!   new [`PortEpoch`] (port set and counters); each worker notices it
//!   after its current batch (at most [`SwitchConfig::poll_ms`] later when
//!   idle), flushes, re-registers its descriptors and carries on. Each
//!   epoch has its own counters; [`Switch::snapshot`] adds up those of
//!   every epoch, for the ports of the current one.
//! - A port whose device disappears returns errors and marks itself down
//!   (see [`TapPort`](crate::dp::port::TapPort)): the worker then drops
//!   its descriptor from epoll; the others keep forwarding. An error of a
//!   port that is still up is counted and the queue read again later.
//!
//! Packets are stamped with [`clock::ns_since`] the switch's origin
//! ([`SwitchConfig::origin`], or when it started; see
//! [`Switch::clock_origin`]), so a controller can read the same clock for
//! idle timeouts and idle ages.
//!
//! [`Switch::stop`] sets the stop flag; each worker leaves within
//! `poll_ms`, flushing what it has queued.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use thiserror::Error;

use super::clock;
use super::mac::MacTable;
use super::meter::Meters;
use super::pipeline::{Generation, Worker, WorkerConfig};
use super::port::{Port, PortError, PortId, PortSet, VlanSet};
use super::stats::{PortTotals, Snapshot, SwitchStats};
use crate::sys::epoll::Epoll;

/// Most batches read from one queue per wake-up before the worker turns
/// to its other queues.
pub const MAX_ROUNDS: usize = 16;

/// Why the switch cannot start or change.
#[derive(Debug, Error)]
pub enum SwitchError {
    #[error(transparent)]
    Port(#[from] PortError),
    /// The generation has per-flow counters for fewer workers.
    #[error("generation built for {generation} workers, the switch has {threads}")]
    Workers { generation: usize, threads: usize },
    /// A port id that is already in use.
    #[error("port id {id} is already in use")]
    Exists { id: PortId },
    /// No port with this id.
    #[error("no port with id {id}")]
    NoPort { id: PortId },
    /// A thread or epoll instance could not be made.
    #[error("{what}: {source}")]
    Os {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// The default [`SwitchConfig::busy_poll_us`]: long enough to bridge the
/// gap between a TCP stream's frames and its ACKs (a 1-stream iperf3 run
/// gains 20-30% on the 2-core VM), short enough that a worker is asleep
/// within a fraction of a millisecond after traffic stops.
pub const DEFAULT_BUSY_POLL_US: u32 = 200;

/// Switch settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchConfig {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Frames read per batch.
    pub batch: usize,
    /// Longest sleep in `epoll_wait`, in ms: how late an idle worker
    /// notices a stop request or a new port set.
    pub poll_ms: i32,
    /// How long, in µs, a worker keeps polling its queues (yielding the
    /// core between polls) after the last frame it received, before it
    /// sleeps again; 0: it always sleeps.
    pub busy_poll_us: u32,
    pub worker: WorkerConfig,
    /// The origin of the packet clock (`None`: when the switch starts).
    pub origin: Option<Instant>,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        SwitchConfig {
            threads: 1,
            batch: 64,
            poll_ms: 50,
            busy_poll_us: DEFAULT_BUSY_POLL_US,
            worker: WorkerConfig::default(),
            origin: None,
        }
    }
}

/// The switch's ports and the VLANs each carries, by id.
type PortMap = HashMap<PortId, (Arc<dyn Port>, Option<VlanSet>)>;

/// The ports workers serve, with the counters made for them.
#[derive(Debug)]
pub struct PortEpoch {
    /// Increases with each change.
    pub epoch: u64,
    pub ports: Arc<PortSet>,
    pub stats: Arc<SwitchStats>,
}

/// What the switch and its workers share.
struct Shared {
    config: SwitchConfig,
    epoch: ArcSwap<PortEpoch>,
    generation: Arc<ArcSwap<Generation>>,
    mac: Arc<MacTable>,
    meters: Arc<Meters>,
    stop: AtomicBool,
    /// Ports and their VLAN sets, by id; changed under this lock.
    edit: Mutex<PortMap>,
    /// Receive errors seen by workers (gone devices among them).
    rx_errors: AtomicU64,
    /// The port epoch each worker serves.
    serving: Vec<AtomicU64>,
    /// Counters of earlier epochs (workers may still count into the one
    /// just replaced).
    retired: Mutex<Vec<Arc<SwitchStats>>>,
    /// The origin of the packet clock ([`clock::ns_since`]).
    clock: Instant,
}

/// A running switch; see the [module docs](self).
pub struct Switch {
    shared: Arc<Shared>,
    /// Taken (and joined) by [`Switch::stop`].
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Switch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switch")
            .field("ports", &self.shared.epoch.load().ports)
            .field("threads", &self.shared.config.threads)
            .finish_non_exhaustive()
    }
}

fn make_epoch(epoch: u64, ports: &PortMap, workers: usize) -> Result<PortEpoch, PortError> {
    let mut set = PortSet::new(ports.values().map(|(p, _)| Arc::clone(p)).collect())?;
    for (id, (_, vlans)) in ports {
        if vlans.is_some() {
            set.set_vlans(*id, vlans.clone())?;
        }
    }
    let stats = SwitchStats::new(workers, &set.queue_layout());
    Ok(PortEpoch {
        epoch,
        ports: Arc::new(set),
        stats: Arc::new(stats),
    })
}

impl Switch {
    /// Starts `config.threads` workers over `ports` (each with the VLANs
    /// it carries for `normal` flooding, `None` = all) and `generation`
    /// (built for at least that many workers).
    pub fn start(
        ports: Vec<(Arc<dyn Port>, Option<VlanSet>)>,
        mac: MacTable,
        meters: Meters,
        generation: Arc<Generation>,
        config: SwitchConfig,
    ) -> Result<Self, SwitchError> {
        let config = SwitchConfig {
            threads: config.threads.max(1),
            batch: config.batch.max(1),
            ..config
        };
        if generation.workers() < config.threads {
            return Err(SwitchError::Workers {
                generation: generation.workers(),
                threads: config.threads,
            });
        }
        let mut map = HashMap::new();
        for (p, v) in ports {
            let id = p.id();
            if map.insert(id, (p, v)).is_some() {
                return Err(SwitchError::Exists { id });
            }
        }
        let epoch = make_epoch(0, &map, config.threads)?;
        let shared = Arc::new(Shared {
            config,
            epoch: ArcSwap::from_pointee(epoch),
            generation: Arc::new(ArcSwap::new(generation)),
            mac: Arc::new(mac),
            meters: Arc::new(meters),
            stop: AtomicBool::new(false),
            edit: Mutex::new(map),
            rx_errors: AtomicU64::new(0),
            serving: (0..config.threads).map(|_| AtomicU64::new(0)).collect(),
            retired: Mutex::new(Vec::new()),
            clock: config.origin.unwrap_or_else(Instant::now),
        });
        let sw = Switch {
            shared,
            threads: Mutex::new(Vec::new()),
        };
        for index in 0..config.threads {
            let ep = Epoll::new().map_err(|source| SwitchError::Os {
                what: "epoll_create1",
                source,
            })?;
            let shared = Arc::clone(&sw.shared);
            let t = std::thread::Builder::new()
                .name(format!("fs-worker-{index}"))
                .spawn(move || worker_loop(index, &shared, ep))
                .map_err(|source| SwitchError::Os {
                    what: "spawn worker",
                    source,
                })?;
            sw.threads.lock().push(t);
        }
        Ok(sw)
    }

    /// Replaces the table generation (built for at least this switch's
    /// workers); workers switch between batches.
    pub fn publish(&self, generation: Arc<Generation>) -> Result<(), SwitchError> {
        if generation.workers() < self.shared.config.threads {
            return Err(SwitchError::Workers {
                generation: generation.workers(),
                threads: self.shared.config.threads,
            });
        }
        self.shared.generation.store(generation);
        Ok(())
    }

    /// The current generation.
    pub fn generation(&self) -> Arc<Generation> {
        self.shared.generation.load_full()
    }

    /// The current ports and counters.
    pub fn epoch(&self) -> Arc<PortEpoch> {
        self.shared.epoch.load_full()
    }

    /// The current port set (that of [`epoch`](Self::epoch)).
    pub fn ports(&self) -> Arc<PortSet> {
        Arc::clone(&self.shared.epoch.load().ports)
    }

    pub fn mac_table(&self) -> &Arc<MacTable> {
        &self.shared.mac
    }

    pub fn meters(&self) -> &Arc<Meters> {
        &self.shared.meters
    }

    /// Worker threads.
    pub fn workers(&self) -> usize {
        self.shared.config.threads
    }

    /// The origin of the clock packets are stamped with: their time is
    /// [`clock::ns_since`] this instant.
    pub fn clock_origin(&self) -> Instant {
        self.shared.clock
    }

    /// Whether every worker serves the current port set (after
    /// [`add_port`](Self::add_port) / [`remove_port`](Self::remove_port),
    /// within one batch or `poll_ms`).
    pub fn settled(&self) -> bool {
        let e = self.shared.epoch.load().epoch;
        self.shared
            .serving
            .iter()
            .all(|s| s.load(Ordering::Acquire) == e)
    }

    /// The counters summed over the workers and over every port epoch:
    /// tables and drops in all, ports those of the current set (with
    /// what they counted before the last changes).
    pub fn snapshot(&self) -> Snapshot {
        let mut snap = self.shared.epoch.load().stats.snapshot();
        for old in self.shared.retired.lock().iter() {
            merge(&mut snap, old.snapshot());
        }
        snap
    }

    /// Receive errors the workers met (a deleted device gives one).
    pub fn rx_errors(&self) -> u64 {
        self.shared.rx_errors.load(Ordering::Relaxed)
    }

    fn republish(&self, map: &PortMap) -> Result<(), SwitchError> {
        let next = self.shared.epoch.load().epoch + 1;
        let e = make_epoch(next, map, self.shared.config.threads)?;
        let old = self.shared.epoch.swap(Arc::new(e));
        self.shared.retired.lock().push(Arc::clone(&old.stats));
        Ok(())
    }

    /// Adds a port while the switch runs.
    pub fn add_port(&self, port: Arc<dyn Port>, vlans: Option<VlanSet>) -> Result<(), SwitchError> {
        let mut map = self.shared.edit.lock();
        let id = port.id();
        if map.contains_key(&id) {
            return Err(SwitchError::Exists { id });
        }
        map.insert(id, (port, vlans));
        if let Err(e) = self.republish(&map) {
            map.remove(&id);
            return Err(e);
        }
        Ok(())
    }

    /// Removes port `id` while the switch runs and returns it (workers
    /// stop using it within one batch or `poll_ms`; dropping the last
    /// reference closes its device).
    pub fn remove_port(&self, id: PortId) -> Result<Arc<dyn Port>, SwitchError> {
        let mut map = self.shared.edit.lock();
        let (port, vlans) = map.remove(&id).ok_or(SwitchError::NoPort { id })?;
        if let Err(e) = self.republish(&map) {
            map.insert(id, (port, vlans));
            return Err(e);
        }
        Ok(port)
    }

    /// Stops the workers, waits for them and lets the ports go (dropping
    /// the last reference to a port closes its device); once, later calls
    /// return at once. The switch stops forwarding for good; take a
    /// [`snapshot`](Self::snapshot) before if the port counters matter.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut *self.threads.lock());
        if threads.is_empty() {
            return;
        }
        for t in threads {
            let _ = t.join();
        }
        let mut map = self.shared.edit.lock();
        map.clear();
        // An empty set cannot fail to build; if it did, the ports stay
        // referenced until the switch is dropped.
        let _ = self.republish(&map);
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Adds `b` to `a`.
fn add_totals(a: &mut PortTotals, b: &PortTotals) {
    a.rx_packets += b.rx_packets;
    a.rx_bytes += b.rx_bytes;
    a.rx_drops += b.rx_drops;
    a.tx_packets += b.tx_packets;
    a.tx_bytes += b.tx_bytes;
    a.tx_drops += b.tx_drops;
}

/// Adds `other`'s counts to `into`: tables and drops by key, ports only
/// where `into` has them.
fn merge(into: &mut Snapshot, other: Snapshot) {
    for (id, t) in other.tables {
        match into.tables.iter_mut().find(|(i, _)| *i == id) {
            Some((_, x)) => {
                x.lookups += t.lookups;
                x.matched += t.matched;
                x.missed += t.missed;
            }
            None => into.tables.push((id, t)),
        }
    }
    into.tables.sort_by_key(|(id, _)| *id);
    for (r, n) in other.drops {
        match into.drops.iter_mut().find(|(x, _)| *x == r) {
            Some((_, x)) => *x += n,
            None => into.drops.push((r, n)),
        }
    }
    into.drops.sort_by_key(|(r, _)| r.index());
    for p in other.ports {
        if let Some(x) = into.ports.iter_mut().find(|x| x.id == p.id) {
            add_totals(&mut x.total, &p.total);
            for (q, t) in x.queues.iter_mut().zip(&p.queues) {
                add_totals(q, t);
            }
        }
    }
}

/// One (port index, queue) a worker serves.
#[derive(Debug, Clone, Copy)]
struct Slot {
    idx: usize,
    queue: u16,
    fd: Option<std::os::fd::RawFd>,
    /// Failed (device gone): no longer read.
    dead: bool,
}

/// The slots of worker `index` of `threads` in `ports`, registered in `ep`
/// (token = slot number).
fn assign(ports: &PortSet, index: usize, threads: usize, ep: &Epoll) -> Vec<Slot> {
    let mut slots = Vec::new();
    let mut k = 0;
    for idx in 0..ports.len() {
        let Some(p) = ports.get(idx) else { continue };
        for queue in 0..p.queues().max(1) {
            if k % threads == index {
                let fd = p.rx_fd(queue);
                let token = slots.len() as u64;
                let fd = fd.filter(|fd| ep.add(*fd, token).is_ok());
                slots.push(Slot {
                    idx,
                    queue,
                    fd,
                    dead: false,
                });
            }
            k += 1;
        }
    }
    slots
}

fn unregister(slots: &[Slot], ep: &Epoll) {
    for s in slots {
        if let (Some(fd), false) = (s.fd, s.dead) {
            let _ = ep.remove(fd);
        }
    }
}

/// Reads and runs batches from one slot until its queue is empty; returns
/// the number of frames received.
fn serve(
    worker: &mut Worker,
    shared: &Shared,
    ports: &PortSet,
    slot: &mut Slot,
    ep: &Epoll,
) -> usize {
    let Some(port) = ports.get(slot.idx) else {
        return 0;
    };
    let batch = shared.config.batch;
    let mut total = 0;
    for _ in 0..MAX_ROUNDS {
        let now = clock::ns_since(shared.clock);
        let n = match worker.receive(ports, slot.idx, slot.queue, batch, now) {
            Ok(n) => n,
            Err(_) => {
                shared.rx_errors.fetch_add(1, Ordering::Relaxed);
                // A port that failed for good (its device is gone) is
                // down: stop watching it. Other errors are transient.
                if !port.is_up() {
                    if let Some(fd) = slot.fd {
                        let _ = ep.remove(fd);
                    }
                    slot.dead = true;
                }
                0
            }
        };
        if n == 0 {
            break;
        }
        total += n;
        worker.flush();
        if n < batch {
            break;
        }
    }
    total
}

fn worker_loop(index: usize, shared: &Shared, mut ep: Epoll) {
    let threads = shared.config.threads;
    let mut epoch = shared.epoch.load_full();
    let counters = |e: &PortEpoch| {
        e.stats
            .worker(index)
            .cloned()
            .unwrap_or_else(|| Arc::new(super::stats::WorkerCounters::new(e.ports.len())))
    };
    let mut worker = Worker::new(
        index,
        shared.generation.load_full(),
        Arc::clone(&epoch.ports),
        Arc::clone(&shared.mac),
        Arc::clone(&shared.meters),
        counters(&epoch),
        shared.config.worker,
    );
    worker.follow(Arc::clone(&shared.generation));
    let mut slots = assign(&epoch.ports, index, threads, &ep);
    let mut ready = Vec::new();
    let busy_poll = Duration::from_micros(u64::from(shared.config.busy_poll_us));
    // Until when the worker polls instead of sleeping (traffic came
    // recently); `None`: it sleeps in epoll_wait.
    let mut poll_until: Option<Instant> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        let cur = shared.epoch.load();
        if cur.epoch != epoch.epoch {
            worker.flush();
            unregister(&slots, &ep);
            epoch = arc_swap::Guard::into_inner(cur);
            worker.set_ports(Arc::clone(&epoch.ports), counters(&epoch));
            slots = assign(&epoch.ports, index, threads, &ep);
            if let Some(s) = shared.serving.get(index) {
                s.store(epoch.epoch, Ordering::Release);
            }
        }
        ready.clear();
        let polled = slots.iter().any(|s| s.fd.is_none() && !s.dead);
        let polling = poll_until.is_some_and(|t| Instant::now() < t);
        let timeout = match (polling, polled) {
            (true, _) => 0,
            (false, true) => 1,
            (false, false) => shared.config.poll_ms,
        };
        if ep.wait(timeout, &mut ready).is_err() {
            std::thread::sleep(Duration::from_millis(1));
        }
        if polling && ready.is_empty() && !polled {
            // Nothing yet: let whatever else wants this core run first.
            std::thread::yield_now();
            continue;
        }
        worker.refresh();
        let mut received = 0;
        for &token in &ready {
            if let Some(slot) = slots.get_mut(token as usize) {
                if !slot.dead {
                    received += serve(&mut worker, shared, &epoch.ports, slot, &ep);
                }
            }
        }
        if polled {
            for slot in slots.iter_mut().filter(|s| s.fd.is_none() && !s.dead) {
                received += serve(&mut worker, shared, &epoch.ports, slot, &ep);
            }
        }
        if received > 0 && !busy_poll.is_zero() {
            poll_until = Some(Instant::now() + busy_poll);
        } else if !polling {
            poll_until = None;
        }
    }
    worker.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dp::mac::MacConfig;
    use crate::dp::pipeline::{GenerationSpec, MissPolicy};
    use crate::dp::port::MemPort;
    use crate::ebpf::engine::Engine;
    use crate::packet::build;

    fn generation(workers: usize) -> Arc<Generation> {
        Arc::new(
            Generation::build(&GenerationSpec {
                flows: &[],
                filters: &[],
                actions: &[],
                miss: MissPolicy::Flood,
                engine: Engine::Jit,
                workers,
                maps: None,
            })
            .unwrap(),
        )
    }

    fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
        for _ in 0..500 {
            if cond() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn memory_ports_flood_and_ports_come_and_go() {
        let mems: Vec<_> = (1..=2)
            .map(|i| Arc::new(MemPort::new(i, format!("m{i}"))))
            .collect();
        let sw = Switch::start(
            mems.iter()
                .map(|m| (Arc::clone(m) as Arc<dyn Port>, None))
                .collect(),
            MacTable::with_seed(MacConfig::default(), 1),
            Meters::new([]).unwrap(),
            generation(2),
            SwitchConfig {
                threads: 2,
                ..SwitchConfig::default()
            },
        )
        .unwrap();
        let frame = build::udp4(
            [2, 0, 0, 0, 0, 1],
            [0xff; 6],
            [10, 0, 0, 1].into(),
            [10, 0, 0, 2].into(),
            1,
            2,
            b"hi",
        );
        mems[0].push_rx(&frame);
        assert!(wait_for(|| mems[1].tx_count().0 == 1));
        assert_eq!(mems[1].take_tx_bytes(), vec![frame.clone()]);
        // A third port joins and is flooded to.
        let m3 = Arc::new(MemPort::new(3, "m3"));
        sw.add_port(m3.clone(), None).unwrap();
        assert!(matches!(
            sw.add_port(m3.clone(), None),
            Err(SwitchError::Exists { id: 3 })
        ));
        assert_eq!(sw.epoch().epoch, 1);
        assert!(wait_for(|| sw.settled()));
        mems[0].push_rx(&frame);
        assert!(wait_for(
            || m3.tx_count().0 == 1 && mems[1].tx_count().0 == 2
        ));
        // Counters add up over the two port sets (the tx counters are
        // added just after the port took the frames: wait for them).
        let want = (2, 2 * frame.len() as u64, 2, 1);
        assert!(wait_for(|| {
            let snap = sw.snapshot();
            let port = |id| snap.ports.iter().find(|p| p.id == id).map(|p| p.total);
            let (Some(p1), Some(p2), Some(p3)) = (port(1), port(2), port(3)) else {
                return false;
            };
            (p1.rx_packets, p1.rx_bytes, p2.tx_packets, p3.tx_packets) == want
        }));
        // Port 2 leaves: floods reach port 3 only.
        sw.remove_port(2).unwrap();
        assert!(matches!(
            sw.remove_port(2),
            Err(SwitchError::NoPort { id: 2 })
        ));
        assert!(wait_for(|| sw.settled()));
        mems[0].push_rx(&frame);
        assert!(wait_for(|| m3.tx_count().0 == 2));
        // The flood that reached port 3 would have reached port 2 in the
        // same flush.
        assert_eq!(mems[1].tx_count().0, 2);
        // Port 3 is now second in the port set (where port 2 was): what it
        // receives counts on port 3.
        m3.push_rx(&frame);
        assert!(wait_for(|| mems[0].tx_count().0 == 1));
        assert!(wait_for(|| {
            let snap = sw.snapshot();
            let rx = |id| {
                snap.ports
                    .iter()
                    .find(|p| p.id == id)
                    .map(|p| p.total.rx_packets)
            };
            rx(3) == Some(1) && rx(1) == Some(3)
        }));
        sw.stop();
    }

    #[test]
    fn generation_must_cover_the_workers() {
        let e = Switch::start(
            Vec::new(),
            MacTable::with_seed(MacConfig::default(), 1),
            Meters::new([]).unwrap(),
            generation(1),
            SwitchConfig {
                threads: 2,
                ..SwitchConfig::default()
            },
        )
        .unwrap_err();
        assert!(matches!(
            e,
            SwitchError::Workers {
                generation: 1,
                threads: 2
            }
        ));
    }
}
