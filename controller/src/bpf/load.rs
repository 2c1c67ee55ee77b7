//! Reading programs from files: assembler text, conformance `.data`, or raw bytes.

use std::path::Path;

use datapath::ebpf::{asm, conformance, insn, Insn};

use super::BpfError;

/// A program read from a file, with the memory a `.data` file supplies.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    pub insns: Vec<Insn>,
    pub mem: Vec<u8>,
}

/// Reads a program: `.data` (conformance file), `.bin`/`.o`-less raw bytes
/// (`.bin`), anything else as assembler text.
pub fn load_program(path: &Path) -> Result<LoadedFile, BpfError> {
    let io = |source| BpfError::Io {
        path: path.to_path_buf(),
        source,
    };
    let parse = |reason: String| BpfError::Parse {
        path: path.to_path_buf(),
        reason,
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("bin") => {
            let bytes = crate::files::read(path).map_err(io)?;
            let insns = insn::from_bytes(&bytes).map_err(|e| parse(e.to_string()))?;
            Ok(LoadedFile {
                insns,
                mem: Vec::new(),
            })
        }
        Some("data") => {
            let text = crate::files::read_text(path).map_err(io)?;
            let case = conformance::parse(&text).map_err(|e| parse(e.to_string()))?;
            Ok(LoadedFile {
                insns: case.insns,
                mem: case.mem,
            })
        }
        _ => {
            let text = crate::files::read_text(path).map_err(io)?;
            let insns = asm::assemble(&text).map_err(|e| parse(e.to_string()))?;
            Ok(LoadedFile {
                insns,
                mem: Vec::new(),
            })
        }
    }
}

/// Parses hex bytes (`"0a0b"`, `"0a 0b"`, optional `0x`) into bytes.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: String = s
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("{s:?} has an odd number of hex digits"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            let pair = digits.get(i..i + 2).unwrap_or("");
            u8::from_str_radix(pair, 16).map_err(|_| format!("{pair:?} is not a hex byte"))
        })
        .collect()
}
