//! What the privileged end-to-end tests share: the check that the machine
//! can run them (skip, or fail under `CI=true`), the repository's root,
//! `ip`, the [`Net`] guard that owns a test's namespaces and deletes them
//! on every exit, `ping` from a namespace, checked TCP transfers between
//! namespaces (threads that enter them with `setns`; the receiver checks
//! every byte), and polling.
//!
//! Each test binary includes this module (`mod common;`) and uses part
//! of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use datapath::sys::netns;

/// Whether this machine can run a test that makes namespaces and TAPs:
/// root, `/dev/net/tun`, `ip` and `ping`. Without them the test prints
/// that it skipped and returns; under `CI=true` it fails instead.
pub fn prerequisites(test: &str) -> bool {
    prerequisites_with(test, &[])
}

/// [`prerequisites`] plus the tools `extra` (e.g. `iperf3`).
pub fn prerequisites_with(test: &str, extra: &[&str]) -> bool {
    let have = controller::up::checks::have;
    let mut missing: Vec<&str> = [
        (datapath::sys::cred::effective_uid() != 0).then_some("root"),
        (!Path::new("/dev/net/tun").exists()).then_some("/dev/net/tun"),
        (!have("ip")).then_some("ip"),
        (!have("ping")).then_some("ping"),
    ]
    .into_iter()
    .flatten()
    .collect();
    missing.extend(extra.iter().copied().filter(|t| !have(t)));
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: CI=true but missing {missing:?}");
    }
    eprintln!("{test}: skipped, missing {missing:?}");
    false
}

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Kills a child process on drop (test failure included).
pub struct ChildGuard(pub Option<std::process::Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sends signal `sig` (e.g. "INT") to process `pid`.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill -{sig} {pid}");
}

/// Waits up to `secs` seconds for `child` to exit; its status, or `None`
/// if it is still running.
pub fn wait_exit(child: &mut std::process::Child, secs: u64) -> Option<std::process::ExitStatus> {
    for _ in 0..secs * 20 {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Runs `ip ARGS`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespaces of one test; deleted on drop.
pub struct Net {
    tag: String,
    namespaces: Vec<String>,
}

impl Net {
    pub fn new(tag: &str) -> Self {
        Net {
            tag: format!("{}{tag}", std::process::id()),
            namespaces: Vec::new(),
        }
    }

    /// A TAP name unique to this test (<= 15 chars).
    pub fn ifname(&self, i: usize) -> String {
        let n = format!("fs{}{i}", self.tag);
        assert!(n.len() <= 15, "{n} too long");
        n
    }

    /// Makes namespace number `i` with loopback up.
    pub fn ns(&mut self, i: usize) -> String {
        let name = format!("fsn{}{i}", self.tag);
        ip(&["netns", "add", &name]);
        self.namespaces.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// Moves TAP `dev` into `ns` with `mac`, up.
    pub fn attach(&self, dev: &str, ns: &str, mac: &str) {
        ip(&["link", "set", "dev", dev, "netns", ns]);
        ip(&["-n", ns, "link", "set", "dev", dev, "address", mac]);
        ip(&["-n", ns, "link", "set", "dev", dev, "up"]);
    }

    pub fn addr(&self, ns: &str, dev: &str, cidr: &str) {
        ip(&["-n", ns, "addr", "add", cidr, "dev", dev]);
    }

    pub fn delete(&mut self, ns: &str) {
        ip(&["netns", "del", ns]);
        self.namespaces.retain(|n| n != ns);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// `ping` from namespace `ns`: whether any reply came.
pub fn ping(ns: &str, dst: &str, extra: &[&str]) -> bool {
    let mut args = vec![
        "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "2",
    ];
    args.extend_from_slice(extra);
    args.push(dst);
    Command::new("ip")
        .args(&args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Polls `cond` every 50 ms, up to 10 s.
pub fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The byte at position `i` of a transfer (not periodic in any MSS).
pub fn pattern(i: usize) -> u8 {
    ((i * 131) ^ (i >> 11)) as u8
}

/// Starts a TCP receiver in namespace `ns` on `addr`; it returns whether
/// it received exactly `len` bytes of [`pattern`].
pub fn receiver(ns: String, addr: SocketAddr, len: usize) -> JoinHandle<Result<(), String>> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        netns::enter(&ns).map_err(|e| format!("setns {ns}: {e}"))?;
        let l = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
        let _ = ready_tx.send(());
        let (mut s, _) = l.accept().map_err(|e| format!("accept: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut at = 0usize;
        loop {
            let n = s.read(&mut buf).map_err(|e| format!("read at {at}: {e}"))?;
            if n == 0 {
                break;
            }
            for (k, &b) in buf[..n].iter().enumerate() {
                if b != pattern(at + k) {
                    return Err(format!(
                        "byte {} is {b:#x}, want {:#x}",
                        at + k,
                        pattern(at + k)
                    ));
                }
            }
            at += n;
        }
        if at != len {
            return Err(format!("received {at} bytes, want {len}"));
        }
        Ok(())
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("receiver ready");
    h
}

/// Sends `len` bytes of [`pattern`] from namespace `ns` to `addr`.
pub fn send(ns: &str, addr: SocketAddr, len: usize) -> Result<(), String> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        netns::enter(&ns).map_err(|e| format!("setns {ns}: {e}"))?;
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let data: Vec<u8> = (0..len).map(pattern).collect();
        s.write_all(&data).map_err(|e| format!("write: {e}"))?;
        s.shutdown(std::net::Shutdown::Write)
            .map_err(|e| e.to_string())?;
        // Wait for the receiver to close (it has read everything).
        let _ = s.read(&mut [0u8; 1]);
        Ok(())
    })
    .join()
    .map_err(|_| "sender panicked".to_string())?
}

/// A checked TCP transfer of `len` bytes from `from` to `to_addr` in `to`.
pub fn transfer(from: &str, to: &str, to_addr: &str, port: u16, len: usize) {
    let addr: SocketAddr = format!("{to_addr}:{port}").parse().unwrap();
    let r = receiver(to.to_string(), addr, len);
    let sent = send(from, addr, len);
    let got = r.join().expect("receiver panicked");
    sent.unwrap_or_else(|e| panic!("sender: {e}"));
    got.unwrap_or_else(|e| panic!("receiver: {e}"));
}
