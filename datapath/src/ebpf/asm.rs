//! Assembler for the bpf_conformance text syntax (see FORMAT.md).
//!
//! One instruction or `label:` per line, `#` starts a comment. Registers are
//! `%r0`..`%r10`, memory operands `[%rN]`, `[%rN+off]` or `[%rN-off]`,
//! immediates decimal or `0x` hex (optionally negative). Jump targets are
//! `+N`/`-N` (slots, relative to the next slot) or a label; the label `exit`
//! means the first `exit` instruction unless a real label of that name exists.
//!
//! Besides the FORMAT.md mnemonics the assembler accepts two forms the
//! disassembler needs so that every byte string round-trips:
//! - `.raw 0x0123456789abcdef`: one slot given as its little-endian 64-bit
//!   number (the `-- raw` form), for slots that do not decode;
//! - `lddw %rN, map IMM`: `lddw` with the map source field.
//!
//! Every instruction is built as an [`Op`] and encoded with [`insn::encode`];
//! the only exception is `ja32`, whose JMP32 encoding `Op` cannot express
//! when the offset also fits 16 bits.

use super::insn::{self, AluOp, AtomicOp, Cond, EndKind, Insn, Op, Src};
use std::collections::HashMap;
use thiserror::Error;

/// An assembly error: the 1-based line, its text and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AsmError {
    #[error("line {line}: `{text}`: {reason}")]
    Syntax {
        line: usize,
        text: String,
        reason: AsmReason,
    },
}

impl AsmError {
    /// The 1-based source line the error is on.
    pub fn line(&self) -> usize {
        match self {
            AsmError::Syntax { line, .. } => *line,
        }
    }

    /// What is wrong.
    pub fn reason(&self) -> &AsmReason {
        match self {
            AsmError::Syntax { reason, .. } => reason,
        }
    }
}

/// Why a line was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AsmReason {
    #[error("unknown mnemonic `{0}`")]
    UnknownMnemonic(String),
    #[error("invalid register `{0}`, expected %r0 to %r10")]
    BadRegister(String),
    #[error("`{mnemonic}` takes {expected} operand(s), found {found}")]
    OperandCount {
        mnemonic: String,
        expected: usize,
        found: usize,
    },
    #[error("expected {expected}, found `{found}`")]
    Expected {
        expected: &'static str,
        found: String,
    },
    #[error("invalid number `{0}`")]
    BadNumber(String),
    #[error("{what} `{value}` is out of range ({range})")]
    OutOfRange {
        what: &'static str,
        value: String,
        range: &'static str,
    },
    #[error("undefined label `{0}`")]
    UndefinedLabel(String),
    #[error("label `{name}` is already defined on line {first}")]
    DuplicateLabel { name: String, first: usize },
    #[error("invalid label name `{0}`")]
    BadLabel(String),
}

/// Assembles program text into instruction slots.
pub fn assemble(src: &str) -> Result<Vec<Insn>, AsmError> {
    let mut labels: HashMap<String, (usize, usize)> = HashMap::new();
    let mut items: Vec<Line> = Vec::new();
    let mut first_exit: Option<usize> = None;
    let mut pc = 0usize;

    for (idx, raw_line) in src.lines().enumerate() {
        let line = idx + 1;
        let code = strip_comment(raw_line).trim();
        let err = |reason| AsmError::Syntax {
            line,
            text: code.to_string(),
            reason,
        };
        let mut rest = code;
        while let Some((name, after)) = split_label(rest) {
            if !valid_label(name) {
                return Err(err(AsmReason::BadLabel(name.to_string())));
            }
            if let Some(&(_, first)) = labels.get(name) {
                return Err(err(AsmReason::DuplicateLabel {
                    name: name.to_string(),
                    first,
                }));
            }
            labels.insert(name.to_string(), (pc, line));
            rest = after.trim_start();
        }
        if rest.is_empty() {
            continue;
        }
        let item = parse_insn(rest).map_err(err)?;
        if first_exit.is_none() && matches!(item, Item::Op(Op::Exit)) {
            first_exit = Some(pc);
        }
        let slots = item.slots();
        items.push(Line {
            line,
            text: rest.to_string(),
            pc,
            item,
        });
        pc += slots;
    }

    let mut out = Vec::with_capacity(pc);
    for l in items {
        let err = |reason| AsmError::Syntax {
            line: l.line,
            text: l.text.clone(),
            reason,
        };
        let resolve = |t: &Target| -> Result<i128, AsmError> {
            match t {
                Target::Rel(n) => Ok(*n),
                Target::Label(name) => {
                    let target = match labels.get(name) {
                        Some(&(p, _)) => p,
                        None if name == "exit" => first_exit
                            .ok_or_else(|| err(AsmReason::UndefinedLabel(name.clone())))?,
                        None => return Err(err(AsmReason::UndefinedLabel(name.clone()))),
                    };
                    Ok(target as i128 - (l.pc as i128 + 1))
                }
            }
        };
        match &l.item {
            Item::Op(op) => out.extend(insn::encode(op)),
            Item::Raw(i) => out.push(*i),
            Item::Ja { target, long } => {
                let off = resolve(target)?;
                if *long {
                    let off = fit_i32(off, "jump offset").map_err(err)?;
                    out.push(Insn::new(insn::JMP_JA | insn::CLS_JMP32, 0, 0, 0, off));
                } else {
                    let off = fit_i16(off, "jump offset").map_err(err)?;
                    out.extend(insn::encode(&Op::Ja { off: off as i32 }));
                }
            }
            Item::Jmp {
                wide,
                cond,
                dst,
                src,
                target,
            } => {
                let off = fit_i16(resolve(target)?, "jump offset").map_err(err)?;
                out.extend(insn::encode(&Op::Jmp {
                    wide: *wide,
                    cond: *cond,
                    dst: *dst,
                    src: *src,
                    off,
                }));
            }
            Item::CallLocal { target } => {
                let off = fit_i32(resolve(target)?, "call offset").map_err(err)?;
                out.extend(insn::encode(&Op::CallLocal { off }));
            }
        }
    }
    Ok(out)
}

/// One parsed source line.
struct Line {
    line: usize,
    text: String,
    pc: usize,
    item: Item,
}

/// A jump or call target before label resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// Offset in slots relative to the next slot.
    Rel(i128),
    Label(String),
}

/// An instruction whose encoding may still depend on label positions.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Op(Op),
    Raw(Insn),
    Ja {
        target: Target,
        long: bool,
    },
    Jmp {
        wide: bool,
        cond: Cond,
        dst: u8,
        src: Src,
        target: Target,
    },
    CallLocal {
        target: Target,
    },
}

impl Item {
    fn slots(&self) -> usize {
        match self {
            Item::Op(op) => op.slots(),
            _ => 1,
        }
    }
}

fn strip_comment(s: &str) -> &str {
    match s.find('#') {
        Some(i) => &s[..i],
        None => s,
    }
}

/// `name: rest` → `(name, rest)`. Instructions never contain `:`.
fn split_label(s: &str) -> Option<(&str, &str)> {
    let i = s.find(':')?;
    Some((s[..i].trim(), &s[i + 1..]))
}

fn valid_label(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '.' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

fn parse_insn(text: &str) -> Result<Item, AsmReason> {
    let (mnemonic, rest) = match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim()),
        None => (text, ""),
    };
    let m = mnemonic.to_ascii_lowercase();
    if m == "lock" {
        return parse_lock(rest);
    }
    let ops = operands(rest);
    let want = |n: usize| -> Result<(), AsmReason> {
        if ops.len() == n {
            Ok(())
        } else {
            Err(AsmReason::OperandCount {
                mnemonic: m.clone(),
                expected: n,
                found: ops.len(),
            })
        }
    };
    let arg = |i: usize| ops.get(i).copied().unwrap_or("");

    // Mnemonics with a fixed spelling.
    match m.as_str() {
        "exit" => {
            want(0)?;
            return Ok(Item::Op(Op::Exit));
        }
        ".raw" => {
            want(1)?;
            return Ok(Item::Raw(Insn::from_u64(imm64(arg(0))?)));
        }
        "lddw" => {
            want(2)?;
            let dst = reg(arg(0))?;
            let (kind, value) = match arg(1).strip_prefix("map") {
                Some(v) if v.starts_with(char::is_whitespace) => (insn::LDDW_MAP, v.trim()),
                _ => (insn::LDDW_IMM, arg(1)),
            };
            return Ok(Item::Op(Op::Lddw {
                dst,
                kind,
                imm: imm64(value)?,
            }));
        }
        "ja" | "ja32" => {
            want(1)?;
            return Ok(Item::Ja {
                target: target(arg(0))?,
                long: m == "ja32",
            });
        }
        "call" => {
            want(1)?;
            return parse_call(arg(0));
        }
        _ => {}
    }

    if let Some((kind, bits)) = end_op(&m) {
        want(1)?;
        return Ok(Item::Op(Op::End {
            kind,
            bits,
            dst: reg(arg(0))?,
        }));
    }
    if let Some((wide, bits)) = movsx_op(&m) {
        want(2)?;
        return Ok(Item::Op(Op::Alu {
            wide,
            op: AluOp::MovSx(bits),
            dst: reg(arg(0))?,
            src: Src::Reg(reg(arg(1))?),
        }));
    }
    if let Some((size, signed)) = ldx_op(&m) {
        want(2)?;
        let (src, off) = mem(arg(1))?;
        return Ok(Item::Op(Op::Ldx {
            size,
            signed,
            dst: reg(arg(0))?,
            src,
            off,
        }));
    }
    if let Some(size) = m.strip_prefix("stx").and_then(size_suffix) {
        want(2)?;
        let (dst, off) = mem(arg(0))?;
        return Ok(Item::Op(Op::Stx {
            size,
            dst,
            src: reg(arg(1))?,
            off,
        }));
    }
    if let Some(size) = m.strip_prefix("st").and_then(size_suffix) {
        want(2)?;
        let (dst, off) = mem(arg(0))?;
        return Ok(Item::Op(Op::St {
            size,
            dst,
            off,
            imm: imm32(arg(1))?,
        }));
    }

    let (base, wide) = match m.strip_suffix("32") {
        Some(b) => (b, false),
        None => (m.as_str(), true),
    };
    if base == "neg" {
        want(1)?;
        return Ok(Item::Op(Op::Neg {
            wide,
            dst: reg(arg(0))?,
        }));
    }
    if let Some(op) = alu_op(base) {
        want(2)?;
        return Ok(Item::Op(Op::Alu {
            wide,
            op,
            dst: reg(arg(0))?,
            src: src_operand(arg(1))?,
        }));
    }
    if let Some(cond) = cond_op(base) {
        want(3)?;
        return Ok(Item::Jmp {
            wide,
            cond,
            dst: reg(arg(0))?,
            src: src_operand(arg(1))?,
            target: target(arg(2))?,
        });
    }
    Err(AsmReason::UnknownMnemonic(mnemonic.to_string()))
}

fn operands(rest: &str) -> Vec<&str> {
    if rest.is_empty() {
        Vec::new()
    } else {
        rest.split(',').map(str::trim).collect()
    }
}

fn parse_call(arg: &str) -> Result<Item, AsmReason> {
    if let Some(t) = arg.strip_prefix("local") {
        if t.starts_with(char::is_whitespace) {
            return Ok(Item::CallLocal {
                target: target(t.trim())?,
            });
        }
    }
    if arg.starts_with('%') {
        return Ok(Item::Op(Op::CallX { reg: reg(arg)? }));
    }
    Ok(Item::Op(Op::Call {
        helper: imm32(arg)?,
    }))
}

/// `lock [fetch] OP[32] [%rD+off], %rS`.
fn parse_lock(rest: &str) -> Result<Item, AsmReason> {
    let (mut word, mut tail) = split_word(rest);
    let mut fetch = false;
    if word.eq_ignore_ascii_case("fetch") {
        fetch = true;
        (word, tail) = split_word(tail);
    }
    let w = word.to_ascii_lowercase();
    let (base, size) = match w.strip_suffix("32") {
        Some(b) => (b, 4),
        None => (w.as_str(), 8),
    };
    let op = match base {
        "add" => AtomicOp::Add,
        "or" => AtomicOp::Or,
        "and" => AtomicOp::And,
        "xor" => AtomicOp::Xor,
        "xchg" => AtomicOp::Xchg,
        "cmpxchg" => AtomicOp::CmpXchg,
        _ => {
            return Err(AsmReason::UnknownMnemonic(
                format!("lock {}{word}", if fetch { "fetch " } else { "" })
                    .trim_end()
                    .to_string(),
            ))
        }
    };
    // xchg and cmpxchg always return the old value.
    let fetch = fetch || matches!(op, AtomicOp::Xchg | AtomicOp::CmpXchg);
    let ops = operands(tail);
    let [addr, src] = ops.as_slice() else {
        return Err(AsmReason::OperandCount {
            mnemonic: format!("lock {w}"),
            expected: 2,
            found: ops.len(),
        });
    };
    let (dst, off) = mem(addr)?;
    Ok(Item::Op(Op::Atomic {
        size,
        op,
        fetch,
        dst,
        src: reg(src)?,
        off,
    }))
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

fn end_op(m: &str) -> Option<(EndKind, u8)> {
    let (kind, bits) = if let Some(b) = m.strip_prefix("le") {
        (EndKind::Le, b)
    } else if let Some(b) = m.strip_prefix("be") {
        (EndKind::Be, b)
    } else if let Some(b) = m.strip_prefix("bswap").or_else(|| m.strip_prefix("swap")) {
        (EndKind::Swap, b)
    } else {
        return None;
    };
    match bits {
        "16" => Some((kind, 16)),
        "32" => Some((kind, 32)),
        "64" => Some((kind, 64)),
        _ => None,
    }
}

/// `movsx{8,16}{32,64}` and `movsx3264` → (wide, source bits).
fn movsx_op(m: &str) -> Option<(bool, u8)> {
    match m {
        "movsx832" => Some((false, 8)),
        "movsx1632" => Some((false, 16)),
        "movsx864" => Some((true, 8)),
        "movsx1664" => Some((true, 16)),
        "movsx3264" => Some((true, 32)),
        _ => None,
    }
}

fn ldx_op(m: &str) -> Option<(u8, bool)> {
    let rest = m.strip_prefix("ldx")?;
    match rest.strip_prefix('s') {
        Some(s) => match size_suffix(s)? {
            8 => None,
            size => Some((size, true)),
        },
        None => Some((size_suffix(rest)?, false)),
    }
}

fn size_suffix(s: &str) -> Option<u8> {
    match s {
        "b" => Some(1),
        "h" => Some(2),
        "w" => Some(4),
        "dw" => Some(8),
        _ => None,
    }
}

fn alu_op(base: &str) -> Option<AluOp> {
    Some(match base {
        "add" => AluOp::Add,
        "sub" => AluOp::Sub,
        "mul" => AluOp::Mul,
        "div" => AluOp::Div,
        "sdiv" => AluOp::SDiv,
        "mod" => AluOp::Mod,
        "smod" => AluOp::SMod,
        "or" => AluOp::Or,
        "and" => AluOp::And,
        "xor" => AluOp::Xor,
        "lsh" => AluOp::Lsh,
        "rsh" => AluOp::Rsh,
        "arsh" => AluOp::Arsh,
        "mov" => AluOp::Mov,
        _ => return None,
    })
}

fn cond_op(base: &str) -> Option<Cond> {
    Some(match base {
        "jeq" => Cond::Eq,
        "jne" => Cond::Ne,
        "jgt" => Cond::Gt,
        "jge" => Cond::Ge,
        "jlt" => Cond::Lt,
        "jle" => Cond::Le,
        "jset" => Cond::Set,
        "jsgt" => Cond::Sgt,
        "jsge" => Cond::Sge,
        "jslt" => Cond::Slt,
        "jsle" => Cond::Sle,
        _ => return None,
    })
}

fn reg(s: &str) -> Result<u8, AsmReason> {
    let bad = || AsmReason::BadRegister(s.to_string());
    let digits = s
        .strip_prefix("%r")
        .or_else(|| s.strip_prefix("%R"))
        .ok_or_else(bad)?;
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match digits.parse::<u8>() {
        Ok(r) if (r as usize) < insn::NREGS => Ok(r),
        _ => Err(bad()),
    }
}

fn src_operand(s: &str) -> Result<Src, AsmReason> {
    if s.starts_with('%') {
        Ok(Src::Reg(reg(s)?))
    } else {
        Ok(Src::Imm(imm32(s)?))
    }
}

/// `[%rN]`, `[%rN+off]`, `[%rN-off]` → (register, offset).
fn mem(s: &str) -> Result<(u8, i16), AsmReason> {
    let inner = s
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| AsmReason::Expected {
            expected: "a memory operand [%rN+off]",
            found: s.to_string(),
        })?;
    let inner: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
    match inner.find(['+', '-']) {
        Some(i) => {
            let off = fit_i16(int(&inner[i..])?, "memory offset")?;
            Ok((reg(&inner[..i])?, off))
        }
        None => Ok((reg(&inner)?, 0)),
    }
}

fn target(s: &str) -> Result<Target, AsmReason> {
    match s.bytes().next() {
        Some(b'+' | b'-' | b'0'..=b'9') => Ok(Target::Rel(int(s)?)),
        _ if valid_label(s) => Ok(Target::Label(s.to_string())),
        _ => Err(AsmReason::Expected {
            expected: "a jump target (+N, -N or a label)",
            found: s.to_string(),
        }),
    }
}

/// A decimal or `0x` hex integer with an optional sign.
fn int(s: &str) -> Result<i128, AsmReason> {
    let bad = || AsmReason::BadNumber(s.to_string());
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(h) => (16, h),
        None => (10, body),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(bad());
    }
    let magnitude = u128::from_str_radix(digits, radix).map_err(|_| AsmReason::OutOfRange {
        what: "number",
        value: s.to_string(),
        range: "128 bits",
    })?;
    let v = i128::try_from(magnitude).map_err(|_| AsmReason::OutOfRange {
        what: "number",
        value: s.to_string(),
        range: "128 bits",
    })?;
    Ok(if neg { -v } else { v })
}

/// A 32-bit immediate: any i32, or a u32 taken as its bit pattern.
fn imm32(s: &str) -> Result<i32, AsmReason> {
    let v = int(s)?;
    if (i32::MIN as i128..=u32::MAX as i128).contains(&v) {
        Ok(v as u32 as i32)
    } else {
        Err(AsmReason::OutOfRange {
            what: "immediate",
            value: s.to_string(),
            range: "-2147483648..=4294967295",
        })
    }
}

/// A 64-bit immediate: any i64, or a u64 taken as its bit pattern.
fn imm64(s: &str) -> Result<u64, AsmReason> {
    let v = int(s)?;
    if (i64::MIN as i128..=u64::MAX as i128).contains(&v) {
        Ok(v as u64)
    } else {
        Err(AsmReason::OutOfRange {
            what: "immediate",
            value: s.to_string(),
            range: "64 bits",
        })
    }
}

fn fit_i16(v: i128, what: &'static str) -> Result<i16, AsmReason> {
    i16::try_from(v).map_err(|_| AsmReason::OutOfRange {
        what,
        value: v.to_string(),
        range: "-32768..=32767",
    })
}

fn fit_i32(v: i128, what: &'static str) -> Result<i32, AsmReason> {
    i32::try_from(v).map_err(|_| AsmReason::OutOfRange {
        what,
        value: v.to_string(),
        range: "-2147483648..=2147483647",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(src: &str) -> Insn {
        let v = assemble(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(v.len(), 1, "{src}");
        v[0]
    }

    fn err(src: &str) -> AsmError {
        match assemble(src) {
            Ok(v) => panic!("{src:?} assembled to {v:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn known_encodings() {
        let cases: &[(&str, Insn)] = &[
            ("mov %r0, 1", Insn::new(0xb7, 0, 0, 0, 1)),
            ("mov32 %r0, -1", Insn::new(0xb4, 0, 0, 0, -1)),
            ("add32 %r1, %r2", Insn::new(0x0c, 1, 2, 0, 0)),
            ("sdiv %r1, 3", Insn::new(0x37, 1, 0, 1, 3)),
            ("smod32 %r1, %r2", Insn::new(0x9c, 1, 2, 1, 0)),
            ("arsh32 %r4, 0x1f", Insn::new(0xc4, 4, 0, 0, 31)),
            ("neg %r3", Insn::new(0x87, 3, 0, 0, 0)),
            ("neg32 %r3", Insn::new(0x84, 3, 0, 0, 0)),
            ("movsx832 %r1, %r2", Insn::new(0xbc, 1, 2, 8, 0)),
            ("movsx1664 %r1, %r2", Insn::new(0xbf, 1, 2, 16, 0)),
            ("movsx3264 %r1, %r2", Insn::new(0xbf, 1, 2, 32, 0)),
            ("be16 %r0", Insn::new(0xdc, 0, 0, 0, 16)),
            ("le32 %r0", Insn::new(0xd4, 0, 0, 0, 32)),
            ("bswap64 %r0", Insn::new(0xd7, 0, 0, 0, 64)),
            ("swap16 %r2", Insn::new(0xd7, 2, 0, 0, 16)),
            ("ja +3", Insn::new(0x05, 0, 0, 3, 0)),
            ("ja32 -2", Insn::new(0x06, 0, 0, 0, -2)),
            (
                "jeq %r1, 0x80000000, +1",
                Insn::new(0x15, 1, 0, 1, i32::MIN),
            ),
            ("jsle32 %r1, -3, -1", Insn::new(0xd6, 1, 0, -1, -3)),
            ("jset %r1, %r2, +0", Insn::new(0x4d, 1, 2, 0, 0)),
            ("jlt32 %r9, %r10, +7", Insn::new(0xae, 9, 10, 7, 0)),
            ("call 5", Insn::new(0x85, 0, 0, 0, 5)),
            ("call local +2", Insn::new(0x85, 0, 1, 0, 2)),
            ("call local -1", Insn::new(0x85, 0, 1, 0, -1)),
            ("call %r2", Insn::new(0x8d, 2, 0, 0, 0)),
            ("exit", Insn::new(0x95, 0, 0, 0, 0)),
            ("ldxb %r0, [%r1]", Insn::new(0x71, 0, 1, 0, 0)),
            ("ldxdw %r0, [%r10-8]", Insn::new(0x79, 0, 10, -8, 0)),
            ("ldxsw %r0, [%r1+0x4]", Insn::new(0x81, 0, 1, 4, 0)),
            ("ldxsh %r0, [ %r1 + 2 ]", Insn::new(0x89, 0, 1, 2, 0)),
            ("ldxsb %r0, [%r1-32768]", Insn::new(0x91, 0, 1, i16::MIN, 0)),
            ("stw [%r10-4], 1", Insn::new(0x62, 10, 0, -4, 1)),
            ("stdw [%r1+2], 0xffffffff", Insn::new(0x7a, 1, 0, 2, -1)),
            ("sth [%r1+32767], 7", Insn::new(0x6a, 1, 0, i16::MAX, 7)),
            ("stxb [%r1+1], %r2", Insn::new(0x73, 1, 2, 1, 0)),
            ("lock add [%r10-8], %r1", Insn::new(0xdb, 10, 1, -8, 0)),
            (
                "lock fetch add [%r10-8], %r1",
                Insn::new(0xdb, 10, 1, -8, 1),
            ),
            (
                "lock fetch xor32 [%r10-4], %r3",
                Insn::new(0xc3, 10, 3, -4, 0xa1),
            ),
            ("lock xchg [%r1], %r2", Insn::new(0xdb, 1, 2, 0, 0xe1)),
            (
                "lock cmpxchg32 [%r1+0], %r2",
                Insn::new(0xc3, 1, 2, 0, 0xf1),
            ),
            (".raw 0x0000000100000095", Insn::new(0x95, 0, 0, 0, 1)),
            ("  MOV %R1 , 2  # comment", Insn::new(0xb7, 1, 0, 0, 2)),
        ];
        for (src, want) in cases {
            assert_eq!(one(src), *want, "{src}");
        }
    }

    #[test]
    fn lddw_takes_full_64_bits() {
        let lo_hi = |v: u64| {
            vec![
                Insn::new(0x18, 1, 0, 0, v as u32 as i32),
                Insn::new(0, 0, 0, 0, (v >> 32) as u32 as i32),
            ]
        };
        for (text, v) in [
            ("0xffffffffffffffff", u64::MAX),
            ("-1", u64::MAX),
            ("0x8000000000000000", 1 << 63),
            ("-9223372036854775808", 1 << 63),
            ("18446744073709551615", u64::MAX),
            ("0x1122334455667788", 0x1122334455667788),
        ] {
            assert_eq!(
                assemble(&format!("lddw %r1, {text}")).unwrap(),
                lo_hi(v),
                "{text}"
            );
        }
        let map = assemble("lddw %r2, map 3").unwrap();
        assert_eq!(map[0], Insn::new(0x18, 2, 1, 0, 3));
        assert!(matches!(
            err("lddw %r1, 0x10000000000000000").reason(),
            AsmReason::OutOfRange { .. }
        ));
        assert!(matches!(
            err("lddw %r1, -9223372036854775809").reason(),
            AsmReason::OutOfRange { .. }
        ));
    }

    #[test]
    fn labels_count_slots_and_exit_means_first_exit() {
        let p = assemble(
            "ja exit\n\
             start:\n\
             lddw %r0, 1\n\
             jeq %r0, 1, start\n\
             exit\n\
             mov %r0, 2\n\
             exit",
        )
        .unwrap();
        // ja at 0 → exit at 4: offset 3. jeq at 3 → start at 1: offset -3.
        assert_eq!(p[0], Insn::new(0x05, 0, 0, 3, 0));
        assert_eq!(p[3], Insn::new(0x15, 0, 0, -3, 1));
        // A real label named `exit` wins over the first exit instruction.
        let p = assemble("ja exit\nexit\nexit: exit").unwrap();
        assert_eq!(p[0], Insn::new(0x05, 0, 0, 1, 0));
        // Labels on their own line, several in a row, and before the end.
        let p = assemble("a:\nb: ja a\nja b\nja c\nc:").unwrap();
        assert_eq!(
            p,
            vec![
                Insn::new(0x05, 0, 0, -1, 0),
                Insn::new(0x05, 0, 0, -2, 0),
                Insn::new(0x05, 0, 0, 0, 0)
            ]
        );
        let p = assemble("call local f\nexit\nf:\nmov %r0, 1\nexit").unwrap();
        assert_eq!(p[0], Insn::new(0x85, 0, 1, 0, 1));
        let p = assemble("ja32 l\nl: exit").unwrap();
        assert_eq!(p[0], Insn::new(0x06, 0, 0, 0, 0));
    }

    #[test]
    fn imm32_accepts_i32_and_u32_bit_patterns() {
        assert_eq!(one("mov %r0, 0xffffffff").imm, -1);
        assert_eq!(one("mov %r0, 4294967295").imm, -1);
        assert_eq!(one("mov %r0, -2147483648").imm, i32::MIN);
        assert_eq!(one("mov %r0, -0x80000000").imm, i32::MIN);
        for bad in [
            "mov %r0, 0x100000000",
            "mov %r0, -2147483649",
            "call 0x1ffffffff",
        ] {
            let e = err(bad);
            assert!(matches!(e.reason(), AsmReason::OutOfRange { .. }), "{e}");
            assert_eq!(e.line(), 1);
        }
        for bad in [
            "mov %r0, 12a",
            "mov %r0, 0x",
            "mov %r0, --1",
            "mov %r0, -+1",
            "mov %r0, 0xg",
        ] {
            assert!(
                matches!(err(bad).reason(), AsmReason::BadNumber(_)),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_mnemonic_is_line_numbered() {
        let e = err("mov %r0, 1\n# comment\nfrobnicate %r1, 2\nexit");
        assert_eq!(
            e,
            AsmError::Syntax {
                line: 3,
                text: "frobnicate %r1, 2".into(),
                reason: AsmReason::UnknownMnemonic("frobnicate".into()),
            }
        );
        let msg = e.to_string();
        assert!(
            msg.contains("line 3") && msg.contains("frobnicate"),
            "{msg}"
        );
        for bad in [
            "lock nand [%r1], %r2",
            "ldxsdw %r0, [%r1]",
            "add64 %r1, 1",
            "le8 %r1",
            "movsx3232 %r1, %r2",
        ] {
            assert!(
                matches!(err(bad).reason(), AsmReason::UnknownMnemonic(_)),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_register_is_line_numbered() {
        let e = err("exit\nmov %r11, 1");
        assert_eq!(e.line(), 2);
        assert_eq!(e.reason(), &AsmReason::BadRegister("%r11".into()));
        assert!(e.to_string().contains("%r11"), "{e}");
        for bad in [
            "mov r1, 1",
            "mov %r1, %r99",
            "ldxb %r0, [%r12+1]",
            "call %r-1",
            "stxw [%r1], %rx",
            "le16 %r",
        ] {
            assert!(
                matches!(err(bad).reason(), AsmReason::BadRegister(_)),
                "{bad}: {}",
                err(bad)
            );
        }
    }

    #[test]
    fn offsets_out_of_range_are_line_numbered() {
        for (src, line) in [
            ("jeq %r1, 0, +32768", 1),
            ("exit\nja -32769", 2),
            ("ldxw %r0, [%r1+32768]", 1),
            ("stw [%r1-32769], 0", 1),
            ("call local +2147483648", 1),
        ] {
            let e = err(src);
            assert_eq!(e.line(), line, "{src}");
            assert!(
                matches!(e.reason(), AsmReason::OutOfRange { .. }),
                "{src}: {e}"
            );
        }
        // A label more than 32767 slots back is out of reach of `ja` but not `ja32`.
        let mut src = String::from("top:\n");
        for _ in 0..32768 {
            src.push_str("mov %r0, 0\n");
        }
        let e = err(&format!("{src}ja top"));
        assert_eq!(e.line(), 32770);
        assert_eq!(
            e.reason(),
            &AsmReason::OutOfRange {
                what: "jump offset",
                value: "-32769".into(),
                range: "-32768..=32767",
            }
        );
        let p = assemble(&format!("{src}ja32 top")).unwrap();
        assert_eq!(p[32768], Insn::new(0x06, 0, 0, 0, -32769));
    }

    #[test]
    fn other_errors() {
        let e = err("l:\nexit\nl: exit");
        assert_eq!(e.line(), 3);
        assert_eq!(
            e.reason(),
            &AsmReason::DuplicateLabel {
                name: "l".into(),
                first: 1
            }
        );
        assert_eq!(
            err("ja nowhere").reason(),
            &AsmReason::UndefinedLabel("nowhere".into())
        );
        // No exit instruction and no label: `exit` is undefined.
        assert_eq!(
            err("ja exit").reason(),
            &AsmReason::UndefinedLabel("exit".into())
        );
        assert!(matches!(err("9x: exit").reason(), AsmReason::BadLabel(_)));
        assert!(matches!(
            err("mov %r1").reason(),
            AsmReason::OperandCount {
                expected: 2,
                found: 1,
                ..
            }
        ));
        assert!(matches!(
            err("exit %r0").reason(),
            AsmReason::OperandCount { expected: 0, .. }
        ));
        assert!(matches!(
            err("ldxw %r0, %r1").reason(),
            AsmReason::Expected { .. }
        ));
        assert!(matches!(err("ja %r1").reason(), AsmReason::Expected { .. }));
        assert!(matches!(
            err("movsx832 %r1, 5").reason(),
            AsmReason::BadRegister(_)
        ));
    }

    proptest::proptest! {
        /// Token soup never panics: it assembles or gives a line-numbered error.
        #[test]
        fn arbitrary_text_never_panics(
            toks in proptest::collection::vec(proptest::sample::select(vec![
                "mov", "lddw", "ja", "ja32", "jeq32", "call", "local", "lock", "fetch", "xchg32",
                "ldxsb", "stdw", "exit", ".raw", "le16", "movsx3264", "%r1", "%r10", "%r11", "%r",
                "[%r1+4]", "[%r2-", "]", "[", ",", ":", "l:", "l", "exit:", "#", "\n", " ", "+", "-",
                "0x", "0xffffffffffffffffff", "-32769", "32767", "4294967295", "-9223372036854775808",
                "1", "99999999999999999999999999999999999999999",
            ]), 0..30)
        ) {
            let src: String = toks.concat();
            if let Err(e) = assemble(&src) {
                proptest::prop_assert!(e.line() >= 1 && e.line() <= src.lines().count().max(1));
            }
        }
    }
}
