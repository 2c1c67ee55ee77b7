//! Compile cost. `typical_flows_are_small` runs always; the timing run is
//! ignored by default (run it in release:
//! `cargo test --release -p datapath flow::compile::tests::perf -- --ignored --nocapture`).

use std::time::Instant;

use super::*;
use crate::ebpf::engine::Engine;
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
    // By kind of flow (one thread): compile + verify + JIT.
    for kind in 0..4 {
        let some: Vec<FlowSpec> = flows
            .iter()
            .skip(kind)
            .step_by(4)
            .take(5000)
            .cloned()
            .collect();
        let t = Instant::now();
        let progs: Vec<Program> = some
            .iter()
            .map(|f| {
                let insns = compile_flow(f, &CompileOptions::default()).expect("compiles");
                verifier::verify(&insns, &env).expect("verifies")
            })
            .collect();
        let refs: Vec<&Program> = progs.iter().collect();
        for c in refs.chunks(512) {
            std::hint::black_box(jit::compile_many(c).expect("jit"));
        }
        eprintln!(
            "kind {kind} ({} slots): {:.2} us per flow",
            progs[0].insns.len(),
            t.elapsed().as_secs_f64() * 1e6 / some.len() as f64
        );
    }
    // The whole table on all cores, as the switch loads it.
    let t = Instant::now();
    let jits = load_flows(&flows, &CompileOptions::default(), &env, Engine::Jit).expect("loads");
    let total = t.elapsed();
    eprintln!(
        "{n} flows compiled + verified + JITed in {:.3} s on {} threads",
        total.as_secs_f64(),
        rayon::current_num_threads()
    );
    assert_eq!(jits.len(), n);
}

#[test]
fn load_flows_keeps_order_and_names_the_failing_flow() {
    let flows = typical_flows(1200);
    let env = env();
    let loaded = load_flows(&flows, &CompileOptions::default(), &env, Engine::Jit).expect("loads");
    let interp =
        load_flows(&flows, &CompileOptions::default(), &env, Engine::Interp).expect("loads");
    assert_eq!(loaded.len(), flows.len());
    // Flow i matches the key built for it, and no other flow of its kind.
    for i in [0usize, 1, 2, 3, 513, 1100, 1199] {
        let mut k = FlowKey::default();
        let x = i as u64;
        k.set_eth_type(0x0800);
        match i % 4 {
            0 => {
                k.set_ip_proto(6);
                k.set_nw_src(0x0a00_0000 | x as u32);
                k.set_nw_dst(0x0a80_0000 | x as u32);
                k.set_tp_src(1024 + (x % 60000) as u16);
                k.set_tp_dst(80);
            }
            1 => k.set_nw_dst((x << 8) as u32 | 7),
            2 => {
                k.set_in_port(1 + (x % 8) as u32);
                k.set_eth_dst(0x0200_0000_0000 | x);
            }
            _ => {
                k.set_ip_proto(17);
                k.set_nw_dst(0x0b00_0000 | x as u32);
                k.set_tp_dst(1050);
            }
        }
        let frame = crate::packet::build::tcp4(
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            [10, 0, 0, 1].into(),
            [10, 0, 0, 2].into(),
            1,
            2,
            0,
            b"",
        );
        for (j, (a, b)) in loaded
            .iter()
            .zip(&interp)
            .enumerate()
            .skip(i.saturating_sub(8))
            .take(16)
        {
            let ctx = FlowCtx::new(&k, 14, 34, frame.len() as u32, 0);
            let run = |l: &crate::ebpf::engine::Loaded| {
                let mut f = frame.clone();
                let mut c = ctx.clone();
                l.run(RunInput {
                    pkt: &mut f,
                    ctx: &mut c.bytes,
                })
                .expect("runs")
            };
            let (ra, rb) = (run(a), run(b));
            assert_eq!(ra, rb);
            assert_eq!(
                ra != ret::NOMATCH,
                j == i,
                "flow {j} on the key of flow {i}"
            );
        }
    }
    // A failing flow is named.
    let mut bad = typical_flows(700);
    bad[650].actions.push(Action::SetField(vec![
        crate::flow::spec::SetField::VlanPcp(9),
    ]));
    let e = load_flows(&bad, &CompileOptions::default(), &env, Engine::Jit)
        .err()
        .expect("fails");
    assert!(
        e.to_string().starts_with("flow f650: set_field vlan_pcp"),
        "{e}"
    );
}
