//! Differential tests: random switches of at least 1,000 flows (three
//! tables, every action kind, optionally custom filters and actions)
//! against random frames, repeated so that the cache serves most of them.
//! The fast path (cache, classifier, chosen engine) and the reference
//! (linear scan, interpreter) each run their own datapath (ports, MAC
//! table, meters) on the same frames at the same times; per frame the
//! flows chosen, the frames sent (port and bytes, as traced and as the
//! ports received them) and the drop reason must be identical.

use std::collections::BTreeMap;

use super::*;
use crate::classifier::testgen::Rng;
use crate::dp::port::Frame;
use crate::dp::stats::DropReason;

/// Distinct frames per run; each is sent several times.
const DISTINCT: usize = 400;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What a run covered, so that a degenerate generator fails the test.
#[derive(Debug, Default)]
struct Coverage {
    sent: usize,
    drops: BTreeMap<&'static str, usize>,
    misses: usize,
    gotos: usize,
}

fn differential(seed: u64, custom: bool, engine: Engine, count: usize, cov: &mut Coverage) {
    let mut rng = Rng::new(seed);
    let flows = gen::switch(&mut rng, &[1000, 300, 100], custom);
    assert!(flows.len() >= 1000, "only {} flows", flows.len());
    let customs = gen::customs(custom);
    let miss = [MissPolicy::Drop, MissPolicy::Normal, MissPolicy::Flood][(seed % 3) as usize];
    let fast = Rig::new(build(&flows, &customs, miss, engine));
    let slow = Rig::new(build(&flows, &customs, miss, Engine::Interp));
    let mut worker = fast.dp.worker(0, WorkerConfig::default()).unwrap();
    let mut reference = slow.dp.reference(slow.dp.generation()).unwrap();
    let pool = gen::frames(&mut rng, &flows, DISTINCT);
    for i in 0..count {
        let (port, bytes) = &pool[rng.below(pool.len() as u64) as usize];
        let now = i as u64 * MS;
        let want = reference.trace(&mut Frame::from_bytes(bytes), *port, now);
        let mut f = Frame::from_bytes(bytes);
        let ctx = || {
            format!(
                "seed {seed} engine {} frame {i} in_port {port}: {}",
                engine.name(),
                hex(bytes)
            )
        };
        if i % 3 == 0 {
            // Untraced: only the ports see the result.
            let out = worker.process(&mut f, *port, now);
            worker.flush();
            assert_eq!(out.drop, want.drop, "{}", ctx());
            assert_eq!(out.sent as usize, want.outputs.len(), "{}", ctx());
        } else {
            let got = worker.trace(&mut f, *port, now);
            assert_eq!(got, want, "{}", ctx());
        }
        assert_eq!(fast.sent(), slow.sent(), "{}", ctx());
        cov.sent += want.outputs.len();
        if let Some(r) = want.drop {
            *cov.drops.entry(r.name()).or_default() += 1;
        }
        cov.misses += want.steps.iter().filter(|s| s.flow.is_none()).count();
        cov.gotos += want.steps.len().saturating_sub(1);
    }
    let st = worker.stats();
    assert!(
        st.emc_hits > count as u64 / 4,
        "seed {seed}: only {} cache hits in {count} packets",
        st.emc_hits
    );
    assert_eq!(st.packets, count as u64);
}

fn check_coverage(cov: &Coverage, custom: bool) {
    assert!(cov.sent > 100, "{cov:?}");
    assert!(cov.misses > 10 && cov.gotos > 10, "{cov:?}");
    for r in ["drop", "meter", "ttl", "parse_ethernet"] {
        assert!(
            cov.drops.get(r).is_some_and(|&n| n > 0),
            "no {r} drops: {cov:?}"
        );
    }
    if custom {
        assert!(
            cov.drops
                .get(DropReason::Custom.name())
                .is_some_and(|&n| n > 0),
            "no custom drops: {cov:?}"
        );
    }
}

/// Runs `seeds` and checks what they covered together.
fn run(seeds: &[(u64, Engine)], custom: bool) {
    let mut cov = Coverage::default();
    for &(seed, engine) in seeds {
        differential(seed, custom, engine, 3000, &mut cov);
    }
    check_coverage(&cov, custom);
}

#[test]
fn jit_fast_path_matches_the_reference() {
    run(
        &[(1, Engine::Jit), (2, Engine::Jit), (3, Engine::Jit)],
        false,
    );
}

#[test]
fn interp_fast_path_matches_the_reference() {
    run(
        &[
            (11, Engine::Interp),
            (12, Engine::Interp),
            (13, Engine::Interp),
        ],
        false,
    );
}

#[test]
fn custom_filters_and_actions_match_the_reference() {
    run(
        &[(21, Engine::Jit), (22, Engine::Interp), (23, Engine::Jit)],
        true,
    );
}

/// Batches (keys looked up in the cache before any of the batch's paths
/// is inserted; outputs flushed once per batch) against the reference one
/// frame at a time: every port receives the same frames in the same order.
#[test]
fn batches_match_the_reference() {
    for (seed, engine, custom) in [
        (31, Engine::Jit, false),
        (32, Engine::Jit, true),
        (33, Engine::Interp, true),
    ] {
        let mut rng = Rng::new(seed);
        let flows = gen::switch(&mut rng, &[1000, 300, 100], custom);
        let customs = gen::customs(custom);
        let fast = Rig::new(build(&flows, &customs, MissPolicy::Normal, engine));
        let slow = Rig::new(build(&flows, &customs, MissPolicy::Normal, Engine::Interp));
        let mut worker = fast.dp.worker(0, WorkerConfig::default()).unwrap();
        let mut reference = slow.dp.reference(slow.dp.generation()).unwrap();
        let pool = gen::frames(&mut rng, &flows, DISTINCT / 4);
        let mut batch = Vec::new();
        for b in 0..300u64 {
            // One ingress port and one time per batch, as a device read.
            let port = 1 + rng.below(4) as u32;
            let now = b * MS;
            batch.clear();
            for _ in 0..1 + rng.below(32) {
                let (_, bytes) = &pool[rng.below(pool.len() as u64) as usize];
                batch.push(Frame::from_bytes(bytes));
                reference.trace(&mut Frame::from_bytes(bytes), port, now);
            }
            worker.process_frames(&mut batch, port, now);
            worker.flush();
            assert_eq!(fast.sent(), slow.sent(), "seed {seed} batch {b}");
        }
        assert!(worker.stats().emc_hits > 1000, "{:?}", worker.stats());
    }
}
