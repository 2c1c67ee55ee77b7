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
fn generated_programs_with_maps_agree_on_both_engines() {
    // One environment (maps cleared before each run); the engines must
    // also leave the same map contents.
    let env = testgen::map_env();
    const N: u64 = 5_000;
    let (mut ok, mut errors, mut rejected) = (0u64, 0u64, 0u64);
    let mut first_rejection = None;
    let mut touched = 0u64;
    for seed in 0..N {
        let mut rng = SplitMix(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed);
        let pkt = testgen::packet(&mut rng);
        let prog = testgen::generate_with_maps(&mut rng, pkt.len());
        match run_both(&prog, &pkt, &env) {
            DiffOutcome::Agree(r) => {
                if r.is_ok() {
                    ok += 1;
                } else {
                    errors += 1;
                }
                // What the JIT left (the interpreter's was equal).
                let snap = env.maps.snapshot();
                let array_used = snap[0].iter().any(|(_, v)| v.iter().any(|&b| b != 0));
                if array_used || !snap[1].is_empty() {
                    touched += 1;
                }
            }
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
    eprintln!("{N} map cases: {ok} ran to exit, {errors} errors, {rejected} rejected, {touched} changed a map");
    assert!(
        rejected * 100 <= N,
        "{rejected} of {N} generated programs were rejected; first: {first_rejection:?}"
    );
    assert!(ok > N / 2, "only {ok} programs ran to exit");
    assert!(touched > N / 4, "only {touched} programs changed a map");
}

/// Opcode bytes that decode, for biasing random slots towards valid programs.
fn valid_opcodes() -> Vec<u8> {
    (0..=255u8)
        .filter(|&op| {
            [
                (1, 2, 0, 0),
                (1, 0, 0, 16),
                (1, 0, 1, 0),
                (1, 2, 8, 0),
                (0, 0, 0, 0),
            ]
            .iter()
            .any(|&(d, s, o, i)| {
                insn::decode(&[insn::Insn::new(op, d, s, o, i), insn::Insn::default()], 0).is_ok()
            })
        })
        .collect()
}

#[test]
fn random_slots_never_crash_either_engine() {
    let env = ProgEnv::mem();
    let ops = valid_opcodes();
    let mut rng = SplitMix(7);
    let (mut accepted, mut ran_ok) = (0, 0);
    const N: usize = 50_000;
    for _ in 0..N {
        // A prologue that gives r0 and r2..r9 values, then random slots, then exit.
        let mut insns: Vec<insn::Insn> = [0u8, 2, 3, 4, 5, 6, 7, 8, 9]
            .iter()
            .map(|&r| insn::Insn::new(0xb7, r, 0, 0, rng.next_u64() as i32 % 64))
            .collect();
        let body = 1 + rng.below(6) as usize;
        for k in 0..body {
            let op = *rng.pick(&ops);
            let class = op & 7;
            let mut dst = rng.below(11) as u8;
            let mut src = rng.below(11) as u8;
            let mut off = rng.below(24) as i16 - 12;
            let mut imm = match rng.below(4) {
                0 => rng.next_u64() as i32,
                1 => 16 << rng.below(3),
                _ => rng.below(64) as i32 - 32,
            };
            // Steer memory operands to real bases, jumps to in-range targets,
            // calls to the helper that exists, ALU away from the pointers.
            let base = if rng.chance(50) { 10 } else { 1 };
            let mem_off = if base == 10 {
                -8 * (1 + rng.below(8) as i16)
            } else {
                rng.below(16) as i16
            };
            match class {
                1 => {
                    src = base;
                    off = mem_off;
                }
                2 | 3 => {
                    dst = base;
                    off = mem_off;
                }
                5 | 6 if op & 0xf0 == 0x80 => imm = 5,
                5 | 6 => off = rng.below((body - k) as u64) as i16,
                4 | 7 if dst == 1 || dst == 10 => dst = 0,
                _ => {}
            }
            // Clear the fields the encoding requires to be zero for this opcode.
            let mut slot = insn::Insn::new(op, dst, src, off, imm);
            for _ in 0..4 {
                match insn::decode(&[slot, insn::Insn::default()], 0) {
                    Err(insn::CodecError::BadField { field: "src", .. }) => slot.src = 0,
                    Err(insn::CodecError::BadField { field: "imm", .. }) => slot.imm = 0,
                    Err(insn::CodecError::BadField {
                        field: "offset", ..
                    }) => slot.off = 0,
                    Err(insn::CodecError::BadField { field: "dst", .. }) => slot.dst = 0,
                    _ => break,
                }
            }
            insns.push(slot);
        }
        insns.push(insn::Insn::new(0x95, 0, 0, 0, 0));
        let pkt: Vec<u8> = (0..rng.below(64)).map(|_| rng.next_u64() as u8).collect();
        match run_both(&insns, &pkt, &env) {
            DiffOutcome::Rejected(e) => {
                if std::env::var("SHOW_REJECT").is_ok() && rng.chance(1) {
                    eprintln!("{e}");
                }
            }
            DiffOutcome::Agree(r) => {
                accepted += 1;
                ran_ok += usize::from(r.is_ok());
            }
            other => panic!("engines disagree on {insns:?}: {other:?}"),
        }
    }
    eprintln!("random slots: {accepted} of {N} accepted by the verifier, {ran_ok} ran to exit");
    assert!(
        accepted > N / 20,
        "only {accepted} of {N} random programs were accepted"
    );
}
