//! epoll: how a switch worker sleeps until one of its TAP queues has a
//! frame, instead of spinning.
//!
//! Each worker owns one [`Epoll`] with its (port, queue) descriptors
//! registered level-triggered, each with a 64-bit token the worker chooses
//! (it encodes the port index and queue). [`Epoll::wait`] blocks until a
//! descriptor is readable or the timeout passes (so that the worker also
//! notices a stop request or a new port set), and returns the tokens of the
//! ready descriptors.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Most events one [`Epoll::wait`] returns.
pub const MAX_EVENTS: usize = 64;

/// An epoll instance; see the [module docs](self).
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    pub fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 takes a flag word only; the result is
        // checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Epoll {
            // SAFETY: `fd` is a fresh descriptor nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            events: vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS],
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // `ev` is a live epoll_event the kernel reads (ignored for
        // EPOLL_CTL_DEL); both descriptors are plain integers the kernel
        // checks.
        // SAFETY: by the reasons just given.
        let r = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Watches `fd` for input, level-triggered, reporting `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token)
    }

    /// Stops watching `fd`.
    pub fn remove(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0)
    }

    /// Waits up to `timeout_ms` for input and appends the ready tokens to
    /// `ready` (nothing on timeout or on a signal).
    pub fn wait(&mut self, timeout_ms: i32, ready: &mut Vec<u64>) -> io::Result<()> {
        // SAFETY: the kernel writes at most `events.len()` entries into
        // the vector's live, initialised buffer.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e);
        }
        ready.extend(self.events.iter().take(n as usize).map(|e| e.u64));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn reports_readable_descriptors_by_token() {
        let mut ep = Epoll::new().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        let (_c, d) = UnixStream::pair().unwrap();
        ep.add(b.as_raw_fd(), 7).unwrap();
        ep.add(d.as_raw_fd(), 9).unwrap();
        let mut ready = Vec::new();
        ep.wait(0, &mut ready).unwrap();
        assert!(ready.is_empty());
        a.write_all(b"x").unwrap();
        ep.wait(1000, &mut ready).unwrap();
        assert_eq!(ready, vec![7]);
        // Level-triggered: still readable.
        ready.clear();
        ep.wait(0, &mut ready).unwrap();
        assert_eq!(ready, vec![7]);
        ep.remove(b.as_raw_fd()).unwrap();
        ready.clear();
        ep.wait(0, &mut ready).unwrap();
        assert!(ready.is_empty());
        assert!(ep.remove(b.as_raw_fd()).is_err());
    }
}
