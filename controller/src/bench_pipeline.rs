//! `flowswitch bench pipeline [--flows N] [--engine jit|interp] [--rounds R]`:
//! 64-byte frames from memory ports through extract → cache → flow program
//! → actions, on one worker thread, at 10, 1,000 and 100,000 flows (or N).
//!
//! It builds every table first and prints each one's build time (compile +
//! verify + JIT on the rayon pool, then the classifier) and the resident
//! memory after it. Then it measures in rounds: each round runs the
//! cache-hit traffic on every table in turn, then the cache-miss traffic,
//! so that the sizes share the machine's quiet and busy spells and their
//! ratio is taken side by side. It prints, per size and traffic, Mpps per
//! core (packets per second of the worker thread's CPU time) as the median
//! over the rounds with their range, the hit rate, and the ratio of the
//! largest table's per-packet cost to the smallest's (the median of the
//! rounds' ratios). The table and the traffic are described in
//! `datapath::dp::pipeline::bench`.

use std::process::ExitCode;
use std::time::Duration;

use datapath::dp::pipeline::bench::{
    bench_frames, peak_rss_bytes, rss_bytes, Bench, Rate, Runner, FRAME_LEN, HIT_KEYS, MISS_KEYS,
};

use crate::dataplane::EngineOpt;

/// Table sizes measured without `--flows`.
pub const SIZES: [usize; 3] = [10, 1_000, 100_000];

/// Default number of rounds.
pub const ROUNDS: u32 = 5;

/// Measuring time per traffic pattern and size, over all rounds.
const MEASURE: Duration = Duration::from_millis(1500);

fn mb(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "?".into(), |b| format!("{:.1} MB", b as f64 / 1e6))
}

/// One table's figures: a rate per round for each traffic pattern.
#[derive(Debug, Clone)]
pub struct SizeReport {
    pub flows: usize,
    pub hit: Vec<Rate>,
    pub miss: Vec<Rate>,
}

/// The median of `v` (the mean of the middle two for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn range(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

fn build(n: usize, engine: EngineOpt) -> Result<Bench, String> {
    let b = Bench::build(n, engine.engine()).map_err(|e| e.to_string())?;
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
        mb(rss_bytes())
    );
    Ok(b)
}

/// A warmed runner of `b` for `keys` distinct keys.
fn runner(b: &Bench, keys: usize) -> Result<Runner, String> {
    b.runner(bench_frames(&b.flows, keys))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the benchmark datapath has no worker".to_string())
}

/// Measures every table in `rounds` rounds (hits, then misses, per round).
fn measure(benches: &[Bench], rounds: usize) -> Result<Vec<SizeReport>, String> {
    let mut hit: Vec<Runner> = Vec::new();
    let mut miss: Vec<Runner> = Vec::new();
    for b in benches {
        hit.push(runner(b, HIT_KEYS)?);
        miss.push(runner(b, MISS_KEYS)?);
    }
    let slice = MEASURE / rounds.max(1) as u32;
    let mut reports: Vec<SizeReport> = benches
        .iter()
        .map(|b| SizeReport {
            flows: b.flows.len(),
            hit: Vec::new(),
            miss: Vec::new(),
        })
        .collect();
    for _ in 0..rounds {
        for (r, rep) in hit.iter_mut().zip(reports.iter_mut()) {
            rep.hit.push(r.measure(slice).map_err(|e| e.to_string())?);
        }
        for (r, rep) in miss.iter_mut().zip(reports.iter_mut()) {
            rep.miss.push(r.measure(slice).map_err(|e| e.to_string())?);
        }
    }
    Ok(reports)
}

fn print_rates(what: &str, reports: &[SizeReport], pick: fn(&SizeReport) -> &[Rate]) {
    println!("{what}:");
    for rep in reports {
        let rates = pick(rep);
        let mpps: Vec<f64> = rates.iter().map(Rate::mpps).collect();
        let (lo, hi) = range(&mpps);
        let med = median(mpps);
        let packets: u64 = rates.iter().map(|r| r.packets).sum();
        let hits: u64 = rates.iter().map(|r| r.stats.emc_hits).sum();
        let seen: u64 = rates.iter().map(|r| r.stats.packets).sum();
        println!(
            "  {:>7} flows: {:6.2} Mpps/core ({:.2}-{:.2})  {:6.1} ns/packet  \
             (hit rate {:5.1}%, {} packets)",
            rep.flows,
            med,
            lo,
            hi,
            1e3 / med.max(1e-9),
            100.0 * hits as f64 / seen.max(1) as f64,
            packets,
        );
    }
}

/// The median and range over the rounds of `last`'s per-packet cost over
/// `first`'s.
fn ratio(first: &[Rate], last: &[Rate]) -> (f64, f64, f64) {
    let r: Vec<f64> = first
        .iter()
        .zip(last)
        .map(|(a, b)| b.ns_per_packet() / a.ns_per_packet().max(1e-9))
        .collect();
    let (lo, hi) = range(&r);
    (median(r), lo, hi)
}

/// Runs the benchmark and prints the figures.
pub fn run(flows: Option<usize>, engine: EngineOpt, rounds: usize) -> ExitCode {
    let sizes: Vec<usize> = match flows {
        Some(n) => vec![n.max(10)],
        None => SIZES.to_vec(),
    };
    let rounds = rounds.max(1);
    println!(
        "bench pipeline: engine {}, {FRAME_LEN}-byte frames, one worker thread, \
         {HIT_KEYS} keys (hits) / {MISS_KEYS} keys (misses), {rounds} rounds, \
         {} cores available for the build",
        if engine == EngineOpt::Jit {
            "jit"
        } else {
            "interp"
        },
        cores()
    );
    let mut benches = Vec::new();
    for n in sizes {
        match build(n, engine) {
            Ok(b) => benches.push(b),
            Err(e) => {
                eprintln!("flowswitch bench pipeline: {n} flows: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let reports = match measure(&benches, rounds) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("flowswitch bench pipeline: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("Mpps per core: the median over the rounds (their range), and its cost per packet");
    print_rates("cache hits", &reports, |r| &r.hit);
    print_rates("cache misses", &reports, |r| &r.miss);
    if let (Some(first), Some(last)) = (reports.first(), reports.last()) {
        if reports.len() > 1 {
            let (h, hlo, hhi) = ratio(&first.hit, &last.hit);
            let (m, mlo, mhi) = ratio(&first.miss, &last.miss);
            println!(
                "per-packet cost, {} flows / {} flows (median of the rounds, range): \
                 cache hits {h:.2}x ({hlo:.2}-{hhi:.2}); cache misses {m:.2}x ({mlo:.2}-{mhi:.2})",
                last.flows, first.flows,
            );
        }
    }
    println!("peak RSS {}", mb(peak_rss_bytes()));
    ExitCode::SUCCESS
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ranges() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
        assert_eq!(range(&[2.0, 5.0, 1.0]), (1.0, 5.0));
    }
}
