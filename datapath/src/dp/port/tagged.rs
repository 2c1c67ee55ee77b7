//! A port whose far end is a host on one VLAN that cannot tag its own
//! frames: the port does it for the host.
//!
//! `flowswitch up` gives a host with `vlan: N` a tagged sub-interface
//! when the kernel has 802.1Q support. Without it (some VM kernels have no
//! `8021q` module), the host's link stays untagged and its switch port is
//! wrapped in a [`TaggedPort`]: every frame received gets the tag `N`
//! (priority 0) pushed, exactly as if the host had sent it tagged, and
//! every frame sent loses its outer tag if that tag is `N`. A frame sent
//! untagged or with another VLAN's tag is one the tagged host would not
//! accept on its VLAN interface: it is dropped and counted
//! ([`TaggedPort::foreign_drops`]). The pipeline, the flows and the
//! counters see the same frames either way.
//!
//! Offload metadata follows the tag: its offsets move by 4 bytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::frame::{insert_tag, remove_tag, TAG_LEN};
use super::{Frame, FramePool, Port, PortError};
use crate::packet::vlan;

/// Bytes of an Ethernet header.
const ETH_HLEN: usize = 14;

/// A port that tags and untags for its host; see the [module docs](self).
pub struct TaggedPort {
    inner: Arc<dyn Port>,
    vid: u16,
    foreign: AtomicU64,
    scratch: parking_lot::Mutex<Scratch>,
}

/// Vectors `send` reuses: the frames it passes on, and those it keeps back.
#[derive(Default)]
struct Scratch {
    kept: Vec<Frame>,
    rejects: Vec<Frame>,
}

impl std::fmt::Debug for TaggedPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaggedPort")
            .field("port", &self.inner.name())
            .field("vid", &self.vid)
            .finish_non_exhaustive()
    }
}

impl TaggedPort {
    /// Wraps `inner`, whose host is on VLAN `vid` (1..=4094).
    pub fn new(inner: Arc<dyn Port>, vid: u16) -> Result<TaggedPort, PortError> {
        if !(1..=4094).contains(&vid) {
            return Err(PortError::BadVlan { vid });
        }
        Ok(TaggedPort {
            inner,
            vid,
            foreign: AtomicU64::new(0),
            scratch: parking_lot::Mutex::new(Scratch::default()),
        })
    }

    /// The host's VLAN.
    pub fn vid(&self) -> u16 {
        self.vid
    }

    /// Frames not sent because they were not tagged with the host's VLAN.
    pub fn foreign_drops(&self) -> u64 {
        self.foreign.load(Ordering::Relaxed)
    }

    /// Pushes the host's tag; false if the frame cannot take it.
    fn tag(&self, f: &mut Frame) -> bool {
        if f.len() < ETH_HLEN || insert_tag(f, self.vid).is_err() {
            return false;
        }
        let mut h = f.offload();
        h.shift(TAG_LEN as i32);
        f.set_offload(h);
        true
    }

    /// Pops the host's tag; false if the frame does not carry it outermost.
    fn untag(&self, f: &mut Frame) -> bool {
        match vlan::tci(f.data()) {
            Ok(Some(tci)) if tci & 0x0fff == self.vid => {}
            _ => return false,
        }
        if remove_tag(f).is_err() {
            return false;
        }
        let mut h = f.offload();
        h.shift(-(TAG_LEN as i32));
        f.set_offload(h);
        true
    }
}

impl Port for TaggedPort {
    crate::forward_port_identity!(inner);

    fn recv(
        &self,
        queue: u16,
        pool: &mut FramePool,
        out: &mut Vec<Frame>,
        max: usize,
    ) -> Result<usize, PortError> {
        let start = out.len();
        let n = self.inner.recv(queue, pool, out, max)?;
        // A runt that cannot take a tag stays as it is: the pipeline drops
        // and counts it as malformed.
        for f in out.iter_mut().skip(start) {
            self.tag(f);
        }
        Ok(n)
    }

    fn send(&self, queue: u16, frames: &mut Vec<Frame>) -> Result<usize, PortError> {
        let mut scratch = self.scratch.lock();
        let Scratch { kept, rejects } = &mut *scratch;
        for mut f in frames.drain(..) {
            if self.untag(&mut f) {
                kept.push(f);
            } else {
                rejects.push(f);
            }
        }
        self.foreign
            .fetch_add(rejects.len() as u64, Ordering::Relaxed);
        std::mem::swap(frames, kept);
        let sent = self.inner.send(queue, frames);
        // What the inner port left, and the rejected frames, go back to
        // the caller for recycling.
        frames.append(rejects);
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dp::port::MemPort;
    use crate::packet::build;
    use std::net::Ipv4Addr;

    fn frame(tag: Option<u16>) -> Vec<u8> {
        let f = build::udp4(
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            1,
            2,
            b"payload",
        );
        match tag {
            Some(t) => {
                let mut v = f.clone();
                vlan::push(&mut v, t).expect("tag");
                v
            }
            None => f,
        }
    }

    #[test]
    fn receives_tagged_and_sends_untagged() {
        let mem = Arc::new(MemPort::new(3, "h3"));
        let port = TaggedPort::new(Arc::clone(&mem) as Arc<dyn Port>, 10).expect("port");
        mem.push_rx(&frame(None));
        mem.push_rx(&[1, 2, 3]);
        let mut pool = FramePool::with_frames(4);
        let mut got = Vec::new();
        assert_eq!(port.recv(0, &mut pool, &mut got, 8).expect("recv"), 2);
        assert_eq!(got[0].data(), &frame(Some(10))[..]);
        // The runt is left for the pipeline to drop as malformed.
        assert_eq!(got[1].data(), &[1, 2, 3]);

        let mut out = vec![
            Frame::from_bytes(&frame(Some(10))),
            Frame::from_bytes(&frame(None)),
            Frame::from_bytes(&frame(Some(20))),
            Frame::from_bytes(&frame(Some(0x2000 | 10))),
        ];
        assert_eq!(port.send(0, &mut out).expect("send"), 2);
        // Untagged and VLAN-20 frames are not for the host.
        assert_eq!(port.foreign_drops(), 2);
        assert_eq!(mem.take_tx_bytes(), vec![frame(None), frame(None)]);
        // The two rejected frames come back for recycling.
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn offload_offsets_follow_the_tag() {
        let mem = Arc::new(MemPort::new(3, "h3"));
        let port = TaggedPort::new(Arc::clone(&mem) as Arc<dyn Port>, 7).expect("port");
        let mut f = Frame::from_bytes(&frame(None));
        let mut h = f.offload();
        h.flags = crate::packet::vnet::F_NEEDS_CSUM;
        h.csum_start = 34;
        h.csum_offset = 6;
        f.set_offload(h);
        assert!(port.tag(&mut f));
        assert_eq!(f.offload().csum_start, 38);
        assert!(port.untag(&mut f));
        assert_eq!(f.offload().csum_start, 34);
        assert_eq!(f.data(), &frame(None)[..]);
    }

    #[test]
    fn vlan_ids_are_checked() {
        let mem = Arc::new(MemPort::new(3, "h3")) as Arc<dyn Port>;
        assert!(TaggedPort::new(Arc::clone(&mem), 0).is_err());
        assert!(TaggedPort::new(Arc::clone(&mem), 4095).is_err());
        assert!(TaggedPort::new(mem, 4094).is_ok());
    }
}
