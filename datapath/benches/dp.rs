//! Criterion benchmarks of the datapath pieces around the flow programs:
//! MAC table lookups and refreshes of known addresses (the `normal` fast
//! path), learning new addresses, a meter's admit, and per-packet action
//! costs (output with a copy, FINAL output with a move, normal) including
//! the batch flush to a counting memory port.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use datapath::dp::actions::{PacketState, FINAL};
use datapath::dp::mac::{MacConfig, MacTable};
use datapath::dp::meter::{Meter, Meters};
use datapath::dp::port::{Frame, MemPort, Port, PortSet, TxMode};
use datapath::dp::stats::WorkerCounters;

/// Addresses per measured batch.
const MACS: u64 = 4096;

fn mac(n: u64) -> u64 {
    0x0200_0000_0000 + n.wrapping_mul(2_654_435_761) % (1 << 40)
}

fn mac_table(c: &mut Criterion) {
    let t = MacTable::new(MacConfig::default());
    for i in 0..MACS {
        t.learn((i % 4) as u16, mac(i), (i % 8) as u32, 0);
    }
    let mut g = c.benchmark_group("mac");
    g.throughput(Throughput::Elements(MACS));
    g.bench_function("lookup_hit", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for i in 0..MACS {
                acc = acc.wrapping_add(t.lookup((i % 4) as u16, black_box(mac(i)), 1).unwrap_or(0));
            }
            acc
        })
    });
    g.bench_function("lookup_miss", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for i in MACS..2 * MACS {
                acc = acc.wrapping_add(t.lookup(0, black_box(mac(i)), 1).unwrap_or(1));
            }
            acc
        })
    });
    // Same port, time advancing: the refresh store runs every time.
    let mut now = 1u64;
    g.bench_function("learn_refresh", |b| {
        b.iter(|| {
            now += 1;
            for i in 0..MACS {
                black_box(t.learn((i % 4) as u16, black_box(mac(i)), (i % 8) as u32, now));
            }
        })
    });
    // Addresses never seen: each learn takes the bucket lock (and evicts
    // once the table is full).
    let mut next = 1u64 << 20;
    g.bench_function("learn_new", |b| {
        b.iter(|| {
            for _ in 0..MACS {
                next += 1;
                black_box(t.learn(0, mac(next), 1, now));
            }
        })
    });
    g.finish();
}

fn meter(c: &mut Criterion) {
    let mut g = c.benchmark_group("meter");
    g.throughput(Throughput::Elements(1));
    // Time advancing every packet: refill + admit.
    let m = Meter::new(100_000_000, 1_000).expect("meter");
    let mut t = 0u64;
    g.bench_function("admit_refill", |b| {
        b.iter(|| {
            t += 50;
            m.admit(black_box(64), t)
        })
    });
    // Same time (one clock read per batch): admit only. A bucket that
    // never runs dry, so every packet passes.
    let deep = Meter::new(1, u64::MAX).expect("meter");
    g.bench_function("admit_same_time", |b| {
        b.iter(|| deep.admit(black_box(64), 0))
    });
    g.finish();
}

fn actions(c: &mut Criterion) {
    let mems: Vec<_> = (1..=4)
        .map(|id| Arc::new(MemPort::with_mode(id, format!("p{id}"), TxMode::Count)))
        .collect();
    let ports = Arc::new(
        PortSet::new(mems.iter().map(|m| m.clone() as Arc<dyn Port>).collect()).expect("ports"),
    );
    let mac_table = Arc::new(MacTable::new(MacConfig::default()));
    let counters = Arc::new(WorkerCounters::new(ports.len()));
    let meters = Arc::new(Meters::default());
    let mut st = PacketState::new(0, ports, mac_table, meters, counters);
    let pkt = {
        let mut p = vec![0u8; 64];
        p[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        p[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        p[12..14].copy_from_slice(&[0x08, 0x00]);
        p
    };
    let back = {
        let mut p = pkt.clone();
        p[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        p[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        p
    };
    const BATCH: u64 = 32;
    let mut frames: Vec<Frame> = (0..BATCH).map(|_| Frame::from_bytes(&pkt)).collect();
    let mut g = c.benchmark_group("actions");
    g.throughput(Throughput::Elements(BATCH));
    // Per packet: begin, one action, finish; a flush per batch.
    let mut run = |name: &str, st: &mut PacketState, act: &dyn Fn(&mut PacketState, &[u8])| {
        g.bench_function(name, |b| {
            b.iter(|| {
                for f in frames.iter_mut() {
                    if f.is_empty() {
                        f.set(&pkt);
                    }
                    st.begin(1, 0);
                    act(st, f.data());
                    st.finish(f, None);
                }
                st.flush();
            })
        });
    };
    run("output_copy", &mut st, &|st, d| st.output(d, 2, 0));
    run("output_final_move", &mut st, &|st, d| {
        st.output(d, 2, FINAL)
    });
    // H2 learned on port 2, so normal forwards to it (and refreshes H1).
    let mut f = Frame::from_bytes(&back);
    st.begin(2, 0);
    st.normal(&back, 0);
    st.finish(&mut f, None);
    run("normal_known", &mut st, &|st, d| st.normal(d, FINAL));
    run("flood_final", &mut st, &|st, d| st.flood(d, FINAL));
    g.finish();
}

criterion_group!(benches, mac_table, meter, actions);
criterion_main!(benches);
