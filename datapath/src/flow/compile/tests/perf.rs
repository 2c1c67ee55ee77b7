//! Compile cost: typical flows compile to small programs. Timing lives in
//! the benchmarks, not in tests.

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
