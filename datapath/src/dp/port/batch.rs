//! A worker's output queues: frames are queued per port while a batch of
//! packets runs through the flow programs, and each port is sent its queue
//! once at the end of the batch ([`TxBatch::flush`]), in the order the
//! frames were queued.
//!
//! A queued frame is either a copy of a packet, in a buffer from the
//! worker's pool ([`TxBatch::copy_to`]), or the packet's own buffer when it
//! is the packet's last use ([`TxBatch::move_to`], which hands back a free
//! buffer in exchange). After the flush the buffers go back to the pool, so
//! in steady state nothing is allocated.

use super::{Frame, FramePool, PortError, PortSet};
use crate::dp::stats::WorkerCounters;
use crate::packet::vnet::VnetHdr;

/// A worker's output queues; see the [module docs](self).
#[derive(Debug)]
pub struct TxBatch {
    worker: usize,
    /// Indexed by port index.
    queues: Vec<Vec<Frame>>,
    /// Port indices whose queue is not empty, in first-use order.
    dirty: Vec<usize>,
    pool: FramePool,
    queued: usize,
    /// Scratch: frame lengths of the queue being flushed.
    lens: Vec<usize>,
}

/// What one [`TxBatch::flush`] did.
#[derive(Debug, Default)]
pub struct Flushed {
    /// Frames the ports accepted.
    pub sent: usize,
    /// Frames they refused or could not take (down, device errors).
    pub dropped: usize,
    /// The first device error, if any (its frames are among `dropped`).
    pub error: Option<PortError>,
}

impl TxBatch {
    /// Queues for `ports` ports, for worker number `worker` (which picks
    /// the queue of multi-queue ports: `worker % queues`).
    pub fn new(worker: usize, ports: usize) -> Self {
        TxBatch {
            worker,
            queues: (0..ports).map(|_| Vec::new()).collect(),
            dirty: Vec::new(),
            pool: FramePool::default(),
            queued: 0,
            lens: Vec::new(),
        }
    }

    /// The worker's frame pool (receive buffers come from it too).
    #[inline]
    pub fn pool(&mut self) -> &mut FramePool {
        &mut self.pool
    }

    /// Frames queued and not yet flushed.
    #[inline]
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// The frames queued for the port at index `idx`.
    pub fn queue(&self, idx: usize) -> &[Frame] {
        self.queues.get(idx).map_or(&[], |q| q.as_slice())
    }

    #[inline]
    fn queue_mut(&mut self, idx: usize) -> Option<&mut Vec<Frame>> {
        let q = self.queues.get_mut(idx)?;
        if q.is_empty() {
            self.dirty.push(idx);
        }
        self.queued += 1;
        Some(q)
    }

    /// Queues a copy of `bytes` for the port at index `idx`; false (nothing
    /// queued) if there is no such port.
    #[inline]
    pub fn copy_to(&mut self, idx: usize, bytes: &[u8]) -> bool {
        self.copy_offload_to(idx, bytes, VnetHdr::default())
    }

    /// Queues a copy of `bytes` with offload metadata `offload` (the
    /// packet's, for a copy of a frame from an offload port).
    #[inline]
    pub fn copy_offload_to(&mut self, idx: usize, bytes: &[u8], offload: VnetHdr) -> bool {
        if idx >= self.queues.len() {
            return false;
        }
        let mut f = self.pool.get();
        f.set(bytes);
        f.set_offload(offload);
        match self.queue_mut(idx) {
            Some(q) => {
                q.push(f);
                true
            }
            None => false,
        }
    }

    /// Queues `frame` itself for the port at index `idx`, leaving an empty
    /// frame from the pool in its place; false (frame untouched) if there
    /// is no such port.
    #[inline(always)]
    pub fn move_to(&mut self, idx: usize, frame: &mut Frame) -> bool {
        if idx >= self.queues.len() {
            return false;
        }
        let f = std::mem::replace(frame, self.pool.get());
        match self.queue_mut(idx) {
            Some(q) => {
                q.push(f);
                true
            }
            None => false,
        }
    }

    /// Sends every queue to its port and counts the result in `counters`
    /// (tx packets and bytes, tx drops), then recycles the buffers.
    pub fn flush(&mut self, ports: &PortSet, counters: &WorkerCounters) -> Flushed {
        let mut done = Flushed::default();
        for &idx in &self.dirty {
            let Some(q) = self.queues.get_mut(idx) else {
                continue;
            };
            let n = q.len();
            self.lens.clear();
            self.lens.extend(q.iter().map(Frame::len));
            let sent = match ports.get(idx) {
                Some(port) => {
                    let queue = (self.worker % usize::from(port.queues().max(1))) as u16;
                    match port.send(queue, q) {
                        Ok(sent) => sent.min(n),
                        Err(e) => {
                            done.error.get_or_insert(e);
                            0
                        }
                    }
                }
                None => 0,
            };
            if let Some(c) = counters.port(idx) {
                c.tx_packets.add(sent as u64);
                c.tx_bytes
                    .add(self.lens.iter().take(sent).sum::<usize>() as u64);
                c.tx_drops.add((n - sent) as u64);
            }
            done.sent += sent;
            done.dropped += n - sent;
            self.pool.put_all(q);
        }
        self.dirty.clear();
        self.queued = 0;
        done
    }

    /// Re-sizes the queues for a new port set of `ports` ports, dropping
    /// whatever is queued (flush first). The pool stays.
    pub fn reshape(&mut self, ports: usize) {
        self.discard();
        self.queues.resize_with(ports, Vec::new);
    }

    /// Drops everything queued (buffers recycled, nothing counted).
    pub fn discard(&mut self) {
        for &idx in &self.dirty {
            if let Some(q) = self.queues.get_mut(idx) {
                self.pool.put_all(q);
            }
        }
        self.dirty.clear();
        self.queued = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::{MemPort, Port, TxMode};
    use super::*;

    fn ports() -> (Vec<Arc<MemPort>>, PortSet) {
        let mems: Vec<_> = [1, 2, 3]
            .into_iter()
            .map(|id| Arc::new(MemPort::new(id, format!("p{id}"))))
            .collect();
        let set = PortSet::new(mems.iter().map(|m| m.clone() as Arc<dyn Port>).collect()).unwrap();
        (mems, set)
    }

    #[test]
    fn copies_and_moves_flush_in_order() {
        let (mems, set) = ports();
        let counters = WorkerCounters::new(3);
        let mut tx = TxBatch::new(0, 3);
        assert!(tx.copy_to(1, &[1, 1]));
        assert!(tx.copy_to(0, &[2]));
        let mut f = Frame::from_bytes(&[3, 3, 3]);
        assert!(tx.move_to(1, &mut f));
        assert!(f.is_empty());
        assert!(!tx.copy_to(3, &[9]));
        let mut g = Frame::from_bytes(&[4]);
        assert!(!tx.move_to(7, &mut g));
        assert_eq!(g.data(), &[4]);
        assert_eq!(tx.queued(), 3);
        assert_eq!(tx.queue(1).len(), 2);
        let done = tx.flush(&set, &counters);
        assert_eq!((done.sent, done.dropped), (3, 0));
        assert!(done.error.is_none());
        assert_eq!(tx.queued(), 0);
        assert_eq!(mems[0].take_tx_bytes(), vec![vec![2]]);
        assert_eq!(mems[1].take_tx_bytes(), vec![vec![1, 1], vec![3, 3, 3]]);
        assert!(mems[2].take_tx_bytes().is_empty());
        let c = counters.port(1).unwrap();
        assert_eq!((c.tx_packets.get(), c.tx_bytes.get()), (2, 5));
        // A second flush sends nothing.
        assert_eq!(tx.flush(&set, &counters).sent, 0);
    }

    #[test]
    fn down_port_counts_drops() {
        let (mems, set) = ports();
        let counters = WorkerCounters::new(3);
        let mut tx = TxBatch::new(0, 3);
        mems[2].set_up(false);
        tx.copy_to(2, &[1]);
        tx.copy_to(2, &[1, 2]);
        tx.copy_to(0, &[1]);
        let done = tx.flush(&set, &counters);
        assert_eq!((done.sent, done.dropped), (1, 2));
        assert_eq!(counters.port(2).unwrap().tx_drops.get(), 2);
        assert_eq!(counters.port(2).unwrap().tx_packets.get(), 0);
        assert_eq!(tx.pool().available(), 2);
    }

    #[test]
    fn steady_state_does_not_allocate() {
        let sink = Arc::new(MemPort::with_mode(1, "sink", TxMode::Count));
        let set = PortSet::new(vec![sink.clone() as Arc<dyn Port>]).unwrap();
        let counters = WorkerCounters::new(1);
        let mut tx = TxBatch::new(0, 1);
        let mut pkt = Frame::from_bytes(&[7; 64]);
        for _ in 0..1000 {
            for _ in 0..16 {
                tx.copy_to(0, &[5; 64]);
            }
            tx.move_to(0, &mut pkt);
            pkt.set(&[7; 64]);
            tx.flush(&set, &counters);
        }
        assert_eq!(tx.pool().allocated(), 17);
        assert_eq!(sink.tx_count().0, 17_000);
        assert_eq!(counters.port(0).unwrap().tx_bytes.get(), 17_000 * 64);
    }

    #[test]
    fn discard_recycles() {
        let mut tx = TxBatch::new(0, 2);
        tx.copy_to(0, &[1]);
        tx.copy_to(1, &[1]);
        tx.discard();
        assert_eq!(tx.queued(), 0);
        assert!(tx.queue(0).is_empty());
        assert_eq!(tx.pool().available(), 2);
        tx.copy_to(1, &[1]);
        tx.reshape(1);
        assert_eq!(tx.queued(), 0);
        assert!(!tx.copy_to(1, &[1]));
        tx.reshape(3);
        assert!(tx.copy_to(2, &[1]));
        assert_eq!(tx.pool().available(), 1);
    }
}
