//! `--pcap PORT=FILE`: a port wrapper that writes every frame the port
//! receives and every frame it is asked to send to a pcap file (Ethernet
//! link type, microsecond timestamps), readable by tcpdump and Wireshark.
//!
//! Frames are written as they are on the wire without the virtio-net
//! header; a TSO super-frame is written whole (up to 64 KiB, within the
//! 262,144-byte snap length). The file is behind a lock: capture is a
//! debugging aid, not a fast path. Write errors are counted, not fatal.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use datapath::dp::port::{Frame, FramePool, Port, PortError};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness};

/// Snap length of the files written.
pub const SNAPLEN: usize = 262_144;

/// A port whose traffic is also written to a pcap file.
pub struct CapturePort {
    inner: Arc<dyn Port>,
    writer: Mutex<Option<PcapWriter<BufWriter<File>>>>,
    errors: AtomicU64,
}

impl std::fmt::Debug for CapturePort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapturePort")
            .field("port", &self.inner.name())
            .finish_non_exhaustive()
    }
}

impl CapturePort {
    /// Wraps `inner`, writing to a new file at `path`.
    pub fn create(inner: Arc<dyn Port>, path: &Path) -> Result<Self, String> {
        let file = File::create(path).map_err(|e| format!("--pcap {}: {e}", path.display()))?;
        let header = PcapHeader {
            snaplen: SNAPLEN as u32,
            datalink: DataLink::ETHERNET,
            endianness: Endianness::native(),
            ..PcapHeader::default()
        };
        let w = PcapWriter::with_header(BufWriter::new(file), header)
            .map_err(|e| format!("--pcap {}: {e}", path.display()))?;
        Ok(CapturePort {
            inner,
            writer: Mutex::new(Some(w)),
            errors: AtomicU64::new(0),
        })
    }

    /// Frames that could not be written.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Writes out what is buffered and closes the file; later frames are
    /// not captured.
    pub fn finish(&self) {
        if let Some(w) = self.lock().take() {
            let mut b = w.into_writer();
            if std::io::Write::flush(&mut b).is_err() {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<PcapWriter<BufWriter<File>>>> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, frames: &[Frame]) {
        if frames.is_empty() {
            return;
        }
        let ts = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let mut g = self.lock();
        let Some(w) = g.as_mut() else { return };
        for f in frames {
            let data = f.data();
            let cut = data.get(..SNAPLEN).unwrap_or(data);
            let p = PcapPacket::new(ts, data.len() as u32, cut);
            if w.write_packet(&p).is_err() {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Port for CapturePort {
    datapath::forward_port_identity!(inner);

    fn recv(
        &self,
        queue: u16,
        pool: &mut FramePool,
        out: &mut Vec<Frame>,
        max: usize,
    ) -> Result<usize, PortError> {
        let start = out.len();
        let n = self.inner.recv(queue, pool, out, max)?;
        self.write(out.get(start..).unwrap_or_default());
        Ok(n)
    }

    fn send(&self, queue: u16, frames: &mut Vec<Frame>) -> Result<usize, PortError> {
        self.write(frames);
        self.inner.send(queue, frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datapath::dp::port::MemPort;

    #[test]
    fn received_and_sent_frames_are_written() {
        let path = std::env::temp_dir().join(format!("fs-cap-{}.pcap", std::process::id()));
        let mem = Arc::new(MemPort::new(1, "m"));
        let cap = CapturePort::create(Arc::clone(&mem) as Arc<dyn Port>, &path).unwrap();
        assert_eq!((cap.id(), cap.name(), cap.rx_fd(0)), (1, "m", None));
        mem.push_rx(&[1; 60]);
        let mut pool = FramePool::default();
        let mut out = vec![Frame::from_bytes(&[9])];
        assert_eq!(cap.recv(0, &mut pool, &mut out, 8).unwrap(), 1);
        let mut tx = vec![Frame::from_bytes(&[2; 70]), Frame::from_bytes(&[3; 80])];
        assert_eq!(cap.send(0, &mut tx).unwrap(), 2);
        cap.finish();
        // Nothing is written after finish.
        cap.send(0, &mut vec![Frame::from_bytes(&[4; 10])]).unwrap();
        let mut r = pcap_file::pcap::PcapReader::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(r.header().datalink, DataLink::ETHERNET);
        let mut got = Vec::new();
        while let Some(p) = r.next_packet() {
            let p = p.unwrap();
            assert_eq!(p.orig_len as usize, p.data.len());
            got.push(p.data.to_vec());
        }
        let _ = std::fs::remove_file(&path);
        assert_eq!(got, vec![vec![1; 60], vec![2; 70], vec![3; 80]]);
        assert_eq!(cap.errors(), 0);
    }
}
