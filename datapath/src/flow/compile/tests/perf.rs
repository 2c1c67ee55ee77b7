//! Compile cost. `typical_flows_are_small` runs always; the timing run is
//! ignored by default (run it in release:
//! `cargo test --release -p datapath flow::compile::tests::perf -- --ignored --nocapture`).

use std::time::Instant;

use rayon::prelude::*;

use super::*;
use crate::flow::key::*;
use crate::flow::spec::{range_to_prefixes, SetField};

/// A table's worth of flows of four common kinds.
pub fn typical_flows(n: usize) -> Vec<FlowSpec> {
    (0..n)
        .map(|i| {
            let x = i as u64;
            let mut m = Match::any();
            m.require::<2>(OFF_ETH_TYPE, 0x0800, 0xffff);
            let (matches, actions) = match i % 4 {
                0 => {
                    m.require::<1>(OFF_IP_PROTO, 6, 0xff);
                    m.require::<4>(OFF_NW_SRC, 0x0a00_0000 | x, u64::MAX);
                    m.require::<4>(OFF_NW_DST, 0x0a80_0000 | x, u64::MAX);
                    m.require::<2>(OFF_TP_SRC, 1024 + x % 60000, u64::MAX);
                    m.require::<2>(OFF_TP_DST, 80, u64::MAX);
                    (vec![m], vec![Action::Output(vec![2])])
                }
                1 => {
                    m.require::<4>(OFF_NW_DST, x << 8, 0xffff_ff00);
                    (
                        vec![m],
                        vec![
                            Action::SetField(vec![
                                SetField::EthDst(0x0200_0000_0000 | x),
                                SetField::Ipv4Dst(0x0a00_0002),
                            ]),
                            Action::DecTtl,
                            Action::Output(vec![3]),
                        ],
                    )
                }
                2 => {
                    m = Match::any();
                    m.require::<4>(OFF_IN_PORT, 1 + x % 8, u64::MAX);
                    m.require::<8>(OFF_ETH_DST, 0x0200_0000_0000 | x, 0xffff_ffff_ffff);
                    (vec![m], vec![Action::Output(vec![1 + (i as u32 % 8)])])
                }
                _ => {
                    m.require::<1>(OFF_IP_PROTO, 17, 0xff);
                    m.require::<4>(OFF_NW_DST, 0x0b00_0000 | x, u64::MAX);
                    let alts = range_to_prefixes(1000, 1100, 16)
                        .into_iter()
                        .map(|(v, mask)| {
                            let mut a = m;
                            a.require::<2>(OFF_TP_DST, v, mask);
                            a
                        })
                        .collect();
                    (alts, vec![Action::Meter(1), Action::Output(vec![4])])
                }
            };
            FlowSpec {
                name: format!("f{i}"),
                table: 0,
                priority: 1,
                matches,
                filter: None,
                actions,
                idle_timeout: 0,
                hard_timeout: 0,
            }
        })
        .collect()
}

#[test]
fn typical_flows_are_small() {
    let progs: Vec<Vec<Insn>> = typical_flows(4)
        .iter()
        .map(|f| {
            let insns = compile_flow(f, &CompileOptions::default()).expect("compiles");
            verify(&insns);
            insns
        })
        .collect();
    let sizes: Vec<usize> = progs.iter().map(Vec::len).collect();
    if std::env::var_os("COMPILE_DUMP").is_some() {
        for p in &progs {
            eprintln!("{}\n", crate::ebpf::disasm::disassemble(p));
        }
    }
    // 5-tuple + output; /24 + set_field + dec_ttl + output; in_port +
    // MAC + output; 7 port-range alternatives + meter + output.
    assert!(sizes[0] <= 20, "{sizes:?}");
    assert!(sizes[1] <= 140, "{sizes:?}");
    assert!(sizes[2] <= 16, "{sizes:?}");
    assert!(sizes[3] <= 50, "{sizes:?}");
}

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn compile_verify_jit_100k_flows() {
    let n = std::env::var("COMPILE_PERF_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let flows = typical_flows(n);
    let env = env();
    // Per flow, one thread.
    let t = Instant::now();
    let mut slots = 0;
    for f in flows.iter().take(20_000) {
        let insns = compile_flow(f, &CompileOptions::default()).expect("compiles");
        slots += insns.len();
        std::hint::black_box(insns);
    }
    let per_compile = t.elapsed().as_secs_f64() / 20_000.0;
    let t = Instant::now();
    for f in flows.iter().take(20_000) {
        let insns = compile_flow(f, &CompileOptions::default()).expect("compiles");
        std::hint::black_box(verifier::verify(&insns, &env).expect("verifies"));
    }
    let per_verify = t.elapsed().as_secs_f64() / 20_000.0 - per_compile;
    let progs: Vec<Program> = flows
        .iter()
        .take(20_000)
        .map(|f| {
            let insns = compile_flow(f, &CompileOptions::default()).expect("compiles");
            verifier::verify(&insns, &env).expect("verifies")
        })
        .collect();
    let t = Instant::now();
    for chunk in progs.chunks(1000) {
        let refs: Vec<&Program> = chunk.iter().collect();
        std::hint::black_box(jit::compile_many(&refs).expect("jit"));
    }
    let per_jit = t.elapsed().as_secs_f64() / 20_000.0;
    eprintln!(
        "per flow (1 thread): compile {:.2} us, verify {:.2} us, JIT (batches of 1000) {:.2} us; {:.1} slots on average",
        per_compile * 1e6,
        per_verify * 1e6,
        per_jit * 1e6,
        slots as f64 / 20_000.0
    );
    // The whole table on all cores, as the switch loads it.
    let t = Instant::now();
    let jits: Vec<JitProgram> = flows
        .par_chunks(1000)
        .flat_map_iter(|chunk| {
            let progs: Vec<Program> = chunk
                .iter()
                .map(|f| {
                    let insns = compile_flow(f, &CompileOptions::default()).expect("compiles");
                    verifier::verify(&insns, &env).expect("verifies")
                })
                .collect();
            let refs: Vec<&Program> = progs.iter().collect();
            jit::compile_many(&refs).expect("jit")
        })
        .collect();
    let total = t.elapsed();
    eprintln!(
        "{n} flows compiled + verified + JITed in {:.3} s on {} threads",
        total.as_secs_f64(),
        rayon::current_num_threads()
    );
    assert_eq!(jits.len(), n);
}
