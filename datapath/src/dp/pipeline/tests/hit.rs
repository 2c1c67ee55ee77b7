//! The cache-hit fast path against the general path: two workers, one
//! with [`WorkerConfig::fast_hits`] and one without, each on its own
//! datapath built from the same flows, get the same batches (mixed hits,
//! misses, malformed frames, gotos, drops, outputs to ports that are down
//! or unknown). Every port must receive the same frames in the same order,
//! and every counter must end equal: per table, per drop reason, per port,
//! per flow, and the worker's cache figures.

use super::*;
use crate::classifier::testgen::Rng;
use crate::dp::port::Frame;
use crate::dp::stats::{DropReason, TABLES};
use crate::flow::key::{OFF_ETH_TYPE, OFF_IP_PROTO, OFF_TP_DST};
use crate::flow::spec::{Action, Match, SetField};
use crate::packet::build::{Builder, Ipv4, Udp};

/// Every counter of a worker and its generation, flattened.
fn counters(rig: &Rig, w: &Worker) -> Vec<(String, u64)> {
    let c = w.counters();
    let mut out = Vec::new();
    for t in 0..TABLES {
        let tc = c.table(t as u8);
        for (what, v) in [
            ("lookups", tc.lookups.get()),
            ("matched", tc.matched.get()),
            ("missed", tc.missed.get()),
        ] {
            out.push((format!("table {t} {what}"), v));
        }
    }
    for r in DropReason::all() {
        out.push((format!("drop {r}"), c.drops(r)));
    }
    for i in 0..c.ports() {
        if let Some(p) = c.port(i) {
            for (what, v) in [
                ("rx_packets", p.rx_packets.get()),
                ("rx_bytes", p.rx_bytes.get()),
                ("rx_drops", p.rx_drops.get()),
                ("tx_packets", p.tx_packets.get()),
                ("tx_bytes", p.tx_bytes.get()),
                ("tx_drops", p.tx_drops.get()),
            ] {
                out.push((format!("port {i} {what}"), v));
            }
        }
    }
    let g = rig.dp.generation();
    for (f, t) in g.flow_stats().totals().iter().enumerate() {
        out.push((format!("flow {f} packets"), t.packets));
        out.push((format!("flow {f} bytes"), t.bytes));
        out.push((format!("flow {f} last_used"), t.last_used));
    }
    out
}

/// Runs `batches` batches of frames drawn from `pool` (port 3 down for a
/// stretch) through a fast-path worker and a general-path worker, each on
/// its own datapath built from `flows`; returns the fast worker's stats and
/// drop counts by reason.
fn fast_against_general(
    seed: u64,
    flows: &[FlowSpec],
    customs: &(Vec<Vec<Insn>>, Vec<Vec<Insn>>),
    engine: Engine,
    pool: &[Vec<u8>],
    batches: u64,
) -> (WorkerStats, Vec<(String, u64)>) {
    let mut rng = Rng::new(seed);
    let miss = [MissPolicy::Drop, MissPolicy::Normal, MissPolicy::Flood][(seed % 3) as usize];
    let fast = Rig::new(build(flows, customs, miss, engine));
    let general = Rig::new(build(flows, customs, miss, engine));
    let mut wf = fast.dp.worker(0, WorkerConfig::default()).unwrap();
    let mut wg = general
        .dp
        .worker(
            0,
            WorkerConfig {
                fast_hits: false,
                ..WorkerConfig::default()
            },
        )
        .unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for n in 0..batches {
        // Port 3 goes down for a while: outputs to it are dropped.
        let down = (100..200).contains(&(n % 250));
        for rig in [&fast, &general] {
            rig.mems[2].set_up(!down);
        }
        let port = 1 + rng.below(4) as u32;
        let now = n * MS;
        a.clear();
        b.clear();
        for _ in 0..1 + rng.below(32) {
            let bytes = &pool[rng.below(pool.len() as u64) as usize];
            a.push(Frame::from_bytes(bytes));
            b.push(Frame::from_bytes(bytes));
        }
        wf.process_frames(&mut a, port, now);
        wf.flush();
        wg.process_frames(&mut b, port, now);
        wg.flush();
        assert_eq!(fast.sent(), general.sent(), "seed {seed} batch {n}");
    }
    let (cf, cg) = (counters(&fast, &wf), counters(&general, &wg));
    for (x, y) in cf.iter().zip(&cg) {
        assert_eq!(x, y, "seed {seed}: {} differs", x.0);
    }
    assert_eq!(cf.len(), cg.len());
    let (sf, sg) = (wf.stats(), wg.stats());
    assert_eq!(sg.fast_hits, 0);
    assert_eq!(WorkerStats { fast_hits: 0, ..sf }, sg, "seed {seed}");
    let drops = cf
        .into_iter()
        .filter(|(k, _)| k.starts_with("drop "))
        .collect();
    (sf, drops)
}

/// A random switch of about 1,400 flows (every action kind) and its frames.
fn random(seed: u64, engine: Engine, custom: bool) -> WorkerStats {
    let mut rng = Rng::new(seed);
    let flows = gen::switch(&mut rng, &[1000, 300, 100], custom);
    let customs = gen::customs(custom);
    let pool: Vec<Vec<u8>> = gen::frames(&mut rng, &flows, 120)
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    fast_against_general(seed, &flows, &customs, engine, &pool, 400).0
}

#[test]
fn fast_hits_send_and_count_as_the_general_path() {
    for (seed, custom) in [(41, false), (42, true), (43, false), (44, true)] {
        let s = random(seed, Engine::Jit, custom);
        // The comparison means something only if both paths ran a lot.
        assert!(
            s.fast_hits > 500 && s.emc_hits > s.fast_hits + 100,
            "seed {seed}: {s:?}"
        );
    }
}

#[test]
fn interpreted_programs_end_on_the_fast_path_only_when_key_determined() {
    // Without JIT code, only hits that reuse a cached code are fast.
    let s = random(45, Engine::Interp, false);
    assert!(s.fast_hits > 100 && s.emc_hits > s.fast_hits + 500, "{s:?}");
}

/// One UDP flow per way a fast-path packet can end (and a goto, which the
/// general path finishes): every one of them is hit many times.
#[test]
fn every_fast_ending_counts_as_the_general_path() {
    let udp_to = |dport: u16| {
        let mut m = Match::any();
        m.require::<2>(OFF_ETH_TYPE, 0x0800, 0xffff);
        m.require::<1>(OFF_IP_PROTO, 17, 0xff);
        m.require::<2>(OFF_TP_DST, u64::from(dport), 0xffff);
        m
    };
    let ends: Vec<Vec<Action>> = vec![
        vec![Action::Output(vec![3])],
        vec![Action::Output(vec![9])],
        vec![Action::DecTtl, Action::Output(vec![2])],
        vec![Action::Drop],
        vec![],
        vec![
            Action::SetField(vec![SetField::UdpDst(7)]),
            Action::GotoTable(1),
        ],
        vec![Action::InPort],
    ];
    let mut flows: Vec<FlowSpec> = ends
        .into_iter()
        .enumerate()
        .map(|(i, actions)| FlowSpec {
            name: format!("e{i}"),
            table: 0,
            priority: 10,
            matches: vec![udp_to(50 + i as u16)],
            filter: None,
            actions,
            idle_timeout: 0,
            hard_timeout: 0,
        })
        .collect();
    flows.push(FlowSpec {
        name: "t1".into(),
        table: 1,
        priority: 0,
        matches: vec![udp_to(7)],
        filter: None,
        actions: vec![Action::Output(vec![4])],
        idle_timeout: 0,
        hard_timeout: 0,
    });
    let mut pool = Vec::new();
    for dport in 50..58u16 {
        for ttl in [1u8, 64] {
            for payload in [0usize, 30] {
                pool.push(
                    Builder::new([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                        .ipv4(Ipv4::new([10, 0, 0, 1].into(), [10, 0, 0, 2].into()).ttl(ttl))
                        .udp(Udp::new(1000, dport))
                        .payload(&vec![5; payload])
                        .build(),
                );
            }
        }
    }
    let none = (Vec::new(), Vec::new());
    let (s, drops) = fast_against_general(48, &flows, &none, Engine::Jit, &pool, 500);
    assert!(s.fast_hits > 3000, "{s:?}");
    let count = |r: DropReason| {
        drops
            .iter()
            .find(|(k, _)| *k == format!("drop {r}"))
            .map_or(0, |(_, v)| *v)
    };
    for r in [
        DropReason::PortDown,
        DropReason::Ttl,
        DropReason::Explicit,
        DropReason::NoOutput,
        DropReason::NoMatch,
    ] {
        assert!(count(r) > 50, "{r}: {drops:?}");
    }
}
