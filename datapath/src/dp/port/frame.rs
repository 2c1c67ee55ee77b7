//! Frame buffers: the bytes of one packet with headroom in front, so that a
//! tag can be pushed without moving the whole packet, and a pool that
//! recycles them so that steady-state forwarding never allocates.
//!
//! [`Frame`] owns its buffer and grows it when it must; it is one pointer
//! (its fields are boxed), so moving it between queues is cheap. [`FrameWindow`] is
//! the same thing over a borrowed buffer of fixed size, as a flow program's
//! helper sees the packet while the engine holds it: it can only use the
//! headroom it has. Actions that change the packet are written against
//! [`FrameBuf`], which both implement.
//!
//! A frame from a TAP port with offloads carries its virtio-net header
//! ([`Frame::offload`]): a checksum still to complete, or a TSO
//! super-frame of up to 64 KiB still to segment. It goes with the frame
//! through the pipeline; a port without offloads completes it in software
//! (`packet::gso`). Such frames grow their buffer once; the pool keeps
//! the big buffer for the next one.

use thiserror::Error;

use crate::packet::vnet::VnetHdr;

/// Headroom a fresh or reset frame keeps in front of its data: room for
/// sixteen 802.1Q tags.
pub const HEADROOM: usize = 64;

/// Data capacity of a frame taken fresh from an empty pool: a 1,500-byte
/// MTU with tags, rounded up. Bigger frames grow their buffer once; the
/// pool keeps the bigger buffer.
pub const DEFAULT_DATA_CAPACITY: usize = 2048 - HEADROOM;

/// Most frames a [`FramePool`] keeps; extra frames handed back are freed.
pub const POOL_MAX: usize = 4096;

/// A change of the data window a buffer cannot make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// Not enough headroom in a fixed buffer to prepend `need` bytes.
    #[error("cannot prepend {need} bytes: {have} bytes of headroom")]
    NoHeadroom { need: usize, have: usize },
    /// Asked to remove more bytes than the frame holds.
    #[error("cannot remove {need} bytes from the front of a {len}-byte frame")]
    TooShort { need: usize, len: usize },
    /// A window `start..start + len` that does not fit the buffer.
    #[error("window {start}+{len} does not fit a {cap}-byte buffer")]
    BadWindow {
        start: usize,
        len: usize,
        cap: usize,
    },
}

/// The packet bytes an action may read and change, and the two operations
/// that move the start of the packet.
pub trait FrameBuf {
    /// The packet.
    fn data(&self) -> &[u8];
    /// The packet, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Grows the packet by `n` bytes at the front (their content is
    /// unspecified).
    fn push_front(&mut self, n: usize) -> Result<(), FrameError>;
    /// Removes `n` bytes from the front.
    fn pull_front(&mut self, n: usize) -> Result<(), FrameError>;
}

/// Bytes of the two MAC addresses, after which an 802.1Q tag goes.
const TAG_AT: usize = 12;
/// Bytes of an 802.1Q tag (TPID and TCI).
pub const TAG_LEN: usize = 4;

/// Inserts an 802.1Q tag with `tci` after the MAC addresses: the packet
/// grows by [`TAG_LEN`] bytes at the front. The caller checked that the
/// packet has an Ethernet header.
pub fn insert_tag<F: FrameBuf + ?Sized>(f: &mut F, tci: u16) -> Result<(), FrameError> {
    f.push_front(TAG_LEN)?;
    if let Some(hdr) = f.data_mut().get_mut(..TAG_AT + TAG_LEN) {
        hdr.copy_within(TAG_LEN..TAG_LEN + TAG_AT, 0);
        let [t0, t1] = crate::packet::ETH_TYPE_VLAN.to_be_bytes();
        let [c0, c1] = tci.to_be_bytes();
        hdr[TAG_AT..].copy_from_slice(&[t0, t1, c0, c1]);
    }
    Ok(())
}

/// Removes the outer 802.1Q tag, which the caller checked is there.
pub fn remove_tag<F: FrameBuf + ?Sized>(f: &mut F) -> Result<(), FrameError> {
    if let Some(hdr) = f.data_mut().get_mut(..TAG_AT + TAG_LEN) {
        hdr.copy_within(..TAG_AT, TAG_LEN);
    }
    f.pull_front(TAG_LEN)
}

/// One packet in an owned buffer: the data is `buf[start..start + len]`;
/// the bytes before `start` are headroom.
///
/// The buffer is kept initialised to its full length (`buf.len()` is the
/// capacity in use), so resetting a frame for a new packet never zeroes or
/// allocates unless the packet is bigger than any the buffer held before.
///
/// The fields live behind a box, so that a `Frame` is one pointer: frames
/// move between the receive batch, the output queues and the pool several
/// times per packet, and each move is then an 8-byte copy.
#[derive(Clone, Default)]
pub struct Frame(Box<FrameInner>);

#[derive(Clone, Default)]
struct FrameInner {
    buf: Vec<u8>,
    start: usize,
    len: usize,
    /// Offload metadata (the default: a complete frame).
    offload: VnetHdr,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({} bytes: ", self.0.len)?;
        for b in self.data() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

impl PartialEq for Frame {
    /// Frames are equal when their packets are; headroom does not count.
    fn eq(&self, other: &Self) -> bool {
        self.data() == other.data()
    }
}

impl Eq for Frame {}

impl Frame {
    /// An empty frame with [`HEADROOM`] and room for `data_capacity` bytes.
    pub fn with_capacity(data_capacity: usize) -> Self {
        Frame(Box::new(FrameInner {
            buf: vec![0; HEADROOM + data_capacity],
            start: HEADROOM,
            len: 0,
            offload: VnetHdr::default(),
        }))
    }

    /// The frame's offload metadata (the default for a complete frame).
    #[inline]
    pub fn offload(&self) -> VnetHdr {
        self.0.offload
    }

    /// Sets the frame's offload metadata.
    #[inline]
    pub fn set_offload(&mut self, h: VnetHdr) {
        self.0.offload = h;
    }

    /// An empty frame with the default capacity.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_DATA_CAPACITY)
    }

    /// A frame holding a copy of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut f = Self::with_capacity(bytes.len().max(DEFAULT_DATA_CAPACITY));
        f.set(bytes);
        f
    }

    /// Replaces the packet with a copy of `bytes`, restoring the headroom
    /// and clearing the offload metadata. Allocates only when the buffer
    /// is too small.
    #[inline]
    pub fn set(&mut self, bytes: &[u8]) {
        self.reset_len(bytes.len());
        self.0.offload = VnetHdr::default();
        if let Some(dst) = self.0.buf.get_mut(HEADROOM..HEADROOM + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }

    /// Makes the packet `len` bytes long at the standard headroom, growing
    /// the buffer if needed; the content is whatever the buffer held. For
    /// filling by a device read: `reset_len(max)`, read into
    /// [`data_mut`](Self::data_mut), then [`truncate`](Self::truncate).
    #[inline]
    pub fn reset_len(&mut self, len: usize) {
        if self.0.buf.len() < HEADROOM + len {
            self.0.buf.resize(HEADROOM + len, 0);
        }
        self.0.start = HEADROOM;
        self.0.len = len;
    }

    /// Empties the frame, restoring the headroom and clearing the offload
    /// metadata.
    #[inline]
    pub fn clear(&mut self) {
        self.0.start = HEADROOM;
        self.0.len = 0;
        self.0.offload = VnetHdr::default();
    }

    /// Shortens the packet to `len` bytes (no-op if it is not longer).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        self.0.len = self.0.len.min(len);
    }

    /// The packet.
    #[inline]
    pub fn data(&self) -> &[u8] {
        self.0
            .buf
            .get(self.0.start..self.0.start + self.0.len)
            .unwrap_or(&[])
    }

    /// The packet, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.0
            .buf
            .get_mut(self.0.start..self.0.start + self.0.len)
            .unwrap_or(&mut [])
    }

    /// Packet length.
    #[inline]
    pub fn len(&self) -> usize {
        self.0.len
    }

    /// Whether the packet has no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// Offset of the packet in [`buffer`](Self::buffer): the headroom.
    #[inline]
    pub fn start(&self) -> usize {
        self.0.start
    }

    /// Bytes free in front of the packet.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.0.start
    }

    /// The whole buffer, headroom and tail included: what a flow program
    /// gets as its packet memory, with the packet at
    /// `start()..start() + len()`.
    #[inline]
    pub fn buffer_mut(&mut self) -> &mut [u8] {
        &mut self.0.buf
    }

    /// The whole buffer (see [`buffer_mut`](Self::buffer_mut)).
    #[inline]
    pub fn buffer(&self) -> &[u8] {
        &self.0.buf
    }

    /// Moves the packet window after something (a flow program's helper)
    /// changed it inside [`buffer_mut`](Self::buffer_mut).
    pub fn set_window(&mut self, start: usize, len: usize) -> Result<(), FrameError> {
        match start.checked_add(len) {
            Some(end) if end <= self.0.buf.len() => {
                self.0.start = start;
                self.0.len = len;
                Ok(())
            }
            _ => Err(FrameError::BadWindow {
                start,
                len,
                cap: self.0.buf.len(),
            }),
        }
    }

    /// A fixed-size view of this frame's buffer, as a helper sees it.
    pub fn window(&mut self) -> FrameWindow<'_> {
        FrameWindow {
            buf: &mut self.0.buf,
            start: self.0.start,
            len: self.0.len,
        }
    }

    /// A copy of the packet.
    pub fn to_vec(&self) -> Vec<u8> {
        self.data().to_vec()
    }

    /// Makes room for `n` more bytes of headroom than the frame has,
    /// keeping [`HEADROOM`] spare: the slow path of
    /// [`push_front`](FrameBuf::push_front).
    #[cold]
    fn grow_headroom(&mut self, n: usize) {
        let extra = n - self.0.start + HEADROOM;
        self.0.buf.splice(0..0, std::iter::repeat_n(0, extra));
        self.0.start += extra;
    }
}

impl FrameBuf for Frame {
    #[inline]
    fn data(&self) -> &[u8] {
        Frame::data(self)
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        Frame::data_mut(self)
    }

    /// Always succeeds: without enough headroom the buffer grows.
    #[inline]
    fn push_front(&mut self, n: usize) -> Result<(), FrameError> {
        if self.0.start < n {
            self.grow_headroom(n);
        }
        self.0.start -= n;
        self.0.len += n;
        Ok(())
    }

    #[inline]
    fn pull_front(&mut self, n: usize) -> Result<(), FrameError> {
        if n > self.0.len {
            return Err(FrameError::TooShort {
                need: n,
                len: self.0.len,
            });
        }
        self.0.start += n;
        self.0.len -= n;
        Ok(())
    }
}

/// A packet window over a borrowed, fixed-size buffer: the packet is
/// `buf[start..start + len]`. A flow program's helper builds one from the
/// engine's packet memory and the context's `data` / `data_end`, and writes
/// [`start`](Self::start) and [`len`](Self::len) back after a change.
pub struct FrameWindow<'a> {
    buf: &'a mut [u8],
    start: usize,
    len: usize,
}

impl<'a> FrameWindow<'a> {
    /// The window `start..start + len` of `buf`.
    pub fn new(buf: &'a mut [u8], start: usize, len: usize) -> Result<Self, FrameError> {
        match start.checked_add(len) {
            Some(end) if end <= buf.len() => Ok(FrameWindow { buf, start, len }),
            _ => Err(FrameError::BadWindow {
                start,
                len,
                cap: buf.len(),
            }),
        }
    }

    /// Offset of the packet in the buffer.
    pub fn start(&self) -> usize {
        self.start
    }

    /// Packet length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the packet has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl FrameBuf for FrameWindow<'_> {
    #[inline]
    fn data(&self) -> &[u8] {
        self.buf
            .get(self.start..self.start + self.len)
            .unwrap_or(&[])
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        self.buf
            .get_mut(self.start..self.start + self.len)
            .unwrap_or(&mut [])
    }

    #[inline]
    fn push_front(&mut self, n: usize) -> Result<(), FrameError> {
        if self.start < n {
            return Err(FrameError::NoHeadroom {
                need: n,
                have: self.start,
            });
        }
        self.start -= n;
        self.len += n;
        Ok(())
    }

    #[inline]
    fn pull_front(&mut self, n: usize) -> Result<(), FrameError> {
        if n > self.len {
            return Err(FrameError::TooShort {
                need: n,
                len: self.len,
            });
        }
        self.start += n;
        self.len -= n;
        Ok(())
    }
}

/// Free frames of one worker. [`get`](Self::get) pops a recycled frame (or
/// allocates one when the pool is empty); [`put`](Self::put) takes one back.
/// In steady state every frame received is eventually put back, so nothing
/// is allocated per packet.
#[derive(Debug, Default)]
pub struct FramePool {
    free: Vec<Frame>,
    allocated: u64,
}

impl FramePool {
    /// A pool with `n` frames ready.
    pub fn with_frames(n: usize) -> Self {
        let n = n.min(POOL_MAX);
        FramePool {
            free: (0..n).map(|_| Frame::new()).collect(),
            allocated: n as u64,
        }
    }

    /// A free frame as it was given back, or a new one.
    #[inline]
    fn take(&mut self) -> Frame {
        self.free.pop().unwrap_or_else(|| {
            self.allocated += 1;
            Frame::new()
        })
    }

    /// A free frame, empty, with the standard headroom.
    #[inline]
    pub fn get(&mut self) -> Frame {
        let mut f = self.take();
        f.clear();
        f
    }

    /// A free frame holding a copy of `bytes` (see [`Frame::set`]).
    #[inline]
    pub fn get_with(&mut self, bytes: &[u8]) -> Frame {
        let mut f = self.take();
        f.set(bytes);
        f
    }

    /// Gives a frame back (freed if the pool is full).
    #[inline]
    pub fn put(&mut self, frame: Frame) {
        if self.free.len() < POOL_MAX {
            self.free.push(frame);
        }
    }

    /// Gives back every frame of `frames`, leaving it empty.
    pub fn put_all(&mut self, frames: &mut Vec<Frame>) {
        let room = POOL_MAX.saturating_sub(self.free.len());
        if frames.len() > room {
            frames.truncate(room);
        }
        self.free.append(frames);
    }

    /// Frames ready.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Frames this pool has allocated since it was made (a test of
    /// allocation-free steady state watches this stay constant).
    pub fn allocated(&self) -> u64 {
        self.allocated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_keeps_headroom_and_reuses_the_buffer() {
        let mut f = Frame::new();
        f.set(&[1, 2, 3]);
        assert_eq!(f.data(), &[1, 2, 3]);
        assert_eq!(f.headroom(), HEADROOM);
        let cap = f.buffer().len();
        f.set(&[9; 100]);
        assert_eq!(f.len(), 100);
        assert_eq!(f.buffer().len(), cap);
        f.set(&vec![7; 5000]);
        assert_eq!(f.len(), 5000);
        assert_eq!(f.buffer().len(), HEADROOM + 5000);
        assert!(f.data().iter().all(|&b| b == 7));
    }

    #[test]
    fn push_and_pull_move_the_start() {
        let mut f = Frame::from_bytes(&[1, 2, 3, 4]);
        f.push_front(2).unwrap();
        assert_eq!(f.len(), 6);
        f.data_mut()[..2].copy_from_slice(&[8, 9]);
        assert_eq!(f.data(), &[8, 9, 1, 2, 3, 4]);
        f.pull_front(3).unwrap();
        assert_eq!(f.data(), &[2, 3, 4]);
        assert_eq!(
            f.pull_front(4),
            Err(FrameError::TooShort { need: 4, len: 3 })
        );
        assert_eq!(f.data(), &[2, 3, 4]);
    }

    #[test]
    fn owned_frame_grows_headroom_when_it_runs_out() {
        let mut f = Frame::from_bytes(&[5, 6]);
        for i in 0..(HEADROOM / 4 + 3) {
            f.push_front(4).unwrap();
            f.data_mut()[..4].copy_from_slice(&[i as u8; 4]);
        }
        assert_eq!(f.len(), 2 + 4 * (HEADROOM / 4 + 3));
        assert_eq!(&f.data()[f.len() - 2..], &[5, 6]);
        assert_eq!(f.data()[0], (HEADROOM / 4 + 2) as u8);
        // The 17th push found no headroom and made HEADROOM more; two
        // pushes since.
        assert_eq!(f.headroom(), HEADROOM - 8);
    }

    #[test]
    fn window_is_bounded_by_its_buffer() {
        let mut buf = [0u8; 16];
        assert_eq!(
            FrameWindow::new(&mut buf, 10, 7).err(),
            Some(FrameError::BadWindow {
                start: 10,
                len: 7,
                cap: 16
            })
        );
        let mut w = FrameWindow::new(&mut buf, 4, 8).unwrap();
        w.push_front(4).unwrap();
        assert_eq!((w.start(), w.len()), (0, 12));
        assert_eq!(
            w.push_front(1),
            Err(FrameError::NoHeadroom { need: 1, have: 0 })
        );
        w.pull_front(12).unwrap();
        assert!(w.is_empty());
        assert_eq!(w.start(), 12);
    }

    #[test]
    fn window_of_a_frame_round_trips() {
        let mut f = Frame::from_bytes(&[1, 2, 3]);
        let (start, len) = {
            let mut w = f.window();
            w.push_front(1).unwrap();
            w.data_mut()[0] = 0;
            (w.start(), w.len())
        };
        f.set_window(start, len).unwrap();
        assert_eq!(f.data(), &[0, 1, 2, 3]);
        let cap = f.buffer().len();
        assert!(f.set_window(cap, 1).is_err());
        assert!(f.set_window(usize::MAX, 2).is_err());
    }

    #[test]
    fn pool_recycles() {
        let mut p = FramePool::with_frames(2);
        assert_eq!(p.allocated(), 2);
        let mut a = p.get();
        a.set(&[1]);
        let b = p.get();
        let c = p.get();
        assert_eq!(p.allocated(), 3);
        p.put(a);
        let a2 = p.get();
        assert!(a2.is_empty());
        assert_eq!(a2.headroom(), HEADROOM);
        p.put_all(&mut vec![a2, b, c]);
        assert_eq!(p.available(), 3);
        assert_eq!(p.allocated(), 3);
    }
}
