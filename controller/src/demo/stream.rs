//! The demo's traffic: ICMP echoes, and a TCP stream whose every byte the
//! receiver checks.
//!
//! The stream's byte at offset `o` is `o % PATTERN_PERIOD` (a prime, so
//! that a segment dropped, duplicated or misplaced by whole segments
//! cannot line up with the pattern again).

use std::time::Duration;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{icmp, tcp};
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress, Ipv4Address};

use super::{DemoError, Net, TCP_PORT};

/// The period of the stream's byte pattern.
pub const PATTERN_PERIOD: usize = 251;
/// Bytes handed to the socket per call.
const CHUNK: usize = 64 * 1024;
/// Echo payload.
const ECHO_DATA: &[u8] = b"flowswitch demo ping";
/// How long the connection may take to open or to close.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the receiver may lag behind once the sender is done.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What the TCP stream did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamReport {
    /// Bytes the sender's socket accepted.
    pub sent: u64,
    /// Bytes the receiver read.
    pub received: u64,
    /// From the connection's opening to the last byte read.
    pub seconds: f64,
    /// Offset of the first byte that did not match the pattern.
    pub mismatch: Option<u64>,
    /// The receiver saw the sender's FIN after the last byte.
    pub closed: bool,
}

impl StreamReport {
    /// Every byte sent arrived, in order and intact, and the stream ended
    /// cleanly.
    pub fn ok(&self) -> bool {
        self.mismatch.is_none() && self.sent > 0 && self.received == self.sent && self.closed
    }

    pub fn gbit_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.received as f64 * 8.0 / self.seconds / 1e9
        } else {
            0.0
        }
    }
}

/// Queues an echo request to `target` on `socket`.
pub fn send_echo(
    socket: &mut icmp::Socket<'static>,
    target: Ipv4Address,
    ident: u16,
    seq: u16,
) -> Result<(), icmp::SendError> {
    let repr = Icmpv4Repr::EchoRequest {
        ident,
        seq_no: seq,
        data: ECHO_DATA,
    };
    let buf = socket.send(repr.buffer_len(), IpAddress::Ipv4(target))?;
    repr.emit(
        &mut Icmpv4Packet::new_unchecked(buf),
        &ChecksumCapabilities::default(),
    );
    Ok(())
}

/// Reads the socket's queued packets; true if one is the reply to `seq`.
pub fn recv_echo_reply(socket: &mut icmp::Socket<'static>, ident: u16, seq: u16) -> bool {
    let mut found = false;
    while let Ok((bytes, _from)) = socket.recv() {
        let Ok(packet) = Icmpv4Packet::new_checked(bytes) else {
            continue;
        };
        if let Ok(Icmpv4Repr::EchoReply {
            ident: i,
            seq_no,
            data,
        }) = Icmpv4Repr::parse(&packet, &ChecksumCapabilities::default())
        {
            found |= i == ident && seq_no == seq && data == ECHO_DATA;
        }
    }
    found
}

/// The pattern from offset `from` (mod the period), `CHUNK` bytes long.
fn pattern() -> Vec<u8> {
    (0..CHUNK + PATTERN_PERIOD)
        .map(|i| (i % PATTERN_PERIOD) as u8)
        .collect()
}

/// h2 listens, h1 connects and sends the pattern for `seconds` (or
/// `bytes`), closes, and h2 reads and checks everything.
pub fn run(net: &mut Net, seconds: f64, bytes: Option<u64>) -> Result<StreamReport, DemoError> {
    let server_ip = net.hosts[1].ip;
    net.hosts[1]
        .tcp_socket()
        .listen(TCP_PORT)
        .map_err(|e| DemoError::Tcp(format!("h2 listen on {TCP_PORT}: {e}")))?;
    net.hosts[0]
        .tcp_connect((server_ip, TCP_PORT), 49_152)
        .map_err(|e| DemoError::Tcp(format!("h1 connect to {server_ip}:{TCP_PORT}: {e}")))?;
    for h in &mut net.hosts {
        h.tcp_socket().set_nagle_enabled(false);
    }
    let opened = net.step_until(HANDSHAKE_TIMEOUT, |n| {
        n.hosts[0].tcp_socket().may_send() && n.hosts[1].tcp_socket().may_recv()
    });
    if !opened {
        return Err(DemoError::Tcp(format!(
            "h1 could not open a connection to {server_ip}:{TCP_PORT}"
        )));
    }
    let pattern = pattern();
    let mut read_buf = vec![0u8; CHUNK];
    let mut r = StreamReport::default();
    let limit = bytes.unwrap_or(u64::MAX);
    let start = net.elapsed();
    let send_for = Duration::from_secs_f64(seconds.max(0.0));
    let mut sender_done = false;
    let mut drain_deadline = None;
    loop {
        // The sender fills its socket buffer from where it is.
        if !sender_done {
            let out_of_time = net.elapsed() - start >= send_for;
            let s = net.hosts[0].tcp_socket();
            if r.sent >= limit || out_of_time {
                s.close();
                sender_done = true;
                drain_deadline = Some(net.elapsed() + DRAIN_TIMEOUT);
            } else {
                while s.can_send() && r.sent < limit {
                    let off = (r.sent % PATTERN_PERIOD as u64) as usize;
                    let want = usize::try_from(limit - r.sent).unwrap_or(CHUNK).min(CHUNK);
                    match s.send_slice(&pattern[off..off + want]) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => r.sent += n as u64,
                    }
                }
            }
        }
        net.step();
        // The receiver reads and checks what arrived.
        let s = net.hosts[1].tcp_socket();
        while s.can_recv() {
            let n = match s.recv_slice(&mut read_buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if r.mismatch.is_none() {
                let off = (r.received % PATTERN_PERIOD as u64) as usize;
                if let Some(i) = read_buf[..n]
                    .iter()
                    .zip(&pattern[off..off + n])
                    .position(|(a, b)| a != b)
                {
                    r.mismatch = Some(r.received + i as u64);
                }
            }
            r.received += n as u64;
        }
        r.seconds = (net.elapsed() - start).as_secs_f64();
        let s = net.hosts[1].tcp_socket();
        if sender_done && !s.may_recv() {
            r.closed = r.received == r.sent;
            break;
        }
        if drain_deadline.is_some_and(|d| net.elapsed() >= d) {
            break;
        }
    }
    // Let the close finish on both sides (not part of the figure).
    net.hosts[1].tcp_socket().close();
    net.step_until(HANDSHAKE_TIMEOUT, |n| {
        matches!(
            n.hosts[0].tcp_socket().state(),
            tcp::State::Closed | tcp::State::TimeWait
        )
    });
    Ok(r)
}
