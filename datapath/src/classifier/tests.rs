//! The classifier against the linear-scan reference, overlap detection,
//! run-time changes against rebuilt tables, and the exact-match cache.

use proptest::prelude::*;

use super::testgen::{self, entries, GenFlow, Rng, Shape};
use super::*;
use crate::flow::key::*;

fn build(flows: &[GenFlow]) -> ClassifierTable {
    ClassifierTable::build(entries(flows)).unwrap()
}

fn m_port(port: u32) -> Match {
    let mut m = Match::any();
    assert!(m.require::<4>(OFF_IN_PORT, u64::from(port), 0xffff_ffff));
    m
}

fn m_eth(t: u16) -> Match {
    let mut m = Match::any();
    assert!(m.require::<2>(OFF_ETH_TYPE, u64::from(t), 0xffff));
    m
}

fn m_dst(ip: u32, plen: u32) -> Match {
    let mut m = m_eth(0x0800);
    let mask = if plen == 0 {
        0
    } else {
        u32::MAX << (32 - plen)
    };
    assert!(m.require::<4>(OFF_NW_DST, u64::from(ip), u64::from(mask)));
    m
}

fn m_5tuple(src: u32, dst: u32, proto: u8, sp: u16, dp: u16) -> Match {
    let mut m = m_eth(0x0800);
    assert!(m.require::<1>(OFF_IP_PROTO, u64::from(proto), 0xff));
    assert!(m.require::<4>(OFF_NW_SRC, u64::from(src), 0xffff_ffff));
    assert!(m.require::<4>(OFF_NW_DST, u64::from(dst), 0xffff_ffff));
    assert!(m.require::<2>(OFF_TP_SRC, u64::from(sp), 0xffff));
    assert!(m.require::<2>(OFF_TP_DST, u64::from(dp), 0xffff));
    m
}

fn flow(priority: u16, matches: Vec<Match>) -> GenFlow {
    GenFlow { priority, matches }
}

/// Checks lookup and lookup_filtered (including the order in which flows
/// are offered) against the reference on `keys`.
fn assert_agrees(table: &ClassifierTable, flows: &[GenFlow], keys: &[FlowKey], salt: u32) {
    for (i, k) in keys.iter().enumerate() {
        let decline = |f: u32| (f.wrapping_mul(2_654_435_761) ^ salt).is_multiple_of(3);
        let mut got_calls = Vec::new();
        let got = table.lookup_filtered(k, |f| {
            got_calls.push(f);
            !decline(f)
        });
        let mut want_calls = Vec::new();
        let want = linear_lookup_filtered(entries(flows), k, |f| {
            want_calls.push(f);
            !decline(f)
        });
        assert_eq!(got, want, "filtered, key #{i} {k:?}");
        assert_eq!(got_calls, want_calls, "offer order, key #{i} {k:?}");
        // The reference offers its unfiltered answer first (it is
        // `linear_lookup`, checked directly in other tests).
        assert_eq!(
            table.lookup(k),
            want_calls.first().copied(),
            "key #{i} {k:?}"
        );
    }
}

#[test]
fn differential_random_tables() {
    for seed in 0..4u64 {
        let mut rng = Rng::new(seed);
        let levels = [8u16, 32, 300, 16][seed as usize];
        let flows = testgen::random_table(&mut rng, 1500, levels);
        assert!(
            flows.len() >= 1000,
            "seed {seed}: only {} flows",
            flows.len()
        );
        let table = build(&flows);
        assert_eq!(table.len(), flows.len());
        let keys: Vec<FlowKey> = (0..2000)
            .map(|_| testgen::random_key(&mut rng, &flows))
            .collect();
        let hits = keys.iter().filter(|k| table.lookup(k).is_some()).count();
        assert!(hits > 1000, "seed {seed}: keys should mostly hit ({hits})");
        assert_agrees(&table, &flows, &keys, seed as u32);
    }
}

#[test]
fn differential_large_bench_table() {
    let flows = testgen::bench_table(20_000);
    let table = build(&flows);
    assert!(table.subtables().len() <= 12, "{}", table.subtables().len());
    let mut rng = Rng::new(7);
    let keys = testgen::bench_keys(&mut rng, &flows, 300);
    for k in &keys {
        assert_eq!(table.lookup(k), linear_lookup(entries(&flows), k));
    }
}

#[test]
fn parallel_and_sequential_builds_agree() {
    let mut rng = Rng::new(77);
    let flows = testgen::random_table(&mut rng, 5000, 300);
    let par = ClassifierTable::build_with(entries(&flows), Some(true)).unwrap();
    let seq = ClassifierTable::build_with(entries(&flows), Some(false)).unwrap();
    assert_eq!(state(&par), state(&seq));
    let keys: Vec<FlowKey> = (0..500)
        .map(|_| testgen::random_key(&mut rng, &flows))
        .collect();
    for k in &keys {
        assert_eq!(par.lookup(k), seq.lookup(k));
    }
    assert_agrees(&par, &flows, keys.get(..100).unwrap(), 5);
    // With several overlaps, both report the same one.
    let mut bad = flows.clone();
    for _ in 0..5 {
        let c = loop {
            let c = testgen::random_flow(&mut rng, 300);
            if testgen::first_overlap(&flows, &c).is_some() {
                break c;
            }
        };
        bad.push(c);
    }
    let e1 = ClassifierTable::build_with(entries(&bad), Some(true)).unwrap_err();
    let e2 = ClassifierTable::build_with(entries(&bad), Some(false)).unwrap_err();
    assert_eq!(e1, e2);
}

#[test]
fn lookup_prefers_priority_and_stops_early() {
    let flows = vec![
        flow(0, vec![Match::any()]),
        flow(10, vec![m_eth(0x0800)]),
        flow(20, vec![m_dst(0x0a00_0100, 24)]),
        flow(30, vec![m_5tuple(0x0a00_0001, 0x0a00_0102, 6, 1234, 80)]),
    ];
    let t = build(&flows);
    let mut k = FlowKey::default();
    assert_eq!(t.lookup(&k), Some(0));
    k.set_eth_type(0x0800);
    assert_eq!(t.lookup(&k), Some(1));
    k.set_nw_dst(0x0a00_0102);
    assert_eq!(t.lookup(&k), Some(2));
    k.set_nw_src(0x0a00_0001);
    k.set_ip_proto(6);
    k.set_tp_src(1234);
    k.set_tp_dst(80);
    assert_eq!(t.lookup(&k), Some(3));
    // Priority order of the subtables.
    let prios: Vec<u16> = t.subtables().iter().map(|s| s.max_priority()).collect();
    assert_eq!(prios, vec![30, 20, 10, 0]);
    // Filtered: declining offers the next lower flow, in order.
    let mut offered = Vec::new();
    let got = t.lookup_filtered(&k, |f| {
        offered.push(f);
        f == 1
    });
    assert_eq!(got, Some(1));
    assert_eq!(offered, vec![3, 2, 1]);
    assert_eq!(t.lookup_filtered(&k, |_| false), None);
    assert_eq!(ClassifierTable::new().lookup(&k), None);
}

#[test]
fn filtered_offers_a_flow_once_and_spills_past_sixteen() {
    // One flow with alternatives in several subtables, all matching.
    let multi = vec![m_eth(0x0800), m_port(1), m_dst(0x0a00_0000, 8)];
    let mut flows = vec![flow(50, multi)];
    // 20 flows at distinct priorities all matching the same key.
    for p in 0..20u16 {
        flows.push(flow(p, vec![m_dst(0x0a00_0000, 8 + u32::from(p))]));
    }
    let t = build(&flows);
    let mut k = FlowKey::default();
    k.set_in_port(1);
    k.set_eth_type(0x0800);
    k.set_nw_dst(0x0a00_0000);
    let mut offered = Vec::new();
    assert_eq!(
        t.lookup_filtered(&k, |f| {
            offered.push(f);
            false
        }),
        None
    );
    let want: Vec<u32> = std::iter::once(0).chain((1..=20).rev()).collect();
    assert_eq!(offered, want);
    assert_agrees(&t, &flows, &[k], 1);
}

#[test]
fn overlap_same_mask() {
    let a = m_dst(0x0a00_0100, 24);
    let b = m_dst(0x0a00_0100, 24);
    let c = m_dst(0x0a00_0200, 24);
    let err = ClassifierTable::build(entries(&[
        flow(5, vec![c]),
        flow(5, vec![a]),
        flow(5, vec![b]),
    ]))
    .unwrap_err();
    assert_eq!(
        err,
        ClassifierError::Overlap {
            first: 1,
            second: 2,
            priority: 5
        }
    );
    assert!(err.to_string().contains("flows 1 and 2"), "{err}");
    // Same match at different priorities, or different keys: fine.
    build(&[flow(5, vec![a]), flow(6, vec![b]), flow(5, vec![c])]);
    // Insert: the same.
    let mut t = build(&[flow(5, vec![a])]);
    assert_eq!(t.insert(9, 5, &[b]), Err(ClassifierError::overlap(0, 9, 5)));
    assert!(!t.contains(9));
    t.insert(9, 4, &[b]).unwrap();
    t.insert(10, 5, &[c]).unwrap();
}

#[test]
fn overlap_across_masks() {
    let route = m_dst(0x0a00_0100, 24);
    let inside = m_5tuple(1, 0x0a00_0107, 6, 1, 80);
    let outside = m_5tuple(1, 0x0a00_0207, 6, 1, 80);
    let port1 = m_port(1);
    let ipv4 = m_eth(0x0800);
    let arp = m_eth(0x0806);
    let mut port1_arp = port1;
    assert!(port1_arp.require::<2>(OFF_ETH_TYPE, 0x0806, 0xffff));
    // Nested masks (route within 5-tuple), both directions of discovery.
    let e = ClassifierTable::build(entries(&[flow(7, vec![route]), flow(7, vec![inside])]));
    assert_eq!(e.unwrap_err(), ClassifierError::overlap(0, 1, 7));
    let e = ClassifierTable::build(entries(&[flow(7, vec![inside]), flow(7, vec![route])]));
    assert_eq!(e.unwrap_err(), ClassifierError::overlap(0, 1, 7));
    build(&[flow(7, vec![route]), flow(7, vec![outside])]);
    // Unrelated masks (in_port vs eth_type) always overlap.
    let e = ClassifierTable::build(entries(&[flow(3, vec![port1]), flow(3, vec![ipv4])]));
    assert_eq!(e.unwrap_err(), ClassifierError::overlap(0, 1, 3));
    // Partially shared fields: (in_port 1, arp) vs ipv4 do not overlap;
    // vs arp they do.
    build(&[flow(3, vec![port1_arp]), flow(3, vec![ipv4])]);
    let e = ClassifierTable::build(entries(&[flow(3, vec![port1_arp]), flow(3, vec![arp])]));
    assert_eq!(e.unwrap_err(), ClassifierError::overlap(0, 1, 3));
    // Alternatives of one flow may overlap each other.
    build(&[flow(3, vec![port1, ipv4, port1_arp])]);
    // Incremental inserts see the same.
    let mut t = build(&[flow(7, vec![route]), flow(3, vec![port1_arp])]);
    assert_eq!(
        t.insert(5, 7, &[inside]),
        Err(ClassifierError::overlap(0, 5, 7))
    );
    assert_eq!(
        t.insert(5, 3, &[arp]),
        Err(ClassifierError::overlap(1, 5, 3))
    );
    t.insert(5, 3, &[ipv4]).unwrap();
    t.insert(6, 7, &[outside]).unwrap();
    // Wildcard at a shared priority overlaps anything.
    assert_eq!(
        t.insert(8, 7, &[Match::any()]),
        Err(ClassifierError::overlap(0, 8, 7))
    );
}

#[test]
fn overlap_hash_path_with_many_rules() {
    // Enough rules on both sides to use the projection hash (not the direct
    // comparison), with masks neither within the other.
    let mut flows = Vec::new();
    for i in 0..100u32 {
        let mut a = m_port(1000 + i);
        assert!(a.require::<2>(OFF_TP_DST, 80, 0xffff));
        flows.push(flow(9, vec![a]));
    }
    for i in 0..100u32 {
        let mut b = m_port(2000 + i);
        assert!(b.require::<1>(OFF_IP_PROTO, 6, 0xff));
        flows.push(flow(9, vec![b]));
    }
    build(&flows);
    let mut clash = m_port(1042);
    assert!(clash.require::<1>(OFF_IP_PROTO, 17, 0xff));
    flows.push(flow(9, vec![clash]));
    let e = ClassifierTable::build(entries(&flows)).unwrap_err();
    assert_eq!(e, ClassifierError::overlap(42, 200, 9));
    let mut t = build(flows.get(..200).unwrap());
    assert_eq!(
        t.insert(200, 9, &[clash]),
        Err(ClassifierError::overlap(42, 200, 9))
    );

    // The projection bucket holds two flows and the probing rule belongs to
    // the first: the overlap is with the second.
    let port_tp = |port: u32, tp: u16| {
        let mut a = m_port(port);
        assert!(a.require::<2>(OFF_TP_DST, u64::from(tp), 0xffff));
        a
    };
    let port_proto = |port: u32, proto: u8| {
        let mut b = m_port(port);
        assert!(b.require::<1>(OFF_IP_PROTO, u64::from(proto), 0xff));
        b
    };
    let mut flows = vec![
        flow(9, vec![port_tp(1, 80), port_proto(1, 6)]),
        flow(9, vec![port_tp(1, 443)]),
    ];
    for i in 0..20u32 {
        flows.push(flow(9, vec![port_tp(100 + i, 80)]));
    }
    for i in 0..40u32 {
        flows.push(flow(9, vec![port_proto(200 + i, 17)]));
    }
    let e = ClassifierTable::build(entries(&flows)).unwrap_err();
    assert_eq!(e, ClassifierError::overlap(0, 1, 9));
    flows.remove(1);
    build(&flows);
}

#[test]
fn overlap_detection_matches_the_reference() {
    for seed in 0..4u64 {
        let mut rng = Rng::new(100 + seed);
        let flows = testgen::random_table(&mut rng, 1000, 8);
        let mut t = build(&flows);
        let mut positives = 0;
        for c in 0..600u32 {
            let cand = testgen::random_flow(&mut rng, 8);
            let id = 10_000 + c;
            let r = t.insert(id, cand.priority, &cand.matches);
            match testgen::first_overlap(&flows, &cand) {
                Some(_) => {
                    positives += 1;
                    let Err(ClassifierError::Overlap {
                        first,
                        second,
                        priority,
                    }) = r
                    else {
                        panic!("seed {seed}: candidate {c} should overlap: {r:?}");
                    };
                    assert_eq!(second, id);
                    assert_eq!(priority, cand.priority);
                    let other = flows.get(first as usize).unwrap();
                    assert!(other.priority == cand.priority && other.overlaps(&cand));
                }
                None => {
                    r.unwrap();
                    assert!(t.remove(id));
                }
            }
        }
        assert!(positives > 100, "seed {seed}: {positives}");
        // Bulk: a table with one overlapping flow added names a real pair.
        let mut bad = flows.clone();
        let cand = loop {
            let c = testgen::random_flow(&mut rng, 8);
            if testgen::first_overlap(&flows, &c).is_some() {
                break c;
            }
        };
        bad.push(cand);
        let Err(ClassifierError::Overlap {
            first,
            second,
            priority,
        }) = ClassifierTable::build(entries(&bad))
        else {
            panic!("seed {seed}: bulk build should fail");
        };
        let (a, b) = (&bad[first as usize], &bad[second as usize]);
        assert!(first < second && a.priority == priority && b.priority == priority);
        assert!(a.overlaps(b));
    }
}

#[test]
fn bad_entries_are_refused() {
    let a = m_port(1);
    assert_eq!(
        ClassifierTable::build([Entry::new(3, 1, &[])]).unwrap_err(),
        ClassifierError::NoMatch { flow: 3 }
    );
    let bad = Match {
        key: m_port(1).key,
        mask: FlowKey::default(),
    };
    assert!(matches!(
        ClassifierTable::build([Entry::new(4, 1, std::slice::from_ref(&bad))]),
        Err(ClassifierError::KeyOutsideMask { flow: 4, .. })
    ));
    let ms = [a];
    assert_eq!(
        ClassifierTable::build([Entry::new(1, 1, &ms), Entry::new(1, 2, &ms)]).unwrap_err(),
        ClassifierError::DuplicateFlow { flow: 1 }
    );
    let mut t = ClassifierTable::new();
    t.insert(1, 1, &ms).unwrap();
    assert_eq!(
        t.insert(1, 2, &[m_port(2)]),
        Err(ClassifierError::DuplicateFlow { flow: 1 })
    );
    let e = t.insert(2, 1, &[bad]).unwrap_err();
    assert!(e.to_string().contains("flow 2: match key word 0"), "{e}");
    assert!(!t.remove(7));
}

/// The table's observable state: entries with sorted matches, and sizes.
type State = (Vec<(u32, u16, Vec<String>)>, usize, usize);

fn state(t: &ClassifierTable) -> State {
    let e = t
        .entries()
        .into_iter()
        .map(|(f, p, ms)| {
            let mut s: Vec<String> = ms.iter().map(|m| format!("{m:?}")).collect();
            s.sort();
            (f, p, s)
        })
        .collect();
    let st = t.stats();
    (e, st.rules, st.subtables)
}

#[test]
fn insert_and_remove_agree_with_rebuilt_tables() {
    for seed in 0..3u64 {
        let mut rng = Rng::new(500 + seed);
        let pool = testgen::random_table(&mut rng, 1200, 12);
        let mut present = vec![false; pool.len()];
        let mut t = ClassifierTable::new();
        for step in 0..4000 {
            let i = rng.below(pool.len() as u64) as usize;
            let f = &pool[i];
            if present[i] {
                assert!(t.remove(i as u32));
                present[i] = false;
            } else {
                t.insert(i as u32, f.priority, &f.matches).unwrap();
                present[i] = true;
            }
            if step % 500 == 499 {
                let live: Vec<Entry<'_>> = entries(&pool)
                    .filter(|e| present[e.flow as usize])
                    .collect();
                let rebuilt = ClassifierTable::build(live.iter().copied()).unwrap();
                assert_eq!(state(&t), state(&rebuilt), "seed {seed} step {step}");
                for _ in 0..300 {
                    let k = testgen::random_key(&mut rng, &pool);
                    let want = linear_lookup(live.iter().copied(), &k);
                    assert_eq!(t.lookup(&k), want);
                    assert_eq!(rebuilt.lookup(&k), want);
                }
            }
        }
        // Emptying the table leaves nothing behind.
        for (i, was) in present.iter().enumerate() {
            assert_eq!(t.remove(i as u32), *was);
        }
        assert!(t.is_empty());
        assert_eq!(t.stats().subtables, 0);
        assert_eq!(t.lookup(&testgen::pool_key(&mut rng)), None);
    }
}

#[test]
fn insert_many_is_all_or_nothing() {
    let mut rng = Rng::new(901);
    let pool = testgen::random_table(&mut rng, 1200, 40);
    let (base, rest) = pool.split_at(600);
    // 10 and 100 go flow by flow; 200 and the rest (>= 150) rebuild.
    for batch in [10usize, 100, 200, 20_000] {
        let mut t = build(base);
        let before = state(&t);
        let add: Vec<Entry<'_>> = entries(&pool).skip(600).take(batch).collect();
        // A clash at the end of the batch: nothing of it stays.
        let clash = loop {
            let c = testgen::random_flow(&mut rng, 40);
            if testgen::first_overlap(&pool, &c).is_some() {
                break c;
            }
        };
        let bad: Vec<Entry<'_>> = add
            .iter()
            .copied()
            .chain([Entry::new(5000, clash.priority, &clash.matches)])
            .collect();
        let e = t.insert_many(bad).unwrap_err();
        assert!(
            matches!(e, ClassifierError::Overlap { second: 5000, .. }),
            "{e}"
        );
        assert_eq!(state(&t), before, "batch {batch}");
        // Without it, the result is the table built from everything.
        t.insert_many(add.iter().copied()).unwrap();
        let want = build(pool.get(..600 + add.len()).unwrap());
        assert_eq!(state(&t), state(&want), "batch {batch}");
        assert_eq!(t.len(), 600 + batch.min(rest.len()));
        // A flow index already present is refused.
        assert_eq!(
            t.insert_many([Entry::new(3, 1, &pool[3].matches)]),
            Err(ClassifierError::DuplicateFlow { flow: 3 })
        );
    }
}

#[test]
fn removal_reorders_subtables_and_keeps_groups_findable() {
    // Many groups in one subtable so removal swaps groups around.
    let mut flows: Vec<GenFlow> = (0..50u32)
        .map(|i| flow(10, vec![m_dst(0x0a00_0000 | (i << 8), 24)]))
        .collect();
    flows.push(flow(99, vec![m_port(1)]));
    let mut t = build(&flows);
    assert_eq!(t.subtables()[0].max_priority(), 99);
    assert!(t.remove(50));
    assert_eq!(t.subtables().len(), 1);
    for i in (0..50u32).step_by(3) {
        assert!(t.remove(i));
    }
    for i in 0..50u32 {
        let mut k = FlowKey::default();
        k.set_eth_type(0x0800);
        k.set_nw_dst(0x0a00_0005 | (i << 8));
        let want = (i % 3 != 0).then_some(i);
        assert_eq!(t.lookup(&k), want, "route {i}");
    }
    assert_eq!(t.subtables()[0].groups(), 50 - 17);
}

#[test]
fn duplicate_alternatives_are_stored_once() {
    let m = m_dst(0x0a00_0100, 24);
    let t = build(&[flow(1, vec![m, m, m_port(3), m])]);
    assert_eq!(t.stats().rules, 2);
    let mut u = ClassifierTable::new();
    u.insert(0, 1, &[m, m_port(3), m]).unwrap();
    assert_eq!(state(&t), state(&u));
}

#[test]
fn memory_per_flow_is_small() {
    let flows = testgen::bench_table(20_000);
    let t = build(&flows);
    let st = t.stats();
    assert_eq!(st.flows, 20_000);
    let per_flow = st.heap_bytes / st.flows;
    assert!(per_flow < 200, "{per_flow} bytes per flow");
}

fn shape_strategy() -> impl Strategy<Value = Shape> {
    prop::sample::select(testgen::SHAPES.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_classifier_agrees_with_linear_scan(
        seed in any::<u64>(),
        shapes in prop::collection::vec((shape_strategy(), 0u16..6), 1..60),
        ops in prop::collection::vec(any::<u16>(), 0..40),
    ) {
        let mut rng = Rng::new(seed);
        let all: Vec<GenFlow> = shapes
            .into_iter()
            .map(|(shape, prio)| flow(prio, testgen::shape_matches(&mut rng, shape)))
            .collect();
        // Overlap detection on the unfiltered set, against all pairs.
        let any_pair = all.iter().enumerate().any(|(i, a)| {
            all.iter().skip(i + 1).any(|b| a.priority == b.priority && a.overlaps(b))
        });
        match ClassifierTable::build(entries(&all)) {
            Ok(_) => prop_assert!(!any_pair),
            Err(ClassifierError::Overlap { first, second, priority }) => {
                let (a, b) = (&all[first as usize], &all[second as usize]);
                prop_assert!(first < second && a.overlaps(b));
                prop_assert!(a.priority == priority && b.priority == priority);
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
        let mut flows: Vec<GenFlow> = Vec::new();
        for f in all {
            if testgen::first_overlap(&flows, &f).is_none() {
                flows.push(f);
            }
        }
        let built = build(&flows);
        let keys: Vec<FlowKey> = (0..64).map(|_| testgen::random_key(&mut rng, &flows)).collect();
        assert_agrees(&built, &flows, &keys, seed as u32);
        // Remove and re-insert some flows: the answers must not change.
        let mut t = built.clone();
        for op in &ops {
            let i = u32::from(*op) % flows.len() as u32;
            prop_assert!(t.remove(i));
            let f = &flows[i as usize];
            prop_assert_eq!(t.insert(i, f.priority, &f.matches), Ok(()));
        }
        assert_agrees(&t, &flows, &keys, seed as u32);
        prop_assert_eq!(state(&t), state(&built));
    }
}

#[test]
fn tables_can_be_shared_between_workers() {
    fn shared<T: Send + Sync + Clone>() {}
    shared::<ClassifierTable>();
    fn per_worker<T: Send>() {}
    per_worker::<Emc<(u32, u64)>>();
}

// ---- exact-match cache ----

fn key_n(n: u64) -> FlowKey {
    let mut k = FlowKey::default();
    k.set_nw_src(n as u32);
    k.set_tp_dst((n >> 32) as u16);
    k
}

#[test]
fn emc_hit_miss_update_clear() {
    let mut c: Emc<u64> = Emc::new();
    assert_eq!(c.capacity(), EMC_DEFAULT_ENTRIES);
    assert!(c.is_empty());
    // The all-zero key is a key like any other, not an empty slot.
    assert_eq!(c.get(&FlowKey::default()), None);
    c.insert(FlowKey::default(), 9);
    assert_eq!(c.get(&FlowKey::default()), Some(9));
    for i in 1..100 {
        c.insert(key_n(i), i * 10);
    }
    let held = (1..100)
        .filter(|&i| c.get(&key_n(i)) == Some(i * 10))
        .count();
    assert!(held >= 95, "{held}");
    assert_eq!(c.get(&key_n(1000)), None);
    c.insert(key_n(5), 55);
    assert_eq!(c.get(&key_n(5)), Some(55));
    c.clear();
    assert!(c.is_empty());
    assert_eq!(c.get(&key_n(5)), None);
    assert_eq!(c.get(&FlowKey::default()), None);
    assert_eq!(Emc::<u8>::with_capacity(1000).capacity(), 1024);
    assert_eq!(Emc::<u8>::with_capacity(0).capacity(), EMC_WAYS);
}

#[test]
fn emc_replaces_the_oldest_way_on_collision() {
    let mut c: Emc<u32> = Emc::with_capacity(64);
    let target = c.bucket_of(&key_n(0));
    let same: Vec<FlowKey> = (0..)
        .map(key_n)
        .filter(|k| c.bucket_of(k) == target)
        .take(EMC_WAYS + 2)
        .collect();
    for (i, k) in same.iter().enumerate().take(EMC_WAYS) {
        c.insert(*k, i as u32);
    }
    for (i, k) in same.iter().enumerate().take(EMC_WAYS) {
        assert_eq!(c.get(k), Some(i as u32));
    }
    // Updating in place keeps everything.
    c.insert(same[0], 100);
    assert_eq!(c.get(&same[0]), Some(100));
    assert_eq!(c.get(&same[1]), Some(1));
    // A new key evicts the least recently inserted (same[0]).
    c.insert(same[EMC_WAYS], 7);
    assert_eq!(c.get(&same[EMC_WAYS]), Some(7));
    assert_eq!(c.get(&same[0]), None);
    assert_eq!(c.get(&same[1]), Some(1));
    c.insert(same[EMC_WAYS + 1], 8);
    assert_eq!(c.get(&same[1]), None);
    assert_eq!(c.get(&same[EMC_WAYS]), Some(7));
    assert_eq!(c.len(), EMC_WAYS);
}

#[test]
fn emc_spreads_keys_over_buckets() {
    let c: Emc<u8> = Emc::with_capacity(8192);
    let buckets = c.capacity() / EMC_WAYS;
    // Twice as many keys as buckets, varying in one field at a time: a
    // random spread fills 1 - e^-2 = 86% of the buckets.
    let fields: [fn(&mut FlowKey, u64); 3] = [
        |k, i| k.set_nw_src(0x0a00_0000 | i as u32),
        |k, i| k.set_tp_src(i as u16),
        |k, i| k.set_eth_src(0x0200_0000_0000 | i),
    ];
    for set in fields {
        let mut used = std::collections::HashSet::new();
        for i in 0..2 * buckets as u64 {
            let mut k = FlowKey::default();
            set(&mut k, i);
            used.insert(c.bucket_of(&k));
        }
        assert!(
            used.len() * 100 > buckets * 82,
            "{} of {buckets}",
            used.len()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random inserts, lookups through `get` and through the hashed path
    /// (`hash`, `prefetch`, `get_hashed`), and clears on a small cache
    /// (many keys per bucket) against a map of the last value inserted
    /// per key: a lookup finds that value or nothing, never another
    /// key's; a key just inserted is found; a bucket never holds more
    /// than its ways; nothing survives a clear.
    #[test]
    fn emc_never_returns_a_value_of_another_key(
        ops in proptest::collection::vec((0u8..8, 0u64..40, any::<u32>()), 1..400),
    ) {
        let mut c: Emc<u32> = Emc::with_capacity(16);
        let mut last: std::collections::HashMap<u64, u32> = Default::default();
        for (op, k, v) in ops {
            let key = key_n(k);
            match op {
                0..=3 => {
                    c.insert(key, v);
                    last.insert(k, v);
                    prop_assert_eq!(c.get(&key), Some(v));
                }
                4 => {
                    c.clear();
                    last.clear();
                    prop_assert!(c.is_empty());
                }
                _ => {
                    let h = Emc::<u32>::hash(&key);
                    c.prefetch(h);
                    let got = c.get_hashed(&key, h);
                    prop_assert_eq!(got, c.get(&key));
                    if let Some(g) = got {
                        prop_assert_eq!(Some(&g), last.get(&k));
                    }
                }
            }
            prop_assert!(c.len() <= c.capacity());
        }
    }
}
