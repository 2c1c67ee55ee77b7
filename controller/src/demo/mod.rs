//! `flowswitch demo`: runs anywhere, needs no root.
//!
//! Two in-process hosts (smoltcp interfaces, [`host`]) are plugged into
//! memory ports 1 and 2 of a switch built from `flows/demo.yaml` (compiled
//! into the binary): every frame they exchange goes through the same
//! pipeline as on TAP ports (extract, exact-match cache, classifier, the
//! flows' JIT-compiled eBPF programs, actions, output queues). The demo
//!
//! 1. has h1 ping h2 (the first echo waits for ARP, which the `arp` flow
//!    floods);
//! 2. moves a TCP stream from h1 to h2 for `--seconds` (or `--bytes`), and
//!    h2 checks every byte of it against the pattern h1 sent;
//! 3. prints the ping round trips, the stream's throughput, and the
//!    packets and bytes each flow matched.
//!
//! One thread runs everything in turn (hosts, then the switch's worker),
//! so the throughput is that of one core shared by two TCP stacks and the
//! switch; the switch's own share is printed as its per-packet cost.

mod host;
mod stream;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datapath::dp::pipeline::{Datapath, Worker, WorkerConfig};
use datapath::dp::port::MemPort;
use smoltcp::wire::Ipv4Address;
use thiserror::Error;

use crate::dataplane::{self, EngineOpt};
use crate::model;
pub use host::{Host, HostError};
pub use stream::{StreamReport, PATTERN_PERIOD};

/// The demo's switch file, as shipped in `flows/`.
pub const SWITCH_YAML: &str = include_str!("../../../flows/demo.yaml");
/// The name it is reported under.
pub const SWITCH_FILE: &str = "flows/demo.yaml";
/// Frames the switch receives per port per poll.
const BATCH: usize = 64;
/// How long one echo request waits for its reply.
const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// The TCP port h2 listens on.
pub const TCP_PORT: u16 = 5001;

/// What the demo does.
#[derive(Debug, Clone, Copy)]
pub struct DemoOpts {
    pub engine: EngineOpt,
    /// Echo requests from h1 to h2.
    pub pings: u16,
    /// How long h1 sends.
    pub seconds: f64,
    /// Stop sending after this many bytes (if before `seconds`).
    pub bytes: Option<u64>,
}

impl Default for DemoOpts {
    fn default() -> Self {
        DemoOpts {
            engine: EngineOpt::Jit,
            pings: 4,
            seconds: 2.0,
            bytes: None,
        }
    }
}

/// Why the demo could not run.
#[derive(Debug, Error)]
pub enum DemoError {
    #[error("{SWITCH_FILE}: {0}")]
    Switch(String),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("the switch has no port {0}")]
    NoPort(u32),
    #[error("tcp: {0}")]
    Tcp(String),
}

/// One flow's counters after the demo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowHits {
    pub table: u8,
    pub name: String,
    pub packets: u64,
    pub bytes: u64,
}

/// Everything the demo measured.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub engine: EngineOpt,
    pub pings_sent: u16,
    /// Round trips of the replies received, in microseconds.
    pub rtts_us: Vec<f64>,
    pub stream: StreamReport,
    pub flows: Vec<FlowHits>,
    /// Packets the switch processed, and how many were cache hits.
    pub switch_packets: u64,
    pub emc_hits: u64,
    /// Time spent in the switch's worker, per packet.
    pub switch_ns_per_packet: f64,
}

impl DemoReport {
    /// Every ping answered and every byte of the stream arrived intact.
    pub fn ok(&self) -> bool {
        self.rtts_us.len() == usize::from(self.pings_sent) && self.stream.ok()
    }
}

/// The two hosts, their ports, and the switch's one worker.
pub struct Net {
    pub hosts: [Host; 2],
    ports: [Arc<MemPort>; 2],
    dp: Datapath,
    worker: Worker,
    start: Instant,
    /// Time spent in the worker.
    switch_time: Duration,
}

impl Net {
    /// The demo switch with h1 on port 1 and h2 on port 2.
    pub fn new(engine: EngineOpt) -> Result<Net, DemoError> {
        let plan = model::switch_from_str(Path::new(SWITCH_FILE), SWITCH_YAML)
            .map_err(|e| DemoError::Switch(e.to_string()))?;
        let generation = dataplane::build_generation(&plan, engine.engine(), 1)
            .map_err(|e| DemoError::Switch(e.join("; ")))?;
        let ids = dataplane::port_ids(&plan, &[1, 2]);
        let (dp, mems) = dataplane::mem_datapath(&plan, None, &ids, Arc::new(generation))
            .map_err(DemoError::Switch)?;
        let port = |id: u32| {
            mems.iter()
                .find(|m| datapath::dp::port::Port::id(m.as_ref()) == id)
                .cloned()
                .ok_or(DemoError::NoPort(id))
        };
        let (p1, p2) = (port(1)?, port(2)?);
        let worker = dp
            .worker(0, WorkerConfig::default())
            .ok_or_else(|| DemoError::Switch("no worker 0".into()))?;
        let h1 = Host::new(
            "h1",
            [2, 0, 0, 0, 0, 1],
            Ipv4Address::new(10, 0, 0, 1),
            24,
            Arc::clone(&p1),
            1,
        )?;
        let h2 = Host::new(
            "h2",
            [2, 0, 0, 0, 0, 2],
            Ipv4Address::new(10, 0, 0, 2),
            24,
            Arc::clone(&p2),
            2,
        )?;
        Ok(Net {
            hosts: [h1, h2],
            ports: [p1, p2],
            dp,
            worker,
            start: Instant::now(),
            switch_time: Duration::ZERO,
        })
    }

    /// Time since the net was made.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// One round: both hosts send, the switch forwards, the hosts get what
    /// was sent to their ports and read it.
    pub fn step(&mut self) {
        let now = self.start.elapsed();
        let smol_now = smoltcp::time::Instant::from_micros(now.as_micros() as i64);
        for h in &mut self.hosts {
            h.poll(smol_now);
        }
        let t0 = Instant::now();
        // A memory port never fails to receive; the count is not needed.
        let _ = self.worker.poll(BATCH, now.as_nanos() as u64);
        self.switch_time += t0.elapsed();
        for (h, p) in self.hosts.iter_mut().zip(&self.ports) {
            h.deliver(p.take_tx());
        }
        for h in &mut self.hosts {
            h.poll(smol_now);
        }
    }

    /// Steps until `done` holds or `timeout` passes; returns whether it
    /// held.
    pub fn step_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&mut Net) -> bool,
    ) -> bool {
        let end = self.elapsed() + timeout;
        loop {
            if done(self) {
                return true;
            }
            if self.elapsed() >= end {
                return false;
            }
            self.step();
        }
    }

    /// Per-flow counters of the running table.
    pub fn flow_hits(&self) -> Vec<FlowHits> {
        let g = self.dp.generation();
        let stats = g.flow_stats();
        g.flows()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let t = stats.flow(i);
                FlowHits {
                    table: f.table,
                    name: f.name.to_string(),
                    packets: t.packets,
                    bytes: t.bytes,
                }
            })
            .collect()
    }
}

/// h1 pings h2 `count` times; returns the round trips of the replies.
fn ping(net: &mut Net, count: u16) -> Vec<f64> {
    const IDENT: u16 = 0x4653;
    let mut rtts = Vec::new();
    let target = net.hosts[1].ip;
    let icmp = net.hosts[0].icmp_socket();
    if icmp
        .bind(smoltcp::socket::icmp::Endpoint::Ident(IDENT))
        .is_err()
    {
        return rtts;
    }
    for seq in 0..count {
        let sent_at = net.elapsed();
        if stream::send_echo(net.hosts[0].icmp_socket(), target, IDENT, seq).is_err() {
            continue;
        }
        let got = net.step_until(PING_TIMEOUT, |n| {
            stream::recv_echo_reply(n.hosts[0].icmp_socket(), IDENT, seq)
        });
        if got {
            rtts.push((net.elapsed() - sent_at).as_secs_f64() * 1e6);
        }
    }
    rtts
}

/// Runs the demo and measures it.
pub fn demo(opts: &DemoOpts) -> Result<DemoReport, DemoError> {
    let mut net = Net::new(opts.engine)?;
    let rtts_us = ping(&mut net, opts.pings);
    let packets_before = net.worker.stats().packets;
    let switch_before = net.switch_time;
    let stream = stream::run(&mut net, opts.seconds, opts.bytes)?;
    let stats = net.worker.stats();
    let packets = stats.packets - packets_before;
    let switch_ns_per_packet = if packets > 0 {
        (net.switch_time - switch_before).as_nanos() as f64 / packets as f64
    } else {
        0.0
    };
    Ok(DemoReport {
        engine: opts.engine,
        pings_sent: opts.pings,
        rtts_us,
        stream,
        flows: net.flow_hits(),
        switch_packets: stats.packets,
        emc_hits: stats.emc_hits,
        switch_ns_per_packet,
    })
}

/// Prints the report the way `flowswitch demo` shows it.
pub fn print(r: &DemoReport) {
    let engine = match r.engine {
        EngineOpt::Jit => "JIT",
        EngineOpt::Interp => "interpreter",
    };
    println!("flowswitch demo: two in-process hosts on memory ports, one switch");
    println!("  switch  {SWITCH_FILE}, flow programs on the {engine}");
    println!("  h1      02:00:00:00:00:01  10.0.0.1/24  port 1");
    println!("  h2      02:00:00:00:00:02  10.0.0.2/24  port 2");
    println!();
    let n = r.rtts_us.len();
    if n > 0 {
        let min = r.rtts_us.iter().copied().fold(f64::INFINITY, f64::min);
        let max = r.rtts_us.iter().copied().fold(0.0, f64::max);
        let avg = r.rtts_us.iter().sum::<f64>() / n as f64;
        println!(
            "ping h1 -> h2: {n}/{} replies, rtt min/avg/max {min:.0}/{avg:.0}/{max:.0} us",
            r.pings_sent
        );
    } else {
        println!("ping h1 -> h2: 0/{} replies", r.pings_sent);
    }
    let s = &r.stream;
    println!(
        "tcp  h1 -> h2: {} bytes in {:.2} s = {:.2} Gbit/s, payload {}",
        s.received,
        s.seconds,
        s.gbit_per_s(),
        if s.ok() {
            "verified"
        } else if s.mismatch.is_some() {
            "CORRUPT"
        } else {
            "INCOMPLETE"
        }
    );
    if let Some(at) = s.mismatch {
        println!("      first wrong byte at offset {at}");
    }
    println!(
        "switch: {} packets, {} exact-match cache hits, {:.0} ns per packet in the switch",
        r.switch_packets, r.emc_hits, r.switch_ns_per_packet
    );
    println!();
    println!("flows hit:");
    println!(
        "  {:<5} {:<12} {:>10} {:>14}",
        "table", "flow", "packets", "bytes"
    );
    for f in &r.flows {
        println!(
            "  {:<5} {:<12} {:>10} {:>14}",
            f.table, f.name, f.packets, f.bytes
        );
    }
}

/// The `flowswitch demo` verb: exit 0 when every ping was answered and
/// the stream arrived intact.
pub fn run(opts: &DemoOpts) -> ExitCode {
    match demo(opts) {
        Ok(r) => {
            print(&r);
            if r.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("flowswitch demo: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_ping_and_stream_through_the_switch() {
        for engine in [EngineOpt::Jit, EngineOpt::Interp] {
            let r = demo(&DemoOpts {
                engine,
                pings: 3,
                seconds: 30.0,
                bytes: Some(3_000_000),
            })
            .expect("demo runs");
            assert_eq!(r.rtts_us.len(), 3, "{engine:?}: {r:?}");
            assert!(r.stream.ok(), "{engine:?}: {:?}", r.stream);
            assert_eq!(r.stream.received, 3_000_000);
            let hits = |name: &str| {
                r.flows
                    .iter()
                    .find(|f| f.name == name)
                    .map_or(0, |f| f.packets)
            };
            // ARP request and reply were flooded, the echoes and the
            // stream went through their flows, in both directions.
            assert!(hits("arp") >= 2, "{:?}", r.flows);
            assert!(hits("ping") >= 6, "{:?}", r.flows);
            // 3 MB in segments of at most 1460 bytes.
            assert!(hits("tcp-to-h2") >= 3_000_000 / 1460, "{:?}", r.flows);
            assert!(hits("tcp-to-h1") > 0, "{:?}", r.flows);
            assert_eq!(
                r.switch_packets,
                r.flows.iter().map(|f| f.packets).sum::<u64>(),
                "every packet matched one flow"
            );
        }
    }
}
