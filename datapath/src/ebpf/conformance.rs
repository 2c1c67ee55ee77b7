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

/// Expands files and directories into a sorted list of `.data` files.
pub fn list_files(
    paths: &[std::path::PathBuf],
) -> Result<Vec<std::path::PathBuf>, ConformanceError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p)
                .map_err(|e| ConformanceError::Parse(format!("{}: {e}", p.display())))?;
            for ent in rd.flatten() {
                if ent.path().extension().is_some_and(|x| x == "data") {
                    out.push(ent.path());
                }
            }
        } else {
            out.push(p.clone());
        }
    }
    out.sort();
    Ok(out)
}
