//! Targeted worker behaviour: cache hits and what must not be cached,
//! generations, counters, malformed frames, miss policies, and an
//! allocation-free steady state.

use std::net::Ipv4Addr;

use super::*;
use crate::dp::port::{Frame, TxMode};
use crate::dp::stats::DropReason;
use crate::ebpf::asm::assemble;
use crate::flow::key::{OFF_ETH_TYPE, OFF_IN_PORT, OFF_TP_DST, OFF_VLAN_TCI, VLAN_PRESENT};
use crate::flow::spec::{Action, Match};
use crate::packet::build::{self, Builder, Ipv4, Udp};

const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn flow(name: &str, table: u8, priority: u16, m: Match, actions: Vec<Action>) -> FlowSpec {
    FlowSpec {
        name: name.into(),
        table,
        priority,
        matches: vec![m],
        filter: None,
        actions,
        idle_timeout: 0,
        hard_timeout: 0,
    }
}

fn tp_dst(port: u16) -> Match {
    let mut m = Match::any();
    m.require::<2>(OFF_ETH_TYPE, 0x0800, 0xffff);
    m.require::<1>(crate::flow::key::OFF_IP_PROTO, 17, 0xff);
    m.require::<2>(OFF_TP_DST, u64::from(port), 0xffff);
    m
}

fn vid(v: u16) -> Match {
    let mut m = Match::any();
    m.require::<2>(OFF_VLAN_TCI, u64::from(VLAN_PRESENT | v), 0x1fff);
    m
}

fn udp(dport: u16, payload: usize) -> Vec<u8> {
    Builder::new(A, B)
        .ipv4(Ipv4::new(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
        ))
        .udp(Udp::new(1000, dport))
        .payload(&vec![7; payload])
        .build()
}

fn no_customs() -> (Vec<Vec<Insn>>, Vec<Vec<Insn>>) {
    (Vec::new(), Vec::new())
}

/// Ports that received something, in port order, with the frame count.
fn receivers(rig: &Rig) -> Vec<(u32, usize)> {
    rig.sent()
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(i, v)| (i as u32 + 1, v.len()))
        .collect()
}

#[test]
fn repeated_keys_take_the_cached_path_and_are_counted() {
    let flows = vec![
        flow("to-1", 0, 10, tp_dst(53), vec![Action::GotoTable(1)]),
        flow("out", 1, 0, Match::any(), vec![Action::Output(vec![2])]),
    ];
    for engine in [Engine::Jit, Engine::Interp] {
        let g = build(&flows, &no_customs(), MissPolicy::Drop, engine);
        let rig = Rig::new(g.clone());
        let mut w = rig.dp.worker(0, WorkerConfig::default()).unwrap();
        let f = udp(53, 10);
        for i in 0..3 {
            let out = w.process(&mut Frame::from_bytes(&f), 1, (i + 1) * MS);
            assert_eq!((out.sent, out.drop), (1, None));
        }
        w.flush();
        assert_eq!(receivers(&rig), vec![(2, 3)]);
        let s = w.stats();
        assert_eq!(
            (s.packets, s.emc_hits, s.emc_misses, s.emc_inserts),
            (3, 2, 1, 1)
        );
        let c = w.counters();
        for t in [0, 1] {
            assert_eq!(c.table(t).lookups.get(), 3);
            assert_eq!(c.table(t).matched.get(), 3);
            assert_eq!(c.table(t).missed.get(), 0);
        }
        let fl = g.flow_stats().flow(0);
        assert_eq!(
            (fl.packets, fl.bytes, fl.last_used),
            (3, 3 * f.len() as u64, 3)
        );
        assert_eq!(g.flow_id("out"), Some(1));
        assert_eq!(g.flow_stats().flow(1).packets, 3);
    }
}

#[test]
fn a_key_change_the_key_does_not_determine_is_never_cached() {
    // The custom action flips the low bit of tp_dst when the frame length
    // is odd: frames of one key go different ways in table 1.
    let flip = assemble(
        "ldxw %r2, [%r1+100]\nand %r2, 1\nldxh %r3, [%r1+70]\nxor %r3, %r2\n\
         stxh [%r1+70], %r3\nmov %r0, 0\nexit",
    )
    .unwrap();
    let customs = (Vec::new(), vec![flip]);
    let flows = vec![
        flow(
            "flip",
            0,
            10,
            tp_dst(80),
            vec![Action::Ebpf(0), Action::GotoTable(1)],
        ),
        flow("even", 1, 10, tp_dst(80), vec![Action::Output(vec![2])]),
        flow("odd", 1, 10, tp_dst(81), vec![Action::Output(vec![3])]),
    ];
    let g = build(&flows, &customs, MissPolicy::Drop, Engine::Jit);
    let rig = Rig::new(g);
    let mut w = rig.dp.worker(0, WorkerConfig::default()).unwrap();
    let (even, odd) = (udp(80, 10), udp(80, 11));
    assert_eq!(even.len() % 2, 0);
    for (i, f) in [&even, &odd, &even, &odd].into_iter().enumerate() {
        let t = w.trace(&mut Frame::from_bytes(f), 1, i as u64 * MS);
        let want = if f.len() % 2 == 0 { "even" } else { "odd" };
        let got = t.steps.last().and_then(|s| s.flow);
        assert_eq!(got, w.generation().flow_id(want), "frame {i}");
    }
    assert_eq!(w.stats().emc_inserts, 0);
    assert_eq!(receivers(&rig), vec![(2, 2), (3, 2)]);
}

#[test]
fn a_pop_before_a_goto_is_never_cached() {
    // Double-tagged frames: the inner tag is not in the key.
    let flows = vec![
        flow(
            "pop",
            0,
            10,
            vid(5),
            vec![Action::PopVlan, Action::GotoTable(1)],
        ),
        flow("inner-1", 1, 10, vid(1), vec![Action::Output(vec![2])]),
        flow("inner-2", 1, 10, vid(2), vec![Action::Output(vec![3])]),
    ];
    let g = build(&flows, &no_customs(), MissPolicy::Drop, Engine::Jit);
    let rig = Rig::new(g);
    let mut w = rig.dp.worker(0, WorkerConfig::default()).unwrap();
    let inner = |v: u16| {
        let mut f = Builder::new(A, B)
            .vlan(v, 0)
            .ipv4(Ipv4::new(
                Ipv4Addr::new(10, 0, 0, 1),
                Ipv4Addr::new(10, 0, 0, 2),
            ))
            .udp(Udp::new(1, 2))
            .build();
        f.splice(12..12, [0x81, 0, 0, 5]);
        f
    };
    for (i, v) in [1u16, 2, 1, 2].into_iter().enumerate() {
        let t = w.trace(&mut Frame::from_bytes(&inner(v)), 1, i as u64 * MS);
        let want = w.generation().flow_id(&format!("inner-{v}"));
        assert_eq!(t.steps.last().and_then(|s| s.flow), want, "frame {i}");
        // The outer tag is gone, the inner one kept.
        assert_eq!(t.outputs.len(), 1);
        assert_eq!(
            t.outputs[0].frame,
            inner(v)[..12]
                .iter()
                .chain(&inner(v)[16..])
                .copied()
                .collect::<Vec<u8>>()
        );
    }
    assert_eq!(w.stats().emc_inserts, 0);
}

#[test]
fn a_new_generation_takes_over_between_batches() {
    let out = |p| {
        vec![flow(
            "all",
            0,
            0,
            Match::any(),
            vec![Action::Output(vec![p])],
        )]
    };
    let g1 = build(&out(2), &no_customs(), MissPolicy::Drop, Engine::Jit);
    let rig = Rig::new(g1.clone());
    let mut w = rig.dp.worker(0, WorkerConfig::default()).unwrap();
    let f = udp(1, 0);
    // Two batches of one frame: the second is a cache hit. (Within one
    // batch every key is looked up before any path is inserted.)
    for i in 0..2 {
        rig.mems[0].push_rx(&f);
        assert_eq!(w.poll(32, i).unwrap(), 1);
    }
    assert_eq!(receivers(&rig), vec![(2, 2)]);
    assert_eq!(w.stats().emc_hits, 1);
    let g2 = build(&out(3), &no_customs(), MissPolicy::Drop, Engine::Jit);
    assert_ne!(g1.id(), g2.id());
    rig.dp.publish(g2.clone()).unwrap();
    rig.mems[0].push_rx(&f);
    assert_eq!(w.poll(32, MS).unwrap(), 1);
    assert_eq!(receivers(&rig), vec![(3, 1)]);
    assert_eq!(w.generation().id(), g2.id());
    // The cached path of the old generation was not used.
    assert_eq!(w.stats().emc_hits, 1);
    assert_eq!(w.stats().emc_misses, 2);
    // Received frames are counted per port.
    let snap = rig.dp.stats().snapshot();
    assert_eq!(snap.ports[0].total.rx_packets, 3);
    assert_eq!(snap.ports[0].total.rx_bytes, 3 * f.len() as u64);
}

#[test]
fn output_return_codes_send_like_the_output_helper_on_both_engines() {
    // Each flow ends in an output or in_port, which the compiler turns into
    // the OUTPUT return code; the worker sends the frame itself.
    let flows = vec![
        flow("one", 0, 1, tp_dst(1), vec![Action::Output(vec![2])]),
        flow("two", 0, 1, tp_dst(2), vec![Action::Output(vec![3, 4])]),
        flow("back", 0, 1, tp_dst(3), vec![Action::InPort]),
        flow("nowhere", 0, 1, tp_dst(4), vec![Action::Output(vec![9])]),
        flow(
            "ttl",
            0,
            1,
            tp_dst(5),
            vec![Action::DecTtl, Action::Output(vec![1])],
        ),
    ];
    // The frame after dec_ttl, built from scratch (checksum included).
    let ttl = Builder::new(A, B)
        .ipv4(Ipv4::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)).ttl(63))
        .udp(Udp::new(1000, 5))
        .payload(&[7; 3])
        .build();
    assert_eq!(udp(5, 3)[22], 64, "the builder's default TTL");
    type Sent = Vec<(u32, Vec<u8>)>;
    // (frame, in_port, outputs, drop)
    let cases: Vec<(Vec<u8>, u32, Sent, Option<DropReason>)> = vec![
        (udp(1, 3), 1, vec![(2, udp(1, 3))], None),
        (udp(2, 3), 1, vec![(3, udp(2, 3)), (4, udp(2, 3))], None),
        (udp(3, 3), 4, vec![(4, udp(3, 3))], None),
        (udp(4, 3), 1, vec![], Some(DropReason::PortDown)),
        (udp(5, 3), 2, vec![(1, ttl)], None),
    ];
    for engine in [Engine::Jit, Engine::Interp] {
        let g = build(&flows, &no_customs(), MissPolicy::Drop, engine);
        let rig = Rig::new(g.clone());
        let mut w = rig.dp.worker(0, WorkerConfig::default()).unwrap();
        // Twice: through the classifier, then from the cache.
        for round in 0..2 {
            for (bytes, in_port, outs, drop) in &cases {
                let t = w.trace(&mut Frame::from_bytes(bytes), *in_port, 0);
                let got: Sent = t.outputs.into_iter().map(|o| (o.port, o.frame)).collect();
                assert_eq!(&got, outs, "{engine:?} round {round}");
                assert_eq!(t.drop, *drop, "{engine:?} round {round}");
                let sent: Sent = rig
                    .sent()
                    .into_iter()
                    .enumerate()
                    .flat_map(|(i, v)| v.into_iter().map(move |f| (i as u32 + 1, f)))
                    .collect();
                assert_eq!(&sent, outs, "{engine:?} round {round}: frames sent");
            }
        }
        assert_eq!(w.stats().emc_hits, cases.len() as u64, "{engine:?}");
    }
}

#[test]
fn malformed_frames_are_dropped_and_counted_by_kind() {
    let flows = vec![flow(
        "all",
        0,
        0,
        Match::any(),
        vec![Action::Output(vec![2])],
    )];
    let g = build(&flows, &no_customs(), MissPolicy::Drop, Engine::Jit);
    let rig = Rig::new(g);
    let mut w = rig.dp.worker(0, WorkerConfig::default()).unwrap();
    let good = udp(1, 0);
    // A UDP length field beyond the datagram.
    let mut bad_udp = good.clone();
    bad_udp[38..40].copy_from_slice(&200u16.to_be_bytes());
    let cases: [(&[u8], crate::packet::ErrorKind); 3] = [
        (&good[..10], crate::packet::ErrorKind::Ethernet),
        (&good[..20], crate::packet::ErrorKind::Ipv4),
        (&bad_udp, crate::packet::ErrorKind::Udp),
    ];
    for (bytes, kind) in cases {
        let t = w.trace(&mut Frame::from_bytes(bytes), 1, 0);
        assert_eq!(t.drop, Some(DropReason::Parse(kind)));
        assert!(t.steps.is_empty() && t.outputs.is_empty());
        assert_eq!(w.counters().drops(DropReason::Parse(kind)), 1);
    }
    assert!(receivers(&rig).is_empty());
}

#[test]
fn miss_policies_and_missing_tables() {
    let mut m = Match::any();
    m.require::<4>(OFF_IN_PORT, 4, 0xffff_ffff);
    // Table 1 has no flows: going there is a miss.
    let flows = vec![
        flow("to-empty", 0, 10, tp_dst(7), vec![Action::GotoTable(1)]),
        flow("from-4", 0, 5, m, vec![Action::Output(vec![1])]),
    ];
    let bcast = build::udp4(
        A,
        build::BROADCAST,
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(10, 0, 0, 255),
        1,
        9,
        &[],
    );
    for (miss, want) in [
        (MissPolicy::Drop, vec![]),
        (MissPolicy::Flood, vec![(1, 1), (3, 1), (4, 1)]),
        (MissPolicy::Normal, vec![(1, 1), (3, 1), (4, 1)]),
    ] {
        let g = build(&flows, &no_customs(), miss, Engine::Jit);
        let rig = Rig::new(g.clone());
        let mut w = rig.dp.worker(0, WorkerConfig::default()).unwrap();
        let t = w.trace(&mut Frame::from_bytes(&bcast), 2, 0);
        assert_eq!(
            t.steps,
            vec![Step {
                table: 0,
                flow: None
            }],
            "{miss:?}"
        );
        assert_eq!(receivers(&rig), want, "{miss:?}");
        assert_eq!(
            t.drop,
            (miss == MissPolicy::Drop).then_some(DropReason::NoMatch)
        );
        let t = w.trace(&mut Frame::from_bytes(&udp(7, 0)), 2, MS);
        assert_eq!(
            t.steps,
            vec![
                Step {
                    table: 0,
                    flow: g.flow_id("to-empty")
                },
                Step {
                    table: 1,
                    flow: None
                }
            ]
        );
        rig.sent();
        assert_eq!(w.counters().table(1).missed.get(), 1);
    }
    // Normal learns: after B spoke on port 3, a frame to B goes there only.
    let g = build(&flows, &no_customs(), MissPolicy::Normal, Engine::Jit);
    let rig = Rig::new(g);
    let mut w = rig.dp.worker(0, WorkerConfig::default()).unwrap();
    let from_b = build::udp4(
        B,
        A,
        Ipv4Addr::new(10, 0, 0, 2),
        Ipv4Addr::new(10, 0, 0, 1),
        1,
        9,
        &[],
    );
    w.trace(&mut Frame::from_bytes(&from_b), 3, 0);
    assert_eq!(receivers(&rig), vec![(1, 1), (2, 1), (4, 1)]);
    w.trace(&mut Frame::from_bytes(&udp(9, 0)), 1, MS);
    assert_eq!(receivers(&rig), vec![(3, 1)]);
}

#[test]
fn steady_state_forwarding_does_not_allocate_frames() {
    let flows = vec![
        flow(
            "a",
            0,
            10,
            tp_dst(1),
            vec![Action::Mirror(3), Action::Output(vec![2])],
        ),
        flow("b", 0, 0, Match::any(), vec![Action::Flood]),
    ];
    let g = build(&flows, &no_customs(), MissPolicy::Drop, Engine::Jit);
    let ports: Vec<Arc<dyn Port>> = (1..=4)
        .map(|id| {
            Arc::new(MemPort::with_mode(id, format!("p{id}"), TxMode::Count)) as Arc<dyn Port>
        })
        .collect();
    let dp = Datapath::with_ports(ports, MacTable::default(), Meters::default(), g, 1).unwrap();
    let mut w = dp.worker(0, WorkerConfig::default()).unwrap();
    // Frames come from a template source into the worker's own buffers,
    // as a device read would fill them.
    let src = MemPort::with_mode(9, "src", TxMode::Count);
    src.repeat_rx(vec![udp(1, 0), udp(2, 30)], None);
    let mut batch: Vec<Frame> = Vec::new();
    let mut run = |w: &mut Worker, rounds: u64| {
        for i in 0..rounds {
            src.recv(0, w.state().tx().pool(), &mut batch, 32).unwrap();
            w.process_batch(&mut batch, 1, i * 1000);
        }
    };
    run(&mut w, 100);
    let before = w.state().tx().pool().allocated();
    run(&mut w, 1000);
    assert_eq!(w.state().tx().pool().allocated(), before);
    assert_eq!(w.stats().packets, 1100 * 32);
    // Half the packets went to 2 (and a copy to 3), half were flooded.
    let snap = dp.stats().snapshot();
    let tx: Vec<u64> = snap.ports.iter().map(|p| p.total.tx_packets).collect();
    assert_eq!(tx, vec![0, 1100 * 32, 1100 * 32, 1100 * 16]);
}

#[test]
fn workers_on_threads_share_one_datapath() {
    fn is_send<T: Send>() {}
    is_send::<Worker>();
    let flows = vec![
        flow("dns", 0, 10, tp_dst(53), vec![Action::Output(vec![2])]),
        flow("rest", 0, 0, Match::any(), vec![Action::Output(vec![3])]),
    ];
    let g = Generation::build_arc(&GenerationSpec {
        flows: &flows,
        filters: &[],
        actions: &[],
        miss: MissPolicy::Drop,
        engine: Engine::Jit,
        workers: 2,
        maps: None,
    })
    .unwrap();
    let mems: Vec<Arc<MemPort>> = (1..=3)
        .map(|id| Arc::new(MemPort::with_mode(id, format!("p{id}"), TxMode::Count)))
        .collect();
    let dp = Datapath::with_ports(
        mems.iter().map(|m| m.clone() as Arc<dyn Port>).collect(),
        MacTable::default(),
        Meters::default(),
        g.clone(),
        2,
    )
    .unwrap();
    // 20,000 frames, half to each flow, shared by two workers.
    mems[0].repeat_rx(vec![udp(53, 0), udp(54, 0)], Some(20_000));
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let mut w = dp.worker(i, WorkerConfig::default()).unwrap();
            std::thread::spawn(move || {
                let mut n = 0;
                loop {
                    let got = w.poll(32, 0).unwrap();
                    if got == 0 {
                        break n;
                    }
                    n += got;
                }
            })
        })
        .collect();
    let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 20_000);
    assert_eq!(mems[1].tx_count().0, 10_000);
    assert_eq!(mems[2].tx_count().0, 10_000);
    // Per-flow counters summed over the workers; table counters too.
    assert_eq!(g.flow_stats().flow(0).packets, 10_000);
    assert_eq!(g.flow_stats().flow(1).packets, 10_000);
    assert_eq!(dp.stats().snapshot().table(0).matched, 20_000);
    // A generation with counters for one worker only is refused.
    let small = build(&flows, &no_customs(), MissPolicy::Drop, Engine::Jit);
    assert!(matches!(
        dp.publish(small),
        Err(DatapathError::Workers {
            generation: 1,
            datapath: 2
        })
    ));
}
