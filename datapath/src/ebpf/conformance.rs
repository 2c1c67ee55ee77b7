//! Reader for bpf_conformance `.data` test files.
use super::insn::Insn;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConformanceError {
    #[error("{0}")]
    Parse(String),
}

/// One test file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    pub insns: Vec<Insn>,
    pub mem: Vec<u8>,
    pub result: Option<u64>,
    pub expect_error: bool,
}

pub fn parse(_text: &str) -> Result<TestCase, ConformanceError> {
    Err(ConformanceError::Parse("not yet implemented".into()))
}
