//! TAP ports: a [`Port`] over a Linux TAP device, one non-blocking
//! descriptor per queue.
//!
//! # What?
//!
//! - **Offload ports** (`offload: true`, the default): `IFF_VNET_HDR` and
//!   `TUNSETOFFLOAD` (checksum, TSO4, TSO6). Each frame read starts with a
//!   virtio-net header, which becomes the frame's offload metadata
//!   ([`Frame::offload`]); each frame written gets its metadata back as a
//!   header, so checksum-less frames and 64 KiB TSO super-frames go from
//!   one offload port to another as they are. `queues > 1` adds
//!   `IFF_MULTI_QUEUE`.
//! - **Plain ports** (`offload: false`): frames as they are on the wire,
//!   opened with the `tun-tap` crate (or `sys::tap` for several queues).
//!   A frame with offload metadata sent to one is completed in software
//!   first: its checksum filled in, a super-frame cut into segments
//!   (`packet::gso`).
//!
//! Before a frame with a partial checksum leaves, its pseudo-header sum is
//! written afresh from its IP header (`gso::refresh_pseudo`): a flow's
//! `set_field` may have changed the addresses or ports and updated the
//! field as if it held a complete checksum.
//!
//! `recv` reads frames until the queue is empty (`EAGAIN`), `max` frames
//! or [`RX_BATCH_BYTES`] (so that a batch of super-frames stays in the
//! cache until it is written out); each
//! read goes straight into a pool frame grown to [`RX_LEN`] (the pool
//! keeps the grown buffers), and the header is stripped by moving the
//! frame's start, not by copying. `send` writes each frame with one
//! `write`, the header pushed into the frame's headroom.
//!
//! # Device gone
//!
//! A TAP moved into another namespace stays attached (the descriptor
//! keeps working). When its device is deleted (the namespace it was in
//! was removed), reads and writes fail with `EBADFD` (or `ENODEV`,
//! `ENXIO`): the port is then marked down, for good, and
//! counted ([`TapPort::is_gone`]); outputs to it are dropped and counted
//! as tx drops, and the other ports keep forwarding. `EIO` is not such an
//! error: a write to a TAP whose interface is down (for a moment while it
//! moves to another namespace) gets it, and only that frame is dropped.

use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use super::{Frame, FrameBuf, FramePool, Port, PortError, PortId, UpFlag};
use crate::packet::gso;
use crate::packet::vnet::{Gso, VnetHdr};
use crate::packet::MAX_FRAME_LEN;
use crate::sys::tap::{self, TapFlags, TapQueue, VNET_HDR_LEN};

/// Bytes a receive buffer offers a read: the longest frame and a header.
pub const RX_LEN: usize = MAX_FRAME_LEN + VNET_HDR_LEN;

/// Bytes after which `recv` ends a batch early: a batch of 64 super-frames
/// would be 4 MiB, more than the cache holds, so their bytes would be read
/// back from memory when they are written out.
pub const RX_BATCH_BYTES: usize = 256 * 1024;

/// How to make a TAP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapConfig {
    pub id: PortId,
    /// The device name (at most 15 bytes).
    pub name: String,
    /// virtio-net header and offloads.
    pub offload: bool,
    /// Queues (descriptors), at least 1.
    pub queues: u16,
    /// MTU to set (`None`: the kernel's default, 1,500).
    pub mtu: Option<u32>,
}

/// One queue: its descriptor and a scratch buffer for software
/// segmentation (only the worker sending on the queue takes it).
#[derive(Debug)]
struct Queue {
    fd: TapQueue,
    scratch: Mutex<Vec<u8>>,
}

/// A TAP device as a port; see the [module docs](self).
#[derive(Debug)]
pub struct TapPort {
    id: PortId,
    name: String,
    offload: bool,
    queues: Vec<Queue>,
    up: UpFlag,
    gone: AtomicBool,
    /// Frames read with a header that does not parse.
    bad_headers: AtomicU64,
    /// Frames that a software offload could not complete.
    offload_errors: AtomicU64,
    /// Times the device was found gone (0 or 1).
    gone_events: AtomicU64,
    /// Super-frames cut into segments for this (plain) port.
    segmented: AtomicU64,
    /// Frames read while the port was down (discarded).
    rx_discarded: AtomicU64,
}

/// Errors that mean the device is no longer there.
fn is_gone_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBADFD | libc::ENODEV | libc::ENXIO)
    )
}

impl TapPort {
    /// Makes (or attaches to) TAP device `cfg.name` with its queues, sets
    /// its MTU if given, and brings it up.
    pub fn create(cfg: &TapConfig) -> Result<Self, PortError> {
        let n = cfg.queues.max(1);
        let flags = TapFlags {
            offload: cfg.offload,
            multi_queue: n > 1,
        };
        let queues = (0..n)
            .map(|_| {
                let fd = if cfg.offload || n > 1 {
                    TapQueue::open(&cfg.name, flags)?
                } else {
                    TapQueue::open_plain(&cfg.name)?
                };
                Ok(Queue {
                    fd,
                    scratch: Mutex::new(Vec::new()),
                })
            })
            .collect::<Result<Vec<_>, PortError>>()?;
        if let Some(mtu) = cfg.mtu {
            tap::set_mtu(&cfg.name, mtu)?;
        }
        tap::set_up(&cfg.name, true)?;
        Ok(TapPort {
            id: cfg.id,
            name: cfg.name.clone(),
            offload: cfg.offload,
            queues,
            up: UpFlag::new(true),
            gone: AtomicBool::new(false),
            bad_headers: AtomicU64::new(0),
            offload_errors: AtomicU64::new(0),
            gone_events: AtomicU64::new(0),
            segmented: AtomicU64::new(0),
            rx_discarded: AtomicU64::new(0),
        })
    }

    /// Whether frames carry a virtio-net header.
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Whether the device was found deleted.
    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Relaxed)
    }

    /// Times the device was found gone (0 or 1).
    pub fn gone_events(&self) -> u64 {
        self.gone_events.load(Ordering::Relaxed)
    }

    /// Frames received with a virtio-net header that does not parse
    /// (dropped).
    pub fn bad_headers(&self) -> u64 {
        self.bad_headers.load(Ordering::Relaxed)
    }

    /// Super-frames segmented in software for this port (a plain port).
    pub fn segmented(&self) -> u64 {
        self.segmented.load(Ordering::Relaxed)
    }

    /// Frames read and discarded while the port was down.
    pub fn rx_discarded(&self) -> u64 {
        self.rx_discarded.load(Ordering::Relaxed)
    }

    /// Frames a software offload could not complete (dropped).
    pub fn offload_errors(&self) -> u64 {
        self.offload_errors.load(Ordering::Relaxed)
    }

    /// Brings the port down or up again (a gone port stays down).
    pub fn set_up(&self, up: bool) {
        self.up.set(up && !self.is_gone());
    }

    fn mark_gone(&self) {
        self.up.set(false);
        if !self.gone.swap(true, Ordering::Relaxed) {
            self.gone_events.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn io_error(&self, queue: u16, source: io::Error) -> PortError {
        if is_gone_error(&source) {
            self.mark_gone();
        }
        PortError::Io {
            name: self.name.clone(),
            queue,
            source,
        }
    }

    fn queue(&self, queue: u16) -> Result<&Queue, PortError> {
        self.queues
            .get(usize::from(queue))
            .ok_or_else(|| PortError::Io {
                name: self.name.clone(),
                queue,
                source: io::Error::new(ErrorKind::InvalidInput, "no such queue"),
            })
    }

    /// Writes one frame to a plain queue, completing its offloads in
    /// software. Ok(false): dropped (counted).
    fn write_plain(&self, q: &Queue, f: &mut Frame) -> io::Result<bool> {
        let h = f.offload();
        if h.gso != Gso::None {
            let mut scratch = q.scratch.lock();
            let mut result = Ok(());
            let seg = gso::segment(f.data(), &h, &mut scratch, |s| {
                if result.is_ok() {
                    if let Err(e) = q.fd.write(s) {
                        result = Err(e);
                    }
                }
            });
            if seg.is_err() {
                self.offload_errors.fetch_add(1, Ordering::Relaxed);
                return Ok(false);
            }
            self.segmented.fetch_add(1, Ordering::Relaxed);
            return result.map(|()| true);
        }
        if h.needs_csum()
            && (gso::refresh_pseudo(f.data_mut(), &h).is_err()
                || gso::complete_csum(f.data_mut(), &h).is_err())
        {
            self.offload_errors.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        q.fd.write(f.data()).map(|_| true)
    }

    /// Writes one frame with its metadata as a virtio-net header.
    fn write_vnet(q: &Queue, f: &mut Frame) -> io::Result<bool> {
        let h = f.offload();
        if h.needs_csum() {
            // Frames refresh_pseudo cannot read go as they are.
            let _ = gso::refresh_pseudo(f.data_mut(), &h);
        }
        // Frame::push_front always succeeds (it grows the headroom).
        if f.push_front(VNET_HDR_LEN).is_err() {
            return Ok(false);
        }
        if let Some(hdr) = f.data_mut().get_mut(..VNET_HDR_LEN) {
            h.write(hdr);
        }
        let r = q.fd.write(f.data());
        let _ = f.pull_front(VNET_HDR_LEN);
        r.map(|_| true)
    }
}

impl Port for TapPort {
    fn id(&self) -> PortId {
        self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn queues(&self) -> u16 {
        self.queues.len() as u16
    }

    fn up_flag(&self) -> &UpFlag {
        &self.up
    }

    fn rx_fd(&self, queue: u16) -> Option<RawFd> {
        self.queues
            .get(usize::from(queue))
            .map(|q| q.fd.as_raw_fd())
    }

    fn recv(
        &self,
        queue: u16,
        pool: &mut FramePool,
        out: &mut Vec<Frame>,
        max: usize,
    ) -> Result<usize, PortError> {
        if self.is_gone() {
            return Err(self.io_error(queue, io::Error::from_raw_os_error(libc::EBADFD)));
        }
        let q = self.queue(queue)?;
        let down = !self.is_up();
        let mut got = 0;
        let mut bytes = 0;
        while got < max && bytes < RX_BATCH_BYTES {
            let mut f = pool.get();
            f.reset_len(RX_LEN);
            let n = match q.fd.read(f.data_mut()) {
                Ok(n) => n,
                Err(e) => {
                    pool.put(f);
                    match e.kind() {
                        ErrorKind::WouldBlock | ErrorKind::Interrupted => break,
                        _ if got > 0 && !is_gone_error(&e) => break,
                        _ => return Err(self.io_error(queue, e)),
                    }
                }
            };
            f.truncate(n);
            bytes += n;
            if down {
                // An administratively down port reads and discards, so
                // that its descriptor does not stay readable.
                self.rx_discarded.fetch_add(1, Ordering::Relaxed);
                pool.put(f);
                continue;
            }
            if self.offload {
                let h = f.data().get(..VNET_HDR_LEN).map(VnetHdr::parse);
                match h {
                    Some(Ok(h)) if f.pull_front(VNET_HDR_LEN).is_ok() => f.set_offload(h),
                    _ => {
                        self.bad_headers.fetch_add(1, Ordering::Relaxed);
                        pool.put(f);
                        continue;
                    }
                }
            }
            out.push(f);
            got += 1;
        }
        Ok(got)
    }

    fn send(&self, queue: u16, frames: &mut Vec<Frame>) -> Result<usize, PortError> {
        if !self.is_up() {
            return Ok(0);
        }
        let q = self.queue(queue)?;
        let mut sent = 0;
        for f in frames.iter_mut() {
            let r = if self.offload {
                Self::write_vnet(q, f)
            } else {
                self.write_plain(q, f)
            };
            match r {
                Ok(true) => sent += 1,
                Ok(false) => {}
                Err(e) if is_gone_error(&e) => return Err(self.io_error(queue, e)),
                // A full queue or a frame the kernel refused: dropped.
                Err(_) => {}
            }
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_errors() {
        for e in [libc::EBADFD, libc::ENODEV] {
            assert!(is_gone_error(&io::Error::from_raw_os_error(e)));
        }
        // A down interface.
        assert!(!is_gone_error(&io::Error::from_raw_os_error(libc::EIO)));
        assert!(!is_gone_error(&io::Error::from_raw_os_error(libc::EAGAIN)));
        assert!(!is_gone_error(&io::Error::from_raw_os_error(libc::EINVAL)));
    }
}
