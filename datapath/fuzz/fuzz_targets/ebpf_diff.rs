//! Generated programs (driven by the fuzzer's bytes) on both engines: they
//! must agree on r0, errors and memory.
#![no_main]

use datapath::ebpf::diff::{run_both, DiffOutcome};
use datapath::ebpf::testgen::{self, ByteSource};
use datapath::ebpf::ProgEnv;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut src = ByteSource(data);
    let pkt = testgen::packet(&mut src);
    let prog = testgen::generate(&mut src, pkt.len());
    let out = run_both(&prog, &pkt, &ProgEnv::mem());
    if out.is_disagreement() {
        panic!(
            "engines disagree: {out:?}\n{}",
            datapath::ebpf::disasm::disassemble(&prog)
        );
    }
});
