//! Random slot sequences never panic the verifier.

use super::*;

use proptest::prelude::*;

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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn random_slots_never_panic(insns in prop::collection::vec(slot(), 1..40), ctx in any::<bool>()) {
        let env = if ctx { ctx_env() } else { mem_env() };
        if let Ok(p) = verify(&insns, &env) {
            for (pc, op) in p.ops.iter().enumerate() {
                prop_assert_eq!(is_mem(op), p.access[pc].is_some());
            }
        }
    }
}
