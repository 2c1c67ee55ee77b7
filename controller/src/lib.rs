//! flowswitch controller library.
pub mod cli;
