//! Criterion benchmarks of the classifier: exact-match cache hits and
//! misses, table lookups at 10, 1,000 and 100,000 flows (the same handful of
//! masks at every size), filtered lookups, and building 100,000 flows.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use datapath::classifier::testgen::{bench_keys, bench_table, entries, Rng};
use datapath::classifier::{ClassifierTable, Emc};

/// Keys per measured batch.
const KEYS: usize = 4096;

fn emc(c: &mut Criterion) {
    let flows = bench_table(100_000);
    let table = ClassifierTable::build(entries(&flows)).expect("bench table builds");
    let mut rng = Rng::new(1);
    let keys = bench_keys(&mut rng, &flows, KEYS);
    let mut cache: Emc<u64> = Emc::new();
    for k in &keys {
        cache.insert(*k, u64::from(table.lookup(k).unwrap_or(u32::MAX)));
    }
    let resident: Vec<_> = keys
        .iter()
        .filter(|k| cache.get(k).is_some())
        .copied()
        .collect();
    let misses = bench_keys(&mut Rng::new(2), &flows, KEYS);
    let mut g = c.benchmark_group("emc");
    g.throughput(Throughput::Elements(resident.len() as u64));
    g.bench_function("hit", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for k in &resident {
                acc = acc.wrapping_add(cache.get(black_box(k)).unwrap_or(0));
            }
            acc
        })
    });
    g.throughput(Throughput::Elements(misses.len() as u64));
    g.bench_function("miss", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for k in &misses {
                acc = acc.wrapping_add(cache.get(black_box(k)).unwrap_or(1));
            }
            acc
        })
    });
    g.bench_function("insert", |b| {
        b.iter(|| {
            for (i, k) in misses.iter().enumerate() {
                cache.insert(*black_box(k), i as u64);
            }
        })
    });
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(KEYS as u64));
    for n in [10usize, 1_000, 100_000] {
        let flows = bench_table(n);
        let table = ClassifierTable::build(entries(&flows)).expect("bench table builds");
        let keys = bench_keys(&mut Rng::new(n as u64), &flows, KEYS);
        g.bench_function(format!("{n}-flows"), |b| {
            b.iter(|| {
                let mut acc = 0u32;
                for k in &keys {
                    acc = acc.wrapping_add(table.lookup(black_box(k)).unwrap_or(0));
                }
                acc
            })
        });
        g.bench_function(format!("{n}-flows-filtered"), |b| {
            b.iter(|| {
                let mut acc = 0u32;
                for k in &keys {
                    let got = table.lookup_filtered(black_box(k), |f| f % 5 != 0);
                    acc = acc.wrapping_add(got.unwrap_or(0));
                }
                acc
            })
        });
    }
    g.finish();
}

fn build(c: &mut Criterion) {
    let flows = bench_table(100_000);
    let mut g = c.benchmark_group("build");
    g.sample_size(10);
    g.bench_function("100000-flows", |b| {
        b.iter(|| ClassifierTable::build(entries(black_box(&flows))).map(|t| t.len()))
    });
    let mut table = ClassifierTable::build(entries(&flows)).expect("bench table builds");
    // An exact 5-tuple flow: its priority is shared by 60,000 others.
    let i = 50_000u32;
    let f = flows.get(i as usize).expect("flow 50000").clone();
    g.bench_function("remove-insert-at-100000", |b| {
        b.iter(|| {
            table.remove(i);
            table.insert(i, f.priority, &f.matches)
        })
    });
    g.finish();
}

criterion_group!(benches, emc, lookup, build);
criterion_main!(benches);
