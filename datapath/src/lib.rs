//! flowswitch datapath library.
//!
//! `unsafe` code lives only in [`sys`]; everything else is safe Rust.

pub mod classifier;
pub mod dp;
pub mod ebpf;
pub mod flow;
pub mod packet;
pub mod sys;
