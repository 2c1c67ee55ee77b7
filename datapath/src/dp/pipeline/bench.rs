//! The pipeline benchmark (`flowswitch bench pipeline`): a synthetic table,
//! 64-byte frames that hit it, and a measuring loop that receives from
//! memory ports and runs the whole path (extract, cache, classifier, flow
//! program, actions, output queues).
//!
//! The table is [`testgen::bench_table`]'s mask mix (MAC flows, /24
//! routes, exact 5-tuples, port ranges, a catch-all) with actions: exact
//! 5-tuples `output` (half of them after `dec_ttl`), routes `output`,
//! MAC flows `output`, port ranges `dec_ttl, output`, the catch-all `drop`.
//!
//! Traffic: [`HIT_KEYS`] distinct keys spread over the exact 5-tuple
//! flows (fewer flows than keys: the keys differ in the source MAC, which
//! no flow matches), sent round-robin: after one pass every packet is an
//! exact-match cache hit. The miss traffic cycles through [`MISS_KEYS`]
//! keys, more than the cache holds, so nearly every packet goes through
//! the classifier.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::datapath::{Datapath, DatapathError};
use super::generation::{BuildError, BuildStats, Generation, GenerationSpec, MissPolicy};
use super::worker::{Worker, WorkerConfig, WorkerStats};
use crate::classifier::testgen::{self, GenFlow};
use crate::dp::mac::MacTable;
use crate::dp::meter::Meters;
use crate::dp::port::{MemPort, Port, TxMode};
use crate::ebpf::engine::Engine;
use crate::flow::key::{OFF_IN_PORT, OFF_IP_PROTO, OFF_NW_DST, OFF_NW_SRC, OFF_TP_DST, OFF_TP_SRC};
use crate::flow::spec::{Action, FlowSpec, Match};
use crate::packet::build::{Builder, Ipv4, Tcp, Udp};

/// Distinct keys of the cache-hit traffic.
pub const HIT_KEYS: usize = 1024;
/// Distinct keys of the cache-miss traffic (four times the default cache).
pub const MISS_KEYS: usize = 32_768;
/// Bytes per frame.
pub const FRAME_LEN: usize = 64;
/// Frames received per port per batch.
pub const BATCH: usize = 32;

/// The benchmark table of `n` flows, as flow specs in table 0.
pub fn bench_flows(n: usize) -> Vec<FlowSpec> {
    let gen = testgen::bench_table(n);
    let mut exact = 0usize;
    gen.into_iter()
        .enumerate()
        .map(|(i, g)| {
            let actions = match classify(&g) {
                Kind::Exact => {
                    exact += 1;
                    if exact & 1 == 0 {
                        vec![Action::DecTtl, Action::Output(vec![2])]
                    } else {
                        vec![Action::Output(vec![3])]
                    }
                }
                Kind::Range => vec![Action::DecTtl, Action::Output(vec![2])],
                Kind::CatchAll => vec![Action::Drop],
                Kind::Other => vec![Action::Output(vec![3])],
            };
            FlowSpec {
                name: format!("f{i}"),
                table: 0,
                priority: g.priority,
                matches: g.matches,
                filter: None,
                actions,
                idle_timeout: 0,
                hard_timeout: 0,
            }
        })
        .collect()
}

enum Kind {
    Exact,
    Range,
    CatchAll,
    Other,
}

fn classify(g: &GenFlow) -> Kind {
    match (g.matches.len(), g.matches.first()) {
        (1, Some(m)) if *m == Match::any() => Kind::CatchAll,
        (1, Some(m)) if m.mask.get::<2>(OFF_TP_SRC) == 0xffff => Kind::Exact,
        (n, _) if n > 1 => Kind::Range,
        _ => Kind::Other,
    }
}

/// A 64-byte frame matching exact flow `m`, with source MAC number `src`.
fn frame_for(m: &Match, src: u32) -> Vec<u8> {
    let k = &m.key;
    let s = src.to_be_bytes();
    let b = Builder::new([2, 0xbe, s[0], s[1], s[2], s[3]], [2, 0, 0, 0, 0, 9]).ipv4(Ipv4::new(
        Ipv4Addr::from(k.get::<4>(OFF_NW_SRC) as u32),
        Ipv4Addr::from(k.get::<4>(OFF_NW_DST) as u32),
    ));
    let (sp, dp) = (k.get::<2>(OFF_TP_SRC) as u16, k.get::<2>(OFF_TP_DST) as u16);
    let b = if k.get::<1>(OFF_IP_PROTO) == 17 {
        b.udp(Udp::new(sp, dp))
    } else {
        b.tcp(Tcp::new(sp, dp))
    };
    b.pad_to(FRAME_LEN).build()
}

/// `count` frames over the exact flows of `flows` (round-robin over at
/// most `count` of them, spread over the table), each with a distinct
/// source MAC.
pub fn bench_frames(flows: &[FlowSpec], count: usize) -> Vec<Vec<u8>> {
    let exact: Vec<&Match> = flows
        .iter()
        .filter(|f| f.matches.len() == 1)
        .filter_map(|f| f.matches.first())
        .filter(|m| m.mask.get::<2>(OFF_TP_SRC) == 0xffff && m.mask.get::<4>(OFF_IN_PORT) == 0)
        .collect();
    if exact.is_empty() {
        return Vec::new();
    }
    let stride = (exact.len() / count.min(exact.len())).max(1);
    (0..count)
        .filter_map(|i| {
            let m = exact.get((i * stride) % exact.len())?;
            Some(frame_for(m, i as u32))
        })
        .collect()
}

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rate {
    pub packets: u64,
    pub wall: Duration,
    /// CPU time of the measuring thread (wall time where it cannot be read).
    pub cpu: Duration,
    /// Cache figures over the measured packets.
    pub stats: WorkerStats,
}

impl Rate {
    /// Million packets per second of CPU time: per core.
    pub fn mpps(&self) -> f64 {
        self.packets as f64 / self.cpu.as_secs_f64().max(1e-9) / 1e6
    }

    /// Nanoseconds of CPU time per packet.
    pub fn ns_per_packet(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e9 / (self.packets.max(1) as f64)
    }

    /// Fraction of packets whose path came from the cache.
    pub fn hit_rate(&self) -> f64 {
        self.stats.emc_hits as f64 / (self.stats.packets.max(1) as f64)
    }
}

/// This thread's CPU time, from `/proc/thread-self/schedstat` (ns).
pub fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Resident memory of this process (`VmRSS`), in bytes.
pub fn rss_bytes() -> Option<u64> {
    proc_status_kb("VmRSS:").map(|kb| kb * 1024)
}

/// Peak resident memory of this process (`VmHWM`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_kb("VmHWM:").map(|kb| kb * 1024)
}

fn proc_status_kb(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A benchmark table, built.
pub struct Bench {
    pub flows: Vec<FlowSpec>,
    pub generation: Arc<Generation>,
    /// Wall time of [`Generation::build`] (compile, verify, JIT, classifier).
    pub build_time: Duration,
    pub build: BuildStats,
}

impl Bench {
    /// Builds the table of `n` flows for `engine` (on the current rayon
    /// pool).
    pub fn build(n: usize, engine: Engine) -> Result<Bench, BuildError> {
        let flows = bench_flows(n);
        let t0 = Instant::now();
        let generation = Generation::build(&GenerationSpec {
            flows: &flows,
            filters: &[],
            actions: &[],
            miss: MissPolicy::Drop,
            engine,
            workers: 1,
            maps: None,
        })?;
        let build_time = t0.elapsed();
        let build = generation.build_stats();
        Ok(Bench {
            flows,
            generation: Arc::new(generation),
            build_time,
            build,
        })
    }

    /// A fresh datapath whose port 1 repeats `templates` round-robin (ports
    /// 2 and 3 count what they are sent), and its worker 0 after one pass
    /// over the templates; with the simulated clock (ns) reached. `None`
    /// if the generation has no worker 0.
    pub fn warmed(
        &self,
        templates: Vec<Vec<u8>>,
    ) -> Result<Option<(Datapath, Worker, u64)>, DatapathError> {
        let rx = Arc::new(MemPort::with_mode(1, "rx", TxMode::Count));
        let ports: Vec<Arc<dyn Port>> = vec![
            Arc::clone(&rx) as Arc<dyn Port>,
            Arc::new(MemPort::with_mode(2, "tx2", TxMode::Count)),
            Arc::new(MemPort::with_mode(3, "tx3", TxMode::Count)),
        ];
        let dp = Datapath::with_ports(
            ports,
            MacTable::default(),
            Meters::default(),
            Arc::clone(&self.generation),
            1,
        )?;
        let Some(mut w) = dp.worker(0, WorkerConfig::default()) else {
            return Ok(None);
        };
        let warm = templates.len() as u64;
        rx.repeat_rx(templates, None);
        let mut now = 0u64;
        let mut seen = 0u64;
        while seen < warm {
            seen += w.poll(BATCH, now).map_err(DatapathError::Port)? as u64;
            now += 1000;
        }
        Ok(Some((dp, w, now)))
    }

    /// Sends `templates` round-robin into port 1 of a fresh datapath for
    /// about `duration` (after one warm-up pass over the templates) and
    /// measures one worker.
    pub fn measure(
        &self,
        templates: Vec<Vec<u8>>,
        duration: Duration,
    ) -> Result<Rate, DatapathError> {
        match self.runner(templates)? {
            Some(mut r) => r.measure(duration),
            None => Ok(Rate::default()),
        }
    }

    /// A warmed datapath and worker (see [`warmed`](Self::warmed)) to
    /// measure several times: the rounds of a benchmark that interleaves
    /// table sizes.
    pub fn runner(&self, templates: Vec<Vec<u8>>) -> Result<Option<Runner>, DatapathError> {
        Ok(self.warmed(templates)?.map(|(dp, worker, now)| Runner {
            _dp: dp,
            worker,
            now,
        }))
    }
}

/// A warmed worker of a benchmark datapath, measured round after round.
pub struct Runner {
    _dp: Datapath,
    worker: Worker,
    /// The simulated clock (ns).
    now: u64,
}

impl Runner {
    /// Polls the worker for about `duration` and measures it.
    pub fn measure(&mut self, duration: Duration) -> Result<Rate, DatapathError> {
        let w = &mut self.worker;
        let before = w.stats();
        let cpu0 = thread_cpu();
        let t0 = Instant::now();
        let mut packets = 0u64;
        loop {
            for _ in 0..64 {
                packets += w.poll(BATCH, self.now).map_err(DatapathError::Port)? as u64;
                self.now += 1000;
            }
            if t0.elapsed() >= duration {
                break;
            }
        }
        let wall = t0.elapsed();
        let cpu = match (cpu0, thread_cpu()) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => wall,
        };
        let after = w.stats();
        Ok(Rate {
            packets,
            wall,
            cpu,
            stats: WorkerStats {
                packets: after.packets - before.packets,
                emc_hits: after.emc_hits - before.emc_hits,
                emc_misses: after.emc_misses - before.emc_misses,
                emc_inserts: after.emc_inserts - before.emc_inserts,
                fast_hits: after.fast_hits - before.fast_hits,
            },
        })
    }
}
