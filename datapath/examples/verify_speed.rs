//! Measures how long the verifier takes on 4,096-instruction programs.
//!
//! `cargo run --release -p datapath --example verify_speed`
//!
//! Programs: straight-line packet parsing with forward branches, stack
//! spills and fills (the shape the flow compiler emits), and the same with a
//! bounded loop in every block.

use std::time::Instant;

use datapath::ebpf::asm::assemble;
use datapath::ebpf::verifier::verify;
use datapath::ebpf::{testgen, ProgEnv};

/// A program of about `n` slots built from a 16-instruction block.
fn parser(n: usize, with_loops: bool) -> String {
    let mut src = String::from("mov %r0, 0\nmov %r6, %r1\n");
    let mut slots = 2;
    let mut j = 0;
    while slots + 20 < n {
        let k = j % 60;
        let s = 8 * (j % 32 + 1);
        src.push_str(&format!(
            "ldxb %r3, [%r6+{k}]\nadd %r3, 7\nand %r3, 0xff\nstxdw [%r10-{s}], %r3\n\
             ldxdw %r4, [%r10-{s}]\njgt %r4, 100, +2\nadd %r0, %r4\nja +1\nsub %r0, 1\n\
             mov %r5, %r10\nsub %r5, 16\nstw [%r5], 1\nlsh %r4, 2\nor %r0, %r4\n"
        ));
        slots += 14;
        if with_loops {
            src.push_str(&format!(
                "mov %r7, 0\nl{j}:\nadd %r0, %r7\nadd %r7, 1\njlt %r7, 8, l{j}\n"
            ));
            slots += 4;
        } else {
            src.push_str("xor %r0, 3\nmov %r7, %r0\nrsh %r7, 1\nadd %r0, %r7\n");
            slots += 4;
        }
        j += 1;
    }
    while slots < n - 1 {
        src.push_str("add %r0, 1\n");
        slots += 1;
    }
    src.push_str("exit\n");
    src
}

/// CPU time this thread has run, in nanoseconds (from
/// /proc/thread-self/schedstat), so that other load on the machine does not
/// inflate the figures.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn measure(name: &str, src: &str) {
    measure_insns(name, &assemble(src).expect("assemble"));
}

fn measure_insns(name: &str, insns: &[datapath::ebpf::Insn]) {
    let env = ProgEnv::mem();
    if let Err(e) = verify(insns, &env) {
        println!("{name}: rejected: {e}");
        return;
    }
    let runs = 500u32;
    let (start, cpu0) = (Instant::now(), cpu_ns());
    for _ in 0..runs {
        std::hint::black_box(verify(std::hint::black_box(insns), &env).is_ok());
    }
    let wall = start.elapsed() / runs;
    let cpu = match (cpu0, cpu_ns()) {
        (Some(a), Some(b)) => format!("{:.1} µs CPU", (b - a) as f64 / f64::from(runs) / 1e3),
        _ => "CPU time unavailable".into(),
    };
    println!(
        "{name}: {} insns verified in {cpu} ({:.1} µs wall)",
        insns.len(),
        wall.as_secs_f64() * 1e6
    );
}

fn main() {
    measure("straight-line parser", &parser(4096, false));
    measure("parser with a loop per block", &parser(4096, true));
    match testgen::sized_verified(4096, &ProgEnv::mem()) {
        Some(p) => measure_insns("testgen program (the criterion bench's)", &p),
        None => println!("testgen: no 4096-slot program verified"),
    }
    // How many generated programs the verifier accepts.
    let env = ProgEnv::mem();
    let (mut ok, total) = (0, 2000u64);
    for seed in 0..total {
        let mut e = testgen::SplitMix(seed);
        let p = testgen::generate(&mut e, 64);
        match verify(&p, &env) {
            Ok(_) => ok += 1,
            Err(err) if seed < 4000 && ok + 5 > seed => eprintln!("seed {seed}: {err}"),
            Err(_) => {}
        }
    }
    println!("testgen::generate: {ok}/{total} verified");
}
