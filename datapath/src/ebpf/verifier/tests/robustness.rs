//! Random programs never panic the verifier, and accepted ones carry an
//! annotation on every memory instruction. Two generators: raw slots (mostly
//! rejected while decoding) and well-formed instructions with small
//! registers and nearby targets (which reach the abstract interpretation).

use super::*;
use crate::ebpf::insn::{encode, AluOp, AtomicOp, Cond, EndKind, Src};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

/// Slots biased towards valid opcodes and small registers and offsets.
fn slot() -> impl Strategy<Value = Insn> {
    let ops = prop_oneof![
        any::<u8>(),
        prop::sample::select(vec![
            0x07u8, 0x0f, 0x17, 0x1f, 0xb7, 0xbf, 0xb4, 0xbc, 0x57, 0x67, 0x77, 0x87, 0x05, 0x15,
            0x1d, 0x25, 0x2d, 0xa5, 0xad, 0x16, 0x85, 0x8d, 0x95, 0x18, 0x00, 0x61, 0x69, 0x71,
            0x79, 0x62, 0x6a, 0x72, 0x7a, 0x63, 0x6b, 0x73, 0x7b, 0xc3, 0xdb, 0x91, 0xd4, 0xdc
        ]),
    ];
    (
        ops,
        0u8..12,
        0u8..12,
        prop_oneof![-20i16..20, any::<i16>(), (-64i16..0).prop_map(|v| v * 8)],
        prop_oneof![-20i32..20, any::<i32>(), Just(5), Just(1)],
    )
        .prop_map(|(op, dst, src, off, imm)| Insn::new(op, dst, src, off, imm))
}

fn alu_op() -> impl Strategy<Value = AluOp> {
    prop::sample::select(AluOp::BINARY.to_vec())
}

fn cond() -> impl Strategy<Value = Cond> {
    prop::sample::select(Cond::ALL.to_vec())
}

fn src() -> impl Strategy<Value = Src> {
    prop_oneof![
        (0u8..11).prop_map(Src::Reg),
        prop_oneof![-20i32..80, any::<i32>()].prop_map(Src::Imm),
    ]
}

fn size() -> impl Strategy<Value = u8> {
    prop::sample::select(vec![1u8, 2, 4, 8])
}

fn mem_off() -> impl Strategy<Value = i16> {
    prop_oneof![-520i16..40, (-64i16..0).prop_map(|v| v * 8)]
}

/// A well-formed instruction (r10 is never written).
fn op() -> impl Strategy<Value = Op> {
    let dst = 0u8..10;
    prop_oneof![
        4 => (any::<bool>(), alu_op(), dst.clone(), src())
            .prop_map(|(wide, op, dst, src)| Op::Alu { wide, op, dst, src }),
        1 => (any::<bool>(), dst.clone()).prop_map(|(wide, dst)| Op::Neg { wide, dst }),
        1 => (prop::sample::select(vec![16u8, 32, 64]), dst.clone())
            .prop_map(|(bits, dst)| Op::End { kind: EndKind::Be, bits, dst }),
        3 => (any::<bool>(), cond(), 0u8..11, src(), -6i16..8)
            .prop_map(|(wide, cond, dst, src, off)| Op::Jmp { wide, cond, dst, src, off }),
        1 => (-4i32..8).prop_map(|off| Op::Ja { off }),
        1 => Just(Op::Call { helper: 5 }),
        1 => (-8i32..8).prop_map(|off| Op::CallLocal { off }),
        1 => (0u8..11).prop_map(|reg| Op::CallX { reg }),
        2 => Just(Op::Exit),
        1 => (dst.clone(), any::<u64>()).prop_map(|(dst, imm)| Op::Lddw { dst, kind: 0, imm }),
        3 => (size(), any::<bool>(), dst.clone(), 0u8..11, mem_off()).prop_map(
            |(size, signed, dst, src, off)| Op::Ldx { size, signed: signed && size < 8, dst, src, off }
        ),
        2 => (size(), 0u8..11, mem_off(), -5i32..5)
            .prop_map(|(size, dst, off, imm)| Op::St { size, dst, off, imm }),
        2 => (size(), 0u8..11, 0u8..11, mem_off())
            .prop_map(|(size, dst, src, off)| Op::Stx { size, dst, src, off }),
        1 => (
            prop::sample::select(vec![4u8, 8]),
            prop::sample::select(vec![
                (AtomicOp::Add, false),
                (AtomicOp::Or, true),
                (AtomicOp::Xchg, true),
                (AtomicOp::CmpXchg, true),
            ]),
            0u8..11,
            0u8..10,
            mem_off(),
        )
            .prop_map(|(size, (op, fetch), dst, src, off)| Op::Atomic { size, op, fetch, dst, src, off }),
    ]
}

/// Encodes `ops` after a prologue that initialises r0, r3..r9 and the top
/// 64 stack bytes (so that more programs get past their first instructions),
/// with a final `exit`.
fn with_prologue(ops: &[Op]) -> Vec<Insn> {
    let mut insns = Vec::new();
    for r in [0u8, 3, 4, 5, 6, 7, 8, 9] {
        insns.extend(encode(&Op::Alu {
            wide: true,
            op: AluOp::Mov,
            dst: r,
            src: Src::Imm(i32::from(r) * 3),
        }));
    }
    for k in 1..=8i16 {
        insns.extend(encode(&Op::St {
            size: 8,
            dst: 10,
            off: -8 * k,
            imm: 0,
        }));
    }
    insns.extend(ops.iter().flat_map(encode));
    insns.extend(encode(&Op::Exit));
    insns
}

fn check_annotations(p: &Program) -> Result<(), TestCaseError> {
    for (pc, op) in p.ops.iter().enumerate() {
        prop_assert_eq!(is_mem(op), p.access[pc].is_some());
        // Unreachable `callx` instructions may stay unresolved.
        if p.callx[pc].is_some() {
            let is_callx = matches!(op, Some(Op::CallX { .. }));
            prop_assert!(is_callx, "callx annotation at {}", pc);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn random_slots_never_panic(insns in prop::collection::vec(slot(), 1..40), ctx in any::<bool>()) {
        let env = if ctx { ctx_env() } else { mem_env() };
        if let Ok(p) = verify(&insns, &env) {
            check_annotations(&p)?;
        }
    }

    #[test]
    fn random_well_formed_programs_never_panic(
        ops in prop::collection::vec(op(), 1..40),
        ctx in any::<bool>(),
    ) {
        let env = if ctx { ctx_env() } else { mem_env() };
        if let Ok(p) = verify(&with_prologue(&ops), &env) {
            check_annotations(&p)?;
        }
    }
}

/// The well-formed generator mostly gets past the structural checks, so the
/// property above exercises the abstract interpretation.
#[test]
fn well_formed_programs_reach_the_analysis() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strat = prop::collection::vec(op(), 1..40);
    let (mut structural, mut total, mut accepted) = (0, 0, 0);
    for _ in 0..120 {
        let ops = strat.new_tree(&mut runner).expect("tree").current();
        total += 1;
        match verify(&with_prologue(&ops), &mem_env()) {
            Ok(_) => accepted += 1,
            Err(e) => {
                let s = matches!(
                    e.reason(),
                    Some(
                        Reason::Decode(_)
                            | Reason::JumpOutOfRange { .. }
                            | Reason::JumpIntoLddw { .. }
                            | Reason::FallsOffEnd
                    )
                );
                structural += usize::from(s);
            }
        }
    }
    assert!(
        structural * 3 < total * 2,
        "{structural} of {total} structural"
    );
    assert!(
        accepted * 20 >= total,
        "only {accepted} of {total} accepted"
    );
}
