//! Differential tests: generated, verified programs run on the interpreter
//! (the reference) and on the JIT, which must agree on r0, on errors and on
//! memory.

use datapath::ebpf::diff::{run_both, DiffOutcome};
use datapath::ebpf::testgen::{self, Entropy, SplitMix};
use datapath::ebpf::{insn, ProgEnv};

const CASES: u64 = 20_000;

#[test]
fn generated_programs_agree_on_both_engines() {
    let env = ProgEnv::mem();
    let (mut ok, mut errors, mut rejected) = (0u64, 0u64, 0u64);
    let mut first_rejection = None;
    for seed in 0..CASES {
        let mut rng = SplitMix(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let pkt = testgen::packet(&mut rng);
        let prog = testgen::generate(&mut rng, pkt.len());
        match run_both(&prog, &pkt, &env) {
            DiffOutcome::Agree(Ok(_)) => ok += 1,
            DiffOutcome::Agree(Err(_)) => errors += 1,
            DiffOutcome::Rejected(e) => {
                rejected += 1;
                first_rejection.get_or_insert((seed, e.to_string()));
            }
            other => panic!(
                "seed {seed}: engines disagree: {other:?}\npacket: {pkt:02x?}\n{}",
                datapath::ebpf::disasm::disassemble(&prog)
            ),
        }
    }
    eprintln!("{CASES} cases: {ok} ran to exit, {errors} stopped with a run-time error, {rejected} rejected");
    // The generator only builds programs the verifier should accept: a high
    // rejection rate means the test has stopped testing the engines.
    assert!(
        rejected * 100 <= CASES,
        "{rejected} of {CASES} generated programs were rejected; first: {first_rejection:?}"
    );
    assert!(ok > CASES / 2, "only {ok} programs ran to exit");
    assert!(
        errors > 0,
        "no program hit a run-time error: the guards are untested"
    );
}

#[test]
fn random_slots_never_crash_either_engine() {
    let env = ProgEnv::mem();
    let mut rng = SplitMix(7);
    let mut accepted = 0;
    for _ in 0..50_000 {
        let n = 1 + rng.below(12) as usize;
        let bytes: Vec<u8> = (0..n * 8)
            .map(|i| {
                let b = rng.next_u64() as u8;
                // Keep most register fields within r0..r10 so more programs get past decoding.
                if i % 8 == 1 {
                    (b & 0x77) % 0xab
                } else {
                    b
                }
            })
            .collect();
        let insns = insn::from_bytes(&bytes).unwrap();
        let pkt: Vec<u8> = (0..rng.below(64)).map(|_| rng.next_u64() as u8).collect();
        match run_both(&insns, &pkt, &env) {
            DiffOutcome::Rejected(_) => {}
            DiffOutcome::Agree(_) => accepted += 1,
            other => panic!("engines disagree on {insns:?}: {other:?}"),
        }
    }
    eprintln!("random slots: {accepted} of 50000 accepted by the verifier");
}
