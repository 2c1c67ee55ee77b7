//! The packet pipeline: compiled table generations and the workers that run
//! packets through them.

pub mod bench;
pub mod datapath;
mod exec;
pub mod generation;
pub mod reference;
pub mod worker;

pub use datapath::Datapath;
pub use exec::flow_env;
pub use generation::{
    BuildError, BuildStats, FlowInfo, Generation, GenerationSpec, MissPolicy, Table, MAX_FLOWS,
    NO_FLOW,
};
pub use reference::{Reference, ReferenceError};
pub use worker::{PacketTrace, Step, Worker, WorkerConfig, WorkerStats, PATH_MAX};

use crate::dp::stats::DropReason;
use crate::flow::compile::DropReason as ProgDrop;

/// The switch's drop reason for a program's DROP return code.
fn drop_reason(r: ProgDrop) -> DropReason {
    match r {
        ProgDrop::Explicit => DropReason::Explicit,
        ProgDrop::Meter => DropReason::Meter,
        ProgDrop::Ttl => DropReason::Ttl,
        ProgDrop::Custom => DropReason::Custom,
    }
}

#[cfg(test)]
mod tests;
