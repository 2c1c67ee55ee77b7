//! `flowswitch bpf bench`: interpreter, JIT and native Rust side by side in one
//! run, plus compile and verify times.

use std::hint::black_box;
use std::process::ExitCode;

use datapath::ebpf::bench::{ns_per_call, workloads};
use datapath::ebpf::jit::JitScratch;
use datapath::ebpf::testgen;
use datapath::ebpf::{asm, interp, jit, verifier, ProgEnv, RunInput};

use super::BpfError;

/// Runs every workload on both engines and natively and prints a table.
pub fn run() -> Result<ExitCode, BpfError> {
    let env = ProgEnv::mem();
    println!(
        "{:<14} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "program", "interp ns", "jit ns", "native ns", "jit speedup", "jit/native"
    );
    let mut ok = true;
    for w in workloads() {
        let insns =
            asm::assemble(w.asm).map_err(|e| BpfError::Suite(format!("{}: {e}", w.name)))?;
        let prog = verifier::verify(&insns, &env)
            .map_err(|e| BpfError::Suite(format!("{}: {e}", w.name)))?;
        let compiled =
            jit::compile(&prog).map_err(|e| BpfError::Suite(format!("{}: {e}", w.name)))?;
        let mut mem = w.mem.clone();
        let want = (w.native)(&mut mem);
        let got_i = interp::run(&prog, RunInput::mem(&mut mem))?;
        let got_j = compiled.run(RunInput::mem(&mut mem))?;
        if got_i != want || got_j != want {
            eprintln!(
                "{}: results differ: native {want:#x}, interp {got_i:#x}, jit {got_j:#x}",
                w.name
            );
            ok = false;
        }
        let t_i = ns_per_call(|| {
            black_box(interp::run(&prog, RunInput::mem(&mut mem)).ok());
        });
        // The datapath's way to run: with a worker's reusable scratch.
        let mut scratch = JitScratch::new();
        let t_j = ns_per_call(|| {
            black_box(
                compiled
                    .run_with(&mut scratch, RunInput::mem(&mut mem))
                    .ok(),
            );
        });
        let t_n = ns_per_call(|| {
            black_box((w.native)(&mut mem));
        });
        println!(
            "{:<14} {:>12.1} {:>12.1} {:>12.1} {:>11.1}x {:>11.2}x",
            w.name,
            t_i,
            t_j,
            t_n,
            t_i / t_j,
            t_j / t_n
        );
    }

    // Compile time of a ~100-instruction program, and verify time of ~4,096.
    let p100 = sized_program(100)?;
    let v100 = verifier::verify(&p100, &env).map_err(|e| BpfError::Suite(e.to_string()))?;
    let t_compile = ns_per_call(|| {
        black_box(jit::compile(&v100).ok());
    });
    let p4k = sized_program(4096)?;
    let t_verify = ns_per_call(|| {
        black_box(verifier::verify(&p4k, &env).ok());
    });
    println!(
        "jit compile: {:.1} us for {} instructions",
        t_compile / 1e3,
        p100.len()
    );
    println!(
        "verify:      {:.1} us for {} instructions",
        t_verify / 1e3,
        p4k.len()
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn sized_program(n: usize) -> Result<Vec<datapath::ebpf::Insn>, BpfError> {
    testgen::sized_verified(n, &ProgEnv::mem())
        .ok_or_else(|| BpfError::Suite(format!("no verifiable {n}-instruction program generated")))
}
