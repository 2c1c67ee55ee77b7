//! An in-process host of `flowswitch demo`: a smoltcp interface whose
//! Ethernet link is one of the switch's memory ports.
//!
//! Frames the host sends are queued for the switch to receive on its port
//! ([`MemPort::push_rx`]); frames the switch sends to the port are handed
//! to the host ([`Host::deliver`]) and read by smoltcp on its next poll.
//! Nothing here blocks or sleeps: the demo's loop polls the hosts and the
//! switch's worker in turn.

use std::collections::VecDeque;
use std::sync::Arc;

use datapath::dp::port::{Frame, MemPort};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::{icmp, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};
use thiserror::Error;

/// The largest frame a host sends: a 1500-byte IP MTU plus the Ethernet
/// header.
pub const FRAME_MTU: usize = 1514;
/// Bytes of each TCP socket buffer (and so of the receive window).
const TCP_BUFFER: usize = 1 << 20;
/// Echo requests or replies an ICMP socket can hold.
const ICMP_SLOTS: usize = 16;
/// Bytes of each ICMP socket buffer.
const ICMP_BUFFER: usize = 16 * 1024;

/// A host that could not be set up.
#[derive(Debug, Error)]
pub enum HostError {
    #[error("host {host}: cannot add address {addr}/{prefix}")]
    Address {
        host: String,
        addr: Ipv4Address,
        prefix: u8,
    },
}

/// The host's end of its link to the switch: smoltcp's device.
struct Link {
    /// Frames from the switch, oldest first.
    rx: VecDeque<Frame>,
    /// The switch port this link plugs into.
    port: Arc<MemPort>,
    /// A send buffer reused for every frame.
    scratch: Vec<u8>,
    /// Frames sent to the switch.
    sent: u64,
}

struct Rx(Frame);

impl RxToken for Rx {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.0.data())
    }
}

struct Tx<'a> {
    port: &'a MemPort,
    scratch: &'a mut Vec<u8>,
    sent: &'a mut u64,
}

impl TxToken for Tx<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        self.scratch.clear();
        self.scratch.resize(len, 0);
        let r = f(self.scratch);
        self.port.push_rx(self.scratch);
        *self.sent += 1;
        r
    }
}

impl Device for Link {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(Rx, Tx<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((
            Rx(frame),
            Tx {
                port: &self.port,
                scratch: &mut self.scratch,
                sent: &mut self.sent,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        Some(Tx {
            port: &self.port,
            scratch: &mut self.scratch,
            sent: &mut self.sent,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = FRAME_MTU;
        caps
    }
}

/// One demo host: an interface with one IPv4 address, an ICMP socket and
/// a TCP socket.
pub struct Host {
    pub name: String,
    pub mac: [u8; 6],
    pub ip: Ipv4Address,
    link: Link,
    iface: Interface,
    sockets: SocketSet<'static>,
    pub icmp: SocketHandle,
    pub tcp: SocketHandle,
}

impl Host {
    /// A host named `name` with `mac` and `ip`/`prefix`, plugged into
    /// `port`. `seed` makes smoltcp's choices (ports, sequence numbers)
    /// repeatable.
    pub fn new(
        name: &str,
        mac: [u8; 6],
        ip: Ipv4Address,
        prefix: u8,
        port: Arc<MemPort>,
        seed: u64,
    ) -> Result<Host, HostError> {
        let mut link = Link {
            rx: VecDeque::new(),
            port,
            scratch: Vec::with_capacity(FRAME_MTU),
            sent: 0,
        };
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut link, Instant::from_millis(0));
        let mut added = true;
        iface.update_ip_addrs(|addrs| {
            added = addrs.push(IpCidr::new(IpAddress::Ipv4(ip), prefix)).is_ok();
        });
        if !added {
            return Err(HostError::Address {
                host: name.to_string(),
                addr: ip,
                prefix,
            });
        }
        let mut sockets = SocketSet::new(Vec::new());
        let icmp = sockets.add(icmp::Socket::new(
            icmp::PacketBuffer::new(
                vec![icmp::PacketMetadata::EMPTY; ICMP_SLOTS],
                vec![0; ICMP_BUFFER],
            ),
            icmp::PacketBuffer::new(
                vec![icmp::PacketMetadata::EMPTY; ICMP_SLOTS],
                vec![0; ICMP_BUFFER],
            ),
        ));
        let tcp = sockets.add(tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        ));
        Ok(Host {
            name: name.to_string(),
            mac,
            ip,
            link,
            iface,
            sockets,
            icmp,
            tcp,
        })
    }

    /// Lets smoltcp read the frames delivered so far and send what its
    /// sockets have queued.
    pub fn poll(&mut self, now: Instant) {
        self.iface.poll(now, &mut self.link, &mut self.sockets);
    }

    /// Hands frames the switch sent to this host's port.
    pub fn deliver(&mut self, frames: impl IntoIterator<Item = Frame>) {
        self.link.rx.extend(frames);
    }

    /// Frames this host has sent to the switch.
    pub fn frames_sent(&self) -> u64 {
        self.link.sent
    }

    pub fn icmp_socket(&mut self) -> &mut icmp::Socket<'static> {
        self.sockets.get_mut::<icmp::Socket>(self.icmp)
    }

    pub fn tcp_socket(&mut self) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.tcp)
    }

    /// Mutable access to the interface (TCP connect needs its context).
    pub fn tcp_connect(
        &mut self,
        remote: (Ipv4Address, u16),
        local_port: u16,
    ) -> Result<(), tcp::ConnectError> {
        let cx = self.iface.context();
        self.sockets.get_mut::<tcp::Socket>(self.tcp).connect(
            cx,
            (IpAddress::Ipv4(remote.0), remote.1),
            local_port,
        )
    }
}
