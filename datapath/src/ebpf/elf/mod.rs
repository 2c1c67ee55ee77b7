//! Loading programs from ELF objects built by `clang -target bpf -c`.
//!
//! [`load`] takes one section's code (the program; it starts at the
//! section's first instruction) and applies its relocations:
//!
//! - `R_BPF_64_64` on an `lddw` against a variable of a map section
//!   (`maps`, `maps/...` or `.maps`): the `lddw` becomes `lddw rX, map i`,
//!   `i` the map's position in [`ElfProgram::maps`] (first reference first).
//!   The program names maps by their variables' names; [`ElfProgram::bind`]
//!   renumbers them to the switch's maps. A variable of `maps` declared
//!   with `FS_MAP` (`struct fs_map`, `flowswitch.h`) also gives its kind and
//!   sizes ([`MapRef::def`]), for the switch to check.
//! - `R_BPF_64_32` on a `call` (a bpf-to-bpf call, `src = 1`): calls within
//!   the section, or into `.text` (where clang puts functions that are not
//!   inlined and have no section of their own): then the whole of `.text`
//!   is appended after the section's code (with its own relocations) and the
//!   call's offset is set to reach its target there.
//!
//! Anything else is refused with an [`ElfError`]: other relocation types,
//! references to other global data (`.data`, `.rodata`, `.bss`: no such
//! thing in this ABI), calls into other sections.

#[cfg(test)]
pub(crate) mod tests;

use object::elf::{R_BPF_64_32, R_BPF_64_64};
use object::{
    Architecture, Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget,
    SectionIndex,
};
use thiserror::Error;

use super::insn::{Insn, LDDW_MAP, SLOT};
use super::maps::{MapDef, MapKind};

/// `lddw` opcode.
const LDDW: u8 = 0x18;
/// `call` opcode, and its `src` for a bpf-to-bpf call.
const CALL: u8 = 0x85;
const PSEUDO_CALL: u8 = 1;
/// Map kinds in `struct fs_map` (the kernel's numbers).
const FS_MAP_HASH: u32 = 1;
const FS_MAP_ARRAY: u32 = 2;

/// Why an object could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ElfError {
    #[error("not an ELF object: {0}")]
    Parse(String),
    #[error("not a little-endian 64-bit BPF object (architecture {0})")]
    NotBpf(String),
    #[error("no section {name:?} (code sections: {available})")]
    NoSection { name: String, available: String },
    #[error("section {section:?} is empty")]
    Empty { section: String },
    #[error("section {section:?}: {len} bytes is not a whole number of 8-byte instructions")]
    Size { section: String, len: usize },
    #[error("section {section:?}: relocation at offset {offset}: {reason}")]
    Reloc {
        section: String,
        offset: u64,
        reason: String,
    },
    #[error("section {section:?}: relocation type {r_type} at offset {offset} is not supported")]
    RelocType {
        section: String,
        offset: u64,
        r_type: u32,
    },
    #[error("section {section:?} at offset {offset}: {symbol:?} is global data in {target:?}, which the flowswitch ABI has not (only maps)")]
    GlobalData {
        section: String,
        offset: u64,
        symbol: String,
        target: String,
    },
    #[error("section {section:?} at offset {offset}: call into section {target:?} (only calls within the section or into .text)")]
    CallOutside {
        section: String,
        offset: u64,
        target: String,
    },
    #[error("program refers to map {name:?}, which the switch does not declare")]
    UnboundMap { name: String },
}

/// A map the program refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapRef {
    /// The variable's name.
    pub name: String,
    /// Its declaration, when the variable is a `struct fs_map` in `maps`
    /// with a known kind.
    pub def: Option<MapDef>,
}

/// A program loaded from an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfProgram {
    /// The code: the section's, then `.text` if the section calls into it.
    pub insns: Vec<Insn>,
    /// Slots of the section's own code (the rest is `.text`).
    pub section_len: usize,
    /// The maps referred to: `lddw rX, map i` names `maps[i]` until
    /// [`ElfProgram::bind`] renumbers them.
    pub maps: Vec<MapRef>,
}

impl ElfProgram {
    /// Renumbers the map references to the switch's maps: `index` gives the
    /// switch's index of each map the program names.
    pub fn bind(&mut self, index: impl Fn(&MapRef) -> Option<u32>) -> Result<(), ElfError> {
        let to: Vec<u32> = self
            .maps
            .iter()
            .map(|m| {
                index(m).ok_or_else(|| ElfError::UnboundMap {
                    name: m.name.clone(),
                })
            })
            .collect::<Result<_, _>>()?;
        let mut pc = 0;
        while let Some(i) = self.insns.get(pc).copied() {
            if i.op == LDDW && i.src == LDDW_MAP {
                let local = i.imm as u32 as usize;
                if let (Some(&n), Some(slot)) = (to.get(local), self.insns.get_mut(pc)) {
                    slot.imm = n as i32;
                }
                pc += 2;
            } else {
                pc += 1;
            }
        }
        // Now numbered like the switch's maps.
        self.maps.clear();
        Ok(())
    }
}

/// One section's code being relocated.
struct Unit<'a> {
    name: String,
    index: SectionIndex,
    /// First slot in the program.
    base: usize,
    section: object::Section<'a, 'a>,
}

/// Loads `section` of the BPF ELF object `bytes`; see the module docs.
pub fn load(bytes: &[u8], section: &str) -> Result<ElfProgram, ElfError> {
    let obj = object::File::parse(bytes).map_err(|e| ElfError::Parse(e.to_string()))?;
    if obj.architecture() != Architecture::Bpf || !obj.is_little_endian() || !obj.is_64() {
        return Err(ElfError::NotBpf(format!("{:?}", obj.architecture())));
    }
    let main = obj
        .section_by_name(section)
        .ok_or_else(|| ElfError::NoSection {
            name: section.to_string(),
            available: code_sections(&obj),
        })?;
    let mut insns = code(&main, section)?;
    let section_len = insns.len();
    let main_index = main.index();
    // `.text`, appended when the section calls into it.
    let text = obj
        .section_by_name(".text")
        .filter(|t| t.index() != main_index && t.size() > 0)
        .filter(|t| calls_into(&obj, &main, t.index()));
    let mut units = vec![Unit {
        name: section.to_string(),
        index: main_index,
        base: 0,
        section: main,
    }];
    if let Some(text) = text {
        {
            let more = code(&text, ".text")?;
            units.push(Unit {
                name: ".text".into(),
                index: text.index(),
                base: insns.len(),
                section: text,
            });
            insns.extend(more);
        }
    }
    let mut maps = Vec::new();
    for u in &units {
        relocate(&obj, u, &units, &mut insns, &mut maps)?;
    }
    Ok(ElfProgram {
        insns,
        section_len,
        maps,
    })
}

/// Names of the sections that hold code, for the error message.
fn code_sections(obj: &object::File<'_>) -> String {
    let names: Vec<String> = obj
        .sections()
        .filter(|s| s.kind() == object::SectionKind::Text && s.size() > 0)
        .filter_map(|s| s.name().ok().map(str::to_string))
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The section's instructions.
fn code(s: &object::Section<'_, '_>, name: &str) -> Result<Vec<Insn>, ElfError> {
    let data = s.data().map_err(|e| ElfError::Parse(e.to_string()))?;
    if data.is_empty() {
        return Err(ElfError::Empty {
            section: name.to_string(),
        });
    }
    if data.len() % SLOT != 0 {
        return Err(ElfError::Size {
            section: name.to_string(),
            len: data.len(),
        });
    }
    Ok(data
        .chunks_exact(SLOT)
        .map(|c| {
            let mut b = [0u8; SLOT];
            b.copy_from_slice(c);
            Insn::from_u64(u64::from_le_bytes(b))
        })
        .collect())
}

/// The section a relocation's symbol lies in, and the symbol.
fn target<'a>(
    obj: &'a object::File<'a>,
    t: RelocationTarget,
) -> Option<(object::Symbol<'a, 'a>, Option<SectionIndex>)> {
    match t {
        RelocationTarget::Symbol(i) => {
            let sym = obj.symbol_by_index(i).ok()?;
            let sec = sym.section_index();
            Some((sym, sec))
        }
        _ => None,
    }
}

/// Does `s` have a call relocation into the section `into`?
fn calls_into(obj: &object::File<'_>, s: &object::Section<'_, '_>, into: SectionIndex) -> bool {
    s.relocations().any(|(_, r)| {
        matches!(r.flags(), RelocationFlags::Elf { r_type } if r_type == R_BPF_64_32)
            && target(obj, r.target()).is_some_and(|(_, sec)| sec == Some(into))
    })
}

fn section_name(obj: &object::File<'_>, index: Option<SectionIndex>) -> String {
    index
        .and_then(|i| obj.section_by_index(i).ok())
        .and_then(|s| s.name().ok().map(str::to_string))
        .unwrap_or_else(|| "(none)".into())
}

fn is_map_section(name: &str) -> bool {
    name == "maps" || name == ".maps" || name.starts_with("maps/")
}

/// The `struct fs_map` a symbol of a `maps` section holds, if it is one.
fn map_def(obj: &object::File<'_>, sym: &object::Symbol<'_, '_>) -> Option<MapDef> {
    let sec = obj.section_by_index(sym.section_index()?).ok()?;
    if sec.name().ok()? == ".maps" {
        return None;
    }
    let data = sec.data().ok()?;
    let at = usize::try_from(sym.address()).ok()?;
    let word = |k: usize| -> Option<u32> {
        let b = data.get(at + 4 * k..at + 4 * k + 4)?;
        Some(u32::from_le_bytes(b.try_into().ok()?))
    };
    let kind = match word(0)? {
        FS_MAP_HASH => MapKind::Hash,
        FS_MAP_ARRAY => MapKind::Array,
        _ => return None,
    };
    Some(MapDef {
        kind,
        key_size: word(1)?,
        value_size: word(2)?,
        max_entries: word(3)?,
    })
}

/// Applies the relocations of unit `u`.
fn relocate(
    obj: &object::File<'_>,
    u: &Unit<'_>,
    units: &[Unit<'_>],
    insns: &mut [Insn],
    maps: &mut Vec<MapRef>,
) -> Result<(), ElfError> {
    for (offset, r) in u.section.relocations() {
        let err = |reason: String| ElfError::Reloc {
            section: u.name.clone(),
            offset,
            reason,
        };
        let RelocationFlags::Elf { r_type } = r.flags() else {
            return Err(err("not an ELF relocation".into()));
        };
        if offset % SLOT as u64 != 0 {
            return Err(err("not at an instruction".into()));
        }
        let pc = u.base + (offset / SLOT as u64) as usize;
        let insn = *insns
            .get(pc)
            .ok_or_else(|| err("outside the section".into()))?;
        let (sym, sec) = target(obj, r.target()).ok_or_else(|| err("no symbol".into()))?;
        if r_type == R_BPF_64_64 {
            if insn.op != LDDW || insns.get(pc + 1).is_none() {
                return Err(err(format!(
                    "R_BPF_64_64 on opcode {:#04x}, not lddw",
                    insn.op
                )));
            }
            let target_name = section_name(obj, sec);
            let name = sym.name().map_err(|e| err(e.to_string()))?.to_string();
            if !is_map_section(&target_name) {
                return Err(ElfError::GlobalData {
                    section: u.name.clone(),
                    offset,
                    symbol: name,
                    target: target_name,
                });
            }
            let index = match maps.iter().position(|m| m.name == name) {
                Some(i) => i,
                None => {
                    maps.push(MapRef {
                        def: map_def(obj, &sym),
                        name,
                    });
                    maps.len() - 1
                }
            };
            if let Some(first) = insns.get_mut(pc) {
                first.src = LDDW_MAP;
                first.imm = index as i32;
            }
            if let Some(second) = insns.get_mut(pc + 1) {
                second.imm = 0;
            }
        } else if r_type == R_BPF_64_32 {
            if insn.op != CALL || insn.src != PSEUDO_CALL {
                return Err(err(format!(
                    "R_BPF_64_32 on opcode {:#04x} src {}, not a local call",
                    insn.op, insn.src
                )));
            }
            let Some(to) = units.iter().find(|t| Some(t.index) == sec) else {
                return Err(ElfError::CallOutside {
                    section: u.name.clone(),
                    offset,
                    target: section_name(obj, sec),
                });
            };
            // The callee's slot: the symbol's offset plus the instruction's
            // own immediate + 1 (clang relocates calls to global functions
            // against the function with imm = -1, and calls to static ones
            // against the section symbol with imm = slot - 1).
            let callee = (to.base as i64)
                .checked_add(i64::try_from(sym.address() / SLOT as u64).unwrap_or(i64::MAX))
                .and_then(|v| v.checked_add(i64::from(insn.imm) + 1))
                .filter(|&v| v >= 0 && (v as usize) < insns.len())
                .ok_or_else(|| err("call target outside the code".into()))?;
            let rel = i32::try_from(callee - pc as i64 - 1)
                .map_err(|_| err("call offset out of range".into()))?;
            if let Some(call) = insns.get_mut(pc) {
                call.imm = rel;
            }
        } else {
            return Err(ElfError::RelocType {
                section: u.name.clone(),
                offset,
                r_type: r_type.0,
            });
        }
    }
    Ok(())
}
