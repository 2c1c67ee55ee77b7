//! `flowswitch run SWITCH.yaml [--pcap PORT=FILE ...] [--engine jit|interp]
//! [--run-dir DIR]`: the switch on real TAP devices, with its control
//! socket and hot reload.
//!
//! It creates a TAP device for each entry of `ports:` (offload ports with
//! the virtio-net header, TSO and checksum offload, `queues` descriptors;
//! plain ports through the `tun-tap` crate), brings them up, compiles the
//! flows, starts `switch.threads` workers
//! ([`datapath::dp::switch::Switch`]) and hands the switch to a
//! [`Switchd`], which serves the control socket
//! `<run dir>/<switch.name>.sock` (`flowswitch ctl`) and reloads the file
//! on `ctl reload`, SIGHUP or a change to the file (creating the TAPs of
//! ports the file added, removing those it dropped), and expires
//! timed-out flows. It forwards until SIGINT or SIGTERM. Then it removes the socket,
//! stops the workers, prints the port counters and closes the TAP
//! descriptors, which removes the devices (they are not persistent), and
//! exits 0.
//!
//! [`RunningSwitch`] is the same thing as a library: tests and
//! `flowswitch up` start a switch in-process with [`RunningSwitch::start`]
//! (no controller) or [`RunningSwitch::controlled`] (with its [`Switchd`];
//! then [`Switchd::serve`] for the socket), add and remove TAP ports while
//! it runs, and [`RunningSwitch::stop`] it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datapath::dp::mac::{MacConfig, MacTable};
use datapath::dp::meter::Meters;
use datapath::dp::pipeline::Generation;
use datapath::dp::port::{Port, PortId, PortSet, TaggedPort, TapConfig, TapPort, VlanSet};
use datapath::dp::stats::Snapshot;
use datapath::dp::switch::{Switch, SwitchConfig};
use datapath::ebpf::engine::Engine;

use crate::capture::CapturePort;
use crate::dataplane::{self, EngineOpt};
use crate::model::{self, PortDesc, SwitchPlan};
use crate::switchd::watch::WatchOptions;
use crate::switchd::{self, Plane, Switchd};

/// How to run a switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    pub engine: Engine,
    /// Ports (id or name) whose traffic goes to a pcap file.
    pub pcap: Vec<(String, PathBuf)>,
    /// Worker threads (`None`: the file's `switch.threads`).
    pub threads: Option<usize>,
    /// MTU of the TAP devices (`None`: 1,500).
    pub mtu: Option<u32>,
    /// Ports whose host is on one VLAN (topology hosts with `vlan:`).
    pub host_vlans: Vec<HostVlan>,
    /// The ports stay as started: a reload that adds or removes one is
    /// refused (`flowswitch up`, which wires each TAP into a namespace).
    pub fixed_ports: bool,
}

/// A port whose host is on one VLAN: the port carries only that VLAN for
/// `normal` flooding, and, when the host's kernel cannot tag, the switch
/// tags for it ([`TaggedPort`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostVlan {
    pub port: PortId,
    pub vid: u16,
    /// The switch pushes and pops the host's tag.
    pub switch_tags: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            engine: Engine::Jit,
            pcap: Vec::new(),
            threads: None,
            mtu: None,
            host_vlans: Vec::new(),
            fixed_ports: false,
        }
    }
}

/// A running switch with its TAP ports; see the [module docs](self).
#[derive(Debug)]
pub struct RunningSwitch {
    switch: Arc<Switch>,
    taps: Mutex<Vec<Arc<TapPort>>>,
    captures: Vec<Arc<CapturePort>>,
    mtu: Option<u32>,
    fixed_ports: bool,
}

/// The TAP settings of a port of the file.
pub fn tap_config(p: &PortDesc, mtu: Option<u32>) -> TapConfig {
    TapConfig {
        id: p.id,
        name: p.name.clone(),
        offload: p.offload,
        queues: p.queues,
        mtu,
    }
}

impl RunningSwitch {
    /// Creates `plan`'s TAP ports, compiles its flows and starts the
    /// workers.
    pub fn start(plan: &SwitchPlan, opts: &RunOptions) -> Result<Self, String> {
        let threads = opts.threads.unwrap_or(plan.threads).max(1);
        let generation =
            dataplane::build_generation(plan, opts.engine, threads).map_err(|e| e.join("\n"))?;
        Self::start_with(plan, Arc::new(generation), opts)
    }

    /// Loads and compiles the switch file `path` and starts it under a
    /// [`Switchd`] (reloads, run-time flows, reports; one clock for
    /// packets and timeouts). Serve its socket with [`Switchd::serve`].
    pub fn controlled(path: &Path, opts: &RunOptions) -> Result<(Arc<Self>, Arc<Switchd>), String> {
        let plan = model::load_switch(path).map_err(|e| e.to_string())?;
        Self::controlled_as(path, &plan, opts, None)
    }

    /// [`controlled`](Self::controlled) with the TAPs of `plan`, the
    /// switch of the file `path` with its ports as they are to be created
    /// (`flowswitch up` names them after the hosts), answering to `name`
    /// (`None`: the file's `switch.name`).
    pub fn controlled_as(
        path: &Path,
        plan: &SwitchPlan,
        opts: &RunOptions,
        name: Option<String>,
    ) -> Result<(Arc<Self>, Arc<Switchd>), String> {
        let sopts = switchd::Options {
            engine: opts.engine,
            workers: opts.threads.unwrap_or(plan.threads).max(1),
            name,
            ..switchd::Options::default()
        };
        let prep = Switchd::prepare(path, &sopts).map_err(|e| e.to_string())?;
        let sw = Arc::new(Self::start_with(plan, prep.generation(), opts)?);
        let d = Switchd::start(prep, Arc::clone(&sw) as _, sopts);
        Ok((sw, d))
    }

    /// Like [`start`](Self::start), with `generation` compiled from `plan`
    /// for at least the workers `opts` asks for.
    pub fn start_with(
        plan: &SwitchPlan,
        generation: Arc<Generation>,
        opts: &RunOptions,
    ) -> Result<Self, String> {
        if !plan.ports_known || plan.ports.is_empty() {
            return Err(format!(
                "{}: no `ports:`: `flowswitch run` needs the TAP ports to create",
                plan.source.display()
            ));
        }
        let threads = opts.threads.unwrap_or(plan.threads).max(1);
        let meters = dataplane::meters(plan)?;
        let mut taps = Vec::new();
        for p in &plan.ports {
            let t = TapPort::create(&tap_config(p, opts.mtu))
                .map_err(|e| format!("port {} ({}): {e}", p.id, p.name))?;
            taps.push(Arc::new(t));
        }
        let mut ports: Vec<(Arc<dyn Port>, _)> = Vec::new();
        let mut captures = Vec::new();
        for t in &taps {
            let host_vlan = opts.host_vlans.iter().find(|h| h.port == t.id());
            let port: Arc<dyn Port> = match host_vlan {
                Some(h) if h.switch_tags => Arc::new(
                    TaggedPort::new(Arc::clone(t) as Arc<dyn Port>, h.vid)
                        .map_err(|e| format!("port {}: {e}", t.id()))?,
                ),
                _ => Arc::clone(t) as Arc<dyn Port>,
            };
            let vlans = match host_vlan {
                Some(h) => Some(VlanSet::of([h.vid]).map_err(|e| format!("port {}: {e}", t.id()))?),
                None => None,
            };
            let pcap = opts
                .pcap
                .iter()
                .find(|(which, _)| *which == t.name() || which.parse::<PortId>() == Ok(t.id()));
            let port = match pcap {
                Some((_, path)) => {
                    let c = Arc::new(CapturePort::create(port, path)?);
                    captures.push(Arc::clone(&c));
                    c as Arc<dyn Port>
                }
                None => port,
            };
            ports.push((port, vlans));
        }
        for (which, _) in &opts.pcap {
            let known = plan
                .ports
                .iter()
                .any(|p| p.name == *which || which.parse::<PortId>() == Ok(p.id));
            if !known {
                return Err(format!("--pcap {which}: no such port"));
            }
        }
        let switch = Switch::start(
            ports,
            MacTable::new(MacConfig::default()),
            meters,
            generation,
            SwitchConfig {
                threads,
                busy_poll_us: plan.busy_poll_us,
                ..SwitchConfig::default()
            },
        )
        .map_err(|e| e.to_string())?;
        Ok(RunningSwitch {
            switch: Arc::new(switch),
            taps: Mutex::new(taps),
            captures,
            mtu: opts.mtu,
            fixed_ports: opts.fixed_ports,
        })
    }

    /// The switch (generation, ports, counters).
    pub fn switch(&self) -> &Arc<Switch> {
        &self.switch
    }

    /// The TAP port with id `id`.
    pub fn tap(&self, id: PortId) -> Option<Arc<TapPort>> {
        let taps = self.taps.lock().unwrap_or_else(|e| e.into_inner());
        taps.iter().find(|t| t.id() == id).cloned()
    }

    /// Creates a TAP port and adds it while the switch runs.
    pub fn add_tap(&self, desc: &PortDesc) -> Result<Arc<TapPort>, String> {
        let t = Arc::new(
            TapPort::create(&tap_config(desc, self.mtu))
                .map_err(|e| format!("port {} ({}): {e}", desc.id, desc.name))?,
        );
        self.switch
            .add_port(Arc::clone(&t) as Arc<dyn Port>, None)
            .map_err(|e| e.to_string())?;
        let mut taps = self.taps.lock().unwrap_or_else(|e| e.into_inner());
        taps.push(Arc::clone(&t));
        Ok(t)
    }

    /// Removes port `id` while the switch runs; its device goes away once
    /// the workers have let it go.
    pub fn remove_port(&self, id: PortId) -> Result<(), String> {
        self.switch.remove_port(id).map_err(|e| e.to_string())?;
        let mut taps = self.taps.lock().unwrap_or_else(|e| e.into_inner());
        taps.retain(|t| t.id() != id);
        Ok(())
    }

    /// The counters summed over the workers (see
    /// [`Switch::snapshot`]).
    pub fn snapshot(&self) -> Snapshot {
        self.switch.snapshot()
    }

    /// Stops the workers, closes the pcap files and the TAP devices (the
    /// switch lets its ports go; a [`Switchd`] still holding it can no
    /// longer change anything that forwards).
    pub fn stop(&self) {
        self.switch.stop();
        for c in &self.captures {
            c.finish();
        }
        self.taps.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// The plane of a switch on TAP devices: the [`Switch`]'s, plus ports
/// made and removed at run time (a reload whose `ports:` changed).
impl Plane for RunningSwitch {
    fn publish(&self, generation: Arc<Generation>) -> Result<(), String> {
        Plane::publish(&*self.switch, generation)
    }

    fn ports(&self) -> Arc<PortSet> {
        self.switch.ports()
    }

    fn snapshot(&self) -> Snapshot {
        self.switch.snapshot()
    }

    fn workers(&self) -> usize {
        self.switch.workers()
    }

    fn mac_table(&self) -> &Arc<MacTable> {
        self.switch.mac_table()
    }

    fn meters(&self) -> &Arc<Meters> {
        self.switch.meters()
    }

    fn clock(&self) -> Option<switchd::Clock> {
        Plane::clock(&*self.switch)
    }

    fn ports_change(&self) -> bool {
        !self.fixed_ports
    }

    fn add_ports(&self, ports: &[PortDesc]) -> Result<(), String> {
        for (i, p) in ports.iter().enumerate() {
            if let Err(e) = self.add_tap(p) {
                for done in ports.iter().take(i) {
                    let _ = self.remove_port(done.id);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn remove_ports(&self, ids: &[PortId]) -> Result<(), String> {
        ids.iter().try_for_each(|id| self.remove_port(*id))
    }
}

/// Splits `PORT=FILE`.
fn parse_pcap(arg: &str) -> Result<(String, PathBuf), String> {
    match arg.split_once('=') {
        Some((p, f)) if !p.is_empty() && !f.is_empty() => Ok((p.to_string(), PathBuf::from(f))),
        _ => Err(format!("--pcap {arg}: expected PORT=FILE")),
    }
}

/// The `flowswitch run` verb.
pub fn run(file: &Path, pcap: &[String], engine: EngineOpt, run_dir: Option<&Path>) -> ExitCode {
    let fail = |msg: &str| {
        eprintln!("flowswitch run: {msg}");
        ExitCode::FAILURE
    };
    let pcap = match pcap
        .iter()
        .map(|a| parse_pcap(a))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            return fail(&format!("signal handler: {e}"));
        }
    }
    let opts = RunOptions {
        engine: engine.engine(),
        pcap,
        ..RunOptions::default()
    };
    let (sw, switchd) = match RunningSwitch::controlled(file, &opts) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let dir = crate::control::run_dir(run_dir);
    let serving = match switchd.serve(&dir, Some(WatchOptions::default())) {
        Ok(s) => s,
        Err(e) => {
            sw.stop();
            return fail(&e.to_string());
        }
    };
    let set = sw.switch().ports();
    let names: Vec<String> = (0..set.len())
        .filter_map(|i| set.get(i).map(|p| format!("{}={}", p.id(), p.name())))
        .collect();
    println!(
        "flowswitch: switch {} running, {} worker(s), ports {}; control socket {}; \
         reloads on `flowswitch ctl {} reload`, SIGHUP or a change to {}; SIGINT or SIGTERM stops it",
        switchd.name(),
        sw.switch().workers(),
        names.join(", "),
        crate::control::socket_path(&dir, switchd.name()).display(),
        switchd.name(),
        file.display(),
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    // The socket goes first: no change arrives while the switch stops.
    drop(serving);
    let snap = sw.snapshot();
    let gone: Vec<String> = sw
        .switch()
        .ports()
        .ids()
        .iter()
        .filter(|&&id| sw.tap(id).is_some_and(|t| t.is_gone()))
        .map(|id| id.to_string())
        .collect();
    sw.stop();
    for p in &snap.ports {
        let t = &p.total;
        println!(
            "port {}: rx {} packets {} bytes, tx {} packets {} bytes, tx drops {}",
            p.id, t.rx_packets, t.rx_bytes, t.tx_packets, t.tx_bytes, t.tx_drops
        );
    }
    if !gone.is_empty() {
        println!("devices gone while running: {}", gone.join(", "));
    }
    println!("flowswitch: stopped, socket and TAP devices removed");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_arguments() {
        assert_eq!(
            parse_pcap("fs-h1=/tmp/a.pcap").unwrap(),
            ("fs-h1".to_string(), PathBuf::from("/tmp/a.pcap"))
        );
        assert!(parse_pcap("fs-h1").is_err());
        assert!(parse_pcap("=x").is_err());
        assert!(parse_pcap("p=").is_err());
    }
}
