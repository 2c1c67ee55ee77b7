//! Memory ports: in-process [`Port`]s for tests, `flowswitch trace` and
//! `flowswitch bench pipeline`.
//!
//! Receive side: frames pushed with [`MemPort::push_rx`] are delivered once,
//! in order; templates given to [`MemPort::repeat_rx`] are delivered after
//! them, round-robin, for ever (or a given number of frames), copied into
//! the worker's own buffers as a device read would: a benchmark source that
//! never allocates.
//!
//! Send side: [`TxMode::Capture`] keeps every frame sent, for
//! [`MemPort::take_tx`]; [`TxMode::Count`] only counts them and leaves the
//! buffers to the worker (a benchmark sink).
//!
//! Both sides take one lock per batch, not per frame.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use super::{Frame, FramePool, Port, PortError, PortId, UpFlag};

/// What a memory port does with the frames it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxMode {
    /// Keep them, for [`MemPort::take_tx`].
    Capture,
    /// Count them only.
    Count,
}

#[derive(Debug, Default)]
struct RxSource {
    queue: VecDeque<Frame>,
    templates: Vec<Vec<u8>>,
    next: usize,
    /// Frames the templates still deliver (`u64::MAX`: no end).
    remaining: u64,
}

/// An in-process port; see the [module docs](self).
#[derive(Debug)]
pub struct MemPort {
    id: PortId,
    name: String,
    up: UpFlag,
    mode: TxMode,
    rx: Mutex<RxSource>,
    /// Whether `rx` may have something to deliver (set and cleared under
    /// its lock): a port with nothing to receive is polled without locking.
    rx_ready: AtomicBool,
    tx: Mutex<Vec<Frame>>,
    rx_frames: AtomicU64,
    tx_frames: AtomicU64,
    tx_bytes: AtomicU64,
}

impl MemPort {
    /// An up port that captures what it is sent.
    pub fn new(id: PortId, name: impl Into<String>) -> Self {
        Self::with_mode(id, name, TxMode::Capture)
    }

    /// An up port with the given send behaviour.
    pub fn with_mode(id: PortId, name: impl Into<String>, mode: TxMode) -> Self {
        MemPort {
            id,
            name: name.into(),
            up: UpFlag::new(true),
            mode,
            rx: Mutex::new(RxSource::default()),
            rx_ready: AtomicBool::new(false),
            tx: Mutex::new(Vec::new()),
            rx_frames: AtomicU64::new(0),
            tx_frames: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
        }
    }

    /// Brings the port up or down.
    pub fn set_up(&self, up: bool) {
        self.up.set(up);
    }

    /// Queues a copy of `bytes` for the pipeline to receive.
    pub fn push_rx(&self, bytes: &[u8]) {
        self.push_rx_frame(Frame::from_bytes(bytes));
    }

    /// Queues a frame for the pipeline to receive.
    pub fn push_rx_frame(&self, frame: Frame) {
        let mut rx = self.rx.lock();
        rx.queue.push_back(frame);
        self.rx_ready.store(true, Ordering::Relaxed);
    }

    /// After the queued frames, delivers `templates` round-robin: `count`
    /// frames in all, or for ever with `None`. Replaces earlier templates.
    pub fn repeat_rx(&self, templates: Vec<Vec<u8>>, count: Option<u64>) {
        let mut rx = self.rx.lock();
        rx.templates = templates;
        rx.next = 0;
        rx.remaining = count.unwrap_or(u64::MAX);
        self.rx_ready.store(true, Ordering::Relaxed);
    }

    /// Frames waiting in the receive queue (templates not counted).
    pub fn rx_pending(&self) -> usize {
        self.rx.lock().queue.len()
    }

    /// Takes the frames captured so far, oldest first.
    pub fn take_tx(&self) -> Vec<Frame> {
        std::mem::take(&mut *self.tx.lock())
    }

    /// Takes the frames captured so far as byte vectors.
    pub fn take_tx_bytes(&self) -> Vec<Vec<u8>> {
        self.take_tx().iter().map(Frame::to_vec).collect()
    }

    /// Frames delivered to the pipeline so far.
    pub fn rx_count(&self) -> u64 {
        self.rx_frames.load(Ordering::Relaxed)
    }

    /// Frames and bytes sent to this port so far (both modes).
    pub fn tx_count(&self) -> (u64, u64) {
        (
            self.tx_frames.load(Ordering::Relaxed),
            self.tx_bytes.load(Ordering::Relaxed),
        )
    }
}

impl Port for MemPort {
    fn id(&self) -> PortId {
        self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn up_flag(&self) -> &UpFlag {
        &self.up
    }

    fn recv(
        &self,
        _queue: u16,
        pool: &mut FramePool,
        out: &mut Vec<Frame>,
        max: usize,
    ) -> Result<usize, PortError> {
        if !self.is_up() || !self.rx_ready.load(Ordering::Relaxed) {
            return Ok(0);
        }
        let mut rx = self.rx.lock();
        let mut n = 0;
        while n < max {
            let Some(f) = rx.queue.pop_front() else { break };
            out.push(f);
            n += 1;
        }
        let RxSource {
            templates,
            next,
            remaining,
            ..
        } = &mut *rx;
        if !templates.is_empty() {
            let take = ((max - n) as u64).min(*remaining) as usize;
            let first = n;
            out.reserve(take);
            for _ in 0..take {
                if *next >= templates.len() {
                    *next = 0;
                }
                let Some(t) = templates.get(*next) else { break };
                *next += 1;
                out.push(pool.get_with(t));
                n += 1;
            }
            if *remaining != u64::MAX {
                *remaining -= (n - first) as u64;
            }
        }
        if rx.queue.is_empty() && (rx.templates.is_empty() || rx.remaining == 0) {
            self.rx_ready.store(false, Ordering::Relaxed);
        }
        drop(rx);
        if n > 0 {
            self.rx_frames.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }

    fn send(&self, _queue: u16, frames: &mut Vec<Frame>) -> Result<usize, PortError> {
        if !self.is_up() {
            return Ok(0);
        }
        let n = frames.len();
        let bytes: usize = frames.iter().map(Frame::len).sum();
        if self.mode == TxMode::Capture {
            self.tx.lock().append(frames);
        }
        self.tx_frames.fetch_add(n as u64, Ordering::Relaxed);
        self.tx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_frames_then_templates() {
        let p = MemPort::new(3, "m");
        let mut pool = FramePool::with_frames(4);
        let mut out = Vec::new();
        assert_eq!(p.recv(0, &mut pool, &mut out, 8).unwrap(), 0);
        p.push_rx(&[1, 2]);
        p.push_rx_frame(Frame::from_bytes(&[3]));
        p.repeat_rx(vec![vec![9], vec![8, 8]], Some(5));
        assert_eq!(p.rx_pending(), 2);
        assert_eq!(p.recv(0, &mut pool, &mut out, 3).unwrap(), 3);
        assert_eq!(p.recv(0, &mut pool, &mut out, 10).unwrap(), 4);
        assert_eq!(p.recv(0, &mut pool, &mut out, 10).unwrap(), 0);
        // Drained, then fed again: the next poll sees it.
        p.push_rx(&[4]);
        assert_eq!(p.recv(0, &mut pool, &mut out, 10).unwrap(), 1);
        assert_eq!(p.recv(0, &mut pool, &mut out, 10).unwrap(), 0);
        p.repeat_rx(vec![vec![5]], Some(1));
        assert_eq!(p.recv(0, &mut pool, &mut out, 10).unwrap(), 1);
        let got: Vec<Vec<u8>> = out.iter().map(|f| f.data().to_vec()).collect();
        assert_eq!(
            got,
            vec![
                vec![1, 2],
                vec![3],
                vec![9],
                vec![8, 8],
                vec![9],
                vec![8, 8],
                vec![9],
                vec![4],
                vec![5]
            ]
        );
        assert_eq!(p.rx_count(), 9);
    }

    #[test]
    fn endless_templates_reuse_pool_buffers() {
        let p = MemPort::with_mode(1, "src", TxMode::Count);
        p.repeat_rx(vec![vec![0xab; 64]], None);
        let mut pool = FramePool::with_frames(32);
        let mut out = Vec::new();
        for _ in 0..100 {
            assert_eq!(p.recv(0, &mut pool, &mut out, 32).unwrap(), 32);
            assert!(out.iter().all(|f| f.data() == [0xab; 64]));
            // Sending in count mode leaves the buffers with the caller.
            assert_eq!(p.send(0, &mut out).unwrap(), 32);
            assert_eq!(out.len(), 32);
            pool.put_all(&mut out);
        }
        assert_eq!(pool.allocated(), 32);
        assert_eq!(p.tx_count(), (3200, 3200 * 64));
        assert!(p.take_tx().is_empty());
    }

    #[test]
    fn capture_keeps_frames_in_order() {
        let p = MemPort::new(2, "sink");
        let mut v = vec![Frame::from_bytes(&[1]), Frame::from_bytes(&[2, 2])];
        assert_eq!(p.send(0, &mut v).unwrap(), 2);
        assert!(v.is_empty());
        let mut v = vec![Frame::from_bytes(&[3])];
        p.send(0, &mut v).unwrap();
        assert_eq!(p.take_tx_bytes(), vec![vec![1], vec![2, 2], vec![3]]);
        assert!(p.take_tx_bytes().is_empty());
        assert_eq!(p.tx_count(), (3, 4));
    }

    #[test]
    fn down_port_neither_sends_nor_receives() {
        let p = MemPort::new(2, "sink");
        p.push_rx(&[1]);
        p.set_up(false);
        let mut pool = FramePool::default();
        let mut out = Vec::new();
        assert_eq!(p.recv(0, &mut pool, &mut out, 4).unwrap(), 0);
        let mut v = vec![Frame::from_bytes(&[1])];
        assert_eq!(p.send(0, &mut v).unwrap(), 0);
        assert_eq!(v.len(), 1);
        assert!(p.take_tx().is_empty());
        p.set_up(true);
        assert_eq!(p.recv(0, &mut pool, &mut out, 4).unwrap(), 1);
    }
}
