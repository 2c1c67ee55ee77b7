//! Assembler for the bpf_conformance text syntax (see FORMAT.md).
use super::insn::Insn;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AsmError {
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
}

/// Assembles program text into instruction slots.
pub fn assemble(_src: &str) -> Result<Vec<Insn>, AsmError> {
    Err(AsmError::Syntax {
        line: 0,
        reason: "not yet implemented".into(),
    })
}
