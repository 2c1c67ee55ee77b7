//! The datapath pieces around the flow programs: ports and frame buffers,
//! the MAC learning table, meters, the actions flow programs call, and
//! counters; and the switch runtime ([`switch`]) whose worker threads run
//! real ports through the pipeline.
//!
//! # What?
//!
//! A worker receives a batch of frames from a [`port::Port`] into buffers
//! from its [`port::FramePool`], extracts each frame's key, finds and runs
//! the flow programs (elsewhere: `classifier`, `ebpf`, the compiler), and
//! the programs call back into [`actions`] for everything that is not a
//! plain load or store: sending ([`port::TxBatch`]), flooding, MAC learning
//! ([`mac::MacTable`]), metering ([`meter::Meter`]), VLAN tags. At the end
//! of the batch the worker flushes its output queues, and the frames'
//! buffers go back to its pool.
//!
//! # Sharing between workers
//!
//! | piece | shared how | hot-path cost |
//! |---|---|---|
//! | [`port::PortSet`] | immutable, `Arc` | index lookup: one array load |
//! | [`port::TxBatch`], [`port::FramePool`] | one per worker | none shared |
//! | [`mac::MacTable`] | `&` from all workers; seqlocked buckets, a writer lock per bucket | lookup / refresh: loads and at most one plain store |
//! | [`meter::Meter`] | `&` from all workers; two atomics | one or two compare-and-swaps |
//! | [`stats`] | one block per worker, summed on read | plain load + store |
//!
//! # Time
//!
//! Nothing here reads a clock: the worker passes `now` (nanoseconds, or
//! milliseconds for the MAC table) with each packet, so `flowswitch trace`
//! and the tests run on simulated time and are deterministic. The switch
//! runtime stamps packets on the scale of [`clock`], which the controller
//! shares for its timeouts.

pub mod actions;
pub mod clock;
pub mod mac;
pub mod meter;
pub mod pipeline;
pub mod port;
pub mod stats;
pub mod switch;
