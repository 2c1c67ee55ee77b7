//! Arbitrary bytes as a program: the verifier must never crash or hang, and
//! whatever it accepts must run on both engines with the same outcome.
#![no_main]

use datapath::ebpf::diff::run_both;
use datapath::ebpf::{insn, ProgEnv};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte sizes the packet; the rest, cut to whole slots, is the program.
    let Some((&n, rest)) = data.split_first() else { return };
    let n = (n as usize % 64).min(rest.len());
    let (pkt, code) = rest.split_at(n);
    let code = &code[..code.len() / 8 * 8];
    let Ok(insns) = insn::from_bytes(code) else { return };
    let out = run_both(&insns, pkt, &ProgEnv::mem());
    if out.is_disagreement() {
        panic!("engines disagree: {out:?}\n{insns:?}");
    }
});
