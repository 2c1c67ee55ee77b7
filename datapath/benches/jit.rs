//! JIT benchmarks: compile time of a 100-instruction program, and ns/run of
//! the interpreter, the JIT and a hand-written Rust function doing the same
//! work, for three programs: a packet-header match like the flow compiler
//! emits, a bounded loop over a 1,500-byte buffer, and prime.data.
//!
//! `cargo bench -p datapath --bench jit`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use datapath::ebpf::asm::assemble;
use datapath::ebpf::conformance;
use datapath::ebpf::jit::{self, JitScratch};
use datapath::ebpf::verifier::verify;
use datapath::ebpf::{interp, ProgEnv, Program, RunInput};

/// Ethernet / IPv4 / TCP: ethertype 0x0800, protocol 6, destination
/// 10.0.0.1, destination port 80 → 1, else 0.
const HEADER_MATCH: &str = "
    mov %r0, 0
    jlt %r2, 54, miss
    ldxh %r3, [%r1+12]
    jne %r3, 0x0008, miss
    ldxb %r3, [%r1+23]
    jne %r3, 6, miss
    ldxw %r3, [%r1+30]
    jne %r3, 0x0100000a, miss
    ldxh %r3, [%r1+36]
    be16 %r3
    jne %r3, 80, miss
    mov %r0, 1
miss:
    exit
";

fn native_header_match(p: &[u8]) -> u64 {
    if p.len() < 54 {
        return 0;
    }
    let ok = p[12..14] == [0x08, 0x00]
        && p[23] == 6
        && p[30..34] == [10, 0, 0, 1]
        && u16::from_be_bytes([p[36], p[37]]) == 80;
    u64::from(ok)
}

/// h = h * 31 + byte over the whole buffer.
const LOOP_1500: &str = "
    mov %r0, 0
    mov %r3, 0
    jge %r3, %r2, exit
loop:
    mov %r4, %r1
    add %r4, %r3
    ldxb %r5, [%r4+0]
    mul %r0, 31
    add %r0, %r5
    add %r3, 1
    jlt %r3, %r2, loop
    exit
";

fn native_loop(p: &[u8]) -> u64 {
    p.iter()
        .fold(0u64, |h, &b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
}

/// prime.data's C source, for n = 67 (kept as `%`, like the C).
#[allow(clippy::manual_is_multiple_of)]
fn native_prime(n: u64) -> u64 {
    let mut i = 2;
    while i < n {
        if n % i == 0 {
            return 0;
        }
        i += 1;
    }
    1
}

/// About 100 instructions of the kind the flow compiler emits: loads,
/// compares, ALU.
fn hundred_insns() -> String {
    let mut s = String::from("mov %r0, 0\njlt %r2, 64, out\n");
    for i in 0..24 {
        s.push_str(&format!(
            "ldxb %r3, [%r1+{i}]\nadd %r0, %r3\njeq %r3, {}, out\nxor %r0, {}\n",
            i + 1,
            i * 7
        ));
    }
    s.push_str("out:\nexit\n");
    s
}

fn program(src: &str) -> Program {
    let insns = assemble(src).expect("assembles");
    verify(&insns, &ProgEnv::mem()).expect("verifies")
}

fn packet() -> Vec<u8> {
    let mut p = vec![0u8; 64];
    p[12] = 0x08;
    p[23] = 6;
    p[30..34].copy_from_slice(&[10, 0, 0, 1]);
    p[36..38].copy_from_slice(&80u16.to_be_bytes());
    p
}

fn bench_program(
    c: &mut Criterion,
    name: &str,
    prog: &Program,
    mem: &[u8],
    native: &dyn Fn(&[u8]) -> u64,
) {
    let jp = jit::compile(prog).expect("compiles");
    let mut buf = mem.to_vec();
    let want = native(&buf);
    assert_eq!(interp::run(prog, RunInput::mem(&mut buf)), Ok(want));
    assert_eq!(jp.run(RunInput::mem(&mut buf)), Ok(want));
    let mut g = c.benchmark_group(name);
    g.bench_function("interp", |b| {
        b.iter(|| interp::run(black_box(prog), RunInput::mem(black_box(&mut buf))))
    });
    let mut scratch = JitScratch::new();
    g.bench_function("jit", |b| {
        b.iter(|| jp.run_with(&mut scratch, RunInput::mem(black_box(&mut buf))))
    });
    g.bench_function("native", |b| b.iter(|| native(black_box(&buf))));
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_program(
        c,
        "header_match",
        &program(HEADER_MATCH),
        &packet(),
        &native_header_match,
    );
    let buf: Vec<u8> = (0..1500u32).map(|i| (i * 7 + 3) as u8).collect();
    bench_program(c, "loop_1500", &program(LOOP_1500), &buf, &native_loop);
    let prime = conformance::find_suite().map(|d| d.join("prime.data"));
    match prime.map(|p| conformance::load(&p)) {
        Some(Ok(tc)) => {
            let prog = verify(&tc.insns, &ProgEnv::mem()).expect("verifies");
            bench_program(c, "prime", &prog, &tc.mem, &|_| native_prime(black_box(67)));
        }
        _ => eprintln!("prime: skipped, bpf_conformance suite not found"),
    }

    let src = hundred_insns();
    let prog = program(&src);
    let env: Arc<ProgEnv> = prog.env.clone();
    let insns = prog.insns.clone();
    println!("compile: {} instructions", prog.insns.len());
    let mut g = c.benchmark_group("compile_100");
    g.bench_function("jit_compile", |b| b.iter(|| jit::compile(black_box(&prog))));
    g.bench_function("verify", |b| b.iter(|| verify(black_box(&insns), &env)));
    g.finish();
}

criterion_group!(jit_benches, benches);
criterion_main!(jit_benches);
