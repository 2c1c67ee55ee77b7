//! TAP devices: the ioctls that make and configure them.
//!
//! # What?
//!
//! A TAP queue is a file descriptor of `/dev/net/tun` bound to a device
//! with `TUNSETIFF`. Reads return one Ethernet frame each, writes take one.
//! This file opens such descriptors with the flags the switch needs, which
//! the `tun-tap` crate cannot set:
//!
//! - `IFF_VNET_HDR`: every frame is preceded by a virtio-net header
//!   ([`VNET_HDR_LEN`] bytes, set with `TUNSETVNETHDRSZ`), which carries
//!   checksum and segmentation offload metadata
//!   (`crate::packet::vnet`), and `TUNSETOFFLOAD` lets the kernel hand us
//!   unchecksummed and TSO super-frames (and accept them back);
//! - `IFF_MULTI_QUEUE`: one descriptor per queue, all bound to one device
//!   by opening the device name again.
//!
//! It also sets an interface's flags and MTU through an `AF_INET` datagram
//! socket (`SIOCGIFFLAGS` / `SIOCSIFFLAGS` / `SIOCSIFMTU`), in the
//! namespace of the calling thread.
//!
//! Reads and writes go through `std::fs::File` (no unsafe needed): the
//! descriptor is opened non-blocking, so they return `WouldBlock` when the
//! queue is empty or full.
//!
//! # Lifetime
//!
//! Devices are not made persistent: a device goes away when its last
//! queue descriptor is closed, so dropping every [`TapQueue`] removes the
//! switch's TAPs, and a crash leaves none behind.

use std::ffi::c_int;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use thiserror::Error;

/// Bytes of the virtio-net header the switch asks for (`TUNSETVNETHDRSZ`):
/// the virtio 1.0 header with `num_buffers`.
pub const VNET_HDR_LEN: usize = 12;

/// Longest interface name (the kernel's `IFNAMSIZ` less the NUL).
pub const IFNAME_MAX: usize = 15;

/// A TAP operation that failed.
#[derive(Debug, Error)]
pub enum TapError {
    /// A name the kernel cannot take.
    #[error("interface name {name:?} is empty, longer than 15 bytes or contains NUL, '/' or white space")]
    BadName { name: String },
    /// A system call failed.
    #[error("{op} on {name:?}: {source}")]
    Sys {
        op: &'static str,
        name: String,
        #[source]
        source: io::Error,
    },
}

/// How to open a TAP queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapFlags {
    /// `IFF_VNET_HDR` and `TUNSETOFFLOAD` (checksum, TSO4, TSO6).
    pub offload: bool,
    /// `IFF_MULTI_QUEUE` (every queue of a multi-queue device needs it).
    pub multi_queue: bool,
}

/// The `ifreq` for `name`, or an error for a name the kernel cannot take.
fn ifreq(name: &str) -> Result<libc::ifreq, TapError> {
    let bad = || TapError::BadName {
        name: name.to_string(),
    };
    if name.is_empty()
        || name.len() > IFNAME_MAX
        || name
            .bytes()
            .any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace())
    {
        return Err(bad());
    }
    // SAFETY: `ifreq` is a plain C struct (a byte array and a union of
    // integers, arrays and a pointer): all zero bytes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

fn sys_err(op: &'static str, name: &str) -> TapError {
    TapError::Sys {
        op,
        name: name.to_string(),
        source: io::Error::last_os_error(),
    }
}

/// One queue of a TAP device: a non-blocking `/dev/net/tun` descriptor.
#[derive(Debug)]
pub struct TapQueue {
    file: File,
}

impl TapQueue {
    /// Opens a queue of TAP device `name` (made if it does not exist),
    /// without packet information, non-blocking, with `flags`.
    pub fn open(name: &str, flags: TapFlags) -> Result<Self, TapError> {
        let mut req = ifreq(name)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|source| TapError::Sys {
                op: "open /dev/net/tun",
                name: name.to_string(),
                source,
            })?;
        let mut f = libc::IFF_TAP | libc::IFF_NO_PI;
        if flags.offload {
            f |= libc::IFF_VNET_HDR;
        }
        if flags.multi_queue {
            f |= libc::IFF_MULTI_QUEUE;
        }
        req.ifr_ifru.ifru_flags = f as libc::c_short;
        let fd = file.as_raw_fd();
        let req_ptr = &mut req as *mut libc::ifreq;
        // `fd` is an open /dev/net/tun descriptor owned by `file`.
        // SAFETY: TUNSETIFF reads and writes one `ifreq`; `req_ptr` points
        // to one, alive and exclusively borrowed for the call.
        let r = unsafe { libc::ioctl(fd, libc::TUNSETIFF, req_ptr) };
        if r < 0 {
            return Err(sys_err("TUNSETIFF", name));
        }
        if flags.offload {
            let size: c_int = VNET_HDR_LEN as c_int;
            // SAFETY: TUNSETVNETHDRSZ reads one `int` through the pointer;
            // `size` is a live local.
            let r = unsafe { libc::ioctl(fd, libc::TUNSETVNETHDRSZ, &size as *const c_int) };
            if r < 0 {
                return Err(sys_err("TUNSETVNETHDRSZ", name));
            }
            let offloads = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
            // SAFETY: TUNSETOFFLOAD takes its argument by value (an
            // unsigned long of TUN_F_* bits); no memory is passed.
            let r = unsafe { libc::ioctl(fd, libc::TUNSETOFFLOAD, offloads as libc::c_ulong) };
            if r < 0 {
                return Err(sys_err("TUNSETOFFLOAD", name));
            }
        }
        Ok(TapQueue { file })
    }

    /// Opens the single queue of a plain TAP device `name` (no packet
    /// information, no virtio-net header) with the `tun-tap` crate, and
    /// makes it non-blocking.
    pub fn open_plain(name: &str) -> Result<Self, TapError> {
        ifreq(name)?;
        let sys = |op, source| TapError::Sys {
            op,
            name: name.to_string(),
            source,
        };
        let iface = tun_tap::Iface::without_packet_info(name, tun_tap::Mode::Tap)
            .map_err(|e| sys("TUNSETIFF", e))?;
        iface.set_non_blocking().map_err(|e| sys("FIONBIO", e))?;
        let raw = iface.into_raw_fd();
        // SAFETY: `into_raw_fd` gave up the crate's ownership of this open
        // descriptor; nothing else owns or closes it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(TapQueue {
            file: File::from(fd),
        })
    }

    /// Reads one frame (with its virtio-net header on an offload queue);
    /// `WouldBlock` when none is waiting. A frame longer than `buf` is
    /// truncated.
    #[inline]
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Reads one frame into several buffers.
    #[inline]
    pub fn readv(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&self.file).read_vectored(bufs)
    }

    /// Writes one frame.
    #[inline]
    pub fn write(&self, frame: &[u8]) -> io::Result<usize> {
        (&self.file).write(frame)
    }

    /// Writes one frame from several buffers (a header and a payload).
    #[inline]
    pub fn writev(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&self.file).write_vectored(bufs)
    }
}

impl AsRawFd for TapQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// A datagram socket for interface ioctls, in the calling thread's
/// namespace.
fn ctl_socket(name: &str) -> Result<OwnedFd, TapError> {
    // SAFETY: socket(2) takes integers only; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(sys_err("socket", name));
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Brings interface `name` up or down (`SIOCSIFFLAGS`, keeping its other
/// flags).
pub fn set_up(name: &str, up: bool) -> Result<(), TapError> {
    let mut req = ifreq(name)?;
    let sock = ctl_socket(name)?;
    // SAFETY: SIOCGIFFLAGS fills the `ifreq` passed by pointer; `req` is
    // live and exclusively borrowed.
    let r = unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS,
            &mut req as *mut libc::ifreq,
        )
    };
    if r < 0 {
        return Err(sys_err("SIOCGIFFLAGS", name));
    }
    // SAFETY: SIOCGIFFLAGS just wrote the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    let iff_up = libc::IFF_UP as libc::c_short;
    req.ifr_ifru.ifru_flags = if up { flags | iff_up } else { flags & !iff_up };
    // SAFETY: SIOCSIFFLAGS reads the `ifreq` passed by pointer.
    let r = unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCSIFFLAGS,
            &mut req as *mut libc::ifreq,
        )
    };
    if r < 0 {
        return Err(sys_err("SIOCSIFFLAGS", name));
    }
    Ok(())
}

/// Sets interface `name`'s MTU (`SIOCSIFMTU`).
pub fn set_mtu(name: &str, mtu: u32) -> Result<(), TapError> {
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_mtu = mtu.min(i32::MAX as u32) as c_int;
    let sock = ctl_socket(name)?;
    // SAFETY: SIOCSIFMTU reads the `ifreq` passed by pointer; `req` is live.
    let r = unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCSIFMTU,
            &mut req as *mut libc::ifreq,
        )
    };
    if r < 0 {
        return Err(sys_err("SIOCSIFMTU", name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for bad in ["", "sixteen-chars-xx", "a b", "a/b", "a\0b"] {
            assert!(
                matches!(ifreq(bad), Err(TapError::BadName { .. })),
                "{bad:?}"
            );
        }
        let r = ifreq("fs-ok").unwrap();
        assert_eq!(r.ifr_name[0], b'f' as libc::c_char);
        assert_eq!(r.ifr_name[5], 0);
    }

    /// Opens an offload TAP with two queues when the machine allows it.
    #[test]
    fn offload_multi_queue_tap() {
        let can = std::path::Path::new("/dev/net/tun").exists()
            // SAFETY: geteuid has no preconditions.
            && unsafe { libc::geteuid() } == 0;
        if !can {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but no root or /dev/net/tun"
            );
            eprintln!("skipped: needs root and /dev/net/tun");
            return;
        }
        let name = format!("fst{}q", std::process::id() % 100_000);
        let flags = TapFlags {
            offload: true,
            multi_queue: true,
        };
        let q0 = TapQueue::open(&name, flags).unwrap();
        let q1 = TapQueue::open(&name, flags).unwrap();
        let mut buf = [0u8; 2048];
        // Nothing queued (the device is down): non-blocking read says so.
        let e = q0.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        set_mtu(&name, 9000).unwrap();
        set_up(&name, true).unwrap();
        let mtu = std::fs::read_to_string(format!("/sys/class/net/{name}/mtu")).unwrap();
        assert_eq!(mtu.trim(), "9000");
        let flags = std::fs::read_to_string(format!("/sys/class/net/{name}/flags")).unwrap();
        let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap();
        assert_eq!(flags & libc::IFF_UP as u32, libc::IFF_UP as u32);
        drop((q0, q1));
        assert!(!std::path::Path::new(&format!("/sys/class/net/{name}")).exists());
    }
}
