//! The built-in TCP bulk test, for `iperf` checks when iperf3 is not
//! installed: `flowswitch bulk-recv` and `flowswitch bulk-send` (hidden
//! verbs), each run inside a host's namespace with `ip netns exec`.
//!
//! The receiver accepts one connection, reads until the sender closes,
//! and prints one JSON line: `{"bytes":N,"seconds":S}`, timed from the
//! first byte to the last. The sender writes for the given time.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How long the sender retries while the receiver starts.
const CONNECT_FOR: Duration = Duration::from_secs(5);
/// Bytes per read or write.
const CHUNK: usize = 128 * 1024;

/// What the receiver measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BulkResult {
    pub bytes: u64,
    pub seconds: f64,
}

impl BulkResult {
    pub fn gbit_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 * 8.0 / self.seconds / 1e9
        } else {
            0.0
        }
    }
}

/// Receives one stream on `port`; returns what arrived.
pub fn receive(port: u16, timeout: Duration) -> std::io::Result<BulkResult> {
    let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))?;
    let (mut conn, _) = listener.accept()?;
    conn.set_read_timeout(Some(timeout))?;
    let mut buf = vec![0u8; CHUNK];
    let mut bytes = 0u64;
    let mut first = None;
    let mut last = Instant::now();
    loop {
        match conn.read(&mut buf)? {
            0 => break,
            n => {
                first.get_or_insert_with(Instant::now);
                bytes += n as u64;
                last = Instant::now();
            }
        }
    }
    let seconds = first.map_or(0.0, |f| (last - f).as_secs_f64());
    Ok(BulkResult { bytes, seconds })
}

/// Sends to `to`:`port` for `seconds`; returns the bytes written.
pub fn send(to: IpAddr, port: u16, seconds: f64) -> std::io::Result<u64> {
    let addr = SocketAddr::new(to, port);
    let start = Instant::now();
    let mut conn = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(c) => break c,
            Err(e) if start.elapsed() >= CONNECT_FOR => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let buf = vec![0x5au8; CHUNK];
    let t0 = Instant::now();
    let mut sent = 0u64;
    while t0.elapsed().as_secs_f64() < seconds {
        conn.write_all(&buf)?;
        sent += buf.len() as u64;
    }
    conn.shutdown(std::net::Shutdown::Write)?;
    // Wait for the receiver to close, so that everything was read.
    let mut rest = [0u8; 64];
    while conn.read(&mut rest)? > 0 {}
    Ok(sent)
}

/// `flowswitch bulk-recv --port P`: prints the result as JSON.
pub fn recv_main(port: u16, timeout_s: u64) -> ExitCode {
    match receive(port, Duration::from_secs(timeout_s)) {
        Ok(r) => match serde_json::to_string(&r) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("flowswitch bulk-recv: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("flowswitch bulk-recv: port {port}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `flowswitch bulk-send --to IP --port P --seconds S`.
pub fn send_main(to: IpAddr, port: u16, seconds: f64) -> ExitCode {
    match send(to, port, seconds) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowswitch bulk-send: {to}:{port}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_stream_is_counted() {
        // Pick a free port, then release it for the receiver.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let rx = std::thread::spawn(move || receive(port, Duration::from_secs(10)));
        let sent = send(IpAddr::from([127, 0, 0, 1]), port, 0.2).expect("send");
        let r = rx.join().expect("receiver thread").expect("receive");
        assert_eq!(r.bytes, sent);
        assert!(sent >= CHUNK as u64);
        assert!(r.gbit_per_s() > 0.0);
    }
}
