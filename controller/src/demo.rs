//! `flowswitch demo`: runs anywhere, needs no root.
//!
//! For now it shows the engine every flow runs on: a flow-style packet match
//! is assembled, verified and JIT-compiled, then classifies a few frames on
//! both engines, and the per-packet cost is measured.

use std::hint::black_box;
use std::process::ExitCode;

use datapath::ebpf::bench::{ns_per_call, tcp_frame, HEADER_MATCH};
use datapath::ebpf::jit::JitScratch;
use datapath::ebpf::{asm, disasm, interp, jit, verifier, ProgEnv, RunInput};

use crate::bpf::BpfError;

fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let web = tcp_frame();
    let mut ssh = web.clone();
    ssh[36..38].copy_from_slice(&22u16.to_be_bytes());
    let mut other_host = web.clone();
    other_host[33] = 9;
    let mut arp = web.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    let runt = web[..20].to_vec();
    vec![
        ("tcp 10.0.0.1:40000 -> 10.0.0.2:80", web),
        ("tcp 10.0.0.1:40000 -> 10.0.0.2:22", ssh),
        ("tcp 10.0.0.1:40000 -> 10.0.0.9:80", other_host),
        ("arp", arp),
        ("20-byte runt", runt),
    ]
}

pub fn run() -> Result<ExitCode, BpfError> {
    let fail = |e: String| BpfError::Suite(e);
    println!("flowswitch demo: one flow, `match: {{eth_type: ipv4, ip_proto: tcp, ipv4_dst: 10.0.0.2, tcp_dst: 80}}`");
    let insns = asm::assemble(HEADER_MATCH).map_err(|e| fail(e.to_string()))?;
    let prog = verifier::verify(&insns, &ProgEnv::mem()).map_err(|e| fail(e.to_string()))?;
    let compiled = jit::compile(&prog).map_err(|e| fail(e.to_string()))?;
    let guarded = prog.access.iter().flatten().filter(|a| a.guard).count();
    println!(
        "\ncompiled to {} eBPF instructions; verified ({} memory accesses, {} with run-time bounds checks); JIT-compiled to x86-64\n",
        insns.len(),
        prog.access.iter().flatten().count(),
        guarded
    );
    print!("{}", disasm::disassemble(&insns));
    println!("\n{:<36} {:>8} {:>8}", "frame", "interp", "jit");
    for (name, mut f) in frames() {
        let show = |r: Result<u64, datapath::ebpf::RunError>| match r {
            Ok(1) => "match".to_string(),
            Ok(_) => "miss".to_string(),
            Err(e) => format!("error: {e}"),
        };
        let i = show(interp::run(&prog, RunInput::mem(&mut f)));
        let j = show(compiled.run(RunInput::mem(&mut f)));
        println!("{name:<36} {i:>8} {j:>8}");
    }
    let mut f = tcp_frame();
    let t_i = ns_per_call(|| {
        black_box(interp::run(&prog, RunInput::mem(&mut f)).ok());
    });
    let mut scratch = JitScratch::new();
    let t_j = ns_per_call(|| {
        black_box(compiled.run_with(&mut scratch, RunInput::mem(&mut f)).ok());
    });
    println!(
        "\nper packet: interpreter {t_i:.1} ns, JIT {t_j:.1} ns ({:.1}x)",
        t_i / t_j
    );
    Ok(ExitCode::SUCCESS)
}
