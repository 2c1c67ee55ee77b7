//! Disassembler producing text the assembler accepts.
//!
//! Jump and call targets are printed relative (`+N`/`-N`), so each line
//! stands on its own. A slot that does not decode, or whose decoding would
//! not re-encode to the same bytes, is printed as `.raw 0x…` (the slot as
//! its little-endian 64-bit number), so `assemble(disassemble(p)) == p` for
//! every byte string.

use super::insn::{self, AluOp, AtomicOp, Cond, EndKind, Insn, Op, Src};

/// One instruction as text. Targets are relative, so `pc` is not needed to
/// produce assemblable text; it is kept for callers that print listings.
pub fn format_op(op: &Op, _pc: usize) -> String {
    match *op {
        Op::Alu { wide, op, dst, src } => match op {
            AluOp::MovSx(bits) => format!(
                "movsx{bits}{} %r{dst}, {}",
                if wide { 64 } else { 32 },
                src_text(src)
            ),
            _ => format!(
                "{}{} %r{dst}, {}",
                alu_name(op),
                suffix(wide),
                src_text(src)
            ),
        },
        Op::Neg { wide, dst } => format!("neg{} %r{dst}", suffix(wide)),
        Op::End { kind, bits, dst } => {
            let name = match kind {
                EndKind::Le => "le",
                EndKind::Be => "be",
                EndKind::Swap => "bswap",
            };
            format!("{name}{bits} %r{dst}")
        }
        Op::Ja { off } => {
            if i16::try_from(off).is_ok() {
                format!("ja {}", target(off))
            } else {
                format!("ja32 {}", target(off))
            }
        }
        Op::Jmp {
            wide,
            cond,
            dst,
            src,
            off,
        } => format!(
            "{}{} %r{dst}, {}, {}",
            cond_name(cond),
            suffix(wide),
            src_text(src),
            target(off.into())
        ),
        Op::Call { helper } => format!("call {helper}"),
        Op::CallLocal { off } => format!("call local {}", target(off)),
        Op::CallX { reg } => format!("call %r{reg}"),
        Op::Exit => "exit".to_string(),
        Op::Lddw { dst, kind, imm } => match kind {
            insn::LDDW_IMM => format!("lddw %r{dst}, {imm:#x}"),
            insn::LDDW_MAP => format!("lddw %r{dst}, map {imm:#x}"),
            k => format!("lddw %r{dst}, {imm:#x} # unsupported source field {k}"),
        },
        Op::Ldx {
            size,
            signed,
            dst,
            src,
            off,
        } => format!(
            "ldx{}{} %r{dst}, {}",
            if signed { "s" } else { "" },
            size_name(size),
            mem(src, off)
        ),
        Op::St {
            size,
            dst,
            off,
            imm,
        } => format!("st{} {}, {imm}", size_name(size), mem(dst, off)),
        Op::Stx {
            size,
            dst,
            src,
            off,
        } => format!("stx{} {}, %r{src}", size_name(size), mem(dst, off)),
        Op::Atomic {
            size,
            op,
            fetch,
            dst,
            src,
            off,
        } => {
            let (name, fetch) = match op {
                AtomicOp::Add => ("add", fetch),
                AtomicOp::Or => ("or", fetch),
                AtomicOp::And => ("and", fetch),
                AtomicOp::Xor => ("xor", fetch),
                // Always fetching; the mnemonic says so.
                AtomicOp::Xchg => ("xchg", false),
                AtomicOp::CmpXchg => ("cmpxchg", false),
            };
            format!(
                "lock {}{name}{} {}, %r{src}",
                if fetch { "fetch " } else { "" },
                if size == 4 { "32" } else { "" },
                mem(dst, off)
            )
        }
    }
}

/// A whole program, one instruction per line.
pub fn disassemble(insns: &[Insn]) -> String {
    let mut out = String::new();
    let mut pc = 0;
    while pc < insns.len() {
        let (text, slots) = match line_at(insns, pc) {
            Some(t) => t,
            None => (raw(insns, pc), 1),
        };
        out.push_str(&text);
        out.push('\n');
        pc += slots;
    }
    out
}

/// The text for the instruction at `pc` and its slot count, if it decodes
/// and its text reassembles to exactly these slots.
fn line_at(insns: &[Insn], pc: usize) -> Option<(String, usize)> {
    let op = insn::decode(insns, pc).ok()?;
    let n = op.slots();
    let orig = insns.get(pc..pc + n)?;
    // `ja32` with a small offset decodes to the same `Op` as `ja`.
    if let (Op::Ja { off }, Some(first)) = (op, orig.first()) {
        if first.class() == insn::CLS_JMP32 {
            return Some((format!("ja32 {}", target(off)), 1));
        }
    }
    (insn::encode(&op) == orig).then(|| (format_op(&op, pc), n))
}

fn raw(insns: &[Insn], pc: usize) -> String {
    let v = insns.get(pc).map_or(0, |i| i.to_u64());
    format!(".raw {v:#018x}")
}

fn suffix(wide: bool) -> &'static str {
    if wide {
        ""
    } else {
        "32"
    }
}

fn target(off: i32) -> String {
    if off >= 0 {
        format!("+{off}")
    } else {
        off.to_string()
    }
}

fn src_text(src: Src) -> String {
    match src {
        Src::Reg(r) => format!("%r{r}"),
        Src::Imm(v) => v.to_string(),
    }
}

fn mem(reg: u8, off: i16) -> String {
    if off >= 0 {
        format!("[%r{reg}+{off}]")
    } else {
        format!("[%r{reg}{off}]")
    }
}

fn size_name(size: u8) -> &'static str {
    match size {
        1 => "b",
        2 => "h",
        4 => "w",
        _ => "dw",
    }
}

/// The mnemonic of an ALU operation (without the `32` suffix or movsx widths).
pub(crate) fn alu_name(op: AluOp) -> &'static str {
    match op {
        AluOp::Add => "add",
        AluOp::Sub => "sub",
        AluOp::Mul => "mul",
        AluOp::Div => "div",
        AluOp::SDiv => "sdiv",
        AluOp::Or => "or",
        AluOp::And => "and",
        AluOp::Lsh => "lsh",
        AluOp::Rsh => "rsh",
        AluOp::Mod => "mod",
        AluOp::SMod => "smod",
        AluOp::Xor => "xor",
        AluOp::Mov => "mov",
        AluOp::Arsh => "arsh",
        AluOp::MovSx(_) => "movsx",
    }
}

fn cond_name(c: Cond) -> &'static str {
    match c {
        Cond::Eq => "jeq",
        Cond::Gt => "jgt",
        Cond::Ge => "jge",
        Cond::Set => "jset",
        Cond::Ne => "jne",
        Cond::Sgt => "jsgt",
        Cond::Sge => "jsge",
        Cond::Lt => "jlt",
        Cond::Le => "jle",
        Cond::Slt => "jslt",
        Cond::Sle => "jsle",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebpf::asm::assemble;
    use crate::ebpf::conformance;
    use proptest::prelude::*;

    fn round_trip(insns: &[Insn]) -> String {
        let text = disassemble(insns);
        let back = assemble(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, insns, "\n{text}");
        text
    }

    #[test]
    fn suite_round_trips() {
        let Some(dir) = conformance::suite_for_test("suite_round_trips").unwrap() else {
            return;
        };
        let files = conformance::list_files(&[dir]).unwrap();
        assert_eq!(files.len(), 313);
        let mut slots = 0;
        for f in &files {
            let tc = conformance::load(f).unwrap_or_else(|e| panic!("{e}"));
            let from_asm = assemble(&tc.asm).unwrap();
            for p in [&tc.insns, &from_asm] {
                let text = round_trip(p);
                assert!(!text.contains(".raw"), "{}:\n{text}", f.display());
            }
            slots += from_asm.len();
        }
        // The 313 programs hold 2,762 slots in all.
        assert_eq!(slots, 2762);
    }

    #[test]
    fn formats() {
        let cases: &[(Op, &str)] = &[
            (
                Op::Alu {
                    wide: false,
                    op: AluOp::Mov,
                    dst: 1,
                    src: Src::Imm(-1),
                },
                "mov32 %r1, -1",
            ),
            (
                Op::Alu {
                    wide: true,
                    op: AluOp::MovSx(32),
                    dst: 1,
                    src: Src::Reg(2),
                },
                "movsx3264 %r1, %r2",
            ),
            (
                Op::Jmp {
                    wide: false,
                    cond: Cond::Sle,
                    dst: 3,
                    src: Src::Reg(4),
                    off: -5,
                },
                "jsle32 %r3, %r4, -5",
            ),
            (Op::Ja { off: 0 }, "ja +0"),
            (Op::Ja { off: 40000 }, "ja32 +40000"),
            (Op::CallLocal { off: -3 }, "call local -3"),
            (Op::CallX { reg: 7 }, "call %r7"),
            (
                Op::Lddw {
                    dst: 0,
                    kind: 0,
                    imm: 0x1122334455667788,
                },
                "lddw %r0, 0x1122334455667788",
            ),
            (
                Op::Ldx {
                    size: 2,
                    signed: true,
                    dst: 0,
                    src: 10,
                    off: -2,
                },
                "ldxsh %r0, [%r10-2]",
            ),
            (
                Op::Atomic {
                    size: 4,
                    op: AtomicOp::Or,
                    fetch: true,
                    dst: 10,
                    src: 1,
                    off: -8,
                },
                "lock fetch or32 [%r10-8], %r1",
            ),
            (
                Op::Atomic {
                    size: 8,
                    op: AtomicOp::CmpXchg,
                    fetch: true,
                    dst: 1,
                    src: 2,
                    off: 0,
                },
                "lock cmpxchg [%r1+0], %r2",
            ),
        ];
        for (op, want) in cases {
            assert_eq!(format_op(op, 0), *want);
            assert_eq!(assemble(want).unwrap(), insn::encode(op), "{want}");
        }
    }

    #[test]
    fn undecodable_slots_become_raw() {
        let insns = [
            Insn::new(0xff, 0, 0, 0, 0),  // unknown opcode
            Insn::new(0xb7, 11, 0, 0, 1), // bad register
            Insn::new(0x18, 1, 0, 0, 1),  // lddw with a bad tail ...
            Insn::new(0x95, 0, 0, 0, 0),  // ... which is an exit
            Insn::new(0x06, 0, 0, 0, 5),  // ja32 with a small offset
            Insn::new(0x18, 1, 0, 0, 1),  // truncated lddw
        ];
        let text = round_trip(&insns);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                ".raw 0x00000000000000ff",
                ".raw 0x0000000100000bb7",
                ".raw 0x0000000100000118",
                "exit",
                "ja32 +5",
                ".raw 0x0000000100000118",
            ]
        );
    }

    #[test]
    fn every_opcode_byte_round_trips() {
        let fields: &[(u8, u8, i16, i32)] = &[
            (0, 0, 0, 0),
            (1, 2, 0, 0),
            (1, 0, 0, 16),
            (0, 1, 1, 1),
            (2, 0, 8, 0),
            (3, 4, -7, -9),
            (10, 10, 32, 0x41),
            (15, 15, -1, -1),
        ];
        for op in 0..=255u8 {
            for &(dst, src, off, imm) in fields {
                let insns = [
                    Insn::new(op, dst, src, off, imm),
                    Insn::new(0, 0, 0, 0, imm),
                ];
                round_trip(&insns);
                round_trip(&insns[..1]);
            }
        }
    }

    fn reg() -> impl Strategy<Value = u8> {
        0u8..=10
    }

    fn src() -> impl Strategy<Value = Src> {
        prop_oneof![reg().prop_map(Src::Reg), any::<i32>().prop_map(Src::Imm)]
    }

    fn size() -> impl Strategy<Value = u8> {
        prop_oneof![Just(1u8), Just(2), Just(4), Just(8)]
    }

    fn alu_op() -> impl Strategy<Value = AluOp> {
        prop_oneof![
            Just(AluOp::Add),
            Just(AluOp::Sub),
            Just(AluOp::Mul),
            Just(AluOp::Div),
            Just(AluOp::SDiv),
            Just(AluOp::Or),
            Just(AluOp::And),
            Just(AluOp::Lsh),
            Just(AluOp::Rsh),
            Just(AluOp::Mod),
            Just(AluOp::SMod),
            Just(AluOp::Xor),
            Just(AluOp::Mov),
            Just(AluOp::Arsh),
        ]
    }

    fn cond() -> impl Strategy<Value = Cond> {
        prop_oneof![
            Just(Cond::Eq),
            Just(Cond::Gt),
            Just(Cond::Ge),
            Just(Cond::Set),
            Just(Cond::Ne),
            Just(Cond::Sgt),
            Just(Cond::Sge),
            Just(Cond::Lt),
            Just(Cond::Le),
            Just(Cond::Slt),
            Just(Cond::Sle),
        ]
    }

    fn atomic() -> impl Strategy<Value = (AtomicOp, bool)> {
        prop_oneof![
            (
                prop_oneof![
                    Just(AtomicOp::Add),
                    Just(AtomicOp::Or),
                    Just(AtomicOp::And),
                    Just(AtomicOp::Xor)
                ],
                any::<bool>()
            ),
            Just((AtomicOp::Xchg, true)),
            Just((AtomicOp::CmpXchg, true)),
        ]
    }

    /// Any instruction the codec decodes (jump targets unconstrained).
    fn valid_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<bool>(), alu_op(), reg(), src()).prop_map(|(wide, op, dst, src)| Op::Alu {
                wide,
                op,
                dst,
                src
            }),
            (any::<bool>(), reg(), reg(), 0usize..3).prop_map(|(wide, dst, s, b)| {
                let bits = [8u8, 16, 32][if wide { b } else { b % 2 }];
                Op::Alu {
                    wide,
                    op: AluOp::MovSx(bits),
                    dst,
                    src: Src::Reg(s),
                }
            }),
            (any::<bool>(), reg()).prop_map(|(wide, dst)| Op::Neg { wide, dst }),
            (
                prop_oneof![Just(EndKind::Le), Just(EndKind::Be), Just(EndKind::Swap)],
                prop_oneof![Just(16u8), Just(32), Just(64)],
                reg()
            )
                .prop_map(|(kind, bits, dst)| Op::End { kind, bits, dst }),
            prop_oneof![any::<i16>().prop_map(i32::from), any::<i32>()]
                .prop_map(|off| Op::Ja { off }),
            (any::<bool>(), cond(), reg(), src(), any::<i16>()).prop_map(
                |(wide, cond, dst, src, off)| Op::Jmp {
                    wide,
                    cond,
                    dst,
                    src,
                    off
                }
            ),
            any::<i32>().prop_map(|helper| Op::Call { helper }),
            any::<i32>().prop_map(|off| Op::CallLocal { off }),
            reg().prop_map(|reg| Op::CallX { reg }),
            Just(Op::Exit),
            (reg(), 0u8..=1, any::<u64>()).prop_map(|(dst, kind, imm)| Op::Lddw { dst, kind, imm }),
            (size(), any::<bool>(), reg(), reg(), any::<i16>()).prop_map(
                |(size, signed, dst, src, off)| Op::Ldx {
                    size,
                    signed: signed && size < 8,
                    dst,
                    src,
                    off
                }
            ),
            (size(), reg(), any::<i16>(), any::<i32>()).prop_map(|(size, dst, off, imm)| Op::St {
                size,
                dst,
                off,
                imm
            }),
            (size(), reg(), reg(), any::<i16>()).prop_map(|(size, dst, src, off)| Op::Stx {
                size,
                dst,
                src,
                off
            }),
            (any::<bool>(), atomic(), reg(), reg(), any::<i16>()).prop_map(
                |(wide, (op, fetch), dst, src, off)| Op::Atomic {
                    size: if wide { 8 } else { 4 },
                    op,
                    fetch,
                    dst,
                    src,
                    off
                }
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn valid_ops_round_trip(ops in proptest::collection::vec(valid_op(), 1..40)) {
            let insns = insn::encode_all(&ops);
            // The generator only makes instructions the codec accepts ...
            let decoded: Vec<Op> = insn::decode_all(&insns).unwrap().into_iter().map(|(_, op)| op).collect();
            prop_assert_eq!(&decoded, &ops);
            // ... so the text has no raw slots, and it assembles to the same bytes.
            let text = disassemble(&insns);
            prop_assert!(!text.contains(".raw"), "{}", text);
            prop_assert_eq!(assemble(&text).unwrap(), insns);
            for op in &ops {
                prop_assert_eq!(assemble(&format_op(op, 0)).unwrap(), insn::encode(op));
            }
        }

        #[test]
        fn any_bytes_round_trip(words in proptest::collection::vec(any::<u64>(), 0..40)) {
            let insns: Vec<Insn> = words.into_iter().map(Insn::from_u64).collect();
            let text = disassemble(&insns);
            prop_assert_eq!(assemble(&text).unwrap(), insns);
        }
    }
}
