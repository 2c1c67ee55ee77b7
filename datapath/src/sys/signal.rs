//! SIGHUP as a flag: [`install_sighup`] sets a handler that only raises an
//! atomic flag (the one thing a handler may safely do), and
//! [`take_sighup`] reads and clears it. The switch's reload watcher polls
//! it alongside the file's modification time.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

static HUP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_hup(_sig: libc::c_int) {
    HUP.store(true, Ordering::SeqCst);
}

/// Installs the SIGHUP handler (idempotent).
pub fn install_sighup() -> io::Result<()> {
    // SAFETY: an all-zero sigaction is a valid value (empty mask, no
    // flags) that is filled in below before use.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = on_hup as extern "C" fn(libc::c_int) as libc::sighandler_t;
    act.sa_flags = libc::SA_RESTART;
    // SAFETY: `act.sa_mask` is a valid sigset_t owned by `act`.
    unsafe { libc::sigemptyset(&mut act.sa_mask) };
    // SAFETY: `act` is initialised; the handler is async-signal-safe (one
    // atomic store); a null old-action pointer is allowed.
    let rc = unsafe { libc::sigaction(libc::SIGHUP, &act, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether a SIGHUP arrived since the last call.
pub fn take_sighup() -> bool {
    HUP.swap(false, Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sighup_sets_the_flag_once() {
        install_sighup().unwrap();
        let _ = take_sighup();
        let st = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        // Delivery to this process is asynchronous: wait for the flag (a
        // bound, not a timing assertion).
        let mut seen = false;
        for _ in 0..500 {
            if take_sighup() {
                seen = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(seen, "SIGHUP never arrived");
        assert!(!take_sighup());
    }
}
