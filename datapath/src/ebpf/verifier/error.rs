//! Why the verifier rejected a program.

use thiserror::Error;

use super::state::PtrKind;
use crate::ebpf::helpers::ArgKind;
use crate::ebpf::insn::CodecError;
use crate::ebpf::vm::{Region, MAX_CALL_DEPTH};

/// A rejected program: the instruction index, the instruction as text and
/// the reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    #[error("program is empty")]
    Empty,
    #[error("insn {pc}: {insn}: {reason}")]
    At {
        pc: usize,
        /// The instruction, disassembled (or its raw slot if it does not decode).
        insn: String,
        reason: Reason,
    },
}

impl VerifyError {
    pub fn reason(&self) -> Option<&Reason> {
        match self {
            VerifyError::Empty => None,
            VerifyError::At { reason, .. } => Some(reason),
        }
    }

    pub fn pc(&self) -> Option<usize> {
        match self {
            VerifyError::Empty => None,
            VerifyError::At { pc, .. } => Some(*pc),
        }
    }
}

/// What is wrong with the instruction.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Reason {
    // Structure.
    #[error("{0}")]
    Decode(#[from] CodecError),
    #[error("jump target {target} is outside the program ({len} slots)")]
    JumpOutOfRange { target: i64, len: usize },
    #[error("jump target {target} is the second slot of lddw")]
    JumpIntoLddw { target: usize },
    #[error("execution can fall off the end of the program")]
    FallsOffEnd,
    #[error("r10 is read-only")]
    WriteToR10,
    #[error("unknown helper {id}")]
    UnknownHelper { id: i64 },
    #[error("lddw of map {index}, which the environment does not declare")]
    UnknownMap { index: u64 },
    #[error(
        "atomic {size}-byte access to {region} at offset {lo}..={hi} is not provably \
         {size}-aligned (atomics must be aligned; packet memory never is provably)"
    )]
    AtomicUnaligned {
        region: Region,
        lo: i64,
        hi: i64,
        size: u8,
    },

    // Register types.
    #[error("r{reg} is not initialised")]
    UninitRegister { reg: u8 },
    #[error("r{reg} holds different types on different paths")]
    ConflictingTypes { reg: u8 },
    #[error("r{reg} is a scalar, not a pointer")]
    ScalarAsPointer { reg: u8 },
    #[error("{op} on r{reg} ({kind}) is not allowed")]
    PointerArithmetic {
        op: &'static str,
        reg: u8,
        kind: PtrKind,
    },
    #[error("r0 is a {kind} at exit; a program must return a scalar")]
    PointerReturned { kind: PtrKind },
    #[error("comparing r{reg} ({kind}) with {other} would depend on its address")]
    PointerComparison {
        reg: u8,
        kind: PtrKind,
        other: &'static str,
    },
    #[error("r{reg} ({kind}) can only be spilled whole, to an 8-aligned stack slot")]
    PartialSpill { reg: u8, kind: PtrKind },
    #[error("stack bytes at offset {off} hold part of a spilled pointer")]
    PointerBytes { off: i64 },
    #[error("function returns a pointer into its own stack frame")]
    ReturnsOwnStack,
    #[error("storing r{reg} ({kind}) into {region} would leak a pointer")]
    PointerLeak {
        reg: u8,
        kind: PtrKind,
        region: Region,
    },

    // Memory.
    #[error("{size}-byte stack access at offsets [{lo}, {hi}] is outside the 512-byte frame")]
    StackOutOfFrame { lo: i64, hi: i64, size: u8 },
    #[error("read of uninitialised stack byte at offset {off}")]
    UninitStack { off: i64 },
    #[error("stack pointer into frame {frame}, which is not live")]
    DeadFrame { frame: u8 },
    #[error("packet-end pointer r{reg} cannot be dereferenced")]
    PacketEndAccess { reg: u8 },
    #[error("ctx access through r{reg} with a variable offset [{lo}, {hi}]")]
    CtxVariableOffset { reg: u8, lo: i64, hi: i64 },
    #[error("no ctx field of {size} bytes at offset {off}")]
    CtxNoField { off: i64, size: u8 },
    #[error("ctx field at offset {off} is read-only")]
    CtxReadOnly { off: i64 },
    #[error("map handle r{reg} cannot be dereferenced")]
    MapHandleAccess { reg: u8 },
    #[error("r{reg} may be null: compare the map lookup's result with 0 first")]
    MaybeNull { reg: u8 },
    #[error("{size}-byte access at offsets [{lo}, {hi}] of a value of map {map} is outside its {value_size} bytes")]
    MapValueOutOfBounds {
        map: u32,
        lo: i64,
        hi: i64,
        size: u32,
        value_size: u32,
    },
    #[error("{region} access through r{reg}: another path reaches this instruction with {other}")]
    RegionConflict {
        reg: u8,
        region: Region,
        other: Region,
    },

    // Calls.
    #[error("helper {id} ({name}) argument r{arg} must be {expected:?}, is {actual}")]
    HelperArg {
        id: u32,
        name: &'static str,
        arg: u8,
        expected: ArgKind,
        actual: &'static str,
    },
    #[error(
        "helper argument r{reg}: {size} bytes at offsets [{lo}, {hi}] are outside the {region}"
    )]
    ArgMemory {
        reg: u8,
        lo: i64,
        hi: i64,
        size: u32,
        region: Region,
    },
    #[error("helper argument r{reg} is a {kind}, not a pointer to stack or map memory")]
    ArgNotMemory { reg: u8, kind: PtrKind },
    #[error("helper {id} ({name}) takes a key or value without a map argument before it")]
    NoMapArg { id: u32, name: &'static str },
    #[error("callx r{reg} is not a known constant")]
    CallxNotConstant { reg: u8 },
    #[error("callx r{reg} holds {value}, not a registered helper")]
    CallxUnknownHelper { reg: u8, value: u64 },
    #[error("callx r{reg} holds helper {a} on one path and {b} on another")]
    CallxAmbiguous { reg: u8, a: u32, b: u32 },
    #[error("call nesting reaches {depth} frames (limit {MAX_CALL_DEPTH})")]
    CallDepth { depth: usize },

    // Limits.
    #[error("program too complex: analysis stopped after {steps} steps")]
    TooComplex { steps: usize },
    #[error("program too complex: more than {frames} stored call frames")]
    TooManyStates { frames: usize },
}
