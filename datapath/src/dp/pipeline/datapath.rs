//! A switch's shared datapath state: the ports, the MAC table, the meters,
//! the counters, and the current table generation, which a reload replaces
//! with one atomic swap ([`Datapath::publish`]). Workers made by
//! [`Datapath::worker`] pick a new generation up between batches
//! ([`Worker::poll`]); a packet is handled wholly by one generation.

use std::sync::Arc;

use arc_swap::ArcSwap;
use thiserror::Error;

use super::generation::Generation;
use super::reference::{Reference, ReferenceError};
use super::worker::{Worker, WorkerConfig};
use crate::dp::actions::PacketState;
use crate::dp::mac::MacTable;
use crate::dp::meter::Meters;
use crate::dp::port::{Port, PortError, PortSet};
use crate::dp::stats::SwitchStats;

/// Why a datapath cannot be made or take a generation.
#[derive(Debug, Error)]
pub enum DatapathError {
    #[error(transparent)]
    Port(#[from] PortError),
    /// The generation has per-flow counters for fewer workers.
    #[error("generation built for {generation} workers, the datapath has {datapath}")]
    Workers { generation: usize, datapath: usize },
}

/// See the [module docs](self).
pub struct Datapath {
    ports: Arc<PortSet>,
    mac: Arc<MacTable>,
    meters: Arc<Meters>,
    stats: SwitchStats,
    generation: Arc<ArcSwap<Generation>>,
}

impl std::fmt::Debug for Datapath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datapath")
            .field("ports", &self.ports)
            .field("generation", &self.generation.load().id())
            .finish_non_exhaustive()
    }
}

impl Datapath {
    /// A datapath over `ports` for `workers` workers.
    /// `generation` must have been built for at least `workers` workers.
    pub fn new(
        ports: PortSet,
        mac: MacTable,
        meters: Meters,
        generation: Arc<Generation>,
        workers: usize,
    ) -> Result<Self, DatapathError> {
        let workers = workers.max(1);
        check_workers(&generation, workers)?;
        let stats = SwitchStats::new(workers, &ports.queue_layout());
        Ok(Datapath {
            ports: Arc::new(ports),
            mac: Arc::new(mac),
            meters: Arc::new(meters),
            stats,
            generation: Arc::new(ArcSwap::new(generation)),
        })
    }

    /// [`Datapath::new`] from a list of ports (any order, distinct ids).
    pub fn with_ports(
        ports: Vec<Arc<dyn Port>>,
        mac: MacTable,
        meters: Meters,
        generation: Arc<Generation>,
        workers: usize,
    ) -> Result<Self, DatapathError> {
        Self::new(PortSet::new(ports)?, mac, meters, generation, workers)
    }

    /// Worker number `index` (below the number of workers given to
    /// [`Datapath::new`]).
    pub fn worker(&self, index: usize, config: WorkerConfig) -> Option<Worker> {
        let counters = Arc::clone(self.stats.worker(index)?);
        let mut w = Worker::new(
            index,
            self.generation.load_full(),
            Arc::clone(&self.ports),
            Arc::clone(&self.mac),
            Arc::clone(&self.meters),
            counters,
            config,
        );
        w.follow(Arc::clone(&self.generation));
        Some(w)
    }

    /// A reference runner over this datapath's ports, MAC table and meters
    /// (worker 0's counters), for `generation` (built for the
    /// interpreter).
    pub fn reference(&self, generation: Arc<Generation>) -> Result<Reference, ReferenceError> {
        let counters =
            self.stats.worker(0).cloned().unwrap_or_else(|| {
                Arc::new(crate::dp::stats::WorkerCounters::new(self.ports.len()))
            });
        let state = PacketState::new(
            0,
            Arc::clone(&self.ports),
            Arc::clone(&self.mac),
            Arc::clone(&self.meters),
            counters,
        );
        Reference::new(generation, state)
    }

    /// Replaces the current generation (built for at least this
    /// datapath's workers); workers switch between batches.
    pub fn publish(&self, generation: Arc<Generation>) -> Result<(), DatapathError> {
        check_workers(&generation, self.stats.workers())?;
        self.generation.store(generation);
        Ok(())
    }

    /// The current generation.
    pub fn generation(&self) -> Arc<Generation> {
        self.generation.load_full()
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

    pub fn stats(&self) -> &SwitchStats {
        &self.stats
    }
}

fn check_workers(g: &Generation, workers: usize) -> Result<(), DatapathError> {
    if g.workers() < workers {
        return Err(DatapathError::Workers {
            generation: g.workers(),
            datapath: workers,
        });
    }
    Ok(())
}
