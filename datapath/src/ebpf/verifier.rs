//! The verifier.
use std::sync::Arc;

use super::insn::Insn;
use super::{ProgEnv, Program};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    #[error("insn {pc}: {insn}: {reason}")]
    At {
        pc: usize,
        insn: String,
        reason: String,
    },
}

pub fn verify(_insns: &[Insn], _env: &Arc<ProgEnv>) -> Result<Program, VerifyError> {
    Err(VerifyError::At {
        pc: 0,
        insn: String::new(),
        reason: "not yet implemented".into(),
    })
}
