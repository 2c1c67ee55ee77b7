//! Criterion benchmarks of the eBPF engine: each workload on the interpreter,
//! the JIT and as native Rust, plus JIT compile and verify times.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use datapath::ebpf::bench::workloads;
use datapath::ebpf::jit::JitScratch;
use datapath::ebpf::{asm, interp, jit, testgen, verifier, ProgEnv, RunInput};

fn engines(c: &mut Criterion) {
    let env = ProgEnv::mem();
    for w in workloads() {
        let insns = asm::assemble(w.asm).expect("workload assembles");
        let prog = verifier::verify(&insns, &env).expect("workload verifies");
        let compiled = jit::compile(&prog).expect("workload compiles");
        let mut mem = w.mem.clone();
        let mut g = c.benchmark_group(w.name);
        g.bench_function("interp", |b| {
            b.iter(|| black_box(interp::run(&prog, RunInput::mem(&mut mem)).ok()))
        });
        let mut scratch = JitScratch::new();
        g.bench_function("jit", |b| {
            b.iter(|| {
                black_box(
                    compiled
                        .run_with(&mut scratch, RunInput::mem(&mut mem))
                        .ok(),
                )
            })
        });
        g.bench_function("native", |b| b.iter(|| black_box((w.native)(&mut mem))));
        g.finish();
    }
}

fn toolchain(c: &mut Criterion) {
    let env = ProgEnv::mem();
    let p100 = testgen::sized_verified(100, &env).expect("100-insn program");
    let v100 = verifier::verify(&p100, &env).expect("verifies");
    c.bench_function("jit-compile-100", |b| {
        b.iter(|| black_box(jit::compile(&v100).ok()))
    });
    let p4k = testgen::sized_verified(4096, &env).expect("4096-insn program");
    c.bench_function("verify-4096", |b| {
        b.iter(|| black_box(verifier::verify(&p4k, &env).ok()))
    });
}

criterion_group!(benches, engines, toolchain);
criterion_main!(benches);
