//! Helper calls in the right order with the right arguments and FINAL
//! flags; meters, drops, goto; custom filters and actions.

use super::*;
use crate::classifier::testgen::Rng;
use crate::ebpf::asm::assemble;
use crate::flow::key::*;
use crate::flow::spec::SetField;
use crate::packet::build;

fn tcp_frame() -> Vec<u8> {
    build::tcp4(
        [2, 0, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 2],
        [10, 0, 0, 1].into(),
        [10, 0, 0, 2].into(),
        40000,
        80,
        0,
        b"hi",
    )
}

/// An expected call: helper id, r2 and r3 when the helper reads them.
type Expect = (u32, Option<u64>, Option<u64>);

fn random_action(rng: &mut Rng) -> Action {
    match rng.below(22) {
        0..=4 => Action::Output(
            (0..1 + rng.below(3))
                .map(|_| 1 + rng.below(6) as u32)
                .collect(),
        ),
        5 => Action::Output(vec![]),
        6 | 7 => Action::InPort,
        8 | 9 => Action::Flood,
        10 | 11 => Action::Normal,
        12 | 13 => Action::Mirror(rng.below(1 << 32) as u32),
        14 | 15 => Action::Meter(rng.below(8) as u32),
        16 => Action::PushVlan {
            vid: rng.below(4096) as u16,
            pcp: rng.below(8) as u8,
        },
        17 => Action::PopVlan,
        18 => Action::SetField(vec![SetField::EthSrc(rng.below(1 << 48))]),
        19 => Action::DecTtl,
        20 => Action::Drop,
        _ => Action::GotoTable(1 + rng.below(254) as u8),
    }
}

/// The calls (id, r2 when the helper reads it, r3 when it reads it) and
/// the verdict the action list must produce.
fn model(actions: &[Action], in_port: u32, drops: u64) -> (Vec<Expect>, Verdict) {
    let mut calls = Vec::new();
    let n = actions.len();
    for (i, a) in actions.iter().enumerate() {
        let last = i + 1 == n;
        let fl = if last { FLAG_FINAL } else { 0 };
        match a {
            Action::Output(ports) => {
                for (j, p) in ports.iter().enumerate() {
                    let f = if j + 1 == ports.len() { fl } else { 0 };
                    calls.push((helper_id::OUTPUT, Some(u64::from(*p)), Some(f)));
                }
            }
            Action::InPort => calls.push((helper_id::OUTPUT, Some(u64::from(in_port)), Some(fl))),
            Action::Flood => calls.push((helper_id::FLOOD, Some(fl), None)),
            Action::Normal => calls.push((helper_id::NORMAL, Some(fl), None)),
            Action::Mirror(p) => calls.push((helper_id::OUTPUT, Some(u64::from(*p)), Some(0))),
            Action::Meter(m) => {
                calls.push((helper_id::METER, Some(u64::from(*m)), None));
                if drops >> m & 1 == 1 {
                    return (calls, Verdict::Drop(DropReason::Meter));
                }
            }
            Action::PushVlan { vid, pcp } => calls.push((
                helper_id::PUSH_VLAN,
                Some(u64::from(*pcp) << 13 | u64::from(*vid)),
                None,
            )),
            Action::PopVlan => calls.push((helper_id::POP_VLAN, None, None)),
            Action::Drop => return (calls, Verdict::Drop(DropReason::Explicit)),
            Action::GotoTable(t) => return (calls, Verdict::Goto(*t)),
            Action::SetField(_) | Action::DecTtl | Action::Ebpf(_) => {}
        }
    }
    (calls, Verdict::Done)
}

fn check_calls(
    out: &Outcome,
    want: &[(u32, Option<u64>, Option<u64>)],
    what: &dyn std::fmt::Debug,
) {
    assert_eq!(out.calls.len(), want.len(), "{what:?}\n{:?}", out.calls);
    for (c, w) in out.calls.iter().zip(want) {
        assert_eq!(c.id, w.0, "{what:?}");
        if let Some(a) = w.1 {
            assert_eq!(c.args[0], a, "r2 of helper {} in {what:?}", c.id);
        }
        if let Some(a) = w.2 {
            assert_eq!(c.args[1], a, "r3 of helper {} in {what:?}", c.id);
        }
    }
}

#[test]
fn random_action_lists_call_helpers_in_order_with_final_flags() {
    let mut rng = Rng::new(31);
    let frame = tcp_frame();
    let (mut finals, mut meter_drops, mut gotos) = (0, 0, 0);
    for _ in 0..1500 {
        let actions: Vec<Action> = (0..rng.below(7)).map(|_| random_action(&mut rng)).collect();
        let in_port = 1 + rng.below(1 << 31) as u32 * 2;
        let drops = rng.next_u64() & 0xff;
        set_meter_drops(drops);
        let ctx = ctx_for(&frame, in_port);
        let s = spec(vec![Match::any()], actions.clone());
        let (p, j) = build(&s, &CompileOptions::default());
        let out = run_both(&p, &j, &frame, &ctx);
        let (want, verdict) = model(&actions, in_port, drops);
        assert_eq!(out.verdict(), Some(verdict), "{actions:?}");
        check_calls(&out, &want, &actions);
        finals += want
            .iter()
            .filter(|c| {
                c.2 == Some(FLAG_FINAL)
                    || (c.0 != helper_id::OUTPUT
                        && c.1 == Some(FLAG_FINAL)
                        && c.0 != helper_id::METER)
            })
            .count();
        meter_drops += usize::from(verdict == Verdict::Drop(DropReason::Meter));
        gotos += usize::from(matches!(verdict, Verdict::Goto(_)));
    }
    set_meter_drops(0);
    assert!(
        finals > 200 && meter_drops > 100 && gotos > 50,
        "{finals} {meter_drops} {gotos}"
    );
}

#[test]
fn final_is_set_only_when_nothing_follows() {
    let frame = tcp_frame();
    let cases: Vec<(Vec<Action>, Vec<Expect>)> = vec![
        (
            vec![Action::Output(vec![1, 2])],
            vec![(16, Some(1), Some(0)), (16, Some(2), Some(1))],
        ),
        (
            vec![Action::Output(vec![1]), Action::Output(vec![2])],
            vec![(16, Some(1), Some(0)), (16, Some(2), Some(1))],
        ),
        (
            vec![Action::Output(vec![1]), Action::GotoTable(2)],
            vec![(16, Some(1), Some(0))],
        ),
        (
            vec![Action::Output(vec![1]), Action::DecTtl],
            vec![(16, Some(1), Some(0))],
        ),
        (vec![Action::Flood], vec![(17, Some(1), None)]),
        (
            vec![Action::Normal, Action::Mirror(3)],
            vec![(18, Some(0), None), (16, Some(3), Some(0))],
        ),
        (vec![Action::Mirror(3)], vec![(16, Some(3), Some(0))]),
        (vec![Action::InPort], vec![(16, Some(7), Some(1))]),
    ];
    for (actions, want) in cases {
        let s = spec(vec![Match::any()], actions.clone());
        let (p, j) = build(&s, &CompileOptions::default());
        let out = run_both(&p, &j, &frame, &ctx_for(&frame, 7));
        check_calls(&out, &want, &actions);
    }
}

#[test]
fn a_final_output_is_the_output_return_code_not_a_helper_call() {
    let frame = tcp_frame();
    // (actions, in_port, r0, helper calls made by the program itself)
    let cases: Vec<(Vec<Action>, u32, u64, Vec<Expect>)> = vec![
        (vec![Action::Output(vec![3])], 1, 0x304, vec![]),
        (
            vec![Action::Output(vec![1, 2])],
            1,
            0x204,
            vec![(16, Some(1), Some(0))],
        ),
        (
            vec![Action::DecTtl, Action::Output(vec![u32::MAX])],
            1,
            u64::from(u32::MAX) << 8 | 4,
            vec![],
        ),
        (
            vec![Action::InPort],
            0x8000_0007,
            0x8000_0007 << 8 | 4,
            vec![],
        ),
        (
            vec![Action::InPort, Action::InPort],
            9,
            0x904,
            vec![(16, Some(9), Some(0))],
        ),
        // Not the last action: a helper call, then DONE.
        (
            vec![Action::Output(vec![3]), Action::DecTtl],
            1,
            1,
            vec![(16, Some(3), Some(0))],
        ),
        (vec![Action::Mirror(3)], 1, 1, vec![(16, Some(3), Some(0))]),
    ];
    for (actions, in_port, r0, want) in cases {
        let s = spec(vec![Match::any()], actions.clone());
        let (p, j) = build(&s, &CompileOptions::default());
        let raw = run_both_raw(&p, &j, &frame, &ctx_for(&frame, in_port));
        assert_eq!(raw.r0, Ok(r0), "{actions:?}");
        check_calls(&raw, &want, &actions);
        let n = raw.calls.len();
        let out = as_calls(raw);
        assert_eq!(out.verdict(), Some(Verdict::Done), "{actions:?}");
        assert_eq!(out.calls.len(), n + usize::from(r0 & 0xff == 4));
    }
}

#[test]
fn outputs_see_the_packet_as_rewritten_so_far() {
    let frame = tcp_frame();
    let s = spec(
        vec![Match::any()],
        vec![
            Action::Output(vec![1]),
            Action::SetField(vec![SetField::EthDst(0x0200_0000_00aa)]),
            Action::Mirror(2),
            Action::DecTtl,
            Action::Output(vec![3]),
        ],
    );
    let (p, j) = build(&s, &CompileOptions::default());
    let out = run_both(&p, &j, &frame, &ctx_for(&frame, 1));
    assert_eq!(out.calls.len(), 3);
    assert_eq!(out.calls[0].pkt, frame);
    assert_eq!(&out.calls[1].pkt[..6], &[2, 0, 0, 0, 0, 0xaa]);
    assert_eq!(out.calls[1].key.eth_dst(), 0x0200_0000_00aa);
    assert_eq!(out.calls[1].pkt[22], 64, "ttl not yet decremented");
    assert_eq!(out.calls[2].pkt[22], 63);
    assert_eq!(out.calls[2].pkt, out.frame);
}

#[test]
fn custom_filter_decides_the_match() {
    // Matches when the ctx mark is odd; reads the packet with its own check.
    let filter = assemble(
        "ldxw %r0, [%r1+108]\nand %r0, 1\nldxdw %r2, [%r1+80]\nldxdw %r3, [%r1+88]\n\
         mov %r4, %r2\nadd %r4, 14\njgt %r4, %r3, +1\nldxb %r5, [%r2+13]\nexit",
    )
    .expect("asm");
    let filters = vec![filter];
    let opts = CompileOptions {
        filters: &filters,
        actions: &[],
    };
    let mut m = Match::any();
    m.require::<2>(OFF_ETH_TYPE, 0x0800, 0xffff);
    let mut s = spec(vec![m], vec![Action::Output(vec![4])]);
    s.filter = Some(0);
    let (p, j) = build(&s, &opts);
    let frame = tcp_frame();
    for mark in 0..4u32 {
        let mut ctx = ctx_for(&frame, 1);
        ctx.set_mark(mark);
        let out = run_both(&p, &j, &frame, &ctx);
        let v = if mark & 1 == 1 {
            Verdict::Done
        } else {
            Verdict::NoMatch
        };
        assert_eq!(out.verdict(), Some(v));
        assert_eq!(out.calls.len(), usize::from(mark & 1 == 1));
    }
    // The structured match still comes first.
    let mut k = ctx_for(&frame, 1).key();
    k.set_eth_type(0x86dd);
    let mut ctx = FlowCtx::new(&k, 14, 34, frame.len() as u32, 0);
    ctx.set_mark(1);
    assert_eq!(
        run_both(&p, &j, &frame, &ctx).verdict(),
        Some(Verdict::NoMatch)
    );
    // Missing or malformed filters are errors naming the flow.
    s.filter = Some(1);
    let e = compile_flow(&s, &opts).expect_err("no such filter");
    assert_eq!(
        e.to_string(),
        "flow t: custom filter program 1 does not exist (1 loaded)"
    );
    let bad = vec![assemble("ja +5\nexit").expect("asm")];
    s.filter = Some(0);
    let e = compile_flow(
        &s,
        &CompileOptions {
            filters: &bad,
            actions: &[],
        },
    )
    .expect_err("jumps out");
    assert!(e.to_string().contains("leaves the program"), "{e}");
    for (src, what) in [
        ("mov %r0, 1\njeq %r0, 1, -2", "fall through"),
        ("mov %r0, 1", "fall through"),
    ] {
        let bad = vec![assemble(src).expect("asm")];
        let e = compile_flow(
            &s,
            &CompileOptions {
                filters: &bad,
                actions: &[],
            },
        )
        .expect_err("rejected");
        assert!(e.to_string().contains(what), "{e}");
    }
    let e = compile_flow(
        &s,
        &CompileOptions {
            filters: &[vec![]],
            actions: &[],
        },
    )
    .expect_err("empty");
    assert!(e.to_string().ends_with("empty program"), "{e}");
}

#[test]
fn custom_actions_run_in_order_and_may_drop() {
    // Action 0: scratch[0] += 1, drop when the mark is 5. Action 1 calls a
    // function of its own, and rewrites the key's EtherType to IPv6.
    let a0 = assemble(
        "ldxw %r2, [%r1+112]\nadd %r2, 1\nstxw [%r1+112], %r2\nldxw %r0, [%r1+108]\n\
         jeq %r0, 5, +1\nmov %r0, 0\nexit",
    )
    .expect("asm");
    let a1 = assemble(
        "mov %r6, %r1\ncall local f\nmov %r0, 0\nexit\nf:\nsth [%r1+4], 0x86dd\nmov %r0, 0\nexit",
    )
    .expect("asm");
    let actions = vec![a0, a1];
    let opts = CompileOptions {
        filters: &[],
        actions: &actions,
    };
    let mut m = Match::any();
    m.require::<2>(OFF_ETH_TYPE, 0x0800, 0xffff);
    let s = spec(
        vec![m],
        vec![
            Action::Ebpf(0),
            Action::Output(vec![1]),
            Action::Ebpf(0),
            Action::Ebpf(1),
            // The match pinned IPv4, but action 1 changed the key: the
            // rewrite must check the EtherType again and skip.
            Action::SetField(vec![SetField::Ipv4Dst(0x0a00_00ff)]),
            Action::Output(vec![2]),
        ],
    );
    let insns = compile_flow(&s, &opts).expect("compiles");
    let (p, j) = build(&s, &opts);
    assert_eq!(p.insns, insns);
    // Each custom program is appended once.
    let own = insns.len() - actions[0].len() - actions[1].len();
    assert_eq!(&insns[own..own + actions[0].len()], &actions[0][..]);
    let frame = tcp_frame();
    let out = run_both(&p, &j, &frame, &ctx_for(&frame, 1));
    assert_eq!(out.verdict(), Some(Verdict::Done));
    assert_eq!(out.calls.len(), 2);
    assert_eq!(out.frame, frame, "no IPv4 rewrite on a key that says IPv6");
    assert_eq!(out.ctx[ctx::CTX_SCRATCH], 2);
    assert_eq!(out.key().eth_type(), 0x86dd);
    let mut ctx = ctx_for(&frame, 1);
    ctx.set_mark(5);
    let out = run_both(&p, &j, &frame, &ctx);
    assert_eq!(out.verdict(), Some(Verdict::Drop(DropReason::Custom)));
    assert!(out.calls.is_empty());
    assert_eq!(out.ctx[ctx::CTX_SCRATCH], 1);
}

#[test]
fn push_and_pop_pass_the_tag_and_later_code_rechecks_the_tag() {
    let frame = build::Builder::new([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .vlan(10, 1)
        .ipv4(build::Ipv4::new([10, 0, 0, 1].into(), [10, 0, 0, 2].into()))
        .udp(build::Udp::new(1, 2))
        .build();
    let mut m = Match::any();
    m.require::<2>(OFF_VLAN_TCI, u64::from(VLAN_PRESENT | 10), 0x1fff);
    let s = spec(
        vec![m],
        vec![
            Action::PopVlan,
            Action::SetField(vec![SetField::VlanVid(20)]),
            Action::PushVlan { vid: 30, pcp: 7 },
            Action::SetField(vec![SetField::VlanPcp(2)]),
            Action::Output(vec![1]),
        ],
    );
    let (p, j) = build(&s, &CompileOptions::default());
    // The test helpers only edit the key's TCI: pop clears it, so the vid
    // rewrite (whose tag the match had pinned) must check again and skip;
    // push sets it, so the pcp rewrite applies (to the tag still in the
    // frame, as the helpers do not move bytes).
    let out = run_both(&p, &j, &frame, &ctx_for(&frame, 1));
    assert_eq!(out.verdict(), Some(Verdict::Done));
    check_calls(
        &out,
        &[
            (21, None, None),
            (20, Some(7 << 13 | 30), None),
            (16, Some(1), Some(1)),
        ],
        &"push/pop",
    );
    assert_eq!(&out.frame[14..16], &(2u16 << 13 | 10).to_be_bytes());
    assert_eq!(out.key().vlan_tci(), VLAN_PRESENT | 2 << 13 | 30);
}

#[test]
fn key_determined_programs_only_read_the_key() {
    use crate::classifier::testgen::random_table;
    let mut rng = Rng::new(57);
    let (mut yes, mut no) = (0, 0);
    for _ in 0..3000 {
        let actions: Vec<Action> = (0..rng.below(4)).map(|_| random_action(&mut rng)).collect();
        let matches = random_table(&mut rng, 1, 200)
            .pop()
            .map_or_else(|| vec![Match::any()], |g| g.matches);
        let s = spec(matches, actions);
        if !key_determined(&s) {
            no += 1;
            continue;
        }
        yes += 1;
        let insns = compile_flow(&s, &CompileOptions::default()).unwrap();
        for (pc, op) in decode_all(&insns).unwrap() {
            match op {
                Op::Call { .. }
                | Op::CallX { .. }
                | Op::CallLocal { .. }
                | Op::St { .. }
                | Op::Stx { .. }
                | Op::Atomic { .. } => panic!("insn {pc} {op:?} in {:?}", s.actions),
                Op::Ldx { src, off, size, .. } => assert!(
                    src == R_CTX && off >= 0 && off as usize + size as usize <= KEY_BYTES,
                    "insn {pc} {op:?} in {:?}",
                    s.actions
                ),
                _ => {}
            }
        }
    }
    assert!(yes > 300 && no > 300, "{yes} {no}");
    // A filter may look at anything.
    let mut s = spec(vec![Match::any()], vec![Action::Drop]);
    assert!(key_determined(&s));
    s.filter = Some(0);
    assert!(!key_determined(&s));
    for a in [
        vec![Action::Output(vec![1, 2])],
        vec![Action::Output(vec![1]), Action::Drop],
        vec![Action::DecTtl, Action::Output(vec![1])],
        vec![Action::Flood],
    ] {
        assert!(!key_determined(&spec(vec![Match::any()], a)));
    }
}
