//! The x86-64 JIT.
use super::vm::{RunError, RunInput};
use super::Program;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JitError {
    #[error("{0}")]
    Failed(String),
}

pub struct JitProgram;

impl JitProgram {
    pub fn run(&self, _input: RunInput<'_>) -> Result<u64, RunError> {
        Err(RunError::Budget { pc: 0 })
    }
}

pub fn compile(_prog: &Program) -> Result<JitProgram, JitError> {
    Err(JitError::Failed("not yet implemented".into()))
}
