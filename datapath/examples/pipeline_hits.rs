//! A profiling driver for the pipeline's cache-hit path: builds the
//! benchmark table of N flows (`argv[1]`, default 10) and runs the hit
//! traffic for a fixed number of batches (`argv[2]`, default 20,000), so
//! that `valgrind --tool=callgrind` can count instructions per packet, and
//! prints the wall time per packet of the fastest tenth of the run.

use datapath::dp::pipeline::bench::{bench_frames, Bench, BATCH, HIT_KEYS};
use datapath::ebpf::engine::Engine;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let batches: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let b = Bench::build(n, Engine::Jit).expect("build");
    let Some((_dp, mut w, mut now)) = b
        .warmed(bench_frames(&b.flows, HIT_KEYS))
        .expect("datapath")
    else {
        eprintln!("the generation has no worker 0");
        return;
    };
    // Rounds of `batches / 10` batches; the fastest round is the figure
    // least disturbed by other work on the machine.
    let s0 = w.stats();
    let per_round = (batches / 10).max(1);
    let mut best = f64::MAX;
    let mut packets = 0usize;
    for _ in 0..10 {
        let t0 = std::time::Instant::now();
        let mut n = 0usize;
        for _ in 0..per_round {
            n += w.poll(BATCH, now).unwrap_or(0);
            now += 1000;
        }
        let ns = t0.elapsed().as_secs_f64() * 1e9 / n.max(1) as f64;
        best = best.min(ns);
        packets += n;
    }
    let s1 = w.stats();
    println!(
        "{n} flows: {packets} packets, {} hits, best round {best:.1} ns/packet (wall)",
        s1.emc_hits - s0.emc_hits,
    );
}
