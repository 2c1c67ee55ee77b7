//! Network namespaces: moving the calling thread into a named namespace
//! (`setns`), so that a test's listener and client threads can open
//! sockets inside the namespaces a switch connects, without external
//! tools.
//!
//! Only the calling thread changes namespace; a thread that entered one
//! should not go back to serving other work (spawn a thread for it).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Moves the calling thread into network namespace `name` (as made by
/// `ip netns add NAME`, i.e. `/var/run/netns/NAME`).
pub fn enter(name: &str) -> io::Result<()> {
    if name.is_empty() || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad namespace name {name:?}"),
        ));
    }
    let f = File::open(format!("/var/run/netns/{name}"))?;
    enter_fd(&f)
}

/// Moves the calling thread into the network namespace `ns` refers to (a
/// `/proc/PID/ns/net` or `/var/run/netns/NAME` file).
pub fn enter_fd(ns: &File) -> io::Result<()> {
    // SAFETY: setns takes a descriptor (kept open by `ns` for the call)
    // and a flag; it changes only the calling thread's namespace.
    let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(enter("").unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            enter("../x").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            enter("fs-no-such-ns-xyz").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
