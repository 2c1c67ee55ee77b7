//! `flowswitch.h` with `clang -target bpf`: a C filter and action (in
//! `tests/c/custom.c`) built against the header and loaded from the object
//! by the ELF loader run as filter and action of a flow on both engines.
//! Needs `clang` on the PATH; without it the test says so and checks
//! nothing else (under `CI=true` it must be there).

use std::path::Path;

use super::*;
use crate::ebpf::elf;
use crate::flow::key::*;
use crate::packet::build;

/// The code of the filter and action sections of `custom.c` built with
/// clang, or `None` when clang is missing.
fn build_c() -> Option<(Vec<Insn>, Vec<Insn>)> {
    let bytes = crate::ebpf::elf::tests::build_c(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/flow/compile/tests/c/custom.c")
            .as_path(),
    )?;
    let section = |name: &str| {
        let p = elf::load(&bytes, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(p.maps.is_empty());
        p.insns
    };
    Some((section("filter/http_get"), section("action/count")))
}

fn frame(dport: u16, payload: &[u8]) -> Vec<u8> {
    build::tcp4(
        [2, 0, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 2],
        [10, 0, 0, 1].into(),
        [10, 0, 0, 2].into(),
        40000,
        dport,
        0,
        payload,
    )
}

#[test]
fn c_programs_built_against_the_header_run_as_filter_and_action() {
    let Some((filter, action)) = build_c() else {
        eprintln!("clang not found: the C header test did not run");
        return;
    };
    let filters = vec![filter];
    let actions = vec![action];
    let opts = CompileOptions {
        filters: &filters,
        actions: &actions,
    };
    let mut m = Match::any();
    m.require::<2>(OFF_ETH_TYPE, 0x0800, 0xffff);
    let mut s = spec(vec![m], vec![Action::Ebpf(0), Action::Output(vec![1])]);
    s.filter = Some(0);
    let (p, j) = build(&s, &opts);
    // clang's own bounds checks are proven too: no guard anywhere.
    assert_unguarded(&p, p.insns.len());

    let get = frame(80, b"GET / HTTP/1.0\r\n");
    let out = run_both(&p, &j, &get, &ctx_for(&get, 3));
    assert_eq!(out.verdict(), Some(Verdict::Done));
    assert_eq!(out.calls.len(), 2);
    assert_eq!(
        (out.calls[0].args, out.calls[1].args),
        ([9, 0], [1, FLAG_FINAL])
    );
    assert_eq!(
        out.calls[0].pkt, get,
        "the action's output comes before its rewrite"
    );
    assert_eq!(out.frame[5], 0x99);
    assert_eq!(out.key().eth_dst(), 0x0200_0000_0099);
    let c = &out.ctx;
    assert_eq!(c[ctx::CTX_MARK], 1);
    assert_eq!(
        u64::from_le_bytes(
            c[ctx::CTX_SCRATCH..ctx::CTX_SCRATCH + 8]
                .try_into()
                .expect("8")
        ),
        get.len() as u64
    );

    let post = frame(80, b"POST / HTTP/1.0\r\n");
    let out = run_both(&p, &j, &post, &ctx_for(&post, 3));
    assert_eq!(out.verdict(), Some(Verdict::NoMatch));
    let short = frame(80, b"GE");
    assert_eq!(
        run_both(&p, &j, &short, &ctx_for(&short, 3)).verdict(),
        Some(Verdict::NoMatch)
    );
    let telnet = frame(23, b"GET");
    let out = run_both(&p, &j, &telnet, &ctx_for(&telnet, 3));
    assert_eq!(out.verdict(), Some(Verdict::Drop(DropReason::Custom)));
    assert!(out.calls.is_empty());
}
