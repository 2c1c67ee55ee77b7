//! The per-packet action state and the actions flow programs call as
//! helpers: output, flood, normal, meter, push_vlan, pop_vlan (helper ids
//! 16..=21 of `docs/ebpf-abi.md`).
//!
//! # What?
//!
//! A compiled flow program does the cheap actions inline (set_field,
//! dec_ttl) and calls helpers for the rest. The helpers act on a
//! [`PacketState`]: the worker's view of the switch (ports, MAC table,
//! meters, counters), its output queues ([`TxBatch`]) and what happened to
//! the current packet so far (ingress port, clock, outputs, drop reason,
//! the flow and table being run, and optionally a copy of every output for
//! `flowswitch trace`).
//!
//! A `PacketState` lives as long as its worker and is reused for every
//! packet: [`PacketState::begin`] before the packet's first table,
//! [`PacketState::finish`] after its last, whatever the outcome. It holds
//! only owned values and `Arc`s, so it is `'static` and a flow program's
//! helpers can reach it through `&mut dyn Any` (see [`abi`]).
//!
//! # Where the packet is
//!
//! The packet bytes are not in the `PacketState`: while a flow program
//! runs, the engine holds them. Actions that read the packet take its
//! bytes (`&[u8]`); actions that change its length take a [`FrameBuf`],
//! either the worker's [`Frame`] or, from inside a program, a
//! [`FrameWindow`](crate::dp::port::FrameWindow) over the engine's packet
//! memory. [`abi`] builds the window from the flow context.
//!
//! # Copies and moves
//!
//! `output` with [`FINAL`] (the compiler's promise that nothing after it
//! reads or changes the packet) does not copy: it records the port, and
//! [`PacketState::finish`] moves the packet's own buffer into that port's
//! queue. Any later output, flood, normal or VLAN change first queues a
//! copy of the packet for the recorded port, as it is at that moment, so a
//! broken promise costs a copy, never a frame: but a packet written by a
//! program's own stores after a FINAL output goes out as written. A flow
//! program's OUTPUT return code (its last action is an output) is the
//! pipeline calling [`PacketState::output`] with [`FINAL`] after the run:
//! the same path, without the helper call.
//!
//! # Semantics
//!
//! - `output P`: to port P if it exists and is up; otherwise counted as a
//!   tx drop of P and, if the packet goes nowhere, as
//!   [`DropReason::PortDown`]. Output to the ingress port is allowed
//!   (that is what `in_port` compiles to).
//! - `flood`: every port that is up, except the ingress port, in port id
//!   order.
//! - `normal`: learn the source address (VLAN-aware, see [`MacTable`]) on
//!   the ingress port, then: a group destination, or an unknown one, is
//!   flooded to the ports that are up, carry the frame's VLAN
//!   ([`PortSet::carries`]) and are not the ingress port; a known one is
//!   sent to its port, unless that is the ingress port (then nothing is
//!   sent).
//! - `meter M`: [`Meter::admit`](crate::dp::meter::Meter::admit) with the
//!   packet's length now.
//! - `push_vlan`, `pop_vlan`: add or remove the outer 802.1Q tag by moving
//!   the 12 address bytes into or out of the headroom (no copy of the
//!   payload), then extract the flow key again, so that later actions and
//!   tables see the packet as it now is. Popping an untagged packet does
//!   nothing.
//!
//! # Offload metadata
//!
//! A packet from an offload port carries a virtio-net header (a checksum
//! to complete, a TSO super-frame). The state keeps the current packet's
//! ([`PacketState::set_offload`]); every copy sent carries it, the packet
//! itself gets it back in [`PacketState::finish`], and `push_vlan` /
//! `pop_vlan` move its checksum start and header length by the tag's 4
//! bytes, so that the port it goes to (or the software fallback of a port
//! without offloads) finds the L4 header where the header says.

pub mod abi;
#[cfg(test)]
mod program_tests;
#[cfg(test)]
mod tests;

pub use abi::flow_registry;

use std::sync::Arc;

use thiserror::Error;

use super::mac::{is_multicast, MacTable};
use super::meter::Meters;
use super::port::frame::{insert_tag, remove_tag, TAG_LEN};
use super::port::{Frame, FrameBuf, FrameError, PortId, PortSet, TxBatch};
use super::stats::{DropReason, WorkerCounters};
use crate::packet::vlan::{self, VlanError};
use crate::packet::vnet::VnetHdr;
use crate::packet::{extract, ParseError, Parsed, ETH_TYPE_VLAN, MAX_FRAME_LEN};

/// Flag of `fs_output`, `fs_flood` and `fs_normal`: this is the packet's
/// last use, so it may be moved instead of copied.
pub const FINAL: u64 = 1;

/// Bytes of an Ethernet header.
const ETH_HLEN: usize = 14;
/// Bytes of the two MAC addresses.
const ADDRS_LEN: usize = 12;

/// An action that could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ActionError {
    /// `meter` with an index beyond the switch's meters.
    #[error("meter {index} does not exist ({count} meters)")]
    NoMeter { index: u32, count: usize },
    /// A tag operation on a frame that cannot take it.
    #[error(transparent)]
    Vlan(#[from] VlanError),
    /// No room to push a tag (a fixed packet buffer without headroom).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A tag would make the frame longer than the switch accepts.
    #[error("frame of {len} bytes cannot take a tag: limit {max} bytes", max = MAX_FRAME_LEN)]
    TooLong { len: usize },
    /// The frame, changed by a tag operation, no longer parses (a custom
    /// program had written a malformed header).
    #[error("frame does not parse after the tag change: {0}")]
    Reparse(#[from] ParseError),
}

impl ActionError {
    /// The negative value a helper returns for this error (as `i64`):
    /// -1 the frame cannot take or give a tag, -2 no headroom, -3 too
    /// long, -4 no such meter, -5 the frame no longer parses.
    pub fn code(&self) -> i64 {
        match self {
            ActionError::Vlan(_) => -1,
            ActionError::Frame(_) => -2,
            ActionError::TooLong { .. } => -3,
            ActionError::NoMeter { .. } => -4,
            ActionError::Reparse(_) => -5,
        }
    }
}

/// One frame sent, as recorded for `flowswitch trace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceOutput {
    pub port: PortId,
    pub frame: Vec<u8>,
}

/// How a packet ended, from [`PacketState::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Frames queued for sending (copies and the packet itself).
    pub sent: u32,
    /// Why the packet was dropped: the program's verdict if it dropped it,
    /// else, if nothing was sent, why not. `None` when it was sent and not
    /// dropped.
    pub drop: Option<DropReason>,
}

/// A worker's action state; see the [module docs](self).
pub struct PacketState {
    ports: Arc<PortSet>,
    mac: Arc<MacTable>,
    meters: Arc<Meters>,
    counters: Arc<WorkerCounters>,
    tx: TxBatch,
    trace: Option<Vec<TraceOutput>>,
    // The current packet.
    in_port: PortId,
    in_index: Option<usize>,
    /// The port `in_index` was looked up for (`None`: not yet, or the
    /// ports changed).
    in_index_of: Option<PortId>,
    now_ns: u64,
    now_ms: u64,
    /// The flow being run (the pipeline's numbering).
    pub flow: u32,
    /// The table being run.
    pub table: u8,
    drop: Option<DropReason>,
    sent: u32,
    /// Port index of a FINAL output not yet queued.
    pending: Option<usize>,
    /// The current packet's offload metadata.
    offload: VnetHdr,
}

impl std::fmt::Debug for PacketState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketState")
            .field("in_port", &self.in_port)
            .field("now_ns", &self.now_ns)
            .field("table", &self.table)
            .field("flow", &self.flow)
            .field("sent", &self.sent)
            .field("drop", &self.drop)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl PacketState {
    /// The state of worker number `worker`. `counters` must have been made
    /// for `ports` (same number and order).
    pub fn new(
        worker: usize,
        ports: Arc<PortSet>,
        mac: Arc<MacTable>,
        meters: Arc<Meters>,
        counters: Arc<WorkerCounters>,
    ) -> Self {
        PacketState {
            tx: TxBatch::new(worker, ports.len()),
            ports,
            mac,
            meters,
            counters,
            trace: None,
            in_port: 0,
            in_index: None,
            in_index_of: None,
            now_ns: 0,
            now_ms: 0,
            flow: 0,
            table: 0,
            drop: None,
            sent: 0,
            pending: None,
            offload: VnetHdr::default(),
        }
    }

    /// Switches to a new port set (ports added or removed), with counters
    /// made for it. Frames still queued are dropped: flush first.
    pub fn set_ports(&mut self, ports: Arc<PortSet>, counters: Arc<WorkerCounters>) {
        self.tx.reshape(ports.len());
        self.ports = ports;
        self.counters = counters;
        self.in_index = None;
        self.in_index_of = None;
        self.pending = None;
    }

    /// Switches to new meters (a reloaded switch file).
    pub fn set_meters(&mut self, meters: Arc<Meters>) {
        self.meters = meters;
    }

    /// Starts recording a copy of every output (for `flowswitch trace`),
    /// or stops.
    pub fn record_outputs(&mut self, on: bool) {
        self.trace = if on { Some(Vec::new()) } else { None };
    }

    /// Whether outputs are being recorded.
    #[inline]
    pub fn recording(&self) -> bool {
        self.trace.is_some()
    }

    /// The outputs recorded since the last call.
    pub fn take_outputs(&mut self) -> Vec<TraceOutput> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Starts a packet received on `in_port` at `now_ns`.
    #[inline]
    pub fn begin(&mut self, in_port: PortId, now_ns: u64) {
        // A batch's packets share the port and the clock.
        if self.in_index_of != Some(in_port) {
            self.in_index = self.ports.index_of(in_port);
            self.in_index_of = Some(in_port);
        }
        self.in_port = in_port;
        if now_ns != self.now_ns {
            self.now_ns = now_ns;
            self.now_ms = now_ns / 1_000_000;
        }
        self.flow = 0;
        self.table = 0;
        self.drop = None;
        self.sent = 0;
        self.pending = None;
        self.offload = VnetHdr::default();
    }

    /// The current packet's time in ms (set by [`begin`](Self::begin)).
    #[inline]
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Sets the current packet's offload metadata (after
    /// [`begin`](Self::begin); the frame's [`Frame::offload`]).
    #[inline]
    pub fn set_offload(&mut self, offload: VnetHdr) {
        self.offload = offload;
    }

    /// The current packet's offload metadata, as the actions so far left
    /// it.
    #[inline]
    pub fn offload(&self) -> VnetHdr {
        self.offload
    }

    /// Ends the packet: queues a FINAL output by moving `frame`'s buffer
    /// (leaving `frame` empty), counts a drop, and says what happened.
    /// `verdict` is the drop reason of the program's DROP return code, or
    /// of the pipeline (no match). Call it after every packet, whatever the
    /// programs returned: outputs already made stand. `frame` must be the
    /// packet as the programs left it (window updated after VLAN changes).
    #[inline(always)]
    pub fn finish(&mut self, frame: &mut Frame, verdict: Option<DropReason>) -> Outcome {
        if let Some(idx) = self.pending.take() {
            frame.set_offload(self.offload);
            self.tx.move_to(idx, frame);
        }
        let drop = match verdict {
            Some(r) => Some(r),
            None if self.sent == 0 => Some(self.drop.unwrap_or(DropReason::NoOutput)),
            None => None,
        };
        if let Some(r) = drop {
            self.counters.count_drop(r);
        }
        Outcome {
            sent: self.sent,
            drop,
        }
    }

    /// The ingress port of the current packet.
    #[inline]
    pub fn in_port(&self) -> PortId {
        self.in_port
    }

    /// The current packet's clock.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Frames sent for the current packet so far.
    #[inline]
    pub fn sent(&self) -> u32 {
        self.sent
    }

    pub fn ports(&self) -> &Arc<PortSet> {
        &self.ports
    }

    pub fn mac_table(&self) -> &Arc<MacTable> {
        &self.mac
    }

    pub fn meters(&self) -> &Arc<Meters> {
        &self.meters
    }

    pub fn counters(&self) -> &Arc<WorkerCounters> {
        &self.counters
    }

    /// The worker's output queues (to flush after a batch, and for
    /// receive buffers from its pool).
    pub fn tx(&mut self) -> &mut TxBatch {
        &mut self.tx
    }

    /// Sends the queued frames (see [`TxBatch::flush`]).
    pub fn flush(&mut self) -> super::port::Flushed {
        self.tx.flush(&self.ports, &self.counters)
    }

    /// Queues the pending FINAL output as a copy of `data` (the packet
    /// before whatever comes next).
    #[inline]
    fn settle(&mut self, data: &[u8]) {
        if let Some(idx) = self.pending.take() {
            self.tx.copy_offload_to(idx, data, self.offload);
        }
    }

    /// Sends `data` to the port at `idx` (known to exist and be up).
    #[inline(always)]
    fn emit(&mut self, idx: usize, data: &[u8], last: bool) {
        self.settle(data);
        if let Some(t) = &mut self.trace {
            if let Some(port) = self.ports.id(idx) {
                t.push(TraceOutput {
                    port,
                    frame: data.to_vec(),
                });
            }
        }
        self.sent += 1;
        if last {
            self.pending = Some(idx);
        } else {
            self.tx.copy_offload_to(idx, data, self.offload);
        }
    }

    #[cold]
    fn port_down(&mut self, idx: Option<usize>) {
        self.count_tx_drop(idx);
        self.drop.get_or_insert(DropReason::PortDown);
    }

    /// A tx drop on the port at `idx` (none when the port is unknown).
    #[cold]
    fn count_tx_drop(&self, idx: Option<usize>) {
        if let Some(c) = idx.and_then(|i| self.counters.port(i)) {
            c.tx_drops.inc();
        }
    }

    /// Moves `frame` straight to `port`'s queue, outside a packet's
    /// actions (the cache-hit path, whose flow program returned OUTPUT);
    /// a port that is down or unknown gets a tx drop instead, and the
    /// packet's drop reason comes back.
    #[inline(always)]
    pub fn move_out(&mut self, port: PortId, frame: &mut Frame) -> Result<(), DropReason> {
        match self.ports.index_of(port) {
            Some(idx) if self.ports.is_up(idx) => {
                self.tx.move_to(idx, frame);
                Ok(())
            }
            idx => {
                self.count_tx_drop(idx);
                Err(DropReason::PortDown)
            }
        }
    }

    /// `output`: sends the packet `data` to `port` (helper 16).
    #[inline(always)]
    pub fn output(&mut self, data: &[u8], port: PortId, flags: u64) {
        match self.ports.index_of(port) {
            Some(idx) if self.ports.is_up(idx) => self.emit(idx, data, flags & FINAL != 0),
            idx => self.port_down(idx),
        }
    }

    /// `flood`: every port that is up but the ingress one (helper 17).
    pub fn flood(&mut self, data: &[u8], flags: u64) {
        self.flood_vlan(data, flags, None);
    }

    /// Floods, to the ports carrying `vlan` only if it is given.
    fn flood_vlan(&mut self, data: &[u8], flags: u64, vlan: Option<u16>) {
        let mut prev = None;
        for idx in 0..self.ports.len() {
            if Some(idx) == self.in_index
                || !self.ports.is_up(idx)
                || vlan.is_some_and(|v| !self.ports.carries(idx, v))
            {
                continue;
            }
            if let Some(p) = prev {
                self.emit(p, data, false);
            }
            prev = Some(idx);
        }
        if let Some(p) = prev {
            self.emit(p, data, flags & FINAL != 0);
        }
    }

    /// `normal`: MAC learning switching (helper 18).
    pub fn normal(&mut self, data: &[u8], flags: u64) {
        let Some(h) = data.first_chunk::<ETH_HLEN>() else {
            return;
        };
        let mac = |b: &[u8]| b.iter().fold(0u64, |m, &x| (m << 8) | u64::from(x));
        let dst = mac(&h[..6]);
        let src = mac(&h[6..ADDRS_LEN]);
        let vlan = if u16::from_be_bytes([h[12], h[13]]) == ETH_TYPE_VLAN {
            data.get(ETH_HLEN..)
                .and_then(|rest| rest.first_chunk::<2>())
                .map_or(0, |tci| u16::from_be_bytes(*tci) & 0x0fff)
        } else {
            0
        };
        self.mac.learn(vlan, src, self.in_port, self.now_ms);
        if is_multicast(dst) {
            return self.flood_vlan(data, flags, Some(vlan));
        }
        match self.mac.lookup(vlan, dst, self.now_ms) {
            Some(p) if p == self.in_port => {}
            Some(p) => self.output(data, p, flags),
            None => self.flood_vlan(data, flags, Some(vlan)),
        }
    }

    /// `meter`: whether a packet of `len` bytes conforms to meter `index`
    /// (helper 19).
    #[inline]
    pub fn meter(&mut self, index: u32, len: usize) -> Result<bool, ActionError> {
        match self.meters.get(index) {
            Some(m) => Ok(m.admit(len, self.now_ns)),
            None => Err(ActionError::NoMeter {
                index,
                count: self.meters.len(),
            }),
        }
    }

    /// `push_vlan`: adds an outer 802.1Q tag with `tci` (pcp << 13 | dei
    /// << 12 | vid) and returns the packet's new key and offsets (helper
    /// 20). On error the packet is unchanged, except after
    /// [`ActionError::Reparse`].
    pub fn push_vlan<F: FrameBuf + ?Sized>(
        &mut self,
        f: &mut F,
        tci: u16,
    ) -> Result<Parsed, ActionError> {
        let len = f.data().len();
        if len < ETH_HLEN {
            return Err(VlanError::NoEthernet { len }.into());
        }
        if len + TAG_LEN > MAX_FRAME_LEN {
            return Err(ActionError::TooLong { len });
        }
        self.settle(f.data());
        insert_tag(f, tci)?;
        self.offload.shift(TAG_LEN as i32);
        Ok(extract(f.data(), self.in_port)?)
    }

    /// `pop_vlan`: removes the outer 802.1Q tag and returns the packet's
    /// new key and offsets; `None` (nothing changed) when it is untagged
    /// (helper 21).
    pub fn pop_vlan<F: FrameBuf + ?Sized>(
        &mut self,
        f: &mut F,
    ) -> Result<Option<Parsed>, ActionError> {
        if vlan::tci(f.data())?.is_none() {
            return Ok(None);
        }
        self.settle(f.data());
        remove_tag(f)?;
        self.offload.shift(-(TAG_LEN as i32));
        Ok(Some(extract(f.data(), self.in_port)?))
    }
}
