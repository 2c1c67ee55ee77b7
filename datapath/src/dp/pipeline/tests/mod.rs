//! Pipeline tests: the fast path against the reference semantics on random
//! switches (diff), the cache-hit fast path against the general path
//! (hit), and targeted behaviour of workers and generations (worker).

mod diff;
mod gen;
mod hit;
mod worker;

use std::sync::Arc;

use super::*;
use crate::dp::mac::{MacConfig, MacTable};
use crate::dp::meter::Meters;
use crate::dp::port::{MemPort, Port};
use crate::ebpf::engine::Engine;
use crate::ebpf::insn::Insn;
use crate::flow::spec::FlowSpec;

/// Milliseconds in ns.
pub const MS: u64 = 1_000_000;

/// A datapath of four memory ports (ids 1..=4), a MAC table with a fixed
/// seed, and two meters: 0 = 8 kbps (1 byte per ms) with a 1 kB burst,
/// 1 = 1 Gbps with a 100 kB burst.
pub struct Rig {
    pub mems: Vec<Arc<MemPort>>,
    pub dp: Datapath,
}

impl Rig {
    pub fn new(generation: Arc<Generation>) -> Rig {
        let mems: Vec<Arc<MemPort>> = gen::PORTS
            .iter()
            .map(|&id| Arc::new(MemPort::new(id, format!("p{id}"))))
            .collect();
        let mac = MacTable::with_seed(
            MacConfig {
                capacity: 4096,
                aging_ms: 300_000,
                refresh_ms: 0,
            },
            7,
        );
        let meters = Meters::new([(8, 1), (1_000_000, 100)]).unwrap();
        let dp = Datapath::with_ports(
            mems.iter().map(|m| m.clone() as Arc<dyn Port>).collect(),
            mac,
            meters,
            generation,
            1,
        )
        .unwrap();
        Rig { mems, dp }
    }

    /// What each port received since the last call.
    pub fn sent(&self) -> Vec<Vec<Vec<u8>>> {
        self.mems.iter().map(|m| m.take_tx_bytes()).collect()
    }
}

/// Builds a generation of `flows` with `customs` for `engine`.
pub fn build(
    flows: &[FlowSpec],
    customs: &(Vec<Vec<Insn>>, Vec<Vec<Insn>>),
    miss: MissPolicy,
    engine: Engine,
) -> Arc<Generation> {
    Generation::build_arc(&GenerationSpec {
        flows,
        filters: &customs.0,
        actions: &customs.1,
        miss,
        engine,
        workers: 1,
        maps: None,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}
