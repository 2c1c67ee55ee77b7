//! Ports: what the pipeline receives from and sends to.
//!
//! - [`Port`]: a device with queues that receives and sends batches of
//!   [`Frame`]s. [`TapPort`] is a TAP device (with or without offloads,
//!   one descriptor per queue); [`MemPort`] is the in-process port of
//!   tests, `flowswitch trace` and `flowswitch bench pipeline`.
//! - [`PortSet`]: the switch's ports, in id order, with a dense index per
//!   port (the pipeline and the counters use indices, not ids) and the
//!   VLANs each port carries for `normal` flooding.
//! - [`TxBatch`]: a worker's output queues, one per port, filled while a
//!   batch of packets runs and flushed once per batch.
//! - [`Frame`], [`FrameWindow`], [`FramePool`]: packet buffers with
//!   headroom, recycled so that steady-state forwarding does not allocate.
//!
//! Ownership of buffers: frames circulate between a worker's pool, its rx
//! batch, its tx queues and back. [`Port::recv`] fills frames taken from
//! the worker's pool; [`Port::send`] may keep frames it is given (a
//! [`MemPort`] capturing output does), and the worker recycles those it
//! leaves.

pub mod batch;
pub mod frame;
pub mod mem;
pub mod tagged;
pub mod tap;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use thiserror::Error;

pub use crate::flow::spec::PortId;
pub use batch::{Flushed, TxBatch};
pub use frame::{
    Frame, FrameBuf, FrameError, FramePool, FrameWindow, DEFAULT_DATA_CAPACITY, HEADROOM, POOL_MAX,
};
pub use mem::{MemPort, TxMode};
pub use tagged::TaggedPort;
pub use tap::{TapConfig, TapPort};

/// Port ids below this are indexed through an array; others through a hash
/// map.
const DIRECT_IDS: usize = 4096;
/// Marks an unused entry of the direct index.
const NO_INDEX: u32 = u32::MAX;

/// A port operation that failed.
#[derive(Debug, Error)]
pub enum PortError {
    /// Two ports of a set have the same id.
    #[error("port id {id} is used twice (ports {first:?} and {second:?})")]
    DuplicateId {
        id: PortId,
        first: String,
        second: String,
    },
    /// No port with this id.
    #[error("no port with id {id}")]
    UnknownPort { id: PortId },
    /// A VLAN id outside 0..=4095.
    #[error("vlan id {vid} is outside 0..=4095")]
    BadVlan { vid: u16 },
    /// The device failed.
    #[error("port {name:?} queue {queue}: {source}")]
    Io {
        name: String,
        queue: u16,
        #[source]
        source: std::io::Error,
    },
    /// A TAP device could not be made or configured.
    #[error(transparent)]
    Tap(#[from] crate::sys::tap::TapError),
}

/// A network port: a device with one or more queues.
///
/// Workers call `recv` and `send` on the queue they serve, concurrently with
/// each other; an implementation must be safe for that (a [`MemPort`]
/// locks per batch, a TAP queue is one file descriptor per queue).
pub trait Port: Send + Sync {
    /// The port id (`ports[].id`).
    fn id(&self) -> PortId;

    /// The port name (`ports[].name`).
    fn name(&self) -> &str;

    /// Number of queues (at least 1).
    fn queues(&self) -> u16 {
        1
    }

    /// The port's up flag: whether it can send and receive; outputs to a
    /// port that is down are dropped and counted. Port sets keep a clone,
    /// so that an output checks it without a call through the trait.
    fn up_flag(&self) -> &UpFlag;

    /// Whether the port is up (see [`up_flag`](Self::up_flag)).
    fn is_up(&self) -> bool {
        self.up_flag().get()
    }

    /// Receives up to `max` frames from `queue`, appending them to `out`;
    /// buffers come from `pool`. Returns how many were appended (0 when
    /// nothing is waiting).
    fn recv(
        &self,
        queue: u16,
        pool: &mut FramePool,
        out: &mut Vec<Frame>,
        max: usize,
    ) -> Result<usize, PortError>;

    /// Sends the frames of `frames`, in order, on `queue`; returns how many
    /// went out (the others are dropped). The port may take frames out of
    /// `frames`; those left are the caller's to recycle.
    fn send(&self, queue: u16, frames: &mut Vec<Frame>) -> Result<usize, PortError>;

    /// The descriptor that becomes readable when `queue` has frames, for
    /// a switch worker's epoll; `None` for ports without one (memory
    /// ports are polled).
    fn rx_fd(&self, queue: u16) -> Option<std::os::fd::RawFd> {
        let _ = queue;
        None
    }
}

/// Inside `impl Port for Wrapper`, forwards `id`, `name`, `queues`,
/// `is_up` and `rx_fd` to the port in field `$inner` (an `Arc<dyn Port>`):
/// for ports that wrap another one and change only what goes through
/// `recv` and `send` (switch-side VLAN tagging, pcap capture).
#[macro_export]
macro_rules! forward_port_identity {
    ($inner:ident) => {
        fn id(&self) -> $crate::dp::port::PortId {
            self.$inner.id()
        }

        fn name(&self) -> &str {
            self.$inner.name()
        }

        fn queues(&self) -> u16 {
            self.$inner.queues()
        }

        fn up_flag(&self) -> &$crate::dp::port::UpFlag {
            self.$inner.up_flag()
        }

        fn rx_fd(&self, queue: u16) -> Option<std::os::fd::RawFd> {
            self.$inner.rx_fd(queue)
        }
    };
}

/// A set of VLAN ids (0..=4095) as a bitmap.
#[derive(Clone, PartialEq, Eq)]
pub struct VlanSet {
    bits: [u64; 64],
}

impl std::fmt::Debug for VlanSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries((0..4096u16).filter(|v| self.contains(*v)))
            .finish()
    }
}

impl VlanSet {
    /// The empty set.
    pub fn new() -> Self {
        VlanSet { bits: [0; 64] }
    }

    /// A set of the given ids.
    pub fn of(vids: impl IntoIterator<Item = u16>) -> Result<Self, PortError> {
        let mut s = VlanSet::new();
        for vid in vids {
            s.insert(vid)?;
        }
        Ok(s)
    }

    /// Adds `vid`.
    pub fn insert(&mut self, vid: u16) -> Result<(), PortError> {
        match self.bits.get_mut(usize::from(vid >> 6)) {
            Some(w) if vid < 4096 => {
                *w |= 1 << (vid & 63);
                Ok(())
            }
            _ => Err(PortError::BadVlan { vid }),
        }
    }

    /// Whether `vid` is in the set.
    #[inline]
    pub fn contains(&self, vid: u16) -> bool {
        self.bits
            .get(usize::from(vid >> 6))
            .is_some_and(|w| w & (1 << (vid & 63)) != 0)
    }
}

impl Default for VlanSet {
    fn default() -> Self {
        Self::new()
    }
}

/// Port id to dense index.
#[derive(Debug, Clone, Default)]
struct PortIndex {
    /// `direct[id]` for ids below [`DIRECT_IDS`] (only as long as the
    /// largest such id needs).
    direct: Vec<u32>,
    others: ahash::HashMap<PortId, u32>,
}

impl PortIndex {
    fn insert(&mut self, id: PortId, idx: u32) {
        let i = id as usize;
        if i < DIRECT_IDS {
            if self.direct.len() <= i {
                self.direct.resize(i + 1, NO_INDEX);
            }
            self.direct[i] = idx;
        } else {
            self.others.insert(id, idx);
        }
    }

    #[inline]
    fn get(&self, id: PortId) -> Option<usize> {
        let i = id as usize;
        if i < DIRECT_IDS {
            match self.direct.get(i) {
                Some(&idx) if idx != NO_INDEX => Some(idx as usize),
                _ => None,
            }
        } else {
            self.others.get(&id).map(|&idx| idx as usize)
        }
    }
}

/// A port's up flag, shared by the port and the port sets that hold it.
#[derive(Debug, Clone)]
pub struct UpFlag(Arc<AtomicBool>);

impl UpFlag {
    pub fn new(up: bool) -> Self {
        UpFlag(Arc::new(AtomicBool::new(up)))
    }

    #[inline]
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, up: bool) {
        self.0.store(up, Ordering::Relaxed);
    }
}

/// The switch's ports, sorted by id; a port's index is its position.
#[derive(Clone, Default)]
pub struct PortSet {
    ports: Vec<Arc<dyn Port>>,
    /// The ports' up flags, by index.
    up: Vec<UpFlag>,
    ids: Vec<PortId>,
    index: PortIndex,
    /// VLANs a port carries, for `normal` flooding; `None` = all.
    vlans: Vec<Option<Box<VlanSet>>>,
}

impl std::fmt::Debug for PortSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.ports.iter().map(|p| (p.id(), p.name().to_string())))
            .finish()
    }
}

impl PortSet {
    /// A set of `ports` (any order; ids must be distinct). Every port
    /// carries every VLAN.
    pub fn new(mut ports: Vec<Arc<dyn Port>>) -> Result<Self, PortError> {
        ports.sort_by_key(|p| p.id());
        for pair in ports.windows(2) {
            if let [a, b] = pair {
                if a.id() == b.id() {
                    return Err(PortError::DuplicateId {
                        id: a.id(),
                        first: a.name().to_string(),
                        second: b.name().to_string(),
                    });
                }
            }
        }
        let mut index = PortIndex::default();
        for (i, p) in ports.iter().enumerate() {
            index.insert(p.id(), i as u32);
        }
        Ok(PortSet {
            ids: ports.iter().map(|p| p.id()).collect(),
            up: ports.iter().map(|p| p.up_flag().clone()).collect(),
            vlans: vec![None; ports.len()],
            ports,
            index,
        })
    }

    /// Number of ports.
    #[inline]
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// The index of port `id`.
    #[inline]
    pub fn index_of(&self, id: PortId) -> Option<usize> {
        self.index.get(id)
    }

    /// The port at index `idx`.
    #[inline]
    pub fn get(&self, idx: usize) -> Option<&Arc<dyn Port>> {
        self.ports.get(idx)
    }

    /// The id of the port at index `idx`.
    #[inline]
    pub fn id(&self, idx: usize) -> Option<PortId> {
        self.ids.get(idx).copied()
    }

    /// Port ids in index order.
    pub fn ids(&self) -> &[PortId] {
        &self.ids
    }

    /// Whether the port at `idx` exists and is up.
    #[inline]
    pub fn is_up(&self, idx: usize) -> bool {
        self.up.get(idx).is_some_and(UpFlag::get)
    }

    /// Restricts the VLANs port `id` carries (`None`: all). `normal` floods
    /// a frame of VLAN v (0 = untagged) only to ports that carry v.
    pub fn set_vlans(&mut self, id: PortId, vlans: Option<VlanSet>) -> Result<(), PortError> {
        let idx = self.index_of(id).ok_or(PortError::UnknownPort { id })?;
        if let Some(slot) = self.vlans.get_mut(idx) {
            *slot = vlans.map(Box::new);
        }
        Ok(())
    }

    /// Whether the port at `idx` carries VLAN `vid`.
    #[inline]
    pub fn carries(&self, idx: usize, vid: u16) -> bool {
        match self.vlans.get(idx) {
            Some(Some(set)) => set.contains(vid),
            Some(None) => true,
            None => false,
        }
    }

    /// The same ports as in-process [`MemPort`]s (same ids,
    /// names, up state and VLANs) that keep what they are sent: a trace
    /// against a running switch sends nothing on its devices.
    pub fn shadow(&self) -> PortSet {
        let ports: Vec<Arc<dyn Port>> = self
            .ports
            .iter()
            .map(|p| {
                let m = mem::MemPort::new(p.id(), p.name());
                m.set_up(p.is_up());
                Arc::new(m) as Arc<dyn Port>
            })
            .collect();
        PortSet {
            ids: self.ids.clone(),
            up: ports.iter().map(|p| p.up_flag().clone()).collect(),
            index: self.index.clone(),
            vlans: self.vlans.clone(),
            ports,
        }
    }

    /// `(id, queues)` of every port in index order (for
    /// [`SwitchStats::new`](crate::dp::stats::SwitchStats::new)).
    pub fn queue_layout(&self) -> Vec<(PortId, u16)> {
        self.ports.iter().map(|p| (p.id(), p.queues())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[PortId]) -> PortSet {
        PortSet::new(
            ids.iter()
                .map(|&id| Arc::new(MemPort::new(id, format!("p{id}"))) as Arc<dyn Port>)
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn ports_are_indexed_in_id_order() {
        let s = set(&[7, 1, 100_000, 3]);
        assert_eq!(s.ids(), &[1, 3, 7, 100_000]);
        assert_eq!(s.index_of(1), Some(0));
        assert_eq!(s.index_of(7), Some(2));
        assert_eq!(s.index_of(100_000), Some(3));
        assert_eq!(s.index_of(2), None);
        assert_eq!(s.index_of(5000), None);
        assert_eq!(s.index_of(u32::MAX), None);
        assert_eq!(s.id(3), Some(100_000));
        assert_eq!(s.id(4), None);
        assert_eq!(s.get(1).map(|p| p.name().to_string()), Some("p3".into()));
        assert_eq!(s.queue_layout(), vec![(1, 1), (3, 1), (7, 1), (100_000, 1)]);
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let e = PortSet::new(vec![
            Arc::new(MemPort::new(2, "a")) as Arc<dyn Port>,
            Arc::new(MemPort::new(2, "b")),
        ])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "port id 2 is used twice (ports \"a\" and \"b\")"
        );
    }

    #[test]
    fn vlan_membership() {
        let mut s = set(&[1, 2]);
        assert!(s.carries(0, 10) && s.carries(1, 4095));
        s.set_vlans(2, Some(VlanSet::of([0, 10, 4095]).unwrap()))
            .unwrap();
        assert!(s.carries(1, 10) && s.carries(1, 0) && s.carries(1, 4095));
        assert!(!s.carries(1, 11));
        assert!(!s.carries(2, 10));
        assert!(matches!(
            s.set_vlans(9, None),
            Err(PortError::UnknownPort { id: 9 })
        ));
        assert!(matches!(
            VlanSet::of([4096]),
            Err(PortError::BadVlan { vid: 4096 })
        ));
        assert!(!VlanSet::new().contains(u16::MAX));
        assert_eq!(format!("{:?}", VlanSet::of([3, 64]).unwrap()), "{3, 64}");
    }

    #[test]
    fn up_state() {
        let p = Arc::new(MemPort::new(1, "a"));
        let s = PortSet::new(vec![p.clone() as Arc<dyn Port>]).unwrap();
        assert!(s.is_up(0));
        p.set_up(false);
        assert!(!s.is_up(0));
        assert!(!s.is_up(1));
    }

    #[test]
    fn a_shadow_keeps_ids_vlans_and_state_but_not_the_devices() {
        let a = Arc::new(mem::MemPort::new(4, "a"));
        let b = Arc::new(mem::MemPort::new(2, "b"));
        b.set_up(false);
        let mut s =
            PortSet::new(vec![a.clone() as Arc<dyn Port>, b.clone() as Arc<dyn Port>]).unwrap();
        s.set_vlans(4, Some(VlanSet::of([10]).unwrap())).unwrap();
        let sh = s.shadow();
        assert_eq!(sh.ids(), &[2, 4]);
        assert_eq!(sh.index_of(4), Some(1));
        assert!(!sh.is_up(0));
        assert!(sh.is_up(1));
        assert!(sh.carries(1, 10) && !sh.carries(1, 11));
        assert_eq!(sh.get(1).map(|p| p.name().to_string()), Some("a".into()));
        assert!(!Arc::ptr_eq(sh.get(1).unwrap(), s.get(1).unwrap()));
    }
}
