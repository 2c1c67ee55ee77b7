//! What Switchd drives: the data plane behind a running switch, whichever
//! it is.
//!
//! Two backends exist: the in-memory [`Datapath`] (tests, demos; the
//! caller polls its workers and stamps packets) and the threaded
//! [`Switch`] on TAP devices (`flowswitch run`, `flowswitch up`; its
//! workers stamp packets with their own clock). [`Plane`] is the little
//! Switchd needs from either: publish a generation, the ports, the
//! counters, the MAC table and meters (for live traces), the packet
//! clock when the plane has one, and, where the plane can, ports added
//! and removed at run time (a reload whose `ports:` changed). With port
//! epochs, "the ports" are the current epoch's.
//!
//! The in-memory datapath's ports are fixed; the `Switch` alone cannot
//! make devices, so the plane of `flowswitch run` is its
//! [`RunningSwitch`](crate::run::RunningSwitch), which creates the TAPs.

use std::sync::Arc;

use datapath::dp::mac::MacTable;
use datapath::dp::meter::Meters;
use datapath::dp::pipeline::{Datapath, Generation};
use datapath::dp::port::PortId;
use datapath::dp::port::PortSet;
use datapath::dp::stats::Snapshot;
use datapath::dp::switch::Switch;

use super::Clock;
use crate::model::PortDesc;

/// See the [module docs](self).
pub trait Plane: Send + Sync + std::fmt::Debug {
    /// Installs `generation` (built for [`workers`](Self::workers)); the
    /// error says why not.
    fn publish(&self, generation: Arc<Generation>) -> Result<(), String>;
    /// The ports packets are switched between now.
    fn ports(&self) -> Arc<PortSet>;
    /// The counters summed over the workers.
    fn snapshot(&self) -> Snapshot;
    /// Worker threads (per-flow counter blocks a generation needs).
    fn workers(&self) -> usize;
    fn mac_table(&self) -> &Arc<MacTable>;
    fn meters(&self) -> &Arc<Meters>;
    /// The clock the plane stamps packets with, if it stamps them itself
    /// (then Switchd must use it); `None`: its caller stamps them.
    fn clock(&self) -> Option<Clock>;
    /// The in-memory datapath, when that is the backend (tests drive its
    /// workers).
    fn as_datapath(&self) -> Option<&Datapath> {
        None
    }

    /// Whether [`add_ports`](Self::add_ports) and
    /// [`remove_ports`](Self::remove_ports) work.
    fn ports_change(&self) -> bool {
        false
    }

    /// Adds these ports while the switch runs: all or none.
    fn add_ports(&self, ports: &[PortDesc]) -> Result<(), String> {
        match ports.first() {
            None => Ok(()),
            Some(p) => Err(format!("cannot add port {} at run time", p.id)),
        }
    }

    /// Removes these ports while the switch runs.
    fn remove_ports(&self, ids: &[PortId]) -> Result<(), String> {
        match ids.first() {
            None => Ok(()),
            Some(id) => Err(format!("cannot remove port {id} at run time")),
        }
    }
}

impl Plane for Datapath {
    fn publish(&self, generation: Arc<Generation>) -> Result<(), String> {
        Datapath::publish(self, generation).map_err(|e| e.to_string())
    }

    fn ports(&self) -> Arc<PortSet> {
        Arc::clone(Datapath::ports(self))
    }

    fn snapshot(&self) -> Snapshot {
        self.stats().snapshot()
    }

    fn workers(&self) -> usize {
        self.stats().workers()
    }

    fn mac_table(&self) -> &Arc<MacTable> {
        Datapath::mac_table(self)
    }

    fn meters(&self) -> &Arc<Meters> {
        Datapath::meters(self)
    }

    fn clock(&self) -> Option<Clock> {
        None
    }

    fn as_datapath(&self) -> Option<&Datapath> {
        Some(self)
    }
}

impl Plane for Switch {
    fn publish(&self, generation: Arc<Generation>) -> Result<(), String> {
        Switch::publish(self, generation).map_err(|e| e.to_string())
    }

    fn ports(&self) -> Arc<PortSet> {
        Switch::ports(self)
    }

    fn snapshot(&self) -> Snapshot {
        Switch::snapshot(self)
    }

    fn workers(&self) -> usize {
        Switch::workers(self)
    }

    fn mac_table(&self) -> &Arc<MacTable> {
        Switch::mac_table(self)
    }

    fn meters(&self) -> &Arc<Meters> {
        Switch::meters(self)
    }

    fn clock(&self) -> Option<Clock> {
        Some(Clock::Monotonic(self.clock_origin()))
    }
}
