//! The eBPF instruction codec (RFC 9669).
//!
//! An eBPF program is a sequence of 64-bit *slots*. Every instruction takes one
//! slot except `lddw`, which takes two (the second slot carries the upper half of
//! the immediate). Jump offsets count slots, so programs are kept as slots
//! ([`Insn`]) and [`decode`] turns the slot at a given index into a typed
//! [`Op`]. Everything else in the engine (assembler, disassembler, verifier,
//! interpreter, JIT) learns what an instruction means from [`Op`] alone: this
//! module is the one place that knows the bit layout (`decoding.rs` reads
//! it, `encoding.rs` writes it).
//!
//! Decoding never panics: an unknown opcode or a bad field is a [`CodecError`].

use thiserror::Error;

/// Size of one instruction slot in bytes.
pub const SLOT: usize = 8;
/// Number of eBPF registers (r0..r10).
pub const NREGS: usize = 11;
/// The read-only frame pointer.
pub const R10: u8 = 10;
/// Bytes of stack each frame gets.
pub const STACK_SIZE: usize = 512;

// Instruction classes (low three bits of the opcode).
pub const CLS_LD: u8 = 0x00;
pub const CLS_LDX: u8 = 0x01;
pub const CLS_ST: u8 = 0x02;
pub const CLS_STX: u8 = 0x03;
pub const CLS_ALU: u8 = 0x04;
pub const CLS_JMP: u8 = 0x05;
pub const CLS_JMP32: u8 = 0x06;
pub const CLS_ALU64: u8 = 0x07;

// Source bit for ALU and JMP classes.
pub const SRC_K: u8 = 0x00;
pub const SRC_X: u8 = 0x08;

// ALU operation codes (high four bits).
pub const ALU_ADD: u8 = 0x00;
pub const ALU_SUB: u8 = 0x10;
pub const ALU_MUL: u8 = 0x20;
pub const ALU_DIV: u8 = 0x30;
pub const ALU_OR: u8 = 0x40;
pub const ALU_AND: u8 = 0x50;
pub const ALU_LSH: u8 = 0x60;
pub const ALU_RSH: u8 = 0x70;
pub const ALU_NEG: u8 = 0x80;
pub const ALU_MOD: u8 = 0x90;
pub const ALU_XOR: u8 = 0xa0;
pub const ALU_MOV: u8 = 0xb0;
pub const ALU_ARSH: u8 = 0xc0;
pub const ALU_END: u8 = 0xd0;

// Jump operation codes (high four bits).
pub const JMP_JA: u8 = 0x00;
pub const JMP_JEQ: u8 = 0x10;
pub const JMP_JGT: u8 = 0x20;
pub const JMP_JGE: u8 = 0x30;
pub const JMP_JSET: u8 = 0x40;
pub const JMP_JNE: u8 = 0x50;
pub const JMP_JSGT: u8 = 0x60;
pub const JMP_JSGE: u8 = 0x70;
pub const JMP_CALL: u8 = 0x80;
pub const JMP_EXIT: u8 = 0x90;
pub const JMP_JLT: u8 = 0xa0;
pub const JMP_JLE: u8 = 0xb0;
pub const JMP_JSLT: u8 = 0xc0;
pub const JMP_JSLE: u8 = 0xd0;

// Load/store sizes (bits 3-4) and modes (bits 5-7).
pub const SZ_W: u8 = 0x00;
pub const SZ_H: u8 = 0x08;
pub const SZ_B: u8 = 0x10;
pub const SZ_DW: u8 = 0x18;
pub const MODE_IMM: u8 = 0x00;
pub const MODE_MEM: u8 = 0x60;
pub const MODE_MEMSX: u8 = 0x80;
pub const MODE_ATOMIC: u8 = 0xc0;

// Atomic operation immediates.
pub const ATOMIC_FETCH: i32 = 0x01;
pub const ATOMIC_ADD: i32 = 0x00;
pub const ATOMIC_OR: i32 = 0x40;
pub const ATOMIC_AND: i32 = 0x50;
pub const ATOMIC_XOR: i32 = 0xa0;
pub const ATOMIC_XCHG: i32 = 0xe0 | ATOMIC_FETCH;
pub const ATOMIC_CMPXCHG: i32 = 0xf0 | ATOMIC_FETCH;

// `call` source field values.
pub const CALL_HELPER: u8 = 0;
pub const CALL_LOCAL: u8 = 1;

// `lddw` source field values.
/// Plain 64-bit immediate.
pub const LDDW_IMM: u8 = 0;
/// The immediate is a map index; the register receives a map handle.
pub const LDDW_MAP: u8 = 1;

/// Errors from decoding or encoding instruction slots.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    #[error("program length {0} bytes is not a multiple of 8")]
    BadLength(usize),
    #[error("unknown opcode 0x{op:02x}")]
    UnknownOpcode { op: u8 },
    #[error("opcode 0x{op:02x}: invalid register r{reg}")]
    BadRegister { op: u8, reg: u8 },
    #[error("opcode 0x{op:02x}: field {field} must be {expected}, is {actual}")]
    BadField {
        op: u8,
        field: &'static str,
        expected: &'static str,
        actual: i64,
    },
    #[error("lddw at the last slot has no second half")]
    TruncatedLddw,
    #[error("second half of lddw has opcode 0x{op:02x}, must be 0")]
    BadLddwTail { op: u8 },
    #[error("index {0} is past the end of the program")]
    OutOfRange(usize),
}

/// One raw 64-bit instruction slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Insn {
    pub op: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    pub const fn new(op: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Insn {
            op,
            dst,
            src,
            off,
            imm,
        }
    }

    /// Parses one slot from its 8 little-endian bytes.
    pub fn from_bytes(b: [u8; 8]) -> Self {
        Insn {
            op: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// The slot's 8 little-endian bytes.
    pub fn to_bytes(self) -> [u8; 8] {
        let off = self.off.to_le_bytes();
        let imm = self.imm.to_le_bytes();
        [
            self.op,
            (self.dst & 0x0f) | (self.src << 4),
            off[0],
            off[1],
            imm[0],
            imm[1],
            imm[2],
            imm[3],
        ]
    }

    /// The slot as the little-endian 64-bit number (the `-- raw` form).
    pub fn to_u64(self) -> u64 {
        u64::from_le_bytes(self.to_bytes())
    }

    pub fn from_u64(v: u64) -> Self {
        Insn::from_bytes(v.to_le_bytes())
    }

    pub fn class(self) -> u8 {
        self.op & 0x07
    }
}

/// Parses a byte string into slots.
pub fn from_bytes(bytes: &[u8]) -> Result<Vec<Insn>, CodecError> {
    if !bytes.len().is_multiple_of(SLOT) {
        return Err(CodecError::BadLength(bytes.len()));
    }
    Ok(bytes
        .chunks_exact(SLOT)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            Insn::from_bytes(b)
        })
        .collect())
}

/// Serialises slots to bytes.
pub fn to_bytes(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_bytes()).collect()
}

/// Binary ALU operations (both widths).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AluOp {
    Add,
    Sub,
    Mul,
    Div,
    SDiv,
    Or,
    And,
    Lsh,
    Rsh,
    Mod,
    SMod,
    Xor,
    Mov,
    Arsh,
    /// Sign-extending move from the low 8, 16 or 32 bits of the source.
    MovSx(u8),
}

impl AluOp {
    /// The fourteen plain binary operations.
    pub const BINARY: [AluOp; 14] = [
        AluOp::Add,
        AluOp::Sub,
        AluOp::Mul,
        AluOp::Div,
        AluOp::SDiv,
        AluOp::Or,
        AluOp::And,
        AluOp::Lsh,
        AluOp::Rsh,
        AluOp::Mod,
        AluOp::SMod,
        AluOp::Xor,
        AluOp::Mov,
        AluOp::Arsh,
    ];

    /// Every operation valid in both widths: [`AluOp::BINARY`] and the 8- and
    /// 16-bit sign-extending moves.
    pub const BOTH_WIDTHS: [AluOp; 16] = {
        let mut all = [AluOp::MovSx(16); 16];
        let mut i = 0;
        while i < 14 {
            all[i] = AluOp::BINARY[i];
            i += 1;
        }
        all[14] = AluOp::MovSx(8);
        all
    };

    /// The opcode's operation bits and the offset field that selects this
    /// operation (signed division and modulo, sign-extending moves).
    pub fn code(self) -> (u8, i16) {
        match self {
            AluOp::Add => (ALU_ADD, 0),
            AluOp::Sub => (ALU_SUB, 0),
            AluOp::Mul => (ALU_MUL, 0),
            AluOp::Div => (ALU_DIV, 0),
            AluOp::SDiv => (ALU_DIV, 1),
            AluOp::Or => (ALU_OR, 0),
            AluOp::And => (ALU_AND, 0),
            AluOp::Lsh => (ALU_LSH, 0),
            AluOp::Rsh => (ALU_RSH, 0),
            AluOp::Mod => (ALU_MOD, 0),
            AluOp::SMod => (ALU_MOD, 1),
            AluOp::Xor => (ALU_XOR, 0),
            AluOp::Mov => (ALU_MOV, 0),
            AluOp::Arsh => (ALU_ARSH, 0),
            AluOp::MovSx(b) => (ALU_MOV, i16::from(b)),
        }
    }

    /// The operations valid in one width (`movsx` from 32 bits is ALU64 only).
    pub fn all(wide: bool) -> Vec<AluOp> {
        let mut v = AluOp::BOTH_WIDTHS.to_vec();
        if wide {
            v.push(AluOp::MovSx(32));
        }
        v
    }
}

/// Jump conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cond {
    Eq,
    Gt,
    Ge,
    Set,
    Ne,
    Sgt,
    Sge,
    Lt,
    Le,
    Slt,
    Sle,
}

impl Cond {
    /// Every jump condition.
    pub const ALL: [Cond; 11] = [
        Cond::Eq,
        Cond::Gt,
        Cond::Ge,
        Cond::Set,
        Cond::Ne,
        Cond::Sgt,
        Cond::Sge,
        Cond::Lt,
        Cond::Le,
        Cond::Slt,
        Cond::Sle,
    ];
}

/// Byte-order operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndKind {
    /// Convert to little-endian (a truncation/zero-extension on x86).
    Le,
    /// Convert to big-endian.
    Be,
    /// Unconditional byte swap (ALU64 class).
    Swap,
}

/// Second operand of ALU and jump instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Src {
    Reg(u8),
    Imm(i32),
}

/// Atomic read-modify-write operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AtomicOp {
    Add,
    Or,
    And,
    Xor,
    Xchg,
    CmpXchg,
}

/// A decoded instruction. Register fields are checked to be 0..=10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `dst = dst OP src`; `wide` is ALU64, otherwise the result is truncated
    /// to 32 bits and zero-extended.
    Alu {
        wide: bool,
        op: AluOp,
        dst: u8,
        src: Src,
    },
    /// `dst = -dst`.
    Neg {
        wide: bool,
        dst: u8,
    },
    /// Byte swap / conversion of the low `bits` (16, 32, 64) of dst.
    End {
        kind: EndKind,
        bits: u8,
        dst: u8,
    },
    /// Unconditional jump by `off` slots (relative to the next slot).
    Ja {
        off: i32,
    },
    /// Conditional jump; `wide` compares 64 bits, otherwise the low 32 bits.
    Jmp {
        wide: bool,
        cond: Cond,
        dst: u8,
        src: Src,
        off: i16,
    },
    /// Helper call by id.
    Call {
        helper: i32,
    },
    /// bpf-to-bpf call; the target is `pc + 1 + off`.
    CallLocal {
        off: i32,
    },
    /// Helper call by the id held in register `reg`.
    CallX {
        reg: u8,
    },
    Exit,
    /// 64-bit immediate load (two slots). `kind` is the src field
    /// ([`LDDW_IMM`] or [`LDDW_MAP`]).
    Lddw {
        dst: u8,
        kind: u8,
        imm: u64,
    },
    /// `dst = *(size *)(src + off)`, zero- or sign-extended.
    Ldx {
        size: u8,
        signed: bool,
        dst: u8,
        src: u8,
        off: i16,
    },
    /// `*(size *)(dst + off) = imm`.
    St {
        size: u8,
        dst: u8,
        off: i16,
        imm: i32,
    },
    /// `*(size *)(dst + off) = src`.
    Stx {
        size: u8,
        dst: u8,
        src: u8,
        off: i16,
    },
    /// Atomic operation on `*(size *)(dst + off)` with `src`; `fetch` puts the
    /// old value in `src` (for `CmpXchg`, in r0).
    Atomic {
        size: u8,
        op: AtomicOp,
        fetch: bool,
        dst: u8,
        src: u8,
        off: i16,
    },
}

impl Op {
    /// Number of slots this instruction occupies.
    pub fn slots(&self) -> usize {
        match self {
            Op::Lddw { .. } => 2,
            _ => 1,
        }
    }
}

/// The opcode size bits for an access of `bytes` (1, 2, 4 or 8).
pub fn size_code(bytes: u8) -> u8 {
    match bytes {
        1 => SZ_B,
        2 => SZ_H,
        4 => SZ_W,
        _ => SZ_DW,
    }
}

mod decoding;
mod encoding;

pub use decoding::{decode, decode_all};
pub use encoding::{encode, encode_all};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_bytes_round_trip() {
        let i = Insn::new(0xb7, 3, 0, -5, -1);
        assert_eq!(Insn::from_bytes(i.to_bytes()), i);
        assert_eq!(Insn::from_u64(i.to_u64()), i);
    }

    #[test]
    fn lddw_raw_matches_conformance_layout() {
        let insns = [
            Insn::from_u64(0x5566778800000018),
            Insn::from_u64(0x1122334400000000),
        ];
        assert_eq!(
            decode(&insns, 0),
            Ok(Op::Lddw {
                dst: 0,
                kind: 0,
                imm: 0x1122334455667788
            })
        );
        assert_eq!(encode(&decode(&insns, 0).unwrap()), insns.to_vec());
    }

    #[test]
    fn every_opcode_byte_decodes_or_errors_and_reencodes() {
        for op in 0..=255u8 {
            for (dst, src, off, imm) in [(1, 2, 0, 0), (1, 0, 0, 16), (0, 1, 1, 1), (2, 0, 8, 0)] {
                let insns = [Insn::new(op, dst, src, off, imm), Insn::default()];
                if let Ok(d) = decode(&insns, 0) {
                    let back = encode(&d);
                    assert_eq!(back[0], insns[0], "opcode {op:#x}");
                }
            }
        }
    }

    #[test]
    fn bad_register_is_an_error() {
        let insns = [Insn::new(0xb7, 11, 0, 0, 0)];
        assert_eq!(
            decode(&insns, 0),
            Err(CodecError::BadRegister { op: 0xb7, reg: 11 })
        );
    }
}
