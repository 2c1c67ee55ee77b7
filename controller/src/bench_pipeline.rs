//! `flowswitch bench pipeline [--flows N] [--engine jit|interp]`: 64-byte
//! frames from memory ports through extract → cache → flow program →
//! actions, on one worker thread, at 10, 1,000 and 100,000 flows (or N).
//!
//! For each size it prints the table's build time (compile + verify + JIT
//! on the rayon pool, then the classifier), the resident memory after the
//! build, and Mpps per core (packets per second of the worker thread's CPU
//! time) for cache-hit traffic and for cache-miss traffic, with the
//! measured hit rates. The table and the traffic are described in
//! `datapath::dp::pipeline::bench`.

use std::process::ExitCode;
use std::time::Duration;

use datapath::dp::pipeline::bench::{
    bench_frames, peak_rss_bytes, rss_bytes, Bench, Rate, FRAME_LEN, HIT_KEYS, MISS_KEYS,
};

use crate::dataplane::EngineOpt;

/// Table sizes measured without `--flows`.
pub const SIZES: [usize; 3] = [10, 1_000, 100_000];

/// Measuring time per traffic pattern.
const MEASURE: Duration = Duration::from_millis(1500);

fn mb(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "?".into(), |b| format!("{:.1} MB", b as f64 / 1e6))
}

/// One size's figures.
#[derive(Debug, Clone, Copy)]
pub struct SizeReport {
    pub flows: usize,
    pub hit: Rate,
    pub miss: Rate,
}

fn one(n: usize, engine: EngineOpt) -> Result<SizeReport, String> {
    let b = Bench::build(n, engine.engine()).map_err(|e| e.to_string())?;
    let rss = rss_bytes();
    println!(
        "{:>7} flows: build {:.1} ms (compile+verify+{} {:.1} ms, classifier {:.1} ms), \
         {} programs, {} insns, RSS {}",
        b.flows.len(),
        b.build_time.as_secs_f64() * 1e3,
        if engine == EngineOpt::Jit {
            "jit"
        } else {
            "load"
        },
        b.build.compile.as_secs_f64() * 1e3,
        b.build.classify.as_secs_f64() * 1e3,
        b.build.programs,
        b.build.instructions,
        mb(rss)
    );
    let hit = b
        .measure(bench_frames(&b.flows, HIT_KEYS), MEASURE)
        .map_err(|e| e.to_string())?;
    let miss = b
        .measure(bench_frames(&b.flows, MISS_KEYS), MEASURE)
        .map_err(|e| e.to_string())?;
    for (what, r) in [("cache hits", hit), ("cache misses", miss)] {
        println!(
            "         {what:<12}: {:6.2} Mpps/core  {:6.1} ns/packet  (hit rate {:5.1}%, {} packets, wall {:.2} s)",
            r.mpps(),
            r.ns_per_packet(),
            100.0 * r.hit_rate(),
            r.packets,
            r.wall.as_secs_f64()
        );
    }
    Ok(SizeReport {
        flows: b.flows.len(),
        hit,
        miss,
    })
}

/// Runs the benchmark and prints the figures.
pub fn run(flows: Option<usize>, engine: EngineOpt) -> ExitCode {
    let sizes: Vec<usize> = match flows {
        Some(n) => vec![n.max(10)],
        None => SIZES.to_vec(),
    };
    println!(
        "bench pipeline: engine {}, {FRAME_LEN}-byte frames, one worker thread, \
         {HIT_KEYS} keys (hits) / {MISS_KEYS} keys (misses), {} cores available for the build",
        if engine == EngineOpt::Jit {
            "jit"
        } else {
            "interp"
        },
        cores()
    );
    let mut reports = Vec::new();
    for n in sizes {
        match one(n, engine) {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!("flowswitch bench pipeline: {n} flows: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let (Some(first), Some(last)) = (reports.first(), reports.last()) {
        if reports.len() > 1 {
            println!(
                "per-packet cost, cache hits: {} flows / {} flows = {:.2}x; cache misses: {:.2}x",
                last.flows,
                first.flows,
                last.hit.ns_per_packet() / first.hit.ns_per_packet().max(1e-9),
                last.miss.ns_per_packet() / first.miss.ns_per_packet().max(1e-9),
            );
        }
    }
    println!("peak RSS {}", mb(peak_rss_bytes()));
    ExitCode::SUCCESS
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
